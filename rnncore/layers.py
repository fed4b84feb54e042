"""Keras-semantics layers over :mod:`rnncore.bptt`.

A layer is a frozen dataclass of its Keras configuration (hashable, hence static under ``jit``)
with three pure methods:

* ``init(key, input_shape) -> params`` (``input_shape`` excludes the batch: ``(T, F)``, T may be
  None);
* ``apply(params, x, mask=None, training=False, rng=None, ...)`` -> outputs, as Keras returns
  them;
* ``compute_mask(x, mask)`` -> the mask passed on, as Keras propagates it.

Recurrent layers (:class:`SimpleRNN`, :class:`LSTM`, :class:`GRU`, :class:`LayerNormLSTM`, or
:class:`RNN` around any cell) hold their cell as ``.cell``; their params *are* the cell's params.

Semantics pinned here (Keras 3, JAX backend, scan path):

* ``go_backwards``: outputs in processing order (``y[:, 0]`` is the output after consuming
  ``x[:, -1]``); the mask is passed on unchanged.
* masks: a masked step carries the state; the output repeats the previous output, or is zero with
  ``zero_output_for_mask``. A row with every step masked returns its initial state.
* dropout: Keras's variational masks, one per sequence, drawn from ``rng`` only when
  ``training=True`` (see :meth:`rnncore.cells.Cell.dropout_masks`).
* ``return_state``: ``(output, *state)``, e.g. ``(y, h, c)`` for LSTM.
* ``stateful``: the caller carries the state: ``return_state=True`` returns the final state, which
  is fed back as ``initial_state`` for the next chunk.
* NaN inputs give NaN results, not an error (values cannot be checked under ``jit``): a NaN in
  ``x[b, t]`` makes row ``b``'s state and outputs NaN from the step that consumes it on (in
  processing order), while earlier steps and every other row are unchanged. A NaN at a masked step
  never reaches the outputs or states (the state is carried), but its gradient is NaN all the same;
  zero the padding (as ``Masking`` does) before differentiating.
* Bad shapes, dtypes, params or arguments raise a ``ValueError`` naming the argument, what was
  given and what was expected, at trace time under ``jit``.

Recording: :meth:`RNN.run` and :meth:`Bidirectional.run` are the layers' forward with a hook for
the analyses of :mod:`rnncore.depth`. They return what each direction consumed and produced
(:class:`Consumed`: checked params, inputs, ``s_0``, masks, per-step outputs, final state) and take
an optional ``tap = (d_outputs, d_final)`` added to the full output sequence and the final state:
zeros leave every value unchanged, and the gradient with respect to the tap is the gradient with
respect to what it was added to. :meth:`RNN.call` and :meth:`apply` are ``run`` without a tap.

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

from . import activations, bptt, cells, checks, initializers
from .cells.contract import optional_member

# --- input checks -------------------------------------------------------------------------------


def _shape_str(a) -> str:
    return str(tuple(np.shape(a)))


def check_sequences(x, name: str = "inputs", features: Optional[int] = None) -> jax.Array:
    """A ``(B, T, F)`` floating array with T >= 1 (and F == ``features``), or a clear ValueError."""
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        try:
            x = jnp.asarray(x)
        except TypeError as e:
            raise ValueError(
                f"{name} must be an array of shape (batch, time, features); got {type(x).__name__}."
            ) from e
    if len(x.shape) != 3:
        raise ValueError(
            f"{name} must have shape (batch, time, features); got shape {_shape_str(x)} (rank {len(x.shape)})."
        )
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"{name} must be a floating-point array (float32 or float64); got dtype {x.dtype}.")
    if x.shape[1] == 0:
        raise ValueError(f"{name} has T=0 time steps (shape {_shape_str(x)}); a sequence needs at least one step.")
    if x.shape[0] == 0:
        raise ValueError(f"{name} has batch size 0 (shape {_shape_str(x)}).")
    if features is not None and x.shape[2] != features:
        raise ValueError(
            f"{name} has {x.shape[2]} features (shape {_shape_str(x)}) but the layer's kernel expects {features}."
        )
    return jnp.asarray(x)


def check_mask(mask, x, name: str = "mask") -> Optional[jax.Array]:
    """``None`` or a ``(B, T)`` boolean array matching ``x``, or a clear ValueError."""
    if mask is None:
        return None
    mask = jnp.asarray(mask)
    if mask.shape != tuple(x.shape[:2]):
        raise ValueError(f"{name} must have shape (batch, time) = {tuple(x.shape[:2])}; got shape {_shape_str(mask)}.")
    if not (mask.dtype == jnp.bool_ or jnp.issubdtype(mask.dtype, jnp.integer)):
        raise ValueError(f"{name} must be boolean (True where a step is real); got dtype {mask.dtype}.")
    return mask.astype(bool)


def _check_rng(rng, who: str):
    if rng is None:
        raise ValueError(f"{who}: training=True with dropout needs rng=jax.random.PRNGKey(...) to draw its masks.")
    return rng


@functools.lru_cache(maxsize=256)
def _param_shapes(cell, input_dim: int) -> tuple:
    """The shape of each params field ``cell.init`` makes for ``input_dim`` (None: no such array)."""
    tree = jax.eval_shape(lambda k: cell.init(k, input_dim), jax.ShapeDtypeStruct((2,), jnp.uint32))
    return tuple(None if a is None else tuple(a.shape) for a in tree)


def check_cell_params(cell, params):
    """``params`` as the cell's params NamedTuple (a plain tuple or list in Keras's
    ``get_weights()`` order is converted), every array shaped as ``cell.init`` makes it, or a
    clear ValueError."""
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
            f"params.{fields[0]} for {name} must be 2-D (input_dim, ...); got shape {_shape_str(params[0])}."
        )

    def desc(shape):
        return "None" if shape is None else f"shape {shape}"

    for field, want, a in zip(fields, _param_shapes(cell, int(np.shape(params[0])[0])), params):
        got = None if a is None else tuple(np.shape(a))
        if got != want:
            raise ValueError(f"params.{field} for {name}(units={cell.units}) must be {desc(want)}; got {desc(got)}.")
    return params


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
        cell = self.cell
        if initial_state is None:
            return cell.initial_state(batch, dtype)
        parts = tuple(initial_state)
        n = len(cell.state_type._fields)
        if len(parts) != n:
            raise ValueError(
                f"initial_state for {type(cell).__name__} must hold {n} array(s) "
                f"({', '.join(cell.state_type._fields)}); got {len(parts)}."
            )
        for name, a in zip(cell.state_type._fields, parts):
            if tuple(np.shape(a)) != (batch, cell.units):
                raise ValueError(
                    f"initial_state.{name} must have shape (batch, units) = {(batch, cell.units)}; got {_shape_str(a)}."
                )
        return cell.state_type(*(jnp.asarray(a, dtype) for a in parts))

    def _inputs(self, params, x, mask, training, rng, initial_state):
        """Checked ``(params, x, mask, s0, dropout_masks)``."""
        params = check_cell_params(self.cell, params)
        x = check_sequences(x, features=params.kernel.shape[0])
        mask = check_mask(mask, x)
        s0 = self._initial_state(initial_state, x.shape[0], x.dtype)
        dmasks = None
        if training and (self.cell.dropout > 0 or self.cell.recurrent_dropout > 0):
            dmasks = self.cell.dropout_masks(_check_rng(rng, type(self).__name__), x.shape[0], x.shape[2], x.dtype)
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


class DenseParams(NamedTuple):
    """Keras weight order: ``kernel (F, units)``, ``bias (units,)`` or None."""

    kernel: jax.Array
    bias: Optional[jax.Array] = None


@dataclass(frozen=True)
class Dense:
    """Keras ``Dense(units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
    bias_initializer="zeros")`` on the last axis; the mask passes through."""

    units: int
    activation: Any = None
    use_bias: bool = True
    kernel_initializer: Any = "glorot_uniform"
    bias_initializer: Any = "zeros"

    supports_masking = True

    def __post_init__(self):
        object.__setattr__(self, "units", checks.positive_int("Dense units", self.units))
        activations.get(self.activation, elementwise=False)
        initializers.get(self.kernel_initializer, name="kernel_initializer")
        initializers.get(self.bias_initializer, name="bias_initializer")

    def init(self, key, input_shape, dtype=jnp.float32) -> DenseParams:
        k1, k2 = jax.random.split(key)
        kernel = initializers.get(self.kernel_initializer)(k1, (int(input_shape[-1]), self.units), dtype)
        bias = initializers.get(self.bias_initializer)(k2, (self.units,), dtype) if self.use_bias else None
        return DenseParams(kernel, bias)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def compute_mask(self, x, mask):
        return mask

    def apply(self, params: DenseParams, x, mask=None, training=False, rng=None):
        x = jnp.asarray(x)
        if x.ndim < 1 or x.shape[-1] != params.kernel.shape[0]:
            raise ValueError(
                f"Dense inputs must have {params.kernel.shape[0]} features on the last axis; got shape {_shape_str(x)}."
            )
        y = x @ params.kernel
        if params.bias is not None:
            y = y + params.bias
        return activations.get(self.activation, elementwise=False)(y)


@dataclass(frozen=True)
class Dropout:
    """Keras ``Dropout(rate, noise_shape=None)``: inverted dropout while training, identity
    otherwise; the mask passes through. ``rate=1`` drops everything, as in Keras."""

    rate: float
    noise_shape: Optional[tuple] = None

    supports_masking = True

    def __post_init__(self):
        checks.real("Dropout rate", self.rate, 0, 1)

    def init(self, key, input_shape, dtype=jnp.float32):
        return ()

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_mask(self, x, mask):
        return mask

    def apply(self, params, x, mask=None, training=False, rng=None):
        x = jnp.asarray(x)
        if not training or self.rate == 0:
            return x
        if self.rate == 1:
            return jnp.zeros_like(x)
        shape = (
            x.shape
            if self.noise_shape is None
            else tuple(d if n is None else n for d, n in zip(x.shape, self.noise_shape))
        )
        keep = 1.0 - self.rate
        kept = jax.random.bernoulli(_check_rng(rng, "Dropout"), keep, shape)
        return jnp.where(kept, x / keep, 0).astype(x.dtype)


@dataclass(frozen=True)
class Masking:
    """Keras ``Masking(mask_value=0.0)``: a step is masked iff *all* its features equal
    ``mask_value``; masked steps are zeroed and the mask is passed on."""

    mask_value: float = 0.0

    supports_masking = True

    def init(self, key, input_shape, dtype=jnp.float32):
        return ()

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_mask(self, x, mask):
        return jnp.any(jnp.asarray(x) != self.mask_value, axis=-1)

    def apply(self, params, x, mask=None, training=False, rng=None):
        x = jnp.asarray(x)
        keep = jnp.any(x != self.mask_value, axis=-1, keepdims=True)
        return jnp.where(keep, x, 0).astype(x.dtype)


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
