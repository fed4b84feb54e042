"""``Activation``: a named activation applied to every entry (softmax over the last axis), Keras 3's layer.

The mask passes through (Keras's ``Activation`` supports masking).

Example:
    >>> import jax.numpy as jnp
    >>> from rnncore import layers
    >>> act = layers.Activation("relu")
    >>> act.apply((), jnp.array([[-1.0, 2.0]])).tolist()
    [[0.0, 2.0]]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax.numpy as jnp

from .. import activations


@dataclass(frozen=True)
class Activation:
    """Keras ``Activation(activation)``: ``y = activation(x)``; any input shape, no weights."""

    activation: Any

    supports_masking = True

    def __post_init__(self):
        activations.get(self.activation, elementwise=False)

    def init(self, key, input_shape, dtype=jnp.float32):
        return ()

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_mask(self, x, mask):
        return mask

    def apply(self, params, x, mask=None, training=False, rng=None):
        x = jnp.asarray(x)
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise ValueError(f"Activation inputs have dtype {x.dtype}; expected a floating-point array.")
        return activations.get(self.activation, elementwise=False)(x)
