"""The feed-forward layers a recurrent model is built around: ``Dense``, ``Dropout``, ``Masking``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp

from .. import activations, checks, initializers
from .inputs import check_rng, shape_str


class DenseParams(NamedTuple):
    """Keras weight order: ``kernel (F, units)``, ``bias (units,)`` or None."""

    kernel: jax.Array
    bias: Optional[jax.Array] = None


@dataclass(frozen=True)
class Dense:
    """Keras ``Dense(units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
    bias_initializer="zeros")`` on the last axis; the mask passes through."""

    units: int
    activation: Any = None
    use_bias: bool = True
    kernel_initializer: Any = "glorot_uniform"
    bias_initializer: Any = "zeros"

    supports_masking = True

    def __post_init__(self):
        object.__setattr__(self, "units", checks.positive_int("Dense units", self.units))
        activations.get(self.activation, elementwise=False)
        initializers.get(self.kernel_initializer, name="kernel_initializer")
        initializers.get(self.bias_initializer, name="bias_initializer")

    def init(self, key, input_shape, dtype=jnp.float32) -> DenseParams:
        k1, k2 = jax.random.split(key)
        kernel = initializers.get(self.kernel_initializer)(k1, (int(input_shape[-1]), self.units), dtype)
        bias = initializers.get(self.bias_initializer)(k2, (self.units,), dtype) if self.use_bias else None
        return DenseParams(kernel, bias)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def compute_mask(self, x, mask):
        return mask

    def apply(self, params: DenseParams, x, mask=None, training=False, rng=None):
        x = jnp.asarray(x)
        if x.ndim < 1 or x.shape[-1] != params.kernel.shape[0]:
            raise ValueError(
                f"Dense inputs must have {params.kernel.shape[0]} features on the last axis; got shape {shape_str(x)}."
            )
        y = x @ params.kernel
        if params.bias is not None:
            y = y + params.bias
        return activations.get(self.activation, elementwise=False)(y)


@dataclass(frozen=True)
class Dropout:
    """Keras ``Dropout(rate, noise_shape=None)``: inverted dropout while training, identity
    otherwise; the mask passes through. ``rate=1`` drops everything, as in Keras."""

    rate: float
    noise_shape: Optional[tuple] = None

    supports_masking = True

    def __post_init__(self):
        checks.real("Dropout rate", self.rate, 0, 1)

    def init(self, key, input_shape, dtype=jnp.float32):
        return ()

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_mask(self, x, mask):
        return mask

    def apply(self, params, x, mask=None, training=False, rng=None):
        x = jnp.asarray(x)
        if not training or self.rate == 0:
            return x
        if self.rate == 1:
            return jnp.zeros_like(x)
        shape = (
            x.shape
            if self.noise_shape is None
            else tuple(d if n is None else n for d, n in zip(x.shape, self.noise_shape))
        )
        keep = 1.0 - self.rate
        kept = jax.random.bernoulli(check_rng(rng, "Dropout"), keep, shape)
        return jnp.where(kept, x / keep, 0).astype(x.dtype)


@dataclass(frozen=True)
class Masking:
    """Keras ``Masking(mask_value=0.0)``: a step is masked iff *all* its features equal
    ``mask_value``; masked steps are zeroed and the mask is passed on."""

    mask_value: float = 0.0

    supports_masking = True

    def init(self, key, input_shape, dtype=jnp.float32):
        return ()

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_mask(self, x, mask):
        return jnp.any(jnp.asarray(x) != self.mask_value, axis=-1)

    def apply(self, params, x, mask=None, training=False, rng=None):
        x = jnp.asarray(x)
        keep = jnp.any(x != self.mask_value, axis=-1, keepdims=True)
        return jnp.where(keep, x, 0).astype(x.dtype)
