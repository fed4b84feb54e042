""":func:`to_nnx`: an rnncore model -> a flax nnx ``nnx.Sequential`` holding its params;
``rc.to_flax(model, params, api="nnx")`` calls it.

>>> import jax
>>> import rnncore as rc
>>> model = rc.Sequential([rc.layers.LSTM(3), rc.layers.Dense(1, activation="sigmoid")])
>>> params = model.init(jax.random.PRNGKey(0), (5, 2))
>>> module = to_nnx(model, params)
>>> [getattr(m, "__name__", type(m).__name__) for m in module.layers]
['RNN', 'last_step', 'Linear', 'sigmoid']
"""

from __future__ import annotations

from typing import Any

from ...models import Sequential
from .nnx_module_kinds import nnx_kind_for_layer

__all__ = ["to_nnx"]


def to_nnx(model: Sequential, params: Any) -> Any:
    """The flax nnx ``nnx.Sequential`` equal to an rnncore :class:`~rnncore.models.Sequential`,
    holding ``params``: ``module(x)`` equals :func:`~rnncore.interop.flax.flax_call` ``(model,
    params, x)`` (``model.apply`` itself unless the last layer returns its state).

    Recurrent layers become ``nnx.RNN`` over ``nnx.SimpleCell``/``nnx.LSTMCell``/``nnx.GRUCell``,
    ``Dense`` an ``nnx.Linear`` followed by its activation function, ``Dropout`` an
    ``nnx.Dropout(deterministic=True)``, ``LayerNormalization`` an ``nnx.LayerNorm``, ``Embedding``
    an ``nnx.Embed``. Refused by name, besides what linen cannot represent either
    (:func:`~rnncore.interop.flax.to_flax`): a GRU whose recurrent ``h`` bias is non-zero (nnx's
    GRUCell has none; linen's has it).
    """
    from flax import nnx

    if not isinstance(model, Sequential):
        raise ValueError(f"model must be an rnncore Sequential; got {type(model).__name__}.")
    model.check_params(params)
    items: list = []
    features = None
    for i, (layer, p) in enumerate(zip(model.layers, params)):
        at = f"layers[{i}]"
        found, features = nnx_kind_for_layer(layer, at).to_nnx(layer, p, features, at)
        items.extend(found)
    return nnx.Sequential(*items)
