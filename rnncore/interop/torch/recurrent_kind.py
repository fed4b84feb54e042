"""The entries of ``nn.RNN``, ``nn.LSTM`` and ``nn.GRU``: one rnncore recurrent layer per PyTorch layer.

A PyTorch recurrent module with ``num_layers = n`` is n rnncore layers, each
``layers.SimpleRNN(u, activation=nonlinearity)`` / ``layers.LSTM(u)`` /
``layers.GRU(u, reset_after=True)`` with ``use_bias=bias``, inside
``layers.Bidirectional(merge_mode="concat")`` when ``bidirectional`` (PyTorch's output is
``[forward ‖ backward]`` on the feature axis, both in input time order, as Keras's concat). Between
them, ``layers.Dropout(dropout)`` where ``dropout > 0`` (PyTorch drops the outputs of every layer
but the last, element-wise, while training only; with one layer it drops nothing). Weights: see
:mod:`~rnncore.interop.torch.recurrent`.

What the module's caller takes of it is the spec's ``output``:

* ``"sequence"``: ``output``, every step (the top layer returns sequences);
* ``"last"``: ``output[:, -1]`` (``output[-1]`` with ``batch_first=False``); unidirectional, this
  is the top layer's last output (``return_sequences=False``); bidirectional, its backward half is
  the backward direction's *first* processed step, so the top layer returns sequences and
  ``layers.LastStep()`` follows;
* ``"final"``: ``h_n[-1]``, the last layer's final state (``torch.cat((h_n[-2], h_n[-1]), -1)``
  bidirectional): the top layer with ``return_sequences=False``.

``proj_size > 0`` (an LSTM with projections) has no rnncore counterpart and is refused.

>>> spec = {"type": "LSTM", "input_size": 3, "hidden_size": 4, "num_layers": 2, "bias": True, "batch_first": True,
...         "dropout": 0.25, "bidirectional": True, "proj_size": 0, "output": "last"}
>>> [type(layer).__name__ for layer in rnncore_layers(spec)]
['Bidirectional', 'Dropout', 'Bidirectional', 'LastStep']
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ... import cells, checks
from ... import layers as L
from .module_kind import NOT_GIVEN, Arg, ModuleKind
from .recurrent import GATES, direction_arrays, direction_tensors, suffix, tensor_names

__all__ = ["OUTPUTS", "RNN", "LSTM", "GRU", "rnncore_layers"]

OUTPUTS = ("sequence", "last", "final")


def _output(name: str, value: Any) -> str:
    return checks.one_of(name, value, OUTPUTS, "what the caller takes: output, output[:, -1], h_n[-1]")


def _args(mode: str) -> dict:
    args = {
        "input_size": Arg(NOT_GIVEN, checks.positive_int),
        "hidden_size": Arg(NOT_GIVEN, checks.positive_int),
        "num_layers": Arg(1, checks.positive_int),
    }
    if mode == "RNN":
        args["nonlinearity"] = Arg("tanh", lambda n, v: checks.one_of(n, v, ("tanh", "relu")))
    args.update(
        bias=Arg(True, checks.boolean),
        batch_first=Arg(False, checks.boolean),
        dropout=Arg(0.0, lambda n, v: checks.real(n, v, 0, 1)),
        bidirectional=Arg(False, checks.boolean),
    )
    if mode == "LSTM":
        args["proj_size"] = Arg(0, lambda n, v: checks.integer(n, v, minimum=0))
    args["output"] = Arg("sequence", _output)
    return args


def _from_module(module: Any) -> dict:
    spec = {a: getattr(module, a) for a in _args(module.mode if module.mode in GATES else "RNN") if a != "output"}
    spec["dropout"] = float(spec["dropout"])
    return spec


def _refuse(spec: dict, at: str) -> None:
    if spec.get("proj_size", 0):
        raise ValueError(
            f"{at} (LSTM): proj_size={spec['proj_size']}; expected 0 (an LSTM with projections, weight_hr, "
            "has no rnncore counterpart)."
        )


def _directions(spec: dict) -> tuple:
    return (False, True) if spec["bidirectional"] else (False,)


def _tensor_shapes(spec: dict) -> dict:
    units = spec["hidden_size"]
    rows, out = GATES[spec["type"]] * units, {}  # type: int, dict
    for k in range(spec["num_layers"]):
        features = spec["input_size"] if k == 0 else units * len(_directions(spec))
        for reverse in _directions(spec):
            shapes = [(rows, features), (rows, units), (rows,), (rows,)]
            out.update(zip(tensor_names(spec["bias"], suffix(k, reverse)), shapes))
    return out


def _shape(weights: Any, key: str) -> tuple:
    return tuple(np.shape(weights[key]))


def _infer(spec: dict, weights: Any, at: str) -> dict:
    """Sizes, depth, directions and bias read off the weights (``weights``: name -> array, no prefix)."""
    mode, where = spec["type"], f"{at} ({spec['type']})"
    if "weight_ih_l0" not in weights:
        raise ValueError(f"{where}: no weight_ih_l0 among its weights ({', '.join(sorted(weights)) or 'none'}).")
    if mode == "LSTM" and "weight_hr_l0" in weights:
        raise ValueError(
            f"{where}: has weight_hr_l0, so proj_size > 0; expected proj_size=0 (an LSTM with projections has no "
            "rnncore counterpart)."
        )
    rows, features = _shape(weights, "weight_ih_l0")
    if rows % GATES[mode]:
        raise ValueError(
            f"{where}: weight_ih_l0 has {rows} rows; expected a multiple of {GATES[mode]} ({GATES[mode]}·hidden_size)."
        )
    seen = dict(
        input_size=features,
        hidden_size=rows // GATES[mode],
        num_layers=sum(1 for k in range(len(weights)) if f"weight_ih_l{k}" in weights),
        bias="bias_ih_l0" in weights,
        bidirectional="weight_ih_l0_reverse" in weights,
    )
    out = dict(spec)
    for key, value in seen.items():
        given = spec.get(key)
        if given is not None and given != value:
            raise ValueError(f"{where}: {key}={given!r}, but its weights say {key}={value!r}.")
        out[key] = value
    return out


def _layer(spec: dict, return_sequences: bool) -> Any:
    mode, units = spec["type"], spec["hidden_size"]
    if mode == "RNN":
        layer: Any = L.SimpleRNN(
            units, activation=spec["nonlinearity"], use_bias=spec["bias"], return_sequences=return_sequences
        )
    elif mode == "LSTM":
        layer = L.LSTM(units, use_bias=spec["bias"], return_sequences=return_sequences)
    else:
        layer = L.GRU(units, use_bias=spec["bias"], reset_after=True, return_sequences=return_sequences)
    return L.Bidirectional(layer, merge_mode="concat") if spec["bidirectional"] else layer


def _plan(spec: dict) -> list:
    """``("layer", k)``, ``("dropout",)``, ``("last",)`` in the order of the rnncore layers."""
    n, plan = spec["num_layers"], []  # type: int, list
    for k in range(n):
        plan.append(("layer", k))
        if k < n - 1 and spec["dropout"] > 0:
            plan.append(("dropout",))
    if spec["output"] == "last" and spec["bidirectional"]:
        plan.append(("last",))
    return plan


def rnncore_layers(spec: dict) -> list:
    """The rnncore layers of a complete recurrent spec."""
    n, top_sequences = spec["num_layers"], spec["output"] == "sequence"
    top_sequences = top_sequences or (spec["output"] == "last" and spec["bidirectional"])
    out: list = []
    for step in _plan(spec):
        if step[0] == "layer":
            out.append(_layer(spec, step[1] < n - 1 or top_sequences))
        elif step[0] == "dropout":
            out.append(L.Dropout(spec["dropout"]))
        else:
            out.append(L.LastStep())
    return out


_CELLS = {"RNN": cells.SimpleRNNParams, "LSTM": cells.LSTMParams, "GRU": cells.GRUParams}


def _params(spec: dict, weights: Any, gradients: bool) -> list:
    mode, out = spec["type"], []  # type: str, list
    for step in _plan(spec):
        if step[0] != "layer":
            out.append(())
            continue
        per_direction = [
            _CELLS[mode](*direction_arrays(mode, weights, suffix(step[1], reverse), spec["bias"], gradients))
            for reverse in _directions(spec)
        ]
        out.append(L.BidirectionalParams(*per_direction) if spec["bidirectional"] else per_direction[0])
    return out


def _tensors(spec: dict, entries: list) -> dict:
    mode, out = spec["type"], {}
    for step, entry in zip(_plan(spec), entries):
        if step[0] != "layer":
            continue
        per_direction = tuple(entry) if spec["bidirectional"] else (entry,)
        for reverse, p in zip(_directions(spec), per_direction):
            out.update(direction_tensors(mode, p, suffix(step[1], reverse)))
    return out


def _build(nn: Any, spec: dict, dtype: Any) -> Any:
    kwargs = {k: spec[k] for k in _args(spec["type"]) if k != "output"}
    return getattr(nn, spec["type"])(**kwargs, dtype=dtype)


def _kind(mode: str) -> ModuleKind:
    return ModuleKind(
        torch_class=mode,
        args=_args(mode),
        layers=rnncore_layers,
        params=_params,
        from_module=_from_module,
        refuse=_refuse,
        tensor_shapes=_tensor_shapes,
        infer=_infer,
        tensors=_tensors,
        build=_build,
        recurrent=True,
    )


RNN, LSTM, GRU = _kind("RNN"), _kind("LSTM"), _kind("GRU")
