r"""Pooling over time, channels last: Keras's ``MaxPooling1D``, ``AveragePooling1D``,
``GlobalMaxPooling1D`` and ``GlobalAveragePooling1D``.

Windowed pooling with pool size p and stride s (``strides=None`` means s = p) reduces the windows
:math:`\{ts, \dots, ts + p - 1\}` of the time axis, padded as Keras pads it
(:func:`rnncore.layers.convolution.conv_padding` with dilation 1): ``"valid"`` none, so
:math:`\lfloor (T - p)/s \rfloor + 1` outputs; ``"same"`` :math:`\lceil T/s \rceil` outputs, the
padding split with the smaller half on the left. Padding never wins a maximum (it is
:math:`-\infty`), and the ``"same"`` average divides by the number of *real* entries in the window,
not by p (Keras: "the padding is excluded").

Global pooling reduces the whole time axis: :math:`\max_t x_{b,t,c}` and
:math:`\frac{1}{T}\sum_t x_{b,t,c}` (``keepdims=True`` keeps it as length 1).

Masks, as Keras 3 treats them: ``GlobalAveragePooling1D`` supports masking and averages over the
real steps only, :math:`\sum_t m_{b,t} x_{b,t,c} / \sum_t m_{b,t}` (a row with every step
masked gives 0/0 = NaN, as in Keras); the other three do not support masking: given a mask they
compute as without one (masked steps included). None of them passes a mask on.

Example:
    >>> import jax.numpy as jnp
    >>> from rnncore import layers
    >>> x = jnp.arange(5.0).reshape(1, 5, 1)
    >>> layers.MaxPooling1D(2).apply((), x)[0, :, 0].tolist()
    [1.0, 3.0]
    >>> layers.AveragePooling1D(2, padding="same").apply((), x)[0, :, 0].tolist()
    [0.5, 2.5, 4.0]
    >>> mask = jnp.array([[True, True, False, False, True]])
    >>> layers.GlobalAveragePooling1D().apply((), x, mask)[0].tolist()
    [1.6666666269302368]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import jax
import jax.numpy as jnp

from .. import checks
from .convolution import check_channels_last, conv_output_length, conv_padding, one_int
from .inputs import check_mask, shape_str

__all__ = ["MaxPooling1D", "AveragePooling1D", "GlobalMaxPooling1D", "GlobalAveragePooling1D"]


def _check_inputs(who: str, x) -> jax.Array:
    x = jnp.asarray(x)
    if x.ndim != 3 or not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(
            f"{who} inputs must be floating (batch, time, channels); got shape {shape_str(x)} and dtype {x.dtype}."
        )
    return x


def _check_shape(who: str, input_shape) -> tuple:
    shape = tuple(input_shape)
    if len(shape) != 2:
        raise ValueError(f"{who} input_shape={shape}; expected (time, channels).")
    return shape


@dataclass(frozen=True)
class _Pooling1D:
    pool_size: Any = 2
    strides: Any = None
    padding: str = "valid"
    data_format: Optional[str] = None

    supports_masking = False

    def __post_init__(self):
        who = type(self).__name__
        object.__setattr__(self, "pool_size", one_int(f"{who} pool_size", self.pool_size))
        strides = self.pool_size if self.strides is None else one_int(f"{who} strides", self.strides)
        object.__setattr__(self, "strides", strides)
        padding = self.padding.lower() if isinstance(self.padding, str) else self.padding
        object.__setattr__(self, "padding", checks.one_of(f"{who} padding", padding, ("valid", "same")))
        check_channels_last(who, self.data_format)
        object.__setattr__(self, "data_format", None)

    def init(self, key, input_shape, dtype=jnp.float32):
        return ()

    def compute_output_shape(self, input_shape):
        shape = _check_shape(type(self).__name__, input_shape)
        length = conv_output_length(shape[0], self.pool_size, self.strides, 1, self.padding)
        if length is not None and length < 1:
            raise ValueError(
                f"{type(self).__name__} input length {shape[0]} is shorter than pool_size={self.pool_size} "
                "with padding='valid'; the output would be empty."
            )
        return (length, shape[1])

    def compute_mask(self, x, mask):
        return None

    def _windows(self, x, init, op):
        x = _check_inputs(type(self).__name__, x)
        self.compute_output_shape(x.shape[1:])
        pad = conv_padding(x.shape[1], self.pool_size, self.strides, 1, self.padding)
        return jax.lax.reduce_window(x, init, op, (1, self.pool_size, 1), (1, self.strides, 1), ((0, 0), pad, (0, 0)))


@dataclass(frozen=True)
class MaxPooling1D(_Pooling1D):
    """Keras ``MaxPooling1D(pool_size=2, strides=None, padding="valid")`` (module docstring)."""

    def apply(self, params, x, mask=None, training=False, rng=None):
        """The maximum of each window, ``(B, T', C)``; ``mask`` is ignored (Keras drops it)."""
        return self._windows(x, -jnp.inf, jax.lax.max)


@dataclass(frozen=True)
class AveragePooling1D(_Pooling1D):
    """Keras ``AveragePooling1D(pool_size, strides=None, padding="valid")`` (module docstring); as in
    Keras, ``pool_size`` has no default."""

    pool_size: Any = None

    def __post_init__(self):
        if self.pool_size is None:
            raise ValueError("AveragePooling1D needs pool_size (a positive integer); Keras gives it no default.")
        super().__post_init__()

    def apply(self, params, x, mask=None, training=False, rng=None):
        """The mean of each window's real entries, ``(B, T', C)``; ``mask`` is ignored (Keras drops it)."""
        total = self._windows(x, 0.0, jax.lax.add)
        if self.padding == "valid":
            return total / self.pool_size
        ones = jnp.ones((1, jnp.shape(x)[1], 1), total.dtype)
        return total / self._windows(ones, 0.0, jax.lax.add)


@dataclass(frozen=True)
class _GlobalPooling1D:
    data_format: Optional[str] = None
    keepdims: bool = False

    def __post_init__(self):
        check_channels_last(type(self).__name__, self.data_format)
        object.__setattr__(self, "data_format", None)
        checks.boolean(f"{type(self).__name__} keepdims", self.keepdims)

    def init(self, key, input_shape, dtype=jnp.float32):
        return ()

    def compute_output_shape(self, input_shape):
        shape = _check_shape(type(self).__name__, input_shape)
        return (1, shape[1]) if self.keepdims else (shape[1],)

    def compute_mask(self, x, mask):
        return None


@dataclass(frozen=True)
class GlobalMaxPooling1D(_GlobalPooling1D):
    """Keras ``GlobalMaxPooling1D(keepdims=False)``: the maximum over time, ``(B, C)`` (``(B, 1, C)``
    with ``keepdims``); a mask is ignored, as Keras drops it."""

    supports_masking = False

    def apply(self, params, x, mask=None, training=False, rng=None):
        x = _check_inputs(type(self).__name__, x)
        return jnp.max(x, axis=1, keepdims=self.keepdims)


@dataclass(frozen=True)
class GlobalAveragePooling1D(_GlobalPooling1D):
    """Keras ``GlobalAveragePooling1D(keepdims=False)``: the mean over time, over the real steps only
    when a mask is given (module docstring)."""

    supports_masking = True

    def apply(self, params, x, mask=None, training=False, rng=None):
        x = _check_inputs(type(self).__name__, x)
        mask = check_mask(mask, x)
        if mask is None:
            return jnp.mean(x, axis=1, keepdims=self.keepdims)
        m = mask[:, :, None]
        total = jnp.sum(jnp.where(m, x, 0), axis=1, keepdims=self.keepdims)
        return total / jnp.sum(m.astype(x.dtype), axis=1, keepdims=self.keepdims)
