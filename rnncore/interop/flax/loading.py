""":func:`from_flax`: a flax linen module and its variables -> an rnncore ``(model, params)``."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

from ... import layers as L
from ...models import Sequential
from .activations import activation_name
from .fields import module_at
from .module_kinds import kind_of, supported_list
from .recurrent import last_step

__all__ = ["from_flax", "modules_of"]


def _check_variables(variables: Any) -> None:
    if not isinstance(variables, Mapping):
        raise ValueError(
            f"variables must be a dict of collections ({{'params': ...}}); got {type(variables).__name__}."
        )
    other = sorted(k for k in variables if k != "params")
    if other:
        raise ValueError(
            f"variables hold the collections {other}; expected 'params' only (rnncore's layers have no state "
            "collections)."
        )


def modules_of(module: Any, variables: Any) -> list:
    """``[(path, module bound to its variables, or a plain function), ...]``: the items of an
    ``nn.Sequential``, or the module itself."""
    import flax.linen as nn

    if not isinstance(module, nn.Module):
        raise ValueError(f"module must be a flax linen Module; got {type(module).__name__}.")
    _check_variables(variables)
    bound = module.bind(variables)
    if type(module) is nn.Sequential:
        return [(f"layers_{i}", m) for i, m in enumerate(bound.layers)]
    return [("module", bound)]


def _function_after(previous: Any, fn: Any, at: str) -> Any:
    """The rnncore layer ``previous`` with a plain function of the ``nn.Sequential`` folded in."""
    if fn is last_step:
        if not isinstance(previous, L.RNN):
            raise ValueError(f"{at}: last_step must follow an nn.RNN; got {type(previous).__name__}.")
        return replace(previous, return_sequences=False)
    if isinstance(previous, L.Dense) and previous.activation is None:
        return replace(previous, activation=activation_name(fn, at, "function", elementwise=False))
    raise ValueError(
        f"{at}: a function in an nn.Sequential is supported right after an nn.Dense (as its activation), or "
        "rnncore.interop.flax.last_step after an nn.RNN."
    )


def from_flax(module: Any, variables: Any) -> tuple:
    """``(model, params)``: the rnncore :class:`~rnncore.models.Sequential` equal to a flax linen
    module (``nn.RNN``, ``nn.Bidirectional``, ``nn.Dense``, ``nn.Dropout``, or an ``nn.Sequential``
    of those) with its ``variables`` (``{'params': ...}``, as ``module.init`` returns them).

    ``model.apply(params, x)`` equals ``module.apply(variables, x)`` for batch-major modules without
    ``return_carry``; :func:`~rnncore.interop.flax.flax_call` equals it for all of them (flax's
    ``time_major`` layout and ``(carry, y)`` outputs). Anything that would change the numbers and
    that rnncore does not represent is refused with a ``ValueError`` naming the module (its path and
    class), the field and its value.

    Example:
        >>> import jax, jax.numpy as jnp, flax.linen as nn
        >>> import rnncore as rc
        >>> module = nn.Sequential([nn.RNN(nn.GRUCell(4)), nn.Dense(2)])
        >>> variables = module.init(jax.random.PRNGKey(0), jnp.ones((1, 5, 3)))
        >>> model, params = rc.from_flax(module, variables)
        >>> [type(layer).__name__ for layer in model.layers]
        ['GRU', 'Dense']
    """
    import flax.linen as nn

    items = modules_of(module, variables)
    layers: list = []
    params: list = []
    time_major: dict = {}
    for path, m in items:
        if isinstance(m, nn.Module):
            at = module_at(path, m)
            kind = kind_of(m)
            if kind is None:
                raise ValueError(
                    f"{at} is not supported; expected one of {supported_list()} (with activation functions after "
                    "nn.Dense and rnncore.interop.flax.last_step after nn.RNN)."
                )
            converted = kind.to_rnncore(m, m.variables.get("params", {}), at)
            layers.append(converted.layer)
            params.append(converted.params)
            if converted.time_major is not None:
                time_major[at] = converted.time_major
        elif callable(m) and layers:
            at = f"flax {path} (function {getattr(m, '__name__', type(m).__name__)})"
            layers[-1] = _function_after(layers[-1], m, at)
        else:
            raise ValueError(f"flax {path} ({type(m).__name__}) is not supported; expected one of {supported_list()}.")
    if len(set(time_major.values())) > 1:
        raise ValueError(f"the recurrent modules differ in time_major ({time_major}); expected one layout for all.")
    for i, layer in enumerate(layers[:-1]):
        if getattr(layer, "return_state", False):
            raise ValueError(
                f"module {i} returns its carry (return_carry=True) but is not the last; nn.Sequential would pass "
                "(carry, outputs) on as two arguments. Expected return_carry=True on the last recurrent module only."
            )
    if any(time_major.values()) and any(isinstance(layer, L.RNN) and not layer.return_sequences for layer in layers):
        raise ValueError("last_step takes batch-major outputs; expected time_major=False with last_step.")
    return Sequential(layers), tuple(params)
