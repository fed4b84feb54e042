"""Reading a flax module's fields and variables: what a converter may ignore, what it must refuse.

A flax linen module is a dataclass; every field either changes the numbers of ``module.apply``
(mapped, or refused when rnncore has no equivalent) or does not (initializers, ``param_dtype``,
``unroll``: ignored). A field this module does not know is accepted only at its default value, so
that a future flax field cannot change the numbers unnoticed. Parameter arrays are read by path
(``cell/ii/kernel``) with their shapes checked.

>>> import numpy as np
>>> array({"i": {"kernel": np.zeros((3, 2))}}, ("i", "kernel"), (3, 2), "layers_0 (RNN)").shape
(3, 2)
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Mapping

import jax.numpy as jnp
import numpy as np

__all__ = ["IGNORED", "module_at", "check_fields", "array", "check_dtype", "check_zero_init"]

IGNORED = frozenset(
    {
        "parent",
        "name",
        "kernel_init",
        "recurrent_kernel_init",
        "bias_init",
        "scale_init",
        "embedding_init",
        "param_dtype",
    }
)
"""Fields that never change the numbers of ``apply`` on given variables."""


def module_at(path: str, module: Any) -> str:
    """How messages name a module: ``flax layers_2 (Bidirectional)``."""
    return f"flax {path} ({type(module).__name__})"


def check_fields(module: Any, at: str, known: Iterable[str]) -> None:
    """Refuse any field outside ``known`` and :data:`IGNORED` that is not at its class default."""
    known = set(known) | IGNORED
    for f in dataclasses.fields(module):
        if f.name in known:
            continue
        value = getattr(module, f.name)
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = dataclasses.MISSING
        try:
            same = default is not dataclasses.MISSING and bool(value == default)
        except Exception:  # an array or an object without ==
            same = False
        if not same:
            raise ValueError(f"{at}: {f.name}={value!r} is not supported; expected its default {default!r}.")


def array(tree: Any, path: tuple, shape: tuple, at: str) -> jnp.ndarray:
    """The array at ``path`` in ``tree`` (``tree[path[0]][path[1]]`` and on), of ``shape``, or a
    ``ValueError`` naming the path."""
    node = tree
    for i, key in enumerate(path):
        if not isinstance(node, Mapping) or key not in node:
            have = sorted(node) if isinstance(node, Mapping) else type(node).__name__
            raise ValueError(f"{at}: params have no {'/'.join(path[: i + 1])}; found {have}.")
        node = node[key]
    a = jnp.asarray(node)
    if tuple(a.shape) != tuple(shape):
        raise ValueError(f"{at}: params {'/'.join(path)} has shape {tuple(a.shape)}; expected {tuple(shape)}.")
    return a


def check_dtype(module: Any, at: str, params_dtype: Any) -> None:
    """A module's computation ``dtype`` must be None (flax then computes in the promoted dtype of
    inputs and params, as rnncore does) or the params' own dtype."""
    dtype = getattr(module, "dtype", None)
    if dtype is not None and np.dtype(dtype) != np.dtype(params_dtype):
        raise ValueError(
            f"{at}: dtype={np.dtype(dtype).name} differs from its params' dtype {np.dtype(params_dtype).name}; "
            "expected None or the params' dtype (rnncore computes in the params' dtype)."
        )


def check_zero_init(module: Any, at: str, field: str) -> None:
    """An initializer the forward calls (a cell's ``carry_init``) must give zeros, as rnncore's
    initial state is."""
    import jax

    init = getattr(module, field)
    try:
        with jax.ensure_compile_time_eval():  # concrete values even while a caller traces
            values = [np.asarray(init(jax.random.PRNGKey(k), (2, 3), jnp.float32)) for k in (0, 1)]
        zero = all(v.shape == (2, 3) and not v.any() for v in values)
    except Exception:
        zero = False
    if not zero:
        raise ValueError(f"{at}: {field}={init!r} does not give zeros; rnncore's initial state is zeros.")
