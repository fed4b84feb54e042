"""rnncore.layers Activation, RepeatVector, Flatten, Reshape, Permute against Keras 3 (JAX backend)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import max_rel_err
from keras_masks import keras_output_mask
from keras_oracle import keras_run, rc_run

from rnncore import layers

CASES = [  # (rnncore layer, keras constructor name, args, kwargs, input shape with batch)
    (layers.RepeatVector(4), "RepeatVector", (4,), {}, (3, 5)),
    (layers.Flatten(), "Flatten", (), {}, (3, 4, 5)),
    (layers.Flatten(), "Flatten", (), {}, (3, 2, 4, 5)),
    (layers.Flatten(), "Flatten", (), {}, (3, 5)),
    (layers.Flatten(data_format="channels_first"), "Flatten", (), {"data_format": "channels_first"}, (3, 2, 4, 5)),
    (layers.Reshape((5, 4)), "Reshape", ((5, 4),), {}, (3, 4, 5)),
    (layers.Reshape((-1, 2)), "Reshape", ((-1, 2),), {}, (3, 4, 5)),
    (layers.Reshape((2, -1, 5)), "Reshape", ((2, -1, 5),), {}, (3, 4, 5)),
    (layers.Reshape((20,)), "Reshape", ((20,),), {}, (3, 4, 5)),
    (layers.Permute((2, 1)), "Permute", ((2, 1),), {}, (3, 4, 5)),
    (layers.Permute((3, 1, 2)), "Permute", ((3, 1, 2),), {}, (3, 2, 4, 5)),
    (layers.Activation("relu"), "Activation", ("relu",), {}, (3, 4, 5)),
    pytest.param(layers.Activation("tanh"), "Activation", ("tanh",), {}, (3, 5), marks=pytest.mark.slow),
    (layers.Activation("softmax"), "Activation", ("softmax",), {}, (3, 4, 5)),
    pytest.param(layers.Activation("elu"), "Activation", ("elu",), {}, (3, 4, 5), marks=pytest.mark.slow),
    pytest.param(
        layers.Activation("hard_sigmoid"), "Activation", ("hard_sigmoid",), {}, (3, 4, 5), marks=pytest.mark.slow
    ),
]
IDS = [f"{c[1]}{c[2]}{c[3] or ''}-{c[4]}" for c in (getattr(c, "values", c) for c in CASES)]
# slow: the elementwise activations past relu (each one's values and derivatives: tests/test_activations.py)


@pytest.mark.parametrize("layer,cls,args,kwargs,shape", CASES, ids=IDS)
def test_matches_keras(keras, layer, cls, args, kwargs, shape):
    rng = np.random.default_rng(31)
    x = (rng.normal(size=shape) * 2).astype("float32")
    k = getattr(keras.layers, cls)(*args, **kwargs)
    ky, kgx, _, _ = keras_run(k, x)
    assert layer.init(jax.random.PRNGKey(0), shape[1:]) == ()
    ry, rgx, _ = rc_run(layer, (), jnp.asarray(x))
    assert ry.shape == ky.shape
    assert max_rel_err(ry, ky) <= 1e-6
    assert max_rel_err(rgx, kgx) <= 1e-6
    assert layer.compute_output_shape(shape[1:]) == tuple(k.compute_output_shape(shape))[1:]


@pytest.mark.parametrize("layer,cls,args,kwargs,shape", CASES, ids=IDS)
def test_mask_propagates_as_in_keras(keras, layer, cls, args, kwargs, shape):
    x = np.random.default_rng(32).normal(size=shape).astype("float32")
    mask = np.arange(np.prod(shape[:-1])).reshape(shape[:-1]) % 3 != 1
    k = getattr(keras.layers, cls)(*args, **kwargs)
    want = keras_output_mask(k, x, mask)
    got = layer.compute_mask(jnp.asarray(x), jnp.asarray(mask))
    assert layer.supports_masking == k.supports_masking
    if want is None:
        assert got is None
    else:
        np.testing.assert_array_equal(np.asarray(got), want)


def test_unknown_sizes_in_output_shapes(keras):
    assert layers.Flatten().compute_output_shape((None, 4)) == (None,)
    assert layers.Reshape((-1, 2)).compute_output_shape((None, 4)) == (None, 2)
    assert layers.Permute((2, 1)).compute_output_shape((None, 4)) == (4, None)
    assert layers.Flatten().compute_output_shape(()) == (1,)


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: layers.RepeatVector(0), r"RepeatVector n=0; expected a positive integer"),
        (lambda: layers.Reshape((-1, -1)), r"Reshape target_shape=\(-1, -1\); expected a tuple of non-negative"),
        (lambda: layers.Reshape(5), r"Reshape target_shape=5; expected a tuple"),
        (lambda: layers.Permute((1, 3)), r"Permute dims=\(1, 3\); expected a permutation of 1..k"),
        (lambda: layers.Permute((0, 1)), r"Permute dims=\(0, 1\); expected a permutation"),
        (lambda: layers.Flatten(data_format="nchw"), r"Flatten data_format='nchw'; expected one of"),
        (lambda: layers.Activation("swishy"), r"activation='swishy'"),
    ],
)
def test_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_bad_inputs():
    x = jnp.ones((2, 3, 4))
    with pytest.raises(
        ValueError, match=r"RepeatVector inputs must have shape \(batch, features\); got shape \(2, 3, 4\)"
    ):
        layers.RepeatVector(2).apply((), x)
    with pytest.raises(ValueError, match=r"Reshape target_shape=\(5,\) holds 5 entries; each example has 12"):
        layers.Reshape((5,)).apply((), x)
    with pytest.raises(ValueError, match=r"Reshape target_shape=\(5, -1\) cannot hold the 12 entries"):
        layers.Reshape((5, -1)).apply((), x)
    with pytest.raises(ValueError, match=r"Permute dims=\(2, 1, 3\) needs inputs of rank 4"):
        layers.Permute((2, 1, 3)).apply((), x)
    with pytest.raises(ValueError, match=r"Activation inputs have dtype int32; expected a floating-point array"):
        layers.Activation("relu").apply((), jnp.ones((2, 3), jnp.int32))
    with pytest.raises(ValueError, match=r"RepeatVector input_shape=\(3, 4\); expected \(features,\)"):
        layers.RepeatVector(2).compute_output_shape((3, 4))


def test_float64_against_numpy(x64):
    x = np.random.default_rng(33).normal(size=(3, 4, 5))
    xj = jnp.asarray(x)
    flat = x.reshape(3, -1)
    assert max_rel_err(layers.Flatten().apply((), xj), flat) == 0.0
    assert max_rel_err(layers.Flatten("channels_first").apply((), xj), np.transpose(x, (0, 2, 1)).reshape(3, -1)) == 0.0
    assert max_rel_err(layers.Reshape((2, -1)).apply((), xj), x.reshape(3, 2, 10)) == 0.0
    assert max_rel_err(layers.Permute((2, 1)).apply((), xj), np.transpose(x, (0, 2, 1))) == 0.0
    assert max_rel_err(layers.RepeatVector(3).apply((), xj[:, 0]), np.stack([x[:, 0]] * 3, axis=1)) == 0.0
    e = np.exp(x - x.max(-1, keepdims=True))
    assert max_rel_err(layers.Activation("softmax").apply((), xj), e / e.sum(-1, keepdims=True)) <= 1e-15
    assert max_rel_err(layers.Activation("tanh").apply((), xj), np.tanh(x)) <= 1e-15
    g = jax.grad(lambda x: jnp.sum(layers.Activation("relu").apply((), x) * 2.0))(xj)
    assert max_rel_err(g, 2.0 * (x > 0)) == 0.0
    assert layers.Flatten().apply((), xj).dtype == jnp.float64
