""":func:`to_flax`: an rnncore model -> a flax linen ``nn.Sequential`` and its variables, or (``api="nnx"``) a
flax nnx ``nnx.Sequential`` holding its params (:mod:`~rnncore.interop.flax.nnx_export`)."""

from __future__ import annotations

from typing import Any

from ...models import Sequential
from .module_kinds import for_layer
from .nnx_export import to_nnx

__all__ = ["to_flax"]


def to_flax(model: Sequential, params: Any, api: str = "linen") -> Any:
    """``(module, variables)``: the flax linen ``nn.Sequential`` equal to an rnncore
    :class:`~rnncore.models.Sequential`, and its variables ``{'params': tree}``; with ``api="nnx"``,
    the flax nnx ``nnx.Sequential`` alone, which holds the params (:func:`~rnncore.interop.flax.nnx_export.to_nnx`:
    ``nnx.Linear`` for ``Dense``, and a GRU's recurrent ``h`` bias must be zero).

    ``module.apply(variables, x)`` equals :func:`~rnncore.interop.flax.flax_call` ``(model,
    params, x)`` (``model.apply`` itself unless the last layer returns its state). Recurrent layers
    become ``nn.RNN`` over ``nn.SimpleCell``/``nn.LSTMCell``/``nn.GRUCell`` (``go_backwards`` is
    ``reverse=True``, ``return_state`` is ``return_carry=True``, ``return_sequences=False`` adds
    :func:`~rnncore.interop.flax.last_step`), ``Dense`` an ``nn.Dense`` followed by its
    activation function, ``Dropout`` an ``nn.Dropout(deterministic=True)``. What flax cannot
    represent is refused with a ``ValueError`` naming the layer and the argument: ``Masking`` and
    masks, ``use_bias=False`` and dropout in cells, GRU ``reset_after=False``, ``stateful``,
    ``truncate_gradient``, ``LayerNormLSTM``, ``Bidirectional`` with ``return_sequences=False`` or
    ``merge_mode=None``, activations that are callables of the user's own.

    Example:
        >>> import jax
        >>> import rnncore as rc
        >>> model = rc.Sequential([rc.layers.LSTM(3), rc.layers.Dense(1, activation="sigmoid")])
        >>> params = model.init(jax.random.PRNGKey(0), (5, 2))
        >>> module, variables = rc.to_flax(model, params)
        >>> [getattr(m, "__name__", type(m).__name__) for m in module.layers]
        ['RNN', 'last_step', 'Dense', 'sigmoid']
        >>> nnx_module = rc.to_flax(model, params, api="nnx")
        >>> [getattr(m, "__name__", type(m).__name__) for m in nnx_module.layers]
        ['RNN', 'last_step', 'Linear', 'sigmoid']
    """
    import flax.linen as nn

    if api == "nnx":
        return to_nnx(model, params)
    if api != "linen":
        raise ValueError(f"api={api!r}; expected 'linen' or 'nnx'.")
    if not isinstance(model, Sequential):
        raise ValueError(f"model must be an rnncore Sequential; got {type(model).__name__}.")
    model.check_params(params)
    modules: list = []
    tree: dict = {}
    for i, (layer, p) in enumerate(zip(model.layers, params)):
        at = f"layers[{i}]"
        found, sub = for_layer(layer, at).to_flax(nn, layer, p, at)
        if sub is not None:
            tree[f"layers_{len(modules)}"] = sub
        modules.extend(found)
    return nn.Sequential(modules), {"params": tree}
