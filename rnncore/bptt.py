"""Time: the forward scan that keeps every state.

Conventions (``DESIGN.md``): the API is batch first, ``xs (B, T, F)``; scans run time-major
inside. ``s_0`` is the initial state and ``s_t`` the state after consuming the t-th input *in
processing order* (with ``go_backwards`` the first input consumed is ``xs[:, -1]``).

Masking is Keras's: where ``mask[b, t]`` is False the state is carried unchanged
(:math:`s_t = s_{t-1}`, so :math:`J_t = I`) and the output repeats the previous output, or is
zero with ``zero_output_for_mask``.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp


class Trajectory(NamedTuple):
    """What :func:`forward` keeps, in processing order.

    ``outputs (B, T, units)``: the layer's per-step outputs (masking applied);
    ``states``: the cell's state NamedTuple with leaves ``(B, T + 1, units)`` holding
    ``s_0 .. s_T``; ``final_state``: ``s_T``.
    """

    outputs: jax.Array
    states: Any
    final_state: Any


def time_major(a: jax.Array, go_backwards: bool) -> jax.Array:
    """``(B, T, ...)`` -> ``(T, B, ...)`` in processing order."""
    a = jnp.swapaxes(a, 0, 1)
    return a[::-1] if go_backwards else a


def forward(cell, params, xs: jax.Array, initial_state=None, mask: Optional[jax.Array] = None, *,
            dropout_masks=None, go_backwards: bool = False, zero_output_for_mask: bool = False,
            unroll: bool = False) -> Trajectory:
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
        unroll: Keras's unrolled-loop masking: the output before the first step counts as zeros
            (not ``h_0``) and ``zero_output_for_mask`` is ignored. States are unaffected.

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
    batch = xs.shape[0]
    s0 = cell.initial_state(batch, xs.dtype) if initial_state is None else initial_state
    xs_t = time_major(xs, go_backwards)
    mask_t = None if mask is None else time_major(jnp.asarray(mask, bool), go_backwards)
    zero_prev = zero_output_for_mask and not unroll

    def body(carry, inp):
        state, seen = carry
        x, m = inp
        new, y = cell.step(params, state, x, dropout_masks)
        if m is not None:
            keep = m[:, None]
            # Keras: a masked step repeats the previous output, i.e. h of the carried state (so its
            # gradient flows into that state); zeros with zero_output_for_mask. Keras's unrolled
            # loop repeats zeros until the first real step.
            prev = cell.output(state)
            if zero_prev:
                prev = jnp.zeros_like(y)
            elif unroll:
                prev = jnp.where(seen[:, None], prev, 0)
            y = jnp.where(keep, y, prev)
            new = jax.tree_util.tree_map(lambda n, o: jnp.where(keep, n, o), new, state)
            seen = seen | m
        return (new, seen), (y, new)

    seen0 = jnp.zeros((batch,), bool)
    (final, _), (ys, ss) = jax.lax.scan(body, (s0, seen0), (xs_t, mask_t))
    states = jax.tree_util.tree_map(
        lambda first, rest: jnp.concatenate([first[:, None], jnp.swapaxes(rest, 0, 1)], axis=1), s0, ss)
    return Trajectory(jnp.swapaxes(ys, 0, 1), states, final)
