"""``TimeDistributed``: one layer applied at every time step, Keras 3's wrapper.

For inputs ``(B, T, ...)`` the inner layer is applied to each slice ``x[:, t]`` (shape ``(B, ...)``)
with the same params, and the results are stacked on axis 1: ``(B, T, *inner_output_shape)``. As in
Keras 3, the inner layer sees one time step at a time (a wrapped ``BatchNormalization`` takes its
batch statistics over the ``B`` examples of each step), gets ``mask[:, t]`` when a mask is given, and
while training draws its own noise at each step (``rng`` is split into ``T`` keys).

The inner layer may take sequences itself: ``TimeDistributed(LSTM(u))`` maps inputs
``(B, T, T', F)`` to ``(B, T, u)`` (``(B, T, T', u)`` with ``return_sequences``), running the LSTM
over the inner time axis ``T'`` of each of the ``T`` outer steps, with ``mask[:, t]`` ``(B, T')`` as
its mask. As in Keras, the wrapped layer must return one array: a recurrent layer with
``return_state``, a ``Bidirectional`` with ``merge_mode=None`` or a ``stateful`` one is refused.

The params *are* the inner layer's params (Keras's weights of a ``TimeDistributed`` are its inner
layer's). The mask passes through unchanged, as Keras passes it (``(B, T, T')`` even where the
inner layer returns one vector per outer step).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from rnncore import layers
    >>> td = layers.TimeDistributed(layers.Dense(2))
    >>> p = td.init(jax.random.PRNGKey(0), (5, 3))
    >>> p.kernel.shape, td.apply(p, jnp.ones((4, 5, 3))).shape
    ((3, 2), (4, 5, 2))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

from .inputs import shape_str


@dataclass(frozen=True)
class TimeDistributed:
    """Keras ``TimeDistributed(layer)``: ``layer`` applied to every ``x[:, t]``."""

    layer: Any

    supports_masking = True

    def __post_init__(self):
        missing = [m for m in ("init", "apply", "compute_output_shape") if not callable(getattr(self.layer, m, None))]
        if missing:
            raise ValueError(
                f"TimeDistributed layer={self.layer!r}; expected an rnncore layer (with init, apply and "
                "compute_output_shape)."
            )
        several = [
            flag
            for flag, value in (
                ("return_state=True", getattr(self.layer, "return_state", False)),
                ("merge_mode=None", getattr(self.layer, "merge_mode", "concat") is None),
                ("stateful=True", getattr(getattr(self.layer, "forward_layer", self.layer), "stateful", False)),
            )
            if value
        ]
        if several:
            raise ValueError(
                f"TimeDistributed layer={type(self.layer).__name__}({', '.join(several)}); expected a layer "
                "that returns one array and keeps no state between calls (Keras's TimeDistributed stacks "
                "one output per step)."
            )

    def _child_shape(self, input_shape) -> tuple:
        if len(input_shape) < 2:
            raise ValueError(
                f"TimeDistributed input_shape={tuple(input_shape)}; expected (time, ...) with at least one "
                "axis after time (inputs of rank >= 3)."
            )
        return tuple(input_shape[1:])

    def init(self, key, input_shape, dtype=jnp.float32):
        """The inner layer's params, for one time step's shape ``input_shape[1:]``."""
        return self.layer.init(key, self._child_shape(input_shape), dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + tuple(self.layer.compute_output_shape(self._child_shape(input_shape)))

    def compute_mask(self, x, mask):
        return mask

    def _check(self, x, mask):
        if not hasattr(x, "shape"):
            x = jnp.asarray(x)
        if len(x.shape) < 3:
            raise ValueError(f"TimeDistributed inputs must have shape (batch, time, ...); got shape {shape_str(x)}.")
        if mask is not None:
            mask = jnp.asarray(mask)
            if mask.ndim < 2 or mask.shape[:2] != tuple(x.shape[:2]):
                raise ValueError(
                    f"TimeDistributed mask has shape {shape_str(mask)}; expected (batch, time, ...) = "
                    f"{tuple(x.shape[:2])} first."
                )
        return jnp.asarray(x), mask

    def apply(self, params, x, mask=None, training=False, rng=None):
        x, mask = self._check(x, mask)
        steps = x.shape[1]
        keys = None if rng is None else jax.random.split(rng, steps)

        def step(x_t, mask_t, key_t):
            return self.layer.apply(params, x_t, mask=mask_t, training=training, rng=key_t)

        y = jax.vmap(step, in_axes=(1, None if mask is None else 1, None if keys is None else 0), out_axes=1)(
            x, mask, keys
        )
        return y

    @property
    def non_trainable(self) -> tuple:
        """The inner layer's non-trainable params fields (see :mod:`rnncore.layers.statistics`)."""
        return tuple(getattr(self.layer, "non_trainable", ()) or ())

    def apply_and_update(self, params, x, mask=None):
        """The training forward and :meth:`moving_statistics` of the same inputs (an inner layer with
        moving statistics only)."""
        new_params = self.moving_statistics(params, x, mask)
        return self.apply(params, x, mask, training=True), new_params

    def moving_statistics(self, params, x, mask=None):
        """For an inner layer with moving statistics (``BatchNormalization``): the params after Keras's
        one assignment per time step, in time order."""
        if not callable(getattr(self.layer, "moving_statistics", None)):
            raise ValueError(f"TimeDistributed({type(self.layer).__name__}) has no moving statistics.")
        x, mask = self._check(x, mask)
        for t in range(x.shape[1]):
            params = self.layer.moving_statistics(params, x[:, t], None if mask is None else mask[:, t])
        return params
