"""rc.from_keras / rc.to_keras with Keras's TimeDistributed of Dense, LayerNormalization, BatchNormalization, of
recurrent layers, Bidirectional and TimeDistributed itself (inputs (batch, outer, inner, features))."""

import jax
import numpy as np
import pytest
from keras_round_trip import check_keras_model, gradient_errors, randomize

import rnncore as rc
from rnncore.interop.errors import relative_error

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


OUTER, INNER = 3, 5  # outer and inner steps


def _masked_nested_inputs(shape, seed=0):
    """Float inputs with some inner steps all zero (masked by Masking) and one outer step of batch
    row 1 masked whole."""
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=shape) * 0.9 + 0.2).astype("float32")
    x[(rng.random(shape[:-1]) < 0.3)] = 0.0
    x[1, 0] = 0.0
    x[0] = np.where(x[0] == 0.0, 0.5, x[0])
    return x


def _token_inputs(seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, 9, size=(B, OUTER, INNER)).astype("int32")
    ids[rng.random((B, OUTER, INNER)) < 0.3] = 0
    ids[1, 1] = 0
    return ids


def _lstm_masked(keras):
    L = keras.layers
    layers = [L.Masking(), L.TimeDistributed(L.LSTM(3, use_cudnn=False)), L.Flatten(), L.Dense(2)]
    return (
        keras.Sequential([keras.Input((OUTER, INNER, F)), *layers]),
        _masked_nested_inputs((B, OUTER, INNER, F)),
        True,
    )


def _embedded_bidirectional(keras):
    L = keras.layers
    inner = L.Bidirectional(L.GRU(2, return_sequences=True, reset_after=False, use_cudnn=False), merge_mode="sum")
    layers = [L.Embedding(9, 3, mask_zero=True), L.TimeDistributed(inner), L.TimeDistributed(L.Dense(1))]
    return keras.Sequential([keras.Input((OUTER, INNER), dtype="int32"), *layers]), _token_inputs(), False


def _nested(keras):
    L = keras.layers
    inner = L.TimeDistributed(L.RNN(L.SimpleRNNCell(2, activation="relu"), go_backwards=True, return_sequences=True))
    layers = [L.Masking(), L.TimeDistributed(inner), L.Reshape((2, OUTER * INNER * 2)), L.LSTM(2, use_cudnn=False)]
    return (
        keras.Sequential([keras.Input((2, OUTER, INNER, F)), *layers]),
        _masked_nested_inputs((B, 2, OUTER, INNER, F)),
        True,
    )


CASES = {
    "masking_lstm": pytest.param(_lstm_masked, marks=pytest.mark.slow),
    "embedding_mask_zero_bidirectional": _embedded_bidirectional,
    "nested_rnn": pytest.param(_nested, marks=pytest.mark.slow),
}


@pytest.mark.parametrize("make", list(CASES.values()), ids=list(CASES))
def test_recurrent_layers_inside_time_distributed_equal_keras(keras, tmp_path, make):
    km, x, wrt_x = make(keras)
    km = randomize(km)
    check_keras_model(km, x, tmp_path, tol=1e-6)  # live, .keras file, and to_keras back with bit-equal weights
    model, params = rc.from_keras(km)
    for a, b in zip(rc.keras_weights(model, params), km.get_weights()):
        np.testing.assert_array_equal(np.asarray(a), b)
    errors = gradient_errors(km, model, params, x, wrt_x=wrt_x)
    assert errors["output"] <= 1e-6 and max(errors.values()) <= 1e-5, errors


def test_the_mask_time_distributed_passes_on_is_keras_and_a_recurrent_layer_after_it_refuses_it(keras):
    L = keras.layers
    km = randomize(
        keras.Sequential([keras.Input((OUTER, INNER, F)), L.Masking(), L.TimeDistributed(L.GRU(2, use_cudnn=False))])
    )
    x = _masked_nested_inputs((B, OUTER, INNER, F))
    model, params = rc.from_keras(km)
    assert relative_error(model.apply(params, x), km(x)) <= 1e-6
    # Keras passes the (batch, outer, inner) mask on unchanged, though one vector per outer step comes out
    _, _, out_mask = model.apply_with_mask(params, x)
    keras_mask = km.layers[1].compute_mask(x, km.layers[0].compute_mask(x, None))
    np.testing.assert_array_equal(np.asarray(out_mask), np.asarray(keras_mask))
    # a recurrent layer after it gets that mask: Keras's scan masks an outer step whose inner steps all
    # are; rnncore refuses it, naming the shapes, rather than guessing
    after = rc.Sequential([*model.layers, rc.layers.LSTM(2)])
    after_params = after.init(jax.random.PRNGKey(0), (OUTER, INNER, F))
    with pytest.raises(ValueError, match=r"mask must have shape \(batch, time\) = \(3, 3\); got shape \(3, 3, 5\)"):
        after.apply(after_params, x)


def _edited_keras_file(km, tmp_path, edit):
    """``km`` saved as a .keras file whose config.json ``edit`` changes (what Keras cannot build
    can still be written into a file)."""
    import json
    import zipfile

    src, dst = tmp_path / "good.keras", tmp_path / "edited.keras"
    km.save(src)
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.namelist():
            data = zin.read(item)
            if item == "config.json":
                config = json.loads(data)
                edit(config)
                data = json.dumps(config).encode()
            zout.writestr(item, data)
    return dst


def test_time_distributed_refusals(keras, tmp_path):
    L = keras.layers
    bad = keras.Sequential([keras.Input((T, 6, 6, 2)), L.TimeDistributed(L.Conv2D(2, 3), name="td"), L.Flatten()])
    with pytest.raises(
        ValueError,
        match=r"layer 'td' \(TimeDistributed\): wraps a Conv2D, which is not supported; expected one of "
        r"SimpleRNN, LSTM, GRU, RNN, Bidirectional, Dense, .*TimeDistributed",
    ):
        rc.from_keras(bad)
    # Keras cannot build a TimeDistributed of a layer with several outputs; a file may still hold one
    km = keras.Sequential([keras.Input((OUTER, INNER, F)), L.TimeDistributed(L.LSTM(2, use_cudnn=False), name="td")])

    def with_state(config):
        config["config"]["layers"][1]["config"]["layer"]["config"]["return_state"] = True

    with pytest.raises(
        ValueError, match=r"layer 'td' \(TimeDistributed\): TimeDistributed layer=LSTM\(return_state=True\)"
    ):
        rc.from_keras(_edited_keras_file(km, tmp_path, with_state))
    model = rc.Sequential([rc.layers.TimeDistributed(rc.layers.RNN(rc.cells.LayerNormLSTM(2))), rc.layers.Flatten()])
    with pytest.raises(ValueError, match=r"layers\[0\].layer \(RNN with cell LayerNormLSTM\) has no Keras counterpart"):
        rc.to_keras(model, model.init(jax.random.PRNGKey(0), (OUTER, INNER, F)))


@pytest.mark.slow
def test_time_distributed_lstm_in_a_graph(keras, tmp_path):
    L = keras.layers
    a, b = keras.Input((OUTER, INNER, F), name="a"), keras.Input((OUTER, 2), name="b")
    h = L.TimeDistributed(L.LSTM(2, use_cudnn=False))(L.Masking()(a))
    km = randomize(keras.Model([a, b], [L.Dense(1)(h), L.Dense(1)(b)]))
    xa, xb = _masked_nested_inputs((B, OUTER, INNER, F)), np.random.default_rng(1).normal(size=(B, OUTER, 2))
    xb = xb.astype("float32")
    model, params = rc.from_keras(km)
    assert isinstance(model, rc.Model)
    want = km([xa, xb])
    for ours in (model.apply(params, {"a": xa, "b": xb}), rc.to_keras(model, params)([xa, xb])):
        assert max(relative_error(u, v) for u, v in zip(ours, want)) <= 1e-6
    km.save(tmp_path / "g.keras")
    assert rc.from_keras(tmp_path / "g.keras")[0] == model
