"""A live ``torch.nn.Module`` as a description and its weights: ``(specs, weights)``.

What a module computes is read from its structure, never by running it:

* a :func:`~rnncore.interop.torch.to_torch` module carries its description (``.arch``);
* ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` alone: its ``output`` (every step);
* ``nn.Linear``, ``nn.Dropout``, ``nn.Embedding``, ``nn.LayerNorm``, an activation module
  (:mod:`~rnncore.interop.torch.activation_kinds`) alone, or an ``nn.Sequential`` of them (an
  ``nn.Sequential`` cannot hold a recurrent module: it would hand the next module the
  tuple ``(output, h_n)``, so PyTorch itself cannot run one);
* any other module: its ``forward`` read as one of the patterns of :mod:`~rnncore.interop.torch.forward_patterns`;
* with ``arch=`` given: the description, each spec checked against the child it names (an
  activation's spec may name none: ``forward`` may apply it as a function).

Only these exact classes are taken (a subclass may compute something else in its own ``forward``).
Weights are the module's ``state_dict()`` as NumPy arrays.
"""

from __future__ import annotations

from typing import Any, Optional, cast

import numpy as np

from .activation_kinds import ACTIVATION_KINDS
from .arch import at_of, read_arch
from .forward_patterns import recognise
from .module_kind import check_spec
from .module_kinds import KINDS, supported_list
from .stack_module import stack_class

__all__ = ["describe", "kind_name", "numpy_weights"]


def kind_name(nn: Any, module: Any) -> Optional[str]:
    """The :data:`~rnncore.interop.torch.module_kinds.KINDS` name of a module of exactly a supported
    class, else None."""
    for name in KINDS:
        if type(module) is getattr(nn, name):
            return name
    return None


def numpy_weights(state_dict: Any) -> dict:
    """A state_dict of tensors (or arrays) as NumPy arrays, by name."""
    out = {}
    for key, value in state_dict.items():
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        out[str(key)] = np.asarray(value)
    return out


def _spec_of(nn: Any, name: str, module: Any, output: Optional[str]) -> dict:
    kind = kind_name(nn, module)
    at = f"module {name or type(module).__name__!r} ({type(module).__name__})"
    if kind is None:
        raise ValueError(f"{at} is not supported by rnncore.from_torch; supported modules: {supported_list()}.")
    try:
        args = KINDS[kind].from_module(module)
    except ValueError as e:
        raise ValueError(f"{at}: {e}") from None
    spec = {"type": kind, "name": name, **args}
    if output is not None:
        spec["output"] = output
    spec = check_spec(KINDS[kind], spec, at)
    KINDS[kind].refuse(spec, at)
    return spec


def _checked_against_children(nn: Any, module: Any, specs: list) -> None:
    """Each spec's named child exists, is of the spec's type and agrees with every argument the spec gives
    (an activation's spec may name no child: ``forward`` may call it as a function, ``F.relu(x)``)."""
    for i, spec in enumerate(specs):
        at = at_of(i, spec)
        try:
            child = module.get_submodule(spec["name"]) if spec["name"] else module
        except AttributeError:
            if spec["type"] in ACTIVATION_KINDS:
                continue
            raise ValueError(f"{at}: the module has no child named {spec['name']!r}.") from None
        seen = _spec_of(nn, spec["name"], child, None)
        if seen["type"] != spec["type"]:
            raise ValueError(f"{at}: type={spec['type']!r}, but {spec['name']!r} is an nn.{seen['type']}.")
        for key, value in spec.items():
            if key in seen and seen[key] != value:
                raise ValueError(f"{at} ({spec['type']}): {key}={value!r}, but the module has {key}={seen[key]!r}.")


def _sequential_specs(nn: Any, module: Any) -> list:
    specs = []
    for name, child in module.named_children():
        if kind_name(nn, child) in ("RNN", "LSTM", "GRU"):
            raise ValueError(
                f"nn.Sequential: module {name!r} is an nn.{kind_name(nn, child)}, which returns (output, h_n); "
                "PyTorch cannot run it inside an nn.Sequential. Wrap it in a module whose forward is one of "
                "the recognised patterns, or pass arch=."
            )
        specs.append(_spec_of(nn, name, child, None))
    if not specs:
        raise ValueError("nn.Sequential: it has no modules.")
    return specs


def describe(module: Any, arch: Any = None) -> tuple:
    """``(specs, weights)`` of a live module (see the module docstring)."""
    from torch import nn

    weights = numpy_weights(module.state_dict())
    if arch is not None:
        specs = read_arch(arch)
        _checked_against_children(nn, module, specs)
        return specs, weights
    if isinstance(module, stack_class()):
        return read_arch(cast(Any, module).arch), weights
    kind = kind_name(nn, module)
    if kind is not None:
        return [_spec_of(nn, "", module, "sequence" if KINDS[kind].recurrent else None)], weights
    if type(module) is nn.Sequential:
        return read_arch(_sequential_specs(nn, module)), weights
    recurrent = (nn.RNN, nn.LSTM, nn.GRU)
    entries = recognise(module, recurrent, nn.Sequential)
    return read_arch([_spec_of(nn, name, child, output) for name, child, output in entries]), weights
