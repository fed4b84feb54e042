"""The ``nn.Embed`` entry: flax's ``nn.Embed(num_embeddings, features)`` is rnncore's
``layers.Embedding(input_dim, output_dim)``, params ``EmbeddingParams(embeddings)`` = ``embedding``
(the same ``jnp.take(table, ids, axis=0)``).

rnncore's ``mask_zero`` (flax has no masks) and ``padding_idx`` (a row that gets no gradient) have
no flax counterpart and are refused on export.

>>> EMBED.flax_class, [t.__name__ for t in EMBED.rnncore_types]
('Embed', ['Embedding'])
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from ... import layers as L
from .exportable import check_embedding
from .fields import array, check_dtype, check_fields
from .module_kind import Converted, ModuleKind

__all__ = ["EMBED"]


def _to_rnncore(embed: Any, params: Any, at: str) -> Converted:
    check_fields(embed, at, ("num_embeddings", "features", "dtype"))
    table = array(params, ("embedding",), (embed.num_embeddings, embed.features), at)
    check_dtype(embed, at, table.dtype)
    return Converted(L.Embedding(embed.num_embeddings, embed.features), L.EmbeddingParams(table))


def _to_flax(nn: Any, layer: Any, params: Any, at: str) -> tuple:
    check_embedding(layer, at, "nn.Embed")
    table = params.embeddings if isinstance(params, L.EmbeddingParams) else params[0]
    module = nn.Embed(layer.input_dim, layer.output_dim, param_dtype=jnp.asarray(table).dtype)
    return [module], {"embedding": table}


EMBED = ModuleKind("Embed", (L.Embedding,), _to_rnncore, _to_flax)
