"""The GRU cell (Cho et al. 2014), as Keras's ``GRUCell`` computes it, in both reset modes.

Keras gate order ``[z, r, h]``; Keras (and PyTorch) let ``z`` weight the *old* state:

.. math::
    z &= \\rho(x K_z + b_z + h R_z + b^{r}_z), \\quad r = \\rho(x K_r + b_r + h R_r + b^{r}_r) \\\\
    \\tilde h &= \\varphi(x K_h + b_h + r \\odot (h R_h + b^{r}_h))
        \\quad \\text{(reset\\_after=True, bias (2, 3u))} \\\\
    \\tilde h &= \\varphi(x K_h + b_h + (r \\odot h) R_h)
        \\quad \\text{(reset\\_after=False, bias (3u,), no recurrent bias)} \\\\
    h_t &= z \\odot h_{t-1} + (1 - z) \\odot \\tilde h

Per-step Jacobian (column convention), with :math:`u = h R_h + b^r_h` and
:math:`a_\\cdot` the pre-activations:

.. math::
    J_t = \\operatorname{diag}(z) + \\operatorname{diag}((h - \\tilde h)\\rho'(a_z)) R_z^\\top
        + \\operatorname{diag}((1-z)\\varphi'(a_h))\\,
          [\\operatorname{diag}(r) R_h^\\top + \\operatorname{diag}(u\\,\\rho'(a_r)) R_r^\\top]

and for ``reset_after=False`` the bracket is
:math:`R_h^\\top[\\operatorname{diag}(r) + \\operatorname{diag}(h\\,\\rho'(a_r)) R_r^\\top]`.
Recurrent dropout replaces :math:`h` by :math:`h \\odot m_g` inside gate :math:`g` (not in the
final mix).

Example:
    >>> import jax
    >>> from rnncore.cells import GRU
    >>> [w.shape for w in GRU(units=3).init(jax.random.PRNGKey(0), input_dim=2)]
    [(2, 9), (3, 9), (2, 9)]
    >>> [w.shape for w in GRU(units=3, reset_after=False).init(jax.random.PRNGKey(0), input_dim=2)]
    [(2, 9), (3, 9), (9,)]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp

from .. import activations, initializers
from ._base import Cell, DropoutMasks, derivative, diag_times, gate_mask, masked_recurrent_kernel_t, matmul, project


class GRUParams(NamedTuple):
    """Keras weight order: ``kernel (F, 3u)``, ``recurrent_kernel (u, 3u)``, ``bias`` ``(2, 3u)``
    (row 0 input side, row 1 recurrent side) with ``reset_after=True``, ``(3u,)`` without, or None."""

    kernel: jax.Array
    recurrent_kernel: jax.Array
    bias: Optional[jax.Array] = None


class GRUState(NamedTuple):
    h: jax.Array


class GRUGates(NamedTuple):
    """Pre-activations and gate values of one step; ``u`` is the recurrent candidate term."""

    a_z: jax.Array
    a_r: jax.Array
    a_h: jax.Array
    z: jax.Array
    r: jax.Array
    hh: jax.Array
    u: jax.Array


@dataclass(frozen=True)
class GRU(Cell):
    """Keras ``GRUCell(units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
    reset_after=True, ...)``."""

    activation: Any = "tanh"
    recurrent_activation: Any = "sigmoid"
    use_bias: bool = True
    kernel_initializer: Any = "glorot_uniform"
    recurrent_initializer: Any = "orthogonal"
    bias_initializer: Any = "zeros"
    dropout: float = 0.0
    recurrent_dropout: float = 0.0
    reset_after: bool = True
    compute_dtype: Any = None

    gates = 3
    params_type = GRUParams
    state_type = GRUState

    def __post_init__(self):
        self._check()

    def init(self, key: jax.Array, input_dim: int, dtype=jnp.float32) -> GRUParams:
        kernel, recurrent, kb = self._init_weights(key, input_dim, dtype)
        bias = None
        if self.use_bias:
            shape = (2, 3 * self.units) if self.reset_after else (3 * self.units,)
            bias = initializers.get(self.bias_initializer)(kb, shape, dtype)
        return GRUParams(kernel, recurrent, bias)

    def recurrent_projection(
        self, params: GRUParams, h: jax.Array, dropout_masks: Optional[DropoutMasks] = None
    ) -> jax.Array:
        """:math:`hR` over all three gates with ``reset_after``, over ``z, r`` only without (there the
        candidate's :math:`(r \\odot h) R_h` needs ``r`` first, so it belongs to :meth:`core`)."""
        rec = None if dropout_masks is None else dropout_masks.recurrent
        if self.reset_after:
            return project(h, params.recurrent_kernel, rec, 3, self.compute_dtype)
        zr_masks = rec if rec is None or rec.shape[0] == 1 else rec[:2]
        return project(h, params.recurrent_kernel[:, : 2 * self.units], zr_masks, 2, self.compute_dtype)

    def gate_activations(self) -> dict[str, Any]:
        """``z, r`` (recurrent activation) and the candidate ``hh`` (activation)."""
        return {"z": self.recurrent_activation, "r": self.recurrent_activation, "hh": self.activation}

    def named_gates(self, gate_values: GRUGates) -> dict[str, jax.Array]:
        """The gates of :meth:`gate_activations` from :meth:`gate_values`."""
        return {"z": gate_values.z, "r": gate_values.r, "hh": gate_values.hh}

    def gate_values(
        self, params: GRUParams, state: GRUState, x: jax.Array, dropout_masks: Optional[DropoutMasks] = None
    ) -> GRUGates:
        """Every gate of one step."""
        return self._gates(
            params,
            self.input_projection(params, x, dropout_masks),
            self.recurrent_projection(params, state.h, dropout_masks),
            state,
            dropout_masks,
        )

    def _gates(self, params, xk, hr, state, dropout_masks) -> GRUGates:
        u, h = self.units, state.h
        rho, phi = self._rec_act(), self._act()
        if params.bias is not None:
            xk = xk + (params.bias[0] if self.reset_after else params.bias)
        x_z, x_r, x_h = jnp.split(xk, 3, axis=-1)
        if self.reset_after:
            if params.bias is not None:
                hr = hr + params.bias[1]
            h_z, h_r, uu = jnp.split(hr, 3, axis=-1)
        else:
            h_z, h_r = jnp.split(hr, 2, axis=-1)
        a_z, a_r = x_z + h_z, x_r + h_r
        z, r = rho(a_z), rho(a_r)
        if self.reset_after:
            a_h = x_h + r * uu
        else:
            rec = None if dropout_masks is None else dropout_masks.recurrent
            uu = h if rec is None else h * gate_mask(rec, 2)
            a_h = x_h + matmul(r * uu, params.recurrent_kernel[:, 2 * u :], self.compute_dtype)
        return GRUGates(a_z, a_r, a_h, z, r, phi(a_h), uu)

    def core(
        self,
        params: GRUParams,
        xk: jax.Array,
        hr: jax.Array,
        state: GRUState,
        dropout_masks: Optional[DropoutMasks] = None,
    ):
        r"""Gates, candidate, then Keras's mix :math:`h_t = z\,h_{t-1} + (1-z)\,\tilde h`."""
        gv = self._gates(params, xk, hr, state, dropout_masks)
        h = gv.z * state.h + (1.0 - gv.z) * gv.hh
        return GRUState(h), h

    def _from_output(self):
        """The derivatives of both activations as functions of their outputs, or ``None``."""
        fns = [activations.derivative_from_output(f) for f in (self._rec_act(), self._act())]
        return None if None in fns else fns

    @property
    def has_core_vjp(self) -> bool:
        """With ``reset_after`` (Keras's default) and activations whose derivative is a function of
        their output (sigmoid, tanh, relu, linear); otherwise the traced VJP of :meth:`core`."""
        return self.reset_after and self._from_output() is not None

    def core_keep(self, params: GRUParams, xk: jax.Array, hr: jax.Array, state: GRUState):
        """:meth:`core` and what its VJP starts from: ``(z, r, hh, u)``, each ``(B, u)``, kept as
        separate arrays (one concatenated array measured slower)."""
        gv = self._gates(params, xk, hr, state, None)
        h = gv.z * state.h + (1.0 - gv.z) * gv.hh
        return GRUState(h), h, (gv.z, gv.r, gv.hh, gv.u)

    def core_vjp(self, params: GRUParams, kept, state: GRUState, new: GRUState, d_new: GRUState):
        r"""Cotangents of ``xk``, of ``hr`` and of the previous state (``reset_after``), from the kept
        gate values (every derivative evaluated from its activation's output):

        .. math::
            \bar a_z = \bar h (h_{t-1} - \tilde h)\rho'(a_z), \quad
            \bar a_h = \bar h (1 - z) \varphi'(a_h), \quad
            \bar a_r = \bar a_h\, u\, \rho'(a_r), \\
            \overline{xk} = [\bar a_z, \bar a_r, \bar a_h], \quad
            \overline{hr} = [\bar a_z, \bar a_r, r\,\bar a_h], \quad
            \bar h_{t-1} = \bar h\, z.
        """
        d_rho, d_phi = self._from_output()
        z, r, hh, u = kept
        dh = d_new.h
        d_az = dh * (state.h - hh) * d_rho(z)
        d_ah = dh * (1.0 - z) * d_phi(hh)
        d_ar = d_ah * u * d_rho(r)
        d_xk = jnp.concatenate([d_az, d_ar, d_ah], axis=-1)
        d_hr = jnp.concatenate([d_az, d_ar, d_ah * r], axis=-1)
        return d_xk, d_hr, GRUState(dh * z)

    def hr_cotangent_rest(self, d_xk: jax.Array, d_hr: jax.Array) -> jax.Array:
        r"""What of ``d_hr`` the reverse scan keeps per step, ``(..., u)``: the candidate's block
        :math:`r\,\bar a_h`; the ``z`` and ``r`` blocks equal ``d_xk``'s (a (T, B, 2u) array less in
        a layer's gradient, fewer fresh pages per call: benchmarks/README.md, "Fresh memory")."""
        return d_hr[..., 2 * self.units :]

    def hr_cotangent(self, d_xk: jax.Array, rest: jax.Array) -> jax.Array:
        """``d_hr`` rebuilt from ``d_xk`` and :meth:`hr_cotangent_rest`."""
        return jnp.concatenate([d_xk[..., : 2 * self.units], rest], axis=-1)

    def core_params_vjp(self, params: GRUParams, d_xk: jax.Array, d_hr: jax.Array) -> GRUParams:
        """The input and recurrent biases' cotangents, summed over rows."""
        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        if params.bias is None:
            return zeros
        return zeros._replace(bias=jnp.stack([d_xk.sum(axis=0), d_hr.sum(axis=0)]))

    def jacobian(
        self, params: GRUParams, state: GRUState, x: jax.Array, dropout_masks: Optional[DropoutMasks] = None
    ) -> jax.Array:
        """Closed-form :math:`\\partial h_t/\\partial h_{t-1}`, ``(B, u, u)``."""
        gv = self.gate_values(params, state, x, dropout_masks)
        rho, phi, u, h = self._rec_act(), self._act(), self.units, state.h
        rec = dropout_masks.recurrent if dropout_masks else None
        r_z, r_r, r_h = (
            masked_recurrent_kernel_t(params.recurrent_kernel, slice(k * u, (k + 1) * u), gate_mask(rec, k))
            for k in range(3)
        )
        d_r = derivative(rho, gv.a_r)
        if self.reset_after:
            inner = diag_times(gv.r, r_h) + diag_times(gv.u * d_r, r_r)
        else:
            # R_h^T [diag(r m_h) + diag(h_h rho'(a_r)) R_r^T diag(m_r)]; r_h already carries diag(m_h).
            rh_t = params.recurrent_kernel[:, 2 * u :].T[None]
            inner = rh_t @ diag_times(gv.u * d_r, r_r) + r_h * gv.r[:, None, :]
        eye = jnp.eye(u, dtype=h.dtype)[None]
        return (
            eye * gv.z[:, None, :]
            + diag_times((h - gv.hh) * derivative(rho, gv.a_z), r_z)
            + diag_times((1.0 - gv.z) * derivative(phi, gv.a_h), inner)
        )
