"""``to_keras``: an rnncore model as a built ``keras.Sequential`` with the same weights.

Each layer becomes the Keras layer its :mod:`.layer_kinds` entry builds (LSTM and GRU with
``use_cudnn=False``, the scan path rnncore equals), under one ``keras.Input`` and one dtype
(float64 when the weights are), and the weights are set in :func:`~.weights.keras_weights` order.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ...models import Sequential
from .layer_kinds import for_layer
from .weights import flat_checked

__all__ = ["to_keras"]


def _input_shape(weights: list, input_shape: Optional[tuple]) -> tuple:
    """``(T, F)`` checked against the first kernel (``(None, F)`` by default)."""
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
    return input_shape


def _is_stateful(model: Sequential) -> bool:
    return any(
        getattr(lay, "stateful", False) or getattr(getattr(lay, "forward_layer", None), "stateful", False)
        for lay in model.layers
    )


def to_keras(
    model: Sequential, params: Any, input_shape: Optional[tuple] = None, batch_size: Optional[int] = None
) -> Any:
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

    weights = flat_checked(model, params, "to_keras")
    input_shape = _input_shape(weights, input_shape)
    if _is_stateful(model) and batch_size is None:
        raise ValueError(
            "to_keras: the model has stateful layers, which Keras builds for a fixed batch size; pass batch_size=."
        )
    dtype = "float64" if weights and np.dtype(weights[0].dtype) == np.float64 else "float32"
    klayers = []
    for i, layer in enumerate(model.layers):
        at = f"layers[{i}]"
        klayers.append(for_layer(layer, at).to_keras(keras, layer, dtype, at))
    inp = keras.Input(shape=input_shape, batch_size=batch_size, dtype=dtype)
    km = keras.Sequential([inp, *klayers])
    km.set_weights([np.asarray(w) for w in weights])
    return km
