"""The merge layers' kinds in Keras functional graphs: a two-input model whose masked recurrent
branches meet in Add, Subtract, Multiply and Average (the OR of the masks reaching a
GlobalAveragePooling1D), unmasked branches joined by Concatenate along features and time, and a
Conv1D branch, loaded live and from a ``.keras`` file and exported back, against Keras."""

import jax
import numpy as np
from conftest import max_rel_err, random_like

import rnncore as rc

T, F = 6, 3


def _graph(keras):
    L = keras.layers
    a, b = keras.Input((T, F), name="a"), keras.Input((T, F), name="b")
    ha = L.LSTM(4, return_sequences=True, use_cudnn=False)(L.Masking()(a))
    hb = L.GRU(4, return_sequences=True, use_cudnn=False)(L.Masking()(b))
    outs = [L.GlobalAveragePooling1D()(merge()([ha, hb])) for merge in (L.Add, L.Subtract, L.Multiply, L.Average)]
    ua = L.SimpleRNN(4, return_sequences=True)(a)
    ub = L.Conv1D(2, 2, padding="causal")(b)
    outs.append(L.GlobalMaxPooling1D()(L.Concatenate()([ua, ub])))
    outs.append(L.Dense(1)(L.GlobalAveragePooling1D()(L.Concatenate(axis=1)([ua, ua]))))
    return keras.Model([a, b], outs)


def test_merge_layers_in_a_functional_graph_match_keras(keras, tmp_path):
    km = _graph(keras)
    km.set_weights(random_like(np.random.default_rng(0), km.get_weights()))
    rng = np.random.default_rng(1)
    xa, xb = (rng.normal(size=(2, T, F)).astype("float32") for _ in range(2))
    xa[0, :2] = 0.0
    xb[1, 4:] = 0.0
    xb[0, 0] = 0.0  # masked in b only: the OR of the masks keeps it
    want = km([xa, xb])
    path = tmp_path / "g.keras"
    km.save(path)
    for source in (km, path):
        model, params = rc.from_keras(source)
        got = jax.jit(model.apply)(params, (xa, xb))
        assert len(got) == len(want) == 6
        for g, w in zip(got, want):
            assert max_rel_err(g, w) < 2e-6
    back = rc.to_keras(model, params)
    for g, w in zip(back([xa, xb]), want):
        assert max_rel_err(g, w) < 2e-6
