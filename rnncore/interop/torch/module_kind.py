"""What the converter knows about one PyTorch module kind (:class:`ModuleKind`), and how a layer
spec of the architecture description is checked against it.

A *spec* is one entry of the description :mod:`~rnncore.interop.torch.arch` reads: a JSON-able dict
``{"type": "LSTM", "name": "lstm", "hidden_size": 16, "batch_first": true, ...}`` whose keys are
the PyTorch constructor's arguments (with PyTorch's defaults) plus ``type``, ``name`` (the prefix
of the module's weights in the state_dict) and, for recurrent modules, ``output``. Sizes may be
left out: they are read off the weights.

>>> from rnncore import checks
>>> kind = ModuleKind("Dropout", {"p": Arg(0.5, checks.rate)}, layers=lambda s: [], params=lambda s, w, g: [])
>>> check_spec(kind, {"type": "Dropout", "p": 0.2}, "arch[0]")
{'type': 'Dropout', 'p': 0.2}
>>> check_spec(kind, {"type": "Dropout", "rate": 0.2}, "arch[0]")
Traceback (most recent call last):
...
ValueError: arch[0] (Dropout): unknown key 'rate'; expected type, name, p.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

__all__ = ["Arg", "ModuleKind", "check_spec", "complete", "prefixed", "NOT_GIVEN"]

NOT_GIVEN = None  # an argument's default when it is read off the weights


@dataclass(frozen=True)
class Arg:
    """One constructor argument: its default (``NOT_GIVEN``: read off the weights) and its check
    (``check(name, value) -> value``, a :mod:`rnncore.checks` function)."""

    default: Any
    check: Callable[[str, Any], Any]


def _no_tensors(spec: dict) -> dict:
    return {}


def _no_inference(spec: dict, weights: Any, at: str) -> dict:
    return spec


def _no_refusal(spec: dict, at: str) -> None:
    return None


@dataclass(frozen=True)
class ModuleKind:
    """What the converter knows about one ``torch.nn`` module class.

    * ``torch_class``: the class name in ``torch.nn``; ``args``: its constructor arguments the
      spec takes (:class:`Arg`), in the constructor's order;
    * ``from_module(module) -> dict``: the arguments of a live module (refusing settings rnncore
      does not represent);
    * ``refuse(spec, at)``: refuses a checked spec that rnncore does not represent;
    * ``tensor_shapes(spec)``: the names (without the prefix) and shapes of its weights in its state_dict,
      ``infer(spec, weights, at)``: the spec with the sizes read off those weights (and checked);
    * ``layers(spec)``: its rnncore layers; ``params(spec, weights, gradients)``: their params
      entries (``gradients=True`` maps gradients: see :mod:`~rnncore.interop.torch.recurrent`);
      ``tensors(spec, entries)``: back to named arrays;
    * ``build(nn, spec, dtype)``: the equal ``torch.nn`` module (``nn`` is ``torch.nn``).
    """

    torch_class: str
    args: dict
    layers: Callable[[dict], list]
    params: Callable[[dict, Any, bool], list]
    from_module: Callable[[Any], dict] = lambda module: {}
    refuse: Callable[[dict, str], None] = _no_refusal
    tensor_shapes: Callable[[dict], dict] = _no_tensors
    infer: Callable[[dict, Any, str], dict] = _no_inference
    tensors: Callable[[dict, list], dict] = lambda spec, entries: {}
    build: Callable[[Any, dict, Any], Any] = lambda nn, spec, dtype: None
    recurrent: bool = False
    notes: dict = field(default_factory=dict)


def check_spec(kind: ModuleKind, spec: Any, at: str) -> dict:
    """``spec`` with every argument checked (``type`` and ``name`` kept; arguments left out are
    not filled in: :func:`complete` does that once the weights have been read)."""
    where = f"{at} ({kind.torch_class})"
    if not isinstance(spec, dict):
        raise ValueError(f"{where}: a layer spec must be a dict; got {type(spec).__name__}.")
    allowed = ("type", "name", *kind.args)
    out: dict = {}
    for key, value in spec.items():
        if key not in allowed:
            raise ValueError(f"{where}: unknown key {key!r}; expected {', '.join(allowed)}.")
        if key == "name":
            if not isinstance(value, str):
                raise ValueError(f"{where}: name={value!r}; expected a string (the prefix of its weights).")
            out[key] = value
        elif key == "type":
            out[key] = value
        elif value is None and kind.args[key].default is None:
            out[key] = None
        else:
            try:
                out[key] = kind.args[key].check(key, value)
            except ValueError as e:
                raise ValueError(f"{where}: {e}") from None
    return out


def complete(kind: ModuleKind, spec: dict, at: str) -> dict:
    """``spec`` with PyTorch's defaults filled in and ``refuse`` applied (sizes must be known)."""
    out = dict(spec)
    for key, arg in kind.args.items():
        if key not in out:
            out[key] = arg.default
    kind.refuse(out, at)
    return out


def prefixed(name: Optional[str], key: str) -> str:
    """The state_dict key of weight ``key`` of the module named ``name`` ("" or None: no prefix)."""
    return f"{name}.{key}" if name else key
