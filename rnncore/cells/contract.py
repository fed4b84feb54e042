r"""What a cell is: the members :mod:`rnncore.bptt`, :mod:`rnncore.layers` and :mod:`rnncore.analysis`
read from one, stated as :class:`typing.Protocol` classes.

A cell computes one step of a recurrence on a batch,

.. math::
    (s_t,\ y_t) = \operatorname{step}(\theta,\ s_{t-1},\ x_t), \qquad
    J_t = \frac{\partial s_t}{\partial s_{t-1}},

with ``x_t`` of shape ``(B, F)``, the state ``s_t`` a NamedTuple of ``(B, ·)`` arrays, the output
``y_t`` ``(B, output_size)`` and ``J_t`` ``(B, S, S)`` in column convention
(:math:`J_{ij} = \partial s_{t,i}/\partial s_{t-1,j}`), where ``S = state_size`` is the length of
the state written as one vector. Every cell in :mod:`rnncore.cells` inherits
:class:`rnncore.cells.Cell`, which provides each optional member below with its default; a cell
written from scratch needs only :class:`RecurrentCell`.

**Required** (:class:`RecurrentCell`; ``isinstance(cell, RecurrentCell)`` checks they exist):

* ``units`` (int): the width ``u`` of the output; ``output_size`` (int): the width of ``y_t``
  (``u`` for every cell here); ``state_size`` (int): ``S`` (``u``; ``2u`` for LSTMs, whose state
  is ``[h, c]``).
* ``state_type``: the state's NamedTuple class (Keras's state order); ``params_type``: the params'
  NamedTuple class (Keras's weight order), or None where there is none.
* ``init(key, input_dim, dtype=float32) -> params``: Keras's initialization.
* ``initial_state(batch_size, dtype=float32) -> state``: zeros, as Keras's ``get_initial_state``.
* ``step(params, state, x, dropout_masks=None) -> (new_state, y)``: one batched step.
* ``state_to_vector(state) -> (B, S)`` and its inverse ``vector_to_state((B, S)) -> state``:
  :math:`s_t` as one vector, the space the Jacobians act on (LSTM: ``concat(h, c)``).
* ``output(state) -> (B, output_size)``: the output a state carries (``h``), what Keras repeats at
  a masked step.
* ``dropout`` and ``recurrent_dropout`` (floats in [0, 1)), and
  ``dropout_masks(key, batch_size, input_dim, dtype=float32) -> DropoutMasks | None``: Keras's
  variational dropout masks, drawn once per sequence and passed to every ``step``
  (:class:`rnncore.cells.DropoutMasks`).

**Optional**, each with the default that :class:`rnncore.cells.Cell` declares and what happens
without it (:data:`OPTIONAL_DEFAULTS`):

* ``jacobian(params, state, x, dropout_masks=None) -> (B, S, S)``: the closed-form :math:`J_t`.
  Default None: :func:`rnncore.bptt.step_jacobians` falls back to ``jax.jacfwd`` of ``step``
  (:meth:`rnncore.cells.Cell.jacobian_fallback`), and :func:`rnncore.analysis.lyapunov_spectrum`
  with ``method="auto"`` pushes its frame through ``step`` by JVPs.
* ``compute_dtype`` (None or a floating dtype's name): the dtype of the matmuls' operands.
  Default None (float32 throughout); with one, forward-mode derivatives are unavailable and
  :func:`rnncore.bptt.top_singular_values` refuses the cell.
* The split step (:class:`SplitCell`): ``input_projection(params, x, masks) -> xk`` and
  ``recurrent_projection(params, h, masks) -> hr``, both linear, of shape ``(B, gates·u)``, and
  ``core(params, xk, hr, state, masks) -> (new_state, y)`` with ``step = core(xk(x), hr(h), state)``.
  Without all three (a cell that defines ``step`` only), BPTT's reverse scan takes one traced VJP
  of the whole ``step`` per time step instead of ``d_hr R^T`` plus the core's elementwise VJP.
  :class:`rnncore.cells.Cell` provides the two projections (over its fused ``kernel`` and
  ``recurrent_kernel``) but not ``core``. ``gates`` (int, default 1): the number of ``u``-wide
  blocks the kernels hold. ``sums_projections`` (bool, default False): whether ``core`` reads
  ``xk`` and ``hr`` only through their sum, so that a forward step may take both as one matmul
  ``[x, h][K; R]``.
* The hand-written core VJP (:class:`CoreVJPCell`), used only where ``has_core_vjp`` is True
  (default False, when the reverse scan differentiates ``core`` by ``jax.vjp``):
  ``core_keep(params, xk, hr, state) -> (new_state, y, kept)`` is ``core`` plus what the VJP needs;
  ``core_vjp(params, kept, state, new_state, d_new) -> (d_xk, d_hr or None, d_state)`` with
  ``d_new`` including the output's cotangent and ``d_hr = None`` meaning ``d_hr = d_xk``;
  ``core_params_vjp(params, d_xk_rows, d_hr_rows) -> params cotangent`` of the core's own use of
  the params (default: a bias added to ``xK``). ``hr_cotangent_rest(d_xk, d_hr)`` and its inverse
  ``hr_cotangent(d_xk_rows, rest_rows)`` (default None): for a cell whose ``d_hr`` repeats blocks
  of ``d_xk`` (GRU), the part of ``d_hr`` the reverse scan keeps per step and how to rebuild it.
* The gates (:class:`GatedCell`), read by :func:`rnncore.analysis.gate_saturation`:
  ``gate_values(params, state, x, masks) -> NamedTuple`` of one step's pre-activations and gates
  (leaves ``(B, ·)``; under :func:`rnncore.bptt.forward` with ``keep_gates=True``, ``(B, T, ·)``);
  ``gate_activations() -> {gate name: activation identifier}`` in display order, and
  ``named_gates(gate_values) -> {gate name: values}`` with the same names, each value the output
  of that activation. Default: no gates (``gate_activations()`` is empty, and gate saturation is
  undefined for the cell).

Example:
    >>> from rnncore import cells
    >>> from rnncore.cells import contract
    >>> lstm = cells.LSTM(3)
    >>> isinstance(lstm, contract.RecurrentCell), isinstance(lstm, contract.CoreVJPCell)
    (True, True)
    >>> list(lstm.gate_activations())
    ['i', 'f', 'g', 'o', 'tanh(c)']
    >>> contract.optional_member(object(), "sums_projections")
    False
"""

from __future__ import annotations

from typing import Any, Optional, Protocol, runtime_checkable

import jax

__all__ = ["RecurrentCell", "SplitCell", "CoreVJPCell", "GatedCell", "OPTIONAL_DEFAULTS", "optional_member"]


@runtime_checkable
class RecurrentCell(Protocol):
    """The members every cell provides (see the module docstring for their meaning and shapes)."""

    units: int
    dropout: float
    recurrent_dropout: float

    @property
    def state_size(self) -> int: ...

    @property
    def output_size(self) -> int: ...

    state_type: Any
    params_type: Any

    def init(self, key: jax.Array, input_dim: int, dtype: Any = ...) -> Any: ...

    def initial_state(self, batch_size: int, dtype: Any = ...) -> Any: ...

    def step(self, params: Any, state: Any, x: jax.Array, dropout_masks: Any = None) -> tuple[Any, jax.Array]: ...

    def state_to_vector(self, state: Any) -> jax.Array: ...

    def vector_to_state(self, vector: jax.Array) -> Any: ...

    def output(self, state: Any) -> jax.Array: ...

    def dropout_masks(self, key: jax.Array, batch_size: int, input_dim: int, dtype: Any = ...) -> Any: ...


@runtime_checkable
class SplitCell(RecurrentCell, Protocol):
    """A cell whose step is ``core(input_projection(x), recurrent_projection(h), state)``."""

    gates: int
    sums_projections: bool

    def input_projection(self, params: Any, x: jax.Array, dropout_masks: Any = None) -> jax.Array: ...

    def recurrent_projection(self, params: Any, h: jax.Array, dropout_masks: Any = None) -> jax.Array: ...

    def core(
        self, params: Any, xk: jax.Array, hr: jax.Array, state: Any, dropout_masks: Any = None
    ) -> tuple[Any, jax.Array]: ...


@runtime_checkable
class CoreVJPCell(SplitCell, Protocol):
    """A split cell whose core has a hand-written VJP (used where ``has_core_vjp`` is True)."""

    @property
    def has_core_vjp(self) -> bool: ...

    def core_keep(self, params: Any, xk: jax.Array, hr: jax.Array, state: Any) -> tuple[Any, jax.Array, Any]: ...

    def core_vjp(
        self, params: Any, kept: Any, state: Any, new_state: Any, d_new: Any
    ) -> tuple[jax.Array, Optional[jax.Array], Any]: ...

    def core_params_vjp(self, params: Any, d_xk: jax.Array, d_hr: jax.Array) -> Any: ...


@runtime_checkable
class GatedCell(RecurrentCell, Protocol):
    """A cell that names its gates and their activations."""

    def gate_values(self, params: Any, state: Any, x: jax.Array, dropout_masks: Any = None) -> Any: ...

    def gate_activations(self) -> dict[str, Any]: ...

    def named_gates(self, gate_values: Any) -> dict[str, jax.Array]: ...


#: The optional members whose absence has a meaning, and the value a missing one stands for (what
#: :class:`rnncore.cells.Cell` declares): ``None`` for a member that is a method where present.
OPTIONAL_DEFAULTS: dict[str, Any] = {
    "jacobian": None,
    "compute_dtype": None,
    "gates": 1,
    "sums_projections": False,
    "has_core_vjp": False,
    "hr_cotangent_rest": None,
    "hr_cotangent": None,
    "params_type": None,
}


def optional_member(cell: Any, name: str) -> Any:
    """``cell.name``, or its default from :data:`OPTIONAL_DEFAULTS` for a cell written from scratch
    that does not define it (a :class:`rnncore.cells.Cell` always does)."""
    if name not in OPTIONAL_DEFAULTS:
        raise ValueError(f"name={name!r}; expected one of {', '.join(map(repr, OPTIONAL_DEFAULTS))}.")
    return getattr(cell, name, OPTIONAL_DEFAULTS[name])
