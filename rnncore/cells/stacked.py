r"""``StackedCells``: several cells run as one, each step feeding its output to the next (Keras
``StackedRNNCells``, which Keras's ``RNN([cell_1, cell_2, ...])`` builds from a list of cells).

With cells :math:`f_1, \dots, f_n` and :math:`y^0_t = x_t`, one step is

.. math::
    (s^k_t,\ y^k_t) = f_k(\theta_k,\ s^k_{t-1},\ y^{k-1}_t), \qquad k = 1, \dots, n,

and the stacked step returns :math:`((s^1_t, \dots, s^n_t),\ y^n_t)`. The state is the tuple of the
cells' states (Keras's order: the first cell's state first), the params the tuple of their params,
and the state vector :math:`s_t = [s^1_t, \dots, s^n_t]` (each cell's own vector, concatenated).
The per-step Jacobian is block lower-triangular: cell k's new state depends on cell j's previous
state only for :math:`j \le k`,

.. math::
    \frac{\partial s^k_t}{\partial s^j_{t-1}} =
    \begin{cases} A_k & j = k \\ D_k E_{k-1} \dfrac{\partial s^{k-1}_t}{\partial s^j_{t-1}} & j < k \\
    0 & j > k \end{cases}

with :math:`A_k = \partial f_k/\partial s^k_{t-1}` (the cell's own Jacobian), :math:`D_k =
\partial f_k/\partial y^{k-1}_t` (its input Jacobian) and :math:`E_{k-1} = \partial y^{k-1}_t /
\partial s^{k-1}_t` (where the output sits in the state).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from rnncore import cells
    >>> stack = cells.StackedCells((cells.SimpleRNN(3), cells.LSTM(2)))
    >>> p = stack.init(jax.random.PRNGKey(0), input_dim=4)
    >>> s = stack.initial_state(batch_size=5)
    >>> s, y = stack.step(p, s, jnp.ones((5, 4)))
    >>> y.shape, stack.state_size, stack.state_to_vector(s).shape
    ((5, 2), 7, (5, 7))
    >>> stack.jacobian(p, s, jnp.ones((5, 4))).shape
    (5, 7, 7)
"""

from __future__ import annotations

import collections
import functools
from dataclasses import dataclass
from typing import Any, Optional

import jax
import jax.numpy as jnp

from . import contract
from ._base import Cell

__all__ = ["StackedCells", "stacked_state_type", "stacked_params_type"]


@functools.lru_cache(maxsize=None)
def stacked_state_type(n: int) -> type:
    """The state NamedTuple of a stack of ``n`` cells: fields ``cell_0 … cell_{n-1}``, each that
    cell's own state."""
    return collections.namedtuple("StackedState", [f"cell_{i}" for i in range(n)])


@functools.lru_cache(maxsize=None)
def stacked_params_type(n: int) -> type:
    """The params NamedTuple of a stack of ``n`` cells: fields ``cell_0 … cell_{n-1}``, each that
    cell's own params."""
    return collections.namedtuple("StackedParams", [f"cell_{i}" for i in range(n)])


@dataclass(frozen=True)
class StackedCells:
    """Keras ``StackedRNNCells(cells)``: ``cells`` run in order within each step (see the module
    docstring). ``units`` and ``output_size`` are the last cell's; ``dropout`` and
    ``recurrent_dropout`` the largest of the cells' (each cell draws and uses its own masks)."""

    cells: tuple

    def __post_init__(self):
        cells = tuple(self.cells) if isinstance(self.cells, (tuple, list)) else None
        if not cells:
            raise ValueError(f"cells={self.cells!r}; expected a non-empty tuple of rnncore cells.")
        for i, cell in enumerate(cells):
            if not isinstance(cell, contract.RecurrentCell):
                raise ValueError(
                    f"cells[{i}] ({type(cell).__name__}) is not an rnncore cell; expected one with the members of "
                    "rnncore.cells.contract.RecurrentCell."
                )
        object.__setattr__(self, "cells", cells)

    # --- sizes and types ------------------------------------------------------------------------
    @property
    def units(self) -> int:
        return self.cells[-1].units

    @property
    def output_size(self) -> int:
        return self.cells[-1].output_size

    @property
    def state_size(self) -> int:
        return sum(c.state_size for c in self.cells)

    @property
    def state_type(self) -> type:
        return stacked_state_type(len(self.cells))

    @property
    def params_type(self) -> type:
        return stacked_params_type(len(self.cells))

    @property
    def dropout(self) -> float:
        return max(c.dropout for c in self.cells)

    @property
    def recurrent_dropout(self) -> float:
        return max(c.recurrent_dropout for c in self.cells)

    def input_dims(self, input_dim: int) -> tuple:
        """The input width each cell sees: ``input_dim``, then each previous cell's output size."""
        return (input_dim,) + tuple(c.output_size for c in self.cells[:-1])

    # --- params and states --------------------------------------------------------------------
    def init(self, key: jax.Array, input_dim: int, dtype=jnp.float32):
        """Each cell's own ``init`` (key ``fold_in(key, k)`` for cell k) for the width it sees."""
        return self.params_type(
            *(
                c.init(jax.random.fold_in(key, k), d, dtype)
                for k, (c, d) in enumerate(zip(self.cells, self.input_dims(input_dim)))
            )
        )

    def initial_state(self, batch_size: int, dtype=jnp.float32):
        """Each cell's zeros, as Keras's ``StackedRNNCells.get_initial_state``."""
        return self.state_type(*(c.initial_state(batch_size, dtype) for c in self.cells))

    # --- the step -------------------------------------------------------------------------------
    def step(self, params, state, x: jax.Array, dropout_masks: Optional[tuple] = None):
        """``((s^1_t, …, s^n_t), y^n_t)``: each cell consumes the previous one's output."""
        new = []
        y = x
        for k, cell in enumerate(self.cells):
            masks = None if dropout_masks is None else dropout_masks[k]
            s, y = cell.step(params[k], state[k], y, masks)
            new.append(s)
        return self.state_type(*new), y

    def output(self, state) -> jax.Array:
        """The last cell's output."""
        return self.cells[-1].output(state[-1])

    # --- the state vector -------------------------------------------------------------------------
    def state_to_vector(self, state) -> jax.Array:
        """``[s^1, …, s^n]``, each cell's own state vector, ``(B, S)``."""
        return jnp.concatenate([c.state_to_vector(s) for c, s in zip(self.cells, state)], axis=-1)

    def vector_to_state(self, vector: jax.Array):
        """Inverse of :meth:`state_to_vector`."""
        parts, start = [], 0
        for c in self.cells:
            parts.append(c.vector_to_state(vector[..., start : start + c.state_size]))
            start += c.state_size
        return self.state_type(*parts)

    # --- dropout ----------------------------------------------------------------------------------
    def dropout_masks(self, key: jax.Array, batch_size: int, input_dim: int, dtype=jnp.float32):
        """One entry per cell, its own masks from ``fold_in(key, k)`` (None where it has none);
        None when no cell drops anything."""
        if self.dropout == 0 and self.recurrent_dropout == 0:
            return None
        return tuple(
            c.dropout_masks(jax.random.fold_in(key, k), batch_size, d, dtype)
            for k, (c, d) in enumerate(zip(self.cells, self.input_dims(input_dim)))
        )

    # --- the block lower-triangular Jacobian ------------------------------------------------------
    def jacobian(self, params, state, x: jax.Array, dropout_masks: Optional[tuple] = None) -> jax.Array:
        """:math:`\\partial s_t/\\partial s_{t-1}`, ``(B, S, S)``, block by block (module docstring):
        the diagonal blocks from each cell's closed form (``jax.jacfwd`` where it has none), the
        input Jacobians :math:`D_k` and output selections :math:`E_k` by ``jax.jacfwd``."""
        b = x.shape[0]
        rows = []  # rows[k]: (B, S_k, S), the block row of cell k
        y = x
        d_y = None  # (B, u_{k-1}, S): the previous cell's output w.r.t. s_{t-1}
        offsets = [0]
        for c in self.cells:
            offsets.append(offsets[-1] + c.state_size)
        for k, cell in enumerate(self.cells):
            masks = None if dropout_masks is None else dropout_masks[k]
            own = contract.optional_member(cell, "jacobian")
            a_k = (own or functools.partial(Cell.jacobian_fallback, cell))(params[k], state[k], y, masks)
            row = jnp.zeros((b, cell.state_size, self.state_size), a_k.dtype)
            if d_y is not None:
                row = row + jnp.einsum("bij,bjk->bik", _input_jacobian(cell, params[k], state[k], y, masks), d_y)
            row = row.at[:, :, offsets[k] : offsets[k + 1]].add(a_k)
            rows.append(row)
            new, y = cell.step(params[k], state[k], y, masks)
            d_y = jnp.einsum("bij,bjk->bik", _output_selection(cell, new), row)
        return jnp.concatenate(rows, axis=1)


def _input_jacobian(cell: Any, params, state, x: jax.Array, masks) -> jax.Array:
    """:math:`\\partial s^k_t/\\partial x` of one cell's step, ``(B, S_k, F)``, row by row."""

    def one(x_row, s_vec, masks_row):
        new, _ = cell.step(params, cell.vector_to_state(s_vec[None]), x_row[None], masks_row)
        return cell.state_to_vector(new)[0]

    s = cell.state_to_vector(state)
    if masks is None:
        return jax.vmap(lambda xr, sv: jax.jacfwd(one)(xr, sv, None))(x, s)
    rows = jax.tree_util.tree_map(lambda m: jnp.swapaxes(m, 0, 1)[:, :, None], masks)
    return jax.vmap(lambda xr, sv, mr: jax.jacfwd(one)(xr, sv, mr))(x, s, rows)


def _output_selection(cell: Any, state) -> jax.Array:
    """:math:`\\partial y/\\partial s` of ``cell.output`` at ``state``, ``(B, u, S_k)`` (a selection for
    every cell here: ``y = h``)."""
    s = cell.state_to_vector(state)
    return jax.vmap(jax.jacfwd(lambda sv: cell.output(cell.vector_to_state(sv[None]))[0]))(s)
