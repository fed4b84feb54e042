r"""The recurrent module kinds: ``nn.RNN`` over a cell of :mod:`~rnncore.interop.flax.cells`, and ``nn.Bidirectional``.

flax's ``nn.RNN(cell, time_major=False, return_carry=False, reverse=False, keep_order=False)``
always returns the whole output sequence. With ``reverse=True`` it consumes the inputs from the last
step to the first and returns the outputs in that processing order: rnncore's (Keras's)
``go_backwards=True``, whose ``y[:, 0]`` is the output after consuming ``x[:, -1]``. With
``keep_order=True`` as well, flax flips the outputs back to input time; a lone rnncore layer has
no such flag (only ``Bidirectional`` flips its backward half back), so that combination is refused
outside ``nn.Bidirectional``. ``return_carry=True`` is rnncore's ``return_state=True``: flax returns
``(carry, y)``, rnncore ``(y, *state)`` (see :mod:`~rnncore.interop.flax.calling`).

``nn.Bidirectional(forward_rnn, backward_rnn, merge_fn, time_major, return_carry)`` runs
``backward_rnn`` with ``reverse=True, keep_order=True`` and merges in input time: rnncore's
``Bidirectional(forward, backward_layer=go_backwards copy, merge_mode)`` with
``return_sequences=True``. The inner modules' own ``reverse``, ``keep_order``, ``time_major`` and
``return_carry`` are overridden by flax and ignored here. ``merge_fn`` is flax's default
concatenation (``'concat'``), or one of :data:`MERGE_FNS` (``jnp.add``, ``jnp.multiply`` too).

``unroll`` does not change the numbers and is ignored; ``variable_axes``, ``variable_broadcast``,
``variable_carry`` and ``split_rngs`` must keep their defaults (parameters shared by every step).

>>> import jax.numpy as jnp
>>> merge_average(jnp.ones(2), jnp.zeros(2)).tolist()
[0.5, 0.5]
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from ... import layers as L
from . import cells as C
from .fields import check_fields, module_at
from .module_kind import Converted, ModuleKind

__all__ = [
    "RNN",
    "BIDIRECTIONAL",
    "MERGE_FNS",
    "merge_sum",
    "merge_average",
    "merge_multiply",
    "last_step",
    "cell_kind",
    "rnncore_recurrent",
    "merge_mode",
    "check_exportable",
    "check_bidirectional_exportable",
    "LAYERS",
]

_RNN_FIELDS = ("cell", "time_major", "return_carry", "reverse", "keep_order", "unroll")
LAYERS = {"SimpleCell": L.SimpleRNN, "LSTMCell": L.LSTM, "OptimizedLSTMCell": L.LSTM, "GRUCell": L.GRU}


def merge_sum(a: Any, b: Any) -> Any:
    """``merge_fn`` for Keras's ``merge_mode='sum'``: :math:`y + \\overleftarrow{y}`."""
    return a + b


def merge_average(a: Any, b: Any) -> Any:
    """``merge_fn`` for Keras's ``merge_mode='ave'``: :math:`(y + \\overleftarrow{y}) / 2`."""
    return (a + b) / 2


def merge_multiply(a: Any, b: Any) -> Any:
    """``merge_fn`` for Keras's ``merge_mode='mul'``: :math:`y \\odot \\overleftarrow{y}`."""
    return a * b


MERGE_FNS = {"sum": merge_sum, "ave": merge_average, "mul": merge_multiply}
"""rnncore merge mode -> the ``merge_fn`` :func:`~rnncore.interop.flax.to_flax` gives
``nn.Bidirectional`` (``'concat'`` keeps flax's default)."""


def last_step(*outputs: Any) -> Any:
    """The function after an ``nn.RNN`` in an ``nn.Sequential`` for rnncore's
    ``return_sequences=False``: the output at the last processed step, ``y[:, -1]`` (batch-major
    outputs); after ``return_carry=True`` (two arguments) ``(carry, y[:, -1])``."""
    if len(outputs) == 2:
        return outputs[0], outputs[1][:, -1]
    (y,) = outputs
    return y[:, -1]


def merge_mode(fn: Any, at: str, concatenate: Any) -> str:
    """The rnncore merge mode of a ``merge_fn`` (``concatenate``: flax's default one, linen's or nnx's)."""
    known = {concatenate: "concat", jnp.add: "sum", jnp.multiply: "mul"}
    known.update({f: mode for mode, f in MERGE_FNS.items()})
    mode = known.get(fn) if getattr(fn, "__hash__", None) else None
    if mode is None:
        shown = getattr(fn, "__name__", None) or type(fn).__name__
        raise ValueError(
            f"{at}: merge_fn={shown} has no rnncore merge mode; expected flax's default concatenation, "
            "jnp.add, jnp.multiply, or rnncore.interop.flax.merge_sum/merge_average/merge_multiply."
        )
    return mode


def _linen_concatenate() -> Any:
    import dataclasses

    import flax.linen as nn

    return next(f.default for f in dataclasses.fields(nn.Bidirectional) if f.name == "merge_fn")


def cell_kind(rnn: Any, at: str) -> C.CellKind:
    """The :class:`~.cells.CellKind` of an ``nn.RNN``'s cell, or a ``ValueError``."""
    import flax.linen as nn

    if type(rnn) is not nn.RNN:
        raise ValueError(f"{at}: expected an nn.RNN; got {type(rnn).__name__}.")
    cell = rnn.cell
    name = type(cell).__name__
    if name not in C.CELLS or type(cell) is not getattr(nn, name):
        raise ValueError(f"{at}: cell {name} is not supported; expected one of {C.supported_list()}.")
    check_fields(rnn, at, _RNN_FIELDS)
    return C.CELLS[name]


def _cell_params(params: Any, at: str) -> Any:
    if not hasattr(params, "keys") or "cell" not in params:
        have = sorted(params) if hasattr(params, "keys") else type(params).__name__
        raise ValueError(f"{at}: params have no cell; found {have}.")
    return params["cell"]


def rnncore_recurrent(rnn: Any, params: Any, at: str, **flags: Any) -> tuple:
    """``(layer, cell params)``: the rnncore recurrent layer over an ``nn.RNN``'s cell, with ``flags``."""
    kind = cell_kind(rnn, at)
    cell_at = f"{at}, cell {type(rnn.cell).__name__}"
    cell, p = kind.to_rnncore(rnn.cell, _cell_params(params, at), cell_at)
    return LAYERS[kind.flax_class](cell=cell, return_sequences=True, **flags), p


# --- nn.RNN -----------------------------------------------------------------------------------------


def _rnn_to_rnncore(rnn: Any, params: Any, at: str) -> Converted:
    cell_kind(rnn, at)
    if rnn.reverse and rnn.keep_order:
        raise ValueError(
            f"{at}: reverse=True with keep_order=True returns the outputs in input order, which a lone rnncore "
            "layer does not (go_backwards returns them in processing order, as Keras); expected keep_order=False, "
            "or both directions in an nn.Bidirectional."
        )
    layer, p = rnncore_recurrent(rnn, params, at, go_backwards=bool(rnn.reverse), return_state=bool(rnn.return_carry))
    return Converted(layer, p, bool(rnn.time_major))


def check_exportable(layer: Any, at: str) -> C.CellKind:
    if type(layer) not in (L.RNN, L.SimpleRNN, L.LSTM, L.GRU):
        raise ValueError(f"{at} ({type(layer).__name__}) has no flax counterpart.")
    kind = C.for_rnncore_cell(layer.cell, at)
    if layer.stateful:
        raise ValueError(
            f"{at}: stateful=True has no flax counterpart (nn.RNN keeps no state between calls); expected False."
        )
    if layer.truncate_gradient is not None:
        raise ValueError(
            f"{at}: truncate_gradient={layer.truncate_gradient} has no flax counterpart (flax differentiates "
            "through every step); expected None."
        )
    return kind


def _rnn_to_flax(nn: Any, layer: Any, params: Any, at: str) -> tuple:
    kind = check_exportable(layer, at)
    cell, tree = kind.to_flax(nn, layer.cell, L.check_cell_params(layer.cell, params), at)
    rnn = nn.RNN(cell, reverse=layer.go_backwards, return_carry=layer.return_state)
    modules = [rnn] if layer.return_sequences else [rnn, last_step]
    return modules, {"cell": tree}


RNN = ModuleKind("RNN", (L.RNN, L.SimpleRNN, L.LSTM, L.GRU), _rnn_to_rnncore, _rnn_to_flax)


# --- nn.Bidirectional ----------------------------------------------------------------------------------


def _bidirectional_to_rnncore(bi: Any, params: Any, at: str) -> Converted:
    check_fields(bi, at, ("forward_rnn", "backward_rnn", "merge_fn", "time_major", "return_carry"))
    mode = merge_mode(bi.merge_fn, at, _linen_concatenate())
    state = bool(bi.return_carry)
    pick = {} if not hasattr(params, "keys") else params
    fwd, pf = rnncore_recurrent(
        bi.forward_rnn, pick.get("forward_rnn", {}), module_at("forward_rnn", bi.forward_rnn), return_state=state
    )
    bwd, pb = rnncore_recurrent(
        bi.backward_rnn,
        pick.get("backward_rnn", {}),
        module_at("backward_rnn", bi.backward_rnn),
        return_state=state,
        go_backwards=True,
    )
    layer = L.Bidirectional(fwd, merge_mode=mode, backward_layer=bwd)
    return Converted(layer, L.BidirectionalParams(pf, pb), bool(bi.time_major))


def check_bidirectional_exportable(layer: Any, params: Any, at: str) -> tuple:
    """``(forward kind, backward kind)`` of an rnncore ``Bidirectional`` that flax can represent
    (as ``Bidirectional(RNN, RNN)``), or a ``ValueError`` naming what it cannot."""
    fwd, bwd = layer.forward_layer, layer.backward_layer
    kf = check_exportable(fwd, at + ".forward_layer")
    kb = check_exportable(bwd, at + ".backward_layer")
    if fwd.go_backwards or not bwd.go_backwards:
        raise ValueError(
            f"{at}: the forward layer has go_backwards={fwd.go_backwards} and the backward layer "
            f"go_backwards={bwd.go_backwards}; flax runs the first forwards and the second backwards."
        )
    if not layer.return_sequences:
        raise ValueError(
            f"{at}: return_sequences=False has no flax counterpart (nn.Bidirectional returns the merged sequence, "
            "the backward half in input order); expected return_sequences=True."
        )
    if layer.merge_mode is None:
        raise ValueError(f"{at}: merge_mode=None has no flax counterpart; expected 'concat', 'sum', 'ave' or 'mul'.")
    if not isinstance(params, (tuple, list)) or len(params) != 2:
        raise ValueError(f"{at}: params must be BidirectionalParams(forward, backward); got {type(params).__name__}.")
    return kf, kb


def _bidirectional_to_flax(nn: Any, layer: Any, params: Any, at: str) -> tuple:
    fwd, bwd = layer.forward_layer, layer.backward_layer
    kf, kb = check_bidirectional_exportable(layer, params, at)
    cf, tf = kf.to_flax(nn, fwd.cell, L.check_cell_params(fwd.cell, params[0]), at + ".forward_layer")
    cb, tb = kb.to_flax(nn, bwd.cell, L.check_cell_params(bwd.cell, params[1]), at + ".backward_layer")
    kwargs = {} if layer.merge_mode == "concat" else {"merge_fn": MERGE_FNS[layer.merge_mode]}
    module = nn.Bidirectional(nn.RNN(cf), nn.RNN(cb), return_carry=layer.return_state, **kwargs)
    return [module], {"forward_rnn": {"cell": tf}, "backward_rnn": {"cell": tb}}


BIDIRECTIONAL = ModuleKind("Bidirectional", (L.Bidirectional,), _bidirectional_to_rnncore, _bidirectional_to_flax)
