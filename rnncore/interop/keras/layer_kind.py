"""What the converter knows about one Keras layer kind (:class:`LayerKind`), and the pieces entries share.

The entries themselves and their table are in :mod:`~rnncore.interop.keras.layer_kinds` (and the modules it gathers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

from .config import construct, entry_name, parse_args
from .context import Context

__all__ = ["LayerKind", "Scoped", "kind_str", "fields_of", "no_arrays", "weightless"]


def kind_str(entry: Any) -> str:
    """What a params entry is, as messages say it: ``tuple of 3``, ``NoneType``."""
    if isinstance(entry, (tuple, list)):
        return f"{type(entry).__name__} of {len(entry)}"
    return type(entry).__name__


def fields_of(fields: tuple) -> Callable[[Any, Any, str], list]:
    """``arrays(layer, entry, at)`` for a layer whose params are a tuple of ``fields``."""

    def arrays(layer: Any, entry: Any, at: str) -> list:
        if not isinstance(entry, (tuple, list)) or len(entry) != len(fields):
            raise ValueError(f"{at} ({type(layer).__name__}) needs ({', '.join(fields)}); got {kind_str(entry)}.")
        return list(zip(fields, entry))

    return arrays


def no_arrays(layer: Any, entry: Any, at: str) -> list:
    if not (entry is None or (isinstance(entry, (tuple, list)) and len(entry) == 0)):
        raise ValueError(f"{at} ({type(layer).__name__}) has no weights; expected (); got {kind_str(entry)}.")
    return []


@dataclass(frozen=True)
class Scoped:
    """A weights source as a wrapper's inner layer sees it: every layer name reads as the wrapper's
    ``name``, every ``part`` under ``scope`` (``layer`` inside a ``TimeDistributed``,
    ``forward_layer`` inside a ``Bidirectional``), so an inner kind's ``read`` finds its weights
    wherever it is nested (in ``model.weights.h5``: ``layers/<wrapper>/<scope>/[<part>/]...``)."""

    source: Any
    name: str
    scope: str

    def get(self, name: str, cls: Any, part: Optional[str] = None) -> list:
        return self.source.get(self.name, cls, self.scope + (f"/{part}" if part else ""))

    @property
    def h5(self) -> Any:
        """The file's ``h5`` where the weights come from a file (an AttributeError for a live model)."""
        return self.source.h5


def _read(ctx: Context, source: Any, layer: Any, entry: dict, expected: list) -> list:
    return source.get(entry_name(entry), entry.get("class_name"))


def _first_weights(source: Any, entry: dict) -> list:
    return source.get(entry_name(entry), entry.get("class_name"), None)


def _input_shape_from(layer: Any, kernel: Any) -> tuple:
    return (None, int(kernel.shape[0]))


@dataclass(frozen=True)
class LayerKind:
    """What the converter knows about one Keras layer class (the fields are described in :mod:`.layer_kinds`)."""

    keras_class: str
    rnncore_types: tuple
    h5_group: str
    from_config: Callable[[Context, dict, str], Any]
    weight_shapes: Callable[[Any, Any], list]
    params: Callable[[Any, list], Any]
    arrays: Callable[[Any, Any, str], list]
    to_keras: Callable[[Any, Any, str, str], Any]
    exportable: Callable[[Any, str], None] = lambda layer, at: None
    read: Callable[[Context, Any, Any, dict, list], list] = _read
    first_weights: Callable[[Any, dict], list] = _first_weights  # whose first kernel tells the input shape
    input_shape_from: Callable[[Any, Any], tuple] = _input_shape_from  # (layer, first kernel) -> input shape
    integer_inputs: bool = False  # takes integer inputs (token ids)
    weights_under_cell: bool = False
    sequences: bool = False  # needs (batch, time, features) inputs, takes a mask
    output_count: Callable[[Any], int] = lambda layer: 1

    @property
    def has_weights(self) -> bool:
        """Whether the layer has weights (whose first kernel tells the input shape)."""
        return self.arrays is not no_arrays


def weightless(
    keras_class: str, rnncore_type: type, h5_group: str, args: tuple, to_keras: Callable[[Any, Any, str, str], Any]
) -> LayerKind:
    """The kind of a Keras layer without weights whose config is ``args``."""
    return LayerKind(
        keras_class=keras_class,
        rnncore_types=(rnncore_type,),
        h5_group=h5_group,
        from_config=lambda ctx, entry, at: construct(
            ctx, at, rnncore_type, **parse_args(ctx, entry.get("config"), at, args)
        ),
        weight_shapes=lambda layer, input_shape: [],
        params=lambda layer, arrays: (),
        arrays=no_arrays,
        to_keras=to_keras,
    )
