"""Activation functions between flax and rnncore: a flax cell's ``gate_fn``/``activation_fn`` (or a
function after ``nn.Dense`` in an ``nn.Sequential``) is a plain callable; it maps to an rnncore
activation name when it *is* a function computing exactly that activation.

Recognized by identity: the ``jax.nn`` functions flax re-exports (``nn.sigmoid`` is
``jax.nn.sigmoid``) whose definition equals rnncore's (Keras's), and rnncore's own functions
(:mod:`rnncore.activations`). ``jax.nn.gelu`` (tanh approximation by default, Keras's is exact) and
``jax.nn.leaky_relu`` (slope 0.01, Keras's 0.2) compute something else and are refused, as is any
other callable (a lambda, a ``functools.partial``): its function cannot be read.

>>> import jax
>>> rnncore_name(jax.nn.hard_sigmoid), rnncore_name(jax.nn.soft_sign), rnncore_name(jax.nn.gelu)
('hard_sigmoid', 'softsign', None)
>>> flax_function("tanh", "layers[0]", "activation") is jax.nn.tanh
True
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import jax

from ... import activations

__all__ = ["JAX_NN", "rnncore_name", "flax_function", "activation_name", "supported_names"]

JAX_NN = {
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "relu": "relu",
    "relu6": "relu6",
    "hard_sigmoid": "hard_sigmoid",
    "elu": "elu",
    "celu": "celu",
    "selu": "selu",
    "softplus": "softplus",
    "soft_sign": "softsign",
    "silu": "silu",
    "swish": "silu",
    "hard_silu": "hard_silu",
    "hard_swish": "hard_silu",
    "log_sigmoid": "log_sigmoid",
    "hard_tanh": "hard_tanh",
    "squareplus": "squareplus",
    "sparse_plus": "sparse_plus",
    "sparse_sigmoid": "sparse_sigmoid",
    "mish": "mish",
    "softmax": "softmax",
    "log_softmax": "log_softmax",
}
"""``jax.nn`` function name -> rnncore (Keras) name, for the definitions that agree exactly."""


def _jax_functions() -> dict:
    """``{function: rnncore name}`` for the ``jax.nn`` functions this JAX has."""
    out: dict = {}
    for jax_name, name in JAX_NN.items():
        fn = getattr(jax.nn, jax_name, None)
        if fn is not None:
            out.setdefault(fn, name)
    return out


def rnncore_name(fn: Any) -> Optional[str]:
    """The rnncore activation name of a flax-side function, or None when it is not one this module
    recognizes."""
    try:
        name = _jax_functions().get(fn)
    except TypeError:  # unhashable
        return None
    return name if name is not None else activations.name_of(fn)


def supported_names() -> str:
    """The recognized functions, as messages list them."""
    jax_names = ", ".join(f"jax.nn.{n}" for n in JAX_NN if hasattr(jax.nn, n))
    return f"{jax_names}, or a function of rnncore.activations"


def activation_name(fn: Any, at: str, arg: str, elementwise: bool = True) -> str:
    """:func:`rnncore_name`, or a ``ValueError`` naming ``at`` and ``arg``."""
    name = rnncore_name(fn)
    if name is None or (elementwise and name in ("softmax", "log_softmax")):
        shown = getattr(fn, "__name__", None) or type(fn).__name__
        kind = "an elementwise function" if elementwise else "a function"
        raise ValueError(f"{at}: {arg}={shown} has no rnncore equivalent; expected {kind} among {supported_names()}.")
    return name


def flax_function(identifier: Any, at: str, arg: str) -> Callable:
    """The function a flax module gets for an rnncore activation (a name, None, or one of
    rnncore's functions): the ``jax.nn`` function with the same definition where there is one,
    else rnncore's own function (flax takes any callable)."""
    fn = activations.get(identifier, elementwise=False)
    name = activations.name_of(fn)
    if name is None:
        raise ValueError(
            f"{at}: {arg}={identifier!r} is a callable of its own; to_flax exports the activations of "
            "rnncore.activations only."
        )
    for jax_name, rc_name in JAX_NN.items():
        if rc_name == name and hasattr(jax.nn, jax_name):
            return getattr(jax.nn, jax_name)
    return fn
