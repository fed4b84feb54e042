"""Recurrent cells, one per file: params and state NamedTuples, ``init``, ``initial_state``,
``step``, the closed-form per-step ``jacobian`` and the names and activations of their gates.

What a cell provides is stated in :mod:`rnncore.cells.contract`; :class:`Cell` is the base that
gives every optional member its default. :data:`CELL_TYPES` names the cells rnncore ships, by
class name: adding a cell is its own file plus one entry there.

Example:
    >>> from rnncore import cells
    >>> list(cells.CELL_TYPES)
    ['SimpleRNN', 'LSTM', 'GRU', 'LayerNormLSTM']
    >>> cells.CELL_TYPES["GRU"](4).gate_activations()
    {'z': 'sigmoid', 'r': 'sigmoid', 'hh': 'tanh'}
"""

from . import contract
from ._base import Cell, DropoutMasks, matmul
from .gru import GRU, GRUGates, GRUParams, GRUState
from .layernorm_lstm import LayerNormLSTM, LayerNormLSTMGates, LayerNormLSTMParams
from .lstm import LSTM, LSTMGates, LSTMParams, LSTMState
from .simple_rnn import SimpleRNN, SimpleRNNGates, SimpleRNNParams, SimpleRNNState
from .stacked import StackedCells

#: ``{name: cell class}`` of the cells rnncore ships, in the order pictures list them (their
#: colours, :data:`rnncore.plot.CELL_COLORS`); a label names a cell type by one of these names.
CELL_TYPES: dict[str, type] = {cls.__name__: cls for cls in (SimpleRNN, LSTM, GRU, LayerNormLSTM)}

__all__ = [
    "Cell",
    "DropoutMasks",
    "CELL_TYPES",
    "contract",
    "matmul",
    "SimpleRNN",
    "SimpleRNNParams",
    "SimpleRNNState",
    "SimpleRNNGates",
    "LSTM",
    "LSTMParams",
    "LSTMState",
    "LSTMGates",
    "GRU",
    "GRUParams",
    "GRUState",
    "GRUGates",
    "LayerNormLSTM",
    "LayerNormLSTMParams",
    "LayerNormLSTMGates",
    "StackedCells",
]
