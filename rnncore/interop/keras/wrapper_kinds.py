"""The Keras layer kind of ``TimeDistributed``: its weights are its inner layer's (in a
``model.weights.h5``, under ``layers/time_distributed[_k]/layer/vars``), sized for one time step's
input shape. Any layer kind without a time axis of its own may be wrapped (not a recurrent layer,
``Bidirectional`` or another ``TimeDistributed``).

The kind reads the table of kinds it wraps through the :class:`Table` it is made with (the table in
:mod:`~rnncore.interop.keras.layer_kinds` holds this kind, so it is handed in rather than imported).

>>> from rnncore import layers
>>> from rnncore.interop.keras.layer_kinds import KINDS
>>> KINDS["TimeDistributed"].weight_shapes(layers.TimeDistributed(layers.Dense(2)), (None, 5))
[('kernel', (5, 2)), ('bias', (2,))]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ... import layers as L
from .config import check_origin, construct, entry_name, parse_args
from .context import Context
from .layer_kind import LayerKind

__all__ = ["Table", "time_distributed_kind"]


@dataclass(frozen=True)
class Table:
    """The table of kinds, as the wrapper reads it: ``kinds()`` (Keras class -> kind) and
    ``for_layer(layer, at)`` (the kind of an rnncore layer, or a ValueError naming ``at``)."""

    kinds: Callable[[], dict]
    for_layer: Callable[[Any, str], LayerKind]

    def wrappable(self) -> list:
        """The Keras layer classes ``TimeDistributed`` may wrap."""
        return [cls for cls, kind in self.kinds().items() if not kind.sequences and cls != "TimeDistributed"]


def _inner_class(entry: dict) -> str:
    return entry["config"]["layer"]["class_name"]


def time_distributed_kind(table: Table) -> LayerKind:
    """The ``TimeDistributed`` kind, wrapping the kinds of ``table``."""

    def inner_kind(layer: L.TimeDistributed, at: str) -> LayerKind:
        return table.for_layer(layer.layer, at + ".layer")

    def from_config(ctx: Context, entry: dict, at: str) -> L.TimeDistributed:
        config = entry.get("config")
        if not isinstance(config, dict) or "layer" not in config:
            raise ctx.error(f"{at}: malformed config (no inner layer).")
        parse_args(ctx, {k: v for k, v in config.items() if k != "layer"}, at, ())
        inner = config["layer"]
        cls = check_origin(ctx, inner, f"{at}, inner layer")
        if cls not in table.wrappable():
            raise ctx.error(
                f"{at}: wraps a {cls}, which is not supported; expected one of {', '.join(table.wrappable())}."
            )
        inner_at = f"{at}, inner layer {entry_name(inner)!r} ({cls})"
        return construct(ctx, at, L.TimeDistributed, table.kinds()[cls].from_config(ctx, inner, inner_at))

    def to_keras(keras: Any, layer: L.TimeDistributed, dtype: str, at: str) -> Any:
        inner = inner_kind(layer, at).to_keras(keras, layer.layer, dtype, at + ".layer")
        return keras.layers.TimeDistributed(inner, dtype=dtype)

    def exportable(layer: L.TimeDistributed, at: str) -> None:
        if inner_kind(layer, at).keras_class not in table.wrappable():
            raise ValueError(
                f"{at}.layer ({type(layer.layer).__name__}) cannot be wrapped in Keras's TimeDistributed by "
                f"rnncore; expected one of {', '.join(table.wrappable())}."
            )

    return LayerKind(
        keras_class="TimeDistributed",
        rnncore_types=(L.TimeDistributed,),
        h5_group="time_distributed",
        from_config=from_config,
        weight_shapes=lambda layer, input_shape: inner_kind(layer, "layer").weight_shapes(
            layer.layer, tuple(input_shape[1:])
        ),
        params=lambda layer, arrays: inner_kind(layer, "layer").params(layer.layer, arrays),
        arrays=lambda layer, entry, at: inner_kind(layer, at).arrays(layer.layer, entry, at + ".layer"),
        to_keras=to_keras,
        exportable=exportable,
        read=lambda ctx, source, layer, entry, expected: source.get(entry_name(entry), _inner_class(entry), "layer"),
        first_weights=lambda source, entry: source.get(entry_name(entry), _inner_class(entry), "layer"),
        # the inner layer's reading of its kernel, (None, F) for a Dense: sequences of F features
        input_shape_from=lambda layer, kernel: inner_kind(layer, "layer").input_shape_from(layer.layer, kernel),
    )
