"""Reading a flax nnx module's attributes and params: what a converter may ignore, what it must refuse.

An nnx module is a plain object whose ``__init__`` stores its settings as attributes and its
parameters as ``nnx.Param`` variables (sub-modules, such as a cell's ``nnx.Linear`` s, are attributes
too). Every setting either changes the numbers of ``module(x)`` (mapped, or refused when rnncore has
no equivalent) or does not (``param_dtype``, ``rngs``, ``unroll``: ignored). A setting this module
does not know is accepted only at its ``__init__`` default, so that a future flax setting cannot
change the numbers unnoticed; one without a default is refused. Params are read with their shapes
checked.

>>> import jax.numpy as jnp
>>> from flax import nnx
>>> linear = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
>>> kernel, bias = linear_params(linear, "flax nnx layers[0] (Linear)", use_bias=True)
>>> kernel.shape, bias.shape
((3, 2), (2,))
"""

from __future__ import annotations

import inspect
from typing import Any, Iterable, Optional

import jax.numpy as jnp

from .fields import check_dtype

__all__ = ["IGNORED", "nnx_at", "check_settings", "param", "linear_params", "set_param"]

IGNORED = frozenset({"param_dtype", "rngs", "keep_rngs"})
"""Settings that never change the numbers of a call on given params."""


def nnx_at(path: str, module: Any) -> str:
    """How messages name an nnx module: ``flax nnx layers[2] (Bidirectional)``."""
    return f"flax nnx {path} ({type(module).__name__})"


def check_settings(module: Any, at: str, known: Iterable[str]) -> None:
    """Refuse any setting outside ``known`` and :data:`IGNORED` that is not at its ``__init__`` default."""
    from flax import nnx

    known = set(known) | IGNORED
    defaults = inspect.signature(type(module).__init__).parameters
    for name, value in vars(module).items():
        if name in known or name.startswith("_") or isinstance(value, (nnx.Module, nnx.Variable)):
            continue
        parameter = defaults.get(name)
        default = parameter.default if parameter is not None else inspect.Parameter.empty
        try:
            same = default is not inspect.Parameter.empty and (value is default or bool(value == default))
        except Exception:  # an array or an object without ==
            same = False
        if not same:
            shown = "none" if default is inspect.Parameter.empty else f"its default {default!r}"
            raise ValueError(f"{at}: {name}={value!r} is not supported; expected {shown}.")


def param(module: Any, name: str, shape: Optional[tuple], at: str) -> jnp.ndarray:
    """The value of the ``nnx.Param`` ``module.<name>``, of ``shape`` (None: any), or a ``ValueError``."""
    from flax import nnx

    variable = getattr(module, name, None)
    if not isinstance(variable, nnx.Param):
        raise ValueError(f"{at}: {name} is {type(variable).__name__}; expected an nnx.Param.")
    value = jnp.asarray(variable.get_value())
    if shape is not None and tuple(value.shape) != tuple(shape):
        raise ValueError(f"{at}: {name} has shape {tuple(value.shape)}; expected {tuple(shape)}.")
    return value


def linear_params(linear: Any, at: str, use_bias: bool, shape: Optional[tuple] = None) -> tuple:
    """``(kernel, bias or None)`` of an ``nnx.Linear`` (exactly flax's class), checking its settings:
    ``use_bias`` as given, ``dtype`` None or the params', everything else at its default."""
    from flax import nnx

    if type(linear) is not nnx.Linear:
        raise ValueError(f"{at} is {type(linear).__name__}; expected an nnx.Linear.")
    check_settings(linear, at, ("in_features", "out_features", "use_bias", "dtype", "kernel", "bias"))
    if bool(linear.use_bias) != use_bias:
        raise ValueError(f"{at}: use_bias={linear.use_bias}; expected {use_bias}.")
    kernel = param(linear, "kernel", shape or (linear.in_features, linear.out_features), at)
    check_dtype(linear, at, kernel.dtype)
    bias = param(linear, "bias", (kernel.shape[1],), at) if use_bias else None
    return kernel, bias


def set_param(module: Any, name: str, value: Any) -> None:
    """Give the ``nnx.Param`` ``module.<name>`` the array ``value``."""
    getattr(module, name).set_value(jnp.asarray(value))
