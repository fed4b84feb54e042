"""The layer kinds of the merge layers: ``Concatenate``, ``Add``, ``Subtract``, ``Multiply``,
``Average``. They have no weights; their ``input_shape`` is a list of shapes (one per input), and
they sit in functional graphs (a ``Sequential`` cannot hold them: they take several inputs).

>>> from rnncore import layers
>>> CONCATENATE.weight_shapes(layers.Concatenate(), [(None, 3), (None, 2)])
[]
"""

from __future__ import annotations

from typing import Any

from ... import layers as L
from .config import construct, parse_args
from .context import Context
from .conv_kinds import split_args
from .layer_kind import LayerKind, no_arrays

__all__ = ["CONCATENATE", "MERGE_KINDS"]


def _merge_kind(cls: type, h5_group: str, raw: tuple = ()) -> LayerKind:
    def from_config(ctx: Context, entry: dict, at: str) -> Any:
        raw_args, rest = split_args(ctx, entry.get("config"), at, raw)
        parse_args(ctx, rest, at, ())
        return construct(ctx, at, cls, **raw_args)

    def to_keras(keras: Any, layer: Any, dtype: str, at: str) -> Any:
        return getattr(keras.layers, cls.__name__)(**{k: getattr(layer, k) for k in raw}, dtype=dtype)

    return LayerKind(
        keras_class=cls.__name__,
        rnncore_types=(cls,),
        h5_group=h5_group,
        from_config=from_config,
        weight_shapes=lambda layer, input_shape: [],
        params=lambda layer, arrays: (),
        arrays=no_arrays,
        to_keras=to_keras,
    )


CONCATENATE = _merge_kind(L.Concatenate, "concatenate", ("axis",))
MERGE_KINDS = (
    CONCATENATE,
    _merge_kind(L.Add, "add"),
    _merge_kind(L.Subtract, "subtract"),
    _merge_kind(L.Multiply, "multiply"),
    _merge_kind(L.Average, "average"),
)
