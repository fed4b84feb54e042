r"""The ``nn.LayerNorm`` entry: flax's ``nn.LayerNorm`` over the last axis is rnncore's (Keras's)
``layers.LayerNormalization(axis=-1)`` with the same ``epsilon``, ``center=use_bias`` and
``scale=use_scale``, params ``LayerNormalizationParams(gamma=scale, beta=bias)``:
:math:`y = (x - \mu)\,\gamma/\sqrt{\sigma^2 + \epsilon} + \beta` on both sides.

flax's ``epsilon`` default is 1e-6, Keras's 1e-3: the value is carried over either way. flax's
default ``use_fast_variance=True`` computes :math:`\sigma^2 = \overline{x^2} - \mu^2` and rnncore
the two-pass :math:`\overline{(x - \mu)^2}`: the same number up to rounding, where the one-pass form
loses digits when :math:`|\mu| \gg \sigma`. Only the last axis (``reduction_axes=-1``,
``feature_axes=-1``) is supported; ``rms_scaling`` and other axes are refused on export.

>>> LAYER_NORM.flax_class, [t.__name__ for t in LAYER_NORM.rnncore_types]
('LayerNorm', ['LayerNormalization'])
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from ... import layers as L
from .exportable import check_layer_norm
from .fields import check_dtype, check_fields
from .module_kind import Converted, ModuleKind

__all__ = ["LAYER_NORM"]

_FIELDS = ("epsilon", "dtype", "use_bias", "use_scale", "use_fast_variance", "force_float32_reductions")


def _to_rnncore(norm: Any, params: Any, at: str) -> Converted:
    check_fields(norm, at, _FIELDS)
    for name, field in (("scale", "use_scale"), ("bias", "use_bias")):
        if getattr(norm, field) and (not hasattr(params, "keys") or name not in params):
            raise ValueError(f"{at}: params have no {name} ({field}=True); found {sorted(params)}.")
    gamma = jnp.asarray(params["scale"]) if norm.use_scale else None
    beta = jnp.asarray(params["bias"]) if norm.use_bias else None
    for name, w in (("scale", gamma), ("bias", beta)):
        if w is not None and w.ndim != 1:
            raise ValueError(f"{at}: params {name} has shape {tuple(w.shape)}; expected (features,).")
        if w is not None:
            check_dtype(norm, at, w.dtype)
    layer = L.LayerNormalization(
        axis=-1, epsilon=float(norm.epsilon), center=bool(norm.use_bias), scale=bool(norm.use_scale)
    )
    return Converted(layer, L.LayerNormalizationParams(gamma, beta))


def _to_flax(nn: Any, layer: Any, params: Any, at: str) -> tuple:
    check_layer_norm(layer, at, "nn.LayerNorm")
    gamma, beta = params
    tree = {}
    dtype = jnp.float32
    if gamma is not None:
        tree["scale"], dtype = gamma, jnp.asarray(gamma).dtype
    if beta is not None:
        tree["bias"], dtype = beta, jnp.asarray(beta).dtype
    module = nn.LayerNorm(epsilon=layer.epsilon, use_bias=layer.center, use_scale=layer.scale, param_dtype=dtype)
    return [module], tree or None


LAYER_NORM = ModuleKind("LayerNorm", (L.LayerNormalization,), _to_rnncore, _to_flax)
