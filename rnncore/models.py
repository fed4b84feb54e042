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
from typing import Any, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp

from . import layers as L


class ModelRun(NamedTuple):
    """What :meth:`Sequential.run` returns.

    ``output``: the model's output, as :meth:`Sequential.apply` returns it; ``consumed``: one entry
    per layer, the :class:`~rnncore.layers.Consumed` of a recurrent layer
    (:class:`~rnncore.layers.Directions` of two for a ``Bidirectional``), None for the others;
    ``input_masks``: the mask each layer received (None where it got none); ``output_mask``: the mask
    the last layer passes on, the one Keras attaches to the model's output.
    """

    output: Any
    consumed: tuple
    input_masks: tuple
    output_mask: Any  # (B, T) or None; a tuple of them for a graph with several outputs

    @property
    def final_states(self) -> tuple:
        """One entry per layer: a recurrent layer's final state (``(forward, backward)`` states for
        a ``Bidirectional``), None for the others."""

        def final(c):
            if isinstance(c, L.Directions):
                return (c.forward.final_state, c.backward.final_state)
            return None if c is None else c.final_state

        return tuple(final(c) for c in self.consumed)


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
        """One params entry per layer, for inputs of shape ``input_shape`` without the batch:
        ``(T, F)`` (T may be None) before a recurrent layer, ``(T,)`` of token ids before an
        ``Embedding``."""
        shape = tuple(input_shape)
        if not shape or not all(d is None or (isinstance(d, int) and not isinstance(d, bool) and d > 0) for d in shape):
            raise ValueError(
                f"input_shape={shape}; expected the input shape without the batch, e.g. (time, features), "
                "with positive or None sizes."
            )
        if isinstance(self.layers[0], L.RECURRENT) and len(shape) != 2:
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

    def apply(
        self,
        params,
        x,
        mask: Optional[jax.Array] = None,
        training: bool = False,
        rng: Optional[jax.Array] = None,
        initial_states: Optional[Sequence[Any]] = None,
        return_states: bool = False,
    ):
        """Outputs for ``x`` (``(B, T, F)``, or ``(B, T)`` token ids before an ``Embedding``).

        ``initial_states``: one entry per layer (None for a layer without state, or to start a
        recurrent layer from zeros). ``return_states=True`` returns ``(y, final_states)``, one
        state per layer (None for non-recurrent layers): the ``stateful`` pattern, where the
        final states of one chunk are the initial states of the next.
        """
        y, finals, _ = self.apply_with_mask(params, x, mask, training, rng, initial_states)
        return (y, finals) if return_states else y

    def apply_with_mask(
        self,
        params,
        x,
        mask: Optional[jax.Array] = None,
        training: bool = False,
        rng: Optional[jax.Array] = None,
        initial_states: Optional[Sequence[Any]] = None,
    ):
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
        run = self.run(params, x, mask, training, rng, initial_states=initial_states)
        return run.output, run.final_states, run.output_mask

    def run(
        self,
        params,
        x,
        mask: Optional[jax.Array] = None,
        training: bool = False,
        rng: Optional[jax.Array] = None,
        *,
        initial_states: Optional[Sequence[Any]] = None,
        taps: Optional[Sequence[Any]] = None,
    ) -> ModelRun:
        """The model's forward, layer by layer, recording what each recurrent layer consumed:
        a :class:`ModelRun` ``(output, consumed, input_masks, output_mask)``. :meth:`apply` is
        ``run(...).output``.

        ``taps``: None, or one entry per layer: None, a recurrent layer's ``(d_outputs, d_final)``
        added to its full output sequence and final state (a :class:`~rnncore.layers.Directions`
        of two for a ``Bidirectional``), see :meth:`rnncore.layers.RNN.run`. Zero taps leave every
        value unchanged; the gradient with respect to them is the gradient with respect to each
        layer's outputs and final state (:func:`rnncore.depth.model_state_gradients`).

        Example:
            >>> import jax, jax.numpy as jnp
            >>> import rnncore as rc
            >>> model = rc.Sequential([rc.layers.LSTM(3, return_sequences=True), rc.layers.Dense(1)])
            >>> params = model.init(jax.random.PRNGKey(0), input_shape=(4, 2))
            >>> run = model.run(params, jnp.ones((2, 4, 2)))
            >>> run.output.shape, run.consumed[0].outputs.shape, run.consumed[1]
            ((2, 4, 1), (2, 4, 3), None)
        """
        return self._forward(params, x, mask, training, rng, initial_states, taps, update=False)[0]

    def apply_and_update(
        self,
        params,
        x,
        mask: Optional[jax.Array] = None,
        rng: Optional[jax.Array] = None,
        initial_states: Optional[Sequence[Any]] = None,
    ):
        """The training forward and the params after it: ``(y, final_states, output_mask, params')``,
        :meth:`apply_with_mask` with ``training=True``, where ``params'`` holds, for every layer with
        moving statistics (:mod:`rnncore.layers.statistics`, e.g. ``BatchNormalization``), the
        statistics Keras assigns after this forward, from the same batch statistics; every other
        entry is ``params``'s own.

        Example:
            >>> import jax, jax.numpy as jnp
            >>> import rnncore as rc
            >>> model = rc.Sequential([rc.layers.BatchNormalization(momentum=0.5), rc.layers.Dense(1)])
            >>> params = model.init(jax.random.PRNGKey(0), input_shape=(2,))
            >>> y, _, _, new = model.apply_and_update(params, jnp.array([[1.0, 2.0], [3.0, 6.0]]))
            >>> new[0].moving_mean, new[1] is params[1]
            (Array([1., 2.], dtype=float32), True)
        """
        run, updated = self._forward(params, x, mask, True, rng, initial_states, None, update=True)
        return run.output, run.final_states, run.output_mask, updated

    def _forward(self, params, x, mask, training, rng, initial_states, taps, update: bool):
        """``(ModelRun, params')``; ``params'`` carries the updated moving statistics when ``update``."""
        self.check_params(params)
        x = L.check_sequences(x) if isinstance(self.layers[0], L.RECURRENT) else L.check_inputs(x)
        mask = L.check_mask(mask, x)
        n = len(self.layers)
        keys = [None] * n if rng is None else list(jax.random.split(rng, n))
        if initial_states is not None and len(initial_states) != n:
            raise ValueError(f"initial_states must have one entry per layer ({n}); got {len(initial_states)}.")
        if taps is not None and len(taps) != n:
            raise ValueError(f"taps must have one entry per layer ({n}); got {len(taps)}.")
        consumed, masks_in = [], []
        updated = list(params)
        h = x
        for i, (layer, p) in enumerate(zip(self.layers, params)):
            masks_in.append(mask)
            if isinstance(layer, L.RECURRENT):
                s0 = None if initial_states is None else initial_states[i]
                tap = None if taps is None else taps[i]
                out, final, c = layer.run(p, h, mask, training, keys[i], s0, tap=tap)
                out = out if isinstance(out, tuple) else (out,)
                if layer.return_state:
                    flat = tuple(final) if isinstance(layer, L.RNN) else tuple(final[0]) + tuple(final[1])
                    out = out + flat
                out = out[0] if len(out) == 1 else out
            elif update and L.has_moving_statistics(layer):
                (out, updated[i]), c = layer.apply_and_update(p, h, mask), None
            else:
                out, c = layer.apply(p, h, mask, training, keys[i]), None
            consumed.append(c)
            mask = layer.compute_mask(h, mask)
            h = out
        return ModelRun(h, tuple(consumed), tuple(masks_in), mask), tuple(updated)
