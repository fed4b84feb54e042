"""rnncore.cells.SimpleRNN: closed-form Jacobian vs jax.jacfwd, one step vs keras.layers.SimpleRNNCell."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cell_oracles import KERAS_FAST_INIT, check_jacobian, keras_step, random_params, random_state
from conftest import max_rel_err

from rnncore.cells import SimpleRNN, SimpleRNNParams, SimpleRNNState

B, F, U = 3, 4, 5
ACTIVATIONS = ["tanh", "selu", "softsign", "sigmoid", "gelu"]


@pytest.mark.parametrize("activation,use_bias", [(a, True) for a in ACTIVATIONS] + [("tanh", False)])
def test_jacobian_equals_jacfwd(x64, activation, use_bias):
    rng = np.random.default_rng(10)
    cell = SimpleRNN(U, activation=activation, use_bias=use_bias)
    p = random_params(cell, F, rng)
    s = random_state(cell, B, rng)
    x = jnp.asarray(rng.normal(size=(B, F)))
    check_jacobian(cell, p, s, x)
    check_jacobian(cell, p, cell.initial_state(B, jnp.float64), x)


@pytest.mark.parametrize("dropout,recurrent_dropout", [(0.3, 0.4), (0.5, 0.0), (0.0, 0.5)])
def test_jacobian_with_dropout_masks(x64, dropout, recurrent_dropout):
    rng = np.random.default_rng(11)
    cell = SimpleRNN(U, activation="softsign", dropout=dropout, recurrent_dropout=recurrent_dropout)
    p = random_params(cell, F, rng)
    s = random_state(cell, B, rng)
    x = jnp.asarray(rng.normal(size=(B, F)))
    masks = cell.dropout_masks(jax.random.PRNGKey(3), B, F, jnp.float64)
    assert (masks.inputs is not None) == (dropout > 0) and (masks.recurrent is not None) == (recurrent_dropout > 0)
    if masks.recurrent is not None:  # the recurrent mask zeroes whole columns of J
        m = np.asarray(masks.recurrent[0])
        assert 0 < (m == 0).sum() < m.size
        assert set(np.unique(m)) <= {0.0, 1.0 / (1.0 - recurrent_dropout)}
    check_jacobian(cell, p, s, x, masks)


def test_step_shapes_and_fields():
    # shapes, types and dtypes by abstract evaluation (nothing to compile)
    cell = SimpleRNN(U)
    p = jax.eval_shape(lambda k: cell.init(k, F), jax.random.PRNGKey(0))
    assert isinstance(p, SimpleRNNParams)
    s0 = cell.initial_state(B)
    assert isinstance(s0, SimpleRNNState) and s0._fields == ("h",) and s0.h.shape == (B, U)
    x = jax.ShapeDtypeStruct((B, F), jnp.float32)
    s, y = jax.eval_shape(cell.step, p, s0, x)
    assert isinstance(s, SimpleRNNState) and s.h.shape == y.shape == (B, U) and y.dtype == jnp.float32
    assert cell.state_size == U
    assert jax.eval_shape(cell.jacobian, p, s0, x).shape == (B, U, U)


def test_step_float64_dtype(x64):
    cell = SimpleRNN(U)
    p = jax.eval_shape(lambda k: cell.init(k, F, jnp.float64), jax.random.PRNGKey(0))
    assert all(a.dtype == jnp.float64 for a in p)
    x = jax.ShapeDtypeStruct((B, F), jnp.float64)
    s, y = jax.eval_shape(cell.step, p, cell.initial_state(B, jnp.float64), x)
    assert y.dtype == jnp.float64 and s.h.dtype == jnp.float64


@pytest.mark.parametrize("use_bias", [True, False])
def test_init_shapes_and_params_from_keras(keras, use_bias):
    kcell = keras.layers.SimpleRNNCell(U, use_bias=use_bias, **KERAS_FAST_INIT)
    kcell.build((B, F))
    weights = kcell.get_weights()
    p = jax.eval_shape(lambda k: SimpleRNN(U, use_bias=use_bias).init(k, F), jax.random.PRNGKey(0))
    assert [a.shape for a in p if a is not None] == [w.shape for w in weights]
    assert SimpleRNNParams._fields == ("kernel", "recurrent_kernel", "bias")
    q = SimpleRNNParams(*weights)
    assert (q.bias is None) == (not use_bias)


@pytest.mark.parametrize("activation", ["tanh", "relu", "selu"])
@pytest.mark.parametrize("use_bias", [True, False])
def test_step_equals_keras_cell(keras, activation, use_bias):
    rng = np.random.default_rng(12)
    kcell = keras.layers.SimpleRNNCell(U, activation=activation, use_bias=use_bias, **KERAS_FAST_INIT)
    cell = SimpleRNN(U, activation=activation, use_bias=use_bias)
    p = random_params(cell, F, rng, dtype=np.float32)
    s = random_state(cell, B, rng, dtype=np.float32)
    x = rng.normal(size=(B, F)).astype(np.float32)
    weights = [a for a in p if a is not None]
    y_k, (h_k,) = keras_step(kcell, weights, x, s)
    s1, y = cell.step(SimpleRNNParams(*kcell.get_weights()), s, jnp.asarray(x))
    assert max_rel_err(y, y_k) < 1e-6 and max_rel_err(s1.h, h_k) < 1e-6
    np.testing.assert_array_equal(y, s1.h)  # the output is h


def test_step_with_dropout_equals_keras_cell(keras):
    rng = np.random.default_rng(13)
    kcell = keras.layers.SimpleRNNCell(U, dropout=0.4, recurrent_dropout=0.3, **KERAS_FAST_INIT)
    cell = SimpleRNN(U, dropout=0.4, recurrent_dropout=0.3)
    p = random_params(cell, F, rng, dtype=np.float32)
    s = random_state(cell, B, rng, dtype=np.float32)
    x = rng.normal(size=(B, F)).astype(np.float32)
    masks = cell.dropout_masks(jax.random.PRNGKey(5), B, F)
    y_k, (h_k,) = keras_step(kcell, list(p), x, s, masks)
    _, y = cell.step(p, s, jnp.asarray(x), masks)
    assert max_rel_err(y, y_k) < 1e-6
    assert max_rel_err(y, cell.step(p, s, jnp.asarray(x))[1]) > 1e-3  # the masks mattered
