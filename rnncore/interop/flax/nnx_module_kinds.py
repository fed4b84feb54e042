r"""One entry per flax nnx module kind (:class:`~rnncore.interop.flax.nnx_recurrent.NnxKind`), in one table.

* ``nnx.RNN``, ``nnx.Bidirectional``: :mod:`~rnncore.interop.flax.nnx_recurrent`;
* ``nnx.Linear(in_features, out_features, use_bias)``: ``layers.Dense(units, use_bias=...)``, params
  ``DenseParams(kernel, bias)``; a plain activation function right after it in an ``nnx.Sequential``
  becomes its ``activation``; ``precision``, ``dot_general``, ``preferred_element_type``,
  ``promote_dtype`` must keep their defaults, ``dtype`` be None or the params' dtype;
* ``nnx.Dropout(rate)``: ``layers.Dropout(rate)``, identity at inference as nnx's in evaluation mode
  (``deterministic=True``, which ``module.eval()`` sets); ``deterministic=False`` (nnx's default, the
  training mode) drops at every call and is refused. Exported with ``deterministic=True``; the
  module's ``train()`` turns its dropout on;
* ``nnx.LayerNorm(num_features)``: ``layers.LayerNormalization(axis=-1)`` with the same ``epsilon``,
  ``center=use_bias``, ``scale=use_scale``, params ``(gamma=scale, beta=bias)``
  (:mod:`~rnncore.interop.flax.normalization` says how the variance forms compare); other axes and
  ``axis_name`` are refused;
* ``nnx.Embed(num_embeddings, features)``: ``layers.Embedding``, params ``(embedding,)``.

>>> list(NNX_KINDS)
['RNN', 'Bidirectional', 'Linear', 'Dropout', 'LayerNorm', 'Embed']
"""

from __future__ import annotations

from typing import Any, Optional

import jax.numpy as jnp

from ... import layers as L
from .activations import flax_function
from .exportable import SUPPORTED_LAYERS, check_dropout, check_embedding, check_layer_norm, dense_arrays
from .fields import check_dtype
from .module_kind import Converted
from .nnx_fields import check_settings, linear_params, param, set_param
from .nnx_recurrent import NNX_BIDIRECTIONAL, NNX_RNN, NnxKind

__all__ = ["NNX_KINDS", "nnx_kind_of", "nnx_kind_for_layer", "supported_list"]


# --- nnx.Linear ---------------------------------------------------------------------------------------------


def _linear_to_rnncore(linear: Any, at: str) -> Converted:
    kernel, bias = linear_params(linear, at, bool(linear.use_bias))
    return Converted(L.Dense(linear.out_features, use_bias=bool(linear.use_bias)), L.DenseParams(kernel, bias))


def _linear_to_nnx(layer: L.Dense, params: Any, features: Any, at: str) -> tuple:
    from flax import nnx

    kernel, bias = dense_arrays(params, at)
    kernel = jnp.asarray(kernel)
    bias = None if bias is None else jnp.asarray(bias)
    linear = nnx.Linear(
        kernel.shape[0], layer.units, use_bias=layer.use_bias, param_dtype=kernel.dtype, rngs=nnx.Rngs(0)
    )
    set_param(linear, "kernel", kernel)
    if layer.use_bias:
        set_param(linear, "bias", bias)
    items: list = [linear]
    if layer.activation is not None and layer.activation != "linear":
        items.append(flax_function(layer.activation, at, "activation"))
    return items, layer.units


LINEAR = NnxKind("Linear", (L.Dense,), _linear_to_rnncore, _linear_to_nnx)


# --- nnx.Dropout ----------------------------------------------------------------------------------------------


def _dropout_to_rnncore(dropout: Any, at: str) -> Converted:
    check_settings(dropout, at, ("rate", "deterministic", "rng_collection"))
    if dropout.deterministic is False:
        raise ValueError(
            f"{at}: deterministic=False (nnx's training mode) drops at every call; rnncore's Dropout drops only "
            "while training. Expected True or None: call module.eval() first (or build it with deterministic=True)."
        )
    return Converted(L.Dropout(float(dropout.rate)), ())


def _dropout_to_nnx(layer: L.Dropout, params: Any, features: Any, at: str) -> tuple:
    from flax import nnx

    check_dropout(layer, at)
    return [nnx.Dropout(layer.rate, deterministic=True, rngs=nnx.Rngs(dropout=0))], features


DROPOUT = NnxKind("Dropout", (L.Dropout,), _dropout_to_rnncore, _dropout_to_nnx)


# --- nnx.LayerNorm ----------------------------------------------------------------------------------------------


def _layer_norm_to_rnncore(norm: Any, at: str) -> Converted:
    known = ("num_features", "epsilon", "dtype", "use_bias", "use_scale", "use_fast_variance", "scale", "bias")
    check_settings(norm, at, known)
    n = norm.num_features
    gamma = param(norm, "scale", (n,), at) if norm.use_scale else None
    beta = param(norm, "bias", (n,), at) if norm.use_bias else None
    for w in (gamma, beta):
        if w is not None:
            check_dtype(norm, at, w.dtype)
    layer = L.LayerNormalization(
        axis=-1, epsilon=float(norm.epsilon), center=bool(norm.use_bias), scale=bool(norm.use_scale)
    )
    return Converted(layer, L.LayerNormalizationParams(gamma, beta))


def _layer_norm_to_nnx(layer: Any, params: Any, features: Optional[int], at: str) -> tuple:
    from flax import nnx

    check_layer_norm(layer, at, "nnx.LayerNorm")
    gamma, beta = (None if a is None else jnp.asarray(a) for a in params)
    weights = [w for w in (gamma, beta) if w is not None]
    n = int(weights[0].shape[0]) if weights else features
    if n is None:
        raise ValueError(
            f"{at}: a LayerNormalization without gamma and beta at the start of the model: its feature size, "
            "which nnx.LayerNorm takes (num_features), is unknown; expected a layer with params before it, or center "
            "or scale."
        )
    dtype = weights[0].dtype if weights else jnp.float32
    norm = nnx.LayerNorm(
        n, epsilon=layer.epsilon, use_bias=layer.center, use_scale=layer.scale, param_dtype=dtype, rngs=nnx.Rngs(0)
    )
    if gamma is not None:
        set_param(norm, "scale", gamma)
    if beta is not None:
        set_param(norm, "bias", beta)
    return [norm], n


LAYER_NORM = NnxKind("LayerNorm", (L.LayerNormalization,), _layer_norm_to_rnncore, _layer_norm_to_nnx)


# --- nnx.Embed ---------------------------------------------------------------------------------------------------


def _embed_to_rnncore(embed: Any, at: str) -> Converted:
    check_settings(embed, at, ("num_embeddings", "features", "dtype"))
    table = param(embed, "embedding", (embed.num_embeddings, embed.features), at)
    check_dtype(embed, at, table.dtype)
    return Converted(L.Embedding(embed.num_embeddings, embed.features), L.EmbeddingParams(table))


def _embed_to_nnx(layer: Any, params: Any, features: Any, at: str) -> tuple:
    from flax import nnx

    check_embedding(layer, at, "nnx.Embed")
    table = jnp.asarray(params.embeddings if isinstance(params, L.EmbeddingParams) else params[0])
    embed = nnx.Embed(layer.input_dim, layer.output_dim, param_dtype=table.dtype, rngs=nnx.Rngs(0))
    set_param(embed, "embedding", table)
    return [embed], layer.output_dim


EMBED = NnxKind("Embed", (L.Embedding,), _embed_to_rnncore, _embed_to_nnx)


# --- the table -------------------------------------------------------------------------------------------------------

NNX_KINDS: dict = {kind.nnx_class: kind for kind in (NNX_RNN, NNX_BIDIRECTIONAL, LINEAR, DROPOUT, LAYER_NORM, EMBED)}
"""flax nnx class name -> :class:`~rnncore.interop.flax.nnx_recurrent.NnxKind`."""

_BY_RNNCORE_TYPE = {t: kind for kind in NNX_KINDS.values() for t in kind.rnncore_types}


def supported_list() -> str:
    """The supported nnx modules as messages list them."""
    return ", ".join(f"nnx.{name}" for name in NNX_KINDS) + ", nnx.Sequential of those"


def nnx_kind_of(module: Any) -> Any:
    """The kind of an nnx module (its exact class must be flax's own), or None."""
    from flax import nnx

    kind = NNX_KINDS.get(type(module).__name__)
    return kind if kind is not None and type(module) is getattr(nnx, kind.nnx_class, None) else None


def nnx_kind_for_layer(layer: Any, at: str) -> NnxKind:
    """The kind of an rnncore layer nnx can represent; a ``ValueError`` naming ``at`` otherwise."""
    kind = _BY_RNNCORE_TYPE.get(type(layer))
    if kind is None:
        raise ValueError(
            f"{at} ({type(layer).__name__}) has no flax nnx counterpart; expected one of {SUPPORTED_LAYERS}."
        )
    return kind
