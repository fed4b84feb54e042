"""``to_keras`` for a :class:`rnncore.Model`: the graph rebuilt call by call as a functional
``keras.Model``, each layer's weights set from its params.

Each distinct layer becomes the Keras layer its :mod:`~rnncore.interop.keras.layer_kinds` entry builds, named as the
model names it, and is called at every one of its calls (shared layers stay shared) with the call's
``mask`` and ``initial_state``; an :class:`~rnncore.functional.Op` becomes the ``keras.ops``
function of its name.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ...functional import Model, Op
from .layer_kinds import for_layer
from .weights import graph_flat_checked

__all__ = ["graph_to_keras"]


def _tensors(values: dict, refs: Any) -> Any:
    if refs is None:
        return None
    if isinstance(refs, str):
        return values[refs]
    return [None if r is None else values[r] for r in refs]


def graph_to_keras(model: Model, params: Any, batch_size: Optional[int] = None) -> Any:
    """A functional ``keras.Model`` with the graph, configuration and weights of ``model``."""
    import keras

    weights = graph_flat_checked(model, params, "to_keras")
    dtype = "float64" if weights and np.dtype(weights[0].dtype) == np.float64 else "float32"
    values: dict = {}
    inputs = []
    for name, spec in zip(model.input_names, model.input_specs):
        integer = np.issubdtype(np.dtype(spec.dtype), np.integer)
        t = keras.Input(shape=spec.shape, batch_size=batch_size, dtype=spec.dtype if integer else dtype, name=name)
        values[name] = t
        inputs.append(t)
    built: dict = {}
    for call in model.calls:
        layer = call.layer
        ins = _tensors(values, call.inputs)
        if isinstance(layer, Op):
            args = [ins] if layer.list_input else (ins if isinstance(ins, list) else [ins])
            out: Any = getattr(keras.ops, layer.name)(*args, *layer.constants, **dict(layer.options))
        else:
            if call.name not in built:
                at = f"layer {call.name!r}"
                built[call.name] = for_layer(layer, at).to_keras(keras, layer, dtype, at)
                built[call.name].name = call.name
            kwargs = {}
            if call.mask is not None:
                kwargs["mask"] = _tensors(values, call.mask)
            if call.initial_state is not None:
                kwargs["initial_state"] = _tensors(values, call.initial_state)
            out = built[call.name](ins, **kwargs)
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        values.update(zip(call.outputs, outs))
    outputs = [values[o] for o in model.output_names]
    km = keras.Model(inputs if len(inputs) > 1 else inputs[0], outputs[0] if model.single_output else outputs)
    for name, layer, entry in zip(model.names, model.layers, params):
        if name in built:
            kind = for_layer(layer, f"layer {name!r}")
            arrays = [np.asarray(a) for _, a in kind.arrays(layer, entry, f"layer {name!r}") if a is not None]
            built[name].set_weights(arrays)
    return km
