"""The Keras layer kind of ``Embedding``: token ids in, weights ``embeddings (input_dim, output_dim)``.

rnncore's ``padding_idx`` (PyTorch's) has no Keras counterpart: such a layer is refused on export.

>>> from rnncore import layers
>>> EMBEDDING.weight_shapes(layers.Embedding(10, 4), (None,))
[('embeddings', (10, 4))]
"""

from __future__ import annotations

from typing import Any

from ... import layers as L
from .config import construct, keras_initializer
from .context import Context
from .kind_args import keras_args
from .layer_kind import LayerKind, fields_of

__all__ = ["EMBEDDING"]


def _from_config(ctx: Context, entry: dict, at: str) -> L.Embedding:
    kwargs = keras_args(ctx, entry, at, ("input_dim", "output_dim"), ("embeddings_initializer", "mask_zero"))
    for arg in ("input_dim", "output_dim"):
        if arg not in kwargs:
            raise ctx.error(f"{at}: config has no {arg}.")
    return construct(ctx, at, L.Embedding, **kwargs)


def _exportable(layer: L.Embedding, at: str) -> None:
    if layer.padding_idx is not None:
        raise ValueError(
            f"{at} (Embedding) has padding_idx={layer.padding_idx}, which Keras's Embedding does not have "
            "(a row without gradient); export it with padding_idx=None."
        )


def _to_keras(keras: Any, layer: L.Embedding, dtype: str, at: str) -> Any:
    kwargs = {}
    init = keras_initializer(keras, layer.embeddings_initializer, at, "embeddings_initializer")
    if init is not None:
        kwargs["embeddings_initializer"] = init
    return keras.layers.Embedding(layer.input_dim, layer.output_dim, mask_zero=layer.mask_zero, dtype=dtype, **kwargs)


EMBEDDING = LayerKind(
    keras_class="Embedding",
    rnncore_types=(L.Embedding,),
    h5_group="embedding",
    from_config=_from_config,
    weight_shapes=lambda layer, input_shape: [("embeddings", (layer.input_dim, layer.output_dim))],
    params=lambda layer, arrays: L.EmbeddingParams(arrays[0]),
    arrays=fields_of(("embeddings",)),
    to_keras=_to_keras,
    exportable=_exportable,
    input_shape_from=lambda layer, kernel: (None,),
    integer_inputs=True,
)
