"""Conv1D against Keras 3 (float32, random asymmetric weights, outputs and gradients) and against a
NumPy loop of its formula (float64)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import max_rel_err, random_like
from covering import only
from layer_oracles import keras_grads, projection, rnncore_grads

import rnncore as rc
from rnncore.layers.convolution import conv_padding

# (filters, kernel_size, strides, padding, dilation_rate, groups, activation, use_bias)
CASES = [
    (3, 3, 1, "valid", 1, 1, None, True),
    (4, 3, 1, "same", 1, 1, "tanh", True),
    (4, 4, 2, "same", 1, 2, None, False),
    (3, 2, 3, "valid", 1, 1, "relu", True),
    (5, 3, 1, "causal", 2, 1, None, True),
    (4, 2, 1, "causal", 1, 4, "sigmoid", True),
    (2, 5, 1, "same", 2, 2, None, True),
    (3, 4, 2, "causal", 1, 1, "softmax", True),
]
T, C, B = 9, 4, 2


def _conv_loop(x, kernel, bias, strides, padding, dilation, groups):
    """The module docstring's formula as loops (x (B, T, C), kernel (k, C/g, F))."""
    k, cg, filters = kernel.shape
    left, right = conv_padding(x.shape[1], k, strides, dilation, padding)
    xp = np.pad(x, ((0, 0), (left, right), (0, 0)))
    out_len = (xp.shape[1] - (k - 1) * dilation - 1) // strides + 1
    fg = filters // groups
    y = np.zeros((x.shape[0], out_len, filters), x.dtype)
    for t in range(out_len):
        for f in range(filters):
            g = f // fg
            for j in range(k):
                y[:, t, f] += xp[:, t * strides + j * dilation, g * cg : (g + 1) * cg] @ kernel[j, :, f]
    return y if bias is None else y + bias


CASE_IDS = [f"{c[3]}-k{c[1]}-s{c[2]}-d{c[4]}-g{c[5]}" for c in CASES]
# by default every padding, kernel size, stride, dilation, group count, activation and use_bias
DEFAULT_CASES = [
    "same-k3-s1-d1-g1",
    "same-k4-s2-d1-g2",
    "valid-k2-s3-d1-g1",
    "causal-k2-s1-d1-g4",
    "same-k5-s1-d2-g2",
    "causal-k4-s2-d1-g1",
]


@pytest.mark.parametrize("case", only([(c,) for c in CASES], keep=DEFAULT_CASES, ids=CASE_IDS))
def test_conv1d_matches_keras(keras, case):
    filters, k, s, padding, d, g, act, bias = case
    rng = np.random.default_rng(CASES.index(case))
    klayer = keras.layers.Conv1D(
        filters, k, strides=s, padding=padding, dilation_rate=d, groups=g, activation=act, use_bias=bias
    )
    x = rng.normal(size=(B, T, C)).astype("float32")
    klayer.build((None, T, C))
    weights = random_like(rng, klayer.get_weights())
    layer = rc.layers.Conv1D(
        filters, k, strides=s, padding=padding, dilation_rate=d, groups=g, activation=act, use_bias=bias
    )
    out_shape = layer.compute_output_shape((T, C))
    assert (None,) + out_shape == tuple(klayer.compute_output_shape((None, T, C)))
    proj = projection(rng, (B,) + out_shape)
    y_k, dx_k, dw_k = keras_grads(klayer, weights, jnp.asarray(x), proj)
    params = rc.layers.Conv1DParams(*weights) if bias else rc.layers.Conv1DParams(weights[0])
    y, dx, dp = rnncore_grads(layer, params, jnp.asarray(x), proj)
    assert y.shape == y_k.shape
    assert max_rel_err(y, y_k) < 2e-6
    assert max_rel_err(dx, dx_k) < 2e-6
    for a, b in zip([w for w in dp if w is not None], dw_k):
        assert max_rel_err(a, b) < 2e-6


def test_conv1d_float64_equals_loop_formula_and_its_gradient(x64):
    rng = np.random.default_rng(1)
    for filters, k, s, padding, d, g, _, bias in CASES:
        layer = rc.layers.Conv1D(filters, k, strides=s, padding=padding, dilation_rate=d, groups=g, use_bias=bias)
        kernel = rng.normal(size=(k, C // g, filters))
        b = rng.normal(size=(filters,)) if bias else None
        x = rng.normal(size=(B, T, C))
        y = layer.apply(rc.layers.Conv1DParams(jnp.asarray(kernel), None if b is None else jnp.asarray(b)), x)
        assert y.dtype == jnp.float64
        assert max_rel_err(y, _conv_loop(x, kernel, b, s, padding, d, g)) < 1e-12
    # the gradient of the layer equals the gradient of the loop written in jnp, term by term
    layer = rc.layers.Conv1D(3, 3, padding="causal", dilation_rate=2, groups=1)
    p = layer.init(jax.random.PRNGKey(0), (T, C), jnp.float64)
    p = p._replace(kernel=jnp.asarray(rng.normal(size=p.kernel.shape)), bias=jnp.asarray(rng.normal(size=(3,))))
    x = jnp.asarray(rng.normal(size=(B, T, C)))
    proj = jnp.asarray(rng.normal(size=(B, T, 3)))

    def loop(kernel, bias, x):
        xp = jnp.pad(x, ((0, 0), (4, 0), (0, 0)))
        y = jnp.stack([sum(xp[:, t + 2 * j] @ kernel[j] for j in range(3)) for t in range(T)], axis=1)
        return jnp.sum((y + bias) * proj)

    g_loop = jax.grad(loop, argnums=(0, 1, 2))(p.kernel, p.bias, x)
    g_layer = jax.grad(lambda p, x: jnp.sum(layer.apply(p, x) * proj), argnums=(0, 1))(p, x)
    assert max_rel_err(g_layer[0].kernel, g_loop[0]) < 1e-12
    assert max_rel_err(g_layer[0].bias, g_loop[1]) < 1e-12
    assert max_rel_err(g_layer[1], g_loop[2]) < 1e-12


def test_conv1d_padding_arithmetic_matches_keras_output_lengths(keras):
    for length in (1, 2, 5, 8):
        for k, s, d in ((1, 1, 1), (3, 1, 1), (3, 2, 1), (4, 3, 1), (2, 1, 3)):
            for padding in ("valid", "same", "causal"):
                if padding == "valid" and length < (k - 1) * d + 1:
                    continue
                layer = rc.layers.Conv1D(2, k, strides=s, padding=padding, dilation_rate=d)
                want = keras.layers.Conv1D(2, k, strides=s, padding=padding, dilation_rate=d).compute_output_shape(
                    (None, length, 3)
                )
                assert layer.compute_output_shape((length, 3)) == tuple(want[1:])


def test_conv1d_ignores_and_drops_a_mask_as_keras(keras):
    """Keras's Conv1D does not support masking: a Masking layer's mask is dropped before it, so a
    GlobalAveragePooling1D after it averages every step."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 6, 3)).astype("float32")
    x[0, 4:] = 0.0
    kmodel = keras.Sequential(
        [
            keras.Input((6, 3)),
            keras.layers.Masking(),
            keras.layers.Conv1D(4, 2, padding="same"),
            keras.layers.GlobalAveragePooling1D(),
        ]
    )
    kmodel.set_weights(random_like(rng, kmodel.get_weights()))
    conv = rc.layers.Conv1D(4, 2, padding="same")
    assert conv.supports_masking is False
    mask = jnp.asarray(np.any(x != 0, axis=-1))
    assert conv.compute_mask(x, mask) is None
    p = rc.layers.Conv1DParams(*kmodel.layers[1].get_weights())
    h = rc.layers.Masking().apply((), x)
    y = conv.apply(p, h, mask)
    assert max_rel_err(y, conv.apply(p, h)) == 0
    out = rc.layers.GlobalAveragePooling1D().apply((), y, conv.compute_mask(h, mask))
    assert max_rel_err(out, kmodel(x)) < 2e-6


def test_conv1d_init_is_keras_glorot_on_the_kernel_fans():
    layer = rc.layers.Conv1D(8, 3, groups=2)
    p = layer.init(jax.random.PRNGKey(0), (None, 6))
    assert p.kernel.shape == (3, 3, 8) and p.bias.shape == (8,)
    limit = np.sqrt(6 / (3 * 3 + 3 * 8))
    assert float(jnp.abs(p.kernel).max()) <= limit and float(jnp.abs(p.kernel).max()) > 0.5 * limit
    assert layer.compute_output_shape((None, 6)) == (None, 8)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"filters": 0, "kernel_size": 3}, "Conv1D filters=0; expected a positive integer"),
        ({"filters": 2, "kernel_size": (3, 3)}, r"Conv1D kernel_size=\(3, 3\); expected a positive integer"),
        ({"filters": 2, "kernel_size": 3, "padding": "full"}, "Conv1D padding='full'; expected one of"),
        ({"filters": 2, "kernel_size": 3, "strides": 2, "dilation_rate": 2}, "strides=2 with dilation_rate=2"),
        ({"filters": 3, "kernel_size": 3, "groups": 2}, "filters=3; expected a multiple of groups=2"),
        ({"filters": 2, "kernel_size": 3, "data_format": "channels_first"}, "data_format='channels_first' is not"),
        ({"filters": 2, "kernel_size": 3, "activation": "nope"}, "activation='nope' is not a known activation"),
    ],
)
def test_conv1d_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        rc.layers.Conv1D(**kwargs)


def test_conv1d_bad_inputs():
    layer = rc.layers.Conv1D(2, 3, groups=2)
    with pytest.raises(ValueError, match="input channels=3; expected a multiple of groups=2"):
        layer.init(jax.random.PRNGKey(0), (5, 3))
    p = layer.init(jax.random.PRNGKey(0), (5, 4))
    with pytest.raises(ValueError, match=r"channels=4\); got shape \(2, 5, 3\)"):
        layer.apply(p, jnp.ones((2, 5, 3)))
    with pytest.raises(ValueError, match=r"got shape \(5, 4\)"):
        layer.apply(p, jnp.ones((5, 4)))
    with pytest.raises(ValueError, match="input length 2 is shorter than the kernel's span 3"):
        layer.apply(p, jnp.ones((1, 2, 4)))
    with pytest.raises(ValueError, match=r"params.kernel for Conv1D must have shape \(3, 2, 2\)"):
        layer.apply(p._replace(kernel=jnp.ones((2, 2, 2))), jnp.ones((1, 5, 4)))
