"""The Keras layer kinds without weights: the shape and activation layers ``Activation``,
``RepeatVector``, ``Flatten``, ``Reshape``, ``Permute``, and the noise layers ``SpatialDropout1D``,
``GaussianNoise``, ``GaussianDropout`` (their ``seed`` is ignored: rnncore draws from the ``rng`` it is
given).

>>> from rnncore import layers
>>> RESHAPE.weight_shapes(layers.Reshape((2, -1)), (4, 3)), layers.Reshape((2, -1)).compute_output_shape((4, 3))
([], (2, 6))
"""

from __future__ import annotations

from ... import layers as L
from .config import keras_activation
from .kind_args import weightless_kind

__all__ = [
    "ACTIVATION",
    "REPEAT_VECTOR",
    "FLATTEN",
    "RESHAPE",
    "PERMUTE",
    "SPATIAL_DROPOUT_1D",
    "GAUSSIAN_NOISE",
    "GAUSSIAN_DROPOUT",
]

ACTIVATION = weightless_kind(
    "Activation",
    L.Activation,
    "activation",
    (),
    lambda keras, layer, dtype, at: keras.layers.Activation(
        keras_activation(layer.activation, at, "activation") or "linear", dtype=dtype
    ),
    parsed=("activation",),
    elementwise=False,
)
REPEAT_VECTOR = weightless_kind(
    "RepeatVector",
    L.RepeatVector,
    "repeat_vector",
    ("n",),
    lambda keras, layer, dtype, at: keras.layers.RepeatVector(layer.n, dtype=dtype),
)
FLATTEN = weightless_kind(
    "Flatten",
    L.Flatten,
    "flatten",
    ("data_format",),
    lambda keras, layer, dtype, at: keras.layers.Flatten(data_format=layer.data_format, dtype=dtype),
)
RESHAPE = weightless_kind(
    "Reshape",
    L.Reshape,
    "reshape",
    ("target_shape",),
    lambda keras, layer, dtype, at: keras.layers.Reshape(layer.target_shape, dtype=dtype),
)
PERMUTE = weightless_kind(
    "Permute",
    L.Permute,
    "permute",
    ("dims",),
    lambda keras, layer, dtype, at: keras.layers.Permute(layer.dims, dtype=dtype),
)
SPATIAL_DROPOUT_1D = weightless_kind(
    "SpatialDropout1D",
    L.SpatialDropout1D,
    "spatial_dropout1d",
    (),
    lambda keras, layer, dtype, at: keras.layers.SpatialDropout1D(layer.rate, dtype=dtype),
    parsed=("rate",),
)
GAUSSIAN_NOISE = weightless_kind(
    "GaussianNoise",
    L.GaussianNoise,
    "gaussian_noise",
    ("stddev",),
    lambda keras, layer, dtype, at: keras.layers.GaussianNoise(layer.stddev, dtype=dtype),
)
GAUSSIAN_DROPOUT = weightless_kind(
    "GaussianDropout",
    L.GaussianDropout,
    "gaussian_dropout",
    (),
    lambda keras, layer, dtype, at: keras.layers.GaussianDropout(layer.rate, dtype=dtype),
    parsed=("rate",),
)
