"""The analyses on graphs whose recurrent layer is called more than once (a siamese LSTM, a shared
Bidirectional(GRU)): one row per call, against float64 loops of cell steps with a perturbation added
to each state and jax.grad / jax.jacfwd of them (no rnncore scan, mask, graph or analysis code in
the oracle); Model.per_call, and what the analyses refuse."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnncore as rc
from rnncore import diagnosis
from rnncore import layers as L

B = 3
T_A, T_B = 4, 6


def _randomized(model, seed):
    """Random asymmetric params (every gate block different, biases non-zero), float64."""
    params = model.init(jax.random.PRNGKey(seed), jnp.float64)
    leaves, tree = jax.tree_util.tree_flatten(params)
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_unflatten(tree, [jnp.asarray(0.6 * rng.normal(size=np.shape(a))) for a in leaves])


def _siamese_lstm():
    """One LSTM reads both (masked) inputs; the difference of its final h goes to a Dense."""
    return rc.Model(
        inputs={"a": (None, 3), "b": (None, 3)},
        calls=[
            rc.Call("pad", L.Masking(0.0), "a", outputs="ma"),
            rc.Call("pad", None, "b", outputs="mb"),
            rc.Call("siamese", L.LSTM(4), "ma", outputs="ha"),
            rc.Call("siamese", None, "mb", outputs="hb"),
            rc.Call("diff", L.Subtract(), ["ha", "hb"], outputs="d"),
            rc.Call("head", L.Dense(2), "d", outputs="y"),
        ],
        outputs="y",
    )


def _siamese_bigru():
    """One Bidirectional(GRU) reads both (masked) inputs; its two outputs are concatenated."""
    return rc.Model(
        inputs={"a": (None, 3), "b": (None, 3)},
        calls=[
            rc.Call("pad", L.Masking(0.0), "a", outputs="ma"),
            rc.Call("pad", None, "b", outputs="mb"),
            rc.Call("bi", L.Bidirectional(L.GRU(3)), "ma", outputs="za"),
            rc.Call("bi", None, "mb", outputs="zb"),
            rc.Call("join", L.Concatenate(), ["za", "zb"], outputs="z"),
            rc.Call("head", L.Dense(2), "z", outputs="y"),
        ],
        outputs="y",
    )


def _xs(seed=0):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(B, T_A, 3)), rng.normal(size=(B, T_B, 3))
    a[1, -2:] = 0.0  # post-padding, masked
    b[2, -3:] = 0.0
    b[0, 2] = 0.0  # a masked step inside a sequence
    return jnp.asarray(a), jnp.asarray(b)


def _loop(cell, p, xs, deltas, backwards=False):
    """The h of the final state of one call, as a loop of cell steps: ``deltas[:, k]`` is added to
    s_k (k = 0 … T, processing order); a step whose inputs are all zero (masked) carries the state."""
    keep = jnp.any(xs != 0.0, axis=-1)
    s = cell.vector_to_state(cell.state_to_vector(cell.initial_state(xs.shape[0], xs.dtype)) + deltas[:, 0])
    order = range(xs.shape[1] - 1, -1, -1) if backwards else range(xs.shape[1])
    for k, t in enumerate(order, start=1):
        new, _ = cell.step(p, s, xs[:, t])
        new = jax.tree_util.tree_map(lambda n, o: jnp.where(keep[:, t, None], n, o), new, s)
        s = cell.vector_to_state(cell.state_to_vector(new) + deltas[:, k])
    return cell.output(s)


def _lstm_oracle(model, params, x):
    """``y(deltas)``: the siamese LSTM graph written out, deltas per call ``(B, T + 1, S)``."""
    lstm = model.layers[1]
    p, ph = params[1], params[3]

    def y(d_a, d_b):
        return (_loop(lstm.cell, p, x[0], d_a) - _loop(lstm.cell, p, x[1], d_b)) @ ph.kernel + ph.bias

    zeros = tuple(jnp.zeros((B, a.shape[1] + 1, lstm.cell.state_size)) for a in x)
    return y, zeros


def _bigru_oracle(model, params, x):
    """``y(deltas)``: the shared Bidirectional(GRU) graph written out, deltas per call and direction."""
    bi = model.layers[1]
    p, ph = params[1], params[3]
    fwd, bwd = bi.forward_layer.cell, bi.backward_layer.cell

    def y(fa, ba, fb, bb):
        za = jnp.concatenate([_loop(fwd, p.forward, x[0], fa), _loop(bwd, p.backward, x[0], ba, True)], -1)
        zb = jnp.concatenate([_loop(fwd, p.forward, x[1], fb), _loop(bwd, p.backward, x[1], bb, True)], -1)
        return jnp.concatenate([za, zb], -1) @ ph.kernel + ph.bias

    zeros = tuple(jnp.zeros((B, a.shape[1] + 1, 3)) for a in (x[0], x[0], x[1], x[1]))
    return y, zeros


GRAPHS = {
    "siamese_lstm": (_siamese_lstm, _lstm_oracle, ("siamese (call 1)", "siamese (call 2)")),
    "siamese_bigru": (
        _siamese_bigru,
        _bigru_oracle,
        ("bi (call 1).forward", "bi (call 1).backward", "bi (call 2).forward", "bi (call 2).backward"),
    ),
}


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_gradient_flow_per_call_against_a_loop_of_cell_steps(x64, name):
    build, oracle, rows = GRAPHS[name]
    model = build()
    params = _randomized(model, seed=1)
    x = _xs()
    target = jnp.asarray(np.random.default_rng(2).normal(size=(B, 2)))
    y, zeros = oracle(model, params, x)
    loss, grads = jax.value_and_grad(lambda *d: jnp.mean((y(*d) - target) ** 2), argnums=tuple(range(len(zeros))))(
        *zeros
    )

    flow = rc.analysis.gradient_flow(model, params, x, target, loss="mse")
    assert float(flow.loss) == pytest.approx(float(loss), rel=1e-13)
    assert flow.layer_names == rows and flow.layer_indices == (1,) * len(rows)
    lengths = tuple(g.shape[1] - 1 for g in grads)
    assert flow.steps == lengths
    for r, (g, n) in enumerate(zip(grads, lengths)):
        assert np.max(np.abs(g)) > 0
        np.testing.assert_allclose(flow.state_norms[r, :, :n], np.linalg.norm(g[:, 1:], axis=-1), rtol=1e-10)
        assert np.isnan(flow.state_norms[r, :, n:]).all()

    # depth's entry point (whose gradients these norms are) gives one entry per call
    per_call = jax.eval_shape(lambda: rc.depth.model_state_gradients(model, params, x, target))
    assert len(per_call) == len(model.per_call().model.layers)
    states = [s for e in per_call if e is not None for s in (tuple(e) if isinstance(e, rc.depth.Directions) else (e,))]
    assert [s.shape for s in states] == [g[:, 1:].shape for g in grads]


@pytest.mark.slow
def test_diagnose_measures_each_call_against_a_loop_of_cell_steps(x64):
    """diagnose_model's rows of the siamese LSTM: the gradient at lag 1 and at s_0 (lag T) for the
    probe, and the verdict's gain log||ds_T/ds_0||, each call against the loop (jax.grad, jax.jacfwd)."""
    model = _siamese_lstm()
    params = _randomized(model, seed=3)
    a, b = _xs(1)
    x = (a, b[:, :T_A])  # of one length, so that the two calls share compiled kernels
    rows, results = diagnosis.diagnose_model(model, params, x, lags=(1, T_A), seed=0)
    assert [r["layer"] for r in rows] == ["siamese (call 1)", "siamese (call 2)"] == list(results)
    assert all(r["verdict"] in ("vanishing", "exploding", "healthy") for r in rows)
    assert all(np.isfinite(r["lyapunov_max"]) for r in rows)

    y, zeros = _lstm_oracle(model, params, x)
    v = diagnosis.output_directions(model, params, x, seed=0)
    grads = jax.grad(lambda *d: jnp.sum(y(*d) * v), argnums=(0, 1))(*zeros)
    s0 = diagnosis.initial_state_gradient_norms(model, params, x, v)
    cell = model.layers[1].cell
    for row, g, xs, n0 in zip(rows, grads, x, s0):
        steps = xs.shape[1]
        norms = np.linalg.norm(g, axis=-1)  # (B, T + 1): [:, t] for s_t
        np.testing.assert_allclose(n0, norms[:, 0], rtol=1e-10)
        assert row["grad_norm_by_lag"][1] == pytest.approx(norms[:, steps - 1].mean(), rel=1e-10)
        assert row["grad_norm_by_lag"][steps] == pytest.approx(norms[:, 0].mean(), rel=1e-10)
        assert set(row["grad_norm_by_lag"]) == {1, T_A}

        def final_state(s0_vec, xs=xs):  # one call's whole chain, no perturbation
            keep = jnp.any(xs != 0.0, axis=-1)
            s = cell.vector_to_state(s0_vec)
            for t in range(xs.shape[1]):
                new, _ = cell.step(params[1], s, xs[:, t])
                s = jax.tree_util.tree_map(lambda n, o: jnp.where(keep[:, t, None], n, o), new, s)
            return cell.state_to_vector(s)

        full = jax.jacfwd(final_state)(jnp.zeros((B, cell.state_size)))  # (B, S, B, S)
        gains = [np.log(np.linalg.svd(np.asarray(full[b, :, b, :]), compute_uv=False)[0]) for b in range(B)]
        assert row["log_gain"] == pytest.approx(float(np.mean(gains)), rel=1e-9, abs=1e-12)


def test_per_call_splits_only_recurrent_layers_called_more_than_once():
    model = _siamese_lstm()
    view = model.per_call()
    assert view.model.names == ("pad", "siamese (call 1)", "siamese (call 2)", "diff", "head")
    assert view.origins == (0, 1, 1, 2, 3)  # the shared Masking stays one layer
    params = ((), object(), (), object())
    split = view.params(params)
    assert split[1] is params[1] and split[2] is params[1] and len(split) == 5
    assert view.per_layer(None) is None and view.per_layer(("p", "s", "d", "h"))[1:3] == ("s", "s")
    once = rc.Model({"x": (4, 3)}, [rc.Call("r", L.GRU(2), "x", outputs="y")], outputs="y")
    assert once.per_call().model is once and once.per_call().origins == (0,)


def test_what_a_shared_recurrent_layer_refuses_is_named():
    model = _siamese_lstm()
    params = ((), None, (), None)  # refused before the LSTM's params are read
    x = _xs()
    tap = (jnp.zeros((B, 4)), (jnp.zeros((B, 4)), jnp.zeros((B, 4))))
    with pytest.raises(ValueError, match=r"taps\[1\]: layer 'siamese' is called 2 times; .*model\.per_call\(\)"):
        model.run(params, x, taps=(None, tap, None, None))
    with pytest.raises(ValueError, match=r"model is a graph \(rnncore\.Model\); .*supported: rnncore\.Sequential"):
        rc.depth.cross_layer_jacobians(model, params, x)
