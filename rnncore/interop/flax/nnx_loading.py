""":func:`from_nnx`: a flax nnx module (it holds its params) -> an rnncore ``(model, params)``;
``rc.from_flax(module)`` calls it for nnx modules.

>>> import jax.numpy as jnp
>>> from flax import nnx
>>> rngs = nnx.Rngs(0)
>>> module = nnx.Sequential(nnx.RNN(nnx.GRUCell(3, 4, rngs=rngs)), nnx.Linear(4, 2, rngs=rngs))
>>> model, params = from_nnx(module)
>>> [type(layer).__name__ for layer in model.layers], bool(jnp.allclose(model.apply(params, jnp.ones((1, 5, 3))),
...                                                                      module(jnp.ones((1, 5, 3))), atol=1e-6))
(['GRU', 'Dense'], True)
"""

from __future__ import annotations

from typing import Any

from .assembly import assemble
from .nnx_fields import nnx_at
from .nnx_module_kinds import nnx_kind_of, supported_list

__all__ = ["from_nnx", "is_nnx"]


def is_nnx(module: Any) -> bool:
    """Whether ``module`` is a flax nnx module."""
    from flax import nnx

    return isinstance(module, nnx.Module)


def from_nnx(module: Any) -> tuple:
    """``(model, params)``: the rnncore :class:`~rnncore.models.Sequential` equal to a flax nnx module
    (``nnx.RNN``, ``nnx.Bidirectional``, ``nnx.Linear``, ``nnx.Dropout``, ``nnx.LayerNorm``,
    ``nnx.Embed``, or an ``nnx.Sequential`` of those, with activation functions after ``nnx.Linear``
    and :func:`~rnncore.interop.flax.last_step` after ``nnx.RNN``), with the params it holds.

    ``model.apply(params, x)`` equals ``module(x)`` for batch-major modules without ``return_carry``;
    :func:`~rnncore.interop.flax.flax_call` equals it for all of them. The params are read from the
    module as they are, so the conversion is differentiable (inside ``nnx.grad``, or on a module
    ``nnx.merge`` d from traced params). What would change the numbers and rnncore does not
    represent is refused with a ``ValueError`` naming the module (its path and class), the setting
    and its value.
    """
    from flax import nnx

    if not is_nnx(module):
        raise ValueError(f"module must be a flax nnx Module; got {type(module).__name__}.")
    pairs = list(enumerate(module.layers)) if type(module) is nnx.Sequential else [("module", module)]
    items: list = []
    for index, m in pairs:
        path = index if isinstance(index, str) else f"layers[{index}]"
        kind = nnx_kind_of(m)
        if kind is not None:
            at = nnx_at(path, m)
            items.append((at, kind.to_rnncore(m, at)))
        elif not isinstance(m, nnx.Module) and callable(m) and items:
            items.append((f"flax nnx {path} (function {getattr(m, '__name__', type(m).__name__)})", m))
        else:
            raise ValueError(
                f"{nnx_at(path, m)} is not supported; expected one of {supported_list()} (with activation functions "
                "after nnx.Linear and rnncore.interop.flax.last_step after nnx.RNN)."
            )
    return assemble(items)
