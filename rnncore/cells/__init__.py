"""Recurrent cells, one per file: params and state NamedTuples, ``init``, ``initial_state``,
``step`` and the closed-form per-step ``jacobian``."""

from ._base import Cell, DropoutMasks, matmul
from .gru import GRU, GRUGates, GRUParams, GRUState
from .layernorm_lstm import LayerNormLSTM, LayerNormLSTMGates, LayerNormLSTMParams
from .lstm import LSTM, LSTMGates, LSTMParams, LSTMState
from .simple_rnn import SimpleRNN, SimpleRNNGates, SimpleRNNParams, SimpleRNNState

__all__ = [
    "Cell", "DropoutMasks", "matmul",
    "SimpleRNN", "SimpleRNNParams", "SimpleRNNState", "SimpleRNNGates",
    "LSTM", "LSTMParams", "LSTMState", "LSTMGates",
    "GRU", "GRUParams", "GRUState", "GRUGates",
    "LayerNormLSTM", "LayerNormLSTMParams", "LayerNormLSTMGates",
]
