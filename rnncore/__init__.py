"""rnncore: Keras-exact recurrent networks in JAX, with the backward pass opened up.

>>> import rnncore as rc
>>> sorted(n for n in ("SimpleRNN", "LSTM", "GRU", "LayerNormLSTM") if hasattr(rc.cells, n))
['GRU', 'LSTM', 'LayerNormLSTM', 'SimpleRNN']
"""

from . import (
    activations,
    analysis,
    bptt,
    callbacks,
    cells,
    checkpoints,
    checks,
    compilation,
    data,
    depth,
    diagnosis,
    functional,
    history,
    initializers,
    interop,
    layers,
    losses,
    meshes,
    metrics,
    models,
    optimizers,
    plot,
    progress,
    steps,
    sweeps,
    train,
)
from .compilation import jit
from .functional import Call, Input, Model
from .interop.flax import from_flax, to_flax
from .interop.torch import from_torch, to_torch
from .keras import from_keras, keras_weights, to_keras
from .models import Sequential
from .train import fit

__version__ = "0.1.0"

__all__ = [
    "activations",
    "analysis",
    "bptt",
    "callbacks",
    "cells",
    "checkpoints",
    "checks",
    "compilation",
    "data",
    "depth",
    "diagnosis",
    "functional",
    "history",
    "initializers",
    "interop",
    "layers",
    "losses",
    "meshes",
    "metrics",
    "models",
    "optimizers",
    "plot",
    "progress",
    "steps",
    "sweeps",
    "train",
    "Sequential",
    "Model",
    "Call",
    "Input",
    "fit",
    "jit",
    "from_keras",
    "to_keras",
    "keras_weights",
    "from_flax",
    "to_flax",
    "from_torch",
    "to_torch",
]
