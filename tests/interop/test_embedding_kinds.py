"""rc.from_keras / rc.to_keras with Keras's Embedding: token models, the padding mask reaching the LSTM."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import max_rel_err
from keras_round_trip import check_keras_model, randomize

import rnncore as rc

B, T, V = 4, 7, 11


def padded_tokens(seed=0):
    """Token ids in [1, V): row 0 post-padded by 3 zeros, row 1 pre-padded by 2, row 3 all but one step padded."""
    ids = np.random.default_rng(seed).integers(1, V, size=(B, T)).astype("int32")
    ids[0, -3:] = 0
    ids[1, :2] = 0
    ids[3, 1:] = 0
    return ids


def token_model(keras, mask_zero=True, **lstm):
    L = keras.layers
    return keras.Sequential(
        [
            keras.Input((T,), dtype="int32"),
            L.Embedding(V, 5, mask_zero=mask_zero),
            L.LSTM(4, use_cudnn=False, **lstm),
            L.Dense(2, activation="tanh"),
        ]
    )


@pytest.mark.parametrize(
    "mask_zero,lstm",
    [
        (True, {}),
        pytest.param(False, {}, marks=pytest.mark.slow),
        pytest.param(True, {"return_sequences": True}, marks=pytest.mark.slow),
        pytest.param(True, {"go_backwards": True}, marks=pytest.mark.slow),
    ],
)
def test_embedding_lstm_dense_matches_keras_with_padding(keras, tmp_path, mask_zero, lstm):
    km = randomize(token_model(keras, mask_zero, **lstm))
    ids = padded_tokens()
    err = check_keras_model(km, ids, tmp_path, input_shape=(T,))
    assert err <= 1e-5
    model, params = rc.from_keras(km)
    assert model.layers[0] == rc.layers.Embedding(V, 5, embeddings_initializer="random_uniform", mask_zero=mask_zero)
    if mask_zero and not lstm:  # the mask matters: without it the padded rows would differ
        unmasked = rc.Sequential([rc.layers.Embedding(V, 5), *model.layers[1:]])
        assert max_rel_err(unmasked.apply(params, ids), km(ids)) > 1e-3


@pytest.mark.slow
def test_gradients_through_the_padding_mask_match_keras(keras):
    km = randomize(token_model(keras, True, return_sequences=True))
    ids = padded_tokens(1)
    model, params = rc.from_keras(km)
    cot = jnp.asarray(np.random.default_rng(2).normal(size=(B, T, 2)).astype("float32"))
    grads = jax.jit(jax.grad(lambda p: jnp.sum(model.apply(p, ids) * cot)))(params)
    trainable = [v.value for v in km.trainable_variables]

    def keras_loss(tv):
        y, _ = km.stateless_call(tv, [v.value for v in km.non_trainable_variables], ids)
        return jnp.sum(y * cot)

    want = jax.jit(jax.grad(keras_loss))(trainable)
    got = rc.keras_weights(model, grads)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert max_rel_err(a, b) <= 1e-5


def test_padding_idx_is_refused_on_export(keras):
    model = rc.Sequential([rc.layers.Embedding(V, 3, padding_idx=0), rc.layers.LSTM(2)])
    params = model.init(jax.random.PRNGKey(0), (T,))
    with pytest.raises(ValueError, match=r"layers\[0\] \(Embedding\) has padding_idx=0, which Keras's Embedding"):
        rc.to_keras(model, params)


def test_embedding_refusals(keras):
    L = keras.layers
    bad = keras.Sequential([keras.Input((T,), dtype="int32"), L.Embedding(V, 3, embeddings_regularizer="l2", name="e")])
    with pytest.raises(ValueError, match=r"layer 'e' \(Embedding\): embeddings_regularizer=.* is not supported"):
        rc.from_keras(bad)
    bad = keras.Sequential([keras.Input((T,), dtype="int32"), L.Embedding(V, 3, lora_rank=2, name="e")])
    with pytest.raises(ValueError, match=r"lora_rank=2 is not supported"):
        rc.from_keras(bad)
