"""rnncore.cells.LSTM: closed-form Jacobian vs jax.jacfwd, one step vs keras.layers.LSTMCell."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cell_oracles import KERAS_FAST_INIT, check_jacobian, jacfwd_jacobian, keras_step, random_params, random_state
from conftest import max_rel_err

from rnncore.cells import LSTM, LSTMParams, LSTMState

B, F, U = 3, 4, 5
CONFIGS = [  # (activation, recurrent_activation, use_bias)
    ("tanh", "sigmoid", True),
    ("tanh", "sigmoid", False),
    ("softsign", "hard_sigmoid", True),
    ("selu", "sigmoid", True),
    ("tanh", "softsign", True),
]
COVERING = [  # the last four cover every value; the first with -m slow
    pytest.param(*c, marks=(pytest.mark.slow,) if i == 0 else ()) for i, c in enumerate(CONFIGS)
]


@pytest.mark.parametrize("activation,recurrent_activation,use_bias", COVERING)
def test_jacobian_equals_jacfwd(x64, activation, recurrent_activation, use_bias):
    rng = np.random.default_rng(20)
    cell = LSTM(U, activation=activation, recurrent_activation=recurrent_activation, use_bias=use_bias)
    p = random_params(cell, F, rng)
    s = random_state(cell, B, rng, scale=1.2)
    x = jnp.asarray(rng.normal(size=(B, F)))
    check_jacobian(cell, p, s, x)
    check_jacobian(cell, p, cell.initial_state(B, jnp.float64), x)


@pytest.mark.parametrize("dropout,recurrent_dropout", [(0.3, 0.4), (0.5, 0.0), (0.0, 0.5)])
def test_jacobian_with_dropout_masks(x64, dropout, recurrent_dropout):
    rng = np.random.default_rng(21)
    cell = LSTM(U, recurrent_activation="hard_sigmoid", dropout=dropout, recurrent_dropout=recurrent_dropout)
    p = random_params(cell, F, rng)
    s = random_state(cell, B, rng, scale=1.2)
    x = jnp.asarray(rng.normal(size=(B, F)))
    masks = cell.dropout_masks(jax.random.PRNGKey(3), B, F, jnp.float64)
    # Keras: one input mask with the fused matmul; one mask per gate once recurrent_dropout > 0
    n = 4 if recurrent_dropout > 0 else 1
    assert (None if masks.inputs is None else masks.inputs.shape) == ((n, B, F) if dropout > 0 else None)
    assert (None if masks.recurrent is None else masks.recurrent.shape) == ((n, B, U) if recurrent_dropout else None)
    check_jacobian(cell, p, s, x, masks)


def test_jacobian_c_to_c_block_is_diag_f(x64):
    # The structure the docs promise: dc_t/dc_{t-1} = diag(f), checked on the jacfwd Jacobian.
    rng = np.random.default_rng(22)
    cell = LSTM(U)
    p = random_params(cell, F, rng)
    s = random_state(cell, B, rng)
    x = jnp.asarray(rng.normal(size=(B, F)))
    ref, _ = jacfwd_jacobian(cell, p, s, x)
    z = x @ p.kernel + s.h @ p.recurrent_kernel + p.bias
    f = 1 / (1 + np.exp(-np.asarray(z[:, U : 2 * U])))
    np.testing.assert_allclose(np.asarray(ref[:, U:, U:]), np.stack([np.diag(r) for r in f]), atol=1e-14)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_step_shapes_and_fields(x64, dtype):
    # shapes, types and dtypes by abstract evaluation (nothing to compile)
    cell = LSTM(U)
    p = jax.eval_shape(lambda k: cell.init(k, F, dtype), jax.random.PRNGKey(0))
    assert isinstance(p, LSTMParams) and all(a.dtype == dtype for a in p)
    s0 = cell.initial_state(B, dtype)
    assert isinstance(s0, LSTMState) and s0._fields == ("h", "c")
    assert s0.h.shape == s0.c.shape == (B, U)
    x = jax.ShapeDtypeStruct((B, F), dtype)
    s, y = jax.eval_shape(cell.step, p, s0, x)
    assert isinstance(s, LSTMState) and y.shape == s.h.shape == s.c.shape == (B, U)
    assert y.dtype == s.c.dtype == dtype
    assert cell.state_size == 2 * U
    assert jax.eval_shape(cell.jacobian, p, s0, x).shape == (B, 2 * U, 2 * U)


@pytest.mark.parametrize("use_bias", [True, False])
def test_init_shapes_and_params_from_keras(keras, use_bias):
    kcell = keras.layers.LSTMCell(U, use_bias=use_bias, **KERAS_FAST_INIT)
    kcell.build((B, F))
    weights = kcell.get_weights()
    p = jax.eval_shape(lambda k: LSTM(U, use_bias=use_bias).init(k, F), jax.random.PRNGKey(0))
    assert [a.shape for a in p if a is not None] == [w.shape for w in weights]
    assert LSTMParams._fields == ("kernel", "recurrent_kernel", "bias")
    assert (LSTMParams(*weights).bias is None) == (not use_bias)


@pytest.mark.parametrize("activation,recurrent_activation,use_bias", CONFIGS[:4])
def test_step_equals_keras_cell(keras, activation, recurrent_activation, use_bias):
    rng = np.random.default_rng(23)
    kw = dict(activation=activation, recurrent_activation=recurrent_activation, use_bias=use_bias)
    cell = LSTM(U, **kw)
    p = random_params(cell, F, rng, dtype=np.float32)
    s = random_state(cell, B, rng, scale=1.2, dtype=np.float32)
    x = rng.normal(size=(B, F)).astype(np.float32)
    weights = [a for a in p if a is not None]
    kcell = keras.layers.LSTMCell(U, **kw, **KERAS_FAST_INIT)
    y_k, (h_k, c_k) = keras_step(kcell, weights, x, s)
    s1, y = cell.step(LSTMParams(*kcell.get_weights()), s, jnp.asarray(x))
    assert max_rel_err(y, y_k) < 1e-6
    np.testing.assert_array_equal(y, s1.h)  # the output is h
    assert max_rel_err(s1.h, h_k) < 1e-6 and max_rel_err(s1.c, c_k) < 1e-6


@pytest.mark.parametrize("dropout,recurrent_dropout", [(0.3, 0.4), (0.5, 0.0)])
def test_step_with_dropout_equals_keras_cell(keras, dropout, recurrent_dropout):
    # recurrent_dropout > 0 switches Keras to implementation=1: one mask per gate on both sides
    rng = np.random.default_rng(24)
    kw = dict(dropout=dropout, recurrent_dropout=recurrent_dropout)
    cell = LSTM(U, **kw)
    p = random_params(cell, F, rng, dtype=np.float32)
    s = random_state(cell, B, rng, dtype=np.float32)
    x = rng.normal(size=(B, F)).astype(np.float32)
    masks = cell.dropout_masks(jax.random.PRNGKey(5), B, F)
    y_k, (h_k, c_k) = keras_step(keras.layers.LSTMCell(U, **kw, **KERAS_FAST_INIT), list(p), x, s, masks)
    s1, y = cell.step(p, s, jnp.asarray(x), masks)
    assert max_rel_err(y, y_k) < 1e-6 and max_rel_err(s1.c, c_k) < 1e-6
    assert max_rel_err(y, cell.step(p, s, jnp.asarray(x))[1]) > 1e-3
