"""Functional Keras graphs -> :class:`rnncore.Model`: several inputs and outputs, shared layers,
merge layers, returned states wired into ``initial_state``, masks as Keras records them.

A functional model's config lists its layers, each with the nodes it was called at
(``inbound_nodes``: the tensors it took, as ``keras_history = (layer, node, output index)``, and
its keyword arguments). Every node becomes one :class:`~rnncore.functional.Call` whose tensors are
named ``"layer/node/index"``; the calls are put in an order where each uses only earlier
tensors. The keyword arguments a call may carry: ``mask`` (Keras records the mask it propagated,
made by small operations such as ``not_equal(tokens, 0)``, which become
:class:`~rnncore.functional.Op` calls), ``initial_state`` (a list of tensors) and ``training``
(not ``True``); anything else is refused by name, as is any operation outside
:data:`rnncore.functional.OPS`.

>>> from rnncore.interop.keras.functional import tensor_name
>>> tensor_name(("lstm", 0, 1))
'lstm/0/1'
"""

from __future__ import annotations

import re
from typing import Any, Optional, cast

from ...functional import OPS, Call, Input, Model, Op
from .config import check_origin, entry_name, input_shape
from .context import Context, short, where
from .graph import is_op, triples
from .layer_kinds import KINDS, supported_list
from .weights import read_params

__all__ = ["graph_model", "graph_params", "tensor_name"]


def tensor_name(history: tuple) -> str:
    """The name a :class:`~rnncore.functional.Model` gives the Keras tensor ``(layer, node, index)``."""
    return f"{history[0]}/{history[1]}/{history[2]}"


def _history(arg: Any) -> Optional[tuple]:
    if isinstance(arg, dict) and arg.get("class_name") == "__keras_tensor__":
        hist = (arg.get("config") or {}).get("keras_history")
        if isinstance(hist, (list, tuple)) and len(hist) == 3:
            return tuple(hist)
    return None


def _recorded_shape(arg: Any) -> Optional[tuple]:
    shape = (arg.get("config") or {}).get("shape") if isinstance(arg, dict) else None
    return tuple(shape[1:]) if isinstance(shape, (list, tuple)) and len(shape) >= 2 else None


def _refs(ctx: Context, value: Any, at: str, what: str) -> Any:
    """A tensor argument as a name, or a list of them (None entries kept, for masks)."""
    if value is None:
        return None
    hist = _history(value)
    if hist is not None:
        return tensor_name(hist)
    if isinstance(value, (list, tuple)):
        return [_refs(ctx, v, at, what) for v in value]
    raise ctx.error(f"{at} is called with {what}={short(value)} in the graph; expected tensors.")


def _op_name(cls: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", cls).lower()


def _op_call(ctx: Context, entry: dict, node_index: int, node: dict) -> tuple:
    """A Keras operation node -> ``(Call, input names)``."""
    name, cls = entry.get("name") or entry_name(entry), entry.get("class_name")
    at = where(name, cls)
    op = _op_name(cls or "")
    if op not in OPS:
        raise ctx.error(f"{at}: the operation {cls} is not supported in a graph; supported: {', '.join(OPS)}.")
    args = node.get("args") or []
    list_input = bool(args) and isinstance(args[0], (list, tuple)) and all(_history(a) for a in args[0])
    if list_input:
        tensors, args = list(args[0]), [None] + list(args[1:])
    else:
        tensors = [a for a in args if _history(a) is not None]
        if [_history(a) is not None for a in args] != [True] * len(tensors) + [False] * (len(args) - len(tensors)):
            raise ctx.error(f"{at}: constants before tensors in the graph are not supported.")
    constants = tuple(args[1:] if list_input else args[len(tensors) :])
    if any(isinstance(c, (dict, list)) for c in constants):
        raise ctx.error(f"{at}: arguments {short(constants)} are not supported; expected numbers.")
    config = dict(entry.get("config") or {})
    options = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in config.items() if k != "name"))
    if node.get("kwargs"):
        raise ctx.error(f"{at}: keyword arguments {sorted(node['kwargs'])} are not supported.")
    inputs = [tensor_name(cast(tuple, _history(a))) for a in tensors]
    layer = Op(op, constants, options, list_input)
    refs = inputs if list_input or len(inputs) > 1 else inputs[0]
    return Call(name, layer, refs, (f"{name}/{node_index}/0",)), inputs


def _layer_call(ctx: Context, entry: dict, layer: Any, node_index: int, node: dict, first: bool) -> tuple:
    """A layer node -> ``(Call, input names, recorded input shape)``."""
    name, cls = entry.get("name") or entry_name(entry), entry.get("class_name")
    at = where(name, cls)
    args, kwargs = node.get("args") or [], dict(node.get("kwargs") or {})
    if len(args) != 1:
        raise ctx.error(f"{at} is called with {len(args)} positional arguments in the graph; expected 1.")
    inputs = _refs(ctx, args[0], at, "inputs")
    shape = [_recorded_shape(a) for a in args[0]] if isinstance(args[0], (list, tuple)) else _recorded_shape(args[0])
    training = kwargs.pop("training", None)
    if training is True:
        raise ctx.error(f"{at} is called with training=True in the graph (dropout at inference); not supported.")
    mask = _refs(ctx, kwargs.pop("mask", None), at, "mask")
    initial_state = _refs(ctx, kwargs.pop("initial_state", None), at, "initial_state")
    if kwargs:
        key = sorted(kwargs)[0]
        raise ctx.error(f"{at} is called with {key}={short(kwargs[key])} in the graph; not supported.")
    if isinstance(mask, list) and all(m is None for m in mask):
        mask = None
    if isinstance(mask, list) and not isinstance(inputs, list):
        raise ctx.error(f"{at}: a list of masks for one input is not supported.")
    n_out = KINDS[cls].output_count(layer)
    outputs = tuple(f"{name}/{node_index}/{k}" for k in range(n_out))
    call = Call(
        name,
        layer if first else None,
        inputs,
        outputs,
        None if initial_state is None else tuple(initial_state if isinstance(initial_state, list) else [initial_state]),
        mask if not isinstance(mask, list) else tuple(mask),
    )
    used = (inputs if isinstance(inputs, list) else [inputs]) + list(call.initial_state or ())
    used += [m for m in (mask if isinstance(mask, list) else [mask]) if m is not None]
    return call, used, shape


def _ordered(ctx: Context, nodes: list, available: set) -> list:
    """The calls in an order where each uses only available tensors (Kahn's order, config order first)."""
    done, ordered, pending = set(available), [], list(nodes)
    while pending:
        for k, (call, used, _) in enumerate(pending):
            if all(u in done for u in used):
                ordered.append(pending.pop(k))
                done.update(call.outputs)
                break
        else:
            call, used, _ = pending[0]
            missing = [u for u in used if u not in done]
            raise ctx.error(f"layer {call.name!r} uses tensors {missing} that nothing in the graph makes (or a cycle).")
    return ordered


def _input(ctx: Context, entry: dict) -> tuple:
    name = entry.get("name") or entry_name(entry)
    shape = input_shape(ctx, entry)
    if shape is None:
        raise ctx.error(f"{where(name, 'InputLayer')} declares no shape.")
    dtype = (entry.get("config") or {}).get("dtype")
    dtype = dtype if isinstance(dtype, str) else "float32"
    return name, Input(shape, dtype)


def _nodes(ctx: Context, entries: list) -> tuple:
    """``(nodes, inputs by name, layer entries by name)``: every op and layer node of the config
    as ``(call, tensors used, recorded input shape)``."""
    nodes: list = []
    by_input_name: dict = {}
    layer_entries: dict = {}
    for e in entries:
        if not isinstance(e, dict):
            raise ctx.error(f"malformed layer entry {str(e)[:120]!r}.")
        cls = e.get("class_name")
        name = e.get("name") or entry_name(e)
        if is_op(e):
            nodes += [(*_op_call(ctx, e, k, node), None) for k, node in enumerate(e.get("inbound_nodes") or [])]
            continue
        check_origin(ctx, e, f"layer {name!r}")
        if cls == "InputLayer":
            nm, spec = _input(ctx, e)
            by_input_name[nm] = spec
            continue
        if cls not in KINDS:
            raise ctx.error(
                f"{where(name, cls)} is not supported by rnncore.from_keras; supported layers: {supported_list()}."
            )
        layer = KINDS[cls].from_config(ctx, e, where(name, cls))
        layer_entries[name] = e
        for k, node in enumerate(e.get("inbound_nodes") or []):
            if not isinstance(node, dict):
                raise ctx.error(f"{where(name, cls)}: malformed node {short(node)}.")
            nodes.append(_layer_call(ctx, e, layer, k, node, first=k == 0))
    return nodes, by_input_name, layer_entries


def graph_model(ctx: Context, config: dict) -> tuple:
    """``(model, layer entries in model.layers order, input shape of each)``: a functional config
    as a :class:`~rnncore.functional.Model` (its inputs named as their InputLayers)."""
    entries = config.get("layers")
    if not isinstance(entries, list):
        raise ctx.error("functional model config has no layer list.")
    nodes, by_input_name, layer_entries = _nodes(ctx, entries)
    input_triples = triples(config.get("input_layers"))
    for triple in input_triples:
        if triple[0] not in by_input_name:
            raise ctx.error(f"the model's input {triple[0]!r} is not an InputLayer of the config.")
    rename = {tensor_name(t): t[0] for t in input_triples}
    ordered = _ordered(ctx, nodes, set(rename))
    recorded = {c.name: shape for c, _, shape in ordered if c.layer is not None and not isinstance(c.layer, Op)}
    output_layers = config.get("output_layers")
    outputs = [rename.get(tensor_name(t), tensor_name(t)) for t in triples(output_layers)]
    if not outputs:
        raise ctx.error("the model config names no outputs.")
    several = isinstance(output_layers, list) and bool(output_layers) and isinstance(output_layers[0], list)
    try:
        model = Model(
            {t[0]: by_input_name[t[0]] for t in input_triples},
            [_renamed(c, rename) for c, _, _ in ordered],
            outputs if several else outputs[0],
        )
    except ValueError as e:
        raise ctx.error(str(e)) from None
    computed = dict(zip(model.names, model.input_shapes()))
    return (
        model,
        [layer_entries.get(n) for n in model.names],
        [recorded.get(n) or computed[n] for n in model.names],
    )


def _renamed(call: Call, rename: dict) -> Call:
    """``call`` with the model's input tensors named as their InputLayers."""

    def r(refs: Any) -> Any:
        if refs is None or isinstance(refs, str):
            return rename.get(refs, refs)
        return tuple(r(x) for x in refs)

    return call._replace(inputs=r(call.inputs), initial_state=r(call.initial_state), mask=r(call.mask))


def graph_params(ctx: Context, source: Any, model: Model, entries: list, shapes: list) -> tuple:
    """One params entry per layer of ``model.layers``, read and shape-checked."""
    params = []
    for layer, entry, shape in zip(model.layers, entries, shapes):
        if entry is None:  # an operation
            params.append(())
            continue
        kind = KINDS[entry.get("class_name")]
        params.append(read_params(ctx, source, kind, layer, entry, shape) if kind.has_weights else ())
    return tuple(params)
