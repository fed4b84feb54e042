"""``LayerNormalization``: each example normalized over its own feature axes, Keras 3's layer.

With :math:`\\mu, \\sigma^2` the mean and (biased) variance of ``x`` over ``axis``:

.. math::
    a = \\frac{\\gamma}{\\sqrt{\\sigma^2 + \\epsilon}}, \\qquad y = x\\,a + (\\beta - \\mu\\,a)

exactly in Keras's order of operations (``gamma`` is 1 with ``scale=False``, ``beta`` 0 with
``center=False``). With Keras's deprecated ``rms_scaling=True``: :math:`y = x\\,\\gamma /
\\sqrt{\\sigma^2 + \\epsilon}` (the *variance*, not the mean square, as Keras computes it), with a
``gamma`` whenever ``scale`` or ``rms_scaling`` and never a ``beta``.

``axis`` counts the axes of the full input, batch included (``-1`` the features, ``1`` the time
axis of ``(B, T, F)``), an int or a list of ints; it may not include the batch axis. ``gamma`` and
``beta`` have the shape of the normalized axes taken in sorted order, as Keras builds them (and,
like Keras, are laid onto those axes by a reshape). Any input rank; the mask passes through.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from rnncore import layers
    >>> ln = layers.LayerNormalization()
    >>> p = ln.init(jax.random.PRNGKey(0), (5, 3))
    >>> p.gamma.shape, p.beta.shape
    ((3,), (3,))
    >>> y = ln.apply(p, jnp.arange(30.0).reshape(2, 5, 3))
    >>> [round(float(v), 4) for v in y[0, 0]]
    [-1.2238, 0.0, 1.2238]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp

from .. import checks, initializers
from .inputs import shape_str


class LayerNormalizationParams(NamedTuple):
    """Keras weight order: ``gamma`` (None unless ``scale`` or ``rms_scaling``), ``beta`` (None unless
    ``center`` and not ``rms_scaling``), each of the normalized axes' shape."""

    gamma: Optional[jax.Array] = None
    beta: Optional[jax.Array] = None


def _axes(axis: Union[int, tuple], ndim: int, who: str) -> list:
    """Keras's sorted axis list, checked against an input of rank ``ndim`` (batch included)."""
    raw = sorted(axis) if isinstance(axis, tuple) else [axis]
    for a in raw:
        if not -ndim <= a < ndim:
            raise ValueError(f"{who} axis={axis!r} is out of range for inputs of rank {ndim} (batch included).")
    positive = [a % ndim for a in raw]
    if 0 in positive:
        raise ValueError(f"{who} axis={axis!r} includes the batch axis; expected feature axes in [1, {ndim - 1}].")
    if len(set(positive)) != len(positive):
        raise ValueError(f"{who} axis={axis!r} names an axis twice (inputs of rank {ndim}).")
    return raw


@dataclass(frozen=True)
class LayerNormalization:
    """Keras ``LayerNormalization(axis=-1, epsilon=1e-3, center=True, scale=True, rms_scaling=False,
    beta_initializer="zeros", gamma_initializer="ones")``; the mask passes through."""

    axis: Any = -1
    epsilon: float = 1e-3
    center: bool = True
    scale: bool = True
    rms_scaling: bool = False
    beta_initializer: Any = "zeros"
    gamma_initializer: Any = "ones"

    supports_masking = True

    def __post_init__(self):
        axis = self.axis
        if isinstance(axis, (list, tuple)):
            if not axis or not all(checks.is_integer(a) for a in axis):
                raise ValueError(f"LayerNormalization axis={axis!r}; expected an integer or a non-empty list of them.")
            axis = tuple(int(a) for a in axis)
        else:
            axis = checks.integer("LayerNormalization axis", axis, what="an axis of the inputs, batch included")
        object.__setattr__(self, "axis", axis)
        object.__setattr__(self, "epsilon", checks.real("LayerNormalization epsilon", self.epsilon, 0))
        for name in ("center", "scale", "rms_scaling"):
            object.__setattr__(self, name, checks.boolean(f"LayerNormalization {name}", getattr(self, name)))
        initializers.get(self.beta_initializer, name="beta_initializer")
        initializers.get(self.gamma_initializer, name="gamma_initializer")

    @property
    def has_gamma(self) -> bool:
        return self.scale or self.rms_scaling

    @property
    def has_beta(self) -> bool:
        return self.center and not self.rms_scaling

    def weight_shape(self, input_shape) -> tuple:
        """The shape of ``gamma`` and ``beta`` for inputs of shape ``input_shape`` (batch excluded)."""
        full = (None,) + tuple(input_shape)
        shape = tuple(full[a] for a in _axes(self.axis, len(full), "LayerNormalization"))
        if any(d is None for d in shape):
            raise ValueError(
                f"LayerNormalization axis={self.axis!r} normalizes an axis of unknown size "
                f"(input_shape={tuple(input_shape)}); its weights need a known size."
            )
        return tuple(int(d) for d in shape)

    def init(self, key, input_shape, dtype=jnp.float32) -> LayerNormalizationParams:
        shape = self.weight_shape(input_shape)
        k1, k2 = jax.random.split(key)
        gamma = initializers.get(self.gamma_initializer)(k1, shape, dtype) if self.has_gamma else None
        beta = initializers.get(self.beta_initializer)(k2, shape, dtype) if self.has_beta else None
        return LayerNormalizationParams(gamma, beta)

    def compute_output_shape(self, input_shape):
        _axes(self.axis, len(input_shape) + 1, "LayerNormalization")
        return tuple(input_shape)

    def compute_mask(self, x, mask):
        return mask

    def _weight(self, params, field: str, present: bool, shape: tuple) -> Optional[jax.Array]:
        w = getattr(params, field, None) if isinstance(params, tuple) else None
        if not present:
            if w is not None:
                raise ValueError(
                    f"LayerNormalization params.{field} must be None (center={self.center}, scale={self.scale}, "
                    f"rms_scaling={self.rms_scaling}); got shape {shape_str(w)}."
                )
            return None
        if w is None or tuple(jnp.shape(w)) != shape:
            got = "None" if w is None else f"shape {shape_str(w)}"
            raise ValueError(f"LayerNormalization params.{field} has {got}; expected shape {shape}.")
        return jnp.asarray(w)

    def apply(self, params: LayerNormalizationParams, x, mask=None, training=False, rng=None):
        """Keras's ``call``: ``x`` of any rank >= 2, floating."""
        if not hasattr(x, "dtype"):
            x = jnp.asarray(x)
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise ValueError(f"LayerNormalization inputs have dtype {x.dtype}; expected a floating-point array.")
        x = jnp.asarray(x)
        if not isinstance(params, tuple) or len(params) != 2:
            raise ValueError(
                f"LayerNormalization params must be LayerNormalizationParams(gamma, beta); got {type(params).__name__}."
            )
        axes = _axes(self.axis, x.ndim, "LayerNormalization")
        shape = tuple(x.shape[a] for a in axes)
        gamma = self._weight(params, "gamma", self.has_gamma, shape)
        beta = self._weight(params, "beta", self.has_beta, shape)
        broadcast = [1] * x.ndim
        for a in axes:
            broadcast[a] = x.shape[a]

        def laid_out(w):
            if w is not None and w.ndim != x.ndim and axes != [x.ndim - 1]:
                return w.reshape(broadcast)
            return w

        gamma, beta = laid_out(gamma), laid_out(beta)
        variance = jnp.var(x, axis=tuple(axes), keepdims=True)
        if self.rms_scaling:
            y = x * jax.lax.rsqrt(variance + self.epsilon)
            return y if gamma is None else y * gamma.astype(x.dtype)
        mean = jnp.mean(x, axis=tuple(axes), keepdims=True)
        inv = jax.lax.rsqrt(variance + self.epsilon)
        if gamma is not None:
            inv = inv * gamma.astype(x.dtype)
        shift = -mean * inv
        if beta is not None:
            shift = shift + beta.astype(x.dtype)
        return x * inv + shift
