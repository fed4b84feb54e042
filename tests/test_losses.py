"""rnncore.losses equals Keras 3's losses: per-sample values, masks, sample weights and every reduction."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import max_rel_err

from rnncore import losses

RTOL = 1e-6
B, T, C = 4, 6, 5
REDUCTIONS = ["sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None]


def _targets(rng, kind, shape):
    """(y_true, y_pred) for a loss family; probabilities include exact 0 and 1 so the clipping is exercised."""
    if kind == "real":
        return rng.normal(size=shape).astype(np.float32), (2 * rng.normal(size=shape)).astype(np.float32)
    if kind == "binary_probs":
        p = rng.uniform(0.0, 1.0, size=shape).astype(np.float32)
        p.flat[0], p.flat[1] = 0.0, 1.0
        return (rng.random(shape) > 0.5).astype(np.float32), p
    if kind == "binary_logits":
        return (rng.random(shape) > 0.5).astype(np.float32), (3 * rng.normal(size=shape)).astype(np.float32)
    labels = rng.integers(0, shape[-1], size=shape[:-1])
    onehot = np.eye(shape[-1], dtype=np.float32)[labels]
    if kind == "probs":  # unnormalised, one entry exactly 0: Keras renormalises, then clips
        p = rng.uniform(0.0, 2.0, size=shape).astype(np.float32)
        p.flat[0] = 0.0
        return onehot, p
    if kind == "logits":
        return onehot, (3 * rng.normal(size=shape)).astype(np.float32)
    raise AssertionError(kind)


# (our class, kwargs, Keras class name, data kind, sparse labels)
CASES = {
    "mse": (losses.MeanSquaredError, {}, "MeanSquaredError", "real", False),
    "mae": (losses.MeanAbsoluteError, {}, "MeanAbsoluteError", "real", False),
    "huber": (losses.Huber, {}, "Huber", "real", False),
    "huber_delta": (losses.Huber, dict(delta=0.3), "Huber", "real", False),
    "bce": (losses.BinaryCrossentropy, {}, "BinaryCrossentropy", "binary_probs", False),
    "bce_smooth": (losses.BinaryCrossentropy, dict(label_smoothing=0.2), "BinaryCrossentropy", "binary_probs", False),
    "bce_logits": (losses.BinaryCrossentropy, dict(from_logits=True), "BinaryCrossentropy", "binary_logits", False),
    "bce_logits_smooth": (
        losses.BinaryCrossentropy,
        dict(from_logits=True, label_smoothing=0.1),
        "BinaryCrossentropy",
        "binary_logits",
        False,
    ),
    "cce": (losses.CategoricalCrossentropy, {}, "CategoricalCrossentropy", "probs", False),
    "cce_smooth": (
        losses.CategoricalCrossentropy,
        dict(label_smoothing=0.2),
        "CategoricalCrossentropy",
        "probs",
        False,
    ),
    "cce_logits": (losses.CategoricalCrossentropy, dict(from_logits=True), "CategoricalCrossentropy", "logits", False),
    "cce_logits_smooth": (
        losses.CategoricalCrossentropy,
        dict(from_logits=True, label_smoothing=0.3),
        "CategoricalCrossentropy",
        "logits",
        False,
    ),
    "scce": (losses.SparseCategoricalCrossentropy, {}, "SparseCategoricalCrossentropy", "probs", True),
    "scce_logits": (
        losses.SparseCategoricalCrossentropy,
        dict(from_logits=True),
        "SparseCategoricalCrossentropy",
        "logits",
        True,
    ),
    "scce_ignore": (
        losses.SparseCategoricalCrossentropy,
        dict(ignore_class=2),
        "SparseCategoricalCrossentropy",
        "probs",
        True,
    ),
    "scce_logits_ignore": (
        losses.SparseCategoricalCrossentropy,
        dict(from_logits=True, ignore_class=0),
        "SparseCategoricalCrossentropy",
        "logits",
        True,
    ),
}


def _problem(case, sequence, seed=0):
    _, _, _, kind, sparse = CASES[case]
    rng = np.random.default_rng(seed)
    shape = (B, T, C) if sequence else (B, C)
    y_true, y_pred = _targets(rng, kind, shape)
    if sparse:
        y_true = np.argmax(y_true, -1).astype(np.int32)
    return rng, y_true, y_pred


def _weightings(rng, sequence):
    """(name, sample_weight, mask) triples; masks have a fully-masked row and a fully-real one."""
    if not sequence:
        return [
            ("none", None, None),
            ("w(B,)", rng.uniform(0, 2, B).astype(np.float32), None),
            ("w(B,1)", rng.uniform(0, 2, (B, 1)).astype(np.float32), None),
        ]
    mask = rng.random((B, T)) > 0.4
    mask[0] = False
    mask[1] = True
    w_bt = rng.uniform(0, 2, (B, T)).astype(np.float32)
    w_b1 = rng.uniform(0, 2, (B, 1)).astype(np.float32)
    return [
        ("none", None, None),
        ("w(B,T)", w_bt, None),
        ("w(B,1)", w_b1, None),
        ("mask", None, mask),
        ("mask+w(B,T)", w_bt, mask),
        ("mask+w(B,1)", w_b1, mask),
        ("all masked", None, np.zeros((B, T), bool)),
    ]


def _keras_call(keras, loss, y_true, y_pred, sample_weight, mask):
    from keras.src.backend import set_keras_mask

    y_pred = jnp.asarray(y_pred)
    if mask is not None:
        set_keras_mask(y_pred, jnp.asarray(mask))
    return np.asarray(loss(y_true, y_pred, sample_weight=sample_weight))


@pytest.mark.parametrize("sequence", [False, True], ids=["(B,C)", "(B,T,C)"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_loss_objects_equal_keras(keras, case, sequence):
    ours_cls, kwargs, keras_name, _, _ = CASES[case]
    rng, y_true, y_pred = _problem(case, sequence)
    worst = 0.0
    for reduction in REDUCTIONS:
        ours = ours_cls(reduction=reduction, **kwargs)
        theirs = getattr(keras.losses, keras_name)(reduction=reduction, **kwargs)
        assert ours.name == theirs.name
        for label, sw, mask in _weightings(rng, sequence):
            want = _keras_call(keras, theirs, y_true, y_pred, sw, mask)
            got = np.asarray(ours(y_true, y_pred, sample_weight=sw, mask=mask))
            assert got.shape == want.shape, (reduction, label)
            assert np.all(np.isfinite(got)), (reduction, label)
            err = max_rel_err(got, want)
            assert err <= RTOL, (reduction, label, err)
            worst = max(worst, err)
    print(f"{case} {'seq' if sequence else 'flat'}: max rel err {worst:.2e}")


PER_SAMPLE = {
    "mse": ("mean_squared_error", {}),
    "mae": ("mean_absolute_error", {}),
    "huber": ("huber", dict(delta=0.7)),
    "bce": ("binary_crossentropy", dict(label_smoothing=0.1)),
    "bce_logits": ("binary_crossentropy", dict(from_logits=True)),
    "cce": ("categorical_crossentropy", dict(label_smoothing=0.1)),
    "cce_logits": ("categorical_crossentropy", dict(from_logits=True)),
    "scce": ("sparse_categorical_crossentropy", {}),
    "scce_logits_ignore": ("sparse_categorical_crossentropy", dict(from_logits=True, ignore_class=0)),
}


@pytest.mark.parametrize("sequence", [False, True], ids=["(B,C)", "(B,T,C)"])
@pytest.mark.parametrize("case", sorted(PER_SAMPLE))
def test_per_sample_functions_equal_keras(keras, case, sequence):
    fn, kwargs = PER_SAMPLE[case]
    _, y_true, y_pred = _problem(case, sequence, seed=1)
    want = np.asarray(getattr(keras.losses, fn)(y_true, y_pred, **kwargs))
    got = np.asarray(getattr(losses, fn)(y_true, y_pred, **kwargs))
    assert got.shape == want.shape == y_pred.shape[:-1]
    assert max_rel_err(got, want) <= RTOL


def test_label_shapes_reconciled_like_keras(keras):
    """A trailing axis of size 1 on one side, rank-1 targets against (B, 1) outputs, (B, 1) sparse labels."""
    rng = np.random.default_rng(2)
    y = rng.normal(size=(B, 1)).astype(np.float32)
    p = rng.uniform(0.05, 0.95, size=(B, 1)).astype(np.float32)
    labels = rng.integers(0, C, size=(B, 1))
    probs = rng.uniform(0.1, 1.0, size=(B, C)).astype(np.float32)
    pairs = [
        (losses.MeanSquaredError(), keras.losses.MeanSquaredError(), y[:, 0], p),
        (losses.MeanSquaredError(), keras.losses.MeanSquaredError(), y, p[:, 0]),
        (losses.BinaryCrossentropy(), keras.losses.BinaryCrossentropy(), (y[:, 0] > 0).astype(np.float32), p),
        (losses.SparseCategoricalCrossentropy(), keras.losses.SparseCategoricalCrossentropy(), labels, probs),
    ]
    for ours, theirs, y_true, y_pred in pairs:
        for sw in (None, rng.uniform(0, 1, B).astype(np.float32)):
            assert max_rel_err(ours(y_true, y_pred, sample_weight=sw), theirs(y_true, y_pred, sample_weight=sw)) <= RTOL


def test_names_resolve_as_compile_does(keras):
    from keras.src.trainers import compile_utils

    rng = np.random.default_rng(3)
    real = _targets(rng, "real", (B, T, C))
    binary = _targets(rng, "binary_probs", (B, T, 1))
    onehot, probs = _targets(rng, "probs", (B, T, C))
    sparse = (np.argmax(onehot, -1), probs)
    data = {
        "mse": real,
        "MSE": real,
        "mean_squared_error": real,
        "MeanSquaredError": real,
        "mae": real,
        "MAE": real,
        "mean_absolute_error": real,
        "MeanAbsoluteError": real,
        "huber": real,
        "Huber": real,
        "binary_crossentropy": binary,
        "bce": binary,
        "BCE": binary,
        "BinaryCrossentropy": binary,
        "categorical_crossentropy": (onehot, probs),
        "CategoricalCrossentropy": (onehot, probs),
        "sparse_categorical_crossentropy": sparse,
        "SparseCategoricalCrossentropy": sparse,
        # resolved from the shapes: binary, sparse and categorical
        "crossentropy": binary,
        "ce": sparse,
        "CE": (onehot, probs),
    }
    assert set(data) == set(losses.NAMES) | {"CE"}
    mask = rng.random((B, T)) > 0.3
    for name, (y_true, y_pred) in data.items():
        theirs = compile_utils.get_loss(name, y_true, y_pred)
        ours = losses.get(name, y_true=y_true, y_pred=y_pred)
        assert ours.name == theirs.name, name
        want = _keras_call(keras, theirs, y_true, y_pred, None, mask)
        assert max_rel_err(ours(y_true, y_pred, mask=mask), want) <= RTOL, name
    assert type(losses.get("ce", y_true=(B, 1), y_pred=(B, 1))) is losses.BinaryCrossentropy
    assert type(losses.get("ce", y_true=(B,), y_pred=(B, C))) is losses.SparseCategoricalCrossentropy
    assert type(losses.get("ce", y_true=(B, C), y_pred=(B, C))) is losses.CategoricalCrossentropy


def test_function_loss_and_passthrough(keras):
    def quartic(y_true, y_pred):
        return jnp.mean((y_true - y_pred) ** 4, axis=-1)

    rng, y_true, y_pred = _problem("mse", True, seed=4)
    mask = rng.random((B, T)) > 0.5
    ours = losses.get(quartic)
    from keras.src.trainers import compile_utils

    theirs = compile_utils.get_loss(quartic, y_true, y_pred)
    assert isinstance(ours, losses.FunctionLoss) and ours.name == theirs.name == "quartic"
    assert max_rel_err(ours(y_true, y_pred, mask=mask), _keras_call(keras, theirs, y_true, y_pred, None, mask)) <= RTOL
    huber = losses.Huber(delta=2.0, reduction="sum")
    assert losses.get(huber) is huber


def test_jit_with_the_loss_static():
    rng, y_true, y_pred = _problem("cce_logits", True, seed=5)
    mask = rng.random((B, T)) > 0.5
    loss = losses.get("categorical_crossentropy")
    assert hash(loss) == hash(losses.CategoricalCrossentropy(name="categorical_crossentropy"))
    run = jax.jit(lambda loss_fn, yt, yp, m: loss_fn(yt, yp, mask=m), static_argnums=0)
    np.testing.assert_allclose(run(loss, y_true, y_pred, mask), loss(y_true, y_pred, mask=mask), rtol=1e-6)
    grad = jax.grad(lambda yp: loss(y_true, yp, mask=mask))(jnp.asarray(y_pred))
    assert np.all(np.isfinite(grad)) and np.all(np.asarray(grad)[0][~mask[0]] == 0)


def test_sequence_weights_of_shape_B_do_not_broadcast_as_in_keras(keras):
    """Keras multiplies (B, T) values by a (B,) weight along the last axis and fails for T != B; so do we,
    with a message that says which shapes work."""
    _, y_true, y_pred = _problem("mse", True)
    w = np.ones(B, np.float32)
    with pytest.raises(ValueError):
        keras.losses.MeanSquaredError()(y_true, y_pred, sample_weight=w)
    with pytest.raises(ValueError, match=r"sample_weight of shape \(4,\).*\(B, 1\) or \(B, T\)"):
        losses.MeanSquaredError()(y_true, y_pred, sample_weight=w)


def test_bad_input():
    with pytest.raises(ValueError, match=r"loss='hinge'.*mse.*sparse_categorical_crossentropy"):
        losses.get("hinge")
    with pytest.raises(ValueError, match=r"loss=3"):
        losses.get(3)
    with pytest.raises(ValueError, match=r"loss='crossentropy'.*shapes"):
        losses.get("crossentropy")
    with pytest.raises(ValueError, match=r"reduction='avg'; expected one of 'sum_over_batch_size'"):
        losses.MeanSquaredError(reduction="avg")
    with pytest.raises(ValueError, match=r"reduction='max'"):
        losses.reduce_weighted_values(jnp.ones(3), reduction="max")
    with pytest.raises(ValueError, match=r"label_smoothing=1.5"):
        losses.BinaryCrossentropy(label_smoothing=1.5)
    with pytest.raises(ValueError, match=r"from_logits='yes'"):
        losses.CategoricalCrossentropy(from_logits="yes")
    with pytest.raises(ValueError, match=r"ignore_class=0.5"):
        losses.SparseCategoricalCrossentropy(ignore_class=0.5)
    with pytest.raises(ValueError, match=r"delta=-1"):
        losses.Huber(delta=-1)
    with pytest.raises(ValueError, match=r"fn=None"):
        losses.FunctionLoss()
    with pytest.raises(ValueError, match=r"y_true.shape=\(4, 3\) must equal y_pred.shape=\(4, 2\)"):
        losses.categorical_crossentropy(jnp.ones((4, 3)), jnp.ones((4, 2)))
    with pytest.raises(ValueError, match=r"y_true.shape=\(4, 2\) must equal y_pred.shape\[:-1\]=\(4,\)"):
        losses.sparse_categorical_crossentropy(jnp.ones((4, 2), jnp.int32), jnp.ones((4, 3)))
    with pytest.raises(ValueError, match=r"axis=2"):
        losses.binary_crossentropy(jnp.ones((4, 3)), jnp.ones((4, 3)), axis=2)
    with pytest.raises(ValueError, match=r"mask of shape \(4, 5\)"):
        losses.MeanSquaredError()(jnp.ones((4, 6, 2)), jnp.ones((4, 6, 2)), mask=jnp.ones((4, 5), bool))
