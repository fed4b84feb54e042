"""Weights in Keras's order: params-shaped trees as ``get_weights()`` lists, and back.

:func:`keras_weights` flattens any params-shaped tree (the params, their gradients, an optimizer's
moments) into exactly ``keras_model.get_weights()`` order, every shape checked against the model;
:func:`read_params` builds one layer's params from the weights of a Keras layer (live, through
:class:`LiveWeights`, or from a file, through :class:`~.files.FileWeights`). The order and shapes of
each layer kind's weights come from its entry in :mod:`~rnncore.interop.keras.layer_kinds`.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ...models import Sequential
from .config import entry_name
from .context import Context, where
from .layer_kinds import LayerKind, for_layer

__all__ = ["keras_weights", "flat_checked", "graph_flat_checked", "LiveWeights", "read_params", "first_input_shape"]


def _kind(entry: Any) -> str:
    if isinstance(entry, (tuple, list)):
        return f"{type(entry).__name__} of {len(entry)}"
    return type(entry).__name__


def _shape_of(a: Any) -> str:
    return "None" if a is None else f"shape {tuple(np.shape(a))}"


def _layer_kinds(model: Any, who: str) -> list:
    if not isinstance(model, Sequential):
        raise ValueError(f"{who} needs an rnncore Sequential model; got {type(model).__name__}.")
    return [for_layer(layer, f"layers[{i}]") for i, layer in enumerate(model.layers)]


def _first_input_shape(who: str, at: str, kind: LayerKind, layer: Any, arrays: list) -> tuple:
    kernel = arrays[0][1]
    if kernel is None or len(np.shape(kernel)) < 2:
        raise ValueError(f"{who}: {at}.{arrays[0][0]} must be an array of rank 2 or more; got {_shape_of(kernel)}.")
    return kind.input_shape_from(layer, np.asarray(kernel))


def _fits(got: Optional[tuple], shape: Optional[tuple]) -> bool:
    """Whether an array of shape ``got`` (None: absent) is the weight of shape ``shape``, whose None
    sizes (an input size the model leaves unknown, e.g. a Dense after a Flatten of unknown time) fit any."""
    if got is None or shape is None:
        return got is None and shape is None
    return len(got) == len(shape) and all(s is None or g == s for g, s in zip(got, shape))


def _checked_arrays(who: str, at: str, layer: Any, arrays: list, expected: list) -> list:
    out = []
    for (field, a), (_, shape) in zip(arrays, expected):
        got = None if a is None else tuple(np.shape(a))
        if not _fits(got, shape):
            raise ValueError(
                f"{who}: {at} ({type(layer).__name__}).{field} must be "
                f"{'None (use_bias=False)' if shape is None else f'shape {shape}'}; got {_shape_of(a)}."
            )
        if a is not None:
            out.append(a)
    return out


def flat_checked(model: Sequential, tree: Any, who: str, input_shape: Optional[tuple] = None) -> list:
    """The arrays of ``tree`` in Keras order, every shape checked against the model (``who`` names
    the caller in messages) for inputs of ``input_shape`` (without the batch; by default the shape
    the first kernel tells, which leaves the time axis unknown)."""
    kinds = _layer_kinds(model, who)
    if not isinstance(tree, (tuple, list)) or len(tree) != len(model.layers):
        raise ValueError(
            f"{who}: the params tree must be a tuple with one entry per layer ({len(model.layers)}); got {_kind(tree)}."
        )
    shape: Optional[tuple] = input_shape  # the layer's input shape, once known (declared or told by a kernel)
    out: list = []
    for i, (kind, layer, entry) in enumerate(zip(kinds, model.layers, tree)):
        at = f"layers[{i}]"
        arrays = kind.arrays(layer, entry, at)
        if arrays and shape is None:
            shape = _first_input_shape(who, at, kind, layer, arrays)
        if shape is None:
            continue
        out += _checked_arrays(who, at, layer, arrays, kind.weight_shapes(layer, shape))
        shape = tuple(layer.compute_output_shape(shape))
    return out


def graph_flat_checked(model: Any, tree: Any, who: str) -> list:
    """:func:`flat_checked` for a :class:`rnncore.Model`: layer by layer of ``model.layers``, each
    layer's arrays checked against its first call's input shape."""
    if not isinstance(tree, (tuple, list)) or len(tree) != len(model.layers):
        raise ValueError(
            f"{who}: the params tree must be a tuple with one entry per layer ({len(model.layers)}); got {_kind(tree)}."
        )
    out: list = []
    for name, layer, entry, shape in zip(model.names, model.layers, tree, model.input_shapes()):
        if type(layer).__name__ == "Op":
            continue
        at = f"layer {name!r}"
        kind = for_layer(layer, at)
        out += _checked_arrays(who, at, layer, kind.arrays(layer, entry, at), kind.weight_shapes(layer, shape))
    return out


def keras_weights(model: Sequential, tree: Any) -> list:
    """``tree`` (params-shaped: the params, their gradients, an optimizer's moments, ...) as a flat
    list in exactly ``keras_model.get_weights()`` order.

    Per layer: a recurrent layer gives ``kernel, recurrent_kernel[, bias]``; ``Bidirectional`` the
    forward layer's arrays, then the backward layer's (each a stack's cells in turn); a
    ``TimeDistributed`` its inner layer's; ``Dense`` gives ``kernel[, bias]``;
    ``Masking``/``Dropout`` nothing. A ``None`` bias (``use_bias=False``) is left out, as Keras has
    no such weight. Every shape is checked against the model.

    Args:
        model: an rnncore :class:`~rnncore.models.Sequential` Keras can represent.
        tree: one entry per layer, shaped like the model's params.

    Returns:
        A list of arrays (the leaves of ``tree``, not copies). For a :class:`rnncore.Model`, layer
        by layer of ``model.layers``.

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
    if not isinstance(model, Sequential) and hasattr(model, "calls"):
        return graph_flat_checked(model, tree, "keras_weights")
    return flat_checked(model, tree, "keras_weights")


class LiveWeights:
    """Weights of a live Keras model, by layer name."""

    def __init__(self, model: Any):
        self.layers = {layer.name: layer for layer in model.layers}

    def get(self, name: str, cls: str, part: Optional[str] = None) -> list:
        """The weight arrays of layer ``name`` (``part``: the path of a wrapped layer inside it, e.g.
        ``forward_layer``, ``layer`` or ``layer/backward_layer``)."""
        layer = self.layers[name]
        for attr in part.split("/") if part else ():
            layer = getattr(layer, attr)
        return [np.asarray(w) for w in layer.get_weights()]


def read_params(ctx: Context, source: Any, kind: LayerKind, layer: Any, entry: dict, input_shape: tuple) -> Any:
    """One layer's params entry, its weights read from ``source`` and shape-checked against its
    config for inputs of ``input_shape`` (without the batch)."""
    at = where(entry_name(entry), entry.get("class_name"))
    expected = kind.weight_shapes(layer, input_shape)
    arrays = kind.read(ctx, source, layer, entry, expected)
    wanted = [(f, s) for f, s in expected if s is not None]
    if len(arrays) != len(wanted):
        raise ctx.error(
            f"{at} has {len(arrays)} weight arrays; its config needs {len(wanted)} "
            f"({', '.join(f for f, _ in wanted) or 'none'})."
        )
    for (field, shape), a in zip(wanted, arrays):
        if tuple(a.shape) != shape:
            raise ctx.error(
                f"{at}: weight {field} has shape {tuple(a.shape)}; its config (and input shape "
                f"{_shape_text(input_shape)}) need {shape}."
            )
    return kind.params(layer, arrays)


def _shape_text(shape: Any) -> str:
    """A shape without the batch as messages print it: ``(None, 3)``."""
    if isinstance(shape, list):
        return "[" + ", ".join(_shape_text(s) for s in shape) + "]"
    return str(tuple(shape))


def first_input_shape(ctx: Context, source: Any, kind: LayerKind, layer: Any, entry: dict) -> tuple:
    """The input shape (without the batch) of a model's first layer with weights, read off its
    first kernel, for a model that does not declare it."""
    at = where(entry_name(entry), entry.get("class_name"))
    first = kind.first_weights(source, entry)
    if not first or np.ndim(first[0]) < 2:
        raise ctx.error(f"{at}: cannot tell the input shape (no kernel of rank 2 or more).")
    return kind.input_shape_from(layer, np.asarray(first[0]))
