"""What every cell shares: argument checks, Keras's variational dropout masks, gate projections.

A cell is a frozen dataclass of Keras constructor arguments. Subclasses define ``gates`` (how many
``units``-wide blocks the kernels hold), the params/state NamedTuples, ``init``, ``step`` (or
``core``), ``jacobian`` and their gates; this base gives them the state vector ``s_t``, the dropout
masks and the default of every optional member of the cell contract (:mod:`rnncore.cells.contract`),
so that what a cell lacks reads as a plain attribute.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, NamedTuple, Optional

import jax
import jax.numpy as jnp

from .. import activations, checks, initializers


class DropoutMasks(NamedTuple):
    """Keras's variational dropout masks for one sequence batch, reused at every step.

    ``inputs``: ``(n, B, F)`` or ``None``; ``recurrent``: ``(n, B, units)`` or ``None``. ``n`` is 1
    when one mask serves every gate (Keras ``implementation=2``), or the number of gates when each
    gate has its own (Keras ``implementation=1``, forced by ``recurrent_dropout > 0``). Entries are
    0 or :math:`1/(1-\\text{rate})` (inverted dropout).
    """

    inputs: Optional[jax.Array] = None
    recurrent: Optional[jax.Array] = None


#: ``positive_int(name, value)``: :func:`rnncore.checks.positive_int`, under the name this module
#: had it (``rnncore.cells._base.positive_int`` keeps working).
positive_int = checks.positive_int


def draw_mask(key: jax.Array, rate: float, shape: tuple[int, ...], dtype) -> jax.Array:
    """Inverted-dropout mask: each entry :math:`1/(1-\\text{rate})` with probability
    :math:`1-\\text{rate}`, else 0 (Keras ``backend.random.dropout`` applied to ones)."""
    keep = 1.0 - rate
    return jnp.where(jax.random.bernoulli(key, keep, shape), jnp.asarray(1.0 / keep, dtype), 0).astype(dtype)


def matmul(a: jax.Array, w: jax.Array, compute_dtype=None) -> jax.Array:
    """``a @ w``; with ``compute_dtype`` (e.g. ``"bfloat16"``) both operands are cast to it for
    the multiply and the product is accumulated and returned in ``w``'s dtype, so state and gates
    stay float32. Its VJP does the same: the cotangent is cast for the two transposed matmuls and
    both gradients come back accumulated in float32 (the cast itself passes gradients unchanged)."""
    return _cast_matmul(a, w, compute_dtype) if _casts(compute_dtype, w) else a @ w


def _casts(compute_dtype, w) -> bool:
    """Whether ``compute_dtype`` asks for operands other than ``w``'s own dtype."""
    return compute_dtype is not None and jnp.dtype(compute_dtype) != w.dtype


def _mixed_dot(a, b, compute_dtype, out_dtype):
    return jnp.matmul(a.astype(compute_dtype), b.astype(compute_dtype), preferred_element_type=out_dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _cast_matmul(a, w, compute_dtype):
    return _mixed_dot(a, w, compute_dtype, w.dtype)


def _cast_matmul_fwd(a, w, compute_dtype):
    return _cast_matmul(a, w, compute_dtype), (a, w)


def _cast_matmul_bwd(compute_dtype, residuals, ct):
    a, w = residuals
    return _mixed_dot(ct, w.T, compute_dtype, a.dtype), _mixed_dot(a.T, ct, compute_dtype, w.dtype)


_cast_matmul.defvjp(_cast_matmul_fwd, _cast_matmul_bwd)


def project(x: jax.Array, kernel: jax.Array, masks: Optional[jax.Array], gates: int, compute_dtype=None) -> jax.Array:
    """``x @ kernel`` for the fused gate kernel ``(F, gates*u)``, with dropout masks applied.

    One mask (``masks.shape[0] == 1``) multiplies ``x`` before the fused matmul; one mask per gate
    multiplies each gate's copy of ``x`` (one batched matmul over gates). ``compute_dtype``: as in
    :func:`matmul`.
    """
    if masks is None:
        return matmul(x, kernel, compute_dtype)
    if masks.shape[0] == 1:
        return matmul(x * masks[0], kernel, compute_dtype)
    b, f = x.shape
    u = kernel.shape[1] // gates
    if _casts(compute_dtype, kernel):
        per_gate = jnp.stack(
            [matmul(x * masks[g], kernel[:, g * u : (g + 1) * u], compute_dtype) for g in range(gates)], axis=1
        )
    else:
        per_gate = jnp.einsum("gbf,fgu->bgu", x[None] * masks, kernel.reshape(f, gates, u))
    return per_gate.reshape(b, gates * u)


def check_compute_dtype(value):
    """``None`` or the name of a floating dtype (``"bfloat16"``, ``"float16"``, ``"float32"``,
    ``"float64"``), else a ValueError naming ``compute_dtype``."""
    if value is None:
        return None
    try:
        dtype = jnp.dtype(value)
    except TypeError:
        dtype = None
    if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"compute_dtype={value!r}; expected None or a floating dtype such as 'bfloat16'.")
    return dtype.name


def masked_recurrent_kernel_t(recurrent_kernel: jax.Array, gate: slice, mask: Optional[jax.Array]):
    """:math:`R_g^\\top \\operatorname{diag}(m_g)`, batched: ``(B, u, u)`` or ``(1, u, u)``.

    ``mask`` is ``(B, u)`` or ``None``. This is the derivative of ``(h ⊙ m_g) @ R_g`` w.r.t. ``h``
    in column convention.
    """
    rt = recurrent_kernel[:, gate].T[None]
    return rt if mask is None else rt * mask[:, None, :]


def gate_mask(masks: Optional[jax.Array], g: int) -> Optional[jax.Array]:
    """The ``(B, ·)`` mask gate ``g`` uses, or ``None``."""
    if masks is None:
        return None
    return masks[0] if masks.shape[0] == 1 else masks[g]


def derivative(fn: Callable, a: jax.Array) -> jax.Array:
    """:math:`\\varphi'(a)` of an elementwise function, by a forward-mode product with ones."""
    return jax.jvp(fn, (a,), (jnp.ones_like(a),))[1]


def diag_times(d: jax.Array, m: jax.Array) -> jax.Array:
    """:math:`\\operatorname{diag}(d)\\,M` batched: ``d (B, n)``, ``m (B|1, n, k)``."""
    return d[:, :, None] * m


@dataclass(frozen=True)
class Cell:
    """Base of every cell: the Keras arguments shared by all, their checks, and dropout masks."""

    units: int
    gates: ClassVar[int] = 1
    #: Whether :meth:`core` reads ``x K`` and ``h R`` only through their sum, so that
    #: ``core(p, xk + hr, 0, s) == core(p, xk, hr, s)`` and a step may take both projections as one
    #: matmul ``[x, h] [K; R]`` (SimpleRNN and LSTM; not GRU, whose reset gate multiplies ``h R``).
    sums_projections: ClassVar[bool] = False
    #: The state's NamedTuple class (Keras's state order) and the params' (Keras's weight order).
    state_type: ClassVar[Any] = None
    params_type: ClassVar[Any] = None
    # Optional members of the contract (rnncore.cells.contract), None where a cell has none:
    #: The closed-form per-step Jacobian ``jacobian(params, state, x, dropout_masks=None) -> (B, S, S)``;
    #: without one, ``jax.jacfwd`` of :meth:`step` (:meth:`jacobian_fallback`).
    jacobian: ClassVar[Optional[Callable[..., jax.Array]]] = None
    #: ``hr_cotangent_rest(d_xk, d_hr)`` and ``hr_cotangent(d_xk_rows, rest_rows)`` for a core VJP whose
    #: ``d_hr`` repeats blocks of ``d_xk`` (GRU); see the core VJP below.
    hr_cotangent_rest: ClassVar[Optional[Callable[..., jax.Array]]] = None
    hr_cotangent: ClassVar[Optional[Callable[..., jax.Array]]] = None
    #: The dtype of the matmuls' operands (None: the params' own); a field of every cell here. (Not
    #: annotated: an annotation would make it a field here, ahead of the subclasses' own fields.)
    compute_dtype = None

    def _check(self) -> None:
        object.__setattr__(self, "units", checks.positive_int("units", self.units))
        for name in ("dropout", "recurrent_dropout"):  # a rate in [0, 1) (checks.rate would print [0.0, 1.0))
            checks.real(name, getattr(self, name), 0, 1, high_open=True)
        for name in ("activation", "recurrent_activation"):
            if hasattr(self, name):
                activations.get(getattr(self, name), name=name)
        for name in ("kernel_initializer", "recurrent_initializer", "bias_initializer"):
            initializers.get(getattr(self, name), name=name)
        object.__setattr__(self, "compute_dtype", check_compute_dtype(self.compute_dtype))

    # --- the state vector s_t -------------------------------------------------------------
    @property
    def state_size(self) -> int:
        """Size S of the state vector ``s_t``."""
        return self.units

    @property
    def output_size(self) -> int:
        return self.units

    def state_to_vector(self, state) -> jax.Array:
        """``s_t`` as one ``(B, S)`` array (LSTM: ``concat(h, c)``)."""
        return jnp.concatenate(tuple(state), axis=-1) if len(state) > 1 else state[0]

    def vector_to_state(self, vector: jax.Array):
        """Inverse of :meth:`state_to_vector`."""
        n = len(self.state_type._fields)
        return self.state_type(*jnp.split(vector, n, axis=-1))

    def output(self, state) -> jax.Array:
        """The output a state carries (``h``): what Keras repeats at a masked step."""
        return state[0]

    def initial_state(self, batch_size: int, dtype=jnp.float32):
        """Zeros, as Keras's ``get_initial_state``."""
        zeros = jnp.zeros((batch_size, self.units), dtype)
        return self.state_type(*([zeros] * len(self.state_type._fields)))

    # --- dropout ---------------------------------------------------------------------------
    def dropout_mask_counts(self) -> tuple[int, int]:
        """``(n_input_masks, n_recurrent_masks)`` Keras uses; 0 where that dropout is off.

        Gated cells use one input mask with the fused matmul, and one mask per gate on both sides
        once ``recurrent_dropout > 0`` (Keras switches to ``implementation=1``).
        """
        per_gate = self.gates if self.recurrent_dropout > 0 else 1
        return (per_gate if self.dropout > 0 else 0, per_gate if self.recurrent_dropout > 0 else 0)

    def dropout_masks(self, key: jax.Array, batch_size: int, input_dim: int, dtype=jnp.float32):
        """Draw this cell's :class:`DropoutMasks` (``None`` when no dropout is configured).

        The input masks come from ``fold_in(key, 0)``, the recurrent ones from ``fold_in(key, 1)``.
        """
        n_in, n_rec = self.dropout_mask_counts()
        if n_in == 0 and n_rec == 0:
            return None
        inputs = recurrent = None
        if n_in:
            inputs = draw_mask(jax.random.fold_in(key, 0), self.dropout, (n_in, batch_size, input_dim), dtype)
        if n_rec:
            recurrent = draw_mask(
                jax.random.fold_in(key, 1), self.recurrent_dropout, (n_rec, batch_size, self.units), dtype
            )
        return DropoutMasks(inputs, recurrent)

    # --- the step, split where the explicit backward pass needs it -------------------------------
    # step = core(input_projection(x), recurrent_projection(h), state). Both projections are linear
    # in their argument, so BPTT does only d_hr @ R^T per step and takes the weight and input
    # gradients as a few large matmuls over all steps at once.

    def input_projection(self, params, x: jax.Array, dropout_masks: Optional[DropoutMasks] = None) -> jax.Array:
        """:math:`(x \\odot m_x) K` for the fused gates, ``(N, gates·u)``; linear in ``x``."""
        return project(
            x, params.kernel, None if dropout_masks is None else dropout_masks.inputs, self.gates, self.compute_dtype
        )

    def recurrent_projection(self, params, h: jax.Array, dropout_masks: Optional[DropoutMasks] = None) -> jax.Array:
        """:math:`(h \\odot m_h) R` for the fused gates, ``(N, gates·u)``; linear in ``h``."""
        return project(
            h,
            params.recurrent_kernel,
            None if dropout_masks is None else dropout_masks.recurrent,
            self.gates,
            self.compute_dtype,
        )

    if TYPE_CHECKING:  # declared for the type checker only: each cell has these as dataclass fields

        @property
        def dropout(self) -> float: ...

        @property
        def recurrent_dropout(self) -> float: ...

    if TYPE_CHECKING:  # declared for the type checker only: a cell may define ``step`` alone, and
        # bptt tells a split cell by whether it has ``core`` at all (rnncore.cells.contract.SplitCell)
        def core(
            self, params, xk: jax.Array, hr: jax.Array, state, dropout_masks: Optional[DropoutMasks] = None
        ) -> tuple[Any, jax.Array]: ...

    def step(self, params, state, x: jax.Array, dropout_masks: Optional[DropoutMasks] = None):
        """One batched step: ``x (B, F)`` -> ``(new_state, output)``."""
        xk = self.input_projection(params, x, dropout_masks)
        hr = self.recurrent_projection(params, self.output(state), dropout_masks)
        return self.core(params, xk, hr, state, dropout_masks)

    # --- the core's hand-written VJP, for the layers' backward pass -----------------------------
    # A cell whose has_core_vjp is True defines
    #   core_keep(params, xk, hr, state) -> (new_state, y, kept): core plus what its VJP needs,
    #   core_vjp(params, kept, state, new_state, d_new) -> (d_xk, d_hr or None (= d_xk), d_state),
    #   core_params_vjp(params, d_xk_rows, d_hr_rows) -> the params cotangent of the core itself
    #     (inherited: a bias added to x K),
    # optionally hr_cotangent_rest(d_xk, d_hr) -> the part of d_hr not repeated in d_xk, all the reverse
    #   scan keeps of it per step, and hr_cotangent(d_xk_rows, rest_rows) -> d_hr rows again (GRU),
    # with y = output(new_state) and d_new including y's cotangent. The reverse scan then runs only
    # these elementwise ops and d_hr R^T per step, instead of a traced VJP of core that recomputes
    # h R (SimpleRNN, LSTM and GRU with reset_after have one: benchmarks/README.md).

    @property
    def has_core_vjp(self) -> bool:
        """Whether this cell's core has a hand-written VJP (:meth:`core_vjp`); false by default."""
        return False

    def core_params_vjp(self, params, d_xk: jax.Array, d_hr: jax.Array):
        """The params cotangent of the core itself from ``d_xk``, ``d_hr`` ``(rows, gates·u)``: a bias
        added to ``x K`` gets the row sum of ``d_xk``; the kernels enter only through the
        projections. A cell whose core uses its params otherwise (GRU's two biases) overrides it."""
        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        return zeros if params.bias is None else zeros._replace(bias=d_xk.sum(axis=0))

    # --- the gates, for analysis and pictures ------------------------------------------------
    def gate_activations(self) -> dict[str, Any]:
        """``{gate name: activation identifier}`` in display order: each gate :meth:`named_gates`
        names and the activation whose output it is (what decides how it saturates). Empty for a
        cell that names no gates (this default)."""
        return {}

    def named_gates(self, gate_values) -> dict[str, jax.Array]:
        """``{gate name: values}`` from what :meth:`gate_values` returns (any leading shape), with the
        names of :meth:`gate_activations`. Empty by default."""
        return {}

    # --- helpers for subclasses -------------------------------------------------------------
    def _act(self):
        return activations.get(self.activation)

    def _rec_act(self):
        return activations.get(self.recurrent_activation)

    def _init_weights(self, key, input_dim, dtype):
        input_dim = checks.positive_int("input_dim", input_dim)
        k1, k2, k3 = jax.random.split(key, 3)
        g, u = self.gates, self.units
        kernel = initializers.get(self.kernel_initializer)(k1, (input_dim, g * u), dtype)
        recurrent = initializers.get(self.recurrent_initializer)(k2, (u, g * u), dtype)
        return kernel, recurrent, k3

    def jacobian_fallback(self, params, state, x, dropout_masks=None) -> jax.Array:
        """``∂s_t/∂s_{t-1}`` by ``jax.jacfwd`` of :meth:`step`, ``(B, S, S)``; the oracle for the
        closed forms and the fallback for a user's own cell."""

        def one(s_vec, x_row, masks_row):
            st = self.vector_to_state(s_vec[None])
            new, _ = self.step(params, st, x_row[None], masks_row)
            return self.state_to_vector(new)[0]

        s = self.state_to_vector(state)
        if dropout_masks is None:
            return jax.vmap(lambda sv, xr: jax.jacfwd(one)(sv, xr, None))(s, x)
        rows = jax.tree_util.tree_map(lambda m: jnp.swapaxes(m, 0, 1)[:, :, None], dropout_masks)
        return jax.vmap(lambda sv, xr, mr: jax.jacfwd(one)(sv, xr, mr))(s, x, rows)
