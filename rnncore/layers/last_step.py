"""``LastStep``: the output at the last time position of a sequence, ``x[:, -1]``.

This is what PyTorch code writes as ``output[:, -1]`` after a recurrent module. For a
unidirectional layer it equals the layer's own last output (``return_sequences=False``); for a
``Bidirectional`` one it does not: position T holds the forward direction's last step but the
backward direction's *first* processed step (it has consumed only :math:`x_T`), whereas
``Bidirectional(return_sequences=False)`` gives the backward direction's last step (it has
consumed every input down to :math:`x_1`). ``Bidirectional(..., return_sequences=True)``
followed by ``LastStep()`` is the first; Keras has no such layer.

The position is the last one whatever the mask says (PyTorch has no mask), and no mask is passed on.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from rnncore import layers
    >>> layers.LastStep().apply((), jnp.arange(12.0).reshape(1, 4, 3)).tolist()
    [[9.0, 10.0, 11.0]]
    >>> layers.LastStep().compute_output_shape((4, 3))
    (3,)
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp

from .inputs import shape_str


@dataclass(frozen=True)
class LastStep:
    """``(B, T, F) -> (B, F)``: the last time position, ``x[:, -1]``; no weights, no mask passed on."""

    supports_masking = True

    def init(self, key, input_shape, dtype=jnp.float32):
        return ()

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[1:])

    def compute_mask(self, x, mask):
        return None

    def apply(self, params, x, mask=None, training=False, rng=None):
        x = jnp.asarray(x)
        if x.ndim < 3 or x.shape[1] == 0:
            raise ValueError(f"LastStep inputs must have shape (batch, time, ...) with time >= 1; got {shape_str(x)}.")
        return x[:, -1]
