"""Keras 3 interop: a Keras model (live, or a ``.keras`` file) as an rnncore model, and back.

This is the public path of the Keras converter, whose code lives in :mod:`rnncore.interop.keras`
(one module per idea, one table entry per Keras layer kind in
:mod:`rnncore.interop.keras.layer_kinds`). It is the only part of rnncore that knows Keras, and it
imports ``keras`` only inside functions: :func:`to_keras` and :func:`from_keras` on a live model
need it, reading a ``.keras`` file does not (it is a zip of ``config.json`` and
``model.weights.h5``, read with :mod:`zipfile`, :mod:`json` and :mod:`h5py` alone).

The correspondence, with weights in Keras's own order (``kernel (F, G·u)``,
``recurrent_kernel (u, G·u)``, ``bias``; G = 1, 4, 3 for SimpleRNN, LSTM ``[i, f, c, o]``,
GRU ``[z, r, h]``; GRU bias ``(2, 3u)`` with ``reset_after``, else ``(3u,)``):

* ``SimpleRNN`` / ``LSTM`` / ``GRU`` -> ``layers.SimpleRNN/LSTM/GRU``, params
  ``cells.SimpleRNNParams/LSTMParams/GRUParams(kernel, recurrent_kernel, bias)``;
* ``RNN(SimpleRNNCell | LSTMCell | GRUCell)`` -> ``layers.RNN(cell=cells.SimpleRNN/LSTM/GRU(...))``,
  the same params;
* ``Bidirectional(layer, merge_mode, backward_layer)`` -> ``layers.Bidirectional``, params
  ``BidirectionalParams(forward, backward)``;
* ``Dense`` -> ``layers.Dense``, params ``DenseParams(kernel, bias)``;
* ``Dropout``, ``Masking`` -> ``layers.Dropout``, ``layers.Masking``, params ``()``;
* ``InputLayer`` is skipped.

``bias`` is ``None`` with ``use_bias=False`` (Keras then has no bias weight at all). A model is a
``Sequential``, or a functional model that is one chain ``Input -> layer -> ... -> layer`` (the
last layer may return its state; a ``Masking`` layer's mask, which Keras records as two small
``not_equal``/``any`` operations, is checked to be exactly the one rnncore propagates).

Everything that would change the numbers and that rnncore does not represent is refused with a
``ValueError`` naming the layer (name and class), the argument and its value: unknown layer
classes, regularizers and constraints (they change training), unknown activations, dtype policies
other than float32/float64, graphs that are not one chain, and in files anything custom (a
``Lambda``, a registered or non-``keras`` object) — nothing from a file is ever executed.
``use_cudnn`` and ``seed`` are accepted and ignored (they do not change the numbers); initializers
rnncore does not know fall back to Keras's defaults with a warning (they do not change a loaded
model's numbers, only a re-initialization); ``trainable=False`` is kept out of rnncore with a
warning (rnncore would train that layer). ``stateful`` layers are mapped, but their carried state
is not: rnncore's caller carries it (see :mod:`rnncore.layers`).

Example (no Keras needed):
    >>> import jax, rnncore as rc
    >>> model = rc.Sequential([rc.layers.LSTM(3, use_bias=False), rc.layers.Dense(1)])
    >>> params = model.init(jax.random.PRNGKey(0), input_shape=(5, 2))
    >>> [w.shape for w in rc.keras_weights(model, params)]   # keras_model.get_weights() order
    [(2, 12), (3, 12), (3, 1), (1,)]
"""

from __future__ import annotations

from .interop.keras import from_keras, keras_weights, to_keras

__all__ = ["from_keras", "to_keras", "keras_weights"]
