"""rnncore.cells.LayerNormLSTM: closed-form Jacobian vs jax.jacfwd, and sequences vs an independent
NumPy transcription of TensorFlow Addons' ``LayerNormLSTMCell`` (Keras has no such class).

TF Addons (``tensorflow_addons/rnn/layer_norm_lstm_cell.py``), ``call``::

    inputs *= dp_mask[0]; h_tm1 *= rec_dp_mask[0]          # while training
    z  = kernel_norm(inputs @ kernel)
    z += recurrent_norm(h_tm1 @ recurrent_kernel)
    z += bias                                             # if use_bias
    i, f, c~, o = split(z, 4)
    c = sigmoid(f) * c_tm1 + sigmoid(i) * tanh(c~);  c = state_norm(c)
    h = sigmoid(o) * tanh(c)

with Keras ``LayerNormalization(epsilon=norm_epsilon=1e-3)``: biased variance over the last axis,
``gamma * (v - mean) / sqrt(var + eps) + beta``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cell_oracles import check_jacobian, random_params, random_state
from conftest import max_rel_err

import rnncore as rc
from rnncore.cells import LayerNormLSTM, LayerNormLSTMParams, LSTMState

B, F, U, T = 3, 4, 5, 6

NP_ACT = {
    "tanh": np.tanh,
    "sigmoid": lambda v: 1.0 / (1.0 + np.exp(-v)),
    "softsign": lambda v: v / (1.0 + np.abs(v)),
    "hard_sigmoid": lambda v: np.clip(v / 6.0 + 0.5, 0.0, 1.0),
}


def np_layer_norm(v, gamma, beta, eps):
    mean = v.mean(axis=-1, keepdims=True)
    var = ((v - mean) ** 2).mean(axis=-1, keepdims=True)
    return gamma * (v - mean) / np.sqrt(var + eps) + beta


def np_step(w, h, c, x, eps=1e-3, act="tanh", rec_act="sigmoid", x_mask=None, h_mask=None):
    kernel, rec, bias, kg, kb, rg, rb, sg, sb = w
    phi, rho = NP_ACT[act], NP_ACT[rec_act]
    if x_mask is not None:
        x = x * x_mask
    hh = h if h_mask is None else h * h_mask
    z = np_layer_norm(x @ kernel, kg, kb, eps) + np_layer_norm(hh @ rec, rg, rb, eps)
    if bias is not None:
        z = z + bias
    zi, zf, zc, zo = np.split(z, 4, axis=-1)
    c = rho(zf) * c + rho(zi) * phi(zc)
    c = np_layer_norm(c, sg, sb, eps)
    h = rho(zo) * phi(c)
    return h, c


def np_sequence(w, xs, h0, c0, **kw):
    h, c, ys = h0, c0, []
    for t in range(xs.shape[1]):
        h, c = np_step(w, h, c, xs[:, t], **kw)
        ys.append(h)
    return np.stack(ys, axis=1), h, c


def np_weights(p):
    return [None if a is None else np.asarray(a, np.float64) for a in p]


def random_ln_params(cell, rng, dtype):
    p = random_params(cell, F, rng, dtype=dtype)
    # gammas around 1, betas small and non-zero: every norm's affine part matters
    gam = {"kernel_norm_gamma", "recurrent_norm_gamma", "state_norm_gamma"}
    return p._replace(**{k: (1.0 + 0.5 * getattr(p, k)).astype(dtype) for k in gam})


CONFIGS = [  # (activation, recurrent_activation, use_bias, norm_epsilon)
    ("tanh", "sigmoid", True, 1e-3),
    ("tanh", "sigmoid", False, 1e-3),
    ("softsign", "hard_sigmoid", True, 0.05),
]
COVERING = [  # the last two cover every value; the first, the most common, with -m slow
    pytest.param(*c, marks=(pytest.mark.slow,) if i == 0 else ()) for i, c in enumerate(CONFIGS)
]


@pytest.mark.parametrize("activation,recurrent_activation,use_bias,eps", COVERING)
def test_sequence_equals_numpy_float64(x64, activation, recurrent_activation, use_bias, eps):
    rng = np.random.default_rng(40)
    layer = rc.layers.LayerNormLSTM(
        U,
        activation=activation,
        recurrent_activation=recurrent_activation,
        use_bias=use_bias,
        norm_epsilon=eps,
        return_sequences=True,
        return_state=True,
    )
    p = random_ln_params(layer.cell, rng, np.float64)
    xs = rng.normal(size=(B, T, F))
    h0, c0 = rng.normal(size=(B, U)) * 0.5, rng.normal(size=(B, U))
    y, h, c = layer.apply(p, jnp.asarray(xs), initial_state=(jnp.asarray(h0), jnp.asarray(c0)))
    y_ref, h_ref, c_ref = np_sequence(np_weights(p), xs, h0, c0, eps=eps, act=activation, rec_act=recurrent_activation)
    assert y.dtype == jnp.float64
    assert max_rel_err(y, y_ref) < 1e-12
    assert max_rel_err(h, h_ref) < 1e-12 and max_rel_err(c, c_ref) < 1e-12
    # from zeros too (the layer's default initial state)
    y0 = layer.apply(p, jnp.asarray(xs))[0]
    assert (
        max_rel_err(
            y0, np_sequence(np_weights(p), xs, 0 * h0, 0 * c0, eps=eps, act=activation, rec_act=recurrent_activation)[0]
        )
        < 1e-12
    )


def test_sequence_equals_numpy_float32():
    rng = np.random.default_rng(41)
    layer = rc.layers.LayerNormLSTM(U, return_sequences=True, return_state=True)
    p = random_ln_params(layer.cell, rng, np.float32)
    xs = rng.normal(size=(B, T, F)).astype(np.float32)
    y, h, c = layer.apply(p, jnp.asarray(xs))
    assert y.dtype == jnp.float32
    y_ref, h_ref, c_ref = np_sequence(np_weights(p), xs.astype(np.float64), np.zeros((B, U)), np.zeros((B, U)))
    assert max_rel_err(y, y_ref) < 1e-5 and max_rel_err(c, c_ref) < 1e-5


def test_carried_c_is_normalized(x64):
    # What is carried is LN_s(c), not the raw f c + i g: with gamma = 1, beta = 0 each row of c has
    # mean 0 and variance var / (var + eps) < 1.
    rng = np.random.default_rng(42)
    cell = LayerNormLSTM(U)
    p = random_params(cell, F, rng)._replace(state_norm_gamma=jnp.ones(U), state_norm_beta=jnp.zeros(U))
    s, _ = cell.step(p, random_state(cell, B, rng), jnp.asarray(rng.normal(size=(B, F))))
    c = np.asarray(s.c)
    np.testing.assert_allclose(c.mean(-1), 0.0, atol=1e-14)
    assert np.all(c.var(-1) < 1.0) and np.all(c.var(-1) > 0.5)


@pytest.mark.parametrize("dropout,recurrent_dropout", [(0.3, 0.4), (0.0, 0.5)])
def test_step_with_dropout_equals_numpy(x64, dropout, recurrent_dropout):
    rng = np.random.default_rng(43)
    cell = LayerNormLSTM(U, dropout=dropout, recurrent_dropout=recurrent_dropout)
    p = random_ln_params(cell, rng, np.float64)
    s = random_state(cell, B, rng)
    x = rng.normal(size=(B, F))
    masks = cell.dropout_masks(jax.random.PRNGKey(7), B, F, jnp.float64)
    # TF Addons: one mask for the inputs and one for h, before the fused matmuls
    assert (None if masks.inputs is None else masks.inputs.shape) == ((1, B, F) if dropout else None)
    assert masks.recurrent.shape == (1, B, U)
    s1, y = cell.step(p, s, jnp.asarray(x), masks)
    h_ref, c_ref = np_step(
        np_weights(p),
        np.asarray(s.h),
        np.asarray(s.c),
        x,
        x_mask=None if masks.inputs is None else np.asarray(masks.inputs[0]),
        h_mask=np.asarray(masks.recurrent[0]),
    )
    assert max_rel_err(y, h_ref) < 1e-12 and max_rel_err(s1.c, c_ref) < 1e-12
    assert max_rel_err(y, cell.step(p, s, jnp.asarray(x))[1]) > 1e-3  # the masks mattered


@pytest.mark.parametrize("activation,recurrent_activation,use_bias,eps", COVERING)
def test_jacobian_equals_jacfwd(x64, activation, recurrent_activation, use_bias, eps):
    rng = np.random.default_rng(44)
    cell = LayerNormLSTM(
        U, activation=activation, recurrent_activation=recurrent_activation, use_bias=use_bias, norm_epsilon=eps
    )
    p = random_ln_params(cell, rng, np.float64)
    s = random_state(cell, B, rng, scale=1.2)
    x = jnp.asarray(rng.normal(size=(B, F)))
    check_jacobian(cell, p, s, x)


def test_jacobian_with_dropout_masks(x64):
    rng = np.random.default_rng(45)
    cell = LayerNormLSTM(U, dropout=0.3, recurrent_dropout=0.4)
    p = random_ln_params(cell, rng, np.float64)
    s = random_state(cell, B, rng, scale=1.2)
    x = jnp.asarray(rng.normal(size=(B, F)))
    masks = cell.dropout_masks(jax.random.PRNGKey(3), B, F, jnp.float64)
    check_jacobian(cell, p, s, x, masks)


@pytest.mark.parametrize("use_bias", [True, False])
def test_init_shapes_and_fields(use_bias):
    cell = LayerNormLSTM(U, use_bias=use_bias)
    p = cell.init(jax.random.PRNGKey(0), F)
    assert LayerNormLSTMParams._fields == (
        "kernel",
        "recurrent_kernel",
        "bias",
        "kernel_norm_gamma",
        "kernel_norm_beta",
        "recurrent_norm_gamma",
        "recurrent_norm_beta",
        "state_norm_gamma",
        "state_norm_beta",
    )
    shapes = [None if a is None else a.shape for a in p]
    assert shapes == [
        (F, 4 * U),
        (U, 4 * U),
        (4 * U,) if use_bias else None,
        (4 * U,),
        (4 * U,),
        (4 * U,),
        (4 * U,),
        (U,),
        (U,),
    ]
    for g in (p.kernel_norm_gamma, p.recurrent_norm_gamma, p.state_norm_gamma):
        np.testing.assert_array_equal(g, 1.0)  # TF Addons: norm_gamma_initializer="ones"
    for b in (p.kernel_norm_beta, p.recurrent_norm_beta, p.state_norm_beta):
        np.testing.assert_array_equal(b, 0.0)
    assert LayerNormLSTMParams(*p) == p
    s, y = jax.eval_shape(cell.step, p, cell.initial_state(B), jax.ShapeDtypeStruct((B, F), jnp.float32))
    assert isinstance(s, LSTMState) and s.c.shape == y.shape == (B, U)
    assert cell.state_size == 2 * U
