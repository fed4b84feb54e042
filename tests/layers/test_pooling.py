"""The 1-D poolings against Keras 3 (float32: outputs and input gradients, masks where Keras reads
them) and against NumPy loops of their formulas (float64)."""

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import max_rel_err
from layer_oracles import keras_grads, projection, rnncore_grads

import rnncore as rc
from rnncore.layers.convolution import conv_padding

B, T, C = 3, 7, 4
WINDOWED = [(2, None, "valid"), (3, 2, "valid"), (2, 1, "same"), (3, None, "same"), (4, 3, "same"), (5, 2, "same")]


def _pool_loop(x, pool, strides, padding, op):
    strides = strides or pool
    left, right = conv_padding(x.shape[1], pool, strides, 1, padding)
    out_len = (x.shape[1] + left + right - pool) // strides + 1
    y = np.zeros((x.shape[0], out_len, x.shape[2]), x.dtype)
    for t in range(out_len):
        lo, hi = t * strides - left, t * strides - left + pool
        window = x[:, max(lo, 0) : min(hi, x.shape[1])]  # the real entries only
        y[:, t] = window.max(axis=1) if op == "max" else window.mean(axis=1)
    return y


KINDS = ["MaxPooling1D", "AveragePooling1D"]
# by default each window case once, the kinds alternating (each kind with both paddings); the rest slow
WINDOWED_CASES = [
    pytest.param(
        kind, case, marks=() if i % 2 == j else (pytest.mark.slow,), id=f"p{case[0]}-s{case[1]}-{case[2]}-{kind}"
    )
    for i, case in enumerate(WINDOWED)
    for j, kind in enumerate(KINDS)
]


@pytest.mark.parametrize("kind, case", WINDOWED_CASES)
def test_windowed_pooling_matches_keras(keras, kind, case):
    pool, strides, padding = case
    rng = np.random.default_rng(WINDOWED.index(case))
    x = jnp.asarray(rng.normal(size=(B, T, C)).astype("float32"))
    klayer = getattr(keras.layers, kind)(pool_size=pool, strides=strides, padding=padding)
    layer = getattr(rc.layers, kind)(pool_size=pool, strides=strides, padding=padding)
    shape = layer.compute_output_shape((T, C))
    assert (None,) + shape == tuple(klayer.compute_output_shape((None, T, C)))
    proj = projection(rng, (B,) + shape)
    y_k, dx_k, _ = keras_grads(klayer, [], x, proj)
    y, dx, _ = rnncore_grads(layer, (), x, proj)
    assert y.shape == y_k.shape
    assert max_rel_err(y, y_k) < 1e-6
    assert max_rel_err(dx, dx_k) < 1e-6


@pytest.mark.parametrize("kind", ["GlobalMaxPooling1D", "GlobalAveragePooling1D"])
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pooling_matches_keras(keras, kind, keepdims):
    rng = np.random.default_rng(7)
    x = jnp.asarray(rng.normal(size=(B, T, C)).astype("float32"))
    klayer = getattr(keras.layers, kind)(keepdims=keepdims)
    layer = getattr(rc.layers, kind)(keepdims=keepdims)
    shape = layer.compute_output_shape((T, C))
    assert (None,) + shape == tuple(klayer.compute_output_shape((None, T, C)))
    proj = projection(rng, (B,) + shape)
    y_k, dx_k, _ = keras_grads(klayer, [], x, proj)
    y, dx, _ = rnncore_grads(layer, (), x, proj)
    assert max_rel_err(y, y_k) < 1e-6
    assert max_rel_err(dx, dx_k) < 1e-6


@pytest.mark.parametrize("keepdims", [False, True])
def test_global_average_pooling_averages_the_real_steps_as_keras(keras, keepdims):
    rng = np.random.default_rng(8)
    x = jnp.asarray(rng.normal(size=(B, T, C)).astype("float32"))
    mask = jnp.asarray(rng.random((B, T)) < 0.6).at[:, 0].set(True)
    klayer = keras.layers.GlobalAveragePooling1D(keepdims=keepdims)
    layer = rc.layers.GlobalAveragePooling1D(keepdims=keepdims)
    proj = projection(rng, (B,) + layer.compute_output_shape((T, C)))
    y_k, dx_k, _ = keras_grads(klayer, [], x, proj, mask=mask)
    y, dx, _ = rnncore_grads(layer, (), x, proj, mask=mask)
    assert max_rel_err(y, y_k) < 1e-6
    assert max_rel_err(dx, dx_k) < 1e-6
    assert layer.compute_mask(x, mask) is None and klayer.compute_mask(x, mask) is None
    # a row with every step masked is 0/0, as in Keras
    none = mask.at[0].set(False)
    assert np.isnan(np.asarray(layer.apply((), x, none))[0]).all()
    assert np.isnan(np.asarray(klayer(x, mask=none))[0]).all()


@pytest.mark.parametrize("kind", ["MaxPooling1D", "AveragePooling1D", "GlobalMaxPooling1D"])
def test_poolings_without_masking_drop_the_mask_as_keras(keras, kind):
    """Keras: these layers do not support masking; after Masking the mask is dropped (a warning)
    and they compute over every step, masked ones included."""
    rng = np.random.default_rng(9)
    x = rng.normal(size=(2, 6, 3)).astype("float32")
    x[0, 3:] = 0.0
    x[1, :2] = 0.0
    klayer = getattr(keras.layers, kind)(**({"pool_size": 2} if kind == "AveragePooling1D" else {}))
    kmodel = keras.Sequential([keras.Input((6, 3)), keras.layers.Masking(), klayer])
    layer = getattr(rc.layers, kind)(**({"pool_size": 2} if kind == "AveragePooling1D" else {}))
    assert layer.supports_masking is False
    mask = rc.layers.Masking().compute_mask(x, None)
    y = layer.apply((), rc.layers.Masking().apply((), x), mask)
    assert layer.compute_mask(x, mask) is None
    with pytest.warns(UserWarning, match="does not support masking"):
        y_k = kmodel(x)
    assert max_rel_err(y, y_k) < 1e-6


def test_poolings_float64_equal_loop_formulas(x64):
    rng = np.random.default_rng(10)
    x = rng.normal(size=(B, T, C))
    for pool, strides, padding in WINDOWED:
        for kind, op in (("MaxPooling1D", "max"), ("AveragePooling1D", "mean")):
            y = getattr(rc.layers, kind)(pool, strides, padding).apply((), x)
            assert y.dtype == jnp.float64
            assert max_rel_err(y, _pool_loop(x, pool, strides, padding, op)) < 1e-12
    mask = rng.random((B, T)) < 0.5
    mask[:, 2] = True
    want = np.stack([x[b][mask[b]].mean(axis=0) for b in range(B)])
    assert max_rel_err(rc.layers.GlobalAveragePooling1D().apply((), x, mask), want) < 1e-12
    assert max_rel_err(rc.layers.GlobalMaxPooling1D(keepdims=True).apply((), x), x.max(axis=1, keepdims=True)) == 0


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: rc.layers.MaxPooling1D(0), "MaxPooling1D pool_size=0; expected a positive integer"),
        (lambda: rc.layers.AveragePooling1D(2, padding="causal"), "AveragePooling1D padding='causal'; expected one"),
        (lambda: rc.layers.MaxPooling1D(2, strides=(1, 2)), r"MaxPooling1D strides=\(1, 2\); expected a positive"),
        (lambda: rc.layers.GlobalMaxPooling1D(data_format="channels_first"), "data_format='channels_first' is not"),
        (lambda: rc.layers.AveragePooling1D(), "AveragePooling1D needs pool_size"),
        (lambda: rc.layers.GlobalAveragePooling1D(keepdims=1), "keepdims=1; expected True or False"),
    ],
)
def test_pooling_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_pooling_bad_inputs():
    with pytest.raises(ValueError, match="input length 2 is shorter than pool_size=3"):
        rc.layers.MaxPooling1D(3).apply((), jnp.ones((1, 2, 4)))
    with pytest.raises(ValueError, match=r"AveragePooling1D inputs must be floating \(batch, time, channels\)"):
        rc.layers.AveragePooling1D(2).apply((), jnp.ones((4, 2)))
    with pytest.raises(ValueError, match=r"mask must have shape \(batch, time\) = \(1, 5\)"):
        rc.layers.GlobalAveragePooling1D().apply((), jnp.ones((1, 5, 2)), jnp.ones((1, 4), bool))
    with pytest.raises(ValueError, match=r"input_shape=\(5,\); expected \(time, channels\)"):
        rc.layers.GlobalMaxPooling1D().compute_output_shape((5,))
