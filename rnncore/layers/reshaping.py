"""Keras 3's weightless shape layers: ``RepeatVector``, ``Flatten``, ``Reshape``, ``Permute``.

Shapes below include the batch ``B``, which none of these layers touches:

* ``RepeatVector(n)``: ``(B, F) -> (B, n, F)``, ``y[:, t] = x`` for every ``t``;
* ``Flatten()``: ``(B, d1, ..., dk) -> (B, d1···dk)`` in row-major order (``(B,) -> (B, 1)``);
  ``data_format="channels_first"`` first moves axis 1 last, as Keras does;
* ``Reshape(target_shape)``: ``(B, ...) -> (B, *target_shape)``, one entry may be ``-1`` (inferred);
* ``Permute(dims)``: ``(B, d1, ..., dk) -> (B, d_{dims[0]}, ..., d_{dims[k-1]})``, ``dims`` a
  permutation of ``1..k``.

Masks: none of these layers supports masking in Keras 3, which drops an incoming mask (with a
warning) so that no later layer sees it; ``compute_mask`` returns None here.

Example:
    >>> import jax.numpy as jnp
    >>> from rnncore import layers
    >>> x = jnp.arange(6.0).reshape(1, 2, 3)
    >>> layers.Reshape((3, -1)).apply((), x).shape, layers.Permute((2, 1)).apply((), x).shape
    ((1, 3, 2), (1, 3, 2))
    >>> layers.Flatten().apply((), x).tolist(), layers.RepeatVector(2).apply((), x[:, 0]).shape
    ([[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]], (1, 2, 3))
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax.numpy as jnp

from .. import checks
from .inputs import shape_str


def _array(x, who: str, min_rank: int = 1):
    if not hasattr(x, "shape"):
        x = jnp.asarray(x)
    if len(x.shape) < min_rank:
        raise ValueError(f"{who} inputs must have rank >= {min_rank} (batch included); got shape {shape_str(x)}.")
    return jnp.asarray(x)


class _Weightless:
    """No weights; the mask is dropped, as Keras drops it for a layer that does not support masking."""

    supports_masking = False

    def init(self, key, input_shape, dtype=jnp.float32):
        return ()

    def compute_mask(self, x, mask):
        return None


@dataclass(frozen=True)
class RepeatVector(_Weightless):
    """Keras ``RepeatVector(n)``: ``(B, F) -> (B, n, F)``."""

    n: int

    def __post_init__(self):
        object.__setattr__(self, "n", checks.positive_int("RepeatVector n", self.n))

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 1:
            raise ValueError(f"RepeatVector input_shape={tuple(input_shape)}; expected (features,) (2-D inputs).")
        return (self.n, input_shape[0])

    def apply(self, params, x, mask=None, training=False, rng=None):
        x = _array(x, "RepeatVector")
        if x.ndim != 2:
            raise ValueError(f"RepeatVector inputs must have shape (batch, features); got shape {shape_str(x)}.")
        return jnp.repeat(x[:, None, :], self.n, axis=1)


@dataclass(frozen=True)
class Flatten(_Weightless):
    """Keras ``Flatten(data_format="channels_last")``: every axis but the batch into one."""

    data_format: str = "channels_last"

    def __post_init__(self):
        checks.one_of("Flatten data_format", self.data_format, ("channels_last", "channels_first"))

    def compute_output_shape(self, input_shape):
        if len(input_shape) == 0:
            return (1,)
        if any(d is None for d in input_shape):
            return (None,)
        return (math.prod(input_shape),)

    def apply(self, params, x, mask=None, training=False, rng=None):
        x = _array(x, "Flatten")
        if self.data_format == "channels_first" and x.ndim > 2:
            x = jnp.transpose(x, (0, *range(2, x.ndim), 1))
        return x.reshape(x.shape[0], -1) if x.ndim > 1 else x.reshape(x.shape[0], 1)


def _resolved(input_shape: tuple, target: tuple, who: str) -> tuple:
    """``target`` with its ``-1`` resolved for ``input_shape`` (batch excluded), or None where unknown."""
    if any(d is None for d in input_shape):
        return tuple(None if d == -1 else d for d in target)
    size = math.prod(input_shape)
    known = math.prod(d for d in target if d != -1)
    if -1 in target:
        if known == 0 or size % known:
            raise ValueError(
                f"{who} target_shape={target} cannot hold the {size} entries of each example "
                f"(input shape {input_shape} without the batch)."
            )
        return tuple(size // known if d == -1 else d for d in target)
    if known != size:
        raise ValueError(
            f"{who} target_shape={target} holds {known} entries; each example has {size} "
            f"(input shape {input_shape} without the batch)."
        )
    return target


@dataclass(frozen=True)
class Reshape(_Weightless):
    """Keras ``Reshape(target_shape)``: each example reshaped (row-major) to ``target_shape``; at most
    one ``-1``."""

    target_shape: tuple

    def __post_init__(self):
        target = self.target_shape
        ok = isinstance(target, (tuple, list)) and all(checks.is_integer(d) and d >= -1 for d in target)
        if not ok or list(target).count(-1) > 1:
            raise ValueError(
                f"Reshape target_shape={target!r}; expected a tuple of non-negative integers with at most one -1."
            )
        object.__setattr__(self, "target_shape", tuple(int(d) for d in target))

    def compute_output_shape(self, input_shape):
        return _resolved(tuple(input_shape), self.target_shape, "Reshape")

    def apply(self, params, x, mask=None, training=False, rng=None):
        x = _array(x, "Reshape")
        return x.reshape((x.shape[0],) + _resolved(tuple(x.shape[1:]), self.target_shape, "Reshape"))


@dataclass(frozen=True)
class Permute(_Weightless):
    """Keras ``Permute(dims)``: the non-batch axes reordered, ``dims`` a permutation of ``1..k``."""

    dims: tuple

    def __post_init__(self):
        dims = self.dims
        ok = isinstance(dims, (tuple, list)) and all(checks.is_integer(d) for d in dims)
        if not ok or sorted(dims) != list(range(1, len(dims) + 1)):
            raise ValueError(f"Permute dims={dims!r}; expected a permutation of 1..k (the batch axis 0 stays).")
        object.__setattr__(self, "dims", tuple(int(d) for d in dims))

    def _check_rank(self, rank: int, shape) -> None:
        if rank != len(self.dims):
            raise ValueError(
                f"Permute dims={self.dims} needs inputs of rank {len(self.dims) + 1} (batch included); "
                f"got shape {tuple(shape)}."
            )

    def compute_output_shape(self, input_shape):
        self._check_rank(len(input_shape), (None, *input_shape))
        return tuple(input_shape[d - 1] for d in self.dims)

    def apply(self, params, x, mask=None, training=False, rng=None):
        x = _array(x, "Permute")
        self._check_rank(x.ndim - 1, x.shape)
        return jnp.transpose(x, (0,) + self.dims)
