"""The Keras layer kind of ``TimeDistributed``: its weights are its inner layer's (in a
``model.weights.h5``, under ``layers/time_distributed[_k]/layer/vars``), sized for one time step's
input shape. Any layer kind without a time axis of its own may be wrapped (not a recurrent layer,
``Bidirectional`` or another ``TimeDistributed``).

>>> from rnncore import layers
>>> TIME_DISTRIBUTED.weight_shapes(layers.TimeDistributed(layers.Dense(2)), (None, 5))
[('kernel', (5, 2)), ('bias', (2,))]
"""

from __future__ import annotations

from typing import Any

from ... import layers as L
from .config import check_origin, construct, entry_name, parse_args
from .context import Context
from .layer_kind import LayerKind

__all__ = ["TIME_DISTRIBUTED", "wrappable"]


def _inner_kind(layer: L.TimeDistributed, at: str) -> LayerKind:
    from .layer_kinds import for_layer  # the table holds this kind: imported when first used

    return for_layer(layer.layer, at + ".layer")


def wrappable() -> list:
    """The Keras layer classes ``TimeDistributed`` may wrap."""
    from .layer_kinds import KINDS

    return [cls for cls, kind in KINDS.items() if not kind.sequences and cls != "TimeDistributed"]


def _from_config(ctx: Context, entry: dict, at: str) -> L.TimeDistributed:
    from .layer_kinds import KINDS

    config = entry.get("config")
    if not isinstance(config, dict) or "layer" not in config:
        raise ctx.error(f"{at}: malformed config (no inner layer).")
    parse_args(ctx, {k: v for k, v in config.items() if k != "layer"}, at, ())
    inner = config["layer"]
    cls = check_origin(ctx, inner, f"{at}, inner layer")
    if cls not in wrappable():
        raise ctx.error(f"{at}: wraps a {cls}, which is not supported; expected one of {', '.join(wrappable())}.")
    inner_at = f"{at}, inner layer {entry_name(inner)!r} ({cls})"
    return construct(ctx, at, L.TimeDistributed, KINDS[cls].from_config(ctx, inner, inner_at))


def _to_keras(keras: Any, layer: L.TimeDistributed, dtype: str, at: str) -> Any:
    inner = _inner_kind(layer, at).to_keras(keras, layer.layer, dtype, at + ".layer")
    return keras.layers.TimeDistributed(inner, dtype=dtype)


def _exportable(layer: L.TimeDistributed, at: str) -> None:
    kind = _inner_kind(layer, at)
    if kind.keras_class not in wrappable():
        raise ValueError(
            f"{at}.layer ({type(layer.layer).__name__}) cannot be wrapped in Keras's TimeDistributed by rnncore; "
            f"expected one of {', '.join(wrappable())}."
        )


def _inner_class(entry: dict) -> str:
    return entry["config"]["layer"]["class_name"]


TIME_DISTRIBUTED = LayerKind(
    keras_class="TimeDistributed",
    rnncore_types=(L.TimeDistributed,),
    h5_group="time_distributed",
    from_config=_from_config,
    weight_shapes=lambda layer, input_shape: _inner_kind(layer, "layer").weight_shapes(
        layer.layer, tuple(input_shape[1:])
    ),
    params=lambda layer, arrays: _inner_kind(layer, "layer").params(layer.layer, arrays),
    arrays=lambda layer, entry, at: _inner_kind(layer, at).arrays(layer.layer, entry, at + ".layer"),
    to_keras=_to_keras,
    exportable=_exportable,
    read=lambda ctx, source, layer, entry, expected: source.get(entry_name(entry), _inner_class(entry), "layer"),
    first_weights=lambda source, entry: source.get(entry_name(entry), _inner_class(entry), "layer"),
    input_shape_from=lambda layer, kernel: (
        (None,) + tuple(_inner_kind(layer, "layer").input_shape_from(layer.layer, kernel))
    ),
)
