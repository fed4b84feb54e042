"""Bad inputs give a clear ValueError naming the argument, what was given and what was expected;
under ``jax.jit`` it is raised at trace time. NaN inputs give the documented NaN results."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnncore as rc
from rnncore import layers as L

B, T, F, U = 2, 5, 3, 4
KEY = jax.random.PRNGKey(0)


@pytest.fixture(scope="module")
def lstm():
    layer = L.LSTM(U, return_sequences=True)
    return layer, layer.init(KEY, (T, F))


@pytest.fixture(scope="module")
def model():
    m = rc.Sequential([L.LSTM(U, return_sequences=True), L.GRU(U), L.Dense(1)])
    return m, m.init(KEY, (T, F))


def x_ok(dtype=jnp.float32):
    return jnp.asarray(np.random.default_rng(0).normal(size=(B, T, F)), dtype)


def shape_re(shape):
    return re.escape(str(tuple(shape)))


# --- inputs -----------------------------------------------------------------------------------------

BAD_SHAPES = [
    ((T, F), r"inputs must have shape \(batch, time, features\); got shape \(5, 3\) \(rank 2\)"),
    ((1, B, T, F), r"inputs must have shape \(batch, time, features\); got shape \(1, 2, 5, 3\) \(rank 4\)"),
    ((B, T, F + 1), r"inputs has 4 features \(shape \(2, 5, 4\)\) but the layer's kernel expects 3"),
    ((B, 0, F), r"inputs has T=0 time steps \(shape \(2, 0, 3\)\)"),
    ((0, T, F), r"inputs has batch size 0 \(shape \(0, 5, 3\)\)"),
]


@pytest.mark.parametrize("shape,match", BAD_SHAPES)
def test_bad_input_shape_layer(lstm, shape, match):
    layer, p = lstm
    with pytest.raises(ValueError, match=match):
        layer.apply(p, jnp.zeros(shape))
    with pytest.raises(ValueError, match=match):  # at trace time under jit
        jax.jit(layer.apply)(p, jnp.zeros(shape))


@pytest.mark.parametrize("shape,match", BAD_SHAPES)
def test_bad_input_shape_sequential(model, shape, match):
    m, params = model
    with pytest.raises(ValueError, match=match):
        m.apply(params, jnp.zeros(shape))
    with pytest.raises(ValueError, match=match):
        jax.jit(m.apply)(params, jnp.zeros(shape))


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.bool_, jnp.uint8])
def test_non_float_input(lstm, model, dtype):
    layer, p = lstm
    match = rf"inputs must be a floating-point array .*; got dtype {jnp.dtype(dtype).name}"
    with pytest.raises(ValueError, match=match):
        layer.apply(p, jnp.ones((B, T, F), dtype))
    with pytest.raises(ValueError, match=match):
        jax.jit(layer.apply)(p, jnp.ones((B, T, F), dtype))
    with pytest.raises(ValueError, match=match):
        model[0].apply(model[1], jnp.ones((B, T, F), dtype))


def test_bidirectional_checks_its_inputs_too():
    bi = L.Bidirectional(L.GRU(U))
    p = bi.init(KEY, (T, F))
    with pytest.raises(ValueError, match=r"inputs must have shape \(batch, time, features\); got shape \(5, 3\)"):
        bi.apply(p, jnp.zeros((T, F)))
    with pytest.raises(ValueError, match=r"mask must have shape \(batch, time\) = \(2, 5\); got shape \(2, 4\)"):
        bi.apply(p, x_ok(), mask=jnp.ones((B, T - 1), bool))


# --- masks ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mask_shape", [(B, T - 1), (B,), (B, T, 1), (T, B)])
def test_mask_of_wrong_shape(lstm, model, mask_shape):
    layer, p = lstm
    match = rf"mask must have shape \(batch, time\) = \(2, 5\); got shape {shape_re(mask_shape)}"
    mask = jnp.ones(mask_shape, bool)
    with pytest.raises(ValueError, match=match):
        layer.apply(p, x_ok(), mask=mask)
    with pytest.raises(ValueError, match=match):
        jax.jit(layer.apply)(p, x_ok(), mask)
    with pytest.raises(ValueError, match=match):
        model[0].apply(model[1], x_ok(), mask=mask)


def test_mask_of_float_dtype(lstm):
    layer, p = lstm
    match = r"mask must be boolean \(True where a step is real\); got dtype float32"
    with pytest.raises(ValueError, match=match):
        layer.apply(p, x_ok(), mask=jnp.ones((B, T), jnp.float32))
    with pytest.raises(ValueError, match=match):
        jax.jit(layer.apply)(p, x_ok(), jnp.ones((B, T), jnp.float32))


# --- initial_state ------------------------------------------------------------------------------------


def test_initial_state_wrong_number_of_arrays(lstm):
    layer, p = lstm
    h = jnp.zeros((B, U))
    with pytest.raises(ValueError, match=r"initial_state for LSTM must hold 2 array\(s\) \(h, c\); got 1"):
        layer.apply(p, x_ok(), initial_state=(h,))
    with pytest.raises(ValueError, match=r"initial_state for LSTM must hold 2 array\(s\) \(h, c\); got 3"):
        jax.jit(layer.apply)(p, x_ok(), initial_state=(h, h, h))
    gru = L.GRU(U)
    with pytest.raises(ValueError, match=r"initial_state for GRU must hold 1 array\(s\) \(h\); got 2"):
        gru.apply(gru.init(KEY, (T, F)), x_ok(), initial_state=(h, h))


@pytest.mark.parametrize("bad_shape", [(B, U + 1), (B + 1, U), (U,), (B, U, 1)])
def test_initial_state_wrong_shape(lstm, bad_shape):
    layer, p = lstm
    match = rf"initial_state.c must have shape \(batch, units\) = \(2, 4\); got {shape_re(bad_shape)}"
    with pytest.raises(ValueError, match=match):
        layer.apply(p, x_ok(), initial_state=(jnp.zeros((B, U)), jnp.zeros(bad_shape)))
    with pytest.raises(ValueError, match=match):
        jax.jit(layer.apply)(p, x_ok(), initial_state=(jnp.zeros((B, U)), jnp.zeros(bad_shape)))


# --- dropout ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kw", [{"dropout": 0.2}, {"recurrent_dropout": 0.2}])
def test_training_with_dropout_needs_rng(kw):
    layer = L.GRU(U, **kw)
    p = layer.init(KEY, (T, F))
    match = r"GRU: training=True with dropout needs rng=jax.random.PRNGKey"
    with pytest.raises(ValueError, match=match):
        layer.apply(p, x_ok(), training=True)
    with pytest.raises(ValueError, match=match):
        jax.jit(layer.apply, static_argnames="training")(p, x_ok(), training=True)
    m = rc.Sequential([layer])
    with pytest.raises(ValueError, match=match):
        m.apply((p,), x_ok(), training=True)
    assert layer.apply(p, x_ok(), training=True, rng=KEY).shape == (B, U)  # with an rng: fine


def test_dropout_layer_needs_rng():
    with pytest.raises(ValueError, match=r"Dropout: training=True with dropout needs rng="):
        L.Dropout(0.5).apply((), x_ok(), training=True)


@pytest.mark.parametrize("name", ["dropout", "recurrent_dropout"])
@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, "0.2"])
@pytest.mark.parametrize("layer_type", [L.SimpleRNN, L.LSTM, L.GRU, L.LayerNormLSTM])
def test_dropout_rate_out_of_range(layer_type, name, rate):
    with pytest.raises(ValueError, match=rf"{name}={re.escape(repr(rate))}; expected a float in \[0, 1\)"):
        layer_type(U, **{name: rate})


def test_dropout_layer_rate_out_of_range():
    with pytest.raises(ValueError, match=r"Dropout rate=1.5; expected a float in \[0, 1\]"):
        L.Dropout(1.5)


# --- constructor arguments --------------------------------------------------------------------------------


@pytest.mark.parametrize("units", [0, -3, 2.5, "4", True, None])
@pytest.mark.parametrize("make", [L.SimpleRNN, L.LSTM, L.GRU, L.LayerNormLSTM, rc.cells.LSTM, rc.cells.GRU])
def test_units_must_be_a_positive_int(make, units):
    if units is None and make in (rc.cells.LSTM, rc.cells.GRU):
        match = r"units=None; expected a positive integer"
    elif units is None:
        match = r"needs units \(a positive integer\)"
    else:
        match = rf"units={re.escape(repr(units))}; expected a positive integer"
    with pytest.raises(ValueError, match=match):
        make(units)


@pytest.mark.parametrize("units", [0, 1.5])
def test_dense_units(units):
    with pytest.raises(ValueError, match=rf"Dense units={units!r}; expected a positive integer"):
        L.Dense(units)


@pytest.mark.parametrize("arg", ["activation", "recurrent_activation"])
def test_unknown_activation_names_argument_and_value(arg):
    with pytest.raises(ValueError, match=rf"{arg}='tanhh' is not a known activation"):
        L.LSTM(U, **{arg: "tanhh"})
    with pytest.raises(ValueError, match=rf"{arg}='softmax' is not elementwise"):
        rc.cells.GRU(U, **{arg: "softmax"})


def test_dense_activation():
    with pytest.raises(ValueError, match=r"activation='relux' is not a known activation"):
        L.Dense(2, activation="relux")
    with pytest.raises(ValueError, match=r"activation='glu'"):
        L.Dense(2, activation="glu")
    L.Dense(2, activation="softmax")  # last-axis activations are fine for Dense


@pytest.mark.parametrize("arg", ["kernel_initializer", "recurrent_initializer", "bias_initializer"])
@pytest.mark.parametrize("make", [L.SimpleRNN, L.GRU, rc.cells.LSTM])
def test_unknown_initializer_names_argument_and_value(make, arg):
    with pytest.raises(ValueError, match=rf"{arg}='glorot' is not a known initializer"):
        make(U, **{arg: "glorot"})


@pytest.mark.parametrize("arg", ["norm_gamma_initializer", "norm_beta_initializer"])
def test_layernorm_initializers(arg):
    with pytest.raises(ValueError, match=rf"{arg}='unit' is not a known initializer"):
        rc.cells.LayerNormLSTM(U, **{arg: "unit"})
    with pytest.raises(ValueError, match=r"norm_epsilon=0; expected a positive float"):
        rc.cells.LayerNormLSTM(U, norm_epsilon=0)


@pytest.mark.parametrize("arg", ["kernel_initializer", "bias_initializer"])
def test_dense_initializer(arg):
    with pytest.raises(ValueError, match=rf"{arg}='glorot' is not a known initializer"):
        L.Dense(2, **{arg: "glorot"})


@pytest.mark.parametrize("mode", ["max", "avg", "", "Concat"])
def test_bidirectional_merge_mode(mode):
    match = rf"merge_mode='{mode}'; expected one of 'concat', 'sum', 'ave', 'mul' or None"
    with pytest.raises(ValueError, match=match):
        L.Bidirectional(L.LSTM(U), merge_mode=mode)


def test_bidirectional_needs_a_recurrent_layer():
    with pytest.raises(ValueError, match=r"Bidirectional needs a recurrent layer; got Dense"):
        L.Bidirectional(L.Dense(U))


def test_return_state_layer_must_be_last():
    with pytest.raises(ValueError, match=r"layers\[0\] \(LSTM\) has return_state=True; only the last layer"):
        rc.Sequential([L.LSTM(U, return_state=True), L.Dense(1)])
    with pytest.raises(ValueError, match=r"layers\[1\] \(Bidirectional\) has return_state=True"):
        rc.Sequential([L.GRU(U, return_sequences=True), L.Bidirectional(L.GRU(U, return_state=True)), L.Dense(1)])
    rc.Sequential([L.GRU(U, return_sequences=True), L.LSTM(U, return_state=True)])  # last: fine


def test_sequential_construction():
    with pytest.raises(ValueError, match=r"Sequential needs at least one layer"):
        rc.Sequential([])
    with pytest.raises(ValueError, match=r"layers\[1\] \(str\) is not an rnncore layer"):
        rc.Sequential([L.GRU(U), "dense"])
    with pytest.raises(ValueError, match=r"input_shape must be \(time, features\) without the batch; got \(2, 5, 3\)"):
        rc.Sequential([L.GRU(U)]).init(KEY, (B, T, F))


# --- params -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 2, 4])
def test_sequential_params_of_wrong_length(model, n):
    m, params = model
    bad = (params * 2)[:n]
    match = rf"params must be a tuple with one entry per layer \(3\); got {n}"
    with pytest.raises(ValueError, match=match):
        m.apply(bad, x_ok())
    with pytest.raises(ValueError, match=match):
        jax.jit(m.apply)(bad, x_ok())


def test_sequential_params_not_a_tuple(model):
    m, params = model
    with pytest.raises(ValueError, match=r"params must be a tuple with one entry per layer \(3\); got dict"):
        m.apply({"a": params[0]}, x_ok())


def test_layer_params_of_wrong_length(lstm):
    layer, p = lstm
    with pytest.raises(ValueError, match=r"params.bias for LSTM\(units=4\) must be shape \(16,\); got None"):
        layer.apply(p[:2], x_ok())  # the bias left out while use_bias=True
    expected = r"must be LSTMParams\(kernel, recurrent_kernel, bias\)"
    with pytest.raises(ValueError, match=rf"params for LSTM {expected}; got 4 arrays"):
        jax.jit(layer.apply)(tuple(p) + (p.bias,), x_ok())
    with pytest.raises(ValueError, match=rf"params for LSTM {expected}; got 0 arrays"):
        layer.apply((), x_ok())
    gru = L.GRU(U)
    as_dict = dict(gru.init(KEY, (T, F))._asdict())
    with pytest.raises(
        ValueError, match=r"params for GRU must be GRUParams\(kernel, recurrent_kernel, bias\); got dict"
    ):
        gru.apply(as_dict, x_ok())
    # Keras's get_weights() order as a plain list works, for use_bias=False too
    assert layer.apply(list(p), x_ok()).shape == (B, T, U)
    nb = L.LSTM(U, use_bias=False)
    assert nb.apply(list(nb.init(KEY, (T, F)))[:2], x_ok()).shape == (B, U)
    with pytest.raises(ValueError, match=r"params.bias for LSTM\(units=4\) must be None; got shape \(16,\)"):
        nb.apply(p, x_ok())


def test_layer_params_of_wrong_shape(lstm):
    layer, p = lstm
    other = L.LSTM(U + 1).init(KEY, (T, F))
    match = r"params.kernel for LSTM\(units=4\) must be shape \(3, 16\); got shape \(3, 20\)"
    with pytest.raises(ValueError, match=match):
        layer.apply(other, x_ok())
    match = r"params.recurrent_kernel for LSTM\(units=4\) must be shape \(4, 16\); got shape \(4, 12\)"
    with pytest.raises(ValueError, match=match):
        jax.jit(layer.apply)(p._replace(recurrent_kernel=p.recurrent_kernel[:, :12]), x_ok())
    with pytest.raises(ValueError, match=r"params.kernel for LSTM must be 2-D \(input_dim, ...\); got shape \(48,\)"):
        layer.apply(p._replace(kernel=p.kernel.reshape(-1)), x_ok())
    gru = L.GRU(U, reset_after=True)
    gp = gru.init(KEY, (T, F))
    with pytest.raises(ValueError, match=r"params.bias for GRU\(units=4\) must be shape \(2, 12\); got shape \(12,\)"):
        gru.apply(gp._replace(bias=gp.bias[0]), x_ok())


def test_params_in_sequential_are_checked_per_layer(model):
    m, params = model
    swapped = (params[1], params[0], params[2])
    with pytest.raises(ValueError, match=r"params.kernel for LSTM\(units=4\) must be shape"):
        m.apply(swapped, x_ok())


# --- NaN inputs: a NaN result, documented, not an error ----------------------------------------------------


@pytest.mark.parametrize("layer_type", [L.SimpleRNN, L.LSTM, L.GRU, L.LayerNormLSTM])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_nan_propagates_from_its_step_on_in_its_row_only(layer_type, go_backwards):
    rows, steps = 3, 6
    layer = layer_type(U, return_sequences=True, return_state=True, go_backwards=go_backwards)
    p = layer.init(KEY, (steps, F))
    x = np.random.default_rng(1).normal(size=(rows, steps, F)).astype(np.float32)
    y_ref, *s_ref = layer.apply(p, jnp.asarray(x))
    b, t = 1, 2
    x_nan = x.copy()
    x_nan[b, t, 0] = np.nan
    y, *s = layer.apply(p, jnp.asarray(x_nan))
    y, y_ref = np.asarray(y), np.asarray(y_ref)
    k = steps - 1 - t if go_backwards else t  # the processing step that consumes x[:, t]
    assert np.all(np.isnan(y[b, k:]))  # every unit, from that step on
    np.testing.assert_array_equal(y[b, :k], y_ref[b, :k])  # earlier steps untouched
    others = [r for r in range(rows) if r != b]
    np.testing.assert_array_equal(y[others], y_ref[others])  # other rows untouched
    for a, a_ref in zip(s, s_ref):
        assert np.all(np.isnan(np.asarray(a)[b]))
        np.testing.assert_array_equal(np.asarray(a)[others], np.asarray(a_ref)[others])


@pytest.mark.parametrize("layer_type", [L.SimpleRNN, L.LSTM, L.GRU])
def test_nan_at_a_masked_step_does_not_leak(layer_type):
    rows, steps = 3, 6
    layer = layer_type(U, return_sequences=True, return_state=True)
    p = layer.init(KEY, (steps, F))
    x = np.random.default_rng(2).normal(size=(rows, steps, F)).astype(np.float32)
    mask = np.ones((rows, steps), bool)
    mask[1, 2] = False  # a masked step inside the sequence
    mask[2, 4:] = False  # post-padding
    x_nan = x.copy()
    x_nan[1, 2, :] = np.nan
    x_nan[2, 4:, 1] = np.nan
    y_ref, *s_ref = layer.apply(p, jnp.asarray(x), mask=jnp.asarray(mask))
    y, *s = layer.apply(p, jnp.asarray(x_nan), mask=jnp.asarray(mask))
    assert np.all(np.isfinite(np.asarray(y)))
    np.testing.assert_array_equal(y, y_ref)
    for a, a_ref in zip(s, s_ref):
        assert np.all(np.isfinite(np.asarray(a)))
        np.testing.assert_array_equal(a, a_ref)
    # the state is carried over the masked step: the output there repeats the previous one
    np.testing.assert_array_equal(np.asarray(y)[1, 2], np.asarray(y)[1, 1])
    np.testing.assert_array_equal(np.asarray(y)[2, 5], np.asarray(y)[2, 3])


def test_nan_behaviour_is_documented():
    doc = L.__doc__
    assert "NaN" in doc and "masked step" in doc


def test_numpy_integer_units_are_accepted_as_int():
    """Keras accepts NumPy integers for units; the cell stores a Python int (hashable, static)."""
    cell = rc.cells.LSTM(np.int64(3))
    assert type(cell.units) is int and cell == rc.cells.LSTM(3)
    assert rc.layers.Dense(np.int32(2)).units == 2
