"""The layer-normalized LSTM (Ba, Kiros & Hinton 2016), as TensorFlow Addons' ``LayerNormLSTMCell``
defined it. Keras has none.

Three layer norms, over the *fused* 4u gate pre-activations of each side and over the new cell
state, which is what is carried:

.. math::
    z &= \\mathrm{LN}_k(x_t K) + \\mathrm{LN}_r(h_{t-1} R) + b, \\quad i,f,g,o \\text{ as in LSTM} \\\\
    c_t &= \\mathrm{LN}_s(f \\odot c_{t-1} + i \\odot g), \\qquad h_t = o \\odot \\varphi(c_t) \\\\
    \\mathrm{LN}(v) &= \\gamma \\odot \\frac{v - \\mu(v)}{\\sqrt{\\sigma^2(v) + \\epsilon}} + \\beta

with :math:`\\epsilon` = ``norm_epsilon`` (1e-3). The layer norm's Jacobian is
:math:`\\partial\\,\\mathrm{LN}/\\partial v = \\operatorname{diag}(\\gamma/\\sigma)
(I - \\tfrac1n \\mathbf 1\\mathbf 1^\\top - \\tfrac1n \\hat v \\hat v^\\top)`,
:math:`\\hat v = (v-\\mu)/\\sigma`, so the per-step state Jacobian is the LSTM block with
:math:`R^\\top` replaced by :math:`L_r R^\\top` and both rows of :math:`c` multiplied by
:math:`L_s`.

Example:
    >>> import jax
    >>> from rnncore.cells import LayerNormLSTM
    >>> p = LayerNormLSTM(units=3).init(jax.random.PRNGKey(0), input_dim=2)
    >>> [w.shape for w in p]
    [(2, 12), (3, 12), (12,), (12,), (12,), (12,), (12,), (3,), (3,)]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp

from .. import checks, initializers
from ._base import Cell, DropoutMasks, derivative, diag_times, gate_mask
from .lstm import LSTMState, lstm_gate_activations, lstm_named_gates


class LayerNormLSTMParams(NamedTuple):
    """TF Addons weight order: the LSTM's three, then ``gamma, beta`` of the kernel, recurrent and
    state norms."""

    kernel: jax.Array
    recurrent_kernel: jax.Array
    bias: Optional[jax.Array]
    kernel_norm_gamma: jax.Array
    kernel_norm_beta: jax.Array
    recurrent_norm_gamma: jax.Array
    recurrent_norm_beta: jax.Array
    state_norm_gamma: jax.Array
    state_norm_beta: jax.Array


def layer_norm(v, gamma, beta, epsilon):
    """Keras ``LayerNormalization(axis=-1)`` over the last axis (biased variance)."""
    mean = jnp.mean(v, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(v - mean), axis=-1, keepdims=True)
    return (v - mean) * jax.lax.rsqrt(var + epsilon) * gamma + beta


def layer_norm_jacobian(v, gamma, epsilon):
    """:math:`\\partial\\,\\mathrm{LN}(v)/\\partial v`, ``(B, n, n)``."""
    n = v.shape[-1]
    mean = jnp.mean(v, axis=-1, keepdims=True)
    inv = jax.lax.rsqrt(jnp.mean(jnp.square(v - mean), axis=-1, keepdims=True) + epsilon)
    vhat = (v - mean) * inv
    centred = jnp.eye(n, dtype=v.dtype)[None] - 1.0 / n - vhat[:, :, None] * vhat[:, None, :] / n
    return (gamma * inv)[:, :, None] * centred


class LayerNormLSTMGates(NamedTuple):
    """One step's projections ``xk = xK``, ``hr = hR``, pre-activations ``z``, gates, the cell
    state before (``c_raw``) and after (``c``) its layer norm."""

    xk: jax.Array
    hr: jax.Array
    z: jax.Array
    i: jax.Array
    f: jax.Array
    g: jax.Array
    o: jax.Array
    c_raw: jax.Array
    c: jax.Array


@dataclass(frozen=True)
class LayerNormLSTM(Cell):
    """TF Addons ``LayerNormLSTMCell(units, ..., norm_gamma_initializer="ones",
    norm_beta_initializer="zeros", norm_epsilon=1e-3)``; state ``(h, c)`` with ``c`` normalized."""

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
    norm_gamma_initializer: Any = "ones"
    norm_beta_initializer: Any = "zeros"
    norm_epsilon: float = 1e-3

    gates = 4
    params_type = LayerNormLSTMParams
    state_type = LSTMState

    def __post_init__(self):
        self._check()
        initializers.get(self.norm_gamma_initializer, name="norm_gamma_initializer")
        initializers.get(self.norm_beta_initializer, name="norm_beta_initializer")
        checks.real("norm_epsilon", self.norm_epsilon, 0, low_open=True)

    @property
    def state_size(self) -> int:
        return 2 * self.units

    def dropout_mask_counts(self) -> tuple[int, int]:
        """TF Addons applies one mask to the inputs and one to ``h`` before the fused matmuls."""
        return (1 if self.dropout > 0 else 0, 1 if self.recurrent_dropout > 0 else 0)

    def init(self, key: jax.Array, input_dim: int, dtype=jnp.float32) -> LayerNormLSTMParams:
        kernel, recurrent, kb = self._init_weights(key, input_dim, dtype)
        u = self.units
        kb, *kn = jax.random.split(kb, 7)
        bias = None
        if self.use_bias:
            binit = initializers.get(self.bias_initializer)
            if self.unit_forget_bias:
                k1, k2 = jax.random.split(kb)
                bias = jnp.concatenate([binit(k1, (u,), dtype), jnp.ones((u,), dtype), binit(k2, (2 * u,), dtype)])
            else:
                bias = binit(kb, (4 * u,), dtype)
        gi = initializers.get(self.norm_gamma_initializer)
        bi = initializers.get(self.norm_beta_initializer)
        return LayerNormLSTMParams(
            kernel,
            recurrent,
            bias,
            gi(kn[0], (4 * u,), dtype),
            bi(kn[1], (4 * u,), dtype),
            gi(kn[2], (4 * u,), dtype),
            bi(kn[3], (4 * u,), dtype),
            gi(kn[4], (u,), dtype),
            bi(kn[5], (u,), dtype),
        )

    def gate_activations(self) -> dict[str, Any]:
        """As the LSTM's: ``i, f, o``, ``g`` and ``tanh(c)`` (``c`` after its layer norm)."""
        return lstm_gate_activations(self)

    def named_gates(self, gate_values: LayerNormLSTMGates) -> dict[str, jax.Array]:
        """The gates of :meth:`gate_activations` from :meth:`gate_values`."""
        return lstm_named_gates(self, gate_values)

    def gate_values(
        self, params: LayerNormLSTMParams, state: LSTMState, x: jax.Array, dropout_masks: Optional[DropoutMasks] = None
    ) -> LayerNormLSTMGates:
        """Every gate of one step (and the cell state before and after its layer norm)."""
        return self._parts(params, state, x, dropout_masks)

    def _parts(self, params, state, x, dropout_masks):
        return self._parts_from(
            params,
            self.input_projection(params, x, dropout_masks),
            self.recurrent_projection(params, state.h, dropout_masks),
            state,
        )

    def _parts_from(self, params, xk, hr, state):
        eps = self.norm_epsilon
        z = layer_norm(xk, params.kernel_norm_gamma, params.kernel_norm_beta, eps) + layer_norm(
            hr, params.recurrent_norm_gamma, params.recurrent_norm_beta, eps
        )
        if params.bias is not None:
            z = z + params.bias
        rho, phi = self._rec_act(), self._act()
        zi, zf, zc, zo = jnp.split(z, 4, axis=-1)
        i, f, g, o = rho(zi), rho(zf), phi(zc), rho(zo)
        c_raw = f * state.c + i * g
        c = layer_norm(c_raw, params.state_norm_gamma, params.state_norm_beta, eps)
        return LayerNormLSTMGates(xk, hr, z, i, f, g, o, c_raw, c)

    def core(
        self,
        params: LayerNormLSTMParams,
        xk: jax.Array,
        hr: jax.Array,
        state: LSTMState,
        dropout_masks: Optional[DropoutMasks] = None,
    ):
        """The three layer norms and the LSTM update from ``xk = xK`` and ``hr = hR``."""
        p = self._parts_from(params, xk, hr, state)
        h = p.o * self._act()(p.c)
        return LSTMState(h, p.c), h

    def jacobian(
        self, params: LayerNormLSTMParams, state: LSTMState, x: jax.Array, dropout_masks: Optional[DropoutMasks] = None
    ) -> jax.Array:
        """Closed-form :math:`\\partial (h_t, c_t)/\\partial (h_{t-1}, c_{t-1})`, ``(B, 2u, 2u)``."""
        p = self._parts(params, state, x, dropout_masks)
        rho, phi, u, eps = self._rec_act(), self._act(), self.units, self.norm_epsilon
        rt = params.recurrent_kernel.T[None]
        mh = gate_mask(dropout_masks.recurrent if dropout_masks else None, 0)
        if mh is not None:
            rt = rt * mh[:, None, :]
        dz_dh = layer_norm_jacobian(p.hr, params.recurrent_norm_gamma, eps) @ rt  # (B, 4u, u)
        zi, zf, zc, zo = jnp.split(p.z, 4, axis=-1)
        d_i, d_f, d_c, d_o = (dz_dh[:, k * u : (k + 1) * u] for k in range(4))
        dcraw_dh = (
            diag_times(state.c * derivative(rho, zf), d_f)
            + diag_times(p.g * derivative(rho, zi), d_i)
            + diag_times(p.i * derivative(phi, zc), d_c)
        )
        ls = layer_norm_jacobian(p.c_raw, params.state_norm_gamma, eps)
        dc_dh = ls @ dcraw_dh
        dc_dc = ls * p.f[:, None, :]
        out = p.o * derivative(phi, p.c)
        dh_dh = diag_times(phi(p.c) * derivative(rho, zo), d_o) + diag_times(out, dc_dh)
        dh_dc = diag_times(out, dc_dc)
        return jnp.concatenate([jnp.concatenate([dh_dh, dh_dc], -1), jnp.concatenate([dc_dh, dc_dc], -1)], -2)
