"""The Elman cell, as Keras's ``SimpleRNNCell`` computes it.

.. math::
    a_t = (x_t \\odot m_x) K + b + (h_{t-1} \\odot m_h) R, \\qquad h_t = \\varphi(a_t)

with row vectors, ``K (F, u)``, ``R (u, u)``, one bias ``b (u,)`` on the input side, and
dropout masks :math:`m_x, m_h` only while training. The state is :math:`s_t = h_t` and the
per-step Jacobian (column convention, :math:`J_{ij} = \\partial s_{t,i} / \\partial s_{t-1,j}`) is

.. math::
    J_t = \\operatorname{diag}(\\varphi'(a_t))\\, R^\\top \\operatorname{diag}(m_h).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from rnncore.cells import SimpleRNN
    >>> cell = SimpleRNN(units=4)
    >>> p = cell.init(jax.random.PRNGKey(0), input_dim=3)
    >>> s, y = cell.step(p, cell.initial_state(2), jnp.ones((2, 3)))
    >>> y.shape, cell.jacobian(p, s, jnp.ones((2, 3))).shape
    ((2, 4), (2, 4, 4))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp

from .. import activations, initializers
from ._base import Cell, DropoutMasks, derivative, diag_times, gate_mask, masked_recurrent_kernel_t


class SimpleRNNParams(NamedTuple):
    """Keras weight order: ``kernel (F, u)``, ``recurrent_kernel (u, u)``, ``bias (u,)`` or None."""

    kernel: jax.Array
    recurrent_kernel: jax.Array
    bias: Optional[jax.Array] = None


class SimpleRNNState(NamedTuple):
    h: jax.Array


class SimpleRNNGates(NamedTuple):
    """Pre-activation ``a`` and output ``h`` of one step."""

    a: jax.Array
    h: jax.Array


@dataclass(frozen=True)
class SimpleRNN(Cell):
    """Keras ``SimpleRNNCell(units, activation="tanh", use_bias=True, ...)``."""

    activation: Any = "tanh"
    use_bias: bool = True
    kernel_initializer: Any = "glorot_uniform"
    recurrent_initializer: Any = "orthogonal"
    bias_initializer: Any = "zeros"
    dropout: float = 0.0
    recurrent_dropout: float = 0.0
    compute_dtype: Any = None

    gates = 1
    sums_projections = True
    params_type = SimpleRNNParams
    state_type = SimpleRNNState

    def __post_init__(self):
        self._check()

    def init(self, key: jax.Array, input_dim: int, dtype=jnp.float32) -> SimpleRNNParams:
        """Keras's initialization: Glorot-uniform kernel, orthogonal recurrent kernel, zero bias."""
        kernel, recurrent, kb = self._init_weights(key, input_dim, dtype)
        bias = initializers.get(self.bias_initializer)(kb, (self.units,), dtype) if self.use_bias else None
        return SimpleRNNParams(kernel, recurrent, bias)

    def core(
        self,
        params: SimpleRNNParams,
        xk: jax.Array,
        hr: jax.Array,
        state: SimpleRNNState,
        dropout_masks: Optional[DropoutMasks] = None,
    ):
        r""":math:`h = \varphi(xk + b + hr)` (Keras adds the bias to the input side first)."""
        h = self._act()(self._preactivation(params, xk, hr))
        return SimpleRNNState(h), h

    def gate_values(
        self, params: SimpleRNNParams, state: SimpleRNNState, x: jax.Array, dropout_masks: Optional[DropoutMasks] = None
    ) -> SimpleRNNGates:
        """The pre-activation and the activation of one step."""
        a = self._preactivation(
            params,
            self.input_projection(params, x, dropout_masks),
            self.recurrent_projection(params, state.h, dropout_masks),
        )
        return SimpleRNNGates(a, self._act()(a))

    def gate_activations(self) -> dict[str, Any]:
        """``{"h": activation}``: the output is the one gate."""
        return {"h": self.activation}

    def named_gates(self, gate_values: SimpleRNNGates) -> dict[str, jax.Array]:
        """``{"h": h}`` from :meth:`gate_values`."""
        return {"h": gate_values.h}

    @staticmethod
    def _preactivation(params, xk, hr):
        return (xk if params.bias is None else xk + params.bias) + hr

    @property
    def has_core_vjp(self) -> bool:
        return True

    def core_keep(self, params: SimpleRNNParams, xk: jax.Array, hr: jax.Array, state: SimpleRNNState):
        r""":meth:`core`, keeping nothing where :math:`\varphi'` is a function of the output
        (tanh, sigmoid, relu, linear), else the pre-activation ``a`` ``(B, u)``."""
        a = self._preactivation(params, xk, hr)
        h = self._act()(a)
        kept = None if activations.derivative_from_output(self._act()) else a
        return SimpleRNNState(h), h, kept

    def core_vjp(
        self, params: SimpleRNNParams, kept, state: SimpleRNNState, new: SimpleRNNState, d_new: SimpleRNNState
    ):
        r""":math:`\bar a = \bar h_t\, \varphi'(a)`, evaluated from :math:`h_t = \varphi(a)` where it
        can be, else from the kept ``a``; the previous state enters only through ``hr``."""
        from_output = activations.derivative_from_output(self._act())
        if kept is None:  # exactly when phi' is a function of the output (core_keep)
            assert from_output is not None
            d_phi = from_output(new.h)
        else:
            d_phi = derivative(self._act(), kept)
        return d_new.h * d_phi, None, SimpleRNNState(jnp.zeros_like(state.h))

    def jacobian(
        self, params: SimpleRNNParams, state: SimpleRNNState, x: jax.Array, dropout_masks: Optional[DropoutMasks] = None
    ) -> jax.Array:
        """Closed-form :math:`\\partial s_t/\\partial s_{t-1}`, ``(B, u, u)``."""
        a = self._preactivation(
            params,
            self.input_projection(params, x, dropout_masks),
            self.recurrent_projection(params, state.h, dropout_masks),
        )
        m = gate_mask(dropout_masks.recurrent if dropout_masks else None, 0)
        r_t = masked_recurrent_kernel_t(params.recurrent_kernel, slice(None), m)
        return diag_times(derivative(self._act(), a), r_t)
