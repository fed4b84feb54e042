"""Functional Keras models: the one chain from the input through each layer in turn that they must be.

A functional model's config lists its layers, each with the tensors it was called on
(``inbound_nodes``, tensors given as ``keras_history = (layer, node, output index)``).
:func:`functional_chain` walks back from the output layer to the input and accepts the graph only
if it is a single chain: every layer called once, on one tensor, the previous layer's first
output, with no other keyword than ``training`` (not ``True``) and ``mask``. Keras records a
``Masking`` layer's mask as two small operations, ``any(not_equal(x, mask_value), axis=-1)``; a
recurrent layer called with a mask must be given exactly that mask of the ``Masking`` layer
before it (the one a Sequential of the same layers propagates), and every entry of the config
must be on the chain or be one of those operations.

>>> config = {"input_layers": [["x", 0, 0]], "output_layers": [["d", 0, 0]], "layers": [
...     {"name": "x", "class_name": "InputLayer", "config": {}, "inbound_nodes": []},
...     {"name": "d", "class_name": "Dense", "config": {},
...      "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__",
...                                   "config": {"keras_history": ["x", 0, 0]}}], "kwargs": {}}]}]}
>>> from rnncore.interop.keras.context import Context
>>> first, chain = functional_chain(Context("m"), config)
>>> first["name"], [e["name"] for e in chain]
('x', ['d'])
"""

from __future__ import annotations

from typing import Any, Optional

from .config import entry_name
from .context import Context, short, where
from .layer_kinds import KINDS, kind_of_entry, supported_list

__all__ = ["functional_chain", "triples", "is_op"]

_CHAIN = "only a single chain Input -> layer -> ... -> layer is supported."


def _history(arg: Any) -> Optional[tuple]:
    """``(layer_name, node_index, tensor_index)`` of a serialized Keras tensor, else None."""
    if isinstance(arg, dict) and arg.get("class_name") == "__keras_tensor__":
        hist = (arg.get("config") or {}).get("keras_history")
        if isinstance(hist, (list, tuple)) and len(hist) == 3:
            return tuple(hist)
    return None


def _tensors_in(obj: Any) -> list:
    """Every serialized Keras tensor inside nested lists and dicts."""
    if _history(obj) is not None:
        return [_history(obj)]
    if isinstance(obj, (list, tuple)):
        return [t for o in obj for t in _tensors_in(o)]
    if isinstance(obj, dict):
        return [t for o in obj.values() for t in _tensors_in(o)]
    return []


def triples(value: Any) -> list:
    """The ``(layer, node, index)`` triples of a model's ``input_layers``/``output_layers``."""
    if isinstance(value, (list, tuple)) and len(value) == 3 and isinstance(value[0], str):
        return [tuple(value)]
    if isinstance(value, (list, tuple)):
        return [tuple(v) for v in value]
    return []


def is_op(entry: dict) -> bool:
    """Whether a config entry is a Keras operation (``keras.ops``), not a layer."""
    module = entry.get("module") or ""
    return module.startswith("keras.src.ops") or module.startswith("keras.ops")


def _name(entry: dict) -> str:
    return entry.get("name") or entry_name(entry)


def _single_node(ctx: Context, entry: dict, at: str) -> dict:
    nodes = entry.get("inbound_nodes")
    if not isinstance(nodes, list) or len(nodes) != 1 or not isinstance(nodes[0], dict):
        n = len(nodes) if isinstance(nodes, list) else nodes
        raise ctx.error(f"{at} is called {n} times in the graph; only a single chain is supported.")
    return nodes[0]


def _layers_by_name(ctx: Context, config: dict) -> dict:
    entries = config.get("layers")
    if not isinstance(entries, list):
        raise ctx.error("functional model config has no layer list.")
    by_name = {}
    for e in entries:
        if not isinstance(e, dict):
            raise ctx.error(f"malformed layer entry {str(e)[:120]!r}.")
        by_name[_name(e)] = e
    return by_name


def _input_and_output(ctx: Context, config: dict) -> tuple:
    """The names of the model's one input layer and one output layer."""
    inputs, outputs = triples(config.get("input_layers")), triples(config.get("output_layers"))
    if len(inputs) != 1:
        raise ctx.error(f"the model has {len(inputs)} inputs; only a single chain Input -> layer -> ... is supported.")
    out_layers = {o[0] for o in outputs}
    if len(out_layers) != 1 or [o[2] for o in outputs] != list(range(len(outputs))):
        raise ctx.error(
            f"the model has outputs {[list(o) for o in outputs]}; only a single chain with one output layer "
            "(and its returned states) is supported."
        )
    return inputs[0][0], outputs[0][0]


def _check_call_kwargs(ctx: Context, kwargs: dict, at: str) -> None:
    for key, value in kwargs.items():
        if key == "training":
            if value is True:
                raise ctx.error(
                    f"{at} is called with training=True in the graph (dropout at inference); not supported."
                )
        elif key != "mask":
            raise ctx.error(f"{at} is called with {key}={short(value)} in the graph; not supported.")


def _called_on(ctx: Context, entry: dict, cls: Any, at: str) -> tuple:
    """``(name of the layer before, call kwargs)`` of a layer on the chain, checked to be a chain link."""
    node = _single_node(ctx, entry, at)
    args, kwargs = node.get("args") or [], node.get("kwargs") or {}
    tensors = [_history(a) for a in args]
    n_tensors = len(_tensors_in(args)) + len(_tensors_in({k: v for k, v in kwargs.items() if k != "mask"}))
    if n_tensors > 1:
        raise ctx.error(f"{at} takes {n_tensors} tensors in the graph; {_CHAIN}")
    if cls not in KINDS:
        raise ctx.error(f"{at} is not supported by rnncore.from_keras; supported layers: {supported_list()}.")
    if len(args) != 1 or tensors[0] is None:
        raise ctx.error(f"{at} is called with {len(args)} arguments in the graph; only a single chain is supported.")
    if tensors[0][2] != 0:
        raise ctx.error(
            f"{at} consumes output #{tensors[0][2]} of layer {tensors[0][0]!r} (a state); "
            "only a single chain of outputs is supported."
        )
    _check_call_kwargs(ctx, kwargs, at)
    return tensors[0][0], kwargs


def _walk_back(ctx: Context, by_name: dict, input_name: str, output_name: str) -> tuple:
    """``(input_entry, [(entry, call kwargs), ...] from the input on, names seen)``."""
    chain: list = []
    seen: set = set()
    name = output_name
    while True:
        entry = by_name.get(name)
        if entry is None:
            raise ctx.error(f"the graph refers to layer {name!r}, which the config does not define.")
        if name in seen:
            raise ctx.error(f"the graph has a cycle through layer {name!r}.")
        seen.add(name)
        cls = entry.get("class_name")
        if cls == "InputLayer":
            if name != input_name:
                raise ctx.error(f"the chain starts at {where(name, cls)}, not at the model's input.")
            chain.reverse()
            return entry, chain, seen
        name, kwargs = _called_on(ctx, entry, cls, where(name, cls))
        chain.append((entry, kwargs))


def _is_mask_of(by_name: dict, recorded: Any, active: tuple, used: set) -> bool:
    """Whether ``recorded`` is ``any(not_equal(x, mask_value), axis=-1)`` of the active Masking's input."""
    hist = _history(recorded)
    if hist is None or hist[1:] != (0, 0):
        return False
    any_entry = by_name.get(hist[0])
    if not any_entry or any_entry.get("class_name") != "Any" or not is_op(any_entry):
        return False
    cfg = any_entry.get("config") or {}
    if cfg.get("axis") != -1 or cfg.get("keepdims", False) is not False:
        return False
    nodes = any_entry.get("inbound_nodes") or []
    if len(nodes) != 1 or len(nodes[0].get("args") or []) != 1 or nodes[0].get("kwargs"):
        return False
    ne_hist = _history(nodes[0]["args"][0])
    if ne_hist is None:
        return False
    ne_entry = by_name.get(ne_hist[0])
    if not ne_entry or ne_entry.get("class_name") != "NotEqual" or not is_op(ne_entry) or ne_hist[1:] != (0, 0):
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


def _check_recorded_mask(
    ctx: Context, by_name: dict, recorded: Any, takes_mask: bool, active: Optional[tuple], used: set, at: str
) -> None:
    if recorded != "absent" and not takes_mask:
        raise ctx.error(f"{at} is called with an explicit mask in the graph; not supported.")
    # An absent or None mask means Keras applies the propagated one itself (none without Masking).
    if takes_mask and recorded not in ("absent", None):
        if active is None:
            raise ctx.error(f"{at} is called with a mask that no Masking layer made; not supported.")
        if not _is_mask_of(by_name, recorded, active, used):
            raise ctx.error(
                f"{at} is called with a mask other than the one of the Masking layer before it "
                f"({short(recorded)}); rnncore passes that mask on, so it would compute something else."
            )


def _check_masks(ctx: Context, by_name: dict, input_entry: dict, chain: list, used: set) -> None:
    """Each layer that takes a mask gets exactly the mask the chain propagates."""
    active = None  # (input tensor of the Masking layer, mask_value)
    previous = (_name(input_entry), 0, 0)
    for entry, kwargs in chain:
        cls, name = entry.get("class_name"), _name(entry)
        kind = kind_of_entry(cls)
        takes_mask = kind is not None and kind.sequences
        _check_recorded_mask(ctx, by_name, kwargs.get("mask", "absent"), takes_mask, active, used, where(name, cls))
        config = entry.get("config") or {}
        if cls == "Masking":
            active = (previous, config.get("mask_value", 0.0))
        elif takes_mask and not (
            config.get("return_sequences") or (config.get("layer") or {}).get("config", {}).get("return_sequences")
        ):
            active = None
        previous = (name, 0, 0)


def functional_chain(ctx: Context, config: dict) -> tuple:
    """``(input_entry, chain)``: the layer entries from the input to the output, checked to be one
    chain whose masks are exactly those a Sequential of the same layers propagates."""
    by_name = _layers_by_name(ctx, config)
    input_name, output_name = _input_and_output(ctx, config)
    input_entry, chain, used = _walk_back(ctx, by_name, input_name, output_name)
    _check_masks(ctx, by_name, input_entry, chain, used)
    for name, entry in by_name.items():
        if name not in used:
            raise ctx.error(
                f"the model is not a single chain: {where(name, entry.get('class_name'))} is not on the path "
                "from the input to the output."
            )
    return input_entry, [e for e, _ in chain]
