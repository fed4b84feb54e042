"""rnncore.metrics accumulates exactly what Keras 3's metric objects accumulate, batch after batch, and
resolves metric names (``"accuracy"`` from the shapes) as ``Model.compile`` does."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import max_rel_err

from rnncore import losses, metrics

RTOL = 1e-6
B, T, C = 4, 6, 5
N_BATCHES = 4


def _batch(rng, kind, shape):
    if kind == "real":
        return rng.normal(size=shape).astype(np.float32), rng.normal(size=shape).astype(np.float32)
    if kind == "binary":  # one output unit, labels 0/1
        labels = (rng.random(shape[:-1] + (1,)) > 0.5).astype(np.float32)
        return labels, rng.random(shape[:-1] + (1,)).astype(np.float32)
    if kind == "binary_logits":
        return (rng.random(shape) > 0.5).astype(np.float32), (3 * rng.normal(size=shape)).astype(np.float32)
    labels = rng.integers(0, shape[-1], size=shape[:-1])
    y_pred = rng.uniform(0.0, 1.0, size=shape).astype(np.float32)
    if kind == "logits":
        y_pred = (3 * rng.normal(size=shape)).astype(np.float32)
    if kind.startswith("sparse"):
        return labels.astype(np.int32), y_pred
    return np.eye(shape[-1], dtype=np.float32)[labels], y_pred


# name: (ours, Keras class name, kwargs, data kind)
CASES = {
    "mse": (metrics.MeanSquaredError, "MeanSquaredError", {}, "real"),
    "mae": (metrics.MeanAbsoluteError, "MeanAbsoluteError", {}, "real"),
    "binary_accuracy": (metrics.BinaryAccuracy, "BinaryAccuracy", {}, "binary"),
    "binary_accuracy_0.7": (metrics.BinaryAccuracy, "BinaryAccuracy", dict(threshold=0.7), "binary"),
    "categorical_accuracy": (metrics.CategoricalAccuracy, "CategoricalAccuracy", {}, "probs"),
    "sparse_categorical_accuracy": (metrics.SparseCategoricalAccuracy, "SparseCategoricalAccuracy", {}, "sparse"),
    "bce": (metrics.BinaryCrossentropy, "BinaryCrossentropy", {}, "binary"),
    "bce_logits_smooth": (
        metrics.BinaryCrossentropy,
        "BinaryCrossentropy",
        dict(from_logits=True, label_smoothing=0.2),
        "binary_logits",
    ),
    "cce": (metrics.CategoricalCrossentropy, "CategoricalCrossentropy", dict(label_smoothing=0.1), "probs"),
    "cce_logits": (metrics.CategoricalCrossentropy, "CategoricalCrossentropy", dict(from_logits=True), "logits"),
    "scce": (metrics.SparseCategoricalCrossentropy, "SparseCategoricalCrossentropy", {}, "sparse"),
    "scce_logits": (
        metrics.SparseCategoricalCrossentropy,
        "SparseCategoricalCrossentropy",
        dict(from_logits=True),
        "sparse_logits",
    ),
    "scce_ignore": (
        metrics.SparseCategoricalCrossentropy,
        "SparseCategoricalCrossentropy",
        dict(ignore_class=1),
        "sparse",
    ),
}


def _weighting(rng, sequence, how):
    """(sample_weight, mask); masks have a fully-masked row."""
    if how == "none":
        return None, None
    if not sequence:
        return rng.uniform(0, 2, B).astype(np.float32), None
    mask = rng.random((B, T)) > 0.4
    mask[0] = False
    return {
        "w(B,T)": (rng.uniform(0, 2, (B, T)).astype(np.float32), None),
        "w(B,1)": (rng.uniform(0, 2, (B, 1)).astype(np.float32), None),
        "w(B,)": (rng.uniform(0, 2, B).astype(np.float32), None),
        "mask": (None, mask),
        "mask+w(B,T)": (rng.uniform(0, 2, (B, T)).astype(np.float32), mask),
    }[how]


def _keras_update(metric, y_true, y_pred, sample_weight, mask):
    from keras.src.backend import set_keras_mask

    y_pred = jnp.asarray(y_pred)
    if mask is not None:
        set_keras_mask(y_pred, jnp.asarray(mask))
    metric.update_state(y_true, y_pred, sample_weight=sample_weight)


WEIGHTINGS = [
    (False, "none"),
    (False, "w(B,)"),
    (True, "none"),
    (True, "w(B,T)"),
    (True, "w(B,1)"),
    (True, "w(B,)"),
    (True, "mask"),
    (True, "mask+w(B,T)"),
]


@pytest.mark.parametrize("case", sorted(CASES))
def test_metrics_accumulate_as_keras(keras, case):
    ours_cls, keras_name, kwargs, kind = CASES[case]
    ours = ours_cls(**kwargs)
    update = ours.update  # eager here (exact op for op); under jit in test_update_under_jit
    worst = 0.0
    for sequence, how in WEIGHTINGS:
        rng = np.random.default_rng(hash((case, how)) % 2**32)
        theirs = getattr(keras.metrics, keras_name)(**kwargs)
        assert ours.name == theirs.name and ours.direction == theirs._direction
        state = ours.init()
        for _ in range(N_BATCHES):
            y_true, y_pred = _batch(rng, kind, (B, T, C) if sequence else (B, C))
            sw, mask = _weighting(rng, sequence, how)
            try:
                _keras_update(theirs, y_true, y_pred, sw, mask)
            except ValueError:  # (B,) weights against ignore_class's (B, T) mask: Keras cannot broadcast them
                with pytest.raises(ValueError, match="sample_weight of shape"):
                    update(state, y_true, y_pred, sample_weight=sw, mask=mask)
                assert (case, how) == ("scce_ignore", "w(B,)")
                break
            state = update(state, y_true, y_pred, sample_weight=sw, mask=mask)
            err = max_rel_err(ours.result(state), theirs.result())
            assert err <= RTOL, (how, err)
            # the accumulators themselves, not only their ratio
            assert max_rel_err(state.total, theirs.total.value) <= RTOL
            assert max_rel_err(state.count, theirs.count.value) <= RTOL
            worst = max(worst, err)
    print(f"{case}: max rel err {worst:.2e}")


def test_update_under_jit():
    """Compiled updates equal eager ones to float32 rounding (XLA may fuse the reductions differently)."""
    rng = np.random.default_rng(5)
    for metric, kind in (
        (metrics.CategoricalCrossentropy(from_logits=True), "logits"),
        (metrics.SparseCategoricalAccuracy(), "sparse"),
        (metrics.MeanSquaredError(), "real"),
    ):
        update = jax.jit(metric.update)
        eager = jitted = metric.init()
        for _ in range(N_BATCHES):
            y_true, y_pred = _batch(rng, kind, (B, T, C))
            sw, mask = _weighting(rng, True, "mask+w(B,T)")
            eager = metric.update(eager, y_true, y_pred, sample_weight=sw, mask=mask)
            jitted = update(jitted, y_true, y_pred, sample_weight=sw, mask=mask)
        assert max_rel_err(metric.result(jitted), metric.result(eager)) <= RTOL


def test_mean_is_the_loss_tracker(keras):
    """Keras's fit tracks the loss with Mean.update_state(loss, sample_weight=batch_size)."""
    rng = np.random.default_rng(0)
    ours, theirs = metrics.Mean(name="loss", direction="down"), keras.metrics.Mean(name="loss")
    state = ours.init()
    for n in (32, 32, 7):
        value = np.float32(rng.uniform(0, 3))
        theirs.update_state(value, sample_weight=n)
        state = ours.update(state, jnp.asarray(value), sample_weight=n)
        assert max_rel_err(ours.result(state), theirs.result()) <= RTOL
    # arrays of values with weights, too
    ours2, theirs2 = metrics.Mean(), keras.metrics.Mean()
    state = ours2.init()
    for _ in range(3):
        values, w = rng.normal(size=(B, T)).astype(np.float32), rng.uniform(0, 1, (B, 1)).astype(np.float32)
        theirs2.update_state(values, sample_weight=w)
        state = ours2.update(state, values, sample_weight=w)
    assert max_rel_err(ours2.result(state), theirs2.result()) <= RTOL
    assert ours2.name == "mean" and ours2.direction is None and not hasattr(theirs2, "_direction")
    assert float(ours2.result(ours2.init())) == 0.0


SHAPES = [
    ((B, 1), (B, 1)),
    ((B,), (B, 1)),
    ((B,), (B, C)),
    ((B, 1), (B, C)),
    ((B, C), (B, C)),
    ((B, T, 1), (B, T, 1)),
    ((B, T), (B, T, C)),
    ((B, T, 1), (B, T, C)),
    ((B, T, C), (B, T, C)),
]


@pytest.mark.parametrize("name", ["accuracy", "acc", "Accuracy", "ACC"])
def test_accuracy_resolves_from_shapes_as_compile_does(keras, name):
    from keras.src.trainers import compile_utils

    rng = np.random.default_rng(1)
    for t_shape, p_shape in SHAPES:
        y_pred = rng.random(p_shape).astype(np.float32)
        if p_shape[-1] == 1:
            y_true = (rng.random(t_shape) > 0.5).astype(np.float32)
        elif len(t_shape) < len(p_shape) or t_shape[-1] == 1:
            y_true = rng.integers(0, C, t_shape).astype(np.float32)
        else:
            y_true = np.eye(C, dtype=np.float32)[rng.integers(0, C, t_shape[:-1])]
        theirs = compile_utils.get_metric(name, y_true, y_pred)
        ours = metrics.get(name, y_true=y_true, y_pred=y_pred)
        assert type(ours).__name__ == type(theirs).__name__, (t_shape, p_shape)
        assert ours.name == theirs.name == name
        assert metrics.get(name, y_true=t_shape, y_pred=p_shape) == ours  # shapes alone suffice
        theirs.update_state(y_true, y_pred)
        assert max_rel_err(ours.result(ours.update(ours.init(), y_true, y_pred)), theirs.result()) <= RTOL


def test_accuracy_from_the_loss_when_no_shapes_are_given():
    assert type(metrics.get("accuracy", loss="binary_crossentropy")) is metrics.BinaryAccuracy
    assert type(metrics.get("acc", loss="sparse_categorical_crossentropy")) is metrics.SparseCategoricalAccuracy
    assert (
        type(metrics.get("accuracy", loss=losses.CategoricalCrossentropy(from_logits=True)))
        is metrics.CategoricalAccuracy
    )
    # shapes win over the loss, as in Keras 3
    assert (
        type(metrics.get("accuracy", y_true=(B, 1), y_pred=(B, 1), loss="categorical_crossentropy"))
        is metrics.BinaryAccuracy
    )


def test_names_resolve_as_compile_does(keras):
    from keras.src.trainers import compile_utils

    rng = np.random.default_rng(2)
    data = {
        "real": _batch(rng, "real", (B, T, C)),
        "binary": _batch(rng, "binary", (B, T, C)),
        "probs": _batch(rng, "probs", (B, T, C)),
        "sparse": _batch(rng, "sparse", (B, T, C)),
    }
    kinds = {
        "mean_squared_error": "real",
        "mean_absolute_error": "real",
        "binary_accuracy": "binary",
        "categorical_accuracy": "probs",
        "sparse_categorical_accuracy": "sparse",
        "binary_crossentropy": "binary",
        "categorical_crossentropy": "probs",
        "sparse_categorical_crossentropy": "sparse",
    }
    mask = rng.random((B, T)) > 0.3
    for name in metrics.NAMES:
        if name.lower() in ("accuracy", "acc"):
            continue
        ours = metrics.get(name)
        kind = kinds[metrics._snake_case(type(ours).__name__)]
        y_true, y_pred = data[kind]
        theirs = compile_utils.get_metric(name, y_true, y_pred)
        assert type(ours).__name__ == type(theirs).__name__, name
        assert ours.name == theirs.name == name and ours.direction == theirs._direction
        _keras_update(theirs, y_true, y_pred, None, mask)
        got = ours.result(ours.update(ours.init(), y_true, y_pred, mask=mask))
        assert max_rel_err(got, theirs.result()) <= RTOL, name


def test_function_metric_as_keras_wraps_it(keras):
    from keras.src.trainers import compile_utils

    def maxAbsError(y_true, y_pred):
        return jnp.max(jnp.abs(y_true - y_pred), axis=-1)

    rng = np.random.default_rng(3)
    y_true, y_pred = _batch(rng, "real", (B, T, C))
    mask = rng.random((B, T)) > 0.3
    # a Loss object gives one (reduced) value per batch; Keras cannot weight that by a mask
    for fn, m in ((maxAbsError, mask), (losses.huber, mask), (losses.MeanSquaredError(), None)):
        theirs = compile_utils.get_metric(fn, y_true, y_pred)
        ours = metrics.get(fn)
        assert ours.name == (theirs.name if fn is not losses.huber else "huber")
        _keras_update(theirs, y_true, y_pred, None, m)
        got = ours.result(ours.update(ours.init(), y_true, y_pred, mask=m))
        assert max_rel_err(got, theirs.result()) <= RTOL
    assert metrics.get(maxAbsError).direction is None
    assert metrics.get(losses.huber).direction == "down"
    m = metrics.BinaryAccuracy(threshold=0.3)
    assert metrics.get(m) is m


def test_float64_state(x64):
    m = metrics.MeanSquaredError()
    state = m.update(m.init(jnp.float64), jnp.ones((3, 2)), jnp.zeros((3, 2)))
    assert state.total.dtype == jnp.float64 and float(m.result(state)) == 1.0


def test_bad_input():
    with pytest.raises(ValueError, match=r"metrics='f1'.*accuracy.*mse"):
        metrics.get("f1")
    with pytest.raises(ValueError, match=r"metrics=None"):
        metrics.get(None)
    with pytest.raises(ValueError, match=r"metrics='accuracy'.*shapes"):
        metrics.get("accuracy")
    with pytest.raises(ValueError, match=r"metrics='acc'.*loss='mse'"):
        metrics.get("acc", loss="mse")
    with pytest.raises(ValueError, match=r"dtype=.*int32.*floating"):
        metrics.Mean().init(jnp.int32)
    with pytest.raises(ValueError, match=r"direction='max'"):
        metrics.Mean(direction="max")
    with pytest.raises(ValueError, match=r"label_smoothing=2"):
        metrics.BinaryCrossentropy(label_smoothing=2)
    with pytest.raises(ValueError, match=r"fn=None"):
        metrics.FunctionMetric()
    m = metrics.MeanSquaredError()
    with pytest.raises(ValueError, match=r"sample_weight of shape \(3,\)"):
        m.update(m.init(), jnp.ones((4, 6, 2)), jnp.ones((4, 6, 2)), sample_weight=jnp.ones(3))
