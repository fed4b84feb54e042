"""The Keras 3 converter, split by idea (its public path is :mod:`rnncore.keras`).

=======================  ==========================================================================================
module                   what it knows
=======================  ==========================================================================================
``context``              where a model comes from, and how refusals and warnings are worded
``config``               Keras config values <-> rnncore arguments (origins, dtypes, activations, initializers)
``recurrent``            what the recurrent layer kinds share (cell arguments, flags, config in and out)
``layer_kind``           what one entry holds (:class:`~.layer_kind.LayerKind`), and the pieces entries share
``kind_args``            config arguments rnncore's layers check themselves (sizes, shapes, axes), weightless kinds
``embedding_kinds``      the entry of ``Embedding`` (token ids in)
``normalization_kinds``  the entries of ``LayerNormalization`` and ``BatchNormalization``
``weightless_kinds``     the shape, activation and noise layers (``Flatten``, ``GaussianNoise``, ...)
``wrapper_kinds``        ``TimeDistributed``, handed the table of the kinds it wraps
``conv_kinds``           the entries of ``Conv1D`` and the 1-D poolings
``merging_kinds``        the entries of the merge layers (``Concatenate``, ``Add``, ...), several inputs
``stacked_kinds``        ``RNN`` over a list of cells (``StackedRNNCells``), and the ``RNN`` entry's dispatch
``layer_kinds``          the table: one entry per Keras layer kind (config in, weight order, config out)
``graph``                functional models: the one chain ``Input -> layer -> ... -> layer`` and its masks
``files``                ``.keras`` files read without Keras (zip, size limits, ``model.weights.h5``)
``weights``              params-shaped trees in ``get_weights()`` order, and back
``loading``              :func:`from_keras`: a config and its weights -> ``(model, params)``
``export``               :func:`to_keras`: an rnncore model -> a built ``keras.Sequential``
``parity``               the parity table of ``rnncore check-keras`` (rnncore against Keras on random stacks)
=======================  ==========================================================================================

Each module imports only the ones above it in this table; none imports ``keras`` at module level.
A new Keras layer kind is one new entry in :data:`~rnncore.interop.keras.layer_kinds.KINDS`.
"""

from .export import to_keras
from .loading import from_keras
from .weights import keras_weights

__all__ = ["from_keras", "to_keras", "keras_weights"]
