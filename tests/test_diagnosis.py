"""rnncore.diagnosis: every row of the diagnosis against rnncore.analysis called on that direction
alone, the probe's gradients against jax.grad, the inputs, the table, the argument checks, and what the
module may import."""

import ast
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnncore as rc
from rnncore import diagnosis

B, T, F = 3, 8, 2


@pytest.fixture(scope="module")
def stacked():
    """A Bidirectional SimpleRNN under a GRU (two layers, three directions), its params, inputs and
    diagnosis: one run shared by the tests below."""
    model = rc.Sequential(
        [rc.layers.Bidirectional(rc.layers.SimpleRNN(3, return_sequences=True)), rc.layers.GRU(2), rc.layers.Dense(1)]
    )
    params = model.init(jax.random.PRNGKey(0), (T, F))
    x = jnp.asarray(diagnosis.random_inputs(B, T, F, seed=0))
    rows, results = diagnosis.diagnose_model(model, params, x, lags=(1, 3, T, T + 1), seed=0)
    return model, params, x, rows, results


def test_rows_are_what_analysis_says_of_each_direction_alone(stacked):
    model, params, x, rows, results = stacked
    bidi, gru = model.layers[0], model.layers[1]
    x1 = model.layers[0].apply(params[0], x)  # what the GRU consumes
    directions = [
        (bidi.forward_layer.cell, params[0].forward, x, False),
        (bidi.backward_layer.cell, params[0].backward, x, True),
        (gru.cell, params[1], x1, False),
    ]
    assert (
        [r["layer"] for r in rows]
        == list(results)
        == ["0:Bidirectional(SimpleRNN).forward", "0:Bidirectional(SimpleRNN).backward", "1:GRU"]
    )
    for row, (cell, p, xs, backwards) in zip(rows, directions):
        kw = dict(go_backwards=backwards)
        assert row["memory_horizon"] == pytest.approx(float(np.mean(rc.analysis.memory_horizon(cell, p, xs, **kw))))
        lam = rc.analysis.lyapunov_spectrum(cell, p, xs, k=cell.state_size, warmup=T // 10, **kw)
        assert row["lyapunov_max"] == pytest.approx(float(np.mean(lam[:, 0])), rel=1e-5, abs=1e-7)
        sat = rc.analysis.gate_saturation(cell, p, xs, **kw)
        assert row["gates"] == pytest.approx(sat)
        assert row["saturation"] == (pytest.approx(np.mean(list(sat.values()))) if sat else None)
        verdict = rc.analysis.verdict(cell, p, xs, **kw)
        assert row["verdict"] == verdict.label and row["log_gain"] == pytest.approx(verdict.log_gain, rel=1e-5)
        assert set(row["grad_norm_by_lag"]) == {1, 3, T}  # lag T + 1 is beyond the sequence
        picture = results[row["layer"]]
        assert picture["flow"].layer_names == (row["layer"],) and picture["saturation"] == row["gates"]


def test_lag_norms_are_the_gradients_of_the_probe(stacked):
    """Lag k < T: the gradient flow's per-step norms for the probe L = <y_T, v>; lag T: the gradient
    with respect to the zero initial states, by jax.grad of model.apply."""
    model, params, x, rows, _ = stacked
    v = diagnosis.output_directions(model, params, x, seed=0)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(v), axis=-1), 1.0, rtol=1e-6)
    flow = rc.analysis.gradient_flow(model, params, x, v, loss=diagnosis.projection_loss)
    for r, row in enumerate(rows):
        for k in (1, 3):
            want = np.asarray(flow.state_norms[r], np.float64)[:, T - 1 - k].mean()
            assert row["grad_norm_by_lag"][k] == pytest.approx(want, rel=1e-6)

    zeros = diagnosis.zero_states(model, B, x.dtype)
    g = jax.jit(jax.grad(lambda s0: jnp.sum(model.apply(params, x, initial_states=s0) * v)))(zeros)
    assert g[2] is None
    want = [
        np.linalg.norm(np.concatenate([np.asarray(a, np.float64) for a in state], axis=-1), axis=-1)
        for state in (g[0][0], g[0][1], g[1])
    ]  # each a NamedTuple of (B, units) parts
    got = diagnosis.initial_state_gradient_norms(model, params, x, v)
    for row, mine, theirs in zip(rows, got, want):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5)
        assert row["grad_norm_by_lag"][T] == pytest.approx(theirs.mean(), rel=1e-5)


def test_a_model_without_a_recurrent_layer_is_refused():
    model = rc.Sequential([rc.layers.Dense(2)])
    params = model.init(jax.random.PRNGKey(0), (T, F))
    assert not diagnosis.has_recurrent_layer(model)
    with pytest.raises(ValueError, match="no recurrent layer"):
        diagnosis.diagnose_model(model, params, jnp.zeros((B, T, F)))


def test_input_features():
    for layers, want in [
        ([rc.layers.Bidirectional(rc.layers.LSTM(2)), rc.layers.Dense(1)], F),
        ([rc.layers.Masking(0.0), rc.layers.GRU(2)], F),
        ([rc.layers.Masking(0.0)], None),
    ]:
        model = rc.Sequential(layers)
        assert diagnosis.input_features(model, model.init(jax.random.PRNGKey(0), (T, F))) == want


def test_random_inputs_are_standardized_and_seeded():
    x = diagnosis.random_inputs(4, 50, 3, seed=5)
    assert x.shape == (4, 50, 3) and x.dtype == np.float32
    np.testing.assert_allclose(x.reshape(-1, 3).mean(0), 0.0, atol=1e-6)
    np.testing.assert_allclose(x.reshape(-1, 3).std(0), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(x, diagnosis.random_inputs(4, 50, 3, seed=5))
    assert not np.array_equal(x, diagnosis.random_inputs(4, 50, 3, seed=6))


def test_horizon_and_verdict_from_a_log_spectrum():
    lags = np.arange(1, 11, dtype=np.float64)
    growing = np.stack([np.log(2.0) * lags, np.log(3.0) * lags])  # every lag above lag 1: horizon T
    horizon, log_gain, label = diagnosis.horizon_and_verdict(growing)
    assert horizon == 10.0 and log_gain == pytest.approx(10 * np.log(6.0) / 2) and label == "exploding"
    flat = np.zeros((1, 10))
    assert diagnosis.horizon_and_verdict(flat) == (10.0, 0.0, "healthy")
    assert diagnosis.horizon_and_verdict(flat - 10.0)[2] == "vanishing"  # exp(-10) < 1e-3
    assert diagnosis.horizon_and_verdict(flat - 10.0, low=1e-5)[2] == "healthy"


def test_format_table_marks_missing_lags_and_saturation():
    rows = [
        dict(
            model="simple_rnn",
            layer="0:SimpleRNN",
            grad_norm_by_lag={1: 1.0},
            memory_horizon=3.0,
            lyapunov_max=0.25,
            saturation=None,
            verdict="exploding",
        )
    ]
    head, line = diagnosis.format_table(rows, (1, 10)).splitlines()
    assert head.split() == ["model", "layer", "k=1", "k=10", "horizon", "λ_max", "saturated", "verdict"]
    assert line.split() == ["simple_rnn", "0:SimpleRNN", "1.00e+00", "—", "3.0", "+0.2500", "—", "exploding"]


def test_argument_checks_name_the_argument_and_the_value():
    model = rc.Sequential([rc.layers.SimpleRNN(2)])
    params = model.init(jax.random.PRNGKey(0), (T, F))
    x = jnp.zeros((B, T, F))
    with pytest.raises(ValueError, match=r"k_singular=0; expected a positive integer"):
        diagnosis.diagnose_model(model, params, x, k_singular=0)
    with pytest.raises(ValueError, match=r"lags=1\.5; expected an integer"):
        diagnosis.diagnose_model(model, params, x, lags=(1.5,))
    with pytest.raises(ValueError, match=r"steps=0; expected a positive integer"):
        diagnosis.random_inputs(2, 0, 3, seed=0)
    with pytest.raises(ValueError, match=r"seed=-1; expected an integer >= 0"):
        diagnosis.random_inputs(2, 5, 3, seed=-1)


def test_diagnosis_is_library_code():
    """It imports neither Keras, matplotlib, the command line nor the pictures (floor 5)."""
    path = pathlib.Path(diagnosis.__file__)
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = ("." * node.level) + (node.module or "")
            imported |= {base} | {f"{base}.{a.name}" if node.module else f"{base}{a.name}" for a in node.names}
    forbidden = {"keras", "matplotlib", ".cli", ".plot", ".keras", ".train", ".interop"}
    assert not {name for name in imported if any(name == f or name.startswith(f + ".") for f in forbidden)}


def test_a_recurrent_layer_inside_time_distributed_is_refused_by_name():
    model = rc.Sequential([rc.layers.TimeDistributed(rc.layers.GRU(2)), rc.layers.LSTM(2)])
    params = model.init(jax.random.PRNGKey(0), (3, 4, 2))
    with pytest.raises(
        ValueError, match=r"diagnose: layers\[0\] is TimeDistributed\(GRU\), a recurrent layer run once"
    ):
        diagnosis.diagnose_model(model, params, jnp.ones((2, 3, 4, 2)))
