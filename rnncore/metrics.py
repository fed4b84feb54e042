r"""Keras 3's metrics as pure functional accumulators: ``init``, ``update``, ``result``.

A metric is a frozen dataclass (hashable, so static under ``jit``) with a ``name`` (the key Keras's
history uses), a ``direction`` (``"up"``, ``"down"`` or ``None``, Keras's ``_direction``, which
``EarlyStopping(mode="auto")`` reads) and three pure functions:

* ``state = metric.init(dtype=jnp.float32)``: a :class:`MeanState` ``(total, count)`` of zeros;
* ``state = metric.update(state, y_true, y_pred, sample_weight=None, mask=None)``: jittable;
* ``metric.result(state)``: :math:`\mathrm{total}/\mathrm{count}` (0 while ``count`` is 0).

Every metric here is a weighted mean, with Keras's ``MeanMetricWrapper``/``Mean`` arithmetic. For
per-sample values :math:`v` (e.g. ``(B, T)`` for a sequence output), the output ``mask`` :math:`m` (the
mask Keras attaches to ``y_pred``, shaped like :math:`v`) multiplies the sample weights :math:`w`; the
values are averaged down to the rank of the weights, weighted, then averaged to one value per sample.
Over batches :math:`k`,

.. math::
    \mathrm{total} = \sum_k \sum_b \overline{(w m v)}_{kb}, \qquad
    \mathrm{count} = \sum_k \sum_b \overline{(w m)}_{kb}

where the bar is the mean over every axis after the first (with no weights and no mask, ``count``
grows by the batch size). With a ``(B, T)`` mask this is :math:`\sum w m v / \sum w m` over all real
steps seen so far, exactly the number Keras reports.

>>> import jax.numpy as jnp
>>> from rnncore import metrics
>>> m = metrics.get("mae")
>>> state = m.init()
>>> state = m.update(state, jnp.array([[0.0], [1.0]]), jnp.array([[1.0], [1.0]]))
>>> state = m.update(state, jnp.array([[3.0]]), jnp.array([[1.0]]))
>>> m.name, float(m.result(state))
('mae', 1.0)

References: the definitions follow Keras 3 (``keras.metrics`` and the string resolution of
``Model.compile``).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Callable, ClassVar, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp

from . import checks
from . import losses as _losses

__all__ = [
    "MeanState",
    "Metric",
    "Mean",
    "MeanSquaredError",
    "MeanAbsoluteError",
    "BinaryAccuracy",
    "CategoricalAccuracy",
    "SparseCategoricalAccuracy",
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "SparseCategoricalCrossentropy",
    "FunctionMetric",
    "get",
    "binary_accuracy",
    "categorical_accuracy",
    "sparse_categorical_accuracy",
]


class MeanState(NamedTuple):
    """A weighted mean's accumulators (Keras's ``total`` and ``count`` variables), scalars."""

    total: jax.Array
    count: jax.Array  # type: ignore[assignment]  # the field (Keras's name) shadows tuple.count by design


# --- per-sample accuracy functions ---------------------------------------------------------------


def binary_accuracy(y_true, y_pred, threshold: float = 0.5) -> jax.Array:
    r"""1.0 where :math:`[\hat y > \text{threshold}] = y`, else 0.0, per entry (``float32``).

    >>> import jax.numpy as jnp
    >>> binary_accuracy(jnp.array([[1.0], [0.0]]), jnp.array([[0.7], [0.6]]))
    Array([[1.],
           [0.]], dtype=float32)
    """
    y_pred = jnp.asarray(y_pred)
    y_true = jnp.asarray(y_true)
    y_true, y_pred = _losses.squeeze_or_expand_to_same_rank(y_true, y_pred)
    y_pred = (y_pred > threshold).astype(y_true.dtype)
    return (y_true == y_pred).astype(jnp.float32)


def categorical_accuracy(y_true, y_pred) -> jax.Array:
    r"""1.0 where :math:`\arg\max_c \hat y_c = \arg\max_c y_c` (one-hot targets), per sample.

    >>> import jax.numpy as jnp
    >>> categorical_accuracy(jnp.array([[0.0, 1.0], [1.0, 0.0]]), jnp.array([[0.2, 0.8], [0.1, 0.9]]))
    Array([1., 0.], dtype=float32)
    """
    y_pred = jnp.asarray(y_pred)
    labels = jnp.argmax(jnp.asarray(y_true), axis=-1).astype(y_pred.dtype)
    return _label_matches(labels, y_pred, squeeze_any=True)


def sparse_categorical_accuracy(y_true, y_pred) -> jax.Array:
    r"""1.0 where :math:`\arg\max_c \hat y_c` equals the integer label, per sample.

    >>> import jax.numpy as jnp
    >>> sparse_categorical_accuracy(jnp.array([1, 1]), jnp.array([[0.2, 0.8], [0.1, 0.0]]))
    Array([1., 0.], dtype=float32)
    """
    y_pred = jnp.asarray(y_pred)
    labels = jnp.asarray(y_true).astype(y_pred.dtype)
    matches = _label_matches(labels, y_pred, squeeze_any=False)
    if matches.ndim > 1 and matches.shape[-1] == 1:
        matches = jnp.squeeze(matches, -1)
    return matches


def _label_matches(labels, y_pred, squeeze_any: bool):
    """Keras compares float labels with the float argmax, dropping a trailing axis of ``labels`` of
    equal rank (any size for the categorical form, size 1 for the sparse one) and restoring it."""
    shape = labels.shape
    reshape = labels.ndim == y_pred.ndim and (squeeze_any or labels.shape[-1] == 1)
    if reshape:
        labels = jnp.squeeze(labels, -1)
    predicted = jnp.argmax(y_pred, axis=-1).astype(labels.dtype)
    matches = (labels == predicted).astype(jnp.float32)
    return jnp.reshape(matches, shape) if reshape else matches


# --- the weighted-mean arithmetic ----------------------------------------------------------------


def _samplewise(values, sample_weight, values_mask, dtype):
    """Keras's ``reduce_to_samplewise_values`` with the mean: one value (and one weight) per sample."""
    values = jnp.asarray(values).astype(dtype)
    if sample_weight is not None:
        sample_weight = jnp.asarray(sample_weight, dtype)
        if values_mask is not None:
            sample_weight = _losses.merge_mask(sample_weight, values_mask, dtype, "sum")
        values, sample_weight = _losses.squeeze_or_expand_to_same_rank(values, sample_weight)
        w_ndim, v_ndim = sample_weight.ndim, values.ndim
        if v_ndim > w_ndim:
            values = jnp.mean(values, axis=tuple(range(w_ndim, v_ndim)))
        try:
            sample_weight = jnp.broadcast_to(sample_weight, values.shape)
        except ValueError:
            raise ValueError(
                f"sample_weight of shape {sample_weight.shape} does not broadcast to the per-sample metric "
                f"values of shape {values.shape}."
            ) from None
        values = values * sample_weight
        if w_ndim > 1:
            sample_weight = jnp.mean(sample_weight, axis=tuple(range(1, w_ndim)))
    if values.ndim > 1:
        values = jnp.mean(values, axis=tuple(range(1, values.ndim)))
    return values, sample_weight


def _accumulate(state: MeanState, values, sample_weight, values_mask=None) -> MeanState:
    dtype = state.total.dtype
    values, sample_weight = _samplewise(values, sample_weight, values_mask, dtype)
    n: Union[jax.Array, int]
    if sample_weight is not None:
        n = jnp.sum(sample_weight)
    else:
        n = values.shape[0] if values.ndim >= 1 else 1
    return MeanState(total=state.total + jnp.sum(values), count=state.count + jnp.asarray(n, dtype))


def _check_dtype(dtype):
    if not jnp.issubdtype(jnp.dtype(dtype), jnp.floating):
        raise ValueError(f"dtype={dtype!r}; expected a floating dtype (float32 as Keras, or float64).")


class Metric:
    """Base of the metrics: a weighted mean of per-sample values (Keras's ``MeanMetricWrapper``).
    A subclass is a frozen dataclass with a ``name`` and defines :meth:`values`."""

    name: str
    direction: ClassVar[Optional[str]] = None

    def __post_init__(self):
        if not isinstance(self.name, str):
            raise ValueError(f"name={self.name!r}; expected a string.")

    def init(self, dtype=jnp.float32) -> MeanState:
        """Zero ``total`` and ``count`` (Keras's ``reset_state``)."""
        _check_dtype(dtype)
        zero = jnp.zeros((), dtype)
        return MeanState(total=zero, count=zero)

    def values(self, y_true, y_pred) -> jax.Array:
        """Per-sample values, e.g. ``(B,)`` or ``(B, T)``."""
        raise NotImplementedError

    def _values(self, y_true, y_pred):
        return self.values(y_true, y_pred), None

    def update(self, state: MeanState, y_true, y_pred, sample_weight=None, mask=None) -> MeanState:
        """Add one batch (Keras's ``update_state``). ``mask``: the output mask (Keras's mask on
        ``y_pred``), shaped like the per-sample values; it multiplies ``sample_weight``."""
        dtype = state.total.dtype
        values, values_mask = self._values(y_true, y_pred)
        sample_weight = _losses.merge_mask(sample_weight, mask, dtype, "sum")
        return _accumulate(state, values, sample_weight, values_mask)

    def result(self, state: MeanState) -> jax.Array:
        """``total / count``, 0 before any weight was seen."""
        return _losses.divide_no_nan(state.total, state.count)


@dataclasses.dataclass(frozen=True)
class Mean(Metric):
    """Keras ``Mean``: the weighted mean of the values passed to :meth:`update` (no ``y_true``). With
    a scalar ``values`` and ``sample_weight=batch_size`` it is the batch-size-weighted running mean Keras's
    loss tracker reports as ``loss``. Keras's ``Mean`` has no direction; give one for early stopping.

    >>> import jax.numpy as jnp
    >>> tracker = Mean(name="loss", direction="down")
    >>> s = tracker.update(tracker.init(), jnp.asarray(2.0), sample_weight=3)
    >>> s = tracker.update(s, jnp.asarray(6.0), sample_weight=1)
    >>> float(tracker.result(s))
    3.0
    """

    name: str = "mean"
    # A field here (and in FunctionMetric), where the other metrics fix it as a class constant.
    direction: Optional[str] = None  # type: ignore[misc]

    def __post_init__(self):
        super().__post_init__()
        _check_direction(self.direction)

    # Keras's Mean.update_state takes the values themselves, not (y_true, y_pred).
    def update(self, state: MeanState, values, sample_weight=None, mask=None) -> MeanState:  # type: ignore[override]
        """Add ``values`` (any shape; reduced per sample over every axis after the first) with
        ``sample_weight``; ``mask``, shaped like ``values``, multiplies ``sample_weight``."""
        sample_weight = _losses.merge_mask(sample_weight, mask, state.total.dtype, "sum")
        return _accumulate(state, values, sample_weight)


def _check_direction(direction):
    checks.one_of("direction", direction, ("up", "down", None))


@dataclasses.dataclass(frozen=True)
class MeanSquaredError(Metric):
    """Keras ``MeanSquaredError`` metric: the running mean of :func:`rnncore.losses.mean_squared_error`."""

    name: str = "mean_squared_error"
    direction: ClassVar[str] = "down"

    def values(self, y_true, y_pred):
        return _losses.mean_squared_error(y_true, y_pred)


@dataclasses.dataclass(frozen=True)
class MeanAbsoluteError(Metric):
    """Keras ``MeanAbsoluteError`` metric: the running mean of :func:`rnncore.losses.mean_absolute_error`."""

    name: str = "mean_absolute_error"
    direction: ClassVar[str] = "down"

    def values(self, y_true, y_pred):
        return _losses.mean_absolute_error(y_true, y_pred)


@dataclasses.dataclass(frozen=True)
class BinaryAccuracy(Metric):
    """Keras ``BinaryAccuracy``: the running mean of :func:`binary_accuracy`.

    >>> import jax.numpy as jnp
    >>> m = BinaryAccuracy()
    >>> float(m.result(m.update(m.init(), jnp.array([[1.0], [1.0]]), jnp.array([[0.9], [0.2]]))))
    0.5
    """

    name: str = "binary_accuracy"
    threshold: float = 0.5
    direction: ClassVar[str] = "up"

    def __post_init__(self):
        super().__post_init__()
        checks.real("threshold", self.threshold)

    def values(self, y_true, y_pred):
        return binary_accuracy(y_true, y_pred, self.threshold)


@dataclasses.dataclass(frozen=True)
class CategoricalAccuracy(Metric):
    """Keras ``CategoricalAccuracy``: the running mean of :func:`categorical_accuracy`."""

    name: str = "categorical_accuracy"
    direction: ClassVar[str] = "up"

    def values(self, y_true, y_pred):
        return categorical_accuracy(y_true, y_pred)


@dataclasses.dataclass(frozen=True)
class SparseCategoricalAccuracy(Metric):
    """Keras ``SparseCategoricalAccuracy``: the running mean of :func:`sparse_categorical_accuracy`."""

    name: str = "sparse_categorical_accuracy"
    direction: ClassVar[str] = "up"

    def values(self, y_true, y_pred):
        return sparse_categorical_accuracy(y_true, y_pred)


@dataclasses.dataclass(frozen=True)
class BinaryCrossentropy(Metric):
    """Keras ``BinaryCrossentropy`` metric: the running mean of :func:`rnncore.losses.binary_crossentropy`."""

    name: str = "binary_crossentropy"
    from_logits: bool = False
    label_smoothing: float = 0.0
    direction: ClassVar[str] = "down"

    def __post_init__(self):
        super().__post_init__()
        checks.boolean("from_logits", self.from_logits)
        _losses.check_label_smoothing(self.label_smoothing)

    def values(self, y_true, y_pred):
        return _losses.binary_crossentropy(y_true, y_pred, self.from_logits, self.label_smoothing)


@dataclasses.dataclass(frozen=True)
class CategoricalCrossentropy(Metric):
    """Keras ``CategoricalCrossentropy`` metric: the running mean of
    :func:`rnncore.losses.categorical_crossentropy`."""

    name: str = "categorical_crossentropy"
    from_logits: bool = False
    label_smoothing: float = 0.0
    axis: int = -1
    direction: ClassVar[str] = "down"

    def __post_init__(self):
        super().__post_init__()
        checks.boolean("from_logits", self.from_logits)
        _losses.check_label_smoothing(self.label_smoothing)

    def values(self, y_true, y_pred):
        return _losses.categorical_crossentropy(y_true, y_pred, self.from_logits, self.label_smoothing, self.axis)


@dataclasses.dataclass(frozen=True)
class SparseCategoricalCrossentropy(Metric):
    """Keras ``SparseCategoricalCrossentropy`` metric: the running mean of
    :func:`rnncore.losses.sparse_categorical_crossentropy`. As in Keras, entries labelled
    ``ignore_class`` count as zeros, and are left out of the mean only when a ``sample_weight`` is given."""

    name: str = "sparse_categorical_crossentropy"
    from_logits: bool = False
    ignore_class: Optional[int] = None
    axis: int = -1
    direction: ClassVar[str] = "down"

    def __post_init__(self):
        super().__post_init__()
        checks.boolean("from_logits", self.from_logits)

    def _values(self, y_true, y_pred):
        return _losses.sparse_crossentropy_values(y_true, y_pred, self.from_logits, self.ignore_class, self.axis)

    def values(self, y_true, y_pred):
        return self._values(y_true, y_pred)[0]


_LOSS_FUNCTIONS = (
    _losses.mean_squared_error,
    _losses.mean_absolute_error,
    _losses.huber,
    _losses.binary_crossentropy,
    _losses.categorical_crossentropy,
    _losses.sparse_categorical_crossentropy,
)


def _snake_case(name: str) -> str:
    name = re.sub(r"\W+", "", name)
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _object_name(obj) -> str:
    """The name Keras gives a metric it wraps: its ``name``, else its function or class name in snake case."""
    if isinstance(getattr(obj, "name", None), str):
        return obj.name
    return _snake_case(getattr(obj, "__name__", type(obj).__name__))


@dataclasses.dataclass(frozen=True)
class FunctionMetric(Metric):
    """The running mean of a user's ``fn(y_true, y_pred) -> per-sample values`` (Keras's
    ``MeanMetricWrapper``). ``name`` defaults to the name Keras gives it (the function's name in
    snake case); ``direction`` is ``"down"`` for a loss of :mod:`rnncore.losses`, else ``None``.

    >>> import jax.numpy as jnp
    >>> def maxAbsError(y_true, y_pred):
    ...     return jnp.max(jnp.abs(y_true - y_pred), axis=-1)
    >>> m = FunctionMetric(maxAbsError)
    >>> m.name, float(m.result(m.update(m.init(), jnp.zeros((2, 3)), jnp.ones((2, 3)))))
    ('max_abs_error', 1.0)
    """

    fn: Optional[Callable] = None
    # None only as the default: __post_init__ replaces it by fn's name, so a built metric's name is a str.
    name: Optional[str] = None  # type: ignore[assignment]
    # A field here (and in Mean), where the other metrics fix it as a class constant.
    direction: Optional[str] = None  # type: ignore[misc]

    def __post_init__(self):
        if not callable(self.fn):
            raise ValueError(f"fn={self.fn!r}; expected a callable (y_true, y_pred) -> per-sample values.")
        if self.name is None:
            object.__setattr__(self, "name", _object_name(self.fn))
        if self.direction is None and (self.fn in _LOSS_FUNCTIONS or isinstance(self.fn, _losses.Loss)):
            object.__setattr__(self, "direction", "down")
        _check_direction(self.direction)
        super().__post_init__()

    def values(self, y_true, y_pred):
        fn = self.fn
        if fn is None:  # __post_init__ rejects a missing fn; this tells the type checker
            raise ValueError("fn=None; expected a callable (y_true, y_pred) -> per-sample values.")
        return jnp.asarray(fn(y_true, y_pred))


# --- by name, as Model.compile resolves them -----------------------------------------------------

_CLASSES = (
    MeanSquaredError,
    MeanAbsoluteError,
    BinaryAccuracy,
    CategoricalAccuracy,
    SparseCategoricalAccuracy,
    BinaryCrossentropy,
    CategoricalCrossentropy,
    SparseCategoricalCrossentropy,
)
_BY_NAME = {cls.__name__: cls for cls in _CLASSES}
_BY_NAME.update({_snake_case(cls.__name__): cls for cls in _CLASSES})
_BY_NAME.update(
    {
        "mse": MeanSquaredError,
        "MSE": MeanSquaredError,
        "mae": MeanAbsoluteError,
        "MAE": MeanAbsoluteError,
        "bce": BinaryCrossentropy,
        "BCE": BinaryCrossentropy,
    }
)
NAMES = ("accuracy", "acc") + tuple(_BY_NAME)


def _accuracy_from_loss(loss):
    try:
        loss = _losses.get(loss) if loss is not None else None
    except ValueError:
        loss = None
    for loss_cls, metric_cls in (
        (_losses.BinaryCrossentropy, BinaryAccuracy),
        (_losses.SparseCategoricalCrossentropy, SparseCategoricalAccuracy),
        (_losses.CategoricalCrossentropy, CategoricalAccuracy),
    ):
        if isinstance(loss, loss_cls):
            return metric_cls
    return None


def get(identifier: Union[str, Metric, Callable], y_true=None, y_pred=None, loss=None) -> Metric:
    """The metric ``Model.compile(metrics=[identifier])`` builds, named by the key it gets in the history.

    * ``"accuracy"``/``"acc"`` (any case): from the shapes of ``y_true`` and ``y_pred`` (arrays or
      shapes), as Keras 3 decides: :class:`BinaryAccuracy` when ``y_pred`` ends in 1,
      :class:`SparseCategoricalAccuracy` when ``y_true`` has the lower rank or ends in 1 (and
      ``y_pred`` does not), else :class:`CategoricalAccuracy`. Keras 3 looks only at the shapes; when
      they are not given, a cross-entropy ``loss`` (a name or a :class:`rnncore.losses.Loss`) decides.
    * Other names (``"mse"``, ``"mae"``, ``"mean_squared_error"``, ``"binary_accuracy"``,
      ``"SparseCategoricalAccuracy"``, ``"bce"``, ...) give the metric with Keras's default arguments.
    * The name is the string given: ``metrics=["mae"]`` reports ``"mae"``, ``["accuracy"]``
      ``"accuracy"``. A :class:`Metric` keeps its own name; a callable is wrapped in
      :class:`FunctionMetric`.

    >>> get("accuracy", y_true=(32, 1), y_pred=(32, 10))
    SparseCategoricalAccuracy(name='accuracy')
    >>> get("acc", y_true=(32, 20, 1), y_pred=(32, 20, 1)).name
    'acc'
    """
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str):
        if identifier.lower() in ("accuracy", "acc"):
            if y_true is not None and y_pred is not None:
                is_binary, is_sparse = _losses.is_binary_or_sparse_categorical(
                    _losses.shape_of(y_true), _losses.shape_of(y_pred)
                )
                cls = BinaryAccuracy if is_binary else SparseCategoricalAccuracy if is_sparse else CategoricalAccuracy
            else:
                cls = _accuracy_from_loss(loss)
                if cls is None:
                    raise ValueError(
                        f"metrics={identifier!r} is resolved from the shapes of y_true and y_pred; pass both "
                        f"(arrays or shapes), or a cross-entropy loss (got loss={loss!r})."
                    )
            return cls(name=identifier)
        if identifier in _BY_NAME:
            return _BY_NAME[identifier](name=identifier)
    elif callable(identifier):
        return FunctionMetric(identifier)
    raise ValueError(
        f"metrics={identifier!r}; expected a Metric, a callable (y_true, y_pred) -> per-sample "
        f"values, or one of {', '.join(NAMES)}."
    )
