"""The checks every layer makes of what it is given: sequences, masks, random keys."""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np


def shape_str(a) -> str:
    """The shape of ``a`` as a message prints it: ``(2, 3)``."""
    return str(tuple(np.shape(a)))


def check_sequences(x, name: str = "inputs", features: Optional[int] = None) -> jax.Array:
    """A ``(B, T, F)`` floating array with T >= 1 (and F == ``features``), or a clear ValueError."""
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        try:
            x = jnp.asarray(x)
        except TypeError as e:
            raise ValueError(
                f"{name} must be an array of shape (batch, time, features); got {type(x).__name__}."
            ) from e
    if len(x.shape) != 3:
        raise ValueError(
            f"{name} must have shape (batch, time, features); got shape {shape_str(x)} (rank {len(x.shape)})."
        )
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"{name} must be a floating-point array (float32 or float64); got dtype {x.dtype}.")
    if x.shape[1] == 0:
        raise ValueError(f"{name} has T=0 time steps (shape {shape_str(x)}); a sequence needs at least one step.")
    if x.shape[0] == 0:
        raise ValueError(f"{name} has batch size 0 (shape {shape_str(x)}).")
    if features is not None and x.shape[2] != features:
        raise ValueError(
            f"{name} has {x.shape[2]} features (shape {shape_str(x)}) but the layer's kernel expects {features}."
        )
    return jnp.asarray(x)


def check_inputs(x, name: str = "inputs") -> jax.Array:
    """A numeric (integer or floating) array of rank >= 2 with a batch of at least one, or a clear
    ValueError: what a model whose first layer is not recurrent takes (token ids, ``(B, F)``
    features, ...); the first layer checks the rest."""
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        try:
            x = jnp.asarray(x)
        except TypeError as e:
            raise ValueError(f"{name} must be an array of shape (batch, ...); got {type(x).__name__}.") from e
    if len(x.shape) < 2:
        raise ValueError(f"{name} must have shape (batch, ...) of rank 2 or more; got shape {shape_str(x)}.")
    if not (jnp.issubdtype(x.dtype, jnp.floating) or jnp.issubdtype(x.dtype, jnp.integer)):
        raise ValueError(f"{name} must be a floating-point or integer array; got dtype {x.dtype}.")
    if x.shape[0] == 0:
        raise ValueError(f"{name} has batch size 0 (shape {shape_str(x)}).")
    return jnp.asarray(x)


def check_mask(mask, x, name: str = "mask") -> Optional[jax.Array]:
    """``None`` or a ``(B, T)`` boolean array matching ``x``, or a clear ValueError."""
    if mask is None:
        return None
    mask = jnp.asarray(mask)
    if mask.shape != tuple(x.shape[:2]):
        raise ValueError(f"{name} must have shape (batch, time) = {tuple(x.shape[:2])}; got shape {shape_str(mask)}.")
    if not (mask.dtype == jnp.bool_ or jnp.issubdtype(mask.dtype, jnp.integer)):
        raise ValueError(f"{name} must be boolean (True where a step is real); got dtype {mask.dtype}.")
    return mask.astype(bool)


def check_rng(rng, who: str):
    """``rng``, or a ValueError saying that ``who`` draws random numbers while training and needs a key."""
    if rng is None:
        raise ValueError(f"{who}: training=True with dropout needs rng=jax.random.PRNGKey(...) to draw its masks.")
    return rng
