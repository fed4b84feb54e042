"""One entry per flax linen module kind: everything the converter knows about it, in one place.

A :class:`~rnncore.interop.flax.module_kind.ModuleKind` says, for one flax module class, how it becomes an rnncore
layer (``to_rnncore``) and how an rnncore layer becomes it (``to_flax``). :data:`KINDS` maps flax
class names to kinds (in the order messages list them); :func:`for_layer` finds the kind of an
rnncore layer. Adding a flax module kind is adding one entry to :data:`KINDS`.

* ``nn.RNN``, ``nn.Bidirectional``: :mod:`~rnncore.interop.flax.recurrent`;
* ``nn.Dense(features, use_bias)``: ``layers.Dense(units, use_bias=...)``, params
  ``DenseParams(kernel, bias)`` (the same ``x @ kernel + bias``); a plain activation function right
  after it in an ``nn.Sequential`` becomes its ``activation`` (:mod:`~rnncore.interop.flax.activations`);
* ``nn.Dropout(rate, deterministic=True or None)``: ``layers.Dropout(rate)``, identity at inference
  as flax's; exported with ``deterministic=True`` (nn.Sequential passes no call arguments past its
  first module), so the flax model drops nothing: training dropout is not carried over;
* ``nn.LayerNorm``, ``nn.Embed``: :mod:`~rnncore.interop.flax.normalization`, :mod:`~rnncore.interop.flax.embedding`.

>>> list(KINDS)
['RNN', 'Bidirectional', 'Dense', 'Dropout', 'LayerNorm', 'Embed']
>>> from rnncore import layers
>>> for_layer(layers.Dense(2), "layers[0]").flax_class
'Dense'
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from ... import layers as L
from .activations import flax_function
from .embedding import EMBED
from .exportable import SUPPORTED_LAYERS, check_dropout, dense_arrays
from .fields import array, check_dtype, check_fields
from .module_kind import Converted, ModuleKind
from .normalization import LAYER_NORM
from .recurrent import BIDIRECTIONAL, RNN

__all__ = ["KINDS", "for_layer", "kind_of", "supported_list"]


# --- nn.Dense -------------------------------------------------------------------------------------------------


def _dense_to_rnncore(dense: Any, params: Any, at: str) -> Converted:
    check_fields(dense, at, ("features", "use_bias", "dtype"))
    kernel = jnp.asarray(params.get("kernel")) if hasattr(params, "get") and "kernel" in params else None
    if kernel is None or kernel.ndim != 2:
        raise ValueError(
            f"{at}: params have no 2-D kernel; found {sorted(params) if hasattr(params, 'keys') else params}."
        )
    kernel = array(params, ("kernel",), (kernel.shape[0], dense.features), at)
    check_dtype(dense, at, kernel.dtype)
    bias = array(params, ("bias",), (dense.features,), at) if dense.use_bias else None
    return Converted(L.Dense(dense.features, use_bias=bool(dense.use_bias)), L.DenseParams(kernel, bias))


def _dense_to_flax(nn: Any, layer: L.Dense, params: Any, at: str) -> tuple:
    kernel, bias = dense_arrays(params, at)
    tree = {"kernel": kernel} if bias is None else {"kernel": kernel, "bias": bias}
    modules: list = [nn.Dense(layer.units, use_bias=layer.use_bias, param_dtype=jnp.asarray(kernel).dtype)]
    if layer.activation is not None and layer.activation != "linear":
        modules.append(flax_function(layer.activation, at, "activation"))
    return modules, tree


DENSE = ModuleKind("Dense", (L.Dense,), _dense_to_rnncore, _dense_to_flax)


# --- nn.Dropout ------------------------------------------------------------------------------------------------


def _dropout_to_rnncore(dropout: Any, params: Any, at: str) -> Converted:
    check_fields(dropout, at, ("rate", "deterministic", "rng_collection"))
    if dropout.deterministic is False:
        raise ValueError(
            f"{at}: deterministic=False drops at every call; rnncore's Dropout drops only while training. "
            "Expected True or None."
        )
    return Converted(L.Dropout(float(dropout.rate)), ())


def _dropout_to_flax(nn: Any, layer: L.Dropout, params: Any, at: str) -> tuple:
    check_dropout(layer, at)
    return [nn.Dropout(layer.rate, deterministic=True)], None


DROPOUT = ModuleKind("Dropout", (L.Dropout,), _dropout_to_rnncore, _dropout_to_flax)


# --- the table -------------------------------------------------------------------------------------------------

KINDS: dict = {kind.flax_class: kind for kind in (RNN, BIDIRECTIONAL, DENSE, DROPOUT, LAYER_NORM, EMBED)}
"""flax linen class name -> :class:`~rnncore.interop.flax.module_kind.ModuleKind`."""

_BY_RNNCORE_TYPE = {t: kind for kind in KINDS.values() for t in kind.rnncore_types}


def supported_list() -> str:
    """The supported flax modules as messages list them."""
    return ", ".join(f"nn.{name}" for name in KINDS) + ", nn.Sequential of those"


def kind_of(module: Any) -> Any:
    """The kind of a flax module (its exact class must be flax's own), or None."""
    import flax.linen as nn

    name = type(module).__name__
    kind = KINDS.get(name)
    return kind if kind is not None and type(module) is getattr(nn, name, None) else None


def for_layer(layer: Any, at: str) -> ModuleKind:
    """The kind of an rnncore layer flax can represent; a ``ValueError`` naming ``at`` otherwise."""
    kind = _BY_RNNCORE_TYPE.get(type(layer))
    if kind is None:
        raise ValueError(f"{at} ({type(layer).__name__}) has no flax counterpart; expected one of {SUPPORTED_LAYERS}.")
    return kind
