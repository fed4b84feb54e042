"""The LSTM cell (Hochreiter & Schmidhuber 1997; forget gate: Gers et al. 2000), as Keras's
``LSTMCell`` computes it.

Keras gate order ``[i, f, c, o]`` along the fused axis, row vectors:

.. math::
    z &= x_t K + h_{t-1} R + b, \\quad
    i = \\rho(z_i),\\; f = \\rho(z_f),\\; g = \\varphi(z_c),\\; o = \\rho(z_o) \\\\
    c_t &= f \\odot c_{t-1} + i \\odot g, \\qquad h_t = o \\odot \\varphi(c_t)

with :math:`\\rho` the recurrent activation (sigmoid) and :math:`\\varphi` the activation (tanh).
The state is :math:`s_t = (h_t, c_t)`, size 2u, and its per-step Jacobian is the full block

.. math::
    J_t = \\begin{pmatrix} \\partial h_t/\\partial h_{t-1} & \\partial h_t/\\partial c_{t-1} \\\\
                          \\partial c_t/\\partial h_{t-1} & \\partial c_t/\\partial c_{t-1}\\end{pmatrix},
    \\quad
    \\begin{aligned}
    C &= \\partial c_t/\\partial h_{t-1} = \\operatorname{diag}(c_{t-1}\\rho'(z_f)) R_f^\\top
        + \\operatorname{diag}(g\\,\\rho'(z_i)) R_i^\\top + \\operatorname{diag}(i\\,\\varphi'(z_c)) R_c^\\top \\\\
    \\partial c_t/\\partial c_{t-1} &= \\operatorname{diag}(f), \\qquad
    \\partial h_t/\\partial c_{t-1} = \\operatorname{diag}(o\\,\\varphi'(c_t)\\,f) \\\\
    \\partial h_t/\\partial h_{t-1} &= \\operatorname{diag}(\\varphi(c_t)\\rho'(z_o)) R_o^\\top
        + \\operatorname{diag}(o\\,\\varphi'(c_t))\\, C
    \\end{aligned}

(with recurrent dropout, :math:`R_g^\\top` becomes :math:`R_g^\\top\\operatorname{diag}(m_g)`). The
:math:`c \\to c` path :math:`\\operatorname{diag}(f)` is what lets gradients survive; an analysis
holding ``c`` fixed misses it.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from rnncore.cells import LSTM
    >>> cell = LSTM(units=3)
    >>> p = cell.init(jax.random.PRNGKey(0), input_dim=2)
    >>> [w.shape for w in p]
    [(2, 12), (3, 12), (12,)]
    >>> cell.jacobian(p, cell.initial_state(5), jnp.ones((5, 2))).shape
    (5, 6, 6)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp

from .. import activations, initializers
from ._base import Cell, DropoutMasks, derivative, diag_times, gate_mask, masked_recurrent_kernel_t


def cell_state_gate_name(activation) -> str:
    """The name of the gate :math:`\\varphi(c_t)` of an LSTM with this activation: ``"tanh(c)"``
    (``"activation(c)"`` for an activation without a name)."""
    return f"{activations.name_of(activations.get(activation)) or 'activation'}(c)"


def lstm_gate_activations(cell) -> dict[str, Any]:
    """``{gate: activation}`` of an LSTM-like cell (``recurrent_activation``, ``activation``):
    ``i, f, o`` the recurrent activation, ``g`` and :math:`\\varphi(c_t)` the activation."""
    rec, act = cell.recurrent_activation, cell.activation
    return {"i": rec, "f": rec, "g": act, "o": rec, cell_state_gate_name(act): act}


def lstm_named_gates(cell, gate_values) -> dict[str, jax.Array]:
    """``{gate: values}`` of an LSTM-like cell from gate values with fields ``i, f, g, o, c``."""
    gv = gate_values
    return {
        "i": gv.i,
        "f": gv.f,
        "g": gv.g,
        "o": gv.o,
        cell_state_gate_name(cell.activation): activations.get(cell.activation)(gv.c),
    }


class LSTMParams(NamedTuple):
    """Keras weight order: ``kernel (F, 4u)``, ``recurrent_kernel (u, 4u)``, ``bias (4u,)`` or None."""

    kernel: jax.Array
    recurrent_kernel: jax.Array
    bias: Optional[jax.Array] = None


class LSTMState(NamedTuple):
    """Keras state order ``[h, c]``."""

    h: jax.Array
    c: jax.Array


class LSTMGates(NamedTuple):
    """Pre-activations ``z (B, 4u)`` and the gate values of one step."""

    z: jax.Array
    i: jax.Array
    f: jax.Array
    g: jax.Array
    o: jax.Array
    c: jax.Array


@dataclass(frozen=True)
class LSTM(Cell):
    """Keras ``LSTMCell(units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
    unit_forget_bias=True, ...)``."""

    activation: Any = "tanh"
    recurrent_activation: Any = "sigmoid"
    use_bias: bool = True
    kernel_initializer: Any = "glorot_uniform"
    recurrent_initializer: Any = "orthogonal"
    bias_initializer: Any = "zeros"
    unit_forget_bias: bool = True
    dropout: float = 0.0
    recurrent_dropout: float = 0.0
    compute_dtype: Any = None

    gates = 4
    sums_projections = True
    params_type = LSTMParams
    state_type = LSTMState

    def __post_init__(self):
        self._check()

    @property
    def state_size(self) -> int:
        return 2 * self.units

    def init(self, key: jax.Array, input_dim: int, dtype=jnp.float32) -> LSTMParams:
        """Keras's initialization. With ``unit_forget_bias`` the forget block of the bias is *set
        to* ones and the other blocks still come from ``bias_initializer`` (Jozefowicz et al. 2015)."""
        kernel, recurrent, kb = self._init_weights(key, input_dim, dtype)
        bias = None
        if self.use_bias:
            binit, u = initializers.get(self.bias_initializer), self.units
            if self.unit_forget_bias:
                k1, k2 = jax.random.split(kb)
                bias = jnp.concatenate([binit(k1, (u,), dtype), jnp.ones((u,), dtype), binit(k2, (2 * u,), dtype)])
            else:
                bias = binit(kb, (4 * u,), dtype)
        return LSTMParams(kernel, recurrent, bias)

    def gate_activations(self) -> dict[str, Any]:
        """``i, f, o`` (recurrent activation), ``g`` and ``tanh(c)`` (activation; ``c`` the new cell
        state): :func:`lstm_gate_activations`."""
        return lstm_gate_activations(self)

    def named_gates(self, gate_values: LSTMGates) -> dict[str, jax.Array]:
        """The gates of :meth:`gate_activations` from :meth:`gate_values`: :func:`lstm_named_gates`."""
        return lstm_named_gates(self, gate_values)

    def gate_values(
        self, params: LSTMParams, state: LSTMState, x: jax.Array, dropout_masks: Optional[DropoutMasks] = None
    ) -> LSTMGates:
        """Every gate of one step (and the new cell state)."""
        return self._gates(
            params,
            self.input_projection(params, x, dropout_masks),
            self.recurrent_projection(params, state.h, dropout_masks),
            state,
        )

    def _gates(self, params, xk, hr, state) -> LSTMGates:
        z = xk + hr
        if params.bias is not None:
            z = z + params.bias
        rho, phi = self._rec_act(), self._act()
        zi, zf, zc, zo = jnp.split(z, 4, axis=-1)
        i, f, g, o = rho(zi), rho(zf), phi(zc), rho(zo)
        return LSTMGates(z, i, f, g, o, f * state.c + i * g)

    def core(
        self,
        params: LSTMParams,
        xk: jax.Array,
        hr: jax.Array,
        state: LSTMState,
        dropout_masks: Optional[DropoutMasks] = None,
    ):
        r"""Gates from ``z = xk + hr + b``, then :math:`c_t = f c + i g`, :math:`h_t = o\,\varphi(c_t)`."""
        gv = self._gates(params, xk, hr, state)
        h = gv.o * self._act()(gv.c)
        return LSTMState(h, gv.c), h

    @property
    def has_core_vjp(self) -> bool:
        return True

    def core_keep(self, params: LSTMParams, xk: jax.Array, hr: jax.Array, state: LSTMState):
        """:meth:`core` and the pre-activation ``z`` ``(B, 4u)`` its VJP starts from (keeping the
        gate values instead measured slower: benchmarks/README.md)."""
        gv = self._gates(params, xk, hr, state)
        h = gv.o * self._act()(gv.c)
        return LSTMState(h, gv.c), h, gv.z

    def core_vjp(self, params: LSTMParams, z: jax.Array, state: LSTMState, new: LSTMState, d_new: LSTMState):
        r"""Cotangents of ``z = xk + hr + b`` and of the previous state, the gates recomputed from
        the kept ``z``:

        .. math::
            \bar c = \bar c_t + \bar h_t\, o\, \varphi'(c_t), \quad
            \bar z = [\bar c\, g\, \rho'(z_i),\; \bar c\, c_{t-1} \rho'(z_f),\;
                       \bar c\, i\, \varphi'(z_c),\; \bar h_t \varphi(c_t)\, \rho'(z_o)], \quad
            \bar c_{t-1} = \bar c\, f.
        """
        rho, phi = self._rec_act(), self._act()
        zi, zf, zc, zo = jnp.split(z, 4, axis=-1)
        i, f, g, o = rho(zi), rho(zf), phi(zc), rho(zo)
        dc = d_new.c + d_new.h * o * derivative(phi, new.c)
        dz = jnp.concatenate(
            [
                dc * g * derivative(rho, zi),
                dc * state.c * derivative(rho, zf),
                dc * i * derivative(phi, zc),
                d_new.h * phi(new.c) * derivative(rho, zo),
            ],
            axis=-1,
        )
        return dz, None, LSTMState(jnp.zeros_like(state.h), dc * f)

    def jacobian(
        self, params: LSTMParams, state: LSTMState, x: jax.Array, dropout_masks: Optional[DropoutMasks] = None
    ) -> jax.Array:
        """Closed-form :math:`\\partial (h_t, c_t)/\\partial (h_{t-1}, c_{t-1})`, ``(B, 2u, 2u)``."""
        gv = self.gate_values(params, state, x, dropout_masks)
        rho, phi, u = self._rec_act(), self._act(), self.units
        zi, zf, zc, zo = jnp.split(gv.z, 4, axis=-1)
        rec = dropout_masks.recurrent if dropout_masks else None
        r = [
            masked_recurrent_kernel_t(params.recurrent_kernel, slice(k * u, (k + 1) * u), gate_mask(rec, k))
            for k in range(4)
        ]
        dc_dh = (
            diag_times(state.c * derivative(rho, zf), r[1])
            + diag_times(gv.g * derivative(rho, zi), r[0])
            + diag_times(gv.i * derivative(phi, zc), r[2])
        )
        tanh_c, dtanh_c = phi(gv.c), derivative(phi, gv.c)
        dh_dh = diag_times(tanh_c * derivative(rho, zo), r[3]) + diag_times(gv.o * dtanh_c, dc_dh)
        dh_dc = jax.vmap(jnp.diag)(gv.o * dtanh_c * gv.f)
        dc_dc = jax.vmap(jnp.diag)(gv.f)
        top = jnp.concatenate([dh_dh, dh_dc], axis=-1)
        bottom = jnp.concatenate([dc_dh, dc_dc], axis=-1)
        return jnp.concatenate([top, bottom], axis=-2)
