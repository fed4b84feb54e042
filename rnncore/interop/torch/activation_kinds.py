"""PyTorch's activation modules: each is one ``layers.Activation(name)`` of the Keras activation that
equals it, in the settings where one does.

=================  ==========================  ==================================================
``torch.nn``       ``layers.Activation(...)``  the settings rnncore represents (others refused)
=================  ==========================  ==================================================
``Identity``       ``"linear"``
``ReLU``           ``"relu"``
``ReLU6``          ``"relu6"``
``LeakyReLU``      ``"leaky_relu"``            ``negative_slope=0.2`` (Keras's slope; PyTorch's
                                               default is 0.01)
``ELU``            ``"elu"``                   ``alpha=1.0``
``CELU``           ``"celu"``                  ``alpha=1.0``
``SELU``           ``"selu"``
``GELU``           ``"gelu"``                  ``approximate='none'`` (the erf form)
``SiLU``           ``"silu"``
``Mish``           ``"mish"``
``Softplus``       ``"softplus"``              ``beta=1.0, threshold=20.0`` (see below)
``Softsign``       ``"softsign"``
``Tanh``           ``"tanh"``
``Sigmoid``        ``"sigmoid"``
``LogSigmoid``     ``"log_sigmoid"``
``Hardsigmoid``    ``"hard_sigmoid"``          (Keras 3's slope 1/6, as PyTorch's)
``Hardswish``      ``"hard_silu"``
``Hardtanh``       ``"hard_tanh"``             ``min_val=-1.0, max_val=1.0``
``Tanhshrink``     ``"tanh_shrink"``
``Softshrink``     ``"soft_shrink"``           ``lambd=0.5``
``Hardshrink``     ``"hard_shrink"``           ``lambd=0.5``
``Softmax``        ``"softmax"``               ``dim=-1`` (the last axis)
``LogSoftmax``     ``"log_softmax"``           ``dim=-1``
=================  ==========================  ==================================================

``inplace`` changes no value and is accepted either way. A ``Dense(units, activation=a)`` goes to
PyTorch as ``nn.Linear`` then the module of ``a``, and comes back as ``Dense(units)`` then
``Activation(a)``, which computes the same.

Exactness: every pair is the same formula. PyTorch's ``Softplus`` returns ``x`` itself where
``beta·x > threshold``, where :math:`\\log(1 + e^x) = x + e^{-x} + \\ldots`: above ``x = 20`` the two
differ by less than :math:`e^{-20} \\approx 2\\cdot10^{-9}` (nothing in float32, whose spacing at 20 is
:math:`1.9\\cdot10^{-6}`; a relative :math:`10^{-10}` in float64), and their derivatives by as
much. At a kink (ReLU's 0, Hardtanh's ±1, the shrinks' ±0.5, ...) a derivative is a convention; at
ReLU's 0 both take 0.

>>> [type(layer).__name__ for layer in ACTIVATION_KINDS["GELU"].layers({"approximate": "none"})]
['Activation']
>>> ACTIVATION_KINDS["LeakyReLU"].refuse({"type": "LeakyReLU", "negative_slope": 0.01, "inplace": False}, "arch[1]")
Traceback (most recent call last):
...
ValueError: arch[1] (LeakyReLU): negative_slope=0.01; expected 0.2 (rnncore's 'leaky_relu' has that one setting).
"""

from __future__ import annotations

from typing import Any, Optional

from ... import activations, checks
from ... import layers as L
from .module_kind import Arg, ModuleKind

__all__ = ["ACTIVATION_KINDS", "spec_of_activation", "exportable_activations"]

ANY = object()  # an argument every value of which rnncore represents (``inplace``)


def _float(name: str, value: Any) -> float:
    return checks.real(name, value)


def _dim(name: str, value: Any) -> int:
    return checks.integer(name, value)


def _approximate(name: str, value: Any) -> str:
    return checks.one_of(name, value, ("none", "tanh"))


_CHECKS = {"inplace": checks.boolean, "dim": _dim, "approximate": _approximate}

# torch class: (rnncore activation name, {argument: (PyTorch's default, the value rnncore represents)})
_TABLE: dict = {
    "Identity": ("linear", {}),
    "ReLU": ("relu", {"inplace": (False, ANY)}),
    "ReLU6": ("relu6", {"inplace": (False, ANY)}),
    "LeakyReLU": ("leaky_relu", {"negative_slope": (0.01, 0.2), "inplace": (False, ANY)}),
    "ELU": ("elu", {"alpha": (1.0, 1.0), "inplace": (False, ANY)}),
    "CELU": ("celu", {"alpha": (1.0, 1.0), "inplace": (False, ANY)}),
    "SELU": ("selu", {"inplace": (False, ANY)}),
    "GELU": ("gelu", {"approximate": ("none", "none")}),
    "SiLU": ("silu", {"inplace": (False, ANY)}),
    "Mish": ("mish", {"inplace": (False, ANY)}),
    "Softplus": ("softplus", {"beta": (1.0, 1.0), "threshold": (20.0, 20.0)}),
    "Softsign": ("softsign", {}),
    "Tanh": ("tanh", {}),
    "Sigmoid": ("sigmoid", {}),
    "LogSigmoid": ("log_sigmoid", {}),
    "Hardsigmoid": ("hard_sigmoid", {"inplace": (False, ANY)}),
    "Hardswish": ("hard_silu", {"inplace": (False, ANY)}),
    "Hardtanh": ("hard_tanh", {"min_val": (-1.0, -1.0), "max_val": (1.0, 1.0), "inplace": (False, ANY)}),
    "Tanhshrink": ("tanh_shrink", {}),
    "Softshrink": ("soft_shrink", {"lambd": (0.5, 0.5)}),
    "Hardshrink": ("hard_shrink", {"lambd": (0.5, 0.5)}),
    "Softmax": ("softmax", {"dim": (None, -1)}),
    "LogSoftmax": ("log_softmax", {"dim": (None, -1)}),
}


def _from_module(torch_class: str, m: Any) -> dict:
    out = {}
    for arg in _TABLE[torch_class][1]:
        value = getattr(m, arg)
        out[arg] = float(value) if _CHECKS.get(arg, _float) is _float else value
    return out


def _refuse(torch_class: str, spec: dict, at: str) -> None:
    name, args = _TABLE[torch_class]
    for arg, (_, represented) in args.items():
        value = spec[arg]
        if represented is not ANY and not (type(value) is type(represented) and value == represented):
            raise ValueError(
                f"{at} ({torch_class}): {arg}={value!r}; expected {represented!r} (rnncore's {name!r} has that one "
                "setting)."
            )


def _build(torch_class: str, nn: Any, spec: dict) -> Any:
    return getattr(nn, torch_class)(**{arg: spec[arg] for arg in _TABLE[torch_class][1]})


def _kind(torch_class: str) -> ModuleKind:
    name, args = _TABLE[torch_class]
    return ModuleKind(
        torch_class=torch_class,
        args={arg: Arg(default, _CHECKS.get(arg, _float)) for arg, (default, _) in args.items()},
        layers=lambda spec: [L.Activation(name)],
        params=lambda spec, w, gradients: [()],
        from_module=lambda m: _from_module(torch_class, m),
        refuse=lambda spec, at: _refuse(torch_class, spec, at),
        build=lambda nn, spec, dtype: _build(torch_class, nn, spec),
        notes={"activation": name},
    )


ACTIVATION_KINDS: dict = {torch_class: _kind(torch_class) for torch_class in _TABLE}
"""The activation modules' entries, by ``torch.nn`` class name."""

_BY_FUNCTION = {activations.get(name, elementwise=False): cls for cls, (name, _) in _TABLE.items()}


def spec_of_activation(activation: Any) -> Optional[dict]:
    """The spec (without ``name``) of the PyTorch module equal to an rnncore activation (a Keras
    name, ``None`` or one of :mod:`rnncore.activations`' functions), or None where PyTorch has none.

    >>> spec_of_activation("softmax")
    {'type': 'Softmax', 'dim': -1}
    >>> spec_of_activation("exponential") is None
    True
    """
    fn = activations.get(activation, elementwise=False)
    try:
        cls = _BY_FUNCTION.get(fn)
    except TypeError:  # an unhashable callable is none of them
        cls = None
    if cls is None:
        return None
    spec = {"type": cls}
    for arg, (default, represented) in _TABLE[cls][1].items():
        spec[arg] = default if represented is ANY else represented
    return spec


def exportable_activations() -> str:
    """The rnncore activation names PyTorch has a module for, as messages list them."""
    return ", ".join(name for name, _ in _TABLE.values())
