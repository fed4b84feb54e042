"""rc.from_keras / rc.to_keras with Keras's LayerNormalization and BatchNormalization."""

import warnings

import numpy as np
import pytest
from conftest import max_rel_err
from keras_round_trip import check_keras_model, randomize

import rnncore as rc

B, T, F = 3, 6, 4


def sequences(seed=0):
    x = np.random.default_rng(seed).normal(size=(B, T, F)).astype("float32") + 0.3
    x[0, -2:] = 0.0  # padding for a Masking layer
    x[2, :3] = 0.0
    return x


def stacked(keras, norm, masking=False):
    L = keras.layers
    return keras.Sequential(
        [keras.Input((T, F))]
        + ([L.Masking()] if masking else [])
        + [L.LSTM(5, return_sequences=True, use_cudnn=False), norm, L.LSTM(3, use_cudnn=False), L.Dense(2)]
    )


LN_CASES = [
    {},
    {"axis": [1, 2], "center": False, "epsilon": 0.01},
    pytest.param({"scale": False}, marks=pytest.mark.slow),
    pytest.param({"rms_scaling": True}, marks=pytest.mark.slow),
]


@pytest.mark.filterwarnings("ignore:You passed `rms_scaling=True`")
@pytest.mark.parametrize("kwargs", LN_CASES, ids=["default", "axis12", "no_scale", "rms"])
def test_lstm_layer_normalization_lstm_dense(keras, tmp_path, kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        norm = keras.layers.LayerNormalization(**kwargs)
    km = randomize(stacked(keras, norm, masking=bool(kwargs)))
    check_keras_model(km, sequences(), tmp_path)
    model, _ = rc.from_keras(km)
    expect = {**kwargs, "axis": tuple(kwargs["axis"]) if "axis" in kwargs else -1}
    norm_layer = model.layers[-3]
    assert isinstance(norm_layer, rc.layers.LayerNormalization)
    for key, value in expect.items():
        assert getattr(norm_layer, key) == value


@pytest.mark.parametrize(
    "kwargs",
    [
        {"center": False, "momentum": 0.9},
        pytest.param({}, marks=pytest.mark.slow),
        pytest.param({"scale": False, "epsilon": 0.1}, marks=pytest.mark.slow),
    ],
)
def test_lstm_batch_normalization_lstm_dense(keras, tmp_path, kwargs):
    km = randomize(stacked(keras, keras.layers.BatchNormalization(**kwargs), masking=True))
    check_keras_model(km, sequences(), tmp_path)


def test_batch_normalization_training_forward_with_the_mask_as_keras(keras):
    """training=True: the batch statistics over the unmasked steps the LSTM passes its mask to."""
    km = randomize(stacked(keras, keras.layers.BatchNormalization(), masking=True))
    model, params = rc.from_keras(km)
    x = sequences(1)
    err = max_rel_err(model.apply(params, x, training=True), km(x, training=True))
    assert err <= 1e-5
    # and the moving statistics Keras assigned in that call are the pure update's
    run = model.run(params, x, training=True)
    bn = model.layers[2]
    updated = bn.moving_statistics(params[2], run.consumed[1].outputs, run.input_masks[2])
    assert max_rel_err(updated.moving_mean, km.layers[2].moving_mean.value) <= 1e-5
    assert max_rel_err(updated.moving_variance, km.layers[2].moving_variance.value) <= 1e-5


def test_normalization_refusals(keras):
    L = keras.layers
    with pytest.raises(ValueError, match=r"layer 'n' \(BatchNormalization\): renorm=True .* is not supported"):
        rc.from_keras(stacked(keras, L.BatchNormalization(renorm=True, name="n")))
    with pytest.raises(ValueError, match=r"layer 'n' \(LayerNormalization\): gamma_regularizer=.* is not supported"):
        rc.from_keras(stacked(keras, L.LayerNormalization(gamma_regularizer="l2", name="n")))
    with pytest.raises(ValueError, match=r"layer 'n' \(BatchNormalization\): beta_constraint=.* is not supported"):
        rc.from_keras(stacked(keras, L.BatchNormalization(beta_constraint="non_neg", name="n")))
