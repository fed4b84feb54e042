"""Keras-semantics layers over :mod:`rnncore.bptt`.

A layer is a frozen dataclass of its Keras configuration (hashable, hence static under ``jit``)
with three pure methods:

* ``init(key, input_shape) -> params`` (``input_shape`` excludes the batch: ``(T, F)``, T may be
  None);
* ``apply(params, x, mask=None, training=False, rng=None, ...)`` -> outputs, as Keras returns
  them;
* ``compute_mask(x, mask)`` -> the mask passed on, as Keras propagates it.

``LastStep`` (:mod:`.last_step`) takes the last time position of a sequence, ``x[:, -1]``.

Recurrent layers (:mod:`.recurrent`: :class:`SimpleRNN`, :class:`LSTM`, :class:`GRU`, :class:`LayerNormLSTM`, or
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

from .activation import Activation
from .convolution import Conv1D, Conv1DParams
from .core import Dense, DenseParams, Dropout, Masking
from .embedding import Embedding, EmbeddingParams
from .inputs import check_inputs, check_mask, check_rng, check_sequences, shape_str
from .last_step import LastStep
from .merging import Add, Average, Concatenate, Multiply, Subtract
from .noise import GaussianDropout, GaussianNoise, SpatialDropout1D
from .normalization import BatchNormalization, BatchNormalizationParams, LayerNormalization, LayerNormalizationParams
from .pooling import AveragePooling1D, GlobalAveragePooling1D, GlobalMaxPooling1D, MaxPooling1D
from .recurrent import (
    GRU,
    LSTM,
    RECURRENT,
    RNN,
    Bidirectional,
    BidirectionalParams,
    Consumed,
    Directions,
    LayerNormLSTM,
    SimpleRNN,
    check_cell_params,
    is_bidirectional,
    is_recurrent,
    merge_directions,
    split_bidirectional_state,
)
from .reshaping import Flatten, Permute, RepeatVector, Reshape
from .statistics import has_moving_statistics, non_trainable_fields, trainable_part, with_non_trainable
from .time_distributed import TimeDistributed

__all__ = [
    "Activation",
    "Add",
    "Average",
    "AveragePooling1D",
    "BatchNormalization",
    "BatchNormalizationParams",
    "Bidirectional",
    "BidirectionalParams",
    "Concatenate",
    "Consumed",
    "Conv1D",
    "Conv1DParams",
    "Dense",
    "DenseParams",
    "Directions",
    "Dropout",
    "Embedding",
    "EmbeddingParams",
    "Flatten",
    "GRU",
    "GaussianDropout",
    "GaussianNoise",
    "GlobalAveragePooling1D",
    "GlobalMaxPooling1D",
    "LSTM",
    "LastStep",
    "LayerNormLSTM",
    "LayerNormalization",
    "LayerNormalizationParams",
    "Masking",
    "MaxPooling1D",
    "Multiply",
    "Permute",
    "RECURRENT",
    "RNN",
    "RepeatVector",
    "Reshape",
    "SimpleRNN",
    "SpatialDropout1D",
    "Subtract",
    "TimeDistributed",
    "check_cell_params",
    "check_inputs",
    "check_mask",
    "check_rng",
    "check_sequences",
    "has_moving_statistics",
    "is_bidirectional",
    "is_recurrent",
    "merge_directions",
    "non_trainable_fields",
    "shape_str",
    "split_bidirectional_state",
    "trainable_part",
    "with_non_trainable",
]
