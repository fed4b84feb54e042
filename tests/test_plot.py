"""rc.plot draws the numbers the analyses return: each picture's plotted data is checked against
those numbers, each saves a readable file, bad input raises a ValueError, and importing rnncore
does not import matplotlib."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnncore as rc

matplotlib = pytest.importorskip("matplotlib")
from matplotlib.figure import Figure  # noqa: E402

T, UNITS, B = 20, 8, 2
CELLS = ("SimpleRNN", "LSTM", "GRU")


def data_lines(ax):
    """The lines that carry data (not the zero line, not a divergence marker)."""
    return [line for line in ax.get_lines() if line.get_gid() is None]


GATES = {"SimpleRNN": ("h",), "LSTM": ("i", "f", "g", "o", "tanh(c)"), "GRU": ("z", "r", "hh")}


def analysed(name, seed):
    """What the analyses return for a two-layer network of ``name`` cells (shapes, dtypes, gate names),
    with made-up numbers: a geometric decay of the gradient and of the singular values by lag."""
    rng = np.random.default_rng(seed)
    lag = np.arange(T, 0, -1.0)  # T - t + 1 for t = 1..T
    rate = 0.1 + 0.2 * seed
    norms = np.exp(-rate * lag)[None, None] * rng.uniform(0.5, 2.0, (2, B, T))
    flow = rc.analysis.GradientFlow(
        jnp.asarray(norms, jnp.float32),
        jnp.asarray(norms, jnp.float32),
        (f"0:{name}", f"1:{name}"),
        (0, 1),
        (False, False),
        jnp.float32(0.1),
    )
    lam = -np.sort(rng.uniform(0.0, 2.0, (B, 4)), axis=-1)
    sv = -np.sort(rng.uniform(0.0, 1.0, (B, 1, 3)), axis=-1) * np.arange(1, T + 1.0)[None, :, None]
    return dict(
        flow=flow,
        lyapunov=jnp.asarray(lam, jnp.float32),
        singular_values=jnp.asarray(sv, jnp.float32),
        saturation={g: float(f) for g, f in zip(GATES[name], rng.uniform(0.0, 0.6, len(GATES[name])))},
    )


@pytest.fixture(scope="module")
def results():
    return {name: analysed(name, seed) for seed, name in enumerate(CELLS)}


@pytest.fixture(scope="module")
def real():
    """Real analysis output of a tiny GRU network (T = 20 steps, 8 units), random weights (drawn in
    NumPy: an eager ``model.init`` would cost more than every picture here)."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(B, T, 3)), jnp.float32)
    model = rc.Sequential([rc.layers.GRU(UNITS), rc.layers.Dense(1)])
    shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(1), (T, 3)))
    params = jax.tree_util.tree_map(lambda s: jnp.asarray(rng.normal(size=s.shape) * 0.8, s.dtype), shapes)
    return dict(
        flow=rc.analysis.gradient_flow(model, params, x, jnp.zeros((B, 1)), "mse"),
        saturation=rc.analysis.gate_saturation(model.layers[0].cell, params[0], x),
    )


def test_real_analysis_output_is_drawn_as_returned(real, tmp_path):
    flow = real["flow"]
    fig = rc.plot.diagnose({"model": real}, path=tmp_path / "real.png")
    lines = data_lines(fig.axes[0])
    assert [line.get_label() for line in lines] == ["model"]
    assert lines[0].get_color() == rc.plot.CELL_COLORS["GRU"]  # the cell type, from the layer name
    for line, row in zip(lines, np.asarray(flow.state_norms).mean(axis=1)):
        np.testing.assert_allclose(line.get_ydata(), row[::-1], rtol=1e-6)
    assert [p.get_height() for p in fig.axes[3].patches] == pytest.approx(list(real["saturation"].values()))
    assert [t.get_text().split("\n")[0] for t in fig.axes[3].get_xticklabels()] == ["z", "r", "hh"]
    assert (tmp_path / "real.png").stat().st_size > 10000


# --- gradient flow -------------------------------------------------------------------------------


def test_gradient_flow_draws_the_batch_mean_norms(results, tmp_path):
    flow = results["LSTM"]["flow"]
    fig = rc.plot.gradient_flow(flow, path=tmp_path / "flow.png")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    lines = data_lines(ax)
    mean = np.asarray(flow.state_norms).mean(axis=1)
    assert len(lines) == len(flow.layer_names) == 2
    for line, row, name in zip(lines, mean, flow.layer_names):
        np.testing.assert_allclose(line.get_ydata(), row, rtol=1e-6)
        np.testing.assert_array_equal(line.get_xdata(), np.arange(1, T + 1))
        assert line.get_label() == name
    assert ax.get_yscale() == "log"
    assert (tmp_path / "flow.png").stat().st_size > 1000


def test_gradient_flow_by_lag_reverses_time(results):
    flow = results["GRU"]["flow"]
    ax = rc.plot.gradient_flow(flow, lags=True).axes[0]
    mean = np.asarray(flow.state_norms).mean(axis=1)
    for line, row in zip(data_lines(ax), mean):
        np.testing.assert_array_equal(line.get_xdata(), np.arange(T))  # lag T - t
        np.testing.assert_allclose(line.get_ydata(), row[::-1], rtol=1e-6)
    assert "lag" in ax.get_xlabel()


def test_gradient_flow_compares_models_in_cell_colours(results):
    flows = {name: r["flow"] for name, r in results.items()}
    ax = rc.plot.gradient_flow(flows, lags=True).axes[0]
    lines = data_lines(ax)
    assert len(lines) == sum(len(f.layer_names) for f in flows.values()) == 6
    colours = {name: {line.get_color() for line in lines if line.get_label().startswith(name)} for name in flows}
    assert colours == {name: {rc.plot.CELL_COLORS[name]} for name in flows}
    np.testing.assert_allclose(
        lines[2].get_ydata(), np.asarray(flows["LSTM"].state_norms).mean(axis=1)[0][::-1], rtol=1e-6
    )


def test_gradient_flow_draws_into_a_given_axes(results, tmp_path):
    fig = Figure()
    ax1, ax2 = fig.subplots(1, 2)
    out = rc.plot.gradient_flow(results["SimpleRNN"]["flow"], ax=ax2, title="mine", path=tmp_path / "two.pdf")
    assert out is fig and not ax1.lines and len(data_lines(ax2)) == 2 and ax2.get_title() == "mine"
    assert (tmp_path / "two.pdf").read_bytes()[:4] == b"%PDF"


def test_gradient_heatmap_is_log10_of_the_mean(results, tmp_path):
    flow = results["LSTM"]["flow"]
    fig = rc.plot.gradient_heatmap(flow, path=tmp_path / "heat.png")
    ax = fig.axes[0]
    assert len(ax.images) == 1 and len(fig.axes) == 2  # the heatmap and its colorbar
    np.testing.assert_allclose(
        np.asarray(ax.images[0].get_array()), np.log10(np.asarray(flow.state_norms).mean(axis=1)), rtol=1e-6
    )
    assert [t.get_text() for t in ax.get_yticklabels()] == list(flow.layer_names)
    assert (tmp_path / "heat.png").stat().st_size > 1000


# --- spectra ---------------------------------------------------------------------------------------


def test_singular_values_by_lag(results, tmp_path):
    v = results["LSTM"]["singular_values"]  # (B, T, 3), log sigma in nats
    fig = rc.plot.singular_values_by_lag(v, labels="LSTM", path=tmp_path / "sv.png")
    ax = fig.axes[0]
    lines = data_lines(ax)
    assert len(lines) == 3 and ax.get_yscale() == "log"
    expected = np.exp(np.asarray(v, np.float64).mean(axis=0))
    for i, line in enumerate(lines):
        np.testing.assert_allclose(line.get_ydata(), expected[:, i], rtol=1e-6)
        np.testing.assert_array_equal(line.get_xdata(), np.arange(1, T + 1))
    assert lines[0].get_color() == rc.plot.CELL_COLORS["LSTM"]
    assert (tmp_path / "sv.png").stat().st_size > 1000


def test_singular_values_dict_list_and_k(results):
    values = {name: r["singular_values"] for name, r in results.items()}
    assert len(data_lines(rc.plot.singular_values_by_lag(values).axes[0])) == 9
    ax = rc.plot.singular_values_by_lag(list(values.values()), labels=list(values), k=1).axes[0]
    assert [line.get_label() for line in data_lines(ax)] == list(values)


def test_lyapunov_spectrum_mean_band_and_zero_line(results, tmp_path):
    lam = np.asarray(results["GRU"]["lyapunov"])  # (B, 4)
    fig = rc.plot.lyapunov_spectrum(lam, labels="GRU", path=tmp_path / "lyap.png")
    ax = fig.axes[0]
    (line,) = data_lines(ax)
    np.testing.assert_allclose(line.get_ydata(), lam.mean(axis=0), rtol=1e-6)
    np.testing.assert_array_equal(line.get_xdata(), np.arange(1, 5))
    assert [ln.get_gid() for ln in ax.get_lines()].count("reference") == 1  # the zero line
    assert len(ax.collections) == 1  # the batch band
    assert (tmp_path / "lyap.png").stat().st_size > 1000
    one = rc.plot.lyapunov_spectrum(lam[0]).axes[0]
    assert len(data_lines(one)) == 1 and not one.collections
    many = rc.plot.lyapunov_spectrum({n: r["lyapunov"] for n, r in results.items()}).axes[0]
    assert [ln.get_color() for ln in data_lines(many)] == [rc.plot.CELL_COLORS[n] for n in CELLS]


def test_gate_saturation_bars_are_the_fractions(results, tmp_path):
    sat = results["LSTM"]["saturation"]
    fig = rc.plot.gate_saturation(sat, path=tmp_path / "sat.png")
    ax = fig.axes[0]
    assert [p.get_height() for p in ax.patches] == pytest.approx(list(sat.values()))
    assert [t.get_text().split("\n")[0] for t in ax.get_xticklabels()] == list(sat)
    assert (tmp_path / "sat.png").stat().st_size > 1000
    both = {n: r["saturation"] for n, r in results.items()}
    ax = rc.plot.gate_saturation(both).axes[0]
    assert len(ax.patches) == sum(len(s) for s in both.values())
    assert [c.patches[0].get_facecolor() for c in ax.containers] == [
        matplotlib.colors.to_rgba(rc.plot.CELL_COLORS[n]) for n in both
    ]


# --- training curves ---------------------------------------------------------------------------------


def test_training_curves_with_validation_and_divergence(tmp_path):
    good = rc.train.History()
    for e, (loss, val) in enumerate([(1.0, 1.2), (0.5, 0.8), (0.25, 0.6)]):
        good.append(e, {"loss": loss, "val_loss": val})
    bad = rc.train.History()
    for e, loss in enumerate([1.0, 3.0]):
        bad.append(e, {"loss": loss})
    bad.diverged = rc.train.Divergence(2, 0, "loss", None, None)
    plain = {"loss": [2.0, 1.0, 0.5, 0.4]}
    fig = rc.plot.training_curves({"LSTM": good, "SimpleRNN": bad, "GRU": plain}, path=tmp_path / "train.png")
    ax = fig.axes[0]
    lines = data_lines(ax)
    assert [ln.get_linestyle() for ln in lines] == ["-", "--", "-", "-"]
    np.testing.assert_array_equal(lines[0].get_xdata(), [1, 2, 3])
    np.testing.assert_array_equal(lines[1].get_ydata(), [1.2, 0.8, 0.6])
    np.testing.assert_array_equal(lines[3].get_ydata(), plain["loss"])
    (cross,) = [ln for ln in ax.get_lines() if ln.get_gid() == "diverged"]
    assert cross.get_xdata().tolist() == [2] and cross.get_ydata().tolist() == [3.0]
    assert lines[2].get_label() == "SimpleRNN (diverged)"
    assert ax.get_yscale() == "log"
    assert (tmp_path / "train.png").stat().st_size > 1000
    lin = rc.plot.training_curves({"a": {"acc": [0.0, 0.5]}}, key="acc").axes[0]
    assert lin.get_yscale() == "linear"  # a zero cannot go on a log axis


# --- the composite -----------------------------------------------------------------------------------


def test_diagnose_composes_the_four_panels(results, tmp_path):
    fig = rc.plot.diagnose(results, path=tmp_path / "diagnose.png", title="tiny nets")
    flow_ax, lyap_ax, sv_ax, sat_ax = fig.axes[:4]
    assert len(data_lines(flow_ax)) == 6
    assert len(data_lines(lyap_ax)) == 3
    assert [ln.get_label() for ln in data_lines(sv_ax)] == list(CELLS)  # the top singular value per cell
    np.testing.assert_allclose(
        data_lines(sv_ax)[1].get_ydata(),
        np.exp(np.asarray(results["LSTM"]["singular_values"], np.float64).mean(0))[:, 0],
        rtol=1e-6,
    )
    assert len(sat_ax.patches) == sum(len(r["saturation"]) for r in results.values())
    assert fig.get_suptitle() == "tiny nets"
    assert (tmp_path / "diagnose.png").stat().st_size > 10000
    partial = rc.plot.diagnose({"GRU": {"lyapunov": results["GRU"]["lyapunov"]}})
    assert len(data_lines(partial.axes[1])) == 1 and not partial.axes[0].lines


# --- bad input -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda r: rc.plot.gradient_flow(np.ones((2, 3))), "GradientFlow"),
        (lambda r: rc.plot.gradient_flow({"LSTM": "not a flow"}), "GradientFlow"),
        (lambda r: rc.plot.gradient_flow({}), "empty"),
        (lambda r: rc.plot.gradient_heatmap({"LSTM": r["LSTM"]["flow"]}), "one GradientFlow"),
        (lambda r: rc.plot.gradient_flow(r["LSTM"]["flow"], ax="axes"), "Axes"),
        (lambda r: rc.plot.singular_values_by_lag([r["LSTM"]["singular_values"]], labels=["a", "b"]), "labels"),
        (lambda r: rc.plot.singular_values_by_lag({"a": r["LSTM"]["singular_values"]}, labels=["a"]), "labels"),
        (lambda r: rc.plot.singular_values_by_lag(np.ones(5)), "shape"),
        (lambda r: rc.plot.singular_values_by_lag(r["LSTM"]["singular_values"], k=0), "k="),
        (lambda r: rc.plot.lyapunov_spectrum("fast"), "numeric"),
        (lambda r: rc.plot.lyapunov_spectrum(np.ones((1, 2, 3))), "shape"),
        (lambda r: rc.plot.lyapunov_spectrum([np.ones(3)] * 2, labels=["only one"]), "labels"),
        (lambda r: rc.plot.gate_saturation([0.1, 0.2]), "gate"),
        (lambda r: rc.plot.gate_saturation({"f": 1.5}), r"\[0, 1\]"),
        (lambda r: rc.plot.training_curves([1.0, 0.5]), "dict"),
        (lambda r: rc.plot.training_curves({"a": {"loss": [1.0]}}, key="mae"), "mae"),
        (lambda r: rc.plot.training_curves({"a": 3}), "History"),
        (lambda r: rc.plot.diagnose({"LSTM": {"lyapunov": np.ones(2), "flows": None}}), "flows"),
        (lambda r: rc.plot.diagnose([]), "dict"),
        (lambda r: rc.plot.lyapunov_spectrum(np.ones(3), path=3), "path"),
    ],
)
def test_bad_input_raises_a_clear_value_error(results, call, match):
    with pytest.raises(ValueError, match=match):
        call(results)


def test_no_figure_leaks_into_pyplot(results):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    rc.plot.diagnose(results)
    rc.plot.gradient_heatmap(results["GRU"]["flow"])
    assert plt.get_fignums() == before


def test_importing_rnncore_does_not_import_matplotlib():
    code = "import sys, rnncore; rnncore.plot; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_many_runs_get_colours_without_running_out():
    fig = rc.plot.training_curves({f"run {s}": {"loss": [1.0, 0.5 + 0.01 * s]} for s in range(40)})
    lines = [line for line in fig.axes[0].lines if line.get_gid() is None]
    assert len(lines) == 40
    assert len({line.get_color() for line in lines[:30]}) == 30
