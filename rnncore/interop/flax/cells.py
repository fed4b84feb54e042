r"""One entry per flax linen cell: its rnncore cell, and its parameters both ways.

flax applies each Dense as ``x @ kernel (+ bias)`` (row vectors, like Keras); its cells keep one
Dense per gate. rnncore keeps Keras's fused layout (``kernel (F, G·u)``, ``recurrent_kernel
(u, G·u)``, ``bias``), so a conversion concatenates the per-gate kernels in Keras's gate order:

* ``SimpleCell``: :math:`h' = \varphi(x W_i + b_i + h W_h)` -> ``cells.SimpleRNN``:
  ``kernel = i/kernel``, ``recurrent_kernel = h/kernel``, ``bias = i/bias``.
* ``LSTMCell``, ``OptimizedLSTMCell`` (the same parameters): gates ``i, f, g, o`` = Keras's
  ``[i, f, c, o]``; input Denses ``ii, if, ig, io`` have no bias, recurrent ones ``hi, hf, hg, ho``
  have one -> ``cells.LSTM``: ``kernel = [ii|if|ig|io]``, ``recurrent_kernel = [hi|hf|hg|ho]``,
  ``bias = [b_hi|b_hf|b_hg|b_ho]``. ``gate_fn`` is the recurrent activation, ``activation_fn`` the
  activation. The carry is ``(c, h)``, rnncore's state ``(h, c)``.
* ``GRUCell``: :math:`r, z = \rho(x W_{i\cdot} + b_{i\cdot} + h W_{h\cdot})`,
  :math:`n = \varphi(x W_{in} + b_{in} + r \odot (h W_{hn} + b_{hn}))`,
  :math:`h' = (1 - z) n + z h`: Keras's ``reset_after=True`` GRU with gates ``[z, r, h]``, input
  bias ``[b_iz|b_ir|b_in]`` and recurrent bias ``[0|0|b_hn]``. Back to flax, Keras's recurrent
  ``z``, ``r`` biases are folded into the input ones (they are only ever summed with them).

Only ``SimpleCell(residual=True)`` has no rnncore cell, and is refused.

>>> sorted(CELLS)
['GRUCell', 'LSTMCell', 'OptimizedLSTMCell', 'SimpleCell']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import jax.numpy as jnp

from ... import cells
from .activations import activation_name, flax_function
from .fields import array, check_dtype, check_fields, check_zero_init

__all__ = ["CellKind", "CELLS", "for_rnncore_cell", "supported_list"]

_CELL_FIELDS = ("features", "gate_fn", "activation_fn", "dtype", "carry_init")


@dataclass(frozen=True)
class CellKind:
    """What the converter knows about one flax cell class.

    ``to_rnncore(cell, params, at) -> (rnncore cell, cell params)`` reads the cell's fields and
    its variables (``params`` is the ``cell`` subtree);
    ``to_flax(nn, cell, params, at) -> (flax cell, params subtree)`` goes back;
    ``carry(state)`` is flax's carry for an rnncore state, ``state(carry)`` the way back.
    """

    flax_class: str
    rnncore_type: type
    to_rnncore: Callable[[Any, Any, str], tuple]
    to_flax: Callable[[Any, Any, Any, str], tuple]
    carry: Callable[[Any], Any]
    state: Callable[[Any], tuple]


def _check_cell(cell: Any, at: str, dtype: Any, extra: tuple = ()) -> None:
    check_fields(cell, at, _CELL_FIELDS + extra)
    check_dtype(cell, at, dtype)
    check_zero_init(cell, at, "carry_init")


def _input_features(p: Any, dense: str, at: str) -> int:
    """The input size, read from the kernel of the input Dense ``dense``."""
    node: Any = p.get(dense) if hasattr(p, "get") else None
    kernel = node.get("kernel") if hasattr(node, "get") else None
    if kernel is None or len(jnp.shape(kernel)) != 2:
        have = sorted(p) if hasattr(p, "keys") else type(p).__name__
        raise ValueError(f"{at}: params have no 2-D {dense}/kernel; found {have}.")
    return int(jnp.shape(kernel)[0])


def _dense(kernel: Any, bias: Any = None) -> dict:
    return {"kernel": kernel} if bias is None else {"kernel": kernel, "bias": bias}


# --- SimpleCell ---------------------------------------------------------------------------------


def _simple_in(cell: Any, p: Any, at: str) -> tuple:
    u = cell.features
    features = _input_features(p, "i", at)
    kernel = array(p, ("i", "kernel"), (features, u), at)
    _check_cell(cell, at, kernel.dtype, ("residual",))
    if cell.residual:
        raise ValueError(f"{at}: residual=True has no rnncore equivalent; expected residual=False.")
    act = activation_name(cell.activation_fn, at, "activation_fn")
    params = cells.SimpleRNNParams(kernel, array(p, ("h", "kernel"), (u, u), at), array(p, ("i", "bias"), (u,), at))
    return cells.SimpleRNN(u, activation=act), params


def _simple_out(nn: Any, cell: Any, p: Any, at: str) -> tuple:
    act = flax_function(cell.activation, at, "activation")
    module = nn.SimpleCell(features=cell.units, activation_fn=act, param_dtype=p.kernel.dtype)
    return module, {"i": _dense(p.kernel, p.bias), "h": _dense(p.recurrent_kernel)}


# --- LSTMCell, OptimizedLSTMCell ----------------------------------------------------------------

_LSTM_GATES = ("i", "f", "g", "o")  # flax's names, in Keras's order [i, f, c, o]


def _lstm_in(cell: Any, p: Any, at: str) -> tuple:
    u = cell.features
    features = _input_features(p, "ii", at)
    kernel = jnp.concatenate([array(p, ("i" + g, "kernel"), (features, u), at) for g in _LSTM_GATES], axis=-1)
    _check_cell(cell, at, kernel.dtype)
    recurrent = jnp.concatenate([array(p, ("h" + g, "kernel"), (u, u), at) for g in _LSTM_GATES], axis=-1)
    bias = jnp.concatenate([array(p, ("h" + g, "bias"), (u,), at) for g in _LSTM_GATES], axis=-1)
    rc = cells.LSTM(
        u,
        activation=activation_name(cell.activation_fn, at, "activation_fn"),
        recurrent_activation=activation_name(cell.gate_fn, at, "gate_fn"),
    )
    return rc, cells.LSTMParams(kernel, recurrent, bias)


def _lstm_out(nn: Any, cell: Any, p: Any, at: str) -> tuple:
    module = nn.LSTMCell(
        features=cell.units,
        gate_fn=flax_function(cell.recurrent_activation, at, "recurrent_activation"),
        activation_fn=flax_function(cell.activation, at, "activation"),
        param_dtype=p.kernel.dtype,
    )
    ks, rs, bs = (jnp.split(a, 4, axis=-1) for a in (p.kernel, p.recurrent_kernel, p.bias))
    tree = {}
    for g, k, r, b in zip(_LSTM_GATES, ks, rs, bs):
        tree["i" + g] = _dense(k)
        tree["h" + g] = _dense(r, b)
    return module, tree


# --- GRUCell ----------------------------------------------------------------------------------------

_GRU_GATES = ("z", "r", "n")  # flax's names, in Keras's order [z, r, h]


def _gru_in(cell: Any, p: Any, at: str) -> tuple:
    u = cell.features
    features = _input_features(p, "ir", at)
    kernel = jnp.concatenate([array(p, ("i" + g, "kernel"), (features, u), at) for g in _GRU_GATES], axis=-1)
    _check_cell(cell, at, kernel.dtype)
    recurrent = jnp.concatenate([array(p, ("h" + g, "kernel"), (u, u), at) for g in _GRU_GATES], axis=-1)
    input_bias = jnp.concatenate([array(p, ("i" + g, "bias"), (u,), at) for g in _GRU_GATES], axis=-1)
    b_hn = array(p, ("hn", "bias"), (u,), at)
    recurrent_bias = jnp.concatenate([jnp.zeros((2 * u,), b_hn.dtype), b_hn])
    rc = cells.GRU(
        u,
        activation=activation_name(cell.activation_fn, at, "activation_fn"),
        recurrent_activation=activation_name(cell.gate_fn, at, "gate_fn"),
        reset_after=True,
    )
    return rc, cells.GRUParams(kernel, recurrent, jnp.stack([input_bias, recurrent_bias]))


def _gru_out(nn: Any, cell: Any, p: Any, at: str) -> tuple:
    module = nn.GRUCell(
        features=cell.units,
        gate_fn=flax_function(cell.recurrent_activation, at, "recurrent_activation"),
        activation_fn=flax_function(cell.activation, at, "activation"),
        param_dtype=p.kernel.dtype,
    )
    ks, rs = jnp.split(p.kernel, 3, axis=-1), jnp.split(p.recurrent_kernel, 3, axis=-1)
    (bz, br, bh), (rz, rr, rh) = jnp.split(p.bias[0], 3), jnp.split(p.bias[1], 3)
    input_biases = (bz + rz, br + rr, bh)  # Keras's recurrent z, r biases only ever add to the input ones
    tree = {}
    for g, k, r, b in zip(_GRU_GATES, ks, rs, input_biases):
        tree["i" + g] = _dense(k, b)
        tree["h" + g] = _dense(r, rh if g == "n" else None)
    return module, tree


# --- the table ---------------------------------------------------------------------------------------


def _h_carry(state: Any) -> Any:
    return state[0]


def _lstm_carry(state: Any) -> tuple:
    h, c = state
    return (c, h)  # flax: (c, h); rnncore, Keras: (h, c)


def _lstm_state(carry: Any) -> tuple:
    c, h = carry
    return (h, c)


_SIMPLE = CellKind("SimpleCell", cells.SimpleRNN, _simple_in, _simple_out, _h_carry, lambda carry: (carry,))
_LSTM = CellKind("LSTMCell", cells.LSTM, _lstm_in, _lstm_out, _lstm_carry, _lstm_state)
_GRU = CellKind("GRUCell", cells.GRU, _gru_in, _gru_out, _h_carry, lambda carry: (carry,))

CELLS: dict = {
    "SimpleCell": _SIMPLE,
    "LSTMCell": _LSTM,
    "OptimizedLSTMCell": CellKind("OptimizedLSTMCell", cells.LSTM, _lstm_in, _lstm_out, _lstm_carry, _lstm_state),
    "GRUCell": _GRU,
}
"""flax linen cell class name -> :class:`CellKind`."""

_BY_RNNCORE = {cells.SimpleRNN: _SIMPLE, cells.LSTM: _LSTM, cells.GRU: _GRU}


def supported_list() -> str:
    """The supported flax cells as messages list them."""
    return ", ".join(f"nn.{name}" for name in CELLS)


def for_rnncore_cell(cell: Any, at: str) -> CellKind:
    """The kind of an rnncore cell flax can represent, or a ``ValueError`` naming what is not."""
    kind = _BY_RNNCORE.get(type(cell))
    if kind is None:
        raise ValueError(
            f"{at}: cell {type(cell).__name__} has no flax counterpart; expected cells.SimpleRNN, cells.LSTM "
            "or cells.GRU."
        )
    for arg, ok, expected in (
        ("use_bias", cell.use_bias, "True (flax cells always have biases)"),
        ("dropout", cell.dropout == 0, "0 (flax cells have no dropout)"),
        ("recurrent_dropout", cell.recurrent_dropout == 0, "0 (flax cells have no dropout)"),
        ("compute_dtype", getattr(cell, "compute_dtype", None) is None, "None"),
        ("reset_after", getattr(cell, "reset_after", True), "True (flax's GRUCell resets after the matmul)"),
    ):
        if not ok:
            raise ValueError(f"{at}: {arg}={getattr(cell, arg)!r} has no flax counterpart; expected {expected}.")
    return kind
