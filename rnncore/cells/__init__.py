"""Recurrent cells, one per file: params and state NamedTuples, ``init``, ``initial_state``,
``step`` and the closed-form per-step ``jacobian``."""

from ._base import Cell, DropoutMasks
from .gru import GRU, GRUParams, GRUState
from .layernorm_lstm import LayerNormLSTM, LayerNormLSTMParams
from .lstm import LSTM, LSTMParams, LSTMState
from .simple_rnn import SimpleRNN, SimpleRNNParams, SimpleRNNState

__all__ = [
    "Cell", "DropoutMasks",
    "SimpleRNN", "SimpleRNNParams", "SimpleRNNState",
    "LSTM", "LSTMParams", "LSTMState",
    "GRU", "GRUParams", "GRUState",
    "LayerNormLSTM", "LayerNormLSTMParams",
]
