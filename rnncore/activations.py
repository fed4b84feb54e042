"""Keras 3 activations by name, with Keras's exact definitions.

Every function here is elementwise, which is what the closed-form Jacobians of the cells rely on:
the derivative of an elementwise :math:`\\varphi` is the diagonal matrix
:math:`\\operatorname{diag}(\\varphi'(a))`. Non-elementwise Keras activations (``softmax``,
``log_softmax``, ``glu``, ``sparsemax``) are refused by :func:`get` for that reason.

Where a function has a kink (relu, relu6, hard_sigmoid, ...), its derivative at the kink is the
one JAX's ``jax.nn`` assigns, which is what Keras on the JAX backend differentiates.

Example:
    >>> import jax.numpy as jnp
    >>> from rnncore import activations
    >>> float(activations.get("hard_sigmoid")(jnp.array(0.0)))
    0.5
    >>> activations.get(None) is activations.linear
    True
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp

Activation = Callable[[jax.Array], jax.Array]


def linear(x):
    r""":math:`\varphi(x) = x` (Keras ``linear``, also ``None``)."""
    return x


def tanh(x):
    r""":math:`\tanh x`."""
    return jnp.tanh(x)


def sigmoid(x):
    r""":math:`\sigma(x) = 1 / (1 + e^{-x})`."""
    return jax.nn.sigmoid(x)


def hard_sigmoid(x):
    r"""Keras 3: :math:`\operatorname{relu6}(x + 3) / 6 = \operatorname{clip}(x/6 + 1/2, 0, 1)`.

    Keras 2 used slope 0.2; Keras 3 uses 1/6.
    """
    return jax.nn.hard_sigmoid(x)


def relu(x):
    r""":math:`\max(x, 0)`."""
    return jax.nn.relu(x)


def relu6(x):
    r""":math:`\min(\max(x, 0), 6)`."""
    return jax.nn.relu6(x)


def leaky_relu(x):
    r""":math:`x` for :math:`x \ge 0`, else :math:`0.2x` (Keras default ``negative_slope``)."""
    return jax.nn.leaky_relu(x, negative_slope=0.2)


def elu(x):
    r""":math:`x` for :math:`x > 0`, else :math:`e^x - 1` (``alpha=1``)."""
    return jax.nn.elu(x)


def celu(x):
    r""":math:`\max(x, 0) + e^{\min(x, 0)} - 1` (``alpha=1``)."""
    return jax.nn.celu(x)


def selu(x):
    r""":math:`\lambda x` for :math:`x > 0`, else :math:`\lambda\alpha(e^x - 1)`,
    :math:`\alpha \approx 1.6733`, :math:`\lambda \approx 1.0507` (Klambauer et al. 2017)."""
    return jax.nn.selu(x)


def softplus(x):
    r""":math:`\log(1 + e^x)`."""
    return jnp.logaddexp(x, 0.0)


def softsign(x):
    r""":math:`x / (1 + |x|)`."""
    return x / (1.0 + jnp.abs(x))


def squareplus(x):
    r""":math:`(x + \sqrt{x^2 + b}) / 2` with ``b=4``."""
    return jax.nn.squareplus(x, b=4)


def silu(x):
    r""":math:`x\,\sigma(x)` (also ``swish``)."""
    return x * jax.nn.sigmoid(x)


def hard_silu(x):
    r""":math:`x\,\operatorname{hard\_sigmoid}(x)` (also ``hard_swish``)."""
    return jax.nn.hard_silu(x)


def gelu(x):
    r"""Exact GELU, Keras's default ``approximate=False``:
    :math:`x\,\Phi(x) = \tfrac{x}{2}\,(1 + \operatorname{erf}(x/\sqrt2))` (Hendrycks & Gimpel 2016),
    evaluated as :math:`\tfrac{x}{2}\operatorname{erfc}(-x/\sqrt2)`, as Keras does, which stays
    accurate in the negative tail where :math:`1 + \operatorname{erf}` cancels."""
    return 0.5 * x * jax.lax.erfc(-x * math.sqrt(0.5))


def exponential(x):
    r""":math:`e^x`."""
    return jnp.exp(x)


def mish(x):
    r""":math:`x \tanh(\operatorname{softplus}(x))` (Misra 2019)."""
    return x * jnp.tanh(softplus(x))


def log_sigmoid(x):
    r""":math:`\log \sigma(x) = -\operatorname{softplus}(-x)`."""
    return -softplus(-x)


def hard_tanh(x):
    r""":math:`\operatorname{clip}(x, -1, 1)`."""
    return jax.nn.hard_tanh(x)


def tanh_shrink(x):
    r""":math:`x - \tanh x`."""
    return x - jnp.tanh(x)


def soft_shrink(x):
    r""":math:`x - 0.5` above 0.5, :math:`x + 0.5` below -0.5, else 0."""
    return jnp.where(x > 0.5, x - 0.5, jnp.where(x < -0.5, x + 0.5, 0.0)).astype(x.dtype)


def hard_shrink(x):
    r""":math:`x` where :math:`|x| > 0.5`, else 0."""
    return jnp.where(jnp.abs(x) > 0.5, x, 0.0).astype(x.dtype)


def sparse_plus(x):
    r"""0 below -1, :math:`(x+1)^2/4` on [-1, 1], :math:`x` above 1."""
    return jax.nn.sparse_plus(x)


def sparse_sigmoid(x):
    r"""0 below -1, :math:`(x+1)/2` on [-1, 1], 1 above 1."""
    return jax.nn.sparse_sigmoid(x)


def softmax(x):
    r""":math:`e^{x_i} / \sum_j e^{x_j}` over the last axis (not elementwise: ``Dense`` only)."""
    return jax.nn.softmax(x, axis=-1)


def log_softmax(x):
    r""":math:`x_i - \log \sum_j e^{x_j}` over the last axis (not elementwise: ``Dense`` only)."""
    return jax.nn.log_softmax(x, axis=-1)


_BY_NAME: dict[str, Activation] = {
    "linear": linear,
    "tanh": tanh,
    "sigmoid": sigmoid,
    "hard_sigmoid": hard_sigmoid,
    "relu": relu,
    "relu6": relu6,
    "leaky_relu": leaky_relu,
    "elu": elu,
    "celu": celu,
    "selu": selu,
    "softplus": softplus,
    "softsign": softsign,
    "squareplus": squareplus,
    "silu": silu,
    "swish": silu,
    "hard_silu": hard_silu,
    "hard_swish": hard_silu,
    "gelu": gelu,
    "exponential": exponential,
    "mish": mish,
    "log_sigmoid": log_sigmoid,
    "hard_tanh": hard_tanh,
    "tanh_shrink": tanh_shrink,
    "soft_shrink": soft_shrink,
    "hard_shrink": hard_shrink,
    "sparse_plus": sparse_plus,
    "sparse_sigmoid": sparse_sigmoid,
}

NAMES: tuple[str, ...] = tuple(sorted(_BY_NAME))
"""Every activation name :func:`get` accepts."""

_LAST_AXIS: dict[str, Activation] = {"softmax": softmax, "log_softmax": log_softmax}
_NOT_ELEMENTWISE = ("softmax", "log_softmax", "glu", "sparsemax", "threshold")


def get(identifier: str | Activation | None, elementwise: bool = True, name: str = "activation") -> Activation:
    """The activation function for a Keras name, ``None`` (linear) or a callable.

    A callable is returned as it is; in a cell it must be elementwise (the closed-form Jacobians
    assume a diagonal derivative). With ``elementwise=False`` (``Dense``), ``softmax`` and
    ``log_softmax`` over the last axis are accepted too. ``name`` is the argument named in error
    messages (e.g. ``"recurrent_activation"``).

    Raises:
        ValueError: for an unknown name, or a non-elementwise Keras activation.
    """
    if identifier is None:
        return linear
    if callable(identifier):
        return identifier
    if isinstance(identifier, str):
        if identifier in _BY_NAME:
            return _BY_NAME[identifier]
        if not elementwise and identifier in _LAST_AXIS:
            return _LAST_AXIS[identifier]
        if identifier in _NOT_ELEMENTWISE:
            raise ValueError(
                f"{name}={identifier!r} is not elementwise; a recurrent cell needs an "
                f"elementwise activation (one of {', '.join(NAMES)})."
            )
    raise ValueError(
        f"{name}={identifier!r} is not a known activation; expected None, a callable or one of {', '.join(NAMES)}."
    )


def name_of(fn: Activation) -> str | None:
    """The Keras name of one of this module's functions, or ``None`` for a user's callable."""
    for name, f in {**_BY_NAME, **_LAST_AXIS}.items():
        if f is fn:
            return name
    return None


_FROM_OUTPUT = {
    tanh: lambda y: 1 - y * y,
    sigmoid: lambda y: y * (1 - y),
    linear: jnp.ones_like,
    relu: lambda y: (y > 0).astype(y.dtype),
}


def derivative_from_output(fn: Activation) -> Callable[[jax.Array], jax.Array] | None:
    r""":math:`y \mapsto \varphi'(a)` at :math:`y = \varphi(a)`, where the derivative is a function of
    the output: :math:`1 - y^2` (tanh), :math:`y(1 - y)` (sigmoid), :math:`[y > 0]` (relu, 0 at the
    kink as JAX assigns), 1 (linear). ``None`` for every other activation.

    These are the formulas JAX's own derivative rules evaluate from the output, so a backward pass
    that keeps :math:`y` instead of :math:`a` gets the same numbers.

    Example:
        >>> import jax.numpy as jnp
        >>> from rnncore import activations
        >>> float(activations.derivative_from_output(activations.tanh)(jnp.array(0.5)))
        0.75
        >>> activations.derivative_from_output(activations.gelu) is None
        True
    """
    return _FROM_OUTPUT.get(fn)
