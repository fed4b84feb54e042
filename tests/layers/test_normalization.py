"""rnncore.layers.LayerNormalization against keras.layers.LayerNormalization (JAX backend) and a
NumPy formula in float64."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import max_rel_err
from keras_oracle import keras_run, projection, rc_run

from rnncore import layers

CASES = [  # (input shape with batch, kwargs)
    ((3, 5, 4), {}),
    ((3, 5, 4), {"axis": [1, 2]}),
    ((3, 5, 4), {"axis": 1}),
    ((3, 5, 4), {"axis": [-1, 1]}),  # Keras sorts the raw list and lays gamma on by a reshape
    ((3, 5, 4), {"center": False}),
    ((3, 5, 4), {"scale": False, "epsilon": 0.1}),
    ((3, 5, 4), {"center": False, "scale": False}),
    ((3, 5, 4), {"rms_scaling": True}),
    ((3, 5, 4), {"rms_scaling": True, "scale": False, "axis": [1, 2]}),
    ((6, 4), {}),
    ((2, 3, 4, 5), {"axis": [2, 3]}),
    ((2, 3, 4, 5), {"axis": -2}),
]


def keras_layer(keras, shape, kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rms_scaling's deprecation
        layer = keras.layers.LayerNormalization(**kwargs)
    layer.build(shape)
    return layer


def random_weights(rng, layer):
    return [(rng.normal(size=w.shape) * 0.8 + 0.3).astype("float32") for w in layer.get_weights()]


def rc_params(layer, weights):
    it = iter(jnp.asarray(w) for w in weights)
    return layers.LayerNormalizationParams(next(it) if layer.has_gamma else None, next(it) if layer.has_beta else None)


@pytest.mark.filterwarnings("ignore:You passed `rms_scaling=True`")
@pytest.mark.parametrize("shape,kwargs", CASES, ids=[f"{s}-{k}" for s, k in CASES])
def test_matches_keras_outputs_and_gradients(keras, shape, kwargs):
    rng = np.random.default_rng(11)
    k = keras_layer(keras, shape, kwargs)
    weights = random_weights(rng, k)
    k.set_weights(weights)
    x = (rng.normal(size=shape) * 2 + 0.5).astype("float32")
    ky, kgx, kgw, _ = keras_run(k, x)
    r = layers.LayerNormalization(**kwargs)
    p = rc_params(r, weights)
    ry, rgx, rgp = rc_run(r, p, jnp.asarray(x))
    assert max_rel_err(ry, ky) <= 1e-6
    assert max_rel_err(rgx, kgx) <= 1e-5
    got = [g for g in rgp if g is not None]
    assert len(got) == len(kgw)
    for a, b in zip(got, kgw):
        assert max_rel_err(a, b) <= 1e-5
    assert r.compute_output_shape(shape[1:]) == tuple(k.compute_output_shape(shape)[1:])


def test_init_shapes_match_keras_weights(keras):
    for shape, kwargs in CASES:
        k = keras_layer(keras, shape, kwargs)
        r = layers.LayerNormalization(**kwargs)
        p = r.init(jax.random.PRNGKey(0), shape[1:])
        mine = [tuple(w.shape) for w in p if w is not None]
        assert mine == [tuple(w.shape) for w in k.get_weights()], (shape, kwargs)
        for w, kw in zip([w for w in p if w is not None], k.get_weights()):
            np.testing.assert_array_equal(np.asarray(w), kw)  # ones and zeros


def numpy_layer_norm(x, gamma, beta, axes, eps, rms):
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (x if rms else x - mean) / np.sqrt(var + eps)
    return y * (1.0 if gamma is None else gamma) + (0.0 if beta is None else beta)


@pytest.mark.parametrize("rms", [False, True])
def test_float64_against_numpy_and_gradient_of_the_plain_formula(x64, rms):
    rng = np.random.default_rng(12)
    x = rng.normal(size=(3, 5, 4)) * 3 + 1
    r = layers.LayerNormalization(axis=[1, 2], epsilon=0.01, rms_scaling=rms)
    gamma = rng.normal(size=(5, 4))
    beta = None if rms else rng.normal(size=(5, 4))
    p = layers.LayerNormalizationParams(jnp.asarray(gamma), None if beta is None else jnp.asarray(beta))
    y, gx, gp = rc_run(r, p, jnp.asarray(x))
    assert y.dtype == jnp.float64
    assert max_rel_err(y, numpy_layer_norm(x, gamma, beta, (1, 2), 0.01, rms)) <= 1e-13
    cot = projection(y.shape, dtype="float64")

    def plain(x, gamma, beta):  # the textbook formula, written independently of the layer's order
        mean = x.mean(axis=(1, 2), keepdims=True)
        centred = x - mean
        y = (x if rms else centred) / jnp.sqrt((centred**2).mean(axis=(1, 2), keepdims=True) + 0.01) * gamma
        return jnp.sum((y if beta is None else y + beta) * cot)

    want = jax.grad(plain, argnums=(0, 1, 2) if beta is not None else (0, 1))(
        jnp.asarray(x), jnp.asarray(gamma), None if beta is None else jnp.asarray(beta)
    )
    assert max_rel_err(gx, want[0]) <= 1e-12
    assert max_rel_err(gp.gamma, want[1]) <= 1e-12
    if beta is not None:
        assert max_rel_err(gp.beta, want[2]) <= 1e-12


def test_mask_passes_through_and_is_ignored():
    r = layers.LayerNormalization()
    p = r.init(jax.random.PRNGKey(0), (4, 3))
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 4, 3))
    mask = jnp.array([[True, True, False, False], [True, False, True, True]])
    assert r.compute_mask(x, mask) is mask
    np.testing.assert_array_equal(np.asarray(r.apply(p, x, mask=mask)), np.asarray(r.apply(p, x)))


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"axis": 1.5}, r"LayerNormalization axis=1.5; expected an integer"),
        ({"axis": []}, r"LayerNormalization axis=\[\]; expected an integer or a non-empty list"),
        ({"epsilon": -1.0}, r"LayerNormalization epsilon=-1.0; expected a float >= 0"),
        ({"center": 1}, r"LayerNormalization center=1; expected True or False"),
        ({"gamma_initializer": "bogus"}, r"gamma_initializer='bogus'"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        layers.LayerNormalization(**kwargs)


def test_bad_inputs_and_params():
    r = layers.LayerNormalization()
    p = r.init(jax.random.PRNGKey(0), (4, 3))
    with pytest.raises(ValueError, match=r"axis=0 includes the batch axis"):
        layers.LayerNormalization(axis=0).init(jax.random.PRNGKey(0), (4, 3))
    with pytest.raises(ValueError, match=r"axis=3 is out of range for inputs of rank 3"):
        layers.LayerNormalization(axis=3).init(jax.random.PRNGKey(0), (4, 3))
    with pytest.raises(ValueError, match=r"axis=\(1, -2\) names an axis twice"):
        layers.LayerNormalization(axis=[1, -2]).init(jax.random.PRNGKey(0), (4, 3))
    with pytest.raises(ValueError, match=r"axis=1 normalizes an axis of unknown size"):
        layers.LayerNormalization(axis=1).init(jax.random.PRNGKey(0), (None, 3))
    with pytest.raises(ValueError, match=r"params.gamma has shape \(4,\); expected shape \(3,\)"):
        r.apply(layers.LayerNormalizationParams(jnp.ones(4), p.beta), jnp.ones((2, 4, 3)))
    with pytest.raises(ValueError, match=r"params.beta must be None \(center=False"):
        layers.LayerNormalization(center=False).apply(p, jnp.ones((2, 4, 3)))
    with pytest.raises(ValueError, match=r"inputs have dtype int32; expected a floating-point array"):
        r.apply(p, jnp.ones((2, 4, 3), jnp.int32))
