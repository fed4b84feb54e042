"""The merge layers against Keras 3: outputs and input gradients (float32, broadcasting and rank
alignment), the mask each passes on (Keras's compute_mask), Multiply's masked product, float64
against NumPy, and their Keras-converter entries (config in, config out)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import max_rel_err
from layer_oracles import keras_grads, projection, rnncore_grads

import rnncore as rc
from rnncore.interop.keras.context import Context
from rnncore.interop.keras.layer_kinds import KINDS

B, T = 2, 5
# name -> input shapes (batch first)
SHAPES = {
    "equal": [(B, T, 3), (B, T, 3), (B, T, 3)],
    "broadcast": [(B, T, 3), (B, T, 1)],
    "ranks": [(B, T, 3), (B, 3)],  # Keras inserts axes after the batch: (B, 1, 3)
}
ELEMENTWISE = ["Add", "Subtract", "Multiply", "Average"]


def _inputs(rng, shapes, dtype="float32"):
    return [jnp.asarray(rng.normal(size=s).astype(dtype)) for s in shapes]


@pytest.mark.parametrize("kind", ELEMENTWISE)
@pytest.mark.parametrize("case", sorted(SHAPES))
def test_elementwise_merges_match_keras(keras, kind, case):
    shapes = SHAPES[case][:2] if kind == "Subtract" else SHAPES[case]
    rng = np.random.default_rng(ELEMENTWISE.index(kind) + 10 * sorted(SHAPES).index(case))
    xs = _inputs(rng, shapes)
    klayer = getattr(keras.layers, kind)()
    layer = getattr(rc.layers, kind)()
    out = layer.compute_output_shape([s[1:] for s in shapes])
    assert (B,) + out == tuple(klayer.compute_output_shape(shapes))
    proj = projection(rng, (B,) + out)
    y_k, dx_k, _ = keras_grads(klayer, [], xs, proj)
    y, dx, _ = rnncore_grads(layer, (), xs, proj)
    assert y.shape == y_k.shape
    assert max_rel_err(y, y_k) < 1e-6
    for a, b in zip(dx, dx_k):
        assert max_rel_err(a, b) < 1e-6


@pytest.mark.parametrize("axis", [-1, 1, 2])
def test_concatenate_matches_keras(keras, axis):
    rng = np.random.default_rng(20 + axis)
    shapes = {-1: [(B, T, 3), (B, T, 2)], 1: [(B, T, 3), (B, 2, 3)], 2: [(B, T, 1), (B, T, 4)]}[axis]
    xs = _inputs(rng, shapes)
    klayer = keras.layers.Concatenate(axis=axis)
    layer = rc.layers.Concatenate(axis=axis)
    out = layer.compute_output_shape([s[1:] for s in shapes])
    assert (B,) + out == tuple(klayer.compute_output_shape(shapes))
    proj = projection(rng, (B,) + out)
    y_k, dx_k, _ = keras_grads(klayer, [], xs, proj)
    y, dx, _ = rnncore_grads(layer, (), xs, proj)
    assert max_rel_err(y, y_k) < 1e-6
    for a, b in zip(dx, dx_k):
        assert max_rel_err(a, b) < 1e-6


def _masks(rng, n, t=T):
    return [jnp.asarray(rng.random((B, t)) < 0.6) for _ in range(n)]


@pytest.mark.parametrize("kind", ELEMENTWISE + ["Concatenate", "Concatenate-time"])
def test_masks_passed_on_equal_keras_compute_mask(keras, kind):
    rng = np.random.default_rng(30)
    time_axis = kind == "Concatenate-time"
    klayer = keras.layers.Concatenate(axis=1) if time_axis else getattr(keras.layers, kind.split("-")[0])()
    layer = rc.layers.Concatenate(axis=1) if time_axis else getattr(rc.layers, kind.split("-")[0])()
    xs = _inputs(rng, [(B, T, 3), (B, T, 3)])
    m = _masks(rng, 2)
    for masks in ([m[0], m[1]], [m[0], None], [None, None], None):
        want = klayer.compute_mask(xs, masks)
        got = layer.compute_mask(xs, masks)
        if want is None:
            assert got is None, masks
        else:
            np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_concatenate_masks_along_features_and_time():
    """Along the features an unmasked input unmasks every step; along time the masks are joined."""
    a = jnp.ones((1, 3, 2))
    m = jnp.array([[True, False, False]])
    assert rc.layers.Concatenate().compute_mask([a, a], [m, None]).tolist() == [[True, True, True]]
    assert rc.layers.Concatenate().compute_mask([a, a], [m, m]).tolist() == [[True, False, False]]
    joined = rc.layers.Concatenate(axis=1).compute_mask([a, a], [m, None])
    assert joined.tolist() == [[True, False, False, True, True, True]]


@pytest.mark.parametrize("which", ["both", "first"])
def test_multiply_masked_product_matches_keras(keras, which):
    """Keras 3's Multiply reads its inputs' masks: a masked entry counts as 1, and where every input
    has a mask, entries masked in all of them are 0."""
    from keras.src.backend.common.masking import set_keras_mask

    rng = np.random.default_rng(40)
    xs = _inputs(rng, [(B, T, 3), (B, T, 3)])
    masks = _masks(rng, 2)
    if which == "first":
        masks[1] = None
    klayer = keras.layers.Multiply()
    proj = projection(rng, (B, T, 3))

    def keras_loss(xs):
        for x, m in zip(xs, masks):
            if m is not None:
                set_keras_mask(x, m)
        return jnp.sum(klayer(xs) * proj)

    tagged = [jnp.array(x) for x in xs]
    for x, m in zip(tagged, masks):
        if m is not None:
            set_keras_mask(x, m)
    y_k = klayer(tagged)
    layer = rc.layers.Multiply()
    y = layer.apply((), xs, masks)
    assert max_rel_err(y, y_k) < 1e-6
    dx_k = jax.grad(keras_loss)(xs)
    dx = jax.grad(lambda xs: jnp.sum(layer.apply((), xs, masks) * proj))(xs)
    for a, b in zip(dx, dx_k):
        assert max_rel_err(a, b) < 1e-6
    if which == "both":  # masked in both: zero
        both_off = ~(np.asarray(masks[0]) | np.asarray(masks[1]))
        assert both_off.any() and np.all(np.asarray(y)[both_off] == 0)


def test_merges_float64_equal_numpy(x64):
    rng = np.random.default_rng(50)
    a, b, c = (rng.normal(size=s) for s in [(B, T, 3), (B, T, 1), (B, 3)])
    c3 = c[:, None, :]
    assert max_rel_err(rc.layers.Add().apply((), [a, b, c]), a + b + c3) < 1e-12
    assert max_rel_err(rc.layers.Subtract().apply((), [a, c]), a - c3) < 1e-12
    assert max_rel_err(rc.layers.Multiply().apply((), [a, b, c]), a * b * c3) < 1e-12
    assert max_rel_err(rc.layers.Average().apply((), [a, b]), (a + b) / 2) < 1e-12
    assert max_rel_err(rc.layers.Concatenate().apply((), [a, b]), np.concatenate([a, b], -1)) == 0
    m = rng.random((B, T)) < 0.5
    want = np.where(m[..., None], a, 1.0) * b
    assert max_rel_err(rc.layers.Multiply().apply((), [a, b], [m, None]), want) < 1e-12
    assert rc.layers.Add().apply((), [a, b]).dtype == jnp.float64


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: rc.layers.Add().apply((), jnp.ones((2, 3))), "Add inputs must be a list of arrays; got"),
        (lambda: rc.layers.Add().apply((), []), "Add inputs must be a list of at least 1 arrays; got 0"),
        (lambda: rc.layers.Subtract().apply((), [jnp.ones((2, 3))] * 3), "Subtract inputs must be a list of exactly 2"),
        (lambda: rc.layers.Add().apply((), [jnp.ones((2, 3)), jnp.ones((3, 3))]), "different batch sizes"),
        (
            lambda: rc.layers.Add().apply((), [jnp.ones((2, 3)), jnp.ones((2, 4))]),
            r"incompatible shapes \[\(3,\), \(4,\)\]",
        ),
        (lambda: rc.layers.Multiply().apply((), [jnp.ones((2, 3), int)] * 2), r"inputs\[0\] must be a floating array"),
        (
            lambda: rc.layers.Add().apply((), [jnp.ones((2, 4, 3))] * 2, [jnp.ones((2, 4), bool)]),
            r"mask must be None or a list with one entry per input \(2\); got 1",
        ),
        (
            lambda: rc.layers.Add().compute_mask([jnp.ones((2, 4, 3))] * 2, [jnp.ones((2, 5), bool), None]),
            r"mask\[0\] must have shape \(batch, time\) leading its input's \(2, 4, 3\)",
        ),
        (
            lambda: rc.layers.Concatenate().apply((), [jnp.ones((2, 4, 3)), jnp.ones((2, 5, 3))]),
            "must match except along axis=-1",
        ),
        (lambda: rc.layers.Concatenate(axis=0).apply((), [jnp.ones((2, 3))] * 2), "axis=0; expected an axis of"),
        (lambda: rc.layers.Concatenate(axis=3).apply((), [jnp.ones((2, 3))] * 2), "axis=3; expected an axis of"),
        (lambda: rc.layers.Concatenate(axis=1.5), "Concatenate axis=1.5; expected an integer"),
        (lambda: rc.layers.Add().init(None, (3, 4)), r"Add input_shape=\(3, 4\); expected a list of shapes"),
    ],
)
def test_merge_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("kind", ELEMENTWISE + ["Concatenate"])
def test_merge_kinds_config_in_and_out(keras, kind):
    klayer = keras.layers.Concatenate(axis=1, name="m") if kind == "Concatenate" else getattr(keras.layers, kind)()
    entry = keras.saving.serialize_keras_object(klayer)
    layer = KINDS[kind].from_config(Context("'test'"), entry, "layer 'm'")
    assert layer == (rc.layers.Concatenate(axis=1) if kind == "Concatenate" else getattr(rc.layers, kind)())
    back = KINDS[kind].to_keras(keras, layer, "float32", "layers[0]")
    assert type(back) is type(klayer)
    assert getattr(back, "axis", None) == getattr(klayer, "axis", None)
    if kind == "Concatenate":
        bad = dict(entry, config=dict(entry["config"], activity_regularizer={"class_name": "L2"}))
        with pytest.raises(ValueError, match="activity_regularizer=.* is not supported"):
            KINDS[kind].from_config(Context("'test'"), bad, "layer 'm'")
