"""Keras 3's noise layers: ``SpatialDropout1D``, ``GaussianNoise``, ``GaussianDropout``.

Each is the identity at inference (``training=False``) and, while training, draws its noise from
``rng`` (:meth:`draw`) and applies it (:meth:`perturb`), ``apply(..., training=True, rng=k) ==
perturb(x, draw(k, x.shape, x.dtype))``:

* ``SpatialDropout1D(rate)`` on ``(B, T, F)``: one Bernoulli keep draw per example and feature
  channel, :math:`k_{b,f} \\sim \\text{Bernoulli}(1-r)`, shared by every step:
  :math:`y_{b,t,f} = k_{b,f}\\,x_{b,t,f}/(1-r)`; ``rate=1`` drops everything;
* ``GaussianNoise(stddev)``: :math:`y = x + \\sigma\\,\\varepsilon`;
* ``GaussianDropout(rate)``: :math:`y = x\\,(1 + s\\,\\varepsilon)`, :math:`s = \\sqrt{r/(1-r)}`;

with :math:`\\varepsilon \\sim \\mathcal N(0, 1)` entrywise. Random numbers cannot match Keras's bit
for bit; the distributions and formulas are Keras's. Every one passes the mask on unchanged.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from rnncore import layers
    >>> drop = layers.SpatialDropout1D(0.5)
    >>> x = jnp.ones((1, 3, 4))
    >>> bool((drop.apply((), x) == x).all())  # inference: the identity
    True
    >>> y = drop.apply((), x, training=True, rng=jax.random.PRNGKey(0))
    >>> bool((y == y[:, :1]).all())  # a channel is kept or dropped at every step
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp

from .. import checks
from .inputs import check_rng, shape_str


def _floating(x, who: str):
    if not hasattr(x, "dtype"):
        x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"{who} inputs have dtype {x.dtype}; expected a floating-point array.")
    return jnp.asarray(x)


class _Noise:
    """Weightless, shape- and mask-preserving; noise only while training."""

    supports_masking = True

    def init(self, key, input_shape, dtype=jnp.float32):
        return ()

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_mask(self, x, mask):
        return mask

    def _active(self) -> bool:
        raise NotImplementedError

    def _check(self, x):
        return _floating(x, type(self).__name__)

    def draw(self, rng, shape, dtype):
        raise NotImplementedError

    def perturb(self, x, noise):
        raise NotImplementedError

    def apply(self, params, x, mask=None, training=False, rng=None):
        x = self._check(x)
        if not training or not self._active():
            return x
        who = type(self).__name__
        if rng is None:
            raise ValueError(f"{who}: training=True needs rng=jax.random.PRNGKey(...) to draw its noise.")
        return self.perturb(x, self.draw(check_rng(rng, who), x.shape, x.dtype))


@dataclass(frozen=True)
class SpatialDropout1D(_Noise):
    """Keras ``SpatialDropout1D(rate)``: whole feature channels of a ``(B, T, F)`` sequence dropped."""

    rate: float

    def __post_init__(self):
        object.__setattr__(self, "rate", checks.real("SpatialDropout1D rate", self.rate, 0, 1))

    def _active(self) -> bool:
        return self.rate > 0

    def _check(self, x):
        x = _floating(x, "SpatialDropout1D")
        if x.ndim != 3:
            raise ValueError(f"SpatialDropout1D inputs must have shape (batch, time, features); got {shape_str(x)}.")
        return x

    def draw(self, rng, shape, dtype):
        """Which channels are kept: boolean ``(B, 1, F)``, each True with probability ``1 - rate``."""
        return jax.random.bernoulli(rng, 1.0 - self.rate, (shape[0], 1, shape[2]))

    def perturb(self, x, noise):
        if self.rate == 1:
            return jnp.zeros_like(x)
        keep = 1.0 - self.rate
        return jnp.where(jnp.broadcast_to(noise, x.shape), x / keep, 0).astype(x.dtype)


@dataclass(frozen=True)
class GaussianNoise(_Noise):
    """Keras ``GaussianNoise(stddev)``: additive :math:`\\mathcal N(0, \\text{stddev}^2)` noise while
    training (Keras allows ``stddev`` in [0, 1])."""

    stddev: float

    def __post_init__(self):
        object.__setattr__(self, "stddev", checks.real("GaussianNoise stddev", self.stddev, 0, 1))

    def _active(self) -> bool:
        return self.stddev > 0

    def draw(self, rng, shape, dtype):
        """:math:`\\sigma\\,\\varepsilon`, of ``shape``."""
        return jax.random.normal(rng, shape, dtype) * self.stddev

    def perturb(self, x, noise):
        return x + noise


@dataclass(frozen=True)
class GaussianDropout(_Noise):
    """Keras ``GaussianDropout(rate)``: multiplicative :math:`\\mathcal N(1, r/(1-r))` noise while training."""

    rate: float

    def __post_init__(self):
        object.__setattr__(
            self, "rate", checks.rate("GaussianDropout rate", self.rate, what="the noise has std sqrt(rate/(1-rate))")
        )

    def _active(self) -> bool:
        return self.rate > 0

    def draw(self, rng, shape, dtype):
        """The factors :math:`1 + s\\,\\varepsilon`, :math:`s = \\sqrt{r/(1-r)}`, of ``shape``."""
        return jax.random.normal(rng, shape, dtype) * math.sqrt(self.rate / (1.0 - self.rate)) + 1.0

    def perturb(self, x, noise):
        return x * noise
