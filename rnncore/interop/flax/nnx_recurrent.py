r"""The recurrent nnx module kinds: ``nnx.RNN`` over a cell of :mod:`~rnncore.interop.flax.nnx_cells`, and
``nnx.Bidirectional``.

They compute what linen's ``nn.RNN`` and ``nn.Bidirectional`` compute (:mod:`~rnncore.interop.flax.recurrent`):
``reverse=True`` is rnncore's ``go_backwards=True`` (outputs in processing order), ``return_carry=True``
its ``return_state=True``, ``time_major`` flax's layout (:func:`~rnncore.interop.flax.flax_call`);
``reverse=True`` with ``keep_order=True`` is refused outside ``nnx.Bidirectional``, which runs its
backward RNN that way and merges in input time (its inner RNNs' own flags are overridden by nnx
and ignored here). ``merge_fn``: nnx's default concatenation, ``jnp.add``, ``jnp.multiply`` or
:data:`~rnncore.interop.flax.recurrent.MERGE_FNS`' functions.

``unroll``, ``rngs`` (they draw the initial carry, which is zeros for every supported cell) and
``broadcast_rngs`` (the cells draw no random numbers) do not change the numbers and are ignored;
``state_axes`` must keep its default (every step shares the params).

>>> NNX_RNN.nnx_class, [t.__name__ for t in NNX_BIDIRECTIONAL.rnncore_types]
('RNN', ['Bidirectional'])
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

from ... import layers as L
from .module_kind import Converted
from .nnx_cells import NNX_CELLS, cell_to_nnx, supported_list
from .nnx_fields import check_settings
from .recurrent import LAYERS, MERGE_FNS, check_bidirectional_exportable, check_exportable, last_step, merge_mode

__all__ = ["NnxKind", "NNX_RNN", "NNX_BIDIRECTIONAL"]


@dataclass(frozen=True)
class NnxKind:
    """What the converter knows about one flax nnx module class.

    * ``to_rnncore(module, at) -> Converted``: the rnncore layer equal to ``module`` and its params
      (read from the module), refusing by name every setting rnncore does not represent;
    * ``to_nnx(layer, params, features, at) -> (items, features)``: the nnx modules (and plain
      functions, as ``nnx.Sequential`` takes them) equal to an rnncore layer, holding its params,
      given the size of the layer's input features (None where not known), and the size of its output's;
    * ``rnncore_types``: the rnncore layer classes it exports.
    """

    nnx_class: str
    rnncore_types: tuple
    to_rnncore: Callable[[Any, str], Converted]
    to_nnx: Callable[[Any, Any, Any, str], tuple]


def _recurrent(rnn: Any, at: str, **flags: Any) -> tuple:
    """``(layer, cell params)``: the rnncore recurrent layer over an ``nnx.RNN``'s cell, with ``flags``."""
    from flax import nnx
    from flax.nnx.transforms.iteration import Carry

    if type(rnn) is not nnx.RNN:
        raise ValueError(f"{at}: expected an nnx.RNN; got {type(rnn).__name__}.")
    cell = rnn.cell
    name = type(cell).__name__
    if name not in NNX_CELLS or type(cell) is not getattr(nnx, name, None):
        raise ValueError(f"{at}: cell {name} is not supported; expected one of {supported_list()}.")
    check_settings(
        rnn, at, ("time_major", "return_carry", "reverse", "keep_order", "unroll", "state_axes", "broadcast_rngs")
    )
    default: Any = {...: Carry}
    if rnn.state_axes != nnx.StateAxes(default):
        raise ValueError(
            f"{at}: state_axes={rnn.state_axes!r} is not supported; expected its default StateAxes({{...: Carry}}) "
            "(every step shares the params)."
        )
    rc_cell, p = NNX_CELLS[name].to_rnncore(cell, f"{at}, cell {name}")
    return LAYERS[name](cell=rc_cell, return_sequences=True, **flags), p


def _rnn_to_rnncore(rnn: Any, at: str) -> Converted:
    if rnn.reverse and rnn.keep_order:
        raise ValueError(
            f"{at}: reverse=True with keep_order=True returns the outputs in input order, which a lone rnncore "
            "layer does not (go_backwards returns them in processing order, as Keras); expected keep_order=False, "
            "or both directions in an nnx.Bidirectional."
        )
    layer, p = _recurrent(rnn, at, go_backwards=bool(rnn.reverse), return_state=bool(rnn.return_carry))
    return Converted(layer, p, bool(rnn.time_major))


def _rnn_to_nnx(layer: Any, params: Any, features: Any, at: str) -> tuple:
    from flax import nnx

    check_exportable(layer, at)
    cell = cell_to_nnx(layer.cell, L.check_cell_params(layer.cell, params), at)
    rnn = nnx.RNN(cell, reverse=layer.go_backwards, return_carry=layer.return_state)
    return ([rnn] if layer.return_sequences else [rnn, last_step]), layer.cell.units


NNX_RNN = NnxKind("RNN", (L.RNN, L.SimpleRNN, L.LSTM, L.GRU), _rnn_to_rnncore, _rnn_to_nnx)


def _nnx_concatenate() -> Any:
    from flax import nnx

    return inspect.signature(nnx.Bidirectional.__init__).parameters["merge_fn"].default


def _bidirectional_to_rnncore(bi: Any, at: str) -> Converted:
    check_settings(bi, at, ("merge_fn", "time_major", "return_carry"))
    mode = merge_mode(bi.merge_fn, at, _nnx_concatenate())
    state = bool(bi.return_carry)
    fwd, pf = _recurrent(bi.forward_rnn, f"{at}.forward_rnn", return_state=state)
    bwd, pb = _recurrent(bi.backward_rnn, f"{at}.backward_rnn", return_state=state, go_backwards=True)
    layer = L.Bidirectional(fwd, merge_mode=mode, backward_layer=bwd)
    return Converted(layer, L.BidirectionalParams(pf, pb), bool(bi.time_major))


def _bidirectional_to_nnx(layer: Any, params: Any, features: Any, at: str) -> tuple:
    from flax import nnx

    check_bidirectional_exportable(layer, params, at)
    fwd, bwd = layer.forward_layer, layer.backward_layer
    cf = cell_to_nnx(fwd.cell, L.check_cell_params(fwd.cell, params[0]), at + ".forward_layer")
    cb = cell_to_nnx(bwd.cell, L.check_cell_params(bwd.cell, params[1]), at + ".backward_layer")
    kwargs: dict[str, Any] = {} if layer.merge_mode == "concat" else {"merge_fn": MERGE_FNS[layer.merge_mode]}
    module = nnx.Bidirectional(nnx.RNN(cf), nnx.RNN(cb), return_carry=layer.return_state, **kwargs)
    u, v = fwd.cell.units, bwd.cell.units
    return [module], (u + v if layer.merge_mode == "concat" else u)


NNX_BIDIRECTIONAL = NnxKind("Bidirectional", (L.Bidirectional,), _bidirectional_to_rnncore, _bidirectional_to_nnx)
