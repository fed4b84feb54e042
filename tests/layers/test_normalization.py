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
    pytest.param((3, 5, 4), {"axis": 1}, marks=pytest.mark.slow),
    ((3, 5, 4), {"axis": [-1, 1]}),  # Keras sorts the raw list and lays gamma on by a reshape
    ((3, 5, 4), {"center": False}),
    pytest.param((3, 5, 4), {"scale": False, "epsilon": 0.1}, marks=pytest.mark.slow),
    pytest.param((3, 5, 4), {"center": False, "scale": False}, marks=pytest.mark.slow),
    pytest.param((3, 5, 4), {"rms_scaling": True}, marks=pytest.mark.slow),
    ((3, 5, 4), {"rms_scaling": True, "scale": False, "axis": [1, 2]}),
    pytest.param((6, 4), {}, marks=pytest.mark.slow),
    ((2, 3, 4, 5), {"axis": [2, 3]}),
    pytest.param((2, 3, 4, 5), {"axis": -2}, marks=pytest.mark.slow),
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
@pytest.mark.parametrize("shape,kwargs", CASES)
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
    for case in CASES:
        shape, kwargs = case.values if hasattr(case, "values") else case
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


# --- BatchNormalization -----------------------------------------------------------------------------

BN_CASES = [  # (input shape with batch, kwargs, masked)
    ((4, 5, 3), {}, False),
    ((4, 5, 3), {}, True),
    pytest.param((4, 5, 3), {"axis": 1, "momentum": 0.8}, False, marks=pytest.mark.slow),
    ((4, 5, 3), {"axis": 1}, True),
    pytest.param((6, 3), {"epsilon": 0.1}, False, marks=pytest.mark.slow),
    ((6, 3), {"center": False}, True),
    ((4, 5, 3), {"scale": False, "momentum": 0.5}, True),
    pytest.param((2, 3, 4, 3), {"axis": 2}, False, marks=pytest.mark.slow),
]


def bn_case(keras, shape, kwargs, masked, seed=21):
    rng = np.random.default_rng(seed)
    k = keras.layers.BatchNormalization(**kwargs)
    k.build(shape)
    weights = [(rng.normal(size=w.shape) * 0.6 + 0.4).astype("float32") for w in k.get_weights()]
    weights[-1] = np.abs(weights[-1]) + 0.2  # a variance
    k.set_weights(weights)
    x = (rng.normal(size=shape) * 1.5 + 0.7).astype("float32")
    mask = None
    if masked:
        mask = rng.random(shape[:-1]) < 0.7
        mask.flat[0] = True
    r = layers.BatchNormalization(**kwargs)
    it = iter(jnp.asarray(w) for w in weights)
    p = layers.BatchNormalizationParams(
        next(it) if r.scale else None, next(it) if r.center else None, next(it), next(it)
    )
    return k, r, p, x, mask


def _bn_cases():
    """BN_CASES with training=False and True: the first two (unmasked, masked) both ways by default,
    the other default ones in training mode only (inference once more with ``-m slow``)."""
    out = []
    for i, case in enumerate(BN_CASES):
        values, marks = (case.values, case.marks) if hasattr(case, "values") else (case, ())
        for training in (False, True):
            slow = marks or (i >= 2 and not training)
            marks = (pytest.mark.slow,) if slow else ()
            out.append(pytest.param(*values, training, marks=marks, id=f"shape{i}-kwargs{i}-{values[2]}-{training}"))
    return out


@pytest.mark.parametrize("shape,kwargs,masked,training", _bn_cases())
def test_batch_normalization_matches_keras(keras, shape, kwargs, masked, training):
    k, r, p, x, mask = bn_case(keras, shape, kwargs, masked)
    call = {"training": training} if mask is None else {"training": training, "mask": mask}
    ky, kgx, kgw, k_frozen = keras_run(k, x, **call)
    ry, rgx, rgp = rc_run(r, p, jnp.asarray(x), **call)
    assert max_rel_err(ry, ky) <= 1e-6
    assert max_rel_err(rgx, kgx) <= 1e-5
    got = [g for g in (rgp.gamma, rgp.beta) if g is not None]
    assert len(got) == len(kgw)
    for a, b in zip(got, kgw):
        assert max_rel_err(a, b) <= 1e-5
    updated = r.moving_statistics(p, x, mask) if training else p
    assert max_rel_err(updated.moving_mean, k_frozen[0]) <= 1e-6
    assert max_rel_err(updated.moving_variance, k_frozen[1]) <= 1e-6
    if training:
        y2, p2 = r.apply_and_update(p, x, mask)
        np.testing.assert_array_equal(np.asarray(y2), np.asarray(ry))
        np.testing.assert_array_equal(np.asarray(p2.moving_mean), np.asarray(updated.moving_mean))
    assert r.compute_mask(x, mask) is mask


def test_batch_normalization_moving_statistics_follow_keras_over_steps(keras):
    """Three training steps of the layer alone: Keras's assigned variables against the pure update."""
    k, r, p, x, mask = bn_case(keras, (4, 5, 3), {"momentum": 0.7}, True)
    rng = np.random.default_rng(22)
    for step in range(3):
        xs = (x + rng.normal(size=x.shape) * step).astype("float32")
        k(xs, training=True, mask=mask)
        p = r.moving_statistics(p, xs, mask)
        assert max_rel_err(p.moving_mean, k.moving_mean.value) <= 1e-6
        assert max_rel_err(p.moving_variance, k.moving_variance.value) <= 1e-6


def test_batch_normalization_init_matches_keras(keras):
    for case in BN_CASES:
        shape, kwargs, _ = case.values if hasattr(case, "values") else case
        k = keras.layers.BatchNormalization(**kwargs)
        k.build(shape)
        p = layers.BatchNormalization(**kwargs).init(jax.random.PRNGKey(0), shape[1:])
        mine = [np.asarray(w) for w in p if w is not None]
        assert len(mine) == len(k.get_weights())
        for a, b in zip(mine, k.get_weights()):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("masked", [False, True])
def test_batch_normalization_float64_against_numpy(x64, masked):
    rng = np.random.default_rng(23)
    x = rng.normal(size=(4, 5, 3)) * 2 + 1
    mask = rng.random((4, 5)) < 0.6 if masked else np.ones((4, 5), bool)
    gamma, beta = rng.normal(size=3), rng.normal(size=3)
    mm, mv = rng.normal(size=3), rng.random(3) + 0.5
    r = layers.BatchNormalization(momentum=0.9, epsilon=0.01)
    p = layers.BatchNormalizationParams(*(jnp.asarray(a) for a in (gamma, beta, mm, mv)))
    sel = x[mask]  # (n, 3): the unmasked positions
    fuzz = 1e-7 if masked else 0.0
    mean = sel.sum(0) / (len(sel) + fuzz)
    var = ((sel - mean) ** 2).sum(0) / (len(sel) + fuzz)
    y, p2 = r.apply_and_update(p, jnp.asarray(x), jnp.asarray(mask) if masked else None)
    assert max_rel_err(y, (x - mean) / np.sqrt(var + 0.01) * gamma + beta) <= 1e-13
    assert max_rel_err(p2.moving_mean, 0.9 * mm + 0.1 * mean) <= 1e-14
    assert max_rel_err(p2.moving_variance, 0.9 * mv + 0.1 * var) <= 1e-14
    y_inf = r.apply(p, jnp.asarray(x))
    assert max_rel_err(y_inf, (x - mm) / np.sqrt(mv + 0.01) * gamma + beta) <= 1e-13

    cot = projection(x.shape, dtype="float64")
    grads = jax.grad(
        lambda x, g, b: jnp.sum(r.apply(p._replace(gamma=g, beta=b), x, mask if masked else None, True) * cot),
        argnums=(0, 1, 2),
    )(jnp.asarray(x), p.gamma, p.beta)

    def plain_loss(x, g, b):
        keep = jnp.asarray(mask)[..., None]
        n = keep.sum((0, 1)) + fuzz
        m = jnp.where(keep, x, 0).sum((0, 1)) / n
        v = jnp.where(keep, (x - m) ** 2, 0).sum((0, 1)) / n
        return jnp.sum(((x - m) / jnp.sqrt(v + 0.01) * g + b) * cot)

    want = jax.grad(plain_loss, argnums=(0, 1, 2))(jnp.asarray(x), p.gamma, p.beta)
    for a, b in zip(grads, want):
        assert max_rel_err(a, b) <= 1e-12


def test_batch_normalization_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match=r"BatchNormalization momentum=1.5; expected a float in \[0, 1\]"):
        layers.BatchNormalization(momentum=1.5)
    with pytest.raises(ValueError, match=r"BatchNormalization axis=\[1\]; expected an integer"):
        layers.BatchNormalization(axis=[1])
    r = layers.BatchNormalization()
    p = r.init(jax.random.PRNGKey(0), (5, 3))
    with pytest.raises(ValueError, match=r"axis=0 includes the batch axis"):
        layers.BatchNormalization(axis=0).init(jax.random.PRNGKey(0), (5, 3))
    with pytest.raises(ValueError, match=r"mask has shape \(2, 4\); expected the inputs' shape without the last"):
        r.apply(p, jnp.ones((2, 5, 3)), mask=jnp.ones((2, 4), bool), training=True)
    with pytest.raises(ValueError, match=r"params.moving_variance has shape \(4,\); expected shape \(3,\)"):
        r.apply(p._replace(moving_variance=jnp.ones(4)), jnp.ones((2, 5, 3)))
    with pytest.raises(ValueError, match=r"params.beta must be None \(center=False\)"):
        layers.BatchNormalization(center=False).apply(p, jnp.ones((2, 5, 3)))
