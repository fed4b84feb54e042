"""``compute_dtype``: the projections' matmuls in bfloat16 (or another float), state and gates in
float32. Oracle: a loop of steps whose matmuls are done here in float64 NumPy on operands rounded
to bfloat16 by ml_dtypes (the product of two bfloat16 numbers is exact in float32, so only the
float32 accumulation differs)."""

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from cell_oracles import random_params

import rnncore as rc

KINDS = [("SimpleRNN", {}), ("LSTM", {}), ("GRU", {}), ("GRU", {"reset_after": False}), ("LayerNormLSTM", {})]


def bf16(a):
    return np.asarray(a, np.float32).astype(ml_dtypes.bfloat16).astype(np.float64)


class _NumpyProjections:
    """The cell with its projections replaced by float64 NumPy matmuls of bfloat16-rounded operands
    (GRU without reset_after has a third matmul inside its core: tested on its own below)."""

    def __init__(self, cell):
        self.cell = cell

    def __getattr__(self, name):
        return getattr(self.cell, name)

    def input_projection(self, params, x, dropout_masks=None):
        return jnp.asarray(bf16(x) @ bf16(params.kernel), jnp.float32)

    def recurrent_projection(self, params, h, dropout_masks=None):
        return jnp.asarray(bf16(h) @ bf16(params.recurrent_kernel), jnp.float32)


def oracle_outputs(cell, params, x):
    proj = _NumpyProjections(cell)
    state = cell.initial_state(x.shape[0], jnp.float32)
    ys = []
    for t in range(x.shape[1]):
        xk = proj.input_projection(params, np.asarray(x[:, t]))
        hr = proj.recurrent_projection(params, np.asarray(cell.output(state)))
        state, y = cell.core(params, xk, hr, state)
        ys.append(np.asarray(y))
    return np.stack(ys, axis=1)


@pytest.mark.parametrize("kind, kwargs", [k for k in KINDS if not k[1]])
def test_bfloat16_projections_equal_a_loop_of_rounded_float64_matmuls(kind, kwargs):
    rng = np.random.default_rng(0)
    cell = getattr(rc.cells, kind)(5, compute_dtype="bfloat16", **kwargs)
    params = random_params(cell, 3, rng, dtype=np.float32)
    x = jnp.asarray(rng.normal(size=(4, 9, 3)).astype(np.float32))
    layer = rc.layers.RNN(cell, return_sequences=True)
    got = np.asarray(layer.apply(params, x))
    want = oracle_outputs(cell, params, x)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)
    # and it is not the float32 computation
    f32 = np.asarray(rc.layers.RNN(getattr(rc.cells, kind)(5, **kwargs), return_sequences=True).apply(params, x))
    assert np.max(np.abs(f32 - got)) > 1e-4
    np.testing.assert_allclose(got, f32, atol=5e-2)


@pytest.mark.parametrize("kind, kwargs", KINDS)
def test_state_stays_float32_and_explicit_gradients_equal_autodiff(kind, kwargs):
    rng = np.random.default_rng(1)
    cell = getattr(rc.cells, kind)(4, compute_dtype="bfloat16", recurrent_dropout=0.25, **kwargs)
    params = random_params(cell, 3, rng, dtype=np.float32)
    x = jnp.asarray(rng.normal(size=(3, 6, 3)).astype(np.float32))
    mask = jnp.asarray(rng.random((3, 6)) > 0.25)
    key = jax.random.PRNGKey(2)
    explicit = rc.layers.RNN(cell, return_sequences=True, return_state=True)
    autodiff = rc.layers.RNN(cell, return_sequences=True, return_state=True, backward_pass="autodiff")
    y, *final = explicit.apply(params, x, mask, training=True, rng=key)
    assert y.dtype == jnp.float32 and all(s.dtype == jnp.float32 for s in final)

    def loss(layer, p, x):
        y = layer.apply(p, x, mask, training=True, rng=key)[0]
        return jnp.sum(y * jnp.cos(jnp.arange(y.size, dtype=jnp.float32).reshape(y.shape)))

    got = jax.grad(lambda p, x: loss(explicit, p, x), argnums=(0, 1))(params, x)
    want = jax.grad(lambda p, x: loss(autodiff, p, x), argnums=(0, 1))(params, x)
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
        assert a.dtype == jnp.float32
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6 * float(jnp.max(jnp.abs(b))))


def test_gru_without_reset_after_casts_the_candidates_matmul_too():
    rng = np.random.default_rng(3)
    cell = rc.cells.GRU(4, reset_after=False, compute_dtype="bfloat16")
    params = random_params(cell, 3, rng, dtype=np.float32)
    state = rc.cells.GRU(4).initial_state(2)._replace(h=jnp.asarray(rng.normal(size=(2, 4)).astype(np.float32)))
    x = jnp.asarray(rng.normal(size=(2, 3)).astype(np.float32))
    got, _ = cell.step(params, state, x)
    u = cell.units
    xk, hr = bf16(x) @ bf16(params.kernel), bf16(state.h) @ bf16(params.recurrent_kernel[:, : 2 * u])
    b = np.asarray(params.bias, np.float64)

    def sig(a):
        return 1 / (1 + np.exp(-a))

    z, r = sig(xk[:, :u] + b[:u] + hr[:, :u]), sig(xk[:, u : 2 * u] + b[u : 2 * u] + hr[:, u:])
    hh = np.tanh(
        xk[:, 2 * u :] + b[2 * u :] + bf16(r * np.asarray(state.h)) @ bf16(params.recurrent_kernel[:, 2 * u :])
    )
    want = z * np.asarray(state.h) + (1 - z) * hh
    np.testing.assert_allclose(np.asarray(got.h), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bad", ["int32", "float31", 3, bool])
def test_bad_compute_dtype_is_named(bad):
    with pytest.raises(ValueError, match=r"compute_dtype=.*expected None or a floating dtype"):
        rc.cells.LSTM(4, compute_dtype=bad)


def test_compute_dtype_is_normalized_and_part_of_equality():
    assert rc.cells.LSTM(4, compute_dtype=jnp.bfloat16).compute_dtype == "bfloat16"
    assert rc.cells.LSTM(4, compute_dtype="bfloat16") == rc.layers.LSTM(4, compute_dtype="bfloat16").cell
    assert rc.cells.LSTM(4, compute_dtype="bfloat16") != rc.cells.LSTM(4)


def test_forward_mode_analysis_refuses_a_compute_dtype_cell_by_name():
    cell = rc.cells.SimpleRNN(3, compute_dtype="bfloat16")
    p = cell.init(jax.random.PRNGKey(0), 2)
    with pytest.raises(
        ValueError, match=r"top_singular_values needs forward-mode derivatives.*compute_dtype='bfloat16'"
    ):
        rc.bptt.top_singular_values(cell, p, jnp.ones((1, 4, 2)))
