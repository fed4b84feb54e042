"""Training parity with Keras 3: a Keras model and its ``rc.from_keras`` twin, the same initial
weights and batches (no shuffle), trained with Keras's ``fit`` and ``rc.fit``, give the same
per-epoch logs and final weights (float32, 1e-5 relative)."""

import numpy as np
import pytest
from covering import diagonal

import rnncore as rc

TOL = 1e-5


def _scaled_err(a, b) -> float:
    """max |a - b| / max |b| over one array: relative at the array's scale."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30))


def _compare_runs(keras_model, keras_history, model, params, history, skip=()):
    assert set(history.history) == set(keras_history.history)
    for key, theirs in keras_history.history.items():
        if key in skip:
            continue
        ours = history.history[key]
        assert len(ours) == len(theirs), key
        err = np.max(np.abs(np.subtract(ours, theirs)) / np.abs(theirs))
        assert err <= TOL, (key, ours, theirs)
    for ours, theirs in zip(rc.keras_weights(model, params), keras_model.get_weights()):
        assert _scaled_err(ours, theirs) <= TOL


def _keras_stack(keras, seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((7, 3)),
            keras.layers.LSTM(6, return_sequences=True, use_cudnn=False),
            keras.layers.GRU(5, use_cudnn=False),
            keras.layers.Dense(2),
        ]
    )


_OPTIMIZERS = {
    "adam": (lambda k, **c: k.optimizers.Adam(learning_rate=0.02, **c), lambda **c: rc.optimizers.adam(0.02, **c)),
    "rmsprop": (
        lambda k, **c: k.optimizers.RMSprop(learning_rate=0.01, **c),
        lambda **c: rc.optimizers.rmsprop(0.01, **c),
    ),
    "sgd_momentum": (
        lambda k, **c: k.optimizers.SGD(learning_rate=0.05, momentum=0.9, **c),
        lambda **c: rc.optimizers.sgd(0.05, momentum=0.9, **c),
    ),
}
_CLIPPING = {
    "none": {},
    "clipnorm": {"clipnorm": 0.1},
    "global_clipnorm": {"global_clipnorm": 0.2},
    "clipvalue": {"clipvalue": 0.02},
}


@pytest.mark.parametrize("opt, clip", diagonal(list(_OPTIMIZERS), list(_CLIPPING)))
def test_fit_matches_keras(keras, opt, clip):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(44, 7, 3)).astype("float32")  # 44 = 3 batches of 12 + a partial one of 8 (+ 4 held out)
    y = rng.normal(size=(44, 2)).astype("float32")
    keras_model = _keras_stack(keras)
    model, params = rc.from_keras(keras_model)
    make_keras, make_ours = _OPTIMIZERS[opt]
    keras_model.compile(optimizer=make_keras(keras, **_CLIPPING[clip]), loss="mse", metrics=["mae"])
    theirs = keras_model.fit(x, y, batch_size=12, epochs=4, shuffle=False, verbose=0, validation_split=0.1)
    params, history = rc.fit(
        model,
        params,
        x,
        y,
        loss="mse",
        optimizer=make_ours(**_CLIPPING[clip]),
        metrics=["mae"],
        batch_size=12,
        epochs=4,
        shuffle=False,
        verbose=0,
        validation_split=0.1,
    )
    assert history.diverged is None
    _compare_runs(keras_model, theirs, model, params, history)


def test_fit_matches_keras_masked_sequences_with_sample_weights(keras):
    """Padding masked by a Masking layer, a per-step loss, per-step weights: Keras weights each
    real step by total/valid within the batch; the twin must too. (Keras itself fails to broadcast
    per-sample (n,) weights against a (n, t) mask in its metrics, so weights are per step.)

    Keras 3 on JAX loses the output mask on its way to the *training* metrics (y_pred comes back
    through ``jax.value_and_grad``'s aux without its mask), so there its ``mse`` averages padding
    too, while its loss and its validation metrics are masked. rnncore masks all three; the training
    metrics are compared here against Keras's masked validation metrics on the same data."""
    rng = np.random.default_rng(2)
    n, t = 20, 6
    x = rng.normal(size=(n, t, 2)).astype("float32")
    lengths = rng.integers(1, t + 1, size=n)
    x[np.arange(t)[None, :] >= lengths[:, None]] = 0.0
    y = rng.normal(size=(n, t, 1)).astype("float32")
    w = rng.uniform(0.2, 2.0, size=(n, t)).astype("float32")
    keras.utils.set_random_seed(3)
    keras_model = keras.Sequential(
        [
            keras.Input((t, 2)),
            keras.layers.Masking(0.0),
            keras.layers.SimpleRNN(4, return_sequences=True),
            keras.layers.Dense(1),
        ]
    )
    model, params = rc.from_keras(keras_model)
    keras_model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mae", metrics=["mse"], weighted_metrics=["mse"])
    theirs = keras_model.fit(
        x,
        y,
        sample_weight=w,
        batch_size=8,
        epochs=3,
        shuffle=False,
        verbose=0,
        validation_data=(x[:12], y[:12], w[:12]),
    )
    params, history = rc.fit(
        model,
        params,
        x,
        y,
        loss="mae",
        optimizer=rc.optimizers.adam(0.01),
        metrics=["mse"],
        weighted_metrics=["mse"],
        sample_weight=w,
        batch_size=8,
        epochs=3,
        shuffle=False,
        verbose=0,
        validation_data=(x[:12], y[:12], w[:12]),
    )
    _compare_runs(keras_model, theirs, model, params, history, skip=("mse", "weighted_mse"))
    assert {"val_mse", "val_weighted_mse"} <= set(history.history)
    final = rc.train.evaluate(
        model, params, x, y, loss="mae", metrics=["mse"], weighted_metrics=["mse"], sample_weight=w, batch_size=8
    )
    keras_final = keras_model.evaluate(x, y, sample_weight=w, batch_size=8, verbose=0, return_dict=True)
    for key in ("loss", "mse", "weighted_mse"):
        assert abs(final[key] - keras_final[key]) <= TOL * abs(keras_final[key]), (key, final, keras_final)


def test_fit_matches_keras_classification(keras):
    """Sparse categorical cross-entropy from logits with 'accuracy' resolved as Keras resolves it,
    and validation_data."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(30, 5, 3)).astype("float32")
    y = rng.integers(0, 4, size=(30,))
    xv, yv = rng.normal(size=(9, 5, 3)).astype("float32"), rng.integers(0, 4, size=(9,))
    keras.utils.set_random_seed(5)
    keras_model = keras.Sequential([keras.Input((5, 3)), keras.layers.GRU(6, reset_after=False), keras.layers.Dense(4)])
    model, params = rc.from_keras(keras_model)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    keras_model.compile(
        optimizer=keras.optimizers.RMSprop(0.01, momentum=0.5, centered=True), loss=loss, metrics=["accuracy"]
    )
    theirs = keras_model.fit(x, y, batch_size=10, epochs=3, shuffle=False, verbose=0, validation_data=(xv, yv))
    params, history = rc.fit(
        model,
        params,
        x,
        y,
        loss=rc.losses.SparseCategoricalCrossentropy(from_logits=True),
        optimizer=rc.optimizers.rmsprop(0.01, momentum=0.5, centered=True),
        metrics=["accuracy"],
        batch_size=10,
        epochs=3,
        shuffle=False,
        verbose=0,
        validation_data=(xv, yv),
    )
    _compare_runs(keras_model, theirs, model, params, history)


def test_fit_matches_keras_text_classifier_on_padded_token_ids(keras):
    """Embedding(mask_zero=True) -> LSTM -> Dense trained on integer (samples, time) token ids,
    post-padded with 0: the Embedding's mask reaches the LSTM in both frameworks."""
    rng = np.random.default_rng(6)
    x = rng.integers(1, 15, size=(24, 8)).astype("int32")
    for row, length in enumerate(rng.integers(2, 9, size=24)):
        x[row, length:] = 0
    y = rng.integers(0, 3, size=(24,))
    keras.utils.set_random_seed(7)
    keras_model = keras.Sequential(
        [
            keras.Input((8,), dtype="int32"),
            keras.layers.Embedding(15, 4, mask_zero=True),
            keras.layers.LSTM(5, use_cudnn=False),
            keras.layers.Dense(3),
        ]
    )
    model, params = rc.from_keras(keras_model)
    keras_model.compile(
        optimizer=keras.optimizers.Adam(0.02),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    theirs = keras_model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    params, history = rc.fit(
        model,
        params,
        x,
        y,
        loss=rc.losses.SparseCategoricalCrossentropy(from_logits=True),
        optimizer=rc.optimizers.adam(0.02),
        metrics=["accuracy"],
        batch_size=8,
        epochs=3,
        shuffle=False,
        verbose=0,
    )
    _compare_runs(keras_model, theirs, model, params, history)


def _encoder_decoder(keras):
    keras.utils.set_random_seed(1)
    src, tgt = keras.Input((6, 3), name="src"), keras.Input((5, 2), name="tgt")
    _, h, c = keras.layers.LSTM(4, return_state=True, use_cudnn=False)(keras.layers.Masking(0.0)(src))
    decoded = keras.layers.LSTM(4, return_sequences=True, use_cudnn=False)(tgt, initial_state=[h, c])
    return keras.Model([src, tgt], keras.layers.Dense(1)(decoded))


@pytest.mark.parametrize("as_dict", [True, pytest.param(False, marks=pytest.mark.slow)])
def test_fit_matches_keras_on_an_encoder_decoder_of_two_inputs(keras, as_dict):
    """Two inputs (the encoder's final state is the decoder's initial state), given by name or in the
    model's order: every batch and the validation split slice both inputs together."""
    rng = np.random.default_rng(8)
    src = rng.normal(size=(30, 6, 3)).astype("float32")
    src[np.arange(6)[None, :] >= rng.integers(2, 7, size=30)[:, None]] = 0.0  # padded sources
    tgt, y = rng.normal(size=(30, 5, 2)).astype("float32"), rng.normal(size=(30, 5, 1)).astype("float32")
    keras_model = _encoder_decoder(keras)
    model, params = rc.from_keras(keras_model)
    x = {"tgt": tgt, "src": src} if as_dict else [src, tgt]
    keras_model.compile(optimizer=keras.optimizers.Adam(0.02), loss="mse", metrics=["mae"])
    theirs = keras_model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0, validation_split=0.2)
    params, history = rc.fit(
        model,
        params,
        x,
        y,
        optimizer=rc.optimizers.adam(0.02),
        metrics=["mae"],
        batch_size=8,
        epochs=3,
        shuffle=False,
        verbose=0,
        validation_split=0.2,
    )
    _compare_runs(keras_model, theirs, model, params, history)
