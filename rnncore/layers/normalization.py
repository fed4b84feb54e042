"""``LayerNormalization``: each example normalized over its own feature axes, Keras 3's layer.

With :math:`\\mu, \\sigma^2` the mean and (biased) variance of ``x`` over ``axis``:

.. math::
    a = \\frac{\\gamma}{\\sqrt{\\sigma^2 + \\epsilon}}, \\qquad y = x\\,a + (\\beta - \\mu\\,a)

exactly in Keras's order of operations (``gamma`` is 1 with ``scale=False``, ``beta`` 0 with
``center=False``). With Keras's deprecated ``rms_scaling=True``: :math:`y = x\\,\\gamma /
\\sqrt{\\sigma^2 + \\epsilon}` (the *variance*, not the mean square, as Keras computes it), with a
``gamma`` whenever ``scale`` or ``rms_scaling`` and never a ``beta``.

``axis`` counts the axes of the full input, batch included (``-1`` the features, ``1`` the time
axis of ``(B, T, F)``), an int or a list of ints (a list of one is stored as its int); it may not
include the batch axis. ``gamma`` and
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
            axis = axis[0] if len(axis) == 1 else axis  # [a] is a, as Keras stores it
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


class BatchNormalizationParams(NamedTuple):
    """Keras weight order: ``gamma`` (None unless ``scale``), ``beta`` (None unless ``center``),
    ``moving_mean``, ``moving_variance``, each ``(C,)`` for the ``C`` channels on ``axis``.
    The moving statistics are not trained by gradients: see :meth:`BatchNormalization.apply_and_update`."""

    gamma: Optional[jax.Array]
    beta: Optional[jax.Array]
    moving_mean: jax.Array
    moving_variance: jax.Array


@dataclass(frozen=True)
class BatchNormalization:
    """Keras ``BatchNormalization(axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
    beta_initializer="zeros", gamma_initializer="ones", moving_mean_initializer="zeros",
    moving_variance_initializer="ones")``.

    With per-channel statistics :math:`m, v` (over every axis but ``axis``):

    .. math::
        a = \\frac{\\gamma}{\\sqrt{v + \\epsilon}}, \\qquad y = x\\,a + (\\beta - m\\,a)

    in Keras's order of operations. At inference (``training=False``) :math:`m, v` are the moving
    statistics; while training they are the batch's (:meth:`batch_statistics`: the mean and the
    *biased* variance; with a mask, over the unmasked positions only, each sum divided by the count
    plus Keras's fuzz :math:`10^{-7}`). After a training step Keras replaces the moving statistics by

    .. math::
        \\bar m \\leftarrow \\rho\\,\\bar m + (1-\\rho)\\,m, \\qquad \\bar v \\leftarrow \\rho\\,\\bar v + (1-\\rho)\\,v

    (:math:`\\rho` = ``momentum``); :meth:`moving_statistics` returns that update, as new params,
    without changing anything (:meth:`apply_and_update` does the training forward and the update in
    one pass). The mask passes through; it must have the inputs' shape without the last axis.

    ``axis`` counts the axes of the full input, batch included, and may not be the batch axis.
    Keras's batch renormalization (``renorm``) and ``synchronized`` statistics are not represented.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from rnncore import layers
        >>> bn = layers.BatchNormalization(momentum=0.9)
        >>> p = bn.init(jax.random.PRNGKey(0), (3,))
        >>> x = jnp.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
        >>> y, p2 = bn.apply_and_update(p, x)
        >>> [round(float(v), 3) for v in p2.moving_mean], [round(float(v), 3) for v in p2.moving_variance]
        ([0.2, 0.2, 0.2], [1.0, 0.9, 1.0])
    """

    axis: int = -1
    momentum: float = 0.99
    epsilon: float = 1e-3
    center: bool = True
    scale: bool = True
    beta_initializer: Any = "zeros"
    gamma_initializer: Any = "ones"
    moving_mean_initializer: Any = "zeros"
    moving_variance_initializer: Any = "ones"

    supports_masking = True
    # the params no gradient trains: assigned by each training forward (see rnncore.layers.statistics)
    non_trainable = ("moving_mean", "moving_variance")

    # Keras's backend.epsilon(), added to the count of unmasked positions.
    MASK_FUZZ = 1e-7

    def __post_init__(self):
        object.__setattr__(
            self, "axis", checks.integer("BatchNormalization axis", self.axis, what="an axis, batch included")
        )
        object.__setattr__(self, "momentum", checks.real("BatchNormalization momentum", self.momentum, 0, 1))
        object.__setattr__(self, "epsilon", checks.real("BatchNormalization epsilon", self.epsilon, 0))
        for name in ("center", "scale"):
            object.__setattr__(self, name, checks.boolean(f"BatchNormalization {name}", getattr(self, name)))
        for name in ("beta", "gamma", "moving_mean", "moving_variance"):
            initializers.get(getattr(self, f"{name}_initializer"), name=f"{name}_initializer")

    def _channel_axis(self, ndim: int) -> int:
        return _axes(self.axis, ndim, "BatchNormalization")[0] % ndim

    def channels(self, input_shape) -> int:
        """The size ``C`` of ``axis`` for inputs of shape ``input_shape`` (batch excluded): every weight is ``(C,)``."""
        full = (None,) + tuple(input_shape)
        channels = full[self._channel_axis(len(full))]
        if channels is None:
            raise ValueError(
                f"BatchNormalization axis={self.axis} has unknown size (input_shape={tuple(input_shape)}); "
                "its weights need a known size."
            )
        return int(channels)

    def init(self, key, input_shape, dtype=jnp.float32) -> BatchNormalizationParams:
        shape = (self.channels(input_shape),)
        k = jax.random.split(key, 4)

        def draw(i, name):
            return initializers.get(getattr(self, f"{name}_initializer"))(k[i], shape, dtype)

        return BatchNormalizationParams(
            draw(0, "gamma") if self.scale else None,
            draw(1, "beta") if self.center else None,
            draw(2, "moving_mean"),
            draw(3, "moving_variance"),
        )

    def compute_output_shape(self, input_shape):
        self._channel_axis(len(input_shape) + 1)
        return tuple(input_shape)

    def compute_mask(self, x, mask):
        return mask

    def _check(self, params, x, mask):
        if not hasattr(x, "dtype"):
            x = jnp.asarray(x)
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise ValueError(f"BatchNormalization inputs have dtype {x.dtype}; expected a floating-point array.")
        x = jnp.asarray(x)
        axis = self._channel_axis(x.ndim)
        if not isinstance(params, tuple) or len(params) != 4:
            raise ValueError(
                "BatchNormalization params must be BatchNormalizationParams(gamma, beta, moving_mean, "
                f"moving_variance); got {type(params).__name__}."
            )
        shape = (x.shape[axis],)
        names = ("gamma", "beta", "moving_mean", "moving_variance")
        present = (self.scale, self.center, True, True)
        for name, w, here in zip(names, params, present):
            if not here and w is not None:
                raise ValueError(
                    f"BatchNormalization params.{name} must be None ({'scale' if name == 'gamma' else 'center'}"
                    f"=False); got shape {shape_str(w)}."
                )
            if here and (w is None or tuple(jnp.shape(w)) != shape):
                got = "None" if w is None else f"shape {shape_str(w)}"
                raise ValueError(f"BatchNormalization params.{name} has {got}; expected shape {shape} (channels).")
        if mask is not None:
            mask = jnp.asarray(mask)
            if mask.shape != x.shape[:-1]:
                raise ValueError(
                    f"BatchNormalization mask has shape {shape_str(mask)}; expected the inputs' shape without "
                    f"the last axis, {tuple(x.shape[:-1])}."
                )
        return x, axis, mask

    def batch_statistics(self, x, mask=None):
        """Keras's batch moments ``(mean, variance)``, each ``(C,)``: biased, over every axis but
        ``axis``, over the unmasked positions only when a mask is given."""
        x = jnp.asarray(x)
        axis = self._channel_axis(x.ndim)
        reduce = tuple(a for a in range(x.ndim) if a != axis)
        if mask is None:
            return jnp.mean(x, axis=reduce), jnp.var(x, axis=reduce)
        keep = jnp.broadcast_to(jnp.asarray(mask).astype(bool)[..., None], x.shape)
        count = jnp.sum(keep.astype(x.dtype), axis=reduce, keepdims=True) + self.MASK_FUZZ
        mean = jnp.sum(jnp.where(keep, x, 0), axis=reduce, keepdims=True) / count
        variance = jnp.sum(jnp.square(jnp.where(keep, x - mean, 0)), axis=reduce, keepdims=True) / count
        return mean.reshape(-1), variance.reshape(-1)

    def _normalize(self, params: BatchNormalizationParams, x, axis: int, mean, variance):
        shape = [1] * x.ndim
        shape[axis] = x.shape[axis]
        inv = jax.lax.rsqrt(variance.reshape(shape) + self.epsilon)
        if params.gamma is not None:
            inv = inv * params.gamma.astype(x.dtype).reshape(shape)
        shift = -mean.reshape(shape) * inv
        if params.beta is not None:
            shift = shift + params.beta.astype(x.dtype).reshape(shape)
        return x * inv + shift

    def apply(self, params: BatchNormalizationParams, x, mask=None, training=False, rng=None):
        """Keras's ``call``: the moving statistics at inference, the batch's (mask-aware) while training."""
        x, axis, mask = self._check(params, x, mask)
        if training:
            mean, variance = self.batch_statistics(x, mask)
        else:
            mean, variance = params.moving_mean.astype(x.dtype), params.moving_variance.astype(x.dtype)
        return self._normalize(params, x, axis, mean, variance)

    def moving_statistics(self, params: BatchNormalizationParams, x, mask=None) -> BatchNormalizationParams:
        """``params`` with the moving statistics Keras assigns after a training step on ``x`` (gamma and
        beta unchanged): :math:`\\rho\\,\\bar m + (1-\\rho)\\,m` and the same for the variance."""
        x, axis, mask = self._check(params, x, mask)
        return self._updated(params, *self.batch_statistics(x, mask))

    def _updated(self, params, mean, variance) -> BatchNormalizationParams:
        rho = self.momentum
        moving_mean = params.moving_mean.astype(mean.dtype)
        moving_variance = params.moving_variance.astype(variance.dtype)
        return params._replace(
            moving_mean=jax.lax.stop_gradient(moving_mean * rho + mean * (1.0 - rho)),
            moving_variance=jax.lax.stop_gradient(moving_variance * rho + variance * (1.0 - rho)),
        )

    def apply_and_update(self, params: BatchNormalizationParams, x, mask=None):
        """The training forward and the updated params, from one computation of the batch statistics:
        ``(apply(params, x, mask, training=True), moving_statistics(params, x, mask))``."""
        x, axis, mask = self._check(params, x, mask)
        mean, variance = self.batch_statistics(x, mask)
        return self._normalize(params, x, axis, mean, variance), self._updated(params, mean, variance)
