"""The Keras layer kind of ``TimeDistributed``: its weights are its inner layer's (in a
``model.weights.h5``, under ``layers/time_distributed[_k]/layer/...``, the inner layer's own layout),
sized for one time step's input shape. Any layer kind of the table may be wrapped, a recurrent layer
(over one cell or a stack of cells), ``Bidirectional`` and another ``TimeDistributed`` among them:
``TimeDistributed(LSTM(u))`` takes ``(batch, outer, inner, features)`` and runs the LSTM over the
inner time axis of each outer step. A wrapped layer must return one array (Keras's
``TimeDistributed`` stacks one output per step): a recurrent layer with ``return_state``, a
``Bidirectional`` with ``merge_mode=None`` and a ``stateful`` one are refused.

The kind reads the table of kinds it wraps through the :class:`Table` it is made with (the table in
:mod:`~rnncore.interop.keras.layer_kinds` holds this kind, so it is handed in rather than imported).

>>> from rnncore import layers
>>> from rnncore.interop.keras.layer_kinds import KINDS
>>> KINDS["TimeDistributed"].weight_shapes(layers.TimeDistributed(layers.Dense(2)), (None, 5))
[('kernel', (5, 2)), ('bias', (2,))]
>>> KINDS["TimeDistributed"].weight_shapes(layers.TimeDistributed(layers.SimpleRNN(2)), (None, 4, 5))
[('kernel', (5, 2)), ('recurrent_kernel', (2, 2)), ('bias', (2,))]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ... import layers as L
from .config import check_origin, construct, entry_name, parse_args
from .context import Context
from .layer_kind import LayerKind, Scoped

__all__ = ["Table", "time_distributed_kind"]


@dataclass(frozen=True)
class Table:
    """The table of kinds, as the wrapper reads it: ``kinds()`` (Keras class -> kind) and
    ``for_layer(layer, at)`` (the kind of an rnncore layer, or a ValueError naming ``at``)."""

    kinds: Callable[[], dict]
    for_layer: Callable[[Any, str], LayerKind]

    def wrappable(self) -> list:
        """The Keras layer classes ``TimeDistributed`` may wrap (every kind of the table)."""
        return list(self.kinds())


def _inner_entry(entry: dict) -> dict:
    return entry["config"]["layer"]


def _inner_class(entry: dict) -> str:
    return _inner_entry(entry)["class_name"]


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
        inner_kind(layer, at)  # refuses an inner layer Keras cannot represent, naming it

    def read(ctx: Context, source: Any, layer: L.TimeDistributed, entry: dict, expected: list) -> list:
        inner = Scoped(source, entry_name(entry), "layer")
        return inner_kind(layer, "layer").read(ctx, inner, layer.layer, _inner_entry(entry), expected)

    def first_weights(source: Any, entry: dict) -> list:
        kind = table.kinds()[_inner_class(entry)]
        return kind.first_weights(Scoped(source, entry_name(entry), "layer"), _inner_entry(entry))

    def input_shape_from(layer: L.TimeDistributed, kernel: Any) -> tuple:
        # the inner layer's reading of its kernel: (None, F) for a Dense (sequences of F features), and
        # one time axis more for an inner layer that takes sequences itself
        shape = tuple(inner_kind(layer, "layer").input_shape_from(layer.layer, kernel))
        takes_sequences = L.is_recurrent(layer.layer) or isinstance(layer.layer, L.TimeDistributed)
        return (None, *shape) if takes_sequences else shape

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
        read=read,
        first_weights=first_weights,
        input_shape_from=input_shape_from,
    )
