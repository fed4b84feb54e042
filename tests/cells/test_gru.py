"""rnncore.cells.GRU (both reset modes): closed-form Jacobian vs jax.jacfwd, one step vs
keras.layers.GRUCell."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cell_oracles import KERAS_FAST_INIT, check_jacobian, keras_step, random_params, random_state
from conftest import max_rel_err

from rnncore.cells import GRU, GRUParams, GRUState

B, F, U = 3, 4, 5
CONFIGS = [  # (reset_after, activation, recurrent_activation, use_bias)
    (True, "tanh", "sigmoid", True),
    (False, "tanh", "sigmoid", True),
    (True, "tanh", "sigmoid", False),
    (False, "softsign", "hard_sigmoid", False),
    (True, "selu", "hard_sigmoid", True),
    (False, "gelu", "softsign", True),
]
COVERING = [  # the last four cover every value; the first two with -m slow
    pytest.param(*c, marks=(pytest.mark.slow,) if i < 2 else ()) for i, c in enumerate(CONFIGS)
]


@pytest.mark.parametrize("reset_after,activation,recurrent_activation,use_bias", COVERING)
def test_jacobian_equals_jacfwd(x64, reset_after, activation, recurrent_activation, use_bias):
    rng = np.random.default_rng(30)
    cell = GRU(
        U, reset_after=reset_after, activation=activation, recurrent_activation=recurrent_activation, use_bias=use_bias
    )
    p = random_params(cell, F, rng)
    s = random_state(cell, B, rng)
    x = jnp.asarray(rng.normal(size=(B, F)))
    check_jacobian(cell, p, s, x)
    check_jacobian(cell, p, cell.initial_state(B, jnp.float64), x)


@pytest.mark.parametrize(
    "reset_after,dropout,recurrent_dropout",
    [
        (True, 0.3, 0.4),
        pytest.param(False, 0.3, 0.4, marks=pytest.mark.slow),  # its values: the other three cases
        (True, 0.5, 0.0),
        (False, 0.0, 0.5),
    ],
)
def test_jacobian_with_dropout_masks(x64, reset_after, dropout, recurrent_dropout):
    rng = np.random.default_rng(31)
    cell = GRU(U, reset_after=reset_after, dropout=dropout, recurrent_dropout=recurrent_dropout)
    p = random_params(cell, F, rng)
    s = random_state(cell, B, rng)
    x = jnp.asarray(rng.normal(size=(B, F)))
    masks = cell.dropout_masks(jax.random.PRNGKey(3), B, F, jnp.float64)
    n = 3 if recurrent_dropout > 0 else 1
    assert (None if masks.inputs is None else masks.inputs.shape) == ((n, B, F) if dropout > 0 else None)
    assert (None if masks.recurrent is None else masks.recurrent.shape) == ((n, B, U) if recurrent_dropout else None)
    check_jacobian(cell, p, s, x, masks)


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_step_shapes_and_fields(x64, reset_after, dtype):
    # shapes, types and dtypes by abstract evaluation (nothing to compile)
    cell = GRU(U, reset_after=reset_after)
    p = jax.eval_shape(lambda k: cell.init(k, F, dtype), jax.random.PRNGKey(0))
    assert isinstance(p, GRUParams) and all(a.dtype == dtype for a in p)
    s0 = cell.initial_state(B, dtype)
    assert isinstance(s0, GRUState) and s0._fields == ("h",) and s0.h.shape == (B, U)
    x = jax.ShapeDtypeStruct((B, F), dtype)
    s, y = jax.eval_shape(cell.step, p, s0, x)
    assert isinstance(s, GRUState) and y.shape == s.h.shape == (B, U) and y.dtype == dtype
    assert cell.state_size == U
    assert jax.eval_shape(cell.jacobian, p, s0, x).shape == (B, U, U)


@pytest.mark.parametrize("reset_after,use_bias", [(True, True), (False, True), (True, False), (False, False)])
def test_init_shapes_and_params_from_keras(keras, reset_after, use_bias):
    kcell = keras.layers.GRUCell(U, reset_after=reset_after, use_bias=use_bias, **KERAS_FAST_INIT)
    kcell.build((B, F))
    weights = kcell.get_weights()
    p = jax.eval_shape(lambda k: GRU(U, reset_after=reset_after, use_bias=use_bias).init(k, F), jax.random.PRNGKey(0))
    assert [a.shape for a in p if a is not None] == [w.shape for w in weights]
    assert GRUParams._fields == ("kernel", "recurrent_kernel", "bias")
    assert (GRUParams(*weights).bias is None) == (not use_bias)


@pytest.mark.parametrize("reset_after,activation,recurrent_activation,use_bias", CONFIGS[:5])
def test_step_equals_keras_cell(keras, reset_after, activation, recurrent_activation, use_bias):
    rng = np.random.default_rng(32)
    kw = dict(
        reset_after=reset_after, activation=activation, recurrent_activation=recurrent_activation, use_bias=use_bias
    )
    cell = GRU(U, **kw)
    p = random_params(cell, F, rng, dtype=np.float32)
    s = random_state(cell, B, rng, dtype=np.float32)
    x = rng.normal(size=(B, F)).astype(np.float32)
    weights = [a for a in p if a is not None]
    kcell = keras.layers.GRUCell(U, **kw, **KERAS_FAST_INIT)
    y_k, (h_k,) = keras_step(kcell, weights, x, s)
    s1, y = cell.step(GRUParams(*kcell.get_weights()), s, jnp.asarray(x))
    assert max_rel_err(y, y_k) < 1e-6 and max_rel_err(s1.h, h_k) < 1e-6
    np.testing.assert_array_equal(y, s1.h)  # the output is h


@pytest.mark.parametrize(
    "reset_after,dropout,recurrent_dropout", [(True, 0.3, 0.4), (False, 0.3, 0.4), (False, 0.5, 0.0)]
)
def test_step_with_dropout_equals_keras_cell(keras, reset_after, dropout, recurrent_dropout):
    rng = np.random.default_rng(33)
    kw = dict(reset_after=reset_after, dropout=dropout, recurrent_dropout=recurrent_dropout)
    cell = GRU(U, **kw)
    p = random_params(cell, F, rng, dtype=np.float32)
    s = random_state(cell, B, rng, dtype=np.float32)
    x = rng.normal(size=(B, F)).astype(np.float32)
    masks = cell.dropout_masks(jax.random.PRNGKey(5), B, F)
    y_k, _ = keras_step(keras.layers.GRUCell(U, **kw, **KERAS_FAST_INIT), list(p), x, s, masks)
    _, y = cell.step(p, s, jnp.asarray(x), masks)
    assert max_rel_err(y, y_k) < 1e-6
    assert max_rel_err(y, cell.step(p, s, jnp.asarray(x))[1]) > 1e-3
