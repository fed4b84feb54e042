""":func:`from_flax`: a flax linen module and its variables, or a flax nnx module, -> an rnncore
``(model, params)`` (nnx modules: :mod:`~rnncore.interop.flax.nnx_loading`)."""

from __future__ import annotations

from typing import Any, Mapping

from .assembly import assemble
from .fields import module_at
from .module_kinds import kind_of, supported_list
from .nnx_loading import from_nnx, is_nnx

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
        raise ValueError(
            f"module must be a flax linen Module (or an nnx one, without variables); got {type(module).__name__}."
        )
    _check_variables(variables)
    bound = module.bind(variables)
    if type(module) is nn.Sequential:
        return [(f"layers_{i}", m) for i, m in enumerate(bound.layers)]
    return [("module", bound)]


def from_flax(module: Any, variables: Any = None) -> tuple:
    """``(model, params)``: the rnncore :class:`~rnncore.models.Sequential` equal to a flax linen
    module (``nn.RNN``, ``nn.Bidirectional``, ``nn.Dense``, ``nn.Dropout``, ``nn.LayerNorm``,
    ``nn.Embed``, or an ``nn.Sequential`` of those) with its ``variables`` (``{'params': ...}``, as
    ``module.init`` returns them), or to a flax nnx module alone (it holds its params; ``variables``
    omitted: :func:`~rnncore.interop.flax.nnx_loading.from_nnx`).

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
        >>> from flax import nnx
        >>> rngs = nnx.Rngs(0)
        >>> nnx_module = nnx.Sequential(nnx.RNN(nnx.GRUCell(3, 4, rngs=rngs)), nnx.Linear(4, 2, rngs=rngs))
        >>> model, params = rc.from_flax(nnx_module)
        >>> [type(layer).__name__ for layer in model.layers]
        ['GRU', 'Dense']
    """
    import flax.linen as nn

    if is_nnx(module):
        if variables is not None:
            raise ValueError(
                f"variables={type(variables).__name__}: a flax nnx module holds its own params; expected no "
                "variables (rc.from_flax(module))."
            )
        return from_nnx(module)
    if variables is None and isinstance(module, nn.Module):
        raise ValueError(
            f"variables=None: a flax linen {type(module).__name__} holds no params; expected its variables "
            "({'params': ...}, as module.init returns them)."
        )
    items: list = []
    for path, m in modules_of(module, variables):
        if isinstance(m, nn.Module):
            at = module_at(path, m)
            kind = kind_of(m)
            if kind is None:
                raise ValueError(
                    f"{at} is not supported; expected one of {supported_list()} (with activation functions after "
                    "nn.Dense and rnncore.interop.flax.last_step after nn.RNN)."
                )
            items.append((at, kind.to_rnncore(m, m.variables.get("params", {}), at)))
        elif callable(m) and items:
            items.append((f"flax {path} (function {getattr(m, '__name__', type(m).__name__)})", m))
        else:
            raise ValueError(f"flax {path} ({type(m).__name__}) is not supported; expected one of {supported_list()}.")
    return assemble(items)
