"""``to_keras``: an rnncore model as a built ``keras.Sequential`` with the same weights.

Each layer becomes the Keras layer its :mod:`~rnncore.interop.keras.layer_kinds` entry builds (LSTM and GRU with
``use_cudnn=False``, the scan path rnncore equals), under one ``keras.Input`` and one dtype
(float64 when the weights are), and the weights are set in :func:`~.weights.keras_weights` order.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ...models import Sequential
from .graph_export import graph_to_keras
from .layer_kinds import for_layer
from .weights import flat_checked

__all__ = ["to_keras"]


def _inferred_input_shape(model: Sequential, kinds: list, params: Any) -> tuple:
    """``(shape, exact_rank)``: the input shape the first kernel tells, if the layers before it keep
    their input's shape (else None), and whether inputs must have exactly its rank (a recurrent first
    layer) or may have more leading axes (a Dense or an Embedding applies to any)."""
    for i, (kind, layer, entry) in enumerate(zip(kinds, model.layers, params)):
        arrays = [a for _, a in kind.arrays(layer, entry, f"layers[{i}]") if a is not None]
        if arrays:
            shape = kind.input_shape_from(layer, np.asarray(arrays[0]))
            before = model.layers[:i]
            kept = all(tuple(lay.compute_output_shape(shape)) == shape for lay in before)
            return (shape if kept else None), kind.sequences
    return None, True


def _input_shape(model: Sequential, kinds: list, params: Any, input_shape: Optional[tuple]) -> tuple:
    """The model's input shape without the batch: ``input_shape`` checked against the first kernel,
    or the one the first kernel tells (``(None, F)`` for a recurrent or Dense first layer)."""
    inferred, exact_rank = _inferred_input_shape(model, kinds, params)
    if input_shape is None:
        if inferred is None:
            raise ValueError(
                "to_keras: the model's input shape cannot be read off its weights; pass input_shape= "
                "(without the batch, e.g. (T, F))."
            )
        return inferred
    input_shape = tuple(input_shape)
    if not input_shape or not all(d is None or (isinstance(d, int) and d > 0) for d in input_shape):
        raise ValueError(
            f"to_keras: input_shape={input_shape}; expected the shape without the batch, e.g. (T, F), "
            "with positive or None sizes."
        )
    if inferred is not None:
        extra = len(input_shape) - len(inferred)
        trailing = input_shape[extra:] if extra >= 0 else input_shape
        known_differ = any(i is not None and i != d for i, d in zip(inferred, trailing))
        if extra < 0 or (extra > 0 and exact_rank) or known_differ:
            raise ValueError(
                f"to_keras: input_shape={input_shape}; the first kernel expects inputs of shape {inferred}."
            )
    return input_shape


def _is_stateful(model: Sequential) -> bool:
    return any(
        getattr(lay, "stateful", False) or getattr(getattr(lay, "forward_layer", None), "stateful", False)
        for lay in model.layers
    )


def to_keras(
    model: Sequential, params: Any, input_shape: Optional[tuple] = None, batch_size: Optional[int] = None
) -> Any:
    """A ``keras.Sequential`` with the same configuration and weights as an rnncore model (a
    functional ``keras.Model`` for an :class:`rnncore.Model`, its graph rebuilt call by call).

    LSTM and GRU layers get ``use_cudnn=False`` (Keras's scan path, the one rnncore equals); the
    input is ``keras.Input(shape=input_shape)``, by default the shape the first kernel tells
    (``(None, F)`` before a recurrent or Dense layer), integer for a model of token ids.
    ``from_keras(to_keras(model, params))`` gives back ``model`` and ``params``.

    Args:
        model: an rnncore :class:`~rnncore.models.Sequential` of layers Keras has.
        params: its params (one entry per layer).
        input_shape: the input shape without the batch, e.g. ``(T, F)``; sizes may be None.
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
    if not isinstance(model, Sequential) and hasattr(model, "calls"):
        return graph_to_keras(model, params, batch_size)
    import keras

    kinds = [for_layer(layer, f"layers[{i}]") for i, layer in enumerate(model.layers)]
    input_shape = _input_shape(model, kinds, params, input_shape)
    weights = flat_checked(model, params, "to_keras", input_shape)
    if _is_stateful(model) and batch_size is None:
        raise ValueError(
            "to_keras: the model has stateful layers, which Keras builds for a fixed batch size; pass batch_size=."
        )
    dtype = "float64" if weights and np.dtype(weights[0].dtype) == np.float64 else "float32"
    klayers = [
        kind.to_keras(keras, layer, dtype, f"layers[{i}]") for i, (kind, layer) in enumerate(zip(kinds, model.layers))
    ]
    inp = keras.Input(shape=input_shape, batch_size=batch_size, dtype="int32" if kinds[0].integer_inputs else dtype)
    km = keras.Sequential([inp, *klayers])
    km.set_weights([np.asarray(w) for w in weights])
    return km
