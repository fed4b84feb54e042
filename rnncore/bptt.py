"""Time: the forward scan that keeps every state, and backpropagation through time written out.

Conventions: the API is batch first, ``xs (B, T, F)``; scans run time-major
inside. ``s_0`` is the initial state and ``s_t`` the state after consuming the t-th input *in
processing order* (with ``go_backwards`` the first input consumed is ``xs[:, -1]``). The per-step
Jacobian :math:`J_t = \\partial s_t/\\partial s_{t-1}` is stored at index ``t - 1``.

Masking is Keras's: where ``mask[b, t]`` is False the state is carried unchanged
(:math:`s_t = s_{t-1}`, so :math:`J_t = I`) and the output repeats the previous output, or is
zero with ``zero_output_for_mask``.

The backward pass (:func:`backward`) is the reverse scan a hand-written RNN spells out as its
``dhnext`` loop, made exact for every cell: with :math:`\\bar s_t = \\partial L/\\partial s_t`,

.. math::
    \\bar s_{t-1} = J_t^\\top \\bar s_t + \\Big(\\frac{\\partial y_t}{\\partial s_{t-1}}\\Big)^\\top \\bar y_t,

evaluated as one vector–Jacobian product of the step per time step (Werbos 1990; Williams & Zipser
1995 for truncation). Recurrent layers use it as their VJP, so training runs through it.

This module is time only, one layer at a time; the chain through the layers of a stacked model
(:func:`rnncore.depth.model_state_gradients`, :func:`rnncore.depth.cross_layer_jacobians`) is
:mod:`rnncore.depth`, above the layers.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp

from . import checks
from .cells import Cell, matmul
from .cells.contract import optional_member

# Steps per iteration of the layers' forward scan when nothing differentiates it (inference), used
# where a step's matmuls are large enough (batch * units >= UNROLL_MIN_WORK) for XLA to overlap one
# step's x K with the previous step's h R chain: measured 1.4-1.7x faster on the B=128, H=256 rows,
# neutral at B=32, H=128, slower at B=16, H=64 (T=1000); +0.1 s compile. The scans that keep
# residuals for the reverse scan, and the reverse scan itself, measured no gain or a loss and run one
# step per iteration (benchmarks/README.md, "Loop structure"). Unrolled, XLA may fuse across steps:
# results can differ in the last bit.
SCAN_UNROLL = 4
UNROLL_MIN_WORK = 4096


class Trajectory(NamedTuple):
    """What :func:`forward` keeps, in processing order.

    ``outputs (B, T, units)``: the layer's per-step outputs (masking applied);
    ``states``: the cell's state NamedTuple with leaves ``(B, T + 1, units)`` holding
    ``s_0 .. s_T``; ``final_state``: ``s_T``; ``gates``: with ``keep_gates=True``, the cell's
    ``gate_values`` NamedTuple of every step, leaves ``(B, T, ·)`` (e.g. ``LSTMGates(z, i, f, g, o, c)``).
    """

    outputs: jax.Array
    states: Any
    final_state: Any
    gates: Any = None


class Gradients(NamedTuple):
    """What :func:`backward` returns, for :math:`L = \\sum_t \\langle y_t, \\bar y_t\\rangle
    + \\langle s_T, \\bar s_T\\rangle`.

    ``params``: :math:`\\partial L/\\partial\\theta` (the cell's params NamedTuple);
    ``inputs``: :math:`\\partial L/\\partial x`, ``(B, T, F)`` in input order;
    ``initial_state``: :math:`\\partial L/\\partial s_0` (the state NamedTuple);
    ``states``: ``(B, T, S)``, ``states[:, t-1]`` = :math:`\\partial L/\\partial s_t` through every
    later step (processing order; for LSTM the ``h`` part, then the ``c`` part): the ``dhnext`` of a
    hand-written BPTT loop, without step t's own output term :math:`\\bar y_t` (add it for the
    total, which :func:`rnncore.depth.model_state_gradients` returns).
    """

    params: Any
    inputs: jax.Array
    initial_state: Any
    states: jax.Array


def time_major(a: jax.Array, go_backwards: bool) -> jax.Array:
    """``(B, T, ...)`` -> ``(T, B, ...)`` in processing order."""
    a = jnp.swapaxes(a, 0, 1)
    return a[::-1] if go_backwards else a


def batch_first(a: jax.Array, go_backwards: bool) -> jax.Array:
    """Inverse of :func:`time_major`."""
    return jnp.swapaxes(a[::-1] if go_backwards else a, 0, 1)


def _tree_where(keep, new, old):
    return jax.tree_util.tree_map(lambda n, o: jnp.where(keep, n, o), new, old)


def _masked_output(cell, state, y, seen, m, zero_prev: bool, unroll: bool):
    """Keras: a masked step repeats the previous output, i.e. ``h`` of the carried state (so its
    gradient flows into that state), or zeros with ``zero_output_for_mask``; Keras's unrolled loop
    repeats zeros until the first real step."""
    if zero_prev:
        prev = jnp.zeros_like(y)
    else:
        prev = cell.output(state)
        if unroll:
            prev = jnp.where(seen[:, None], prev, 0)
    return jnp.where(m[:, None], y, prev)


def _apply_mask(cell, state, new, y, seen, m, zero_prev: bool, unroll: bool):
    """One step's ``(new, y)`` with Keras's masking applied (unchanged where ``m`` is None)."""
    if m is None:
        return new, y
    return _tree_where(m[:, None], new, state), _masked_output(cell, state, y, seen, m, zero_prev, unroll)


def seen_before(mask_t: Optional[jax.Array]) -> Optional[jax.Array]:
    """``(T, B)`` for a time-major mask ``mask_t (T, B)``: whether a real step came before step t
    (Keras's unrolled loop outputs zeros until the first real step); None without a mask.

    Example:
        >>> import jax.numpy as jnp
        >>> from rnncore import bptt
        >>> bptt.seen_before(jnp.array([[False], [True], [False]]))[:, 0].tolist()
        [False, False, True]
    """
    if mask_t is None:
        return None
    return (jnp.cumsum(mask_t.astype(jnp.int32), axis=0) - mask_t.astype(jnp.int32)) > 0


def _joint_kernel(cell, params, dropout_masks):
    """``[K; R]`` ``(F + u, G·u)``, stacked once before a forward scan, where each step may take its
    two projections as one matmul, ``[x_t, h_{t-1}] [K; R] = x_t K + h_{t-1} R``: for a cell whose
    core reads them only as their sum (``sums_projections``: SimpleRNN, LSTM) without dropout
    masks; else None. One matmul fewer per step: on one core measured 1.04-1.08x on the forward at
    B=16, H=64, T=1000, where a step takes a few microseconds and every operation counts, and
    1.00-1.04x on everything else (benchmarks/README.md, "One matmul per step"). Results differ from
    two matmuls in the last bits (another summation order)."""
    if not optional_member(cell, "sums_projections") or dropout_masks is not None:
        return None
    return jnp.concatenate([params.kernel, params.recurrent_kernel], axis=0)


def _projections(cell, params, x, state, dropout_masks, joint):
    """``(xk, hr)`` for ``cell.core``: ``(x K, h R)``, or with a joint kernel ``([x, h] [K; R], 0)``."""
    h = cell.output(state)
    if joint is None:
        return cell.input_projection(params, x, dropout_masks), cell.recurrent_projection(params, h, dropout_masks)
    xh = jnp.concatenate([x, h], axis=-1)
    return matmul(xh, joint, cell.compute_dtype), jnp.zeros((), joint.dtype)


def _step(cell, params, state, x, dropout_masks, joint):
    """``cell.step``, or with a joint kernel its core over the one matmul ``[x, h] [K; R]``."""
    if joint is None:
        return cell.step(params, state, x, dropout_masks)
    return cell.core(params, *_projections(cell, params, x, state, dropout_masks, joint), state)


def _scan(
    cell,
    params,
    xs_t,
    s0,
    mask_t,
    dropout_masks,
    zero_prev,
    unroll,
    keep_gates=False,
    keep_core=False,
    prev_states=False,
    outputs=True,
):
    """The time-major forward scan: ``(ys_t (T, B, u), states_t (leaves (T+1, B, ·)))``, then the
    per-step gate values with ``keep_gates``, then with ``keep_core`` what ``cell.core_keep`` keeps
    for its hand-written VJP (the step then taken through the cell's split ``core(x K, h R, s)``,
    which is what ``step`` computes).

    With ``prev_states`` the states come as ``prev_t, final``: ``prev_t`` (leaves (T, B, ·)) holds
    the state each step starts from, s_0 … s_{T-1}, written by the scan itself, so that no
    (T+1)-long copy is made and ``prev_t``'s rows line up with the steps' inputs and gradients
    for the weight-gradient matmuls (:func:`_reverse`). Without ``outputs`` the scan writes no
    ``ys_t`` (returned as None): where each output is the output its state carries, the states hold
    them already (:func:`_outputs_from_states`)."""
    seen_t = seen_before(mask_t)
    joint = _joint_kernel(cell, params, dropout_masks)

    def body(state, inp):
        x, m, seen = inp
        kept = None
        if keep_core:
            new, y, kept = cell.core_keep(params, *_projections(cell, params, x, state, dropout_masks, joint), state)
        else:
            new, y = _step(cell, params, state, x, dropout_masks, joint)
        new, y = _apply_mask(cell, state, new, y, seen, m, zero_prev, unroll)
        gates = cell.gate_values(params, state, x, dropout_masks) if keep_gates else None
        return new, (y if outputs else None, state if prev_states else new, gates, kept)

    final, (ys, ss, gates, kept) = jax.lax.scan(body, s0, (xs_t, mask_t, seen_t))
    if prev_states:
        states = (ss, final)
    else:
        states = (jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a[None], b], axis=0), s0, ss),)
    return (ys,) + states + ((gates,) if keep_gates else ()) + ((kept,) if keep_core else ())


def _outputs_only(cell, params, xs_t, s0, mask_t, dropout_masks, zero_prev, unroll):
    """``(ys_t, final_state)`` of :func:`_scan` keeping nothing else, ``SCAN_UNROLL`` steps per
    iteration where the step is large enough: the layers' forward pass when nothing differentiates it."""
    seen_t = seen_before(mask_t)
    unroll_steps = SCAN_UNROLL if xs_t.shape[1] * cell.output_size >= UNROLL_MIN_WORK else 1
    joint = _joint_kernel(cell, params, dropout_masks)

    def body(state, inp):
        x, m, seen = inp
        new, y = _step(cell, params, state, x, dropout_masks, joint)
        return _apply_mask(cell, state, new, y, seen, m, zero_prev, unroll)

    final, ys = jax.lax.scan(body, s0, (xs_t, mask_t, seen_t), unroll=unroll_steps)
    return ys, final


def _as_state(cell, initial_state):
    """A plain tuple or list of arrays becomes the cell's state NamedTuple (the scan's carry must
    keep one pytree structure)."""
    state_type = getattr(cell, "state_type", None)
    if state_type is None or isinstance(initial_state, state_type) or not isinstance(initial_state, (tuple, list)):
        return initial_state
    fields = state_type._fields
    if len(initial_state) != len(fields):
        raise ValueError(
            f"initial_state for {type(cell).__name__} must hold {len(fields)} array(s) "
            f"({', '.join(fields)}); got {len(initial_state)}."
        )
    return state_type(*initial_state)


def _prepare(cell, xs, initial_state, mask, go_backwards):
    if getattr(xs, "ndim", None) != 3:
        raise ValueError(f"xs must have shape (batch, time, features); got shape {tuple(jnp.shape(xs))}.")
    if xs.shape[1] == 0:
        raise ValueError(f"xs has T=0 time steps (shape {tuple(xs.shape)}); a sequence needs at least one step.")
    s0 = cell.initial_state(xs.shape[0], xs.dtype) if initial_state is None else _as_state(cell, initial_state)
    mask_t = None if mask is None else time_major(jnp.asarray(mask, bool), go_backwards)
    return time_major(xs, go_backwards), s0, mask_t


def forward(
    cell,
    params,
    xs: jax.Array,
    initial_state=None,
    mask: Optional[jax.Array] = None,
    *,
    dropout_masks=None,
    go_backwards: bool = False,
    zero_output_for_mask: bool = False,
    unroll: bool = False,
    keep_gates: bool = False,
) -> Trajectory:
    """Run ``cell`` over ``xs (B, T, F)`` with one ``lax.scan``, keeping every state.

    Args:
        cell: a cell from :mod:`rnncore.cells` (or any object with the same ``step``).
        params: the cell's params NamedTuple.
        xs: inputs ``(B, T, F)``.
        initial_state: the cell's state NamedTuple, leaves ``(B, units)``; zeros if None.
        mask: ``(B, T)`` booleans, True where a step is real.
        dropout_masks: the cell's :class:`~rnncore.cells.DropoutMasks`, reused at every step.
        go_backwards: consume ``xs`` from the last step to the first (outputs stay in processing
            order, as Keras returns them).
        zero_output_for_mask: masked steps output zeros instead of the previous output.
        unroll: Keras's unrolled-loop masking: the output before the first real step counts as
            zeros (not ``h_0``) and ``zero_output_for_mask`` is ignored. States are unaffected.
        keep_gates: also keep every step's gate values (``cell.gate_values``; at a masked step,
            the values the step computed before its result was discarded).

    Returns:
        A :class:`Trajectory`.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from rnncore import bptt, cells
        >>> cell = cells.GRU(4)
        >>> p = cell.init(jax.random.PRNGKey(0), input_dim=3)
        >>> tr = bptt.forward(cell, p, jnp.ones((2, 5, 3)))
        >>> tr.outputs.shape, tr.states.h.shape
        ((2, 5, 4), (2, 6, 4))
    """
    xs_t, s0, mask_t = _prepare(cell, xs, initial_state, mask, go_backwards)
    out = _scan(cell, params, xs_t, s0, mask_t, dropout_masks, zero_output_for_mask and not unroll, unroll, keep_gates)
    ys, states_t = out[:2]
    final = jax.tree_util.tree_map(lambda s: s[-1], states_t)
    states = jax.tree_util.tree_map(lambda s: jnp.swapaxes(s, 0, 1), states_t)
    gates = jax.tree_util.tree_map(lambda g: jnp.swapaxes(g, 0, 1), out[2]) if keep_gates else None
    return Trajectory(jnp.swapaxes(ys, 0, 1), states, final, gates)


# --- the explicit backward pass -------------------------------------------------------------------


def _tree_add(a, b):
    return jax.tree_util.tree_map(lambda u, v: u + v, a, b)


def _tile_masks(dropout_masks, steps: int):
    """Dropout masks ``(n, B, ·)`` repeated for the ``T·B`` rows of a time-major flattening."""
    if dropout_masks is None:
        return None
    return jax.tree_util.tree_map(lambda m: jnp.tile(m, (1, steps, 1)), dropout_masks)


def check_truncate(truncate: Optional[int]) -> Optional[int]:
    """``truncate_gradient`` as None (full BPTT) or a Python ``int`` >= 1 (the truncation length
    k2), else a ``ValueError`` naming it.

    Example:
        >>> from rnncore import bptt
        >>> bptt.check_truncate(None), bptt.check_truncate(5)
        (None, 5)
    """
    if truncate is None:
        return None
    if not checks.is_integer(truncate) or truncate < 1:
        raise ValueError(f"truncate_gradient={truncate!r}; expected None (full BPTT) or a positive integer k2.")
    return int(truncate)


class _StepOnly(NamedTuple):
    """A cell that defines only ``step`` (a user's own), seen through the split the reverse scan
    uses: the input projection is the identity, the recurrent one empty, and ``core`` the whole
    step, so each reverse step is one VJP of ``step``."""

    cell: Any

    def input_projection(self, params, x, dropout_masks=None):
        return x

    def recurrent_projection(self, params, h, dropout_masks=None):
        return h[..., :0]

    def core(self, params, xk, hr, state, dropout_masks=None):
        return self.cell.step(params, state, xk, dropout_masks)

    def __getattr__(self, name):
        return getattr(self.cell, name)


def _split(cell):
    has_split = all(hasattr(cell, m) for m in ("input_projection", "recurrent_projection", "core"))
    return cell if has_split else _StepOnly(cell)


def _cut(ds, t, truncate):
    """With ``truncate_gradient=k2`` the chain is cut at s_k2, s_2k2, ...: dL/ds_{t-1} gets no share
    of step t."""
    if truncate is None:
        return ds
    cut = jnp.logical_and((t - 1) % truncate == 0, t > 1)
    return jax.tree_util.tree_map(lambda a: jnp.where(cut, jnp.zeros_like(a), a), ds)


def _through_mask(cell, s_prev, g, dy, seen, m, zero_prev, unroll):
    """Cotangents of the core's ``(new, y)`` and the direct share of ``s_prev`` (``None`` unmasked),
    through Keras's masking of one step."""
    if m is None:
        return g, dy, None

    def masked(core_new, core_y, s):
        return _apply_mask(cell, s, core_new, core_y, seen, m, zero_prev, unroll)

    _, vjp = jax.vjp(masked, s_prev, cell.output(s_prev), s_prev)  # linear: the primals only fix shapes
    return vjp((g, dy))


def _reverse(  # noqa: C901 (one loop body per masking mode and VJP kind, kept together for XLA's sake)
    cell,
    params,
    xs_t,
    mask_t,
    prev_t,
    final,
    dys_t,
    d_final,
    dropout_masks,
    zero_prev,
    unroll,
    truncate,
    core_kept=None,
    state_gradients=True,
):
    """The reverse scan of per-step vector–Jacobian products, time-major, in processing order.

    Per step only the recurrent product ``d_hr @ R^T`` is a matmul; the weight and input gradients
    of both projections are a few large matmuls over all ``T·B`` rows after the loop. With
    ``core_kept = (kept_t,)`` (what the forward pass's ``cell.core_keep`` kept) each step runs the
    cell's hand-written ``core_vjp``; otherwise a traced VJP of ``core``, with the input projection
    recomputed for all steps at once before the loop and ``h R`` recomputed each step. The states
    come as :func:`_scan` keeps them with ``prev_states``: ``prev_t`` (s_0 … s_{T-1}) and ``final``;
    each step reads its own by index (no sliced copies of the trajectory), and ``prev_t``'s outputs
    are the rows of the recurrent kernel's gradient as they are.
    Returns ``(d_params, d_xs_t, d_s0, d_states_t)``; ``d_states_t`` is None without
    ``state_gradients``.
    """
    cell = _split(cell)
    steps, batch = xs_t.shape[0], xs_t.shape[1]
    rows = steps * batch
    tiled = _tile_masks(dropout_masks, steps)
    x_rows = xs_t.reshape(rows, -1)
    seen_t = seen_before(mask_t)
    t_index = jnp.arange(1, steps + 1)

    def state_at(t):
        """s_t, 0 <= t <= T."""
        before = jax.tree_util.tree_map(
            lambda s: jax.lax.dynamic_index_in_dim(s, jnp.minimum(t, steps - 1), keepdims=False), prev_t
        )
        return _tree_where(t == steps, final, before)

    def emitted(g):
        return cell.state_to_vector(g) if state_gradients else None

    def rp_transpose(h_prev, d_hr):
        _, rp_vjp = jax.vjp(lambda h: cell.recurrent_projection(params, h, dropout_masks), h_prev)
        return rp_vjp(d_hr)[0]

    def add_to_output(ds, d):
        if isinstance(ds[0], tuple):  # a state of states (StackedCells): d goes where output() reads
            _, out_vjp = jax.vjp(cell.output, ds)  # a selection: the primal only fixes the structure
            return _tree_add(ds, out_vjp(d)[0])
        return ds._replace(**{ds._fields[0]: ds[0] + d})

    if core_kept is not None:

        def step(g, t, kept, seen, m, dy):
            s_prev, new = state_at(t - 1), state_at(t)
            d_new, d_y, d_direct = _through_mask(cell, s_prev, g, dy, seen, m, zero_prev, unroll)
            dxk, dhr, ds = cell.core_vjp(params, kept, s_prev, new, add_to_output(d_new, d_y))
            ds = add_to_output(ds, rp_transpose(cell.output(s_prev), dxk if dhr is None else dhr))
            if d_direct is not None:
                ds = _tree_add(ds, d_direct)
            return _cut(ds, t, truncate), dxk, dhr

        kept_t = core_kept[0]
        # A cell whose d_hr repeats blocks of d_xk (GRU: all but the candidate's) keeps only the rest
        # of it per step and rebuilds the rows after the loop, when its kept values are dead.
        rest = optional_member(cell, "hr_cotangent_rest")

        def keep_hr(dxk, dhr):
            return dhr if dhr is None or rest is None else rest(dxk, dhr)

        xk_shape = jax.eval_shape(lambda: cell.input_projection(params, xs_t[0], dropout_masks)).shape

        def fits(a):
            return isinstance(a, jax.Array) and a.shape[1:] == xk_shape and a.dtype == dys_t.dtype

        reuse_kept = fits(kept_t)
        if reuse_kept or (mask_t is None and fits(dys_t)):
            # Each step reads its kept values (LSTM: z) or, failing that, its output cotangent
            # (SimpleRNN, unmasked) exactly once: its dL/d(x K) overwrites them in place, saving a
            # (T, B, G·H) buffer that would be fresh memory (page faults) on every call. Masked, the
            # output cotangent also reaches the previous state directly, after the step's matmul,
            # and XLA would copy the whole trajectory every step to keep it for that late read
            # (tests/test_bptt.py checks the compiled loops for such copies).
            def body(carry, inp):
                g, buf = carry
                t, other, seen, m = inp
                read = jax.lax.dynamic_index_in_dim(buf, t - 1, keepdims=False)
                kept, dy = (read, other) if reuse_kept else (other, read)
                ds, dxk, dhr = step(g, t, kept, seen, m, dy)
                return (ds, jax.lax.dynamic_update_index_in_dim(buf, dxk, t - 1, 0)), (keep_hr(dxk, dhr), emitted(g))

            buf, other = (kept_t, dys_t) if reuse_kept else (dys_t, kept_t)
            (d_s0, dxk_t), (dhr_t, d_states_t) = jax.lax.scan(
                body, (d_final, buf), (t_index, other, seen_t, mask_t), reverse=True
            )
        else:

            def body(g, inp):
                ds, dxk, dhr = step(g, *inp)
                return ds, (dxk, keep_hr(dxk, dhr), emitted(g))

            d_s0, (dxk_t, dhr_t, d_states_t) = jax.lax.scan(
                body, d_final, (t_index, kept_t, seen_t, mask_t, dys_t), reverse=True
            )
        if dhr_t is None:
            dhr_t = dxk_t
        elif rest is not None:
            dhr_t = cell.hr_cotangent(dxk_t, dhr_t)
        d_core = cell.core_params_vjp(params, dxk_t.reshape(rows, -1), dhr_t.reshape(rows, -1))
    else:
        xk_t = cell.input_projection(params, x_rows, tiled).reshape(steps, batch, -1)

        def masked_core(p, xk, hr, state, seen, m):
            new, y = cell.core(p, xk, hr, state, dropout_masks)
            return _apply_mask(cell, state, new, y, seen, m, zero_prev, unroll)

        def body(carry, inp):
            g, d_core = carry  # g = dL/ds_t through later steps
            t, xk, seen, m, dy = inp
            s_prev = state_at(t - 1)
            h_prev = cell.output(s_prev)
            hr = cell.recurrent_projection(params, h_prev, dropout_masks)
            _, core_vjp = jax.vjp(lambda p, a, b, s: masked_core(p, a, b, s, seen, m), params, xk, hr, s_prev)
            dp, dxk, dhr, ds = core_vjp((g, dy))
            ds = add_to_output(ds, rp_transpose(h_prev, dhr))
            return (_cut(ds, t, truncate), _tree_add(d_core, dp)), (dxk, dhr, emitted(g))

        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        (d_s0, d_core), (dxk_t, dhr_t, d_states_t) = jax.lax.scan(
            body, (d_final, zeros), (t_index, xk_t, seen_t, mask_t, dys_t), reverse=True
        )

    h_rows = cell.output(prev_t).reshape(rows, -1)
    _, ip_vjp = jax.vjp(lambda p, x: cell.input_projection(p, x, tiled), params, x_rows)
    d_ip, dx = ip_vjp(dxk_t.reshape(rows, -1))
    _, rp_vjp = jax.vjp(lambda p: cell.recurrent_projection(p, h_rows, tiled), params)
    (d_rp,) = rp_vjp(dhr_t.reshape(rows, -1))
    d_params = _tree_add(_tree_add(d_core, d_ip), d_rp)
    return d_params, dx.reshape(xs_t.shape), d_s0, d_states_t


def backward(
    cell,
    params,
    xs: jax.Array,
    d_outputs: jax.Array,
    initial_state=None,
    mask: Optional[jax.Array] = None,
    *,
    d_final_state=None,
    dropout_masks=None,
    go_backwards: bool = False,
    zero_output_for_mask: bool = False,
    unroll: bool = False,
    truncate_gradient: Optional[int] = None,
) -> Gradients:
    """Backpropagation through time as an explicit reverse ``lax.scan``.

    For :math:`L = \\sum_t \\langle y_t, \\bar y_t \\rangle + \\langle s_T, \\bar s_T \\rangle`, with
    ``d_outputs`` :math:`= \\bar y` ``(B, T, units)`` in processing order (as :func:`forward`
    returns the outputs) and ``d_final_state`` :math:`= \\bar s_T` (zeros if None).

    ``truncate_gradient=k2`` cuts the chain every k2 steps: :math:`s_{k_2}, s_{2k_2}, \\ldots` are treated
    as constants by the steps that consume them (as ``jax.lax.stop_gradient`` would), so no
    gradient crosses more than k2 steps back from a cut. ``k2 >= T`` is full BPTT. At a cut
    state ``Gradients.states`` is therefore zero: the only step that reads it is cut.

    Returns:
        :class:`Gradients` ``(params, inputs, initial_state, states)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from rnncore import bptt, cells
        >>> cell = cells.LSTM(3)
        >>> p = cell.init(jax.random.PRNGKey(0), input_dim=2)
        >>> xs = jnp.ones((4, 6, 2))
        >>> g = bptt.backward(cell, p, xs, jnp.ones((4, 6, 3)))
        >>> g.inputs.shape, g.states.shape, g.params.kernel.shape
        ((4, 6, 2), (4, 6, 6), (2, 12))
    """
    truncate = check_truncate(truncate_gradient)
    xs_t, s0, mask_t = _prepare(cell, xs, initial_state, mask, go_backwards)
    zero_prev = zero_output_for_mask and not unroll
    _, prev_t, final = _scan(cell, params, xs_t, s0, mask_t, dropout_masks, zero_prev, unroll, prev_states=True)
    d_final = jax.tree_util.tree_map(jnp.zeros_like, s0) if d_final_state is None else cell.state_type(*d_final_state)
    want = (xs.shape[0], xs.shape[1], cell.output_size)
    if tuple(jnp.shape(d_outputs)) != want:
        raise ValueError(
            f"d_outputs must have shape (batch, time, units) = {want}; got shape {tuple(jnp.shape(d_outputs))}."
        )
    dys_t = jnp.swapaxes(jnp.asarray(d_outputs, xs.dtype), 0, 1)
    d_params, dx_t, d_s0, d_states_t = _reverse(
        cell, params, xs_t, mask_t, prev_t, final, dys_t, d_final, dropout_masks, zero_prev, unroll, truncate
    )
    return Gradients(d_params, batch_first(dx_t, go_backwards), d_s0, jnp.swapaxes(d_states_t, 0, 1))


# --- the layers' scan, differentiated by the explicit backward pass -------------------------------


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def scan_with_explicit_vjp(cell, flags, params, xs, s0, mask, dropout_masks):
    """``(outputs (B, T, u), final_state)`` of :func:`forward`, whose VJP is :func:`backward`'s
    reverse scan. ``flags = (go_backwards, zero_output_for_mask, unroll, truncate)``. Undifferentiated,
    it keeps no states (:func:`_outputs_only`)."""
    go_backwards, zero_output_for_mask, unroll, _ = flags
    xs_t, s0, mask_t = _prepare(cell, xs, s0, mask, go_backwards)
    ys, final = _outputs_only(
        cell, params, xs_t, s0, mask_t, dropout_masks, zero_output_for_mask and not unroll, unroll
    )
    return jnp.swapaxes(ys, 0, 1), final


def _has_core_vjp(cell) -> bool:
    """Whether the layers' reverse scan runs the cell's hand-written core VJP (from what the forward
    pass keeps) instead of a traced VJP of ``core`` (benchmarks/README.md, "The reverse step")."""
    return _split(cell) is cell and optional_member(cell, "has_core_vjp")


def _outputs_from_states(cell, prev_t, final):
    """``(B, T, u)``: the output each step's new state carries, ``output(s_1) … output(s_T)``, read
    from the states each step starts from and the final state, batch first, in one pass."""
    ys_t = jnp.concatenate([cell.output(prev_t)[1:], cell.output(final)[None]], axis=0)
    return jnp.swapaxes(ys_t, 0, 1)


def _layer_forward(cell, flags, params, xs, s0, mask, dropout_masks):
    go_backwards, zero_output_for_mask, unroll, _ = flags
    xs_t, s0, mask_t = _prepare(cell, xs, s0, mask, go_backwards)
    zero_prev = zero_output_for_mask and not unroll
    keep = _has_core_vjp(cell)
    # A hand-written core emits y = output(new state); Keras's masking repeats output(state), which
    # is the output of the state carried. So the outputs are already in the states kept for the
    # reverse scan, except where a masked step emits zeros (zero_output_for_mask, and the unrolled
    # masking before the first real step): there the scan writes them, as a (T, B, u) array more.
    derive = keep and (mask_t is None or not (zero_output_for_mask or unroll))
    ys, prev_t, final, *kept = _scan(
        cell,
        params,
        xs_t,
        s0,
        mask_t,
        dropout_masks,
        zero_prev,
        unroll,
        keep_core=keep,
        prev_states=True,
        outputs=not derive,
    )
    out = _outputs_from_states(cell, prev_t, final) if derive else jnp.swapaxes(ys, 0, 1)
    return (out, final), (params, xs_t, prev_t, final, mask_t, dropout_masks, tuple(kept))


def _layer_bwd(cell, flags, residuals, cotangents):
    go_backwards, zero_output_for_mask, unroll, truncate = flags
    params, xs_t, prev_t, final, mask_t, dropout_masks, kept = residuals
    d_ys, d_final = cotangents
    d_params, dx_t, d_s0, _ = _reverse(
        cell,
        params,
        xs_t,
        mask_t,
        prev_t,
        final,
        jnp.swapaxes(d_ys, 0, 1),
        d_final,
        dropout_masks,
        zero_output_for_mask and not unroll,
        unroll,
        truncate,
        kept if _has_core_vjp(cell) else None,
        state_gradients=False,
    )
    return d_params, batch_first(dx_t, go_backwards), d_s0, None, None


scan_with_explicit_vjp.defvjp(_layer_forward, _layer_bwd)


# --- the Jacobian chain ----------------------------------------------------------------------------


def step_jacobians(
    cell,
    params,
    xs: jax.Array,
    initial_state=None,
    mask: Optional[jax.Array] = None,
    *,
    dropout_masks=None,
    go_backwards: bool = False,
) -> jax.Array:
    """Every per-step state Jacobian :math:`J_t = \\partial s_t/\\partial s_{t-1}`, ``(B, T, S, S)``,
    ``J[:, t-1]`` = :math:`J_t` in processing order (column convention:
    :math:`J_{ij} = \\partial s_{t,i}/\\partial s_{t-1,j}`).

    From each cell's closed form (``cell.jacobian``), or ``jax.jacfwd`` of ``cell.step`` for a cell
    without one. A masked step has :math:`J_t = I`; recurrent-dropout masks enter as
    :math:`R^\\top \\operatorname{diag}(m)`.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from rnncore import bptt, cells
        >>> cell = cells.LSTM(3)
        >>> p = cell.init(jax.random.PRNGKey(0), input_dim=2)
        >>> bptt.step_jacobians(cell, p, jnp.ones((4, 5, 2))).shape
        (4, 5, 6, 6)
    """
    xs_t, s0, mask_t = _prepare(cell, xs, initial_state, mask, go_backwards)
    _, prev_t, _ = _scan(cell, params, xs_t, s0, mask_t, dropout_masks, False, False, prev_states=True)
    jac = optional_member(cell, "jacobian")
    if jac is None:
        jac = functools.partial(Cell.jacobian_fallback, cell)
    js = jax.vmap(lambda s, x: jac(params, s, x, dropout_masks))(prev_t, xs_t)  # (T, B, S, S)
    if mask_t is not None:
        eye = jnp.eye(js.shape[-1], dtype=js.dtype)
        js = jnp.where(mask_t[:, :, None, None], js, eye)
    return jnp.swapaxes(js, 0, 1)


def _check_jacobians(J):
    J = jnp.asarray(J)
    if J.ndim != 4 or J.shape[-1] != J.shape[-2]:
        raise ValueError(f"J must have shape (batch, time, S, S); got shape {tuple(J.shape)}.")
    if J.shape[1] == 0:
        raise ValueError(f"J has T=0 steps (shape {tuple(J.shape)}); a product needs at least one Jacobian.")
    return J


def jacobian_products(J: jax.Array, method: str = "sequential") -> jax.Array:
    """Products to the end: ``P[:, k]`` = :math:`\\partial s_T/\\partial s_k = J_T \\cdots J_{k+1}`,
    ``(B, T, S, S)`` for k = 0 … T−1 (so ``P[:, T-1] = J_T`` and ``P[:, 0]`` = the whole chain).

    ``method="sequential"``: one reverse scan, T matrix products in sequence. ``"associative"``:
    ``jax.lax.associative_scan``, O(log T) depth, for accelerators. Over long horizons the float
    products underflow or overflow; use :func:`log_singular_values_to_end` there.

    Example:
        >>> import jax.numpy as jnp
        >>> from rnncore import bptt
        >>> J = jnp.broadcast_to(2.0 * jnp.eye(2), (1, 3, 2, 2))
        >>> bptt.jacobian_products(J)[0, :, 0, 0].tolist()
        [8.0, 4.0, 2.0]
    """
    J = _check_jacobians(J)
    js = jnp.swapaxes(J, 0, 1)  # (T, B, S, S)
    if method == "sequential":
        eye = jnp.broadcast_to(jnp.eye(J.shape[-1], dtype=J.dtype), js.shape[1:])

        def body(acc, j):
            acc = acc @ j
            return acc, acc

        _, ps = jax.lax.scan(body, eye, js, reverse=True)
    elif method == "associative":
        # suffix products: element k combines J_{k+1} with everything after it, later factors left
        ps = jax.lax.associative_scan(lambda a, b: a @ b, js, reverse=True)
    else:
        raise ValueError(f"method={method!r}; expected 'sequential' or 'associative'.")
    return jnp.swapaxes(ps, 0, 1)


def jacobians_from_start(J: jax.Array) -> jax.Array:
    """Products from the start: ``Q[:, t-1]`` = :math:`\\partial s_t/\\partial s_0 = J_t \\cdots J_1`,
    ``(B, T, S, S)``."""
    J = _check_jacobians(J)
    js = jnp.swapaxes(J, 0, 1)
    eye = jnp.broadcast_to(jnp.eye(J.shape[-1], dtype=J.dtype), js.shape[1:])

    def body(acc, j):
        acc = j @ acc
        return acc, acc

    _, qs = jax.lax.scan(body, eye, js)
    return jnp.swapaxes(qs, 0, 1)


# --- long horizons: the log domain ------------------------------------------------------------------


def kahan_add(total: jax.Array, lost: jax.Array, term: jax.Array) -> tuple:
    r"""One step of compensated summation (Kahan 1965): ``(total, lost) -> (total', lost')`` with
    :math:`y = \text{term} - \text{lost}`, :math:`\text{total}' = \text{total} + y` and
    :math:`\text{lost}' = (\text{total}' - \text{total}) - y`, the low-order part the addition
    dropped, subtracted again from the next term: a running sum of T logs keeps float32 accuracy.

    Example:
        >>> import jax.numpy as jnp
        >>> from rnncore import bptt
        >>> total, lost = jnp.float32(1e8), jnp.float32(0.0)
        >>> for _ in range(4):  # 1e8 + 1 rounds to 1e8 in float32; lost keeps what was dropped
        ...     total, lost = bptt.kahan_add(total, lost, jnp.float32(1.0))
        >>> float(total) - 1e8, float(total) - float(lost) - 1e8
        (0.0, 4.0)
    """
    y = term - lost
    t = total + y
    return t, (t - total) - y


def log_singular_values_to_end(J: jax.Array, k: Optional[int] = None) -> jax.Array:
    """:math:`\\log \\sigma_i(\\partial s_T/\\partial s_{t-1})` for every t, ``(B, T, k)``, largest
    first: the singular values of the products to the end, in nats, finite for any T.

    The product is accumulated from the end, :math:`A \\leftarrow A J_t`, and re-orthonormalized
    at every step by a QR factorization :math:`A = QR`: since new factors multiply on the right,
    the orthogonal :math:`Q` on the left never changes a singular value and is dropped; only
    :math:`R`, divided by its largest entry, is carried, the log of the divisor added to a running
    sum. A plain float32 product underflows to exactly
    zero within a few hundred steps of a contracting network; the largest singular value stays
    finite and accurate for any T. Singular values more than ~1/eps (float32: 1e7) below the
    largest one are below the resolution of the arithmetic and may come out as ``-inf``; the
    Lyapunov exponents (:func:`rnncore.analysis.lyapunov_spectrum`) resolve those rates.

    Example:
        >>> import jax.numpy as jnp
        >>> from rnncore import bptt
        >>> J = jnp.broadcast_to(jnp.diag(jnp.array([0.5, 0.25])), (1, 2000, 2, 2))
        >>> bptt.jacobian_products(J)[0, 0].max()  # 0.5 ** 2000 underflows
        Array(0., dtype=float32)
        >>> v = bptt.log_norms_to_end(J)  # 2000 log 0.5
        >>> bool(abs(v[0, 0] / 2000 - jnp.log(0.5)) < 1e-6)
        True
    """
    J = _check_jacobians(J)
    size = J.shape[-1]
    k = size if k is None else k
    checks.integer("k", k, minimum=1, maximum=size, what="the state size")
    js = jnp.swapaxes(J, 0, 1)
    eye = jnp.broadcast_to(jnp.eye(size, dtype=J.dtype), js.shape[1:])
    zero = jnp.zeros(js.shape[1], J.dtype)

    def body(carry, j):
        r_acc, log_scale, lost = carry
        a = r_acc @ j  # (B, S, S): the scaled product, up to an orthogonal factor on the left
        r = jnp.linalg.qr(a, mode="r")  # a = QR: sigma(a) = sigma(R), and Q can be dropped
        scale = jnp.max(jnp.abs(r), axis=(-2, -1))
        safe = jnp.where(scale > 0, scale, 1.0)
        r = r / safe[:, None, None]
        log_scale, lost = kahan_add(log_scale, lost, jnp.log(scale))
        sv = jnp.linalg.svd(r, compute_uv=False)[:, :k]
        return (r, log_scale, lost), log_scale[:, None] + jnp.log(sv)

    _, out = jax.lax.scan(body, (eye, zero, zero), js, reverse=True)
    return jnp.swapaxes(out, 0, 1)


def log_norms_to_end(J: jax.Array) -> jax.Array:
    """:math:`\\log \\lVert \\partial s_T/\\partial s_{t-1} \\rVert_2` for every t, ``(B, T)``, in
    the log domain (see :func:`log_singular_values_to_end`)."""
    return log_singular_values_to_end(J, k=1)[..., 0]


# --- matrix-free: never form S x S ------------------------------------------------------------------


def _span_map(cell, params, xs_t, mask_t, dropout_masks):
    """``s_start -> s_T`` over the time-major inputs ``xs_t`` (state vectors ``(B, S)``)."""

    def run(s_vec):
        s = cell.vector_to_state(s_vec)
        _, states = _scan(cell, params, xs_t, s, mask_t, dropout_masks, False, False)
        return cell.state_to_vector(jax.tree_util.tree_map(lambda a: a[-1], states))

    return run


def top_singular_values(
    cell,
    params,
    xs: jax.Array,
    start: int = 0,
    k: int = 1,
    initial_state=None,
    mask: Optional[jax.Array] = None,
    *,
    dropout_masks=None,
    go_backwards: bool = False,
    iterations: int = 100,
    key: Optional[jax.Array] = None,
):
    """The k largest singular values of :math:`\\partial s_T/\\partial s_{start}`, ``(B, k)``, and the
    right singular vectors ``(B, S, k)``, matrix-free.

    Block power (subspace) iteration on :math:`P^\\top P` with Rayleigh–Ritz, where :math:`Pv` is a
    JVP and :math:`P^\\top u` a VJP of the map :math:`s_{start} \\mapsto s_T`; no S×S matrix is
    formed, so it scales to large units. Converges geometrically in
    :math:`(\\sigma_{k+1}/\\sigma_k)^2` per iteration.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from rnncore import bptt, cells
        >>> cell = cells.SimpleRNN(4, activation=None)
        >>> p = cell.init(jax.random.PRNGKey(0), 1)._replace(recurrent_kernel=0.9 * jnp.eye(4))
        >>> s, _ = bptt.top_singular_values(cell, p, jnp.ones((1, 10, 1)), k=2)
        >>> [round(v, 5) for v in s[0].tolist()] == [round(0.9 ** 10, 5)] * 2
        True
    """
    xs_t, s0, mask_t = _prepare(cell, xs, initial_state, mask, go_backwards)
    steps = xs_t.shape[0]
    checks.integer("start", start, minimum=0, maximum=steps - 1, what=f"T={steps}")
    size = cell.state_size
    checks.integer("k", k, minimum=1, maximum=size, what="the state size")
    if optional_member(cell, "compute_dtype") is not None:
        raise ValueError(
            f"top_singular_values needs forward-mode derivatives, which a cell with "
            f"compute_dtype={cell.compute_dtype!r} does not have (its matmuls define a VJP only); "
            f"analyse the float32 cell (compute_dtype=None)."
        )
    _, states_t = _scan(cell, params, xs_t, s0, mask_t, dropout_masks, False, False)
    s_start = cell.state_to_vector(jax.tree_util.tree_map(lambda a: a[start], states_t))
    run = _span_map(cell, params, xs_t[start:], None if mask_t is None else mask_t[start:], dropout_masks)
    _, vjp = jax.vjp(run, s_start)

    def normal_op(v):  # (B, S) -> P^T P v
        pv = jax.jvp(run, (s_start,), (v,))[1]
        return vjp(pv)[0]

    def block(v):  # (B, S, k)
        return jax.vmap(normal_op, in_axes=2, out_axes=2)(v)

    key = jax.random.PRNGKey(0) if key is None else key
    v = jax.random.normal(key, (s_start.shape[0], size, k), s_start.dtype)
    v, _ = jnp.linalg.qr(v)

    def it(v, _):
        w, _ = jnp.linalg.qr(block(v))
        return w, None

    v, _ = jax.lax.scan(it, v, None, length=iterations)
    w = block(v)
    small = jnp.swapaxes(v, -1, -2) @ w  # Rayleigh–Ritz on the subspace
    evals, evecs = jnp.linalg.eigh(small)
    order = jnp.argsort(-evals, axis=-1)
    evals = jnp.take_along_axis(evals, order, axis=-1)
    evecs = jnp.take_along_axis(evecs, order[:, None, :], axis=-1)
    return jnp.sqrt(jnp.maximum(evals, 0.0)), v @ evecs


# --- deprecated paths -------------------------------------------------------------------------------
#
# What depth means (the chain through the layers of a Sequential) lives in rnncore.depth and
# Bidirectional's semantics in rnncore.layers, both above this floor. Their old names here resolve
# lazily (the only import upward, and only for the deprecated path) and warn.

_MOVED = {
    "model_state_gradients": "rnncore.depth",
    "cross_layer_jacobians": "rnncore.depth",
    "CrossLayerJacobian": "rnncore.depth",
    "Directions": "rnncore.depth",
    "merge_directions": "rnncore.layers",
    "split_bidirectional_state": "rnncore.layers",
    "_is_recurrent": "rnncore.layers.is_recurrent",
    "_is_bidirectional": "rnncore.layers.is_bidirectional",
    "_jit_static": "rnncore.compilation.jit_static",
    "_kahan_add": "rnncore.bptt.kahan_add",
    "_model_forward": "rnncore.models.Sequential.run",
}


def _forward_recording(model, params, x, mask, training, rng, initial_states, taps):
    return model.run(
        params,
        x,
        None if mask is None else jnp.asarray(mask).astype(bool),
        training,
        rng,
        initial_states=initial_states,
        taps=taps,
    )


def __getattr__(name: str):
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib
    import warnings

    target = _MOVED[name]
    warnings.warn(
        f"rnncore.bptt.{name} is deprecated; use {target if name.startswith('_') else target + '.' + name}.",
        DeprecationWarning,
        stacklevel=2,
    )
    if name == "_model_forward":
        return _forward_recording
    if name.startswith("_"):
        module, _, attr = target.rpartition(".")
        return getattr(importlib.import_module(module), attr)
    return getattr(importlib.import_module(target), name)
