"""The architecture description: a small JSON-able list of layer specs, checked as a whole.

A PyTorch state_dict holds weights, not the computation; a subclassed module's ``forward`` is code.
The description says what the weights compute, one spec per module in the order the data flows::

    [{"type": "Embedding", "name": "emb", "padding_idx": 0},
     {"type": "LSTM", "name": "lstm", "num_layers": 2, "batch_first": true, "output": "last"},
     {"type": "Linear", "name": "fc"}]

Keys are PyTorch's constructor arguments with PyTorch's defaults (``batch_first`` is false unless
given), plus ``type`` (``RNN``, ``LSTM``, ``GRU``, ``Linear``, ``Dropout``, ``Embedding``,
``LayerNorm``, or an activation module's class, ``ReLU``, ``GELU``, ...: see
:mod:`~rnncore.interop.torch.activation_kinds`), ``name`` (the prefix of the module's weights in the
state_dict: ``"lstm"`` for ``lstm.weight_ih_l0``; ``""`` for none; by default the spec's index, as
``nn.Sequential`` names its modules) and, for recurrent modules, ``output``: what the next module
receives (``"sequence"``: ``output``; ``"last"``: ``output[:, -1]``; ``"final"``: ``h_n[-1]``, or
``torch.cat((h_n[-2], h_n[-1]), -1)`` when bidirectional; see
:mod:`~rnncore.interop.torch.recurrent_kind`). Sizes, depth, directions and biases may be left out:
they are read off the weights, and checked where given. The same file serves ``rnncore diagnose
--model m.pt --arch arch.json``.

The rules across specs: an ``Embedding`` comes first; a recurrent module whose output is not
``"sequence"`` is the last recurrent module; every recurrent module has the same ``batch_first``
(the model's input layout).

>>> specs = read_arch([{"type": "GRU", "name": "rnn", "batch_first": True, "output": "final"}, {"type": "Linear"}])
>>> [(s["type"], s["name"]) for s in specs]
[('GRU', 'rnn'), ('Linear', '1')]
>>> read_arch([{"type": "LSTM", "output": "last"}, {"type": "GRU"}])
Traceback (most recent call last):
...
ValueError: arch[1] (GRU): a recurrent module after arch[0] (LSTM), whose output is 'last'; ...
"""

from __future__ import annotations

import json
import os
from typing import Any

from .module_kind import check_spec
from .module_kinds import kind_named

__all__ = ["read_arch", "at_of", "MAX_ARCH_BYTES"]

MAX_ARCH_BYTES = 1 << 20


def at_of(i: int, spec: dict) -> str:
    """How messages name spec ``i``: ``arch[1]``."""
    return f"arch[{i}]"


def _load(arch: Any) -> Any:
    if isinstance(arch, (str, os.PathLike)):
        path = os.fspath(arch)
        if not os.path.isfile(path):
            raise ValueError(f"arch={path!r}: no such file (expected a JSON file holding a list of layer specs).")
        if os.path.getsize(path) > MAX_ARCH_BYTES:
            raise ValueError(f"arch={path!r}: larger than the {MAX_ARCH_BYTES} bytes a description may have.")
        try:
            with open(path, encoding="utf-8") as f:
                return json.load(f)
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            raise ValueError(f"arch={path!r}: not valid JSON ({e}).") from None
    return arch


def read_arch(arch: Any) -> list:
    """The checked specs of a description: a list of dicts, or the path of a JSON file holding one."""
    arch = _load(arch)
    if not isinstance(arch, (list, tuple)) or not arch:
        raise ValueError(
            f"arch must be a non-empty list of layer specs (dicts with a 'type'); got {type(arch).__name__}."
        )
    specs = []
    for i, spec in enumerate(arch):
        at = at_of(i, spec)
        if not isinstance(spec, dict):
            raise ValueError(f"{at}: a layer spec must be a dict with a 'type'; got {type(spec).__name__}.")
        spec = check_spec(kind_named(spec.get("type"), at), spec, at)
        spec.setdefault("name", str(i))
        specs.append(spec)
    _check_order(specs)
    return specs


def _check_order(specs: list) -> None:
    names: dict = {}
    sequence_source, layout = None, None
    for i, spec in enumerate(specs):
        at, kind = at_of(i, spec), kind_named(spec["type"], "")
        if spec["name"] in names:
            raise ValueError(f"{at}: name={spec['name']!r} is already the name of arch[{names[spec['name']]}].")
        names[spec["name"]] = i
        if spec["type"] == "Embedding" and i > 0:
            raise ValueError(f"{at} (Embedding): an Embedding must come first (it takes the integer inputs).")
        if not kind.recurrent:
            continue
        if sequence_source is not None:
            j = sequence_source
            raise ValueError(
                f"{at} ({spec['type']}): a recurrent module after arch[{j}] ({specs[j]['type']}), whose output is "
                f"{specs[j].get('output')!r}; only output='sequence' feeds another recurrent module."
            )
        if spec.get("output", "sequence") != "sequence":
            sequence_source = i
        batch_first = spec.get("batch_first", False)
        if layout is not None and layout[1] != batch_first:
            raise ValueError(
                f"{at} ({spec['type']}): batch_first={batch_first}, but arch[{layout[0]}] has "
                f"batch_first={layout[1]}; the model takes one input layout."
            )
        layout = layout or (i, batch_first)
