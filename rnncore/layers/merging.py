r"""Merge layers, which take a list of inputs: Keras's ``Concatenate``, ``Add``, ``Subtract``,
``Multiply`` and ``Average``.

``apply(params, xs, mask=None, ...)`` takes ``xs`` a list (or tuple) of arrays with the batch
first, ``mask`` None or a list with one entry per input (each None or a boolean ``(B, T)``), and
``input_shape`` is a list of shapes without the batch. None of them has weights (params ``()``).

Elementwise merges (Keras ``Merge``): inputs of equal rank broadcast as NumPy does (sizes equal or
1); an input of lower rank first gets axes of size 1 inserted after the batch until the ranks
agree. ``Add`` gives :math:`\sum_i x_i`, ``Subtract`` :math:`x_1 - x_2` (exactly two inputs),
``Average`` :math:`\frac1n \sum_i x_i`, ``Multiply`` :math:`\prod_i x_i`; the mask passed on is
the OR of the input masks, or None unless every input has one. ``Multiply`` alone reads the masks
(Keras 3, inputs of equal rank): a masked entry of an input counts as 1 in the product, and when
every input has a mask the entries masked in all of them are 0.

``Concatenate(axis=-1)`` joins the inputs along ``axis`` (counted with the batch, which it may not
be). Its mask, where any input has one: each input's mask repeated over that input's last axis
(all True for an input without one), concatenated along ``axis``, then OR-ed over the last axis.
Along the features (``axis=-1``) that is the OR of the masks, and all True as soon as one input has
none; along time (``axis=1``) it is the masks joined in time.

Example:
    >>> import jax.numpy as jnp
    >>> from rnncore import layers
    >>> a, b = jnp.ones((2, 3, 4)), jnp.ones((2, 3, 1))
    >>> layers.Concatenate().apply((), [a, b]).shape, layers.Add().apply((), [a, b]).shape
    ((2, 3, 5), (2, 3, 4))
    >>> m1, m2 = jnp.array([[1, 1, 0]] * 2, bool), jnp.array([[1, 0, 0]] * 2, bool)
    >>> layers.Concatenate(axis=1).compute_mask([a, a], [m1, None])[0].tolist()
    [True, True, False, True, True, True]
    >>> layers.Add().compute_mask([a, a], [m1, m2])[0].tolist()
    [True, True, False]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Optional, Sequence

import jax
import jax.numpy as jnp

from .. import checks
from .inputs import shape_str

__all__ = ["Concatenate", "Add", "Subtract", "Multiply", "Average", "check_merge_inputs", "check_merge_masks"]


def check_merge_inputs(who: str, xs: Any, count: Optional[int] = None) -> list:
    """``xs`` as a list of floating arrays with one batch size (``count`` of them where given), or a
    clear ValueError."""
    if not isinstance(xs, (list, tuple)):
        raise ValueError(f"{who} inputs must be a list of arrays; got {type(xs).__name__}.")
    want = "at least 1" if count is None else f"exactly {count}"
    if (count is None and not xs) or (count is not None and len(xs) != count):
        raise ValueError(f"{who} inputs must be a list of {want} arrays; got {len(xs)}.")
    xs = [jnp.asarray(x) for x in xs]
    for i, x in enumerate(xs):
        if x.ndim < 1 or not jnp.issubdtype(x.dtype, jnp.floating):
            raise ValueError(
                f"{who} inputs[{i}] must be a floating array with a batch axis; got shape {shape_str(x)} and "
                f"dtype {x.dtype}."
            )
    batches = {x.shape[0] for x in xs}
    if len(batches) > 1:
        raise ValueError(f"{who} inputs have different batch sizes: shapes {[tuple(x.shape) for x in xs]}.")
    return xs


def check_merge_masks(who: str, mask: Any, xs: Sequence) -> Optional[list]:
    """None, or ``mask`` as a list with one entry per input (None or a boolean array whose shape
    leads its input's), or a clear ValueError."""
    if mask is None:
        return None
    if not isinstance(mask, (list, tuple)) or len(mask) != len(xs):
        n = len(mask) if isinstance(mask, (list, tuple)) else type(mask).__name__
        raise ValueError(f"{who} mask must be None or a list with one entry per input ({len(xs)}); got {n}.")
    out: list = []
    for i, (m, x) in enumerate(zip(mask, xs)):
        if m is None:
            out.append(None)
            continue
        m = jnp.asarray(m)
        if m.ndim > jnp.ndim(x) or tuple(m.shape) != tuple(jnp.shape(x))[: m.ndim]:
            raise ValueError(
                f"{who} mask[{i}] must have shape (batch, time) leading its input's {shape_str(x)}; got shape "
                f"{shape_str(m)}."
            )
        if not (m.dtype == jnp.bool_ or jnp.issubdtype(m.dtype, jnp.integer)):
            raise ValueError(f"{who} mask[{i}] must be boolean (True where a step is real); got dtype {m.dtype}.")
        out.append(m.astype(bool))
    return out


def _check_shapes(who: str, input_shape: Any) -> list:
    if (
        not isinstance(input_shape, (list, tuple))
        or not input_shape
        or not all(isinstance(s, (list, tuple)) for s in input_shape)
    ):
        raise ValueError(f"{who} input_shape={input_shape!r}; expected a list of shapes (one per input).")
    return [tuple(s) for s in input_shape]


def _broadcast_shape(who: str, shapes: list) -> tuple:
    """Keras's elementwise output shape (batch excluded): right-aligned, sizes equal or 1, None unknown."""
    out: tuple = ()
    for shape in shapes:
        longer, shorter = (out, shape) if len(out) >= len(shape) else (shape, out)
        lead = tuple(longer[: len(longer) - len(shorter)])
        tail: list = []
        for i, j in zip(longer[len(longer) - len(shorter) :], shorter):
            if i is None or j is None:
                tail.append(None)
            elif i == 1 or j == 1:
                tail.append(j if i == 1 else i)
            elif i != j:
                raise ValueError(f"{who} inputs have incompatible shapes {shapes}; expected sizes equal or 1.")
            else:
                tail.append(i)
        out = lead + tuple(tail)
    return out


@dataclass(frozen=True)
class _Merge:
    """Keras ``Merge``: an elementwise op over the inputs; the mask passed on is the OR of the masks."""

    supports_masking = True
    _count: ClassVar[Optional[int]] = None  # how many inputs it takes (None: any number)

    def init(self, key, input_shape, dtype=jnp.float32):
        _check_shapes(type(self).__name__, input_shape)
        return ()

    def compute_output_shape(self, input_shape):
        shapes = _check_shapes(type(self).__name__, input_shape)
        if self._count is not None and len(shapes) != self._count:
            raise ValueError(f"{type(self).__name__} takes exactly {self._count} inputs; got {len(shapes)} shapes.")
        return _broadcast_shape(type(self).__name__, shapes)

    def compute_mask(self, xs, mask):
        masks = check_merge_masks(type(self).__name__, mask, xs)
        if masks is None or any(m is None for m in masks):
            return None
        out = masks[0]
        for m in masks[1:]:
            out = jnp.logical_or(out, m)
        return out

    def _inputs(self, xs) -> list:
        who = type(self).__name__
        xs = check_merge_inputs(who, xs, self._count)
        self.compute_output_shape([x.shape[1:] for x in xs])
        rank = max(x.ndim for x in xs)
        return [x.reshape(x.shape[:1] + (1,) * (rank - x.ndim) + x.shape[1:]) for x in xs]

    def _merge(self, xs: list) -> jax.Array:
        raise NotImplementedError

    def apply(self, params, xs, mask=None, training=False, rng=None):
        """The merged inputs (the masks are not read; see :class:`Multiply`)."""
        xs = self._inputs(xs)
        check_merge_masks(type(self).__name__, mask, xs)
        return self._merge(xs)


@dataclass(frozen=True)
class Add(_Merge):
    """Keras ``Add()``: :math:`\\sum_i x_i` (module docstring)."""

    def _merge(self, xs):
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


@dataclass(frozen=True)
class Subtract(_Merge):
    """Keras ``Subtract()``: :math:`x_1 - x_2`, exactly two inputs (module docstring)."""

    _count: ClassVar[Optional[int]] = 2

    def _merge(self, xs):
        return xs[0] - xs[1]


@dataclass(frozen=True)
class Average(_Merge):
    """Keras ``Average()``: :math:`\\frac1n \\sum_i x_i` (module docstring)."""

    def _merge(self, xs):
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out / len(xs)


@dataclass(frozen=True)
class Multiply(_Merge):
    """Keras ``Multiply()``: :math:`\\prod_i x_i`, with Keras 3's masking: a masked entry counts as 1,
    and where every input has a mask the entries masked in all of them are 0 (module docstring)."""

    def apply(self, params, xs, mask=None, training=False, rng=None):
        raw = check_merge_inputs(type(self).__name__, xs)
        masks = check_merge_masks(type(self).__name__, mask, raw)
        xs = self._inputs(raw)
        if masks is None or len({x.ndim for x in raw}) > 1:  # Keras: reshaped inputs carry no mask
            return self._merge(xs)
        full = [None if m is None else jnp.broadcast_to(m[..., None], x.shape) for m, x in zip(masks, xs)]
        out: Any = None
        for x, m in zip(xs, full):
            x = x if m is None else jnp.where(m, x, jnp.ones((), x.dtype))
            out = x if out is None else out * x
        if all(m is not None for m in full):
            kept = full[0]
            for m in full[1:]:
                kept = jnp.logical_or(kept, m)
            out = jnp.where(kept, out, jnp.zeros((), out.dtype))
        return out

    def _merge(self, xs):
        out = xs[0]
        for x in xs[1:]:
            out = out * x
        return out


@dataclass(frozen=True)
class Concatenate:
    """Keras ``Concatenate(axis=-1)``: the inputs joined along ``axis`` (module docstring)."""

    axis: int = -1

    supports_masking = True

    def __post_init__(self):
        checks.integer("Concatenate axis", self.axis)

    def init(self, key, input_shape, dtype=jnp.float32):
        self.compute_output_shape(input_shape)
        return ()

    def _axis(self, rank: int) -> int:
        """The axis in the full shape (batch first), as a non-negative index."""
        if not -rank <= self.axis < rank or self.axis % rank == 0:
            raise ValueError(
                f"Concatenate axis={self.axis}; expected an axis of the inputs other than the batch (rank {rank}: "
                f"1..{rank - 1} or -{rank - 1}..-1)."
            )
        return self.axis % rank

    def compute_output_shape(self, input_shape):
        shapes = _check_shapes("Concatenate", input_shape)
        if len({len(s) for s in shapes}) > 1:
            raise ValueError(f"Concatenate inputs must have one rank; got shapes {shapes}.")
        axis = self._axis(len(shapes[0]) + 1) - 1
        out = list(shapes[0])
        for shape in shapes[1:]:
            for d, (a, b) in enumerate(zip(out, shape)):
                if d != axis and a is not None and b is not None and a != b:
                    raise ValueError(
                        f"Concatenate inputs must match except along axis={self.axis}; got shapes {shapes}."
                    )
                if d != axis and a is None:
                    out[d] = b
            out[axis] = None if out[axis] is None or shape[axis] is None else out[axis] + shape[axis]
        return tuple(out)

    def compute_mask(self, xs, mask):
        masks = check_merge_masks("Concatenate", mask, xs)
        if masks is None or all(m is None for m in masks):
            return None
        full = []
        for x, m in zip(xs, masks):
            shape = jnp.shape(x)
            if m is None:
                full.append(jnp.ones(shape, bool))
            elif m.ndim < len(shape):
                full.append(jnp.broadcast_to(m[..., None], m.shape + shape[m.ndim :]))
            else:
                full.append(m)
        return jnp.any(jnp.concatenate(full, axis=self._axis(len(jnp.shape(xs[0])))), axis=-1)

    def apply(self, params, xs, mask=None, training=False, rng=None):
        xs = check_merge_inputs("Concatenate", xs)
        check_merge_masks("Concatenate", mask, xs)
        self.compute_output_shape([x.shape[1:] for x in xs])
        return jnp.concatenate(xs, axis=self._axis(xs[0].ndim))
