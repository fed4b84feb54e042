"""The recurrent layers: :class:`RNN` around any cell (and :class:`SimpleRNN`, :class:`LSTM`,
:class:`GRU`, :class:`LayerNormLSTM`), and :class:`Bidirectional`; the semantics they pin are listed in
:mod:`rnncore.layers`.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from rnncore import layers
    >>> lstm = layers.LSTM(4, return_sequences=True, return_state=True)
    >>> p = lstm.init(jax.random.PRNGKey(0), (7, 3))
    >>> y, h, c = lstm.apply(p, jnp.ones((2, 7, 3)))
    >>> y.shape, h.shape, c.shape
    ((2, 7, 4), (2, 4), (2, 4))
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Any, NamedTuple, Optional, cast

import jax
import jax.numpy as jnp
import numpy as np

from .. import bptt, cells
from ..cells.contract import optional_member
from .inputs import check_mask, check_rng, check_sequences, shape_str


@functools.lru_cache(maxsize=256)
def _param_shapes(cell, input_dim: int) -> tuple:
    """The shape of each params field ``cell.init`` makes for ``input_dim`` (None: no such array)."""
    tree = jax.eval_shape(lambda k: cell.init(k, input_dim), jax.ShapeDtypeStruct((2,), jnp.uint32))
    return tuple(None if a is None else tuple(a.shape) for a in tree)


def check_cell_params(cell, params):
    """``params`` as the cell's params NamedTuple (a plain tuple or list in Keras's
    ``get_weights()`` order is converted), every array shaped as ``cell.init`` makes it, or a
    clear ValueError."""
    if isinstance(cell, cells.StackedCells):
        return _check_stacked_params(cell, params)
    ptype = optional_member(cell, "params_type")
    if ptype is None:
        return params
    fields, name = ptype._fields, type(cell).__name__
    expected_desc = f"{ptype.__name__}({', '.join(fields)})"
    if not isinstance(params, (tuple, list)) or not 1 <= len(params) <= len(fields):
        got = f"{len(params)} arrays" if isinstance(params, (tuple, list)) else type(params).__name__
        raise ValueError(f"params for {name} must be {expected_desc}; got {got}.")
    if not isinstance(params, ptype):
        try:
            params = ptype(*params)
        except TypeError as e:
            raise ValueError(f"params for {name} must be {expected_desc}; got {len(params)} arrays.") from e
    if len(np.shape(params[0])) != 2:
        raise ValueError(
            f"params.{fields[0]} for {name} must be 2-D (input_dim, ...); got shape {shape_str(params[0])}."
        )

    def desc(shape):
        return "None" if shape is None else f"shape {shape}"

    for field, want, a in zip(fields, _param_shapes(cell, int(np.shape(params[0])[0])), params):
        got = None if a is None else tuple(np.shape(a))
        if got != want:
            raise ValueError(f"params.{field} for {name}(units={cell.units}) must be {desc(want)}; got {desc(got)}.")
    return params


def _check_stacked_params(cell: cells.StackedCells, params):
    """A stack's params: one entry per cell, each checked as that cell's, each cell's input width
    the previous cell's output size."""
    n = len(cell.cells)
    if not isinstance(params, (tuple, list)) or len(params) != n:
        got = f"{len(params)} entries" if isinstance(params, (tuple, list)) else type(params).__name__
        raise ValueError(f"params for StackedCells must hold one params entry per cell ({n}); got {got}.")
    checked = []
    for k, (sub, p) in enumerate(zip(cell.cells, params)):
        try:
            p = check_cell_params(sub, p)
        except ValueError as e:
            raise ValueError(f"StackedCells cell {k}: {e}") from None
        if k > 0 and input_dim(sub, p) != cell.cells[k - 1].output_size:
            raise ValueError(
                f"StackedCells cell {k}: its params take {input_dim(sub, p)} input features; expected "
                f"{cell.cells[k - 1].output_size}, the output size of cell {k - 1}."
            )
        checked.append(p)
    return cell.params_type(*checked)


def input_dim(cell, params) -> int:
    """The input features ``params`` of ``cell`` take (the first cell's, for a stack)."""
    if isinstance(cell, cells.StackedCells):
        return input_dim(cell.cells[0], params[0])
    return int(np.shape(params.kernel)[0])


def check_state(cell, state, batch: int, dtype, at: str = "initial_state"):
    """``state`` as the cell's state NamedTuple, each array ``(batch, units)`` (a stack: each
    cell's own state, in order), or a clear ValueError."""
    parts = tuple(state)
    fields = cell.state_type._fields
    if len(parts) != len(fields):
        raise ValueError(
            f"{at} for {type(cell).__name__} must hold {len(fields)} "
            f"{'state(s), one per cell' if isinstance(cell, cells.StackedCells) else 'array(s)'} "
            f"({', '.join(fields)}); got {len(parts)}."
        )
    if isinstance(cell, cells.StackedCells):
        return cell.state_type(
            *(check_state(c, p, batch, dtype, f"{at}.{f}") for c, p, f in zip(cell.cells, parts, fields))
        )
    for name, a in zip(fields, parts):
        if tuple(np.shape(a)) != (batch, cell.units):
            raise ValueError(f"{at}.{name} must have shape (batch, units) = {(batch, cell.units)}; got {shape_str(a)}.")
    return cell.state_type(*(jnp.asarray(a, dtype) for a in parts))


# --- recurrent layers ---------------------------------------------------------------------------


class Consumed(NamedTuple):
    """What one direction of a recurrent layer consumed and produced in :meth:`RNN.run` (arrays
    only, a pytree): the checked ``params``, the inputs ``xs (B, T, F)``, ``initial_state``
    :math:`s_0`, the input ``mask`` ``(B, T)`` or None, the ``dropout_masks`` drawn (or None), the
    per-step ``outputs (B, T, u)`` in processing order and the ``final_state`` :math:`s_T`."""

    params: Any
    xs: jax.Array
    initial_state: Any
    mask: Optional[jax.Array]
    dropout_masks: Any
    outputs: jax.Array
    final_state: Any


class Directions(NamedTuple):
    """One entry per direction of a ``Bidirectional`` layer, each in its own processing order
    (the backward direction's step t consumes input position T − t + 1)."""

    forward: Any
    backward: Any


@dataclass(frozen=True)
class RNN:
    """Keras ``RNN(cell, return_sequences=False, return_state=False, go_backwards=False,
    stateful=False, unroll=False, zero_output_for_mask=False)`` around any rnncore cell, plus
    two rnncore arguments about its gradient:

    * ``backward_pass="explicit"`` (default): the layer's VJP is :func:`rnncore.bptt.backward`'s
      reverse scan; ``"autodiff"``: JAX differentiates the forward scan (also forward mode:
      ``jax.jvp``/``jax.jacfwd`` through the layer need it).
    * ``truncate_gradient=k2``: truncated BPTT, the chain cut every k2 steps (None: full BPTT).
      The forward pass is unchanged.
    """

    cell: Any
    return_sequences: bool = False
    return_state: bool = False
    go_backwards: bool = False
    stateful: bool = False
    unroll: bool = False
    zero_output_for_mask: bool = False
    backward_pass: str = "explicit"
    truncate_gradient: Optional[int] = None

    supports_masking = True

    def __post_init__(self):
        if self.backward_pass not in ("explicit", "autodiff"):
            raise ValueError(f"backward_pass={self.backward_pass!r}; expected 'explicit' or 'autodiff'.")
        bptt.check_truncate(self.truncate_gradient)
        if self.truncate_gradient is not None and self.backward_pass != "explicit":
            raise ValueError("truncate_gradient needs backward_pass='explicit'.")

    def init(self, key: jax.Array, input_shape, dtype=jnp.float32):
        """The cell's params for inputs of shape ``(T, F)``."""
        return self.cell.init(key, int(input_shape[-1]), dtype)

    def compute_output_shape(self, input_shape):
        t = input_shape[0] if len(input_shape) > 1 else None
        return (t, self.cell.output_size) if self.return_sequences else (self.cell.output_size,)

    def compute_mask(self, x, mask):
        return mask if self.return_sequences else None

    def _initial_state(self, initial_state, batch, dtype):
        if initial_state is None:
            return self.cell.initial_state(batch, dtype)
        return check_state(self.cell, initial_state, batch, dtype)

    def _inputs(self, params, x, mask, training, rng, initial_state):
        """Checked ``(params, x, mask, s0, dropout_masks)``."""
        params = check_cell_params(self.cell, params)
        x = check_sequences(x, features=input_dim(self.cell, params))
        mask = check_mask(mask, x)
        s0 = self._initial_state(initial_state, x.shape[0], x.dtype)
        dmasks = None
        if training and (self.cell.dropout > 0 or self.cell.recurrent_dropout > 0):
            dmasks = self.cell.dropout_masks(check_rng(rng, type(self).__name__), x.shape[0], x.shape[2], x.dtype)
        return params, x, mask, s0, dmasks

    def trajectory(self, params, x, mask=None, training=False, rng=None, initial_state=None) -> bptt.Trajectory:
        """The checked forward scan behind :meth:`apply`, with every state kept."""
        params, x, mask, s0, dmasks = self._inputs(params, x, mask, training, rng, initial_state)
        return bptt.forward(
            self.cell,
            params,
            x,
            s0,
            mask,
            dropout_masks=dmasks,
            go_backwards=self.go_backwards,
            zero_output_for_mask=self.zero_output_for_mask,
            unroll=self.unroll,
        )

    def run(
        self, params, x, mask=None, training=False, rng=None, initial_state=None, *, tap: Optional[tuple] = None
    ) -> tuple:
        """``(y, final_state, consumed)``: :meth:`call` recording what the layer consumed.

        ``tap``: None, or ``(d_outputs, d_final)`` shaped as the full output sequence ``(B, T, u)``
        (processing order) and the final state, added to them before ``y`` is taken (see the module
        docstring); ``consumed`` is the :class:`Consumed` of this run, its ``outputs`` and
        ``final_state`` with the tap added.
        """
        params, x, mask, s0, dmasks = self._inputs(params, x, mask, training, rng, initial_state)
        if self.backward_pass == "autodiff":
            tr = bptt.forward(
                self.cell,
                params,
                x,
                s0,
                mask,
                dropout_masks=dmasks,
                go_backwards=self.go_backwards,
                zero_output_for_mask=self.zero_output_for_mask,
                unroll=self.unroll,
            )
            ys, final = tr.outputs, tr.final_state
        else:
            flags = (self.go_backwards, self.zero_output_for_mask, self.unroll, self.truncate_gradient)
            ys, final = bptt.scan_with_explicit_vjp(self.cell, flags, params, x, s0, mask, dmasks)
        if tap is not None:
            ys = ys + tap[0]
            final = jax.tree_util.tree_map(lambda s, d: s + d, final, tap[1])
        consumed = Consumed(params, x, s0, mask, dmasks, ys, final)
        return (ys if self.return_sequences else ys[:, -1]), final, consumed

    def call(self, params, x, mask=None, training=False, rng=None, initial_state=None):
        """``(y, final_state)``: ``y`` is ``(B, T, u)`` with ``return_sequences``, else the last
        output ``(B, u)``; ``final_state`` the cell's state NamedTuple."""
        y, final, _ = self.run(params, x, mask, training, rng, initial_state)
        return y, final

    def emits(self, mask: Optional[jax.Array]) -> jax.Array:
        """``(B, T)`` in processing order (``(1, 1)`` without a mask): whether the output at step t
        is the ``h`` its state :math:`s_t` carries (a real step, or a masked one repeating it), not a
        zero (``zero_output_for_mask``, or Keras's unrolled loop before the first real step)."""
        if mask is None:
            return jnp.ones((1, 1), bool)
        mask_t = bptt.time_major(mask, self.go_backwards)
        if self.zero_output_for_mask and not self.unroll:
            return mask_t.T
        if self.unroll:  # Keras's unrolled loop: zeros until the first real step
            return jnp.logical_or(mask_t, cast(jax.Array, bptt.seen_before(mask_t))).T
        return jnp.ones_like(mask_t).T

    def apply(self, params, x, mask=None, training=False, rng=None, initial_state=None):
        """Outputs as Keras returns them: ``y``, followed by the final state's arrays with
        ``return_state``."""
        y, final = self.call(params, x, mask, training, rng, initial_state)
        return (y, *final) if self.return_state else y


_FLAGS = (
    "return_sequences",
    "return_state",
    "go_backwards",
    "stateful",
    "unroll",
    "zero_output_for_mask",
    "backward_pass",
    "truncate_gradient",
)


def _init_rnn(layer: RNN, cell_type, units, cell, kwargs: dict) -> None:
    """Split Keras layer arguments into the cell's and the RNN's (``cell=`` rebuilds a copy)."""
    flags = {k: kwargs.pop(k) for k in _FLAGS if k in kwargs}
    if cell is None:
        if units is None:
            raise ValueError(f"{type(layer).__name__} needs units (a positive integer).")
        cell = cell_type(units, **kwargs)
    elif units is not None or kwargs:
        raise ValueError(f"{type(layer).__name__}: pass either units and cell arguments, or cell=, not both.")
    RNN.__init__(layer, cell=cell, **flags)


class SimpleRNN(RNN):
    """Keras ``SimpleRNN(units, activation="tanh", use_bias=True, ..., dropout=0.0,
    recurrent_dropout=0.0, return_sequences=False, return_state=False, go_backwards=False, ...)``."""

    def __init__(self, units: Optional[int] = None, *, cell: Optional[cells.SimpleRNN] = None, **kwargs):
        _init_rnn(self, cells.SimpleRNN, units, cell, kwargs)


class LSTM(RNN):
    """Keras ``LSTM(units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
    unit_forget_bias=True, ..., return_sequences=False, ...)``."""

    def __init__(self, units: Optional[int] = None, *, cell: Optional[cells.LSTM] = None, **kwargs):
        _init_rnn(self, cells.LSTM, units, cell, kwargs)


class GRU(RNN):
    """Keras ``GRU(units, ..., reset_after=True, return_sequences=False, ...)``."""

    def __init__(self, units: Optional[int] = None, *, cell: Optional[cells.GRU] = None, **kwargs):
        _init_rnn(self, cells.GRU, units, cell, kwargs)


class LayerNormLSTM(RNN):
    """An RNN layer over :class:`rnncore.cells.LayerNormLSTM` (Ba et al. 2016)."""

    def __init__(self, units: Optional[int] = None, *, cell: Optional[cells.LayerNormLSTM] = None, **kwargs):
        _init_rnn(self, cells.LayerNormLSTM, units, cell, kwargs)


# --- Bidirectional ------------------------------------------------------------------------------


class BidirectionalParams(NamedTuple):
    forward: Any
    backward: Any


_MERGE_MODES = ("concat", "sum", "ave", "mul", None)


def split_bidirectional_state(initial_state) -> tuple:
    """Keras's split of a Bidirectional ``initial_state``: ``(forward, backward)``, either given as
    a pair of state tuples or as a flat list whose first half goes forward, second half backward.

    Example:
        >>> from rnncore.layers import split_bidirectional_state
        >>> split_bidirectional_state(["h_f", "c_f", "h_b", "c_b"])
        (['h_f', 'c_f'], ['h_b', 'c_b'])
    """
    if initial_state is None:
        return None, None
    parts = list(initial_state)
    if len(parts) == 2 and all(isinstance(p, tuple) for p in parts):
        return tuple(parts)
    half = len(parts) // 2
    return parts[:half], parts[half:]


def merge_directions(mode: Optional[str], y: jax.Array, y_rev: jax.Array) -> tuple:
    r"""Keras's Bidirectional merge, as a tuple of outputs: with :math:`y` the forward output and
    :math:`\overleftarrow{y}` the backward one (flipped back to input time), ``"concat"`` gives
    :math:`[y, \overleftarrow{y}]` on the last axis, ``"sum"`` :math:`y + \overleftarrow{y}`,
    ``"ave"`` their mean, ``"mul"`` their product, ``None`` the pair itself.

    Example:
        >>> import jax.numpy as jnp
        >>> from rnncore.layers import merge_directions
        >>> merge_directions("ave", jnp.ones((1, 2)), jnp.zeros((1, 2)))[0].tolist()
        [[0.5, 0.5]]
    """
    if mode == "concat":
        return (jnp.concatenate([y, y_rev], axis=-1),)
    if mode == "sum":
        return (y + y_rev,)
    if mode == "ave":
        return ((y + y_rev) / 2,)
    if mode == "mul":
        return (y * y_rev,)
    return (y, y_rev)


@dataclass(frozen=True, init=False)
class Bidirectional:
    """Keras ``Bidirectional(layer, merge_mode="concat", backward_layer=None)``.

    The backward layer is ``layer`` with ``go_backwards=True`` unless given; both get
    ``zero_output_for_mask = return_sequences``. With ``return_sequences`` the backward outputs are
    flipped back to input time. ``initial_state``: the first half of the arrays goes forward, the
    second backward; ``return_state`` returns ``(y, *forward_state, *backward_state)``
    (``(y_fwd, y_bwd, *states)`` with ``merge_mode=None``). Params are
    :class:`BidirectionalParams` ``(forward, backward)``; the forward layer's key is
    ``fold_in(rng, 0)``, the backward's ``fold_in(rng, 1)``.
    """

    forward_layer: RNN
    backward_layer: RNN
    merge_mode: Optional[str]

    supports_masking = True

    def __init__(self, layer: RNN, merge_mode: Optional[str] = "concat", backward_layer: Optional[RNN] = None):
        if not isinstance(layer, RNN):
            raise ValueError(f"Bidirectional needs a recurrent layer; got {type(layer).__name__}.")
        if merge_mode not in _MERGE_MODES:
            raise ValueError(f"merge_mode={merge_mode!r}; expected one of 'concat', 'sum', 'ave', 'mul' or None.")
        if backward_layer is None:
            backward_layer = replace(layer, go_backwards=True)
        if not isinstance(backward_layer, RNN):
            raise ValueError(f"backward_layer must be a recurrent layer; got {type(backward_layer).__name__}.")
        if layer.go_backwards == backward_layer.go_backwards:
            raise ValueError("Bidirectional: the forward and backward layers must have different go_backwards.")
        for flag in ("return_sequences", "return_state", "stateful"):
            if getattr(layer, flag) != getattr(backward_layer, flag):
                raise ValueError(f"Bidirectional: forward and backward layers differ in {flag}.")
        fwd = replace(layer, zero_output_for_mask=layer.return_sequences)
        bwd = replace(backward_layer, zero_output_for_mask=backward_layer.return_sequences)
        object.__setattr__(self, "forward_layer", fwd)
        object.__setattr__(self, "backward_layer", bwd)
        object.__setattr__(self, "merge_mode", merge_mode)

    @property
    def return_sequences(self):
        return self.forward_layer.return_sequences

    @property
    def return_state(self):
        return self.forward_layer.return_state

    def init(self, key, input_shape, dtype=jnp.float32) -> BidirectionalParams:
        kf, kb = jax.random.split(key)
        return BidirectionalParams(
            self.forward_layer.init(kf, input_shape, dtype), self.backward_layer.init(kb, input_shape, dtype)
        )

    def compute_output_shape(self, input_shape):
        shape = self.forward_layer.compute_output_shape(input_shape)
        bshape = self.backward_layer.compute_output_shape(input_shape)
        if self.merge_mode == "concat":
            return shape[:-1] + (shape[-1] + bshape[-1],)
        return shape

    def compute_mask(self, x, mask):
        return mask if self.return_sequences else None

    def run(
        self,
        params: BidirectionalParams,
        x,
        mask=None,
        training=False,
        rng=None,
        initial_state=None,
        *,
        tap: Optional[Directions] = None,
    ) -> tuple:
        """``(outputs, (forward_state, backward_state), Directions(consumed_fwd, consumed_bwd))``:
        :meth:`call` recording what each direction consumed; ``tap`` is None or a
        :class:`Directions` of the two directions' taps (see :meth:`RNN.run`)."""
        fwd_state, bwd_state = split_bidirectional_state(initial_state)
        rf = rb = None
        if rng is not None:
            rf, rb = jax.random.fold_in(rng, 0), jax.random.fold_in(rng, 1)
        tf, tb = (None, None) if tap is None else tap
        y, sf, cf = self.forward_layer.run(params.forward, x, mask, training, rf, fwd_state, tap=tf)
        y_rev, sb, cb = self.backward_layer.run(params.backward, x, mask, training, rb, bwd_state, tap=tb)
        if self.return_sequences:
            y_rev = jnp.flip(y_rev, axis=1)
        return merge_directions(self.merge_mode, y, y_rev), (sf, sb), Directions(cf, cb)

    def call(self, params: BidirectionalParams, x, mask=None, training=False, rng=None, initial_state=None):
        """``(outputs, (forward_state, backward_state))`` with ``outputs`` a tuple: the merged
        output, or ``(y_fwd, y_bwd)`` with ``merge_mode=None``."""
        out, finals, _ = self.run(params, x, mask, training, rng, initial_state)
        return out, finals

    def apply(self, params: BidirectionalParams, x, mask=None, training=False, rng=None, initial_state=None):
        """Outputs as Keras returns them (see the class docstring)."""
        out, (sf, sb) = self.call(params, x, mask, training, rng, initial_state)
        if self.return_state:
            return out + tuple(sf) + tuple(sb)
        return out[0] if len(out) == 1 else out


# --- feed-forward layers ------------------------------------------------------------------------


RECURRENT = (RNN, Bidirectional)


def is_bidirectional(layer: Any) -> bool:
    """Whether ``layer`` is a :class:`Bidirectional` (or a layer shaped like one: it holds a
    ``forward_layer`` and a ``backward_layer``).

    Example:
        >>> from rnncore import layers
        >>> layers.is_bidirectional(layers.Bidirectional(layers.GRU(2))), layers.is_bidirectional(layers.GRU(2))
        (True, False)
    """
    return hasattr(layer, "forward_layer") and hasattr(layer, "backward_layer")


def is_recurrent(layer: Any) -> bool:
    """Whether ``layer`` is recurrent: it holds a ``.cell`` (:class:`RNN` and its subclasses) or is
    :func:`is_bidirectional`.

    Example:
        >>> from rnncore import layers
        >>> layers.is_recurrent(layers.LSTM(2)), layers.is_recurrent(layers.Dense(2))
        (True, False)
    """
    return hasattr(layer, "cell") or is_bidirectional(layer)
