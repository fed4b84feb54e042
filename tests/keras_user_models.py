"""The everyday Keras recurrent models, built the way their tutorials build them, with random
asymmetric weights and inputs (token ids with padding, padded sequences): shared by the tests that
load them into rnncore and by the script that saves them from Keras on the TensorFlow backend.

Imports nothing of rnncore and takes ``keras`` as an argument, so it runs under any backend.
"""

import numpy as np

B = 3
VOCAB = 20


def text_classifier(keras):
    """Embedding(mask_zero=True) -> Bidirectional(LSTM) -> Dense: padded token ids in, classes out."""
    L = keras.layers
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    h = L.Embedding(VOCAB, 6, mask_zero=True, name="embed")(tokens)
    h = L.Bidirectional(L.LSTM(5, use_cudnn=False), name="bilstm")(h)
    return keras.Model(tokens, L.Dense(3, name="classes")(h), name="text_classifier")


def addition(keras):
    """The character-level addition model: LSTM -> RepeatVector -> LSTM(return_sequences) ->
    TimeDistributed(Dense)."""
    L = keras.layers
    return keras.Sequential(
        [
            keras.Input((7, 12)),
            L.LSTM(8, use_cudnn=False, name="encoder"),
            L.RepeatVector(4, name="repeat"),
            L.LSTM(8, return_sequences=True, use_cudnn=False, name="decoder"),
            L.TimeDistributed(L.Dense(12), name="per_digit"),
        ],
        name="addition",
    )


def encoder_decoder(keras):
    """The translation model: the encoder LSTM's final (h, c) is the decoder LSTM's initial state."""
    L = keras.layers
    source, target = keras.Input((None, 6), name="source"), keras.Input((None, 5), name="target")
    _, h, c = L.LSTM(7, return_state=True, use_cudnn=False, name="encoder")(L.Masking(name="pad")(source))
    decoded = L.LSTM(7, return_sequences=True, use_cudnn=False, name="decoder")(target, initial_state=[h, c])
    return keras.Model([source, target], L.Dense(5, name="next_token")(decoded), name="encoder_decoder")


def conv_front_end(keras):
    """Conv1D(causal) -> MaxPooling1D -> LSTM -> Dense."""
    L = keras.layers
    return keras.Sequential(
        [
            keras.Input((16, 3)),
            L.Conv1D(6, 3, padding="causal", dilation_rate=2, activation="relu", name="conv"),
            L.MaxPooling1D(2, name="pool"),
            L.LSTM(5, use_cudnn=False, name="lstm"),
            L.Dense(1, name="out"),
        ],
        name="conv_front_end",
    )


def normalized_stack(keras):
    """LSTM(return_sequences) -> LayerNormalization -> LSTM -> Dense."""
    L = keras.layers
    return keras.Sequential(
        [
            keras.Input((10, 4)),
            L.LSTM(6, return_sequences=True, use_cudnn=False, name="lstm_1"),
            L.LayerNormalization(name="norm"),
            L.LSTM(6, use_cudnn=False, name="lstm_2"),
            L.Dense(2, name="out"),
        ],
        name="normalized_stack",
    )


MODELS = {
    "text_classifier": text_classifier,
    "addition": addition,
    "encoder_decoder": encoder_decoder,
    "conv_front_end": conv_front_end,
    "normalized_stack": normalized_stack,
}


def build(keras, name: str, seed: int = 1):
    """The model ``name`` with random asymmetric weights (normal, scale 0.5)."""
    model = MODELS[name](keras)
    rng = np.random.default_rng(seed)
    model.set_weights([(0.5 * rng.normal(size=w.shape)).astype(w.dtype) for w in model.get_weights()])
    return model


def inputs(name: str, seed: int = 0) -> dict:
    """Inputs for ``name`` by input name (``x`` for a Sequential): token ids post-padded with 0,
    sequences post-padded with zeros where a Masking layer reads them."""
    rng = np.random.default_rng(seed)
    if name == "text_classifier":
        tokens = rng.integers(1, VOCAB, size=(B, 9)).astype("int32")
        tokens[1, 5:] = 0
        tokens[2, 2:] = 0
        return {"tokens": tokens}
    if name == "encoder_decoder":
        source = rng.normal(size=(B, 8, 6)).astype("float32")
        source[1, 5:] = 0.0
        return {"source": source, "target": rng.normal(size=(B, 6, 5)).astype("float32")}
    shapes = {"addition": (B, 7, 12), "conv_front_end": (B, 16, 3), "normalized_stack": (B, 10, 4)}
    return {"x": rng.normal(size=shapes[name]).astype("float32")}


def save_all(folder: str) -> None:
    """Save every model as ``folder/NAME.keras`` with its inputs and Keras's outputs in
    ``folder/NAME.npz`` (``out`` the output): run under the backend whose files are to be read."""
    import os

    import keras

    for name in MODELS:
        model = build(keras, name)
        xs = inputs(name)
        args = list(xs.values())
        out = model(args if len(args) > 1 else args[0], training=False)
        model.save(os.path.join(folder, f"{name}.keras"))
        np.savez(os.path.join(folder, f"{name}.npz"), out=np.asarray(out), **xs)
