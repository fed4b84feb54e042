r"""``Conv1D``: Keras's one-dimensional convolution over time, channels last.

For inputs :math:`x` ``(B, T, C)``, a kernel :math:`W` ``(k, C/g, F)`` (g groups), stride s and
dilation d, after padding the time axis with :math:`p_l` zeros on the left and :math:`p_r` on the
right,

.. math::
    y_{b,t,f} = \varphi\Big(\beta_f + \sum_{j=0}^{k-1} \sum_{c} \tilde x_{b,\ t s + j d,\ c}\
    W_{j,\ c,\ f}\Big),

where :math:`\tilde x` is the padded input and ``c`` runs over the ``C/g`` input channels of the
group filter ``f`` belongs to (a cross-correlation: the kernel is not flipped). The paddings
(:func:`conv_padding`) are Keras's: ``"valid"`` none, ``"causal"`` :math:`p_l = (k-1)d`,
:math:`p_r = 0` (``y_t`` sees only ``x_{\le t}``), and ``"same"`` XLA's: the output has
:math:`\lceil T/s \rceil` steps, the total padding
:math:`\max((\lceil T/s\rceil - 1)s + (k-1)d + 1 - T,\ 0)` split with the smaller half on the left.

Masks: Keras's ``Conv1D`` does not support masking; given a mask it computes as without one and
passes no mask on (Keras warns that the mask is dropped).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from rnncore import layers
    >>> conv = layers.Conv1D(4, 3, padding="causal", dilation_rate=2)
    >>> p = conv.init(jax.random.PRNGKey(0), (10, 2))
    >>> p.kernel.shape, conv.apply(p, jnp.ones((5, 10, 2))).shape
    ((3, 2, 4), (5, 10, 4))
    >>> conv_padding(10, 3, 1, 2, "causal"), conv_padding(10, 4, 3, 1, "same")
    ((4, 0), (1, 2))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp

from .. import activations, checks, initializers
from .inputs import shape_str

__all__ = ["Conv1D", "Conv1DParams", "conv_padding", "conv_output_length", "one_int", "check_channels_last"]

_PADDINGS = ("valid", "same", "causal")


def one_int(name: str, value: Any) -> int:
    """A positive int given as ``n`` or Keras's one-element ``(n,)``/``[n]``, or a ValueError naming ``name``."""
    if isinstance(value, (tuple, list)):
        if len(value) != 1:
            raise ValueError(f"{name}={value!r}; expected a positive integer or a tuple of one.")
        value = value[0]
    return checks.positive_int(name, value)


def check_channels_last(who: str, data_format: Any) -> None:
    """Refuses any ``data_format`` but Keras's default ``channels_last`` (None means it; the layers
    store None for either)."""
    if data_format not in (None, "channels_last"):
        raise ValueError(
            f"{who} data_format={data_format!r} is not supported; expected 'channels_last' (inputs "
            "(batch, time, channels)); transpose channels_first inputs instead."
        )


def conv_padding(length: int, kernel_size: int, stride: int, dilation: int, padding: str) -> tuple[int, int]:
    """``(left, right)`` zeros Keras pads the time axis with (module docstring)."""
    span = (kernel_size - 1) * dilation + 1
    if padding == "valid":
        return 0, 0
    if padding == "causal":
        return span - 1, 0
    out = -(-length // stride)
    total = max((out - 1) * stride + span - length, 0)
    return total // 2, total - total // 2


def conv_output_length(
    length: Optional[int], kernel_size: int, stride: int, dilation: int, padding: str
) -> Optional[int]:
    """The number of output steps for ``length`` input steps (None stays None)."""
    if length is None:
        return None
    left, right = conv_padding(length, kernel_size, stride, dilation, padding)
    return (length + left + right - (kernel_size - 1) * dilation - 1) // stride + 1


class Conv1DParams(NamedTuple):
    """Keras weight order: ``kernel (kernel_size, channels/groups, filters)``, ``bias (filters,)`` or None."""

    kernel: jax.Array
    bias: Optional[jax.Array] = None


@dataclass(frozen=True)
class Conv1D:
    """Keras ``Conv1D(filters, kernel_size, strides=1, padding="valid", data_format=None,
    dilation_rate=1, groups=1, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
    bias_initializer="zeros")`` on ``(batch, time, channels)`` inputs (module docstring)."""

    filters: int
    kernel_size: Any
    strides: Any = 1
    padding: str = "valid"
    data_format: Optional[str] = None
    dilation_rate: Any = 1
    groups: int = 1
    activation: Any = None
    use_bias: bool = True
    kernel_initializer: Any = "glorot_uniform"
    bias_initializer: Any = "zeros"

    supports_masking = False

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, "filters", checks.positive_int("Conv1D filters", self.filters))
        set_(self, "kernel_size", one_int("Conv1D kernel_size", self.kernel_size))
        set_(self, "strides", one_int("Conv1D strides", self.strides))
        set_(self, "dilation_rate", one_int("Conv1D dilation_rate", self.dilation_rate))
        set_(self, "groups", checks.positive_int("Conv1D groups", self.groups))
        padding = self.padding.lower() if isinstance(self.padding, str) else self.padding
        set_(self, "padding", checks.one_of("Conv1D padding", padding, _PADDINGS))
        check_channels_last("Conv1D", self.data_format)
        set_(self, "data_format", None)
        checks.boolean("Conv1D use_bias", self.use_bias)
        if self.filters % self.groups:
            raise ValueError(
                f"Conv1D filters={self.filters}; expected a multiple of groups={self.groups} (each group has "
                "filters/groups filters)."
            )
        if self.strides > 1 and self.dilation_rate > 1:
            raise ValueError(
                f"Conv1D strides={self.strides} with dilation_rate={self.dilation_rate}; expected one of them "
                "to be 1 (Keras does not support both)."
            )
        activations.get(self.activation, elementwise=False)
        initializers.get(self.kernel_initializer, name="kernel_initializer")
        initializers.get(self.bias_initializer, name="bias_initializer")

    def _channels(self, input_shape) -> int:
        shape = tuple(input_shape)
        if len(shape) != 2 or shape[-1] is None:
            raise ValueError(f"Conv1D input_shape={shape}; expected (time, channels) with channels known.")
        channels = int(shape[-1])
        if channels % self.groups:
            raise ValueError(
                f"Conv1D input channels={channels}; expected a multiple of groups={self.groups} (input_shape {shape})."
            )
        return channels

    def init(self, key, input_shape, dtype=jnp.float32) -> Conv1DParams:
        channels = self._channels(input_shape)
        k1, k2 = jax.random.split(key)
        shape = (self.kernel_size, channels // self.groups, self.filters)
        kernel = initializers.get(self.kernel_initializer)(k1, shape, dtype)
        bias = initializers.get(self.bias_initializer)(k2, (self.filters,), dtype) if self.use_bias else None
        return Conv1DParams(kernel, bias)

    def compute_output_shape(self, input_shape):
        self._channels(input_shape)
        length = conv_output_length(input_shape[0], self.kernel_size, self.strides, self.dilation_rate, self.padding)
        if length is not None and length < 1:
            raise ValueError(
                f"Conv1D input length {input_shape[0]} is shorter than the kernel's span "
                f"{(self.kernel_size - 1) * self.dilation_rate + 1} with padding={self.padding!r}; the output "
                "would be empty."
            )
        return (length, self.filters)

    def compute_mask(self, x, mask):
        return None

    def apply(self, params: Conv1DParams, x, mask=None, training=False, rng=None):
        """``y (B, T', filters)`` for ``x (B, T, channels)``; ``mask`` is ignored (Keras drops it)."""
        x = jnp.asarray(x)
        kernel = params.kernel
        channels = kernel.shape[1] * self.groups
        if x.ndim != 3 or x.shape[-1] != channels or not jnp.issubdtype(x.dtype, jnp.floating):
            raise ValueError(
                f"Conv1D inputs must be floating (batch, time, channels={channels}); got shape {shape_str(x)} "
                f"and dtype {x.dtype}."
            )
        want = (self.kernel_size, channels // self.groups, self.filters)
        if tuple(kernel.shape) != want:
            raise ValueError(f"params.kernel for Conv1D must have shape {want}; got shape {shape_str(kernel)}.")
        self.compute_output_shape(x.shape[1:])
        pad = conv_padding(x.shape[1], self.kernel_size, self.strides, self.dilation_rate, self.padding)
        y = jax.lax.conv_general_dilated(
            x,
            kernel,
            window_strides=(self.strides,),
            padding=(pad,),
            rhs_dilation=(self.dilation_rate,),
            dimension_numbers=("NWC", "WIO", "NWC"),
            feature_group_count=self.groups,
        )
        if params.bias is not None:
            y = y + params.bias
        return activations.get(self.activation, elementwise=False)(y)
