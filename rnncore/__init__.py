"""rnncore: Keras-exact recurrent networks in JAX, with the backward pass opened up.

>>> import rnncore as rc
>>> sorted(n for n in ("SimpleRNN", "LSTM", "GRU", "LayerNormLSTM") if hasattr(rc.cells, n))
['GRU', 'LSTM', 'LayerNormLSTM', 'SimpleRNN']
"""

from . import (activations, analysis, bptt, callbacks, cells, checkpoints, compilation, data, initializers, layers,
               losses, metrics, models, optimizers, plot, sweeps, train)
from .keras import from_keras, keras_weights, to_keras
from .compilation import jit
from .models import Sequential
from .train import fit

__version__ = "0.1.0"

__all__ = [
    "activations", "analysis", "bptt", "callbacks", "cells", "checkpoints", "compilation", "data", "initializers",
    "layers", "losses", "metrics", "models", "optimizers", "plot", "sweeps", "train",
    "Sequential", "fit", "jit", "from_keras", "to_keras", "keras_weights",
]
