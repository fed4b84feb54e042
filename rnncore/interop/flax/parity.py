r"""The parity table of ``rnncore check-flax``: rnncore against flax linen, per cell type.

Every case is an ``nn.Sequential`` of recurrent modules and an ``nn.Dense(2)`` with random,
asymmetric variables (flax's init replaced by normal draws, so biases are non-zero and every gate
differs), converted by :func:`~rnncore.interop.flax.from_flax`. Each row gives the largest relative
error :math:`\max|a-b|/\max(1, \max|b|)` of the outputs (in flax's structure, through
:func:`~rnncore.interop.flax.flax_call`) and of the gradients of :math:`\sum \sin(y)` with respect
to the inputs and every flax parameter (rnncore's taken through the conversion, which is
differentiable). flax is imported only when a table is computed.

>>> [kind for kind, _, _ in _fixed_cases(lambda name, units, **kw: (name, units))]
['SimpleCell', 'LSTMCell', 'OptimizedLSTMCell', 'GRUCell', 'Bidirectional']
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import numpy as np

from ..errors import relative_error
from .calling import flax_call
from .loading import from_flax

__all__ = ["parity_table", "CELL_TYPES"]

CELL_TYPES = ("SimpleCell", "LSTMCell", "OptimizedLSTMCell", "GRUCell", "Bidirectional")
_CELLS = CELL_TYPES[:-1]


def _fixed_cases(cell: Callable) -> list:
    """``(cell type, description, modules)`` of the fixed stacks; ``cell(name, units, **fields)``
    builds a flax cell."""
    import flax.linen as nn

    cases: list = []
    for name in _CELLS:
        stack: list = [nn.RNN(cell(name, 6)), nn.RNN(cell(name, 5), reverse=True)]
        cases.append((name, f"{name}(6) + {name}(5, reverse)", stack))
    bi = nn.Bidirectional(nn.RNN(cell("LSTMCell", 4)), nn.RNN(cell("GRUCell", 3)))
    cases.append(
        ("Bidirectional", "Bidirectional(LSTMCell(4), GRUCell(3)) + LSTMCell(5)", [bi, nn.RNN(cell("LSTMCell", 5))])
    )
    return cases


def _random_case(kind: str, rng: np.random.Generator, cell: Callable) -> tuple:
    """A random two-module stack whose first module is ``kind``: ``(description, modules)``."""
    import flax.linen as nn
    import jax

    def one(name: str) -> tuple:
        units = int(rng.integers(1, 9))
        fields = {"activation_fn": [jax.nn.tanh, jax.nn.relu, jax.nn.sigmoid][int(rng.integers(3))]}
        if name != "SimpleCell":
            fields["gate_fn"] = [jax.nn.sigmoid, jax.nn.hard_sigmoid][int(rng.integers(2))]
        desc = f"{name}({units}, {', '.join(f.__name__ for f in fields.values())})"
        return cell(name, units, **fields), desc

    if kind == "Bidirectional":
        (cf, df), (cb, db) = one(str(rng.choice(_CELLS))), one(str(rng.choice(_CELLS)))
        first: Any = nn.Bidirectional(nn.RNN(cf), nn.RNN(cb))
        desc = f"Bidirectional({df}, {db})"
    else:
        c, desc = one(kind)
        reverse = bool(rng.integers(2))
        first = nn.RNN(c, reverse=reverse)
        desc += ", reverse" if reverse else ""
    c2, d2 = one(str(rng.choice(_CELLS)))
    return f"{desc} + {d2}", [first, nn.RNN(c2)]


def _errors(module: Any, variables: Any, x: Any) -> tuple:
    """``(output error, gradient error)`` of the converted model against flax."""
    import jax
    import jax.numpy as jnp

    def total(out: Any) -> Any:
        return sum(jnp.sum(jnp.sin(o)) for o in jax.tree_util.tree_leaves(out))

    def flax_loss(params: Any, xx: Any) -> tuple:
        out = module.apply({"params": params}, xx)
        return total(out), out

    def rnncore_loss(params: Any, xx: Any) -> tuple:
        model, p = from_flax(module, {"params": params})
        out = flax_call(model, p, xx)
        return total(out), out

    results = [
        jax.jit(jax.grad(loss, argnums=(0, 1), has_aux=True))(variables["params"], x)
        for loss in (rnncore_loss, flax_loss)
    ]
    (g_ours, ours), (g_theirs, theirs) = results
    leaves = jax.tree_util.tree_leaves
    out_err = max(relative_error(a, b) for a, b in zip(leaves(ours), leaves(theirs)))
    grad_err = max(relative_error(a, b) for a, b in zip(leaves(g_ours), leaves(g_theirs)))
    return out_err, grad_err


def parity_table(
    seed: int = 0,
    trials: int = 0,
    kinds: Optional[Sequence[str]] = None,
    dtype: str = "float32",
    batch: int = 4,
    steps: int = 12,
    features: int = 3,
) -> list:
    r"""Rows ``(cell type, description, output_error, gradient_error)`` against flax linen.

    The fixed stacks first (each cell type as two ``nn.RNN`` layers, the second with
    ``reverse=True``; an ``nn.Bidirectional`` of an LSTM and a GRU cell), then ``trials`` random
    configurations per cell type (``kinds``: a subset of :data:`CELL_TYPES`; random units,
    activations, ``reverse``); every model ends in ``nn.Dense(2)``. ``dtype``: ``"float32"`` or
    ``"float64"`` (then computed with ``jax_enable_x64``, flax's params and carries in float64).
    """
    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype={dtype!r}; expected 'float32' or 'float64'.")
    kinds = CELL_TYPES if kinds is None else tuple(kinds)
    unknown = [k for k in kinds if k not in CELL_TYPES]
    if unknown:
        raise ValueError(f"kinds={unknown}; expected a subset of {', '.join(CELL_TYPES)}.")

    def cell(name: str, units: int, **fields: Any) -> Any:
        return getattr(nn, name)(units, param_dtype=jnp.dtype(dtype), **fields)

    with jax.enable_x64(dtype == "float64"):
        rng = np.random.default_rng(seed)
        x = jnp.asarray(rng.normal(size=(batch, steps, features)), dtype)
        cases = [case for case in _fixed_cases(cell) if case[0] in kinds]
        for _ in range(trials):
            for kind in kinds:
                cases.append((kind, *_random_case(kind, rng, cell)))
        rows = []
        for kind, desc, stack in cases:
            module = nn.Sequential([*stack, nn.Dense(2, param_dtype=jnp.dtype(dtype))])
            variables = module.init(jax.random.PRNGKey(seed), x)
            variables = jax.tree_util.tree_map(lambda a: jnp.asarray(rng.normal(size=a.shape) * 0.5, dtype), variables)
            rows.append((kind, desc, *_errors(module, variables, x)))
    return rows
