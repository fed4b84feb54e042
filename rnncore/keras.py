"""Keras 3 interop: a Keras model (live, or a ``.keras`` file) as an rnncore model, and back.

This is the only module of rnncore that knows Keras, and it imports ``keras`` only inside
functions: :func:`to_keras` and :func:`from_keras` on a live model need it, reading a ``.keras``
file does not (it is a zip of ``config.json`` and ``model.weights.h5``, read with :mod:`zipfile`,
:mod:`json` and :mod:`h5py` alone).

The correspondence, with weights in Keras's own order (``kernel (F, G·u)``,
``recurrent_kernel (u, G·u)``, ``bias``; G = 1, 4, 3 for SimpleRNN, LSTM ``[i, f, c, o]``,
GRU ``[z, r, h]``; GRU bias ``(2, 3u)`` with ``reset_after``, else ``(3u,)``):

* ``SimpleRNN`` / ``LSTM`` / ``GRU`` -> ``layers.SimpleRNN/LSTM/GRU``, params
  ``cells.SimpleRNNParams/LSTMParams/GRUParams(kernel, recurrent_kernel, bias)``;
* ``RNN(SimpleRNNCell | LSTMCell | GRUCell)`` -> ``layers.RNN(cell=cells.SimpleRNN/LSTM/GRU(...))``,
  the same params;
* ``Bidirectional(layer, merge_mode, backward_layer)`` -> ``layers.Bidirectional``, params
  ``BidirectionalParams(forward, backward)``;
* ``Dense`` -> ``layers.Dense``, params ``DenseParams(kernel, bias)``;
* ``Dropout``, ``Masking`` -> ``layers.Dropout``, ``layers.Masking``, params ``()``;
* ``InputLayer`` is skipped.

``bias`` is ``None`` with ``use_bias=False`` (Keras then has no bias weight at all). A model is a
``Sequential``, or a functional model that is one chain ``Input -> layer -> ... -> layer`` (the
last layer may return its state; a ``Masking`` layer's mask, which Keras records as two small
``not_equal``/``any`` operations, is checked to be exactly the one rnncore propagates).

Everything that would change the numbers and that rnncore does not represent is refused with a
``ValueError`` naming the layer (name and class), the argument and its value: unknown layer
classes, regularizers and constraints (they change training), unknown activations, dtype policies
other than float32/float64, graphs that are not one chain, and in files anything custom (a
``Lambda``, a registered or non-``keras`` object) — nothing from a file is ever executed.
``use_cudnn`` and ``seed`` are accepted and ignored (they do not change the numbers); initializers
rnncore does not know fall back to Keras's defaults with a warning (they do not change a loaded
model's numbers, only a re-initialization); ``trainable=False`` is kept out of rnncore with a
warning (rnncore would train that layer). ``stateful`` layers are mapped, but their carried state
is not: rnncore's caller carries it (see :mod:`rnncore.layers`).

Example (no Keras needed):
    >>> import jax, rnncore as rc
    >>> model = rc.Sequential([rc.layers.LSTM(3, use_bias=False), rc.layers.Dense(1)])
    >>> params = model.init(jax.random.PRNGKey(0), input_shape=(5, 2))
    >>> [w.shape for w in rc.keras_weights(model, params)]   # keras_model.get_weights() order
    [(2, 12), (3, 12), (3, 1), (1,)]
"""

from __future__ import annotations

import io
import json
import os
import re
import warnings
import zipfile
import zlib
from dataclasses import replace
from typing import Optional

import numpy as np

from . import activations, cells, initializers
from . import layers as L
from .models import Sequential

__all__ = ["from_keras", "to_keras", "keras_weights"]

# --- what is supported --------------------------------------------------------------------------

_RNN_LAYERS = {"SimpleRNN": cells.SimpleRNN, "LSTM": cells.LSTM, "GRU": cells.GRU}
_RNN_CELLS = {"SimpleRNNCell": cells.SimpleRNN, "LSTMCell": cells.LSTM, "GRUCell": cells.GRU}
_SUPPORTED = ("InputLayer", "SimpleRNN", "LSTM", "GRU", "RNN", "Bidirectional", "Dense", "Dropout", "Masking")
# Keras names a layer's weights group after its class in snake case, numbered per class.
_H5_GROUP = {"InputLayer": "input_layer", "SimpleRNN": "simple_rnn", "LSTM": "lstm", "GRU": "gru", "RNN": "rnn",
             "Bidirectional": "bidirectional", "Dense": "dense", "Dropout": "dropout", "Masking": "masking"}

_FLAGS = ("return_sequences", "return_state", "go_backwards", "stateful", "unroll", "zero_output_for_mask")
_CELL_ARGS = {
    cells.SimpleRNN: ("units", "activation", "use_bias", "kernel_initializer", "recurrent_initializer",
                      "bias_initializer", "dropout", "recurrent_dropout"),
    cells.LSTM: ("units", "activation", "recurrent_activation", "use_bias", "kernel_initializer",
                 "recurrent_initializer", "bias_initializer", "unit_forget_bias", "dropout", "recurrent_dropout"),
    cells.GRU: ("units", "activation", "recurrent_activation", "use_bias", "kernel_initializer",
                "recurrent_initializer", "bias_initializer", "dropout", "recurrent_dropout", "reset_after"),
}
_DENSE_ARGS = ("units", "activation", "use_bias", "kernel_initializer", "bias_initializer")
# Arguments that must be None: they change training (regularizers, constraints) or the numbers
# (quantization, LoRA), and rnncore would ignore them.
_MUST_BE_NONE = ("kernel_regularizer", "recurrent_regularizer", "bias_regularizer", "activity_regularizer",
                 "kernel_constraint", "recurrent_constraint", "bias_constraint", "quantization_config", "lora_rank")
# Arguments that do not change the numbers.
_IGNORED = ("name", "seed", "use_cudnn", "lora_alpha")

_MAX_CONFIG_BYTES = 64 << 20
_MAX_WEIGHTS_BYTES = 8 << 30


def _where(name, cls) -> str:
    return f"layer {name!r} ({cls})"


class _Context:
    """Where the model comes from (for messages) and the warnings collected on the way."""

    def __init__(self, source: str):
        self.source = source

    def error(self, msg: str) -> ValueError:
        return ValueError(f"{self.source}: {msg}")

    def warn(self, msg: str) -> None:
        warnings.warn(f"{self.source}: {msg}", UserWarning, stacklevel=4)


# --- config values --------------------------------------------------------------------------------

def _check_origin(ctx: _Context, entry, what: str) -> str:
    """The class name of a serialized Keras object, refusing anything that is not Keras's own."""
    if not isinstance(entry, dict) or not isinstance(entry.get("class_name"), str):
        raise ctx.error(f"{what}: malformed config entry {str(entry)[:120]!r} (no class_name).")
    cls, module, registered = entry["class_name"], entry.get("module"), entry.get("registered_name")
    if module is not None and (not isinstance(module, str) or module.split(".")[0] != "keras"):
        raise ctx.error(
            f"{what}: class {cls!r} comes from module {module!r}, outside keras; custom objects are refused "
            "(rnncore never imports or runs code named by a model)."
        )
    if registered is not None and registered != cls:
        raise ctx.error(
            f"{what}: {cls!r} is a registered custom object ({registered!r}); custom objects are refused "
            "(rnncore never imports or runs code named by a model)."
        )
    return cls


def _check_dtype(ctx: _Context, value, where: str) -> None:
    if value is None:
        return
    name = value
    if isinstance(value, dict):
        cls = _check_origin(ctx, value, f"{where}, dtype")
        name = (value.get("config") or {}).get("name")
        if cls not in ("DTypePolicy", "FloatDTypePolicy"):
            raise ctx.error(f"{where}: dtype policy {cls}({name!r}) is not supported; expected 'float32' or 'float64'.")
    if name not in ("float32", "float64"):
        raise ctx.error(
            f"{where}: dtype={name!r} is not supported; expected 'float32' or 'float64' (mixed-precision and "
            "quantized policies change the numbers)."
        )


def _check_trainable(ctx: _Context, value, where: str) -> None:
    if value is False:
        ctx.warn(f"{where}: trainable=False is not represented in rnncore; training with rnncore updates this layer.")


def _activation(ctx: _Context, value, where: str, arg: str, elementwise: bool = True):
    name = value
    if isinstance(value, dict):
        module = value.get("module")
        name = value.get("config")
        keras_function = (value.get("class_name") == "function" and isinstance(name, str)
                          and isinstance(module, str) and module.split(".")[0] == "keras"
                          and value.get("registered_name") in (None, name))
        if not keras_function:
            raise ctx.error(
                f"{where}: {arg}={_short(value)} is a custom activation (module {module!r}); custom objects are "
                "refused (rnncore never imports or runs code named by a model)."
            )
    if name is None:
        name = "linear"
    if not isinstance(name, str):
        raise ctx.error(f"{where}: {arg}={value!r} is not an activation name.")
    try:
        activations.get(name, elementwise=elementwise)
    except ValueError:
        known = ", ".join(activations.NAMES + (() if elementwise else ("softmax", "log_softmax")))
        raise ctx.error(
            f"{where}: {arg}={name!r} is not an activation rnncore knows; expected one of {known}."
        ) from None
    return name


_SIMPLE_INITIALIZERS = {"Zeros": "zeros", "Ones": "ones", "GlorotUniform": "glorot_uniform",
                        "GlorotNormal": "glorot_normal", "HeUniform": "he_uniform", "HeNormal": "he_normal",
                        "LecunUniform": "lecun_uniform", "LecunNormal": "lecun_normal"}
# class -> (rnncore class, argument names with Keras defaults, snake name used when all are default)
_PARAM_INITIALIZERS = {
    "Orthogonal": (initializers.Orthogonal, {"gain": 1.0}, "orthogonal"),
    "Identity": (initializers.Identity, {"gain": 1.0}, "identity"),
    "IdentityInitializer": (initializers.Identity, {"gain": 1.0}, "identity"),
    "Constant": (initializers.Constant, {"value": 0.0}, "constant"),
    "RandomNormal": (initializers.RandomNormal, {"mean": 0.0, "stddev": 0.05}, "random_normal"),
    "RandomUniform": (initializers.RandomUniform, {"minval": -0.05, "maxval": 0.05}, "random_uniform"),
    "TruncatedNormal": (initializers.TruncatedNormal, {"mean": 0.0, "stddev": 0.05}, "truncated_normal"),
    "VarianceScaling": (initializers.VarianceScaling,
                        {"scale": 1.0, "mode": "fan_in", "distribution": "truncated_normal"}, "variance_scaling"),
}


def _initializer(ctx: _Context, value, where: str, arg: str):
    """The rnncore initializer for a Keras one, or None (keep rnncore's default) with a warning."""
    if isinstance(value, str):
        if value in initializers.NAMES:
            return value
        ctx.warn(f"{where}: {arg}={value!r} is not an initializer rnncore knows; using the default.")
        return None
    cls = _check_origin(ctx, value, f"{where}, {arg}")
    config = value.get("config") or {}
    # seed does not change the distribution; input_axes/output_axes=None are the plain fans.
    extra = {k: v for k, v in config.items()
             if k != "seed" and not (k in ("input_axes", "output_axes") and v is None)}
    if cls in _SIMPLE_INITIALIZERS and not extra:
        return _SIMPLE_INITIALIZERS[cls]
    if cls in _PARAM_INITIALIZERS:
        rc_cls, defaults, name = _PARAM_INITIALIZERS[cls]
        args = {k: config.get(k, d) for k, d in defaults.items()}
        numeric_ok = all(isinstance(v, (int, float)) and not isinstance(v, bool)
                         for k, v in args.items() if k not in ("mode", "distribution"))
        if set(extra) <= set(defaults) and numeric_ok:
            if args == defaults:
                return name
            try:
                return rc_cls(**args)
            except ValueError:
                pass
    ctx.warn(f"{where}: {arg}={cls}({extra}) has no rnncore equivalent; using rnncore's default "
             "(this only matters when the model is re-initialized).")
    return None


def _positive_int(ctx, value, where, arg):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ctx.error(f"{where}: {arg}={value!r}; expected a positive integer.")
    return value


def _bool(ctx, value, where, arg):
    if not isinstance(value, bool):
        raise ctx.error(f"{where}: {arg}={value!r}; expected True or False.")
    return value


def _rate(ctx, value, where, arg):
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
        raise ctx.error(f"{where}: {arg}={value!r}; expected a float in [0, 1].")
    return float(value)


def _parse_args(ctx: _Context, config, where: str, wanted: tuple, elementwise: bool = True) -> dict:
    """Keras constructor arguments -> rnncore keyword arguments; refuses anything unknown."""
    if not isinstance(config, dict):
        raise ctx.error(f"{where}: malformed config {str(config)[:120]!r}.")
    out = {}
    for key, value in config.items():
        if key in _IGNORED:
            continue
        if key == "dtype":
            _check_dtype(ctx, value, where)
        elif key == "trainable":
            _check_trainable(ctx, value, where)
        elif key == "implementation":
            if value not in (1, 2):
                raise ctx.error(f"{where}: implementation={value!r}; expected 1 or 2.")
        elif key in _MUST_BE_NONE:
            if value is not None:
                raise ctx.error(
                    f"{where}: {key}={_short(value)} is not supported (rnncore has no {key.split('_')[-1]}s and would "
                    f"silently ignore it); expected None."
                )
        elif key not in wanted:
            raise ctx.error(f"{where}: argument {key}={_short(value)} is not supported by rnncore.from_keras.")
        elif key == "units":
            out[key] = _positive_int(ctx, value, where, key)
        elif key in ("activation", "recurrent_activation"):
            out[key] = _activation(ctx, value, where, key, elementwise)
        elif key.endswith("_initializer"):
            init = _initializer(ctx, value, where, key)
            if init is not None:
                out[key] = init
        elif key in ("dropout", "recurrent_dropout", "rate"):
            out[key] = _rate(ctx, value, where, key)
        elif key == "mask_value":
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ctx.error(f"{where}: mask_value={value!r}; expected a number.")
            out[key] = float(value)
        elif key == "noise_shape":
            if value is not None and not (isinstance(value, (list, tuple))
                                          and all(v is None or isinstance(v, int) for v in value)):
                raise ctx.error(f"{where}: noise_shape={value!r}; expected None or a tuple of ints/None.")
            out[key] = None if value is None else tuple(value)
        else:
            out[key] = _bool(ctx, value, where, key)
    return out


def _short(value) -> str:
    s = repr(value)
    return s if len(s) <= 160 else s[:157] + "..."


# --- config -> rnncore layers -----------------------------------------------------------------------

def _entry_name(entry) -> str:
    config = entry.get("config") if isinstance(entry, dict) else None
    name = config.get("name") if isinstance(config, dict) else None
    return name if isinstance(name, str) else (entry.get("name") if isinstance(entry, dict) else None) or "?"


def _construct(ctx: _Context, where: str, factory, *args, **kwargs):
    try:
        return factory(*args, **kwargs)
    except (ValueError, TypeError) as e:
        raise ctx.error(f"{where}: {e}") from None


def _recurrent_layer(ctx: _Context, entry, where: str):
    """A Keras SimpleRNN/LSTM/GRU or RNN(cell) config -> an rnncore recurrent layer."""
    cls = _check_origin(ctx, entry, where)
    config = entry.get("config")
    if cls in _RNN_LAYERS:
        cell_type = _RNN_LAYERS[cls]
        kwargs = _parse_args(ctx, config, where, _CELL_ARGS[cell_type] + _FLAGS)
        flags = {k: kwargs.pop(k) for k in _FLAGS if k in kwargs}
        if "units" not in kwargs:
            raise ctx.error(f"{where}: config has no units.")
        cell = _construct(ctx, where, cell_type, **kwargs)
        return _construct(ctx, where, getattr(L, cls), cell=cell, **flags)
    if cls == "RNN":
        if not isinstance(config, dict):
            raise ctx.error(f"{where}: malformed config.")
        cell_entry = config.get("cell")
        cell_where = f"{where}, cell {_entry_name(cell_entry)!r}"
        cell_cls = (_check_origin(ctx, cell_entry, cell_where) if isinstance(cell_entry, dict)
                    else type(cell_entry).__name__)
        if cell_cls not in _RNN_CELLS:
            raise ctx.error(
                f"{where}: cell {cell_cls} is not supported; expected one of {', '.join(_RNN_CELLS)} "
                "(a list of cells, i.e. StackedRNNCells, is not supported)."
            )
        cell_where = f"{where}, cell {_entry_name(cell_entry)!r} ({cell_cls})"
        cell_type = _RNN_CELLS[cell_cls]
        cell_kwargs = _parse_args(ctx, cell_entry.get("config"), cell_where, _CELL_ARGS[cell_type])
        if "units" not in cell_kwargs:
            raise ctx.error(f"{cell_where}: config has no units.")
        flags = _parse_args(ctx, {k: v for k, v in config.items() if k != "cell"}, where, _FLAGS)
        cell = _construct(ctx, cell_where, cell_type, **cell_kwargs)
        return _construct(ctx, where, L.RNN, cell, **flags)
    raise ctx.error(f"{where} is not a recurrent layer; expected one of SimpleRNN, LSTM, GRU, RNN.")


def _layer_from_config(ctx: _Context, entry):
    """A Keras layer config entry -> an rnncore layer (no weights yet)."""
    name = _entry_name(entry)
    cls = _check_origin(ctx, entry, f"layer {name!r}")
    where = _where(name, cls)
    if cls not in _SUPPORTED or cls == "InputLayer":
        raise ctx.error(
            f"{where} is not supported by rnncore.from_keras; supported layers: "
            f"{', '.join(c for c in _SUPPORTED if c != 'InputLayer')} (and InputLayer)."
        )
    config = entry.get("config")
    if cls in _RNN_LAYERS or cls == "RNN":
        return _recurrent_layer(ctx, entry, where)
    if cls == "Bidirectional":
        if not isinstance(config, dict):
            raise ctx.error(f"{where}: malformed config.")
        rest = {k: v for k, v in config.items() if k not in ("layer", "backward_layer", "merge_mode")}
        _parse_args(ctx, rest, where, ())
        merge_mode = config.get("merge_mode", "concat")
        if merge_mode not in ("concat", "sum", "ave", "mul", None):
            raise ctx.error(f"{where}: merge_mode={merge_mode!r}; expected 'concat', 'sum', 'ave', 'mul' or None.")
        inner = config.get("layer")
        fwd = _recurrent_layer(ctx, inner, f"{where}, forward layer {_entry_name(inner)!r}")
        back = config.get("backward_layer")
        bwd = (replace(fwd, go_backwards=True) if back is None
               else _recurrent_layer(ctx, back, f"{where}, backward layer {_entry_name(back)!r}"))
        return _construct(ctx, where, L.Bidirectional, fwd, merge_mode=merge_mode, backward_layer=bwd)
    if cls == "Dense":
        kwargs = _parse_args(ctx, config, where, _DENSE_ARGS, elementwise=False)
        if kwargs.get("activation") == "linear":
            kwargs["activation"] = None
        if "units" not in kwargs:
            raise ctx.error(f"{where}: config has no units.")
        return _construct(ctx, where, L.Dense, **kwargs)
    if cls == "Dropout":
        kwargs = _parse_args(ctx, config, where, ("rate", "noise_shape"))
        return _construct(ctx, where, L.Dropout, **kwargs)
    kwargs = _parse_args(ctx, config, where, ("mask_value",))
    return _construct(ctx, where, L.Masking, **kwargs)


def _input_features(ctx: _Context, entry) -> Optional[int]:
    """The feature size an InputLayer declares (None if it does not), checking what matters."""
    config = entry.get("config") or {}
    where = _where(_entry_name(entry), "InputLayer")
    for flag in ("sparse", "ragged"):
        if config.get(flag):
            raise ctx.error(f"{where}: {flag}=True inputs are not supported.")
    _check_dtype(ctx, config.get("dtype"), where)
    shape = config.get("batch_shape", config.get("batch_input_shape"))
    if isinstance(shape, (list, tuple)):
        if len(shape) != 3:
            raise ctx.error(f"{where}: batch_shape={shape!r}; rnncore models take (batch, time, features) inputs.")
        if isinstance(shape[-1], int):
            return shape[-1]
    return None


# --- functional graphs --------------------------------------------------------------------------------

def _history(arg):
    """``(layer_name, node_index, tensor_index)`` of a serialized Keras tensor, else None."""
    if isinstance(arg, dict) and arg.get("class_name") == "__keras_tensor__":
        hist = (arg.get("config") or {}).get("keras_history")
        if isinstance(hist, (list, tuple)) and len(hist) == 3:
            return tuple(hist)
    return None


def _tensors_in(obj) -> list:
    """Every serialized Keras tensor inside nested lists and dicts."""
    if _history(obj) is not None:
        return [_history(obj)]
    if isinstance(obj, (list, tuple)):
        return [t for o in obj for t in _tensors_in(o)]
    if isinstance(obj, dict):
        return [t for o in obj.values() for t in _tensors_in(o)]
    return []


def _triples(value):
    if isinstance(value, (list, tuple)) and len(value) == 3 and isinstance(value[0], str):
        return [tuple(value)]
    if isinstance(value, (list, tuple)):
        return [tuple(v) for v in value]
    return []


def _is_op(entry) -> bool:
    module = entry.get("module") or ""
    return module.startswith("keras.src.ops") or module.startswith("keras.ops")


def _single_node(ctx: _Context, entry, where: str) -> dict:
    nodes = entry.get("inbound_nodes")
    if not isinstance(nodes, list) or len(nodes) != 1 or not isinstance(nodes[0], dict):
        n = len(nodes) if isinstance(nodes, list) else nodes
        raise ctx.error(f"{where} is called {n} times in the graph; only a single chain is supported.")
    return nodes[0]


def _functional_chain(ctx: _Context, config: dict):
    """``(input_entry, chain)``: the layer entries from the input to the output, checked to be one
    chain whose masks are exactly those a Sequential of the same layers propagates."""
    entries = config.get("layers")
    if not isinstance(entries, list):
        raise ctx.error("functional model config has no layer list.")
    by_name = {}
    for e in entries:
        if not isinstance(e, dict):
            raise ctx.error(f"malformed layer entry {str(e)[:120]!r}.")
        by_name[e.get("name") or _entry_name(e)] = e
    inputs, outputs = _triples(config.get("input_layers")), _triples(config.get("output_layers"))
    if len(inputs) != 1:
        raise ctx.error(f"the model has {len(inputs)} inputs; only a single chain Input -> layer -> ... is supported.")
    out_layers = {o[0] for o in outputs}
    if len(out_layers) != 1 or [o[2] for o in outputs] != list(range(len(outputs))):
        raise ctx.error(
            f"the model has outputs {[list(o) for o in outputs]}; only a single chain with one output layer "
            "(and its returned states) is supported."
        )
    chain, seen, name = [], set(), outputs[0][0]
    while True:
        entry = by_name.get(name)
        if entry is None:
            raise ctx.error(f"the graph refers to layer {name!r}, which the config does not define.")
        if name in seen:
            raise ctx.error(f"the graph has a cycle through layer {name!r}.")
        seen.add(name)
        cls = entry.get("class_name")
        if cls == "InputLayer":
            if name != inputs[0][0]:
                raise ctx.error(f"the chain starts at {_where(name, cls)}, not at the model's input.")
            input_entry = entry
            break
        where = _where(name, cls)
        node = _single_node(ctx, entry, where)
        args, kwargs = node.get("args") or [], node.get("kwargs") or {}
        tensors = [_history(a) for a in args]
        n_tensors = len(_tensors_in(args)) + len(_tensors_in({k: v for k, v in kwargs.items() if k != "mask"}))
        if n_tensors > 1:
            raise ctx.error(f"{where} takes {n_tensors} tensors in the graph; only a single chain "
                            "Input -> layer -> ... -> layer is supported.")
        if cls not in _SUPPORTED:
            raise ctx.error(
                f"{where} is not supported by rnncore.from_keras; supported layers: "
                f"{', '.join(c for c in _SUPPORTED if c != 'InputLayer')} (and InputLayer)."
            )
        if len(args) != 1 or tensors[0] is None:
            raise ctx.error(f"{where} is called with {len(args)} arguments in the graph; only a single chain "
                            "is supported.")
        if tensors[0][2] != 0:
            raise ctx.error(f"{where} consumes output #{tensors[0][2]} of layer {tensors[0][0]!r} (a state); "
                            "only a single chain of outputs is supported.")
        for key, value in kwargs.items():
            if key == "training":
                if value is True:
                    raise ctx.error(f"{where} is called with training=True in the graph (dropout at inference); "
                                    "not supported.")
            elif key != "mask":
                raise ctx.error(f"{where} is called with {key}={_short(value)} in the graph; not supported.")
        chain.append((entry, kwargs))
        name = tensors[0][0]
    chain.reverse()

    # Masks: each layer that takes one must get exactly the mask the chain propagates.
    used, active = set(seen), None  # active: (input tensor of the Masking layer, mask_value)
    previous = (input_entry.get("name") or _entry_name(input_entry), 0, 0)
    for entry, kwargs in chain:
        cls, name = entry.get("class_name"), entry.get("name") or _entry_name(entry)
        where = _where(name, cls)
        recorded = kwargs.get("mask", "absent")
        takes_mask = cls in _RNN_LAYERS or cls in ("RNN", "Bidirectional")
        if recorded != "absent" and not takes_mask:
            raise ctx.error(f"{where} is called with an explicit mask in the graph; not supported.")
        # An absent or None mask means Keras applies the propagated one itself (none without Masking).
        if takes_mask and recorded not in ("absent", None):
            if active is None:
                raise ctx.error(f"{where} is called with a mask that no Masking layer made; not supported.")
            if not _is_mask_of(by_name, recorded, active, used):
                raise ctx.error(
                    f"{where} is called with a mask other than the one of the Masking layer before it "
                    f"({_short(recorded)}); rnncore passes that mask on, so it would compute something else."
                )
        config = entry.get("config") or {}
        if cls == "Masking":
            active = (previous, config.get("mask_value", 0.0))
        elif takes_mask and not (config.get("return_sequences") or (config.get("layer") or {}).get(
                "config", {}).get("return_sequences")):
            active = None
        previous = (name, 0, 0)
    for name, entry in by_name.items():
        if name not in used:
            raise ctx.error(
                f"the model is not a single chain: {_where(name, entry.get('class_name'))} is not on the path "
                "from the input to the output."
            )
    return input_entry, [e for e, _ in chain]


def _is_mask_of(by_name, recorded, active, used: set) -> bool:
    """Whether ``recorded`` is ``any(not_equal(x, mask_value), axis=-1)`` of the active Masking's input."""
    hist = _history(recorded)
    if hist is None or hist[1:] != (0, 0):
        return False
    any_entry = by_name.get(hist[0])
    if not any_entry or any_entry.get("class_name") != "Any" or not _is_op(any_entry):
        return False
    cfg = any_entry.get("config") or {}
    if cfg.get("axis") != -1 or cfg.get("keepdims", False) is not False:
        return False
    nodes = any_entry.get("inbound_nodes") or []
    if len(nodes) != 1 or len(nodes[0].get("args") or []) != 1 or nodes[0].get("kwargs"):
        return False
    ne_hist = _history(nodes[0]["args"][0])
    ne_entry = by_name.get(ne_hist[0]) if ne_hist else None
    if not ne_entry or ne_entry.get("class_name") != "NotEqual" or not _is_op(ne_entry) or ne_hist[1:] != (0, 0):
        return False
    ne_nodes = ne_entry.get("inbound_nodes") or []
    if len(ne_nodes) != 1 or ne_nodes[0].get("kwargs"):
        return False
    ne_args = ne_nodes[0].get("args") or []
    if len(ne_args) != 2 or _history(ne_args[0]) != active[0]:
        return False
    value = ne_args[1]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or float(value) != float(active[1]):
        return False
    used.update((hist[0], ne_hist[0]))
    return True


# --- weights --------------------------------------------------------------------------------------------

def _output_count(layer) -> int:
    """How many arrays a layer returns (Keras and rnncore alike)."""
    if isinstance(layer, L.Bidirectional):
        n = 1 if layer.merge_mode is not None else 2
        if layer.return_state:
            n += len(layer.forward_layer.cell.state_type._fields) + len(layer.backward_layer.cell.state_type._fields)
        return n
    if isinstance(layer, L.RNN) and layer.return_state:
        return 1 + len(layer.cell.state_type._fields)
    return 1


def _expected_shapes(layer, features: int):
    """``([(field, shape or None), ...], output_features)`` of a layer for ``features`` inputs;
    Bidirectional fields are prefixed ``forward.``/``backward.``."""
    if isinstance(layer, L.RNN):
        cell = layer.cell
        u = cell.units
        g = {cells.SimpleRNN: 1, cells.LSTM: 4, cells.GRU: 3}[type(cell)]
        bias = None
        if cell.use_bias:
            bias = (2, 3 * u) if isinstance(cell, cells.GRU) and cell.reset_after else (g * u,)
        return [("kernel", (features, g * u)), ("recurrent_kernel", (u, g * u)), ("bias", bias)], u
    if isinstance(layer, L.Bidirectional):
        fwd, uf = _expected_shapes(layer.forward_layer, features)
        bwd, ub = _expected_shapes(layer.backward_layer, features)
        out = uf + ub if layer.merge_mode == "concat" else uf
        return [("forward." + n, s) for n, s in fwd] + [("backward." + n, s) for n, s in bwd], out
    if isinstance(layer, L.Dense):
        return [("kernel", (features, layer.units)), ("bias", (layer.units,) if layer.use_bias else None)], layer.units
    return [], features


def _keras_cell_type(layer, where: str):
    """The exact rnncore cell class of a recurrent layer Keras can represent, or a clear error."""
    cell = getattr(layer, "cell", None)
    if type(cell) in _CELL_ARGS and type(layer) in (L.RNN, L.SimpleRNN, L.LSTM, L.GRU):
        return type(cell)
    what = type(cell).__name__ if cell is not None else type(layer).__name__
    raise ValueError(
        f"{where} ({type(layer).__name__} with cell {what}) has no Keras counterpart; Keras represents "
        "SimpleRNN, LSTM and GRU cells only."
    )


def _check_layer_kinds(model, who: str) -> None:
    if not isinstance(model, Sequential):
        raise ValueError(f"{who} needs an rnncore Sequential model; got {type(model).__name__}.")
    for i, layer in enumerate(model.layers):
        where = f"layers[{i}]"
        if isinstance(layer, L.Bidirectional):
            _keras_cell_type(layer.forward_layer, where + ".forward_layer")
            _keras_cell_type(layer.backward_layer, where + ".backward_layer")
        elif isinstance(layer, L.RNN):
            _keras_cell_type(layer, where)
        elif type(layer) not in (L.Dense, L.Dropout, L.Masking):
            raise ValueError(f"{where} ({type(layer).__name__}) has no Keras counterpart in rnncore.keras.")


def _layer_arrays(layer, entry, where: str) -> list:
    """A layer's params-shaped ``entry`` as ``[(field, array or None), ...]`` in Keras order."""
    if isinstance(layer, L.Bidirectional):
        if not isinstance(entry, (tuple, list)) or len(entry) != 2:
            raise ValueError(
                f"{where} (Bidirectional) needs BidirectionalParams(forward, backward); got {_kind(entry)}."
            )
        return ([("forward." + n, a) for n, a in _layer_arrays(layer.forward_layer, entry[0], where + ".forward")]
                + [("backward." + n, a) for n, a in _layer_arrays(layer.backward_layer, entry[1], where + ".backward")])
    if isinstance(layer, (L.RNN, L.Dense)):
        fields = ("kernel", "recurrent_kernel", "bias") if isinstance(layer, L.RNN) else ("kernel", "bias")
        if not isinstance(entry, (tuple, list)) or len(entry) != len(fields):
            raise ValueError(
                f"{where} ({type(layer).__name__}) needs ({', '.join(fields)}); got {_kind(entry)}."
            )
        return list(zip(fields, entry))
    if not (entry is None or (isinstance(entry, (tuple, list)) and len(entry) == 0)):
        raise ValueError(f"{where} ({type(layer).__name__}) has no weights; expected (); got {_kind(entry)}.")
    return []


def _kind(entry) -> str:
    if isinstance(entry, (tuple, list)):
        return f"{type(entry).__name__} of {len(entry)}"
    return type(entry).__name__


def _flat_checked(model, tree, who: str) -> list:
    """The arrays of ``tree`` in Keras order, every shape checked against the model."""
    _check_layer_kinds(model, who)
    if not isinstance(tree, (tuple, list)) or len(tree) != len(model.layers):
        raise ValueError(
            f"{who}: the params tree must be a tuple with one entry per layer ({len(model.layers)}); "
            f"got {_kind(tree)}."
        )
    features, out = None, []
    for i, (layer, entry) in enumerate(zip(model.layers, tree)):
        where = f"layers[{i}]"
        arrays = _layer_arrays(layer, entry, where)
        if arrays and features is None:
            kernel = arrays[0][1]
            if kernel is None or len(np.shape(kernel)) != 2:
                raise ValueError(f"{who}: {where}.{arrays[0][0]} must be a 2-D array; got {_shape_of(kernel)}.")
            features = int(np.shape(kernel)[0])
        if features is None:
            continue
        expected, features = _expected_shapes(layer, features)
        for (field, a), (_, shape) in zip(arrays, expected):
            got = None if a is None else tuple(np.shape(a))
            if got != shape:
                raise ValueError(
                    f"{who}: {where} ({type(layer).__name__}).{field} must be "
                    f"{'None (use_bias=False)' if shape is None else f'shape {shape}'}; got {_shape_of(a)}."
                )
            if a is not None:
                out.append(a)
    return out


def _shape_of(a) -> str:
    return "None" if a is None else f"shape {tuple(np.shape(a))}"


def keras_weights(model: Sequential, tree) -> list:
    """``tree`` (params-shaped: the params, their gradients, an optimizer's moments, ...) as a flat
    list in exactly ``keras_model.get_weights()`` order.

    Per layer: a recurrent layer gives ``kernel, recurrent_kernel[, bias]``; ``Bidirectional`` the
    forward layer's arrays, then the backward layer's; ``Dense`` gives ``kernel[, bias]``;
    ``Masking``/``Dropout`` nothing. A ``None`` bias (``use_bias=False``) is left out, as Keras has
    no such weight. Every shape is checked against the model.

    Args:
        model: an rnncore :class:`~rnncore.models.Sequential` Keras can represent.
        tree: one entry per layer, shaped like the model's params.

    Returns:
        A list of arrays (the leaves of ``tree``, not copies).

    Raises:
        ValueError: for a layer Keras cannot represent (e.g. ``LayerNormLSTM``), or an entry whose
            structure or shape does not match the model.

    Example:
        >>> import jax, jax.numpy as jnp, rnncore as rc
        >>> model = rc.Sequential([rc.layers.GRU(2, reset_after=False), rc.layers.Dense(1, use_bias=False)])
        >>> params = model.init(jax.random.PRNGKey(0), input_shape=(4, 3))
        >>> grads = jax.grad(lambda p: model.apply(p, jnp.ones((1, 4, 3))).sum())(params)
        >>> [g.shape for g in rc.keras_weights(model, grads)]
        [(3, 6), (2, 6), (6,), (2, 1)]
    """
    return _flat_checked(model, tree, "keras_weights")


def _params_from_arrays(ctx: _Context, layer, arrays: list, where: str):
    """A layer's params entry from its Keras weights (in order), shapes already checked."""
    if isinstance(layer, L.RNN):
        cell = layer.cell
        kernel, recurrent = arrays[0], arrays[1]
        bias = arrays[2] if cell.use_bias else None
        return cell.params_type(kernel, recurrent, bias)
    if isinstance(layer, L.Dense):
        return L.DenseParams(arrays[0], arrays[1] if layer.use_bias else None)
    return ()


class _LiveWeights:
    """Weights of a live Keras model, by layer name."""

    def __init__(self, model):
        self.layers = {layer.name: layer for layer in model.layers}

    def get(self, name: str, cls: str, part: Optional[str] = None) -> list:
        layer = self.layers[name]
        if part:
            layer = getattr(layer, part)
        return [np.asarray(w) for w in layer.get_weights()]


class _FileWeights:
    """Weights in a ``model.weights.h5``: ``layers/<snake class name>[_k]/[forward_layer/][cell/]vars/<i>``,
    numbered per class in the order of the model's layers."""

    def __init__(self, ctx: _Context, h5, container: list):
        self.ctx, self.h5, self.groups = ctx, h5, {}
        counts: dict = {}
        for entry in container:
            cls = entry.get("class_name")
            base = _H5_GROUP.get(cls, re.sub(r"(?<!^)(?=[A-Z][a-z])", "_", cls or "").lower())
            k = counts.get(base, -1) + 1
            counts[base] = k
            self.groups[_entry_name(entry)] = "layers/" + (base if k == 0 else f"{base}_{k}")
        # Keras also records each layer's name on its vars group; trust it where present.
        layers_group = h5.get("layers")
        if isinstance(layers_group, _h5py().Group):
            for key in layers_group:
                vars_group = layers_group[key].get("vars") if isinstance(layers_group[key], _h5py().Group) else None
                name = vars_group.attrs.get("name") if vars_group is not None else None
                if isinstance(name, bytes):
                    name = name.decode()
                if isinstance(name, str) and name in self.groups:
                    self.groups[name] = f"layers/{key}"

    def get(self, name: str, cls: str, part: Optional[str] = None) -> list:
        path = self.groups[name] + (f"/{part}" if part else "")
        path += "/cell/vars" if cls in _RNN_LAYERS or cls == "RNN" else "/vars"
        try:
            return self._read(path, name, cls)
        except (KeyError, OSError, RuntimeError, TypeError) as e:
            raise self.ctx.error(f"model.weights.h5 is damaged: {path!r} cannot be read ({e}).") from None

    def _read(self, path: str, name: str, cls: str) -> list:
        h5py = _h5py()
        group = self.h5.get(path)
        if not isinstance(group, h5py.Group):
            if cls in ("Dropout", "Masking"):
                return []
            raise self.ctx.error(f"model.weights.h5 has no weights for {_where(name, cls)} (expected group {path!r}).")
        keys = list(group.keys())
        if not all(k.isdigit() for k in keys):
            raise self.ctx.error(f"model.weights.h5 group {path!r} has unexpected entries {keys}.")
        out = []
        for k in sorted(keys, key=int):
            ds = group[k]
            if not isinstance(ds, h5py.Dataset) or ds.dtype.kind != "f" or ds.attrs.get("dtype") == "bfloat16":
                raise self.ctx.error(f"model.weights.h5 entry {path}/{k} is not a float32/float64 array.")
            out.append(np.asarray(ds[()]))
        return out


def _h5py():
    try:
        import h5py
    except ImportError as e:  # pragma: no cover - h5py is a dependency
        raise ImportError("reading a .keras file needs h5py (pip install h5py).") from e
    return h5py


def _read_weights(ctx: _Context, source, layer, entry, features: int):
    """The params entry of one layer, read and shape-checked."""
    name, cls = _entry_name(entry), entry.get("class_name")
    where = _where(name, cls)
    if isinstance(layer, L.Bidirectional):
        arrays = source.get(name, entry["config"]["layer"]["class_name"], "forward_layer")
        n_fwd = len(arrays)
        arrays += source.get(name, (entry["config"].get("backward_layer") or entry["config"]["layer"])["class_name"],
                             "backward_layer")
    else:
        arrays = source.get(name, cls)
    expected, out_features = _expected_shapes(layer, features)
    wanted = [(f, s) for f, s in expected if s is not None]
    if isinstance(layer, L.Bidirectional):
        n_want_fwd = sum(1 for f, s in wanted if f.startswith("forward."))
        if n_fwd != n_want_fwd:
            raise ctx.error(f"{where}: the forward layer has {n_fwd} weights; expected {n_want_fwd}.")
    if len(arrays) != len(wanted):
        raise ctx.error(
            f"{where} has {len(arrays)} weight arrays; its config needs {len(wanted)} "
            f"({', '.join(f for f, _ in wanted) or 'none'})."
        )
    for (field, shape), a in zip(wanted, arrays):
        if tuple(a.shape) != shape:
            raise ctx.error(
                f"{where}: weight {field} has shape {tuple(a.shape)}; its config (and input features "
                f"{features}) need {shape}."
            )
    if isinstance(layer, L.Bidirectional):
        nf = sum(1 for f, _ in wanted if f.startswith("forward."))
        params = L.BidirectionalParams(_params_from_arrays(ctx, layer.forward_layer, arrays[:nf], where),
                                       _params_from_arrays(ctx, layer.backward_layer, arrays[nf:], where))
    else:
        params = _params_from_arrays(ctx, layer, arrays, where)
    return params, out_features


def _to_jax(tree):
    import jax
    import jax.numpy as jnp

    return jax.tree_util.tree_map(jnp.asarray, tree)


def _assemble(ctx: _Context, model_entry, open_weights):
    """A Keras model config (and a callable giving its weights) -> ``(model, params)``."""
    try:
        cls = _check_origin(ctx, model_entry, "model")
        config = model_entry.get("config")
        if not isinstance(config, dict):
            raise ctx.error("the model config is malformed (no config).")
        where = f"model {config.get('name', '?')!r} ({cls})"
        _check_dtype(ctx, config.get("dtype"), where)
        _check_trainable(ctx, config.get("trainable"), where)
        entries = config.get("layers")
        if not isinstance(entries, list):
            raise ctx.error(f"{where}: config has no layer list.")
        if cls == "Sequential":
            input_entry, n_outputs = None, None
            chain = list(entries)
            if chain and isinstance(chain[0], dict) and chain[0].get("class_name") == "InputLayer":
                input_entry = chain.pop(0)
            container = chain
            for e in chain:
                if isinstance(e, dict) and e.get("class_name") == "InputLayer":
                    raise ctx.error(f"{_where(_entry_name(e), 'InputLayer')} in the middle of a Sequential.")
        elif cls in ("Functional", "Model") and "input_layers" in config:
            for e in entries:  # refuse unknown or custom classes before judging the graph's shape
                if isinstance(e, dict) and not _is_op(e):
                    _check_origin(ctx, e, f"layer {_entry_name(e)!r}")
            input_entry, chain = _functional_chain(ctx, config)
            n_outputs = len(_triples(config.get("output_layers")))
            container = [e for e in entries if not _is_op(e)]
        else:
            raise ctx.error(
                f"{where} is not supported; expected a Sequential or a functional model (a single chain)."
            )
        if not chain:
            raise ctx.error(f"{where} has no layers.")
        rc_layers = [_layer_from_config(ctx, e) for e in chain]
        if n_outputs is not None and n_outputs != _output_count(rc_layers[-1]):
            raise ctx.error(
                f"the model outputs {n_outputs} of the {_output_count(rc_layers[-1])} outputs of its last layer "
                f"{_where(_entry_name(chain[-1]), chain[-1].get('class_name'))}; only all of them are supported."
            )
        try:
            model = Sequential(rc_layers)
        except ValueError as e:
            raise ctx.error(str(e)) from None

        features = _input_features(ctx, input_entry) if input_entry is not None else None
        if features is None:
            shape = config.get("build_input_shape")
            if isinstance(shape, (list, tuple)) and shape and isinstance(shape[-1], int):
                features = shape[-1]
        source = open_weights(container)
        params, rank = [], 3
        for layer, entry in zip(rc_layers, chain):
            where = _where(_entry_name(entry), entry.get("class_name"))
            if isinstance(layer, (L.RNN, L.Bidirectional)) and rank != 3:
                raise ctx.error(
                    f"{where} receives inputs of rank {rank}; a recurrent layer needs (batch, time, features)."
                )
            if features is None and isinstance(layer, (L.RNN, L.Bidirectional, L.Dense)):
                first = source.get(_entry_name(entry), entry["config"]["layer"]["class_name"] if isinstance(
                    layer, L.Bidirectional) else entry.get("class_name"),
                    "forward_layer" if isinstance(layer, L.Bidirectional) else None)
                if not first or np.ndim(first[0]) != 2:
                    raise ctx.error(f"{where}: cannot tell the input features (no 2-D kernel).")
                features = int(np.shape(first[0])[0])
            if features is None:
                params.append(())
                continue
            p, features = _read_weights(ctx, source, layer, entry, features)
            params.append(p)
            if isinstance(layer, (L.RNN, L.Bidirectional)) and not layer.return_sequences:
                rank = 2
    except (KeyError, TypeError, AttributeError, IndexError) as e:
        raise ctx.error(f"the model config is malformed ({type(e).__name__}: {e}).") from None
    return model, _to_jax(tuple(params))


# --- reading ------------------------------------------------------------------------------------------

def _from_live(model):
    import keras

    ctx = _Context(f"keras model {getattr(model, 'name', '?')!r}")
    if not isinstance(model, keras.Model):
        kind = "layer" if isinstance(model, keras.layers.Layer) else "object"
        raise ValueError(
            f"from_keras expects a keras.Model (Sequential or a functional chain) or a path to a .keras file; "
            f"got the Keras {kind} {type(model).__name__} {getattr(model, 'name', '')!r}."
        )
    if type(model).__name__ not in ("Sequential", "Functional") or not type(model).__module__.startswith("keras."):
        raise ctx.error(
            f"{type(model).__name__} is a subclassed model; only Sequential and functional chain models are supported."
        )
    for layer in model.layers:
        cls = type(layer).__name__
        if not type(layer).__module__.startswith("keras."):
            raise ctx.error(
                f"{_where(layer.name, cls)} is a custom layer (module {type(layer).__module__!r}); supported layers: "
                f"{', '.join(c for c in _SUPPORTED if c != 'InputLayer')} (and InputLayer)."
            )
    if not model.built:
        raise ctx.error("the model is not built; give it an Input or call it once.")
    try:
        config = model.get_config()
    except Exception as e:  # noqa: BLE001 - a Keras failure becomes a clear refusal
        raise ctx.error(f"cannot read the model's config ({type(e).__name__}: {e}).") from None
    entry = {"module": "keras", "class_name": "Sequential" if type(model).__name__ == "Sequential" else "Functional",
             "config": config, "registered_name": None}
    live = _LiveWeights(model)
    return _assemble(ctx, entry, lambda container: live)


def _from_file(path):
    path = os.fspath(path)
    ctx = _Context(f"{path!r}")
    if not os.path.exists(path):
        raise ctx.error("no such file (expected a .keras file saved by model.save).")
    if not os.path.isfile(path):
        raise ctx.error("is not a file (expected a .keras zip file saved by model.save).")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as e:
        try:
            with open(path, "rb") as f:
                head = f.read(8)
        except OSError:
            head = b""
        if head.startswith(b"\x89HDF"):
            raise ctx.error("is an HDF5 file (a legacy .h5 model or bare weights), not a .keras zip archive; "
                            "re-save it with model.save('model.keras').") from None
        raise ctx.error(
            f"is not a readable .keras file: not a zip archive, or a truncated or corrupted one ({e})."
        ) from None
    with zf:
        names = set(zf.namelist())
        if "config.json" not in names:
            raise ctx.error(f"is missing config.json (found {sorted(names)[:10]}); not a .keras file.")
        config_bytes = _read_member(ctx, zf, "config.json", _MAX_CONFIG_BYTES)
        try:
            model_entry = json.loads(config_bytes.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            raise ctx.error(f"config.json is not valid JSON ({e}).") from None

        opened = []

        def open_weights(container):
            if "model.weights.h5" not in names:
                other = [n for n in names if "weights" in n]
                hint = f" (it has {other}; only model.weights.h5 is supported)" if other else ""
                raise ctx.error(f"is missing model.weights.h5{hint}.")
            data = _read_member(ctx, zf, "model.weights.h5", _MAX_WEIGHTS_BYTES)
            h5py = _h5py()
            try:
                h5 = h5py.File(io.BytesIO(data), "r")
            except (OSError, ValueError) as e:
                raise ctx.error(f"model.weights.h5 is not a readable HDF5 file ({e}).") from None
            opened.append(h5)
            return _FileWeights(ctx, h5, container)

        try:
            return _assemble(ctx, model_entry, open_weights)
        finally:
            for h5 in opened:
                h5.close()


def _read_member(ctx: _Context, zf: zipfile.ZipFile, name: str, limit: int) -> bytes:
    info = zf.getinfo(name)
    if info.file_size > limit:
        raise ctx.error(f"{name} declares {info.file_size} bytes, more than the {limit} allowed.")
    try:
        with zf.open(name) as f:
            data = f.read(limit + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError, RuntimeError) as e:
        raise ctx.error(f"is corrupted: {name} cannot be read ({e}).") from None
    if len(data) > limit:
        raise ctx.error(f"{name} is larger than the {limit} bytes allowed.")
    return data


def from_keras(keras_model_or_path) -> tuple:
    """An rnncore model and params equal to a Keras model.

    Args:
        keras_model_or_path: a live ``keras.Model`` (``Sequential``, or a functional model that is
            one chain ``Input -> layer -> ... -> layer``), or the path of a ``.keras`` file saved
            by ``model.save``. A file is read without Keras (zip + JSON + HDF5) and nothing in it
            is executed.

    Returns:
        ``(model, params)``: an :class:`~rnncore.models.Sequential` and a tuple with one entry per
        layer (``InputLayer`` skipped): a cell params NamedTuple for a recurrent layer, e.g.
        ``LSTMParams(kernel (F, 4u), recurrent_kernel (u, 4u), bias (4u,) or None)``;
        ``BidirectionalParams(forward, backward)``; ``DenseParams(kernel, bias)``; ``()`` for
        ``Masking`` and ``Dropout``. ``model.apply(params, x)`` equals ``keras_model(x)``.

    Raises:
        ValueError: naming the layer (name and class), the argument and its value, for anything
            rnncore does not represent (unknown layer classes, ``Lambda``, custom objects,
            regularizers, constraints, unknown activations, dtype policies other than
            float32/float64, non-chain graphs); naming the file and what is wrong for a missing,
            corrupted, truncated or non-zip file, a missing ``config.json`` or
            ``model.weights.h5``, or weights whose shapes do not match the config.

    Example:
        >>> import numpy as np, keras, rnncore as rc
        >>> km = keras.Sequential([keras.Input((5, 2)), keras.layers.GRU(3, use_cudnn=False)])
        >>> model, params = rc.from_keras(km)
        >>> type(model.layers[0]).__name__, [w.shape for w in params[0]]
        ('GRU', [(2, 9), (3, 9), (2, 9)])
        >>> x = np.ones((1, 5, 2), "float32")
        >>> bool(np.allclose(model.apply(params, x), km(x), atol=1e-6))
        True
    """
    if isinstance(keras_model_or_path, (str, bytes, os.PathLike)):
        if isinstance(keras_model_or_path, bytes):
            keras_model_or_path = os.fsdecode(keras_model_or_path)
        return _from_file(keras_model_or_path)
    if type(keras_model_or_path).__module__.split(".")[0] != "keras":
        raise ValueError(
            "from_keras expects a keras.Model or a path to a .keras file; got "
            f"{type(keras_model_or_path).__name__}."
        )
    return _from_live(keras_model_or_path)


# --- writing ------------------------------------------------------------------------------------------

def _keras_activation(fn, where: str, arg: str):
    if fn is None or isinstance(fn, str):
        return fn
    name = activations.name_of(fn)
    if name is None:
        raise ValueError(f"{where}: {arg}={fn!r} is a custom callable; Keras can only be given a named activation.")
    return name


def _keras_initializer(keras, init, where: str, arg: str):
    if isinstance(init, str):
        try:
            return keras.initializers.get(init)
        except ValueError:
            pass
    else:
        simple = {initializers.Zeros: "Zeros", initializers.Ones: "Ones"}
        if type(init) in simple:
            return getattr(keras.initializers, simple[type(init)])()
        for cls_name, (rc_cls, defaults, _) in _PARAM_INITIALIZERS.items():
            if type(init) is rc_cls and cls_name != "IdentityInitializer":
                return getattr(keras.initializers, cls_name)(**{k: getattr(init, k) for k in defaults})
    warnings.warn(f"to_keras: {where}: {arg}={init!r} has no Keras equivalent; the Keras layer uses Keras's default "
                  "(the weights are set, so the numbers are unaffected).", UserWarning, stacklevel=4)
    return None


def _keras_recurrent(keras, layer, dtype: str, where: str):
    cell_type = _keras_cell_type(layer, where)
    cell = layer.cell
    kwargs = {}
    for arg in _CELL_ARGS[cell_type]:
        value = getattr(cell, arg)
        if arg.endswith("activation"):
            value = _keras_activation(value, where, arg)
        elif arg.endswith("initializer"):
            value = _keras_initializer(keras, value, where, arg)
            if value is None:
                continue
        kwargs[arg] = value
    if getattr(layer, "truncate_gradient", None) is not None:
        raise ValueError(
            f"{where}: truncate_gradient={layer.truncate_gradient} has no Keras equivalent (Keras "
            "differentiates through every step); expected None."
        )
    flags = {f: getattr(layer, f) for f in _FLAGS}
    cls = cell_type.__name__
    if type(layer) is L.RNN:
        return keras.layers.RNN(getattr(keras.layers, cls + "Cell")(**kwargs, dtype=dtype), **flags, dtype=dtype)
    extra = {} if cell_type is cells.SimpleRNN else {"use_cudnn": False}
    return getattr(keras.layers, cls)(**kwargs, **flags, **extra, dtype=dtype)


def to_keras(model: Sequential, params, input_shape: Optional[tuple] = None, batch_size: Optional[int] = None):
    """A ``keras.Sequential`` with the same configuration and weights as an rnncore model.

    LSTM and GRU layers get ``use_cudnn=False`` (Keras's scan path, the one rnncore equals); the
    input is ``keras.Input(shape=input_shape)``, by default ``(None, F)`` with F read from the
    first kernel. ``from_keras(to_keras(model, params))`` gives back ``model`` and ``params``.

    Args:
        model: an rnncore :class:`~rnncore.models.Sequential` of layers Keras has.
        params: its params (one entry per layer).
        input_shape: ``(T, F)`` without the batch; ``T`` may be None.
        batch_size: a fixed batch size (needed by ``stateful`` layers).

    Returns:
        A built ``keras.Sequential`` whose ``get_weights()`` is ``keras_weights(model, params)``.

    Raises:
        ValueError: for what Keras cannot represent (a ``LayerNormLSTM``, a custom cell or
            activation), params that do not match the model, or stateful layers without a
            ``batch_size``.

    Example:
        >>> import jax, numpy as np, rnncore as rc
        >>> model = rc.Sequential([rc.layers.LSTM(3, return_sequences=True), rc.layers.Dense(1)])
        >>> params = model.init(jax.random.PRNGKey(0), input_shape=(4, 2))
        >>> km = rc.to_keras(model, params)
        >>> x = np.ones((1, 4, 2), "float32")
        >>> bool(np.allclose(km(x), model.apply(params, x), atol=1e-6))
        True
    """
    import keras

    weights = _flat_checked(model, params, "to_keras")
    features = int(np.shape(weights[0])[0]) if weights else None
    if input_shape is None:
        if features is None:
            raise ValueError(
                "to_keras: the model has no weights to read the input features from; pass input_shape=(T, F)."
            )
        input_shape = (None, features)
    input_shape = tuple(input_shape)
    if len(input_shape) != 2:
        raise ValueError(f"to_keras: input_shape must be (time, features) without the batch; got {input_shape}.")
    if features is not None and input_shape[1] != features:
        raise ValueError(
            f"to_keras: input_shape={input_shape} has {input_shape[1]} features; the first kernel expects {features}."
        )
    stateful = any(getattr(lay, "stateful", False) or getattr(getattr(lay, "forward_layer", None), "stateful", False)
                   for lay in model.layers)
    if stateful and batch_size is None:
        raise ValueError(
            "to_keras: the model has stateful layers, which Keras builds for a fixed batch size; pass batch_size=."
        )
    dtype = "float64" if weights and np.dtype(weights[0].dtype) == np.float64 else "float32"

    klayers = []
    for i, layer in enumerate(model.layers):
        where = f"layers[{i}]"
        if isinstance(layer, L.Bidirectional):
            fwd = _keras_recurrent(keras, layer.forward_layer, dtype, where + ".forward_layer")
            bwd = _keras_recurrent(keras, layer.backward_layer, dtype, where + ".backward_layer")
            klayers.append(
                keras.layers.Bidirectional(fwd, merge_mode=layer.merge_mode, backward_layer=bwd, dtype=dtype)
            )
        elif isinstance(layer, L.RNN):
            klayers.append(_keras_recurrent(keras, layer, dtype, where))
        elif isinstance(layer, L.Dense):
            kwargs = {}
            for arg in ("kernel_initializer", "bias_initializer"):
                init = _keras_initializer(keras, getattr(layer, arg), where, arg)
                if init is not None:
                    kwargs[arg] = init
            activation = _keras_activation(layer.activation, where, "activation")
            klayers.append(
                keras.layers.Dense(layer.units, activation=activation, use_bias=layer.use_bias, dtype=dtype, **kwargs)
            )
        elif isinstance(layer, L.Dropout):
            klayers.append(keras.layers.Dropout(layer.rate, noise_shape=layer.noise_shape, dtype=dtype))
        else:
            klayers.append(keras.layers.Masking(mask_value=layer.mask_value, dtype=dtype))
    inp = keras.Input(shape=input_shape, batch_size=batch_size, dtype=dtype)
    km = keras.Sequential([inp, *klayers])
    km.set_weights([np.asarray(w) for w in weights])
    return km
