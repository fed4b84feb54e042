"""Calling an rnncore model the way flax calls the module it came from: flax's input layout
(``time_major``) and flax's output structure (``(carry, y)`` with ``return_carry``, the carry in
flax's order), which linen's and nnx's modules share.

rnncore's layers are batch-major and return ``(y, *state)`` with the state in Keras's order
(LSTM ``(h, c)``); flax's ``nn.RNN`` returns ``(carry, y)`` with the LSTM carry ``(c, h)``, and
``nn.Bidirectional`` ``((carry_forward, carry_backward), y)``.

>>> import jax, jax.numpy as jnp
>>> import rnncore as rc
>>> model = rc.Sequential([rc.layers.LSTM(3, return_sequences=True, return_state=True)])
>>> params = model.init(jax.random.PRNGKey(0), (5, 2))
>>> (c, h), y = flax_call(model, params, jnp.ones((5, 4, 2)), time_major=True)
>>> y.shape, c.shape
((5, 4, 3), (4, 3))
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from ... import layers as L
from .cells import for_rnncore_cell

__all__ = ["flax_call", "flax_carry"]


def flax_carry(layer: Any, states: tuple) -> Any:
    """The carry flax returns for a recurrent layer's final state arrays (rnncore's order)."""
    if isinstance(layer, L.Bidirectional):
        n = len(layer.forward_layer.cell.state_type._fields)
        return (flax_carry(layer.forward_layer, states[:n]), flax_carry(layer.backward_layer, states[n:]))
    return for_rnncore_cell(layer.cell, "layer").carry(tuple(states))


def flax_call(model: Any, params: Any, x: Any, *, time_major: bool = False) -> Any:
    """``model.apply(params, x)`` with ``x`` and the outputs in flax's layout and structure: what
    ``module.apply(variables, x)`` (linen) or ``module(x)`` (nnx) returns for the flax module ``model``
    was converted from (or to).

    ``time_major``: ``x`` is ``(T, B, F)`` and the output sequence ``(T, B, u)``, as a flax module
    built with ``time_major=True`` takes and returns them.
    """
    x = jnp.asarray(x)
    out = model.apply(params, jnp.swapaxes(x, 0, 1) if time_major else x)
    last = model.layers[-1]
    if getattr(last, "return_state", False):
        y, states = out[0], tuple(out[1:])
        return flax_carry(last, states), (jnp.swapaxes(y, 0, 1) if time_major and y.ndim == 3 else y)
    return jnp.swapaxes(out, 0, 1) if time_major and out.ndim == 3 else out
