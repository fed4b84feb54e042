"""What an rnncore layer must be for flax (linen or nnx) to hold it: the export refusals both
APIs share, each naming the flax module (``nn.Embed`` or ``nnx.Embed``, ...) it would become.

>>> from rnncore import layers
>>> dense_arrays(layers.DenseParams(1.0, None), "layers[0]")
(1.0, None)
"""

from __future__ import annotations

from typing import Any

__all__ = ["SUPPORTED_LAYERS", "dense_arrays", "check_dropout", "check_layer_norm", "check_embedding"]

SUPPORTED_LAYERS = "SimpleRNN, LSTM, GRU, RNN, Bidirectional, Dense, Dropout, LayerNormalization, Embedding"
"""The rnncore layers flax can represent, as the refusals list them."""


def dense_arrays(params: Any, at: str) -> tuple:
    """``(kernel, bias)`` of a Dense's params; a ``ValueError`` naming ``at`` for anything else."""
    if not isinstance(params, (tuple, list)) or len(params) != 2:
        raise ValueError(f"{at}: params must be DenseParams(kernel, bias); got {type(params).__name__}.")
    return params[0], params[1]


def check_dropout(layer: Any, at: str) -> None:
    """A Dropout flax can hold: no ``noise_shape``."""
    if layer.noise_shape is not None:
        raise ValueError(f"{at}: noise_shape={layer.noise_shape!r} is not exported; expected None.")


def check_layer_norm(layer: Any, at: str, module: str) -> None:
    """A LayerNormalization flax's ``module`` (``nn.LayerNorm``, ``nnx.LayerNorm``) can hold: over
    the last axis, without RMS scaling."""
    if layer.axis not in (-1, (-1,)):
        raise ValueError(f"{at}: axis={layer.axis!r} is not exported; expected -1 (flax's default reduction axis).")
    if layer.rms_scaling:
        raise ValueError(f"{at}: rms_scaling=True has no flax {module} counterpart; expected False.")


def check_embedding(layer: Any, at: str, module: str) -> None:
    """An Embedding flax's ``module`` (``nn.Embed``, ``nnx.Embed``) can hold: no mask, no frozen row."""
    for arg, ok in (("mask_zero", not layer.mask_zero), ("padding_idx", layer.padding_idx is None)):
        if not ok:
            raise ValueError(
                f"{at}: {arg}={getattr(layer, arg)!r} has no flax counterpart ({module} has no masks and no frozen "
                f"rows); expected {'False' if arg == 'mask_zero' else 'None'}."
            )
