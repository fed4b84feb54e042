"""rnncore.layers SpatialDropout1D, GaussianNoise, GaussianDropout: the identity at inference as in
Keras; while training, Keras's formula given the noise (the noise read back from Keras's own outputs)
and the noise's statistics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import max_rel_err
from keras_masks import keras_output_mask

from rnncore import layers

SHAPE = (64, 20, 16)  # 1024 (example, channel) pairs, 20480 entries


def inputs(seed=41, shape=SHAPE):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape) + 0.5
    return (np.sign(x) * (np.abs(x) + 0.1)).astype("float32")  # no zeros: the noise can be read back


LAYERS = [
    (layers.SpatialDropout1D(0.3), "SpatialDropout1D", 0.3),
    (layers.GaussianNoise(0.4), "GaussianNoise", 0.4),
    (layers.GaussianDropout(0.2), "GaussianDropout", 0.2),
]
IDS = [c[1] for c in LAYERS]


@pytest.mark.parametrize("layer,cls,arg", LAYERS, ids=IDS)
def test_identity_at_inference_and_mask_as_keras(keras, layer, cls, arg):
    x = inputs()
    k = getattr(keras.layers, cls)(arg, seed=3)
    np.testing.assert_array_equal(np.asarray(layer.apply((), x)), np.asarray(k(x, training=False)))
    np.testing.assert_array_equal(np.asarray(layer.apply((), x, rng=jax.random.PRNGKey(0))), x)
    mask = np.arange(SHAPE[0] * SHAPE[1]).reshape(SHAPE[:2]) % 4 != 0
    np.testing.assert_array_equal(np.asarray(layer.compute_mask(x, mask)), keras_output_mask(k, x, mask))
    assert layer.supports_masking == k.supports_masking
    assert layer.compute_output_shape(SHAPE[1:]) == SHAPE[1:]


@pytest.mark.parametrize("layer,cls,arg", LAYERS, ids=IDS)
def test_keras_training_output_is_the_formula_given_its_noise(keras, layer, cls, arg):
    x = inputs()
    ky = np.asarray(getattr(keras.layers, cls)(arg, seed=5)(x, training=True))
    if cls == "SpatialDropout1D":
        keep = ky[:, :1, :] != 0
        assert np.all((ky != 0) == np.broadcast_to(keep, ky.shape))  # whole channels, as rnncore draws them
        noise = keep
    elif cls == "GaussianNoise":
        noise = ky - x
    else:
        noise = ky / x
    assert max_rel_err(layer.perturb(jnp.asarray(x), jnp.asarray(noise)), ky) <= 1e-6


def _noise_statistics(cls, arg, x, y):
    """(mean, std, count) of the noise that took ``x`` to ``y`` (kept fraction for SpatialDropout1D)."""
    if cls == "SpatialDropout1D":
        kept = y[:, 0, :] != 0
        return kept.mean(), None, kept.size
    noise = y - x if cls == "GaussianNoise" else y / x
    return noise.mean(), noise.std(), noise.size


@pytest.mark.parametrize("layer,cls,arg", LAYERS, ids=IDS)
def test_noise_statistics_match_the_distribution_and_keras(keras, layer, cls, arg):
    x = inputs()
    y = np.asarray(layer.apply((), jnp.asarray(x), training=True, rng=jax.random.PRNGKey(7)))
    ky = np.asarray(getattr(keras.layers, cls)(arg, seed=9)(x, training=True))
    if cls == "SpatialDropout1D":
        want_mean, want_std = 1 - arg, None
    elif cls == "GaussianNoise":
        want_mean, want_std = 0.0, arg
    else:
        want_mean, want_std = 1.0, np.sqrt(arg / (1 - arg))
    for got in (y, ky):
        mean, std, n = _noise_statistics(cls, arg, x, got)
        sd = np.sqrt(want_mean * (1 - want_mean)) if want_std is None else want_std
        assert abs(mean - want_mean) < 4.5 * sd / np.sqrt(n), (mean, want_mean)
        if want_std is not None:
            assert abs(std - want_std) < 4.5 * want_std / np.sqrt(2 * n), (std, want_std)


@pytest.mark.parametrize("layer,cls,arg", LAYERS, ids=IDS)
def test_training_is_perturb_of_draw_in_float64(x64, layer, cls, arg):
    x = jnp.asarray(inputs(shape=(3, 5, 4)), jnp.float64)
    key = jax.random.PRNGKey(11)
    y = layer.apply((), x, training=True, rng=key)
    noise = np.asarray(layer.draw(key, x.shape, x.dtype))
    assert y.dtype == jnp.float64
    xn = np.asarray(x)
    if cls == "SpatialDropout1D":
        assert noise.shape == (3, 1, 4) and noise.dtype == bool
        want = np.where(noise, xn / (1 - arg), 0.0)
    elif cls == "GaussianNoise":
        want = xn + noise
    else:
        want = xn * noise
    assert max_rel_err(y, want) <= 1e-15
    g = jax.grad(lambda x: jnp.sum(layer.apply((), x, training=True, rng=key)))(x)
    dwant = {"SpatialDropout1D": np.broadcast_to(noise / (1 - arg), xn.shape), "GaussianNoise": 1.0}
    assert max_rel_err(g, dwant.get(cls, noise)) <= 1e-15


def test_spatial_dropout_rate_one_drops_everything_and_zero_rates_are_identity():
    x = jnp.asarray(inputs(shape=(2, 3, 4)))
    key = jax.random.PRNGKey(0)
    assert np.all(np.asarray(layers.SpatialDropout1D(1.0).apply((), x, training=True, rng=key)) == 0)
    for layer in (layers.SpatialDropout1D(0.0), layers.GaussianNoise(0.0), layers.GaussianDropout(0.0)):
        np.testing.assert_array_equal(np.asarray(layer.apply((), x, training=True)), np.asarray(x))


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: layers.SpatialDropout1D(1.5), r"SpatialDropout1D rate=1.5; expected a float in \[0, 1\]"),
        (lambda: layers.GaussianNoise(-0.1), r"GaussianNoise stddev=-0.1; expected a float in \[0, 1\]"),
        (lambda: layers.GaussianDropout(1.0), r"GaussianDropout rate=1.0; expected a float in \[0, 1\)"),
    ],
)
def test_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_bad_inputs():
    x = jnp.ones((2, 3, 4))
    with pytest.raises(ValueError, match=r"GaussianNoise: training=True needs rng=jax.random.PRNGKey"):
        layers.GaussianNoise(0.1).apply((), x, training=True)
    with pytest.raises(ValueError, match=r"SpatialDropout1D inputs must have shape \(batch, time, features\)"):
        layers.SpatialDropout1D(0.1).apply((), jnp.ones((2, 3)))
    with pytest.raises(ValueError, match=r"GaussianDropout inputs have dtype int32; expected a floating-point"):
        layers.GaussianDropout(0.1).apply((), jnp.ones((2, 3), jnp.int32))
