"""Assembling an rnncore :class:`~rnncore.models.Sequential` from the items of a flax sequential
container, linen's ``nn.Sequential`` or nnx's ``nnx.Sequential`` alike: converted modules, and the
plain functions between them (an activation after a Dense or Linear, :func:`~rnncore.interop.flax.last_step`
after an RNN), with the checks that concern the stack as a whole (one ``time_major`` for all, the
carry returned by the last module only, ``last_step`` on batch-major outputs).

>>> from rnncore import layers as L
>>> from rnncore.interop.flax.module_kind import Converted
>>> model, params = assemble([("layers_0", Converted(L.Dense(2), L.DenseParams(1, 2)))])
>>> [type(layer).__name__ for layer in model.layers], params
(['Dense'], (DenseParams(kernel=1, bias=2),))
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ... import layers as L
from ...models import Sequential
from .activations import activation_name
from .module_kind import Converted
from .recurrent import last_step

__all__ = ["assemble", "function_after"]


def function_after(previous: Any, fn: Any, at: str) -> Any:
    """The rnncore layer ``previous`` with a plain function of a flax sequential container folded in."""
    if fn is last_step:
        if not isinstance(previous, L.RNN):
            raise ValueError(f"{at}: last_step must follow an RNN; got {type(previous).__name__}.")
        return replace(previous, return_sequences=False)
    if isinstance(previous, L.Dense) and previous.activation is None:
        return replace(previous, activation=activation_name(fn, at, "function", elementwise=False))
    raise ValueError(
        f"{at}: a function in a flax Sequential is supported right after a Dense or Linear (as its activation), "
        "or rnncore.interop.flax.last_step after an RNN."
    )


def assemble(items: list) -> tuple:
    """``(model, params)`` from ``[(at, Converted or a plain function), ...]`` in order."""
    layers: list = []
    params: list = []
    time_major: dict = {}
    for at, item in items:
        if isinstance(item, Converted):
            layers.append(item.layer)
            params.append(item.params)
            if item.time_major is not None:
                time_major[at] = item.time_major
        else:
            layers[-1] = function_after(layers[-1], item, at)
    if len(set(time_major.values())) > 1:
        raise ValueError(f"the recurrent modules differ in time_major ({time_major}); expected one layout for all.")
    for i, layer in enumerate(layers[:-1]):
        if getattr(layer, "return_state", False):
            raise ValueError(
                f"module {i} returns its carry (return_carry=True) but is not the last; a flax Sequential would pass "
                "(carry, outputs) on as two arguments. Expected return_carry=True on the last recurrent module only."
            )
    if any(time_major.values()) and any(isinstance(layer, L.RNN) and not layer.return_sequences for layer in layers):
        raise ValueError("last_step takes batch-major outputs; expected time_major=False with last_step.")
    return Sequential(layers), tuple(params)
