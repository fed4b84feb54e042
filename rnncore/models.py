"""``Sequential``: a stack of layers with Keras's mask propagation.

The model is a frozen dataclass holding a tuple of layers (static under ``jit``); its params are a
tuple with one entry per layer, the only traced leaves.

Example:
    >>> import jax, jax.numpy as jnp
    >>> import rnncore as rc
    >>> model = rc.Sequential([rc.layers.LSTM(8, return_sequences=True), rc.layers.GRU(4), rc.layers.Dense(1)])
    >>> params = model.init(jax.random.PRNGKey(0), input_shape=(10, 3))
    >>> model.apply(params, jnp.ones((2, 10, 3))).shape
    (2, 1)
    >>> jax.jit(model.apply)(params, jnp.ones((2, 10, 3))).shape
    (2, 1)
    >>> rc.jit(model.apply)(params, jnp.ones((2, 10, 3))).shape   # jax.jit with rnncore's compile options
    (2, 1)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp

from . import layers as L


@dataclass(frozen=True, init=False)
class Sequential:
    """Keras ``Sequential(layers)``.

    ``apply(params, x, mask=None, training=False, rng=None)`` runs the layers in order, passing each
    one the mask the previous one propagates (``Masking`` creates one; a recurrent layer passes it
    on only with ``return_sequences``). ``rng`` is split into one key per layer
    (``jax.random.split(rng, len(layers))``) for dropout.
    """

    layers: tuple

    def __init__(self, layers: Sequence[Any]):
        layers = tuple(layers)
        if not layers:
            raise ValueError("Sequential needs at least one layer.")
        for i, layer in enumerate(layers):
            if not all(hasattr(layer, m) for m in ("init", "apply", "compute_mask", "compute_output_shape")):
                raise ValueError(f"layers[{i}] ({type(layer).__name__}) is not an rnncore layer.")
            if getattr(layer, "return_state", False) and i != len(layers) - 1:
                raise ValueError(
                    f"layers[{i}] ({type(layer).__name__}) has return_state=True; only the last layer of a "
                    "Sequential may return its state."
                )
            if isinstance(layer, L.Bidirectional) and layer.merge_mode is None and i != len(layers) - 1:
                raise ValueError(f"layers[{i}] (Bidirectional) has merge_mode=None; only the last layer may.")
        object.__setattr__(self, "layers", layers)

    def init(self, key: jax.Array, input_shape, dtype=jnp.float32) -> tuple:
        """One params entry per layer, for inputs of shape ``input_shape = (T, F)`` (T may be None)."""
        shape = tuple(input_shape)
        if len(shape) != 2:
            raise ValueError(f"input_shape must be (time, features) without the batch; got {shape}.")
        params = []
        for layer, k in zip(self.layers, jax.random.split(key, len(self.layers))):
            params.append(layer.init(k, shape, dtype))
            shape = layer.compute_output_shape(shape)
        return tuple(params)

    def check_params(self, params: Any) -> None:
        """Raise a ``ValueError`` unless ``params`` is a tuple (or list) with one entry per layer, as
        :meth:`init` returns them."""
        if not isinstance(params, (tuple, list)) or len(params) != len(self.layers):
            n = len(params) if isinstance(params, (tuple, list)) else type(params).__name__
            raise ValueError(f"params must be a tuple with one entry per layer ({len(self.layers)}); got {n}.")

    def apply(self, params, x, mask: Optional[jax.Array] = None, training: bool = False,
              rng: Optional[jax.Array] = None, initial_states: Optional[Sequence[Any]] = None,
              return_states: bool = False):
        """Outputs for ``x (B, T, F)``.

        ``initial_states``: one entry per layer (None for a layer without state, or to start a
        recurrent layer from zeros). ``return_states=True`` returns ``(y, final_states)``, one
        state per layer (None for non-recurrent layers): the ``stateful`` pattern, where the
        final states of one chunk are the initial states of the next.
        """
        y, finals, _ = self.apply_with_mask(params, x, mask, training, rng, initial_states)
        return (y, finals) if return_states else y

    def apply_with_mask(self, params, x, mask: Optional[jax.Array] = None, training: bool = False,
                        rng: Optional[jax.Array] = None, initial_states: Optional[Sequence[Any]] = None):
        """``(y, final_states, output_mask)``: :meth:`apply` with ``return_states=True``, plus the mask
        the last layer passes on, ``(B, T)`` or None, the mask Keras attaches to the model's output
        and applies to its losses and metrics.

        Example:
            >>> import jax, jax.numpy as jnp
            >>> import rnncore as rc
            >>> model = rc.Sequential([rc.layers.Masking(0.0), rc.layers.GRU(3, return_sequences=True)])
            >>> params = model.init(jax.random.PRNGKey(0), input_shape=(4, 2))
            >>> x = jnp.ones((1, 4, 2)).at[0, 3].set(0.0)
            >>> y, finals, out_mask = model.apply_with_mask(params, x)
            >>> out_mask
            Array([[ True,  True,  True, False]], dtype=bool)
        """
        self.check_params(params)
        x = L.check_sequences(x)
        mask = L.check_mask(mask, x)
        keys = [None] * len(self.layers) if rng is None else list(jax.random.split(rng, len(self.layers)))
        if initial_states is not None and len(initial_states) != len(self.layers):
            raise ValueError(f"initial_states must have one entry per layer ({len(self.layers)}); got {len(initial_states)}.")
        finals = []
        h = x
        for i, (layer, p) in enumerate(zip(self.layers, params)):
            if isinstance(layer, L.RECURRENT):
                s0 = None if initial_states is None else initial_states[i]
                out, final = layer.call(p, h, mask, training, keys[i], s0)
                out = out if isinstance(out, tuple) else (out,)
                if layer.return_state:
                    flat = tuple(final) if isinstance(layer, L.RNN) else tuple(final[0]) + tuple(final[1])
                    out = out + flat
                out = out[0] if len(out) == 1 else out
                finals.append(final)
            else:
                out = layer.apply(p, h, mask, training, keys[i])
                finals.append(None)
            mask = layer.compute_mask(h, mask)
            h = out
        return h, tuple(finals), mask
