"""rc.from_keras / rc.to_keras with Keras's Activation, RepeatVector, Flatten, Reshape, Permute and
noise layers, and the character-level addition model (LSTM -> RepeatVector -> LSTM -> TimeDistributed(Dense))."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import max_rel_err
from keras_round_trip import check_keras_model, randomize

import rnncore as rc

B, T, F = 3, 6, 4


def sequences(seed=0):
    x = np.random.default_rng(seed).normal(size=(B, T, F)).astype("float32") + 0.2
    x[1, -2:] = 0.0
    return x


def addition_model(keras, chars=5, answer_len=3):
    """Keras's character-level addition example, small: question (T, chars) -> answer (answer_len, chars)."""
    L = keras.layers
    km = keras.Sequential(
        [
            keras.Input((T, chars)),
            L.LSTM(8, use_cudnn=False),
            L.RepeatVector(answer_len),
            L.LSTM(8, return_sequences=True, use_cudnn=False),
            L.TimeDistributed(L.Dense(chars, activation="softmax")),
        ]
    )
    x = np.eye(chars, dtype="float32")[np.random.default_rng(3).integers(0, chars, size=(B, T))]
    return randomize(km), x


@pytest.mark.slow
def test_addition_model(keras, tmp_path):
    km, x = addition_model(keras)
    check_keras_model(km, x, tmp_path)
    model, _ = rc.from_keras(km)
    assert [type(lay).__name__ for lay in model.layers] == ["LSTM", "RepeatVector", "LSTM", "TimeDistributed"]


@pytest.mark.slow  # tests/test_user_models.py checks the same model's weight gradients by default
def test_addition_model_gradients(keras):
    km, x = addition_model(keras)
    model, params = rc.from_keras(km)
    cot = jnp.asarray(np.random.default_rng(4).normal(size=(B, 3, 5)).astype("float32"))
    grads = jax.jit(jax.grad(lambda p: jnp.sum(model.apply(p, x) * cot)))(params)

    def keras_loss(tv):
        y, _ = km.stateless_call(tv, [v.value for v in km.non_trainable_variables], x)
        return jnp.sum(y * cot)

    want = jax.jit(jax.grad(keras_loss))([v.value for v in km.trainable_variables])
    for a, b in zip(rc.keras_weights(model, grads), want):
        assert max_rel_err(a, b) <= 1e-5


def test_shape_activation_and_noise_layers(keras, tmp_path):
    L = keras.layers
    km = randomize(
        keras.Sequential(
            [
                keras.Input((T, F)),
                L.Masking(),
                L.SpatialDropout1D(0.2),
                L.GaussianNoise(0.3),
                L.GaussianDropout(0.1),
                L.LSTM(5, return_sequences=True, use_cudnn=False),
                L.Activation("softmax"),
                L.Permute((2, 1)),
                L.Reshape((-1, 2)),
                L.Flatten(),
                L.Dense(2),
            ]
        )
    )
    check_keras_model(km, sequences(), tmp_path)
    model, _ = rc.from_keras(km)
    assert model.layers[1:4] == (
        rc.layers.SpatialDropout1D(0.2),
        rc.layers.GaussianNoise(0.3),
        rc.layers.GaussianDropout(0.1),
    )
    assert model.layers[6:9] == (rc.layers.Permute((2, 1)), rc.layers.Reshape((-1, 2)), rc.layers.Flatten())


@pytest.mark.slow
def test_masks_stop_where_keras_stops_them(keras, tmp_path):
    """Flatten drops the mask (Keras warns): a later LSTM sees every step."""
    L = keras.layers
    km = randomize(
        keras.Sequential(
            [
                keras.Input((T, F)),
                L.Masking(),
                L.Reshape((T, 2, 2)),
                L.TimeDistributed(L.Flatten()),
                L.LSTM(3, use_cudnn=False),
            ]
        )
    )
    x = sequences(5)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_keras_model(km, x, tmp_path)


def test_weightless_refusals(keras):
    L = keras.layers
    bad = keras.Sequential([keras.Input((T, F)), L.Activation(lambda t: t * 2, name="a")])
    with pytest.raises(ValueError, match=r"layer 'a' \(Activation\): activation=.* custom"):
        rc.from_keras(bad)
    bad = keras.Sequential([keras.Input((T, F)), L.Flatten(name="f"), L.Dense(2, activity_regularizer="l2")])
    with pytest.raises(ValueError, match=r"activity_regularizer=.* is not supported"):
        rc.from_keras(bad)
