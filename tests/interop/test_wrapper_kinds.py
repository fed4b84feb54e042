"""rc.from_keras / rc.to_keras with Keras's TimeDistributed of Dense, LayerNormalization, BatchNormalization."""

import numpy as np
import pytest
from keras_round_trip import check_keras_model, randomize

import rnncore as rc

B, T, F = 3, 6, 4


def test_time_distributed_layers_before_a_masked_lstm(keras, tmp_path):
    L = keras.layers
    km = randomize(
        keras.Sequential(
            [
                keras.Input((T, F)),
                L.Masking(),
                L.TimeDistributed(L.Dense(3, activation="tanh")),
                L.TimeDistributed(L.LayerNormalization()),
                L.TimeDistributed(L.BatchNormalization()),
                L.LSTM(4, use_cudnn=False),
                L.Dense(2),
            ]
        )
    )
    x = np.random.default_rng(0).normal(size=(B, T, F)).astype("float32")
    x[0, -2:] = 0.0
    check_keras_model(km, x, tmp_path)
    model, _ = rc.from_keras(km)
    assert model.layers[1] == rc.layers.TimeDistributed(
        rc.layers.Dense(3, activation="tanh", kernel_initializer="glorot_uniform")
    )


def test_time_distributed_refusals(keras):
    L = keras.layers
    bad = keras.Sequential(
        [keras.Input((T, 2, F)), L.TimeDistributed(L.LSTM(2, use_cudnn=False), name="td"), L.Flatten()]
    )
    with pytest.raises(ValueError, match=r"layer 'td' \(TimeDistributed\): wraps a LSTM, which is not supported; "):
        rc.from_keras(bad)
    model = rc.Sequential([rc.layers.TimeDistributed(rc.layers.GRU(2)), rc.layers.Flatten()])
    with pytest.raises(ValueError, match=r"layers\[0\].layer \(GRU\) cannot be wrapped in Keras's TimeDistributed"):
        import jax

        rc.to_keras(model, model.init(jax.random.PRNGKey(0), (T, 2, F)))
