"""The layer kinds of convolution and pooling over time: ``Conv1D``, ``MaxPooling1D``,
``AveragePooling1D``, ``GlobalMaxPooling1D``, ``GlobalAveragePooling1D``.

Keras writes a window argument as a one-element list (``kernel_size: [3]``); ``data_format`` must
be ``channels_last``. ``Conv1D``'s weights are ``kernel (kernel_size, channels/groups, filters)``
and ``bias (filters,)`` (none with ``use_bias=False``); the poolings have none.

>>> import numpy as np
>>> from rnncore import layers
>>> CONV1D.weight_shapes(layers.Conv1D(4, 3, groups=2), (None, 6))
[('kernel', (3, 3, 4)), ('bias', (4,))]
>>> CONV1D.input_shape_from(layers.Conv1D(4, 3, groups=2), np.zeros((3, 3, 4)))
(None, 6)
"""

from __future__ import annotations

from typing import Any

from ... import layers as L
from .config import construct, keras_activation, keras_initializer, parse_args
from .context import Context
from .layer_kind import LayerKind, fields_of, no_arrays

__all__ = ["CONV1D", "POOLING_KINDS", "split_args"]


def split_args(ctx: Context, config: Any, at: str, raw: tuple) -> tuple:
    """``(raw_args, rest)``: the arguments in ``raw`` (passed to the rnncore layer as they are, which
    checks them) and the rest of the config (for :func:`~.config.parse_args`)."""
    if not isinstance(config, dict):
        raise ctx.error(f"{at}: malformed config {str(config)[:120]!r}.")
    return {k: config[k] for k in raw if k in config}, {k: v for k, v in config.items() if k not in raw}


# --- Conv1D -------------------------------------------------------------------------------------------

_CONV_RAW = ("filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate", "groups")
_CONV_ARGS = ("activation", "use_bias", "kernel_initializer", "bias_initializer")


def _conv_from_config(ctx: Context, entry: dict, at: str) -> L.Conv1D:
    raw, rest = split_args(ctx, entry.get("config"), at, _CONV_RAW)
    kwargs = parse_args(ctx, rest, at, _CONV_ARGS, elementwise=False)
    if kwargs.get("activation") == "linear":
        kwargs["activation"] = None
    for arg in ("filters", "kernel_size"):
        if arg not in raw:
            raise ctx.error(f"{at}: config has no {arg}.")
    return construct(ctx, at, L.Conv1D, **raw, **kwargs)


def _conv_to_keras(keras: Any, layer: L.Conv1D, dtype: str, at: str) -> Any:
    kwargs = {}
    for arg in ("kernel_initializer", "bias_initializer"):
        init = keras_initializer(keras, getattr(layer, arg), at, arg)
        if init is not None:
            kwargs[arg] = init
    return keras.layers.Conv1D(
        layer.filters,
        layer.kernel_size,
        strides=layer.strides,
        padding=layer.padding,
        dilation_rate=layer.dilation_rate,
        groups=layer.groups,
        activation=keras_activation(layer.activation, at, "activation"),
        use_bias=layer.use_bias,
        dtype=dtype,
        **kwargs,
    )


def _conv_shapes(layer: L.Conv1D, input_shape: tuple) -> list:
    channels = int(input_shape[-1])
    return [
        ("kernel", (layer.kernel_size, channels // layer.groups, layer.filters)),
        ("bias", (layer.filters,) if layer.use_bias else None),
    ]


CONV1D = LayerKind(
    keras_class="Conv1D",
    rnncore_types=(L.Conv1D,),
    h5_group="conv1d",
    from_config=_conv_from_config,
    weight_shapes=_conv_shapes,
    params=lambda layer, arrays: L.Conv1DParams(arrays[0], arrays[1] if layer.use_bias else None),
    arrays=fields_of(("kernel", "bias")),
    to_keras=_conv_to_keras,
    input_shape_from=lambda layer, kernel: (None, int(kernel.shape[1]) * layer.groups),
)


# --- pooling ------------------------------------------------------------------------------------------


def _pooling_kind(cls: type, h5_group: str, raw: tuple, to_keras: Any, sequences: bool = False) -> LayerKind:
    def from_config(ctx: Context, entry: dict, at: str) -> Any:
        raw_args, rest = split_args(ctx, entry.get("config"), at, raw)
        kwargs = parse_args(ctx, rest, at, ("keepdims",) if "keepdims" in rest else ())
        return construct(ctx, at, cls, **raw_args, **kwargs)

    return LayerKind(
        keras_class=cls.__name__,
        rnncore_types=(cls,),
        h5_group=h5_group,
        from_config=from_config,
        weight_shapes=lambda layer, input_shape: [],
        params=lambda layer, arrays: (),
        arrays=no_arrays,
        to_keras=to_keras,
        sequences=sequences,
    )


def _windowed_to_keras(keras: Any, layer: Any, dtype: str, at: str) -> Any:
    return getattr(keras.layers, type(layer).__name__)(
        pool_size=layer.pool_size, strides=layer.strides, padding=layer.padding, dtype=dtype
    )


def _global_to_keras(keras: Any, layer: Any, dtype: str, at: str) -> Any:
    return getattr(keras.layers, type(layer).__name__)(keepdims=layer.keepdims, dtype=dtype)


_WINDOWED_RAW = ("pool_size", "strides", "padding", "data_format")

POOLING_KINDS = (
    _pooling_kind(L.MaxPooling1D, "max_pooling1d", _WINDOWED_RAW, _windowed_to_keras),
    _pooling_kind(L.AveragePooling1D, "average_pooling1d", _WINDOWED_RAW, _windowed_to_keras),
    _pooling_kind(L.GlobalMaxPooling1D, "global_max_pooling1d", ("data_format",), _global_to_keras),
    # takes a mask (it averages over the real steps)
    _pooling_kind(L.GlobalAveragePooling1D, "global_average_pooling1d", ("data_format",), _global_to_keras, True),
)
