"""Keras 3 initializers by name, with Keras's exact definitions.

An initializer is a frozen dataclass (hashable, so a cell holding one stays static under ``jit``)
called as ``init(key, shape, dtype)``. Fans are computed on the **full fused shape**, as Keras
computes them: for an LSTM kernel ``(F, 4u)`` Glorot uses :math:`\\text{fan\\_out} = 4u`, and
``orthogonal`` on a recurrent kernel ``(u, 4u)`` makes the *u rows* orthonormal over all 4u
columns, so no single gate block is orthogonal. :class:`OrthogonalPerGate` makes every
``(u, u)`` gate block orthogonal instead (flax's convention), as an option.

Variance scaling (Glorot & Bengio 2010; He et al. 2015; LeCun et al. 1998):

.. math::
    s = \\frac{\\text{scale}}{\\max(1, n)}, \\quad
    n \\in \\{\\text{fan\\_in}, \\text{fan\\_out}, (\\text{fan\\_in}+\\text{fan\\_out})/2\\}

uniform on :math:`[-\\sqrt{3s}, \\sqrt{3s}]`, or a normal truncated at two standard deviations
with :math:`\\sigma = \\sqrt{s} / 0.8796\\ldots` (the truncation's variance correction).

Example:
    >>> import jax
    >>> from rnncore import initializers
    >>> w = initializers.get("orthogonal")(jax.random.PRNGKey(0), (4, 16))
    >>> import numpy as np; bool(np.allclose(w @ w.T, np.eye(4), atol=1e-5))
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp

from . import checks

Initializer = Callable[..., jax.Array]

# Standard deviation of a unit normal truncated to [-2, 2] (Keras's correction constant).
_TRUNCATED_STD = 0.87962566103423978


def compute_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """``(fan_in, fan_out)`` exactly as Keras computes them (last two axes, receptive field first)."""
    shape = tuple(shape)
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


@dataclass(frozen=True)
class Zeros:
    """All zeros."""

    def __call__(self, key, shape, dtype=jnp.float32):
        return jnp.zeros(shape, dtype)


@dataclass(frozen=True)
class Ones:
    """All ones."""

    def __call__(self, key, shape, dtype=jnp.float32):
        return jnp.ones(shape, dtype)


@dataclass(frozen=True)
class Constant:
    """Every entry equal to ``value``."""

    value: float = 0.0

    def __call__(self, key, shape, dtype=jnp.float32):
        return jnp.full(shape, self.value, dtype)


@dataclass(frozen=True)
class RandomNormal:
    """:math:`\\mathcal N(\\text{mean}, \\text{stddev}^2)`, Keras defaults mean 0, stddev 0.05."""

    mean: float = 0.0
    stddev: float = 0.05

    def __call__(self, key, shape, dtype=jnp.float32):
        return self.mean + self.stddev * jax.random.normal(key, shape, dtype)


@dataclass(frozen=True)
class RandomUniform:
    """:math:`U[\\text{minval}, \\text{maxval})`, Keras defaults ±0.05."""

    minval: float = -0.05
    maxval: float = 0.05

    def __call__(self, key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, self.minval, self.maxval)


@dataclass(frozen=True)
class TruncatedNormal:
    """Normal truncated at two standard deviations, Keras defaults mean 0, stddev 0.05."""

    mean: float = 0.0
    stddev: float = 0.05

    def __call__(self, key, shape, dtype=jnp.float32):
        return self.mean + self.stddev * jax.random.truncated_normal(key, -2.0, 2.0, shape, dtype)


@dataclass(frozen=True)
class VarianceScaling:
    """Keras's ``VarianceScaling(scale, mode, distribution)`` on the fused shape's fans."""

    scale: float = 1.0
    mode: str = "fan_in"  # "fan_in" | "fan_out" | "fan_avg"
    distribution: str = "truncated_normal"  # | "untruncated_normal" | "uniform"

    def __post_init__(self):
        checks.one_of("mode", self.mode, ("fan_in", "fan_out", "fan_avg"))
        checks.one_of("distribution", self.distribution, ("truncated_normal", "untruncated_normal", "uniform"))

    def __call__(self, key, shape, dtype=jnp.float32):
        fan_in, fan_out = compute_fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        s = self.scale / max(1.0, n)
        if self.distribution == "truncated_normal":
            std = math.sqrt(s) / _TRUNCATED_STD
            return std * jax.random.truncated_normal(key, -2.0, 2.0, shape, dtype)
        if self.distribution == "untruncated_normal":
            return math.sqrt(s) * jax.random.normal(key, shape, dtype)
        limit = math.sqrt(3.0 * s)
        return jax.random.uniform(key, shape, dtype, -limit, limit)


def GlorotUniform():
    """Glorot & Bengio 2010: uniform, limit :math:`\\sqrt{6/(\\text{fan\\_in}+\\text{fan\\_out})}`."""
    return VarianceScaling(1.0, "fan_avg", "uniform")


def GlorotNormal():
    """Glorot & Bengio 2010: truncated normal, :math:`\\sigma^2 = 2/(\\text{fan\\_in}+\\text{fan\\_out})`."""
    return VarianceScaling(1.0, "fan_avg", "truncated_normal")


def HeUniform():
    """He et al. 2015: uniform, limit :math:`\\sqrt{6/\\text{fan\\_in}}`."""
    return VarianceScaling(2.0, "fan_in", "uniform")


def HeNormal():
    """He et al. 2015: truncated normal, :math:`\\sigma^2 = 2/\\text{fan\\_in}`."""
    return VarianceScaling(2.0, "fan_in", "truncated_normal")


def LecunUniform():
    """LeCun et al. 1998: uniform, limit :math:`\\sqrt{3/\\text{fan\\_in}}`."""
    return VarianceScaling(1.0, "fan_in", "uniform")


def LecunNormal():
    """LeCun et al. 1998: truncated normal, :math:`\\sigma^2 = 1/\\text{fan\\_in}`."""
    return VarianceScaling(1.0, "fan_in", "truncated_normal")


def _orthogonal(key, rows, cols, dtype):
    # Keras: QR of a (max, min) normal matrix, columns sign-fixed by diag(R), transposed if wide.
    # Drawn and factorized in the requested precision (at least float32), so float64 is orthogonal
    # to float64 accuracy.
    a = jax.random.normal(key, (max(rows, cols), min(rows, cols)), jnp.promote_types(dtype, jnp.float32))
    q, r = jnp.linalg.qr(a)
    q = q * jnp.sign(jnp.diag(r))
    if rows < cols:
        q = q.T
    return q.astype(dtype)


@dataclass(frozen=True)
class Orthogonal:
    """Saxe et al. 2014, as Keras draws it: the leading dimensions flattened to rows; for a wide
    ``(u, G·u)`` recurrent kernel the rows are orthonormal (:math:`RR^\\top = g^2 I`)."""

    gain: float = 1.0

    def __call__(self, key, shape, dtype=jnp.float32):
        if len(shape) < 2:
            raise ValueError(f"orthogonal initializer needs a shape of rank >= 2, got shape={tuple(shape)}.")
        rows, cols = math.prod(shape[:-1]), shape[-1]
        return (self.gain * _orthogonal(key, rows, cols, dtype)).reshape(shape)


@dataclass(frozen=True)
class OrthogonalPerGate:
    """Each ``(u, u)`` gate block of a ``(u, G·u)`` recurrent kernel orthogonal on its own
    (flax's convention; Keras's ``orthogonal`` is orthogonal over the fused matrix only)."""

    gain: float = 1.0

    def __call__(self, key, shape, dtype=jnp.float32):
        if len(shape) != 2 or shape[1] % shape[0] != 0:
            raise ValueError(f"orthogonal_per_gate needs a (u, G*u) shape, got shape={tuple(shape)}.")
        u, gates = shape[0], shape[1] // shape[0]
        keys = jax.random.split(key, gates)
        blocks = [_orthogonal(k, u, u, dtype) for k in keys]
        return self.gain * jnp.concatenate(blocks, axis=1)


@dataclass(frozen=True)
class Identity:
    """``gain`` times the identity (Le, Jaitly & Hinton 2015's IRNN); 2-D shapes only, as in Keras."""

    gain: float = 1.0

    def __call__(self, key, shape, dtype=jnp.float32):
        if len(shape) != 2:
            raise ValueError(f"identity initializer needs a 2-D shape, got shape={tuple(shape)}.")
        return self.gain * jnp.eye(*shape, dtype=dtype)


_BY_NAME: dict[str, Callable[[], Initializer]] = {
    "zeros": Zeros,
    "ones": Ones,
    "constant": Constant,
    "random_normal": RandomNormal,
    "random_uniform": RandomUniform,
    "truncated_normal": TruncatedNormal,
    "variance_scaling": VarianceScaling,
    "glorot_uniform": GlorotUniform,
    "glorot_normal": GlorotNormal,
    "he_uniform": HeUniform,
    "he_normal": HeNormal,
    "lecun_uniform": LecunUniform,
    "lecun_normal": LecunNormal,
    "orthogonal": Orthogonal,
    "orthogonal_per_gate": OrthogonalPerGate,
    "identity": Identity,
    # Keras's aliases
    "normal": RandomNormal,
    "uniform": RandomUniform,
    "one": Ones,
    "zero": Zeros,
}

NAMES: tuple[str, ...] = tuple(sorted(_BY_NAME))
"""Every initializer name :func:`get` accepts."""


def get(identifier: str | Initializer, name: str = "initializer") -> Initializer:
    """An initializer for a Keras name (``"glorot_uniform"``, ``"orthogonal"``, ...) or a callable
    ``(key, shape, dtype) -> array``, which is returned as it is. ``name`` is the argument named in
    error messages (e.g. ``"kernel_initializer"``)."""
    if callable(identifier) and not isinstance(identifier, str):
        return identifier
    if isinstance(identifier, str) and identifier in _BY_NAME:
        return _BY_NAME[identifier]()
    raise ValueError(
        f"{name}={identifier!r} is not a known initializer; expected a callable "
        f"(key, shape, dtype) or one of {', '.join(NAMES)}."
    )
