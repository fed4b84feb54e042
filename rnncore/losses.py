r"""Keras 3's losses in ``jax.numpy``: the same per-sample values, masks, sample weights and reductions.

Two layers, as in Keras:

* **Per-sample functions** ``f(y_true, y_pred, ...)`` reduce only the last axis (the features or the
  classes): :func:`mean_squared_error`, :func:`mean_absolute_error`, :func:`huber`,
  :func:`binary_crossentropy`, :func:`categorical_crossentropy`,
  :func:`sparse_categorical_crossentropy`. ``y_pred (B, ..., C)`` gives values ``(B, ...)``; a
  sequence output ``(B, T, C)`` gives ``(B, T)``.
* **Loss objects** (frozen dataclasses, hashable, so they can be static arguments of ``jit``):
  :class:`MeanSquaredError`, :class:`MeanAbsoluteError`, :class:`Huber`,
  :class:`BinaryCrossentropy`, :class:`CategoricalCrossentropy`,
  :class:`SparseCategoricalCrossentropy` and :class:`FunctionLoss` for a user's per-sample
  function. ``loss(y_true, y_pred, sample_weight=None, mask=None)`` is Keras's ``Loss.__call__``: the
  per-sample values :math:`l`, the output mask :math:`m` (the mask Keras attaches to ``y_pred``, shaped
  like :math:`l`, e.g. ``(B, T)``) merged into the sample weights :math:`w`, then the reduction.

With ``reduction="sum_over_batch_size"`` (the default; ``"mean"`` is the same) and :math:`N` the number
of entries of :math:`l`,

.. math::
    L = \frac{1}{N}\sum_i w_i\, l_i \quad\text{without a mask,}\qquad
    L = \frac{1}{N}\sum_i w_i\, l_i\, m_i \frac{N}{\sum_j m_j}
      = \frac{\sum_i w_i l_i m_i}{\sum_j m_j} \quad\text{with one}

(0 when no entry is real). ``"sum"`` is :math:`\sum_i w_i m_i l_i`; ``"mean_with_sample_weight"``
divides that sum by :math:`\sum_i w_i m_i` (by :math:`N` when neither is given); ``"none"`` (or
``None``) returns the weighted values unreduced.

``sample_weight`` is broadcast against :math:`l` after Keras's ``squeeze_or_expand_to_same_rank``
(a trailing axis of size 1 is dropped, or added to a rank-1 array, when ranks differ by one). As in
Keras, a ``(B,)`` weight does not broadcast against sequence values ``(B, T)``: pass ``(B, 1)`` for one
weight per sequence, or ``(B, T)`` for one per step.

Numerics are Keras 3's on the JAX backend: probabilities are clipped to
:math:`[\epsilon, 1-\epsilon]`, :math:`\epsilon = 10^{-7}` (categorical ones renormalised to sum 1
first), logits go through ``log_sigmoid`` / ``log_softmax``.

>>> import jax.numpy as jnp
>>> from rnncore import losses
>>> y_true, y_pred = jnp.array([[0.0, 1.0], [1.0, 1.0]]), jnp.array([[1.0, 1.0], [0.0, 1.0]])
>>> losses.mean_squared_error(y_true, y_pred)
Array([0.5, 0.5], dtype=float32)
>>> float(losses.get("mse")(y_true, y_pred, sample_weight=jnp.array([1.0, 0.0])))
0.25

References: the definitions follow Keras 3 (``keras.losses``); Huber 1964, "Robust Estimation of a
Location Parameter"; Szegedy et al. 2016, "Rethinking the Inception Architecture for Computer Vision"
(label smoothing).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional, Union

import jax
import jax.numpy as jnp

from . import checks

__all__ = [
    "EPSILON",
    "REDUCTIONS",
    "squeeze_or_expand_to_same_rank",
    "reduce_weighted_values",
    "mean_squared_error",
    "mean_absolute_error",
    "huber",
    "binary_crossentropy",
    "categorical_crossentropy",
    "sparse_categorical_crossentropy",
    "Loss",
    "MeanSquaredError",
    "MeanAbsoluteError",
    "Huber",
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "SparseCategoricalCrossentropy",
    "FunctionLoss",
    "get",
    # the arithmetic rnncore.metrics shares
    "divide_no_nan",
    "merge_mask",
    "sparse_crossentropy_values",
    "check_label_smoothing",
    "shape_of",
]

EPSILON = 1e-7  # keras.backend.epsilon()
REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)


# --- shapes and dtypes ---------------------------------------------------------------------------


def _float_dtype(x) -> jnp.dtype:
    """Keras computes in floatx (float32); a floating ``y_pred`` keeps its own dtype (float64 included)."""
    dtype = jnp.result_type(x)
    return dtype if jnp.issubdtype(dtype, jnp.floating) else jnp.dtype(jnp.float32)


def squeeze_or_expand_to_same_rank(x1, x2, expand_rank_1: bool = True):
    """Keras's rank reconciliation: when the ranks differ by exactly one and the higher-rank array
    ends in an axis of size 1, that axis is dropped, or, if the other array has rank 1 (and
    ``expand_rank_1``), the other one gets a trailing axis instead. Otherwise both are returned as
    they are.

    >>> import jax.numpy as jnp
    >>> [a.shape for a in squeeze_or_expand_to_same_rank(jnp.zeros((4, 3, 1)), jnp.zeros((4, 3)))]
    [(4, 3), (4, 3)]
    >>> [a.shape for a in squeeze_or_expand_to_same_rank(jnp.zeros((4, 1)), jnp.zeros((4,)))]
    [(4, 1), (4, 1)]
    """
    r1, r2 = jnp.ndim(x1), jnp.ndim(x2)
    if r1 == r2:
        return x1, x2
    if r1 == r2 + 1 and jnp.shape(x1)[-1] == 1:
        if r2 == 1 and expand_rank_1:
            x2 = jnp.expand_dims(x2, -1)
        else:
            x1 = jnp.squeeze(x1, -1)
    if r2 == r1 + 1 and jnp.shape(x2)[-1] == 1:
        if r1 == 1 and expand_rank_1:
            x1 = jnp.expand_dims(x1, -1)
        else:
            x2 = jnp.squeeze(x2, -1)
    return x1, x2


def divide_no_nan(x, y) -> jax.Array:
    """``x / y`` where ``y != 0``, else 0 (Keras's ``ops.divide_no_nan``), with zero gradients at
    ``y == 0``."""
    safe = jnp.where(y == 0, jnp.ones_like(y), y)
    return jnp.where(y == 0, jnp.zeros_like(x / safe), x / safe)


def _check_same_shape(fn: str, y_true, y_pred, upto_last: bool = False):
    want = jnp.shape(y_pred)[:-1] if upto_last else jnp.shape(y_pred)
    if jnp.shape(y_true) != want:
        what = "y_pred.shape[:-1]" if upto_last else "y_pred.shape"
        raise ValueError(
            f"{fn}: y_true.shape={jnp.shape(y_true)} must equal {what}={want} (y_pred.shape={jnp.shape(y_pred)})."
        )


def _check_axis(axis, ndim: int):
    checks.integer("axis", axis, minimum=-ndim, maximum=max(ndim, 1) - 1, what=f"y_pred has rank {ndim}")


# --- per-sample functions ------------------------------------------------------------------------


def mean_squared_error(y_true, y_pred) -> jax.Array:
    r"""Mean squared error over the last axis: :math:`\frac1C\sum_c (y_c - \hat y_c)^2`.

    ``y_true``, ``y_pred``: ``(B, ..., C)`` (ranks may differ by a trailing axis of size 1);
    returns ``(B, ...)``.

    >>> import jax.numpy as jnp
    >>> mean_squared_error(jnp.array([[0.0, 2.0]]), jnp.array([[1.0, 0.0]]))
    Array([2.5], dtype=float32)
    """
    y_pred = jnp.asarray(y_pred)
    y_true = jnp.asarray(y_true, y_pred.dtype)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    return jnp.mean(jnp.square(y_true - y_pred), axis=-1)


def mean_absolute_error(y_true, y_pred) -> jax.Array:
    r"""Mean absolute error over the last axis: :math:`\frac1C\sum_c |y_c - \hat y_c|`.

    ``y_true``, ``y_pred``: ``(B, ..., C)``; returns ``(B, ...)``.

    >>> import jax.numpy as jnp
    >>> mean_absolute_error(jnp.array([[0.0, 2.0]]), jnp.array([[1.0, 0.0]]))
    Array([1.5], dtype=float32)
    """
    y_pred = jnp.asarray(y_pred)
    y_true = jnp.asarray(y_true, y_pred.dtype)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    return jnp.mean(jnp.abs(y_true - y_pred), axis=-1)


def huber(y_true, y_pred, delta: float = 1.0) -> jax.Array:
    r"""Huber loss (Huber 1964) over the last axis, with :math:`e = \hat y - y`:

    .. math::
        \frac1C\sum_c \begin{cases} \tfrac12 e_c^2 & |e_c| \le \delta \\
        \delta |e_c| - \tfrac12 \delta^2 & \text{otherwise.} \end{cases}

    ``y_true``, ``y_pred``: ``(B, ..., C)``; returns ``(B, ...)``.

    >>> import jax.numpy as jnp
    >>> huber(jnp.array([[0.0, 0.0]]), jnp.array([[0.5, 3.0]]))
    Array([1.3125], dtype=float32)
    """
    y_pred = jnp.asarray(y_pred)
    y_true = jnp.asarray(y_true, y_pred.dtype)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    d = jnp.asarray(delta, y_pred.dtype)
    error = y_pred - y_true
    abs_error = jnp.abs(error)
    half = jnp.asarray(0.5, y_pred.dtype)
    return jnp.mean(jnp.where(abs_error <= d, half * jnp.square(error), d * abs_error - half * jnp.square(d)), axis=-1)


def binary_crossentropy(
    y_true, y_pred, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1
) -> jax.Array:
    r"""Binary cross-entropy, averaged over ``axis``.

    With smoothed targets :math:`t = y(1-s) + s/2` (label smoothing :math:`s`), per entry
    :math:`-[t\log p + (1-t)\log(1-p)]` where :math:`p = \mathrm{clip}(\hat y, \epsilon, 1-\epsilon)`;
    from logits :math:`z`, :math:`-[t \log\sigma(z) + (1-t)\log\sigma(-z)]` (exact, no clipping).

    ``y_true``, ``y_pred``: the same shape ``(B, ..., C)``; returns ``(B, ...)``.

    >>> import jax.numpy as jnp
    >>> binary_crossentropy(jnp.array([[1.0, 0.0]]), jnp.array([[0.5, 0.5]]))
    Array([0.6931472], dtype=float32)
    """
    y_pred = jnp.asarray(y_pred)
    y_true = jnp.asarray(y_true).astype(y_pred.dtype)
    _check_axis(axis, y_pred.ndim)
    _check_same_shape("binary_crossentropy", y_true, y_pred)
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        bce = -1.0 * y_true * jax.nn.log_sigmoid(y_pred) - (1.0 - y_true) * jax.nn.log_sigmoid(-y_pred)
    else:
        out = jnp.clip(y_pred, EPSILON, 1.0 - EPSILON)
        bce = -(y_true * jnp.log(out) + (1.0 - y_true) * jnp.log(1.0 - out))
    return jnp.mean(bce, axis=axis)


def _log_probs(y_pred, from_logits, axis):
    if from_logits:
        return jax.nn.log_softmax(y_pred, axis=axis)
    out = y_pred / jnp.sum(y_pred, axis, keepdims=True)
    return jnp.log(jnp.clip(out, EPSILON, 1.0 - EPSILON))


def categorical_crossentropy(
    y_true, y_pred, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1
) -> jax.Array:
    r"""Categorical cross-entropy over the class axis: :math:`-\sum_c t_c \log p_c`.

    Targets are smoothed as :math:`t = y(1-s) + s/C` (:math:`C` the size of the last axis). From
    probabilities, :math:`p = \mathrm{clip}(\hat y/\sum_c \hat y_c, \epsilon, 1-\epsilon)`; from
    logits, :math:`\log p = \mathrm{log\_softmax}(\hat y)`.

    ``y_true`` (one-hot or soft targets), ``y_pred``: the same shape ``(B, ..., C)``; returns
    ``(B, ...)``.

    >>> import jax.numpy as jnp
    >>> categorical_crossentropy(jnp.array([[0.0, 1.0]]), jnp.array([[1.0, 3.0]]))  # p = 3/4
    Array([0.2876821], dtype=float32)
    """
    y_pred = jnp.asarray(y_pred)
    y_true = jnp.asarray(y_true).astype(y_pred.dtype)
    _check_axis(axis, y_pred.ndim)
    _check_same_shape("categorical_crossentropy", y_true, y_pred)
    if label_smoothing:
        num_classes = jnp.asarray(y_true.shape[-1], y_pred.dtype)
        y_true = y_true * (1.0 - label_smoothing) + (label_smoothing / num_classes)
    return -jnp.sum(y_true * _log_probs(y_pred, from_logits, axis), axis=axis)


def sparse_crossentropy_values(
    y_true, y_pred, from_logits: bool, ignore_class: Optional[int], axis: int
) -> tuple[jax.Array, Optional[jax.Array]]:
    """:func:`sparse_categorical_crossentropy` and the mask Keras attaches to its values:
    ``(values (B, ...), valid)``, ``valid`` ``(B, ...)`` booleans, False where the label is
    ``ignore_class`` (None without one)."""
    y_pred = jnp.asarray(y_pred)
    y_true = jnp.asarray(y_true)
    _check_axis(axis, y_pred.ndim)
    if y_true.ndim == y_pred.ndim and y_true.shape[axis] == 1:
        y_true = jnp.squeeze(y_true, axis)
    valid = None
    if ignore_class is not None:
        valid = y_true != jnp.asarray(ignore_class, y_pred.dtype)
        y_true = jnp.where(valid, y_true, 0)
        y_pred = jnp.where(jnp.expand_dims(valid, axis), y_pred, 0)
    labels = y_true.astype(jnp.int32)
    if labels.ndim == y_pred.ndim and labels.shape[-1] == 1:
        labels = jnp.squeeze(labels, -1)
    _check_same_shape("sparse_categorical_crossentropy", labels, y_pred, upto_last=True)
    log_prob = _log_probs(y_pred, from_logits, axis)
    # Keras: a label outside [0, C) has an all-zero one-hot row, hence a loss of 0.
    one_hot = jax.nn.one_hot(labels, y_pred.shape[axis], dtype=log_prob.dtype, axis=axis)
    res = -jnp.sum(one_hot * log_prob, axis=axis)
    if valid is not None:
        valid = jnp.reshape(valid, res.shape)
        res = jnp.where(valid, res, jnp.zeros_like(res))
    return res, valid


def sparse_categorical_crossentropy(
    y_true, y_pred, from_logits: bool = False, ignore_class: Optional[int] = None, axis: int = -1
) -> jax.Array:
    r"""Categorical cross-entropy with integer labels: :math:`-\log p_{y}`.

    ``y_true``: integer class ids ``(B, ...)`` or ``(B, ..., 1)``; ``y_pred``: ``(B, ..., C)``
    probabilities (renormalised and clipped as in :func:`categorical_crossentropy`) or logits;
    returns ``(B, ...)``. A label equal to ``ignore_class`` gets a loss of 0 (and, inside a
    :class:`SparseCategoricalCrossentropy`, no weight in the reduction).

    >>> import jax.numpy as jnp
    >>> sparse_categorical_crossentropy(jnp.array([1, 0]), jnp.array([[1.0, 3.0], [1.0, 3.0]]))
    Array([0.2876821, 1.3862944], dtype=float32)
    """
    return sparse_crossentropy_values(y_true, y_pred, from_logits, ignore_class, axis)[0]


# --- reduction -----------------------------------------------------------------------------------


def _check_reduction(reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction={reduction!r}; expected one of {', '.join(map(repr, REDUCTIONS))}.")


def _broadcast_or_raise(a, b, a_name: str, b_name: str):
    try:
        jnp.broadcast_shapes(jnp.shape(a), jnp.shape(b))
    except ValueError:
        raise ValueError(
            f"{b_name} of shape {jnp.shape(b)} does not broadcast against {a_name} of shape {jnp.shape(a)}. "
            "For per-sample values (B, T) of a sequence output, pass weights of shape (B, 1) or (B, T)."
        ) from None


def merge_mask(sample_weight, mask, dtype, reduction: Optional[str]):
    """Keras's ``apply_mask``: the mask (booleans, or nonzero where real) becomes (part of) the
    sample weights, returned in ``dtype`` (``sample_weight`` itself where ``mask`` is None). For ``"mean"`` and
    ``"sum_over_batch_size"`` a real entry weighs ``total/valid`` (0 if nothing is real), so the mean
    over all ``total`` entries equals the mean over the ``valid`` real ones."""
    if mask is None:
        return sample_weight
    mask = jnp.asarray(mask)
    mask = mask if mask.dtype == jnp.bool_ else mask != 0
    if reduction in ("mean", "sum_over_batch_size"):
        total = jnp.asarray(mask.size, dtype)
        valid = jnp.sum(mask.astype(dtype))
        float_mask = jnp.where(mask, divide_no_nan(total, valid), jnp.zeros((), dtype))
    else:
        float_mask = mask.astype(dtype)
    if sample_weight is None:
        return float_mask
    sample_weight = jnp.asarray(sample_weight, dtype)
    float_mask, sample_weight = squeeze_or_expand_to_same_rank(float_mask, sample_weight)
    _broadcast_or_raise(float_mask, sample_weight, "the mask", "sample_weight")
    return sample_weight * float_mask


def _reduce_values(values, sample_weight, reduction):
    if reduction in (None, "none") or values.shape in ((), (0,)):
        return values
    loss = jnp.sum(values)
    if reduction == "sum":
        return loss
    if reduction == "mean_with_sample_weight" and sample_weight is not None:
        divisor = jnp.sum(sample_weight).astype(loss.dtype)
    else:
        divisor = jnp.asarray(values.size, loss.dtype)
    return divide_no_nan(loss, divisor)


def reduce_weighted_values(values, sample_weight=None, mask=None, reduction="sum_over_batch_size"):
    r"""Keras's ``reduce_weighted_values``: merge ``mask`` into ``sample_weight``, weight ``values``
    and reduce them (see the module docstring for the formulas).

    >>> import jax.numpy as jnp
    >>> float(reduce_weighted_values(jnp.array([1.0, 2.0, 6.0]), mask=jnp.array([True, True, False])))
    1.5
    """
    _check_reduction(reduction)
    values = jnp.asarray(values)
    dtype = _float_dtype(values)
    values = values.astype(dtype)
    if sample_weight is not None:
        sample_weight = jnp.asarray(sample_weight, dtype)
    sample_weight = merge_mask(sample_weight, mask, dtype, reduction)
    if sample_weight is not None:
        values, sample_weight = squeeze_or_expand_to_same_rank(values, sample_weight)
        _broadcast_or_raise(values, sample_weight, "the per-sample loss values", "sample_weight")
        values = values * sample_weight
    return _reduce_values(values, sample_weight, reduction)


# --- loss objects --------------------------------------------------------------------------------


class Loss:
    """Base of the loss objects: ``__call__`` is Keras's ``Loss.__call__``; a subclass defines
    :meth:`call` (per-sample values) and is a frozen dataclass with ``reduction`` and ``name``."""

    reduction: Optional[str]
    name: str

    def __post_init__(self):
        _check_reduction(self.reduction)
        if not isinstance(self.name, str):
            raise ValueError(f"name={self.name!r}; expected a string.")

    def _values(self, y_true, y_pred):
        """(per-sample values, a mask the loss itself puts on them or None)."""
        return self.call(y_true, y_pred), None

    def call(self, y_true, y_pred) -> jax.Array:
        """Per-sample values, the last axis reduced: ``(B, ..., C) -> (B, ...)``."""
        raise NotImplementedError

    def __call__(self, y_true, y_pred, sample_weight=None, mask=None) -> jax.Array:
        """The reduced loss. ``mask``: the output mask (Keras's mask on ``y_pred``), shaped like the
        per-sample values, e.g. ``(B, T)`` for a sequence output ``(B, T, C)``; ``sample_weight``:
        broadcastable against those values after ``squeeze_or_expand_to_same_rank``."""
        dtype = _float_dtype(y_pred)
        y_pred = jnp.asarray(y_pred, dtype)
        y_true = jnp.asarray(y_true, dtype)
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        values, out_mask = self._values(y_true, y_pred)
        if mask is not None:
            mask = jnp.asarray(mask)
            mask = mask if mask.dtype == jnp.bool_ else mask != 0
            if out_mask is not None:
                _broadcast_or_raise(out_mask, mask, "the per-sample loss values", "mask")
                mask = mask & out_mask
        else:
            mask = out_mask
        if mask is not None:
            _broadcast_or_raise(values, mask, "the per-sample loss values", "mask")
        return reduce_weighted_values(values, sample_weight=sample_weight, mask=mask, reduction=self.reduction)


def check_label_smoothing(value) -> float:
    """``label_smoothing`` checked: a float in [0, 1]."""
    return checks.real("label_smoothing", value, 0, 1)


@dataclasses.dataclass(frozen=True)
class MeanSquaredError(Loss):
    """Keras ``MeanSquaredError``: :func:`mean_squared_error`, reduced.

    >>> import jax.numpy as jnp
    >>> float(MeanSquaredError()(jnp.array([[0.0], [2.0]]), jnp.array([[1.0], [0.0]])))
    2.5
    """

    reduction: Optional[str] = "sum_over_batch_size"
    name: str = "mean_squared_error"

    def call(self, y_true, y_pred):
        return mean_squared_error(y_true, y_pred)


@dataclasses.dataclass(frozen=True)
class MeanAbsoluteError(Loss):
    """Keras ``MeanAbsoluteError``: :func:`mean_absolute_error`, reduced.

    >>> import jax.numpy as jnp
    >>> float(MeanAbsoluteError(reduction="sum")(jnp.array([[0.0], [2.0]]), jnp.array([[1.0], [0.0]])))
    3.0
    """

    reduction: Optional[str] = "sum_over_batch_size"
    name: str = "mean_absolute_error"

    def call(self, y_true, y_pred):
        return mean_absolute_error(y_true, y_pred)


@dataclasses.dataclass(frozen=True)
class Huber(Loss):
    """Keras ``Huber``: :func:`huber` with threshold ``delta``, reduced.

    >>> import jax.numpy as jnp
    >>> float(Huber(delta=2.0)(jnp.array([[0.0]]), jnp.array([[3.0]])))
    4.0
    """

    delta: float = 1.0
    reduction: Optional[str] = "sum_over_batch_size"
    name: str = "huber_loss"

    def __post_init__(self):
        super().__post_init__()
        checks.real("delta", self.delta, 0)

    def call(self, y_true, y_pred):
        return huber(y_true, y_pred, delta=self.delta)


@dataclasses.dataclass(frozen=True)
class BinaryCrossentropy(Loss):
    """Keras ``BinaryCrossentropy``: :func:`binary_crossentropy`, reduced.

    >>> import jax.numpy as jnp
    >>> round(float(BinaryCrossentropy(from_logits=True)(jnp.array([[1.0]]), jnp.array([[0.0]]))), 6)
    0.693147
    """

    from_logits: bool = False
    label_smoothing: float = 0.0
    axis: int = -1
    reduction: Optional[str] = "sum_over_batch_size"
    name: str = "binary_crossentropy"

    def __post_init__(self):
        super().__post_init__()
        checks.boolean("from_logits", self.from_logits)
        check_label_smoothing(self.label_smoothing)

    def call(self, y_true, y_pred):
        return binary_crossentropy(y_true, y_pred, self.from_logits, self.label_smoothing, self.axis)


@dataclasses.dataclass(frozen=True)
class CategoricalCrossentropy(Loss):
    """Keras ``CategoricalCrossentropy``: :func:`categorical_crossentropy`, reduced.

    >>> import jax.numpy as jnp
    >>> round(float(CategoricalCrossentropy()(jnp.array([[0.0, 1.0]]), jnp.array([[0.5, 0.5]]))), 6)
    0.693147
    """

    from_logits: bool = False
    label_smoothing: float = 0.0
    axis: int = -1
    reduction: Optional[str] = "sum_over_batch_size"
    name: str = "categorical_crossentropy"

    def __post_init__(self):
        super().__post_init__()
        checks.boolean("from_logits", self.from_logits)
        check_label_smoothing(self.label_smoothing)

    def call(self, y_true, y_pred):
        return categorical_crossentropy(y_true, y_pred, self.from_logits, self.label_smoothing, self.axis)


@dataclasses.dataclass(frozen=True)
class SparseCategoricalCrossentropy(Loss):
    """Keras ``SparseCategoricalCrossentropy``: :func:`sparse_categorical_crossentropy`, reduced.
    Entries whose label is ``ignore_class`` are masked out of the reduction, as Keras does.

    >>> import jax.numpy as jnp
    >>> loss = SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1)
    >>> round(float(loss(jnp.array([0, -1]), jnp.array([[0.0, 0.0], [5.0, 0.0]]))), 6)  # only row 0 counts
    0.693147
    """

    from_logits: bool = False
    ignore_class: Optional[int] = None
    reduction: Optional[str] = "sum_over_batch_size"
    axis: int = -1
    name: str = "sparse_categorical_crossentropy"

    def __post_init__(self):
        super().__post_init__()
        checks.boolean("from_logits", self.from_logits)
        if self.ignore_class is not None and not checks.is_integer(self.ignore_class):
            raise ValueError(f"ignore_class={self.ignore_class!r}; expected an integer or None.")

    def _values(self, y_true, y_pred):
        return sparse_crossentropy_values(y_true, y_pred, self.from_logits, self.ignore_class, self.axis)

    def call(self, y_true, y_pred):
        return self._values(y_true, y_pred)[0]


@dataclasses.dataclass(frozen=True)
class FunctionLoss(Loss):
    """A user's per-sample function ``fn(y_true, y_pred) -> values`` (the last axis reduced) with
    Keras's weighting and reduction, as Keras's ``LossFunctionWrapper``. ``name`` defaults to the
    function's ``__name__``. ``fn`` must be hashable (a plain function is) for use under ``jit``.

    >>> import jax.numpy as jnp
    >>> def l4(y_true, y_pred):
    ...     return jnp.mean((y_true - y_pred) ** 4, axis=-1)
    >>> loss = FunctionLoss(l4)
    >>> loss.name, float(loss(jnp.array([[0.0], [0.0]]), jnp.array([[1.0], [2.0]])))
    ('l4', 8.5)
    """

    fn: Optional[Callable] = None
    reduction: Optional[str] = "sum_over_batch_size"
    # None only as the default: __post_init__ replaces it by fn's name, so a built loss's name is a str.
    name: Optional[str] = None  # type: ignore[assignment]

    def __post_init__(self):
        if not callable(self.fn):
            raise ValueError(f"fn={self.fn!r}; expected a callable (y_true, y_pred) -> per-sample values.")
        if self.name is None:
            object.__setattr__(self, "name", getattr(self.fn, "__name__", type(self.fn).__name__))
        super().__post_init__()

    def call(self, y_true, y_pred):
        fn = self.fn
        if fn is None:  # __post_init__ rejects a missing fn; this tells the type checker
            raise ValueError("fn=None; expected a callable (y_true, y_pred) -> per-sample values.")
        return jnp.asarray(fn(y_true, y_pred))


# --- by name -------------------------------------------------------------------------------------

# Keras's ``losses.get`` names: function names and their short aliases give the function (which
# ``compile`` wraps under the string as its name), class names give the class with its default name.
_FUNCTION_NAMES = {
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,
    "MSE": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError,
    "mae": MeanAbsoluteError,
    "MAE": MeanAbsoluteError,
    "huber": Huber,
    "binary_crossentropy": BinaryCrossentropy,
    "bce": BinaryCrossentropy,
    "BCE": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
}
_CLASS_NAMES = {
    cls.__name__: cls
    for cls in (
        MeanSquaredError,
        MeanAbsoluteError,
        Huber,
        BinaryCrossentropy,
        CategoricalCrossentropy,
        SparseCategoricalCrossentropy,
    )
}
_SHAPE_NAMES = ("crossentropy", "ce")  # resolved from the shapes of y_true and y_pred, as Keras's compile does
NAMES = tuple(_FUNCTION_NAMES) + tuple(_CLASS_NAMES) + _SHAPE_NAMES


def shape_of(x) -> Optional[tuple]:
    """The shape of an array, or a shape given as a tuple or list, as a tuple (None stays None)."""
    if x is None:
        return None
    return tuple(x) if isinstance(x, (tuple, list)) else tuple(jnp.shape(x))


def is_binary_or_sparse_categorical(y_true_shape, y_pred_shape) -> tuple[bool, bool]:
    """Keras's ``compile`` rule: binary when ``y_pred`` ends in 1; sparse categorical when ``y_true``
    has the lower rank, or ends in 1 while ``y_pred`` ends in more than 1."""
    is_binary = y_pred_shape[-1] == 1
    is_sparse = len(y_true_shape) < len(y_pred_shape) or (y_true_shape[-1] == 1 and y_pred_shape[-1] > 1)
    return is_binary, is_sparse


def get(identifier: Union[str, Loss, Callable], y_true=None, y_pred=None) -> Loss:
    """A :class:`Loss` for a Keras loss name, a :class:`Loss` passed through, or a callable
    ``(y_true, y_pred) -> per-sample values`` wrapped in :class:`FunctionLoss`.

    Names as Keras's ``compile(loss=...)`` takes them: function names and their aliases
    (``"mse"``, ``"mean_squared_error"``, ``"mae"``, ``"mean_absolute_error"``, ``"huber"``,
    ``"binary_crossentropy"``/``"bce"``, ``"categorical_crossentropy"``,
    ``"sparse_categorical_crossentropy"``) give a loss named by that string; class names
    (``"MeanSquaredError"``, ...) give the class with its default name and arguments.
    ``"crossentropy"`` and ``"ce"`` pick binary, sparse categorical or categorical cross-entropy from
    ``y_true`` and ``y_pred`` (arrays or shapes), as ``compile`` does.

    >>> get("mse")
    MeanSquaredError(reduction='sum_over_batch_size', name='mse')
    >>> get("ce", y_true=(8, 1), y_pred=(8, 5)).name
    'ce'
    """
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        if identifier.lower() in _SHAPE_NAMES:
            if y_true is None or y_pred is None:
                raise ValueError(
                    f"loss={identifier!r} is resolved from the shapes of y_true and y_pred; "
                    "pass both (arrays or shapes) to get."
                )
            is_binary, is_sparse = is_binary_or_sparse_categorical(shape_of(y_true), shape_of(y_pred))
            cls = (
                BinaryCrossentropy
                if is_binary
                else SparseCategoricalCrossentropy
                if is_sparse
                else CategoricalCrossentropy
            )
            return cls(name=identifier)
        if identifier in _FUNCTION_NAMES:
            return _FUNCTION_NAMES[identifier](name=identifier)
        if identifier in _CLASS_NAMES:
            return _CLASS_NAMES[identifier]()
    elif callable(identifier):
        return FunctionLoss(identifier)
    raise ValueError(
        f"loss={identifier!r}; expected a Loss, a callable (y_true, y_pred) -> per-sample values, "
        f"or one of {', '.join(NAMES)}."
    )
