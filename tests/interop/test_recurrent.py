"""Keras recurrent layers with unroll=True and stateful=True through rnncore.from_keras: the unrolled
loop's masking (zeros before the first real step), and a stateful layer run on two chunks, the
caller carrying the state from the first to the second, against Keras's stateful layer after two
calls."""

import jax
import numpy as np
import pytest
from conftest import max_rel_err, random_like

import rnncore as rc

B, T, F = 3, 6, 4


def _padded(seed):
    x = np.random.default_rng(seed).normal(size=(B, T, F)).astype("float32")
    x[0, :2] = 0.0  # pre-padded: the unrolled loop emits zeros there
    x[1, -2:] = 0.0
    x[2, 3] = 0.0  # a hole
    return x


def test_unrolled_layers_load_and_reproduce_keras(keras, tmp_path):
    L = keras.layers
    km = keras.Sequential(
        [
            keras.Input((T, F)),
            L.Masking(),
            L.LSTM(4, unroll=True, return_sequences=True, use_cudnn=False),
            L.GRU(3, unroll=True, return_sequences=True, go_backwards=True, use_cudnn=False),
            L.SimpleRNN(2, unroll=True, return_sequences=True),
        ]
    )
    km.set_weights(random_like(np.random.default_rng(1), km.get_weights()))
    path = tmp_path / "m.keras"
    km.save(path)
    for source in (km, path):
        model, params = rc.from_keras(source)
        assert all(layer.unroll for layer in model.layers[1:])
        x = _padded(2)
        y, y_k = jax.jit(model.apply)(params, x), km(x)
        assert max_rel_err(y, y_k) < 2e-6
        assert np.all(np.asarray(y_k)[0, :2] == 0) and np.all(np.asarray(y)[0, :2] == 0)


# the GRU's stateful chunks with the slow checks: the carried state is the same code for every kind
@pytest.mark.parametrize("kind", ["LSTM", pytest.param("GRU", marks=pytest.mark.slow)])
def test_stateful_layer_over_two_chunks_equals_keras(keras, tmp_path, kind):
    L = keras.layers
    km = keras.Sequential(
        [
            keras.Input((T, F), batch_size=B),
            L.Masking(),
            getattr(L, kind)(4, stateful=True, return_sequences=True, use_cudnn=False),
            getattr(L, kind)(3, stateful=True, use_cudnn=False),
            L.Dense(2),
        ]
    )
    km.set_weights(random_like(np.random.default_rng(3), km.get_weights()))
    path = tmp_path / "m.keras"
    km.save(path)
    x1, x2 = _padded(4), _padded(5)
    y1_k, y2_k = np.asarray(km(x1)), np.asarray(km(x2))  # Keras carries the state between calls
    for source in (km, path):
        model, params = rc.from_keras(source)
        assert [getattr(layer, "stateful", None) for layer in model.layers] == [None, True, True, None]
        run = jax.jit(lambda p, x, s: model.apply(p, x, initial_states=s, return_states=True))
        y1, finals = run(params, x1, None)
        y2, _ = run(params, x2, finals)
        assert max_rel_err(y1, y1_k) < 2e-6
        assert max_rel_err(y2, y2_k) < 2e-6
    # the second chunk from zeros differs: the state carried matters
    assert max_rel_err(model.apply(params, x2), y2_k) > 1e-3
    # and it goes back to Keras as a stateful model of the same fixed batch size
    km2 = rc.to_keras(model, params, batch_size=B)
    assert km2.layers[1].stateful and km2.input_shape[0] == B
    assert max_rel_err(km2(x1), y1_k) < 2e-6 and max_rel_err(km2(x2), y2_k) < 2e-6
