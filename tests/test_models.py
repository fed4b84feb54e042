"""Keras parity of ``rnncore.Sequential``: stacks of one to three recurrent layers with Dense heads,
Masking (mask creation and propagation through ``return_sequences`` layers), Dropout layers,
Bidirectional wrappers, and dropout in training mode with the same masks on both sides.

Each Keras model is built once per case and given random asymmetric weights; the rnncore params
are mapped from ``get_weights()`` by hand, one entry per layer. Outputs and the gradients of a
fixed weighted sum of the outputs w.r.t. every weight (in ``get_weights()`` order) and the inputs
must agree to 1e-5.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import max_rel_err
from covering import only
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_layers import (
    ACTIVATIONS,
    KINDS,
    assert_close,
    assert_same_run,
    fast_jit,
    inject_dropout_masks,
    keras_rnn,
    keras_run,
    make_mask,
    randomize,
    rc_rnn,
    rc_run,
)

import rnncore as rc

# Keras reads weights with np.array(variable), which NumPy 2 reports once per weight.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

SEQ = dict(return_sequences=True)
_ZERO_DENSE = dict(kernel_initializer="zeros", bias_initializer="zeros")  # overwritten at once


# --- one model, built twice ---------------------------------------------------------------------


def build_pair(keras, spec):
    """A Keras layer and its rnncore twin from a spec:
    ``("Masking",)``, ``("Dropout", rate)``, ``("Dense", units, kw)``, ``(kind, units, kw)`` or
    ``("Bidirectional", (kind, units, kw), merge_mode)``."""
    name = spec[0]
    if name == "Masking":
        return keras.layers.Masking(), rc.layers.Masking()
    if name == "Dropout":
        return keras.layers.Dropout(spec[1]), rc.layers.Dropout(spec[1])
    if name == "Dense":
        return keras.layers.Dense(spec[1], **_ZERO_DENSE, **spec[2]), rc.layers.Dense(spec[1], **spec[2])
    if name == "Bidirectional":
        kind, units, kw = spec[1]
        return (
            keras.layers.Bidirectional(keras_rnn(keras, kind, units, **kw), merge_mode=spec[2]),
            rc.layers.Bidirectional(rc_rnn(kind, units, **kw), merge_mode=spec[2]),
        )
    kind, units, kw = spec
    return keras_rnn(keras, kind, units, **kw), rc_rnn(kind, units, **kw)


def build_models(keras, specs, T, F):
    pairs = [build_pair(keras, s) for s in specs]
    k_model = keras.Sequential([keras.Input((T, F))] + [k for k, _ in pairs])
    return k_model, rc.Sequential([r for _, r in pairs])


def params_from_keras(model, k_model):
    """rnncore params from the Keras model's weights, mapped by hand with the NamedTuples."""
    assert len(k_model.layers) == len(model.layers)
    params = []
    for layer, k_layer in zip(model.layers, k_model.layers):
        w = k_layer.get_weights()
        if isinstance(layer, rc.layers.RNN):
            params.append(layer.cell.params_type(*w))
        elif isinstance(layer, rc.layers.Bidirectional):
            n_fwd = len(k_layer.forward_layer.weights)
            assert all(a is b for a, b in zip(k_layer.weights[:n_fwd], k_layer.forward_layer.weights))
            params.append(
                rc.layers.BidirectionalParams(
                    layer.forward_layer.cell.params_type(*w[:n_fwd]), layer.backward_layer.cell.params_type(*w[n_fwd:])
                )
            )
        elif isinstance(layer, rc.layers.Dense):
            params.append(rc.layers.DenseParams(*w))
        else:
            assert w == []
            params.append(())
    return tuple(params)


def masked_inputs(rng, B, T, F, mask_kind):
    """Random inputs with all-zero feature vectors where the mask is off (what Masking sees), and
    a single zero feature at a real step (which must not mask it)."""
    x = rng.normal(size=(B, T, F)).astype("float32")
    m = make_mask(mask_kind, B, T, rng)
    if m is not None:
        x = x * np.asarray(m)[:, :, None]
    if F > 1:
        x[0, -1, 0] = 0.0
    return jnp.asarray(x), m


def inject_model_dropout(k_model, model, key, B, T, F):
    """Hand Keras the masks rnncore draws: layer i uses ``split(key, n_layers)[i]``; a
    Bidirectional's forward/backward layers ``fold_in(key_i, 0)``/``fold_in(key_i, 1)``."""
    keys = jax.random.split(key, len(model.layers))
    shape = (T, F)
    for k_layer, layer, k in zip(k_model.layers, model.layers, keys):
        features = shape[-1]
        if isinstance(layer, rc.layers.RNN):
            pairs = [(k_layer, layer, k)]
        elif isinstance(layer, rc.layers.Bidirectional):
            pairs = [
                (k_layer.forward_layer, layer.forward_layer, jax.random.fold_in(k, 0)),
                (k_layer.backward_layer, layer.backward_layer, jax.random.fold_in(k, 1)),
            ]
        else:
            pairs = []
        for kl, rl, kk in pairs:
            masks = fast_jit(lambda k, c=rl.cell, f=features: c.dropout_masks(k, B, f, jnp.float32))(kk)
            inject_dropout_masks(kl.cell, masks, B, features, rl.cell.units)
        shape = layer.compute_output_shape(shape)


def check_model(keras, specs, *, T=5, F=3, B=3, mask=None, training=False, seed=0):
    rng = np.random.default_rng(seed)
    k_model, model = build_models(keras, specs, T, F)
    randomize(k_model, rng)
    params = params_from_keras(model, k_model)
    x, m = masked_inputs(rng, B, T, F, mask)
    key = jax.random.PRNGKey(seed)
    if training:
        inject_model_dropout(k_model, model, key, B, T, F)
    got = rc_run(lambda p, x, s: model.apply(p, x, training=training, rng=key), params, x)
    want = keras_run(k_model, x, training=training)
    assert len(want[1][0]) == len(k_model.get_weights())
    assert_same_run(got, want, str(specs))
    if isinstance(model.layers[0], rc.layers.Masking) and not training:
        # An explicit mask does what Masking does, whatever the masked steps hold.
        rest = rc.Sequential(model.layers[1:])
        garbage = jnp.where(m[:, :, None], x, 7.0) if m is not None else x
        y = fast_jit(lambda p, x, m: rest.apply(p, x, m))(params[1:], garbage, m)
        assert_close(y, want[0], "explicit mask")
    return got, want, (model, params, x, m)


MODEL_CASES = {
    "lstm_dense": dict(specs=[("LSTM", 4, {}), ("Dense", 2, {})]),
    "gru_sequences_dense": dict(specs=[("GRU", 3, SEQ), ("Dense", 2, dict(activation="tanh"))], T=4, F=2, B=1),
    "simple_lstm_backwards_dense": dict(
        specs=[("SimpleRNN", 3, dict(SEQ, activation="relu")), ("LSTM", 4, dict(go_backwards=True)), ("Dense", 1, {})],
        T=7,
    ),
    "depth3_masking_post_dropout_softmax": dict(
        specs=[
            ("Masking",),
            ("LSTM", 3, SEQ),
            ("Dropout", 0.25),
            ("GRU_v1", 4, dict(SEQ, go_backwards=True)),
            ("SimpleRNN", 2, dict(activation="softsign")),
            ("Dense", 2, dict(activation="softmax")),
        ],
        mask="post",
        T=6,
    ),
    "masking_pre_sequences_out_unroll": dict(
        specs=[("Masking",), ("GRU", 3, SEQ), ("LSTM", 2, dict(SEQ, unroll=True)), ("Dense", 3, {})],
        mask="pre",
        T=6,
        F=2,
    ),
    "masking_random_bidirectional_concat": dict(
        specs=[("Masking",), ("Bidirectional", ("LSTM", 3, SEQ), "concat"), ("GRU", 2, {}), ("Dense", 1, {})],
        mask="random",
        T=6,
    ),
    "bidirectional_sum_ave_stack": dict(
        specs=[
            ("Bidirectional", ("GRU", 3, SEQ), "sum"),
            ("Bidirectional", ("SimpleRNN", 2, {}), "ave"),
            ("Dense", 2, {}),
        ],
        T=4,
        B=2,
    ),
    "masking_bidirectional_mul_sequences": dict(
        specs=[
            ("Masking",),
            ("Bidirectional", ("GRU_v1", 3, dict(SEQ, go_backwards=False)), "mul"),
            ("Dense", 2, dict(activation="relu")),
        ],
        mask="random",
        T=5,
        F=2,
    ),
    "dropout_layers_inference": dict(
        specs=[
            ("LSTM", 3, dict(SEQ, dropout=0.4, recurrent_dropout=0.3)),
            ("Dropout", 0.5),
            ("GRU", 2, dict(dropout=0.2)),
            ("Dense", 1, {}),
        ],
        T=5,
    ),
}


@pytest.mark.parametrize(
    "case",
    only(  # by default every kind, mask, merge of a stack, unroll, backwards and the Dropout layer
        list(MODEL_CASES),
        keep=set(MODEL_CASES) - {"lstm_dense", "masking_bidirectional_mul_sequences"},
    ),
)
def test_sequential_matches_keras(keras, case):
    check_model(keras, seed=sum(map(ord, case)), **MODEL_CASES[case])


def test_masking_propagates_only_through_return_sequences(keras):
    """Post-padded rows: the second layer must see the mask (else it runs on the repeated
    outputs of the first), and a layer without return_sequences ends it."""
    specs = [("Masking",), ("LSTM", 3, SEQ), ("GRU", 3, {}), ("Dense", 2, {})]
    got, _, (model, params, x, m) = check_model(keras, specs, mask="post", T=6, seed=3)
    assert not bool(jnp.all(m))
    h, masks = x, [m]
    for layer, p in zip(model.layers, params):
        masks.append(layer.compute_mask(h, masks[-1]))
        h = fast_jit(layer.apply)(p, h, masks[-2])
    assert_close(h, got[0][0], "layer by layer")
    assert_close(masks[1], m, "Masking's mask")
    assert_close(masks[2], m, "return_sequences passes the mask on")
    assert masks[3] is None and masks[4] is None
    # Without the mask the second layer sees different inputs and gives a different answer.
    lstm, gru = model.layers[1:3]
    unmasked = fast_jit(lambda p1, p2, x: gru.apply(p2, lstm.apply(p1, x)))(params[1], params[2], x)
    assert max_rel_err(fast_jit(model.layers[3].apply)(params[3], unmasked), got[0][0]) > 1e-3


TRAINING_CASES = {
    "stack": dict(
        specs=[
            ("LSTM", 3, dict(SEQ, dropout=0.3, recurrent_dropout=0.25)),
            ("GRU", 3, dict(SEQ, dropout=0.2)),
            ("SimpleRNN", 2, dict(recurrent_dropout=0.3)),
            ("Dense", 2, {}),
        ],
        T=5,
    ),
    "masking_bidirectional": dict(
        specs=[
            ("Masking",),
            ("Bidirectional", ("LSTM", 3, dict(SEQ, dropout=0.3, recurrent_dropout=0.2)), "concat"),
            ("GRU_v1", 2, dict(dropout=0.2, recurrent_dropout=0.2)),
            ("Dense", 1, {}),
        ],
        mask="post",
        T=5,
    ),
}


@pytest.mark.parametrize("case", list(TRAINING_CASES))
def test_sequential_dropout_training_same_masks(keras, case):
    got, _, (model, params, x, m) = check_model(keras, training=True, seed=5, **TRAINING_CASES[case])
    inference = fast_jit(lambda p, x: model.apply(p, x))(params, x)
    assert max_rel_err(got[0][0], inference) > 1e-3  # the masks are live


def test_jit_equals_eager_and_model_is_static():
    def make():
        return rc.Sequential(
            [
                rc.layers.Masking(),
                rc.layers.LSTM(3, return_sequences=True, dropout=0.2),
                rc.layers.Bidirectional(rc.layers.GRU(2, recurrent_dropout=0.3), merge_mode="sum"),
                rc.layers.Dense(2, activation="tanh"),
            ]
        )

    model, same = make(), make()
    assert model == same and hash(model) == hash(same)
    assert all(isinstance(hash(layer), int) for layer in model.layers)
    params = model.init(jax.random.PRNGKey(0), (5, 3))
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 5, 3)).at[1, 3:].set(0.0)
    eager = model.apply(params, x)
    assert_close(jax.jit(model.apply)(params, x), eager, "jit(model.apply)", tol=1e-6)
    key = jax.random.PRNGKey(2)
    traces = []

    def run(m, p, x, k):
        traces.append(1)
        return m.apply(p, x, training=True, rng=k)

    jitted = jax.jit(run, static_argnums=0)
    train = jax.jit(model.apply, static_argnames="training")(params, x, training=True, rng=key)
    assert max_rel_err(train, eager) > 1e-3
    for m in (model, same):
        assert_close(jitted(m, params, x, key), train, "jit, static model, training", tol=1e-6)
    assert len(traces) == 1  # an equal model is the same static argument


# --- a search over stacks -----------------------------------------------------------------------


@st.composite
def stacks(draw):
    depth = draw(st.integers(1, 3))
    specs = [("Masking",)] if draw(st.booleans()) else []
    for i in range(depth):
        kind = draw(st.sampled_from(KINDS))
        last = i == depth - 1
        kw = dict(
            return_sequences=(not last) or draw(st.booleans()),
            go_backwards=draw(st.booleans()),
            activation=draw(st.sampled_from(ACTIVATIONS)),
        )
        units = draw(st.integers(1, 5))
        if draw(st.integers(0, 3)) == 0:  # the wrapped layer runs forwards
            specs.append(
                (
                    "Bidirectional",
                    (kind, units, dict(kw, go_backwards=False)),
                    draw(st.sampled_from(["concat", "sum", "ave", "mul"])),
                )
            )
        else:
            specs.append((kind, units, kw))
    specs.append(("Dense", draw(st.integers(1, 3)), dict(activation=draw(st.sampled_from([None, "tanh"])))))
    mask = draw(st.sampled_from(["post", "pre", "random"])) if specs[0] == ("Masking",) else None
    return dict(
        specs=specs,
        T=draw(st.integers(1, 6)),
        F=draw(st.integers(1, 4)),
        B=draw(st.integers(1, 3)),
        mask=mask,
        seed=draw(st.integers(0, 2**16)),
    )


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cfg=stacks())
def test_sequential_matches_keras_search(keras, cfg):
    check_model(keras, **cfg)


@pytest.mark.slow
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cfg=stacks())
def test_sequential_matches_keras_longer_search(keras, cfg):
    check_model(keras, **cfg)


# --- stateful use: the caller carries the state across chunks ----------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_stateful_chunks_equal_keras_stateful(keras, kind):
    """A Keras model of ``stateful=True`` layers keeps its states between calls; rnncore returns them
    (``return_states=True``) and takes them back (``initial_states``): three chunks agree, and
    running the chunks equals running the whole sequence at once."""
    B, T, F = 2, 4, 3
    specs = [
        (kind, 5, dict(return_sequences=True, stateful=True)),
        ("Bidirectional", (kind, 3, dict(stateful=True)), "concat"),
        ("Dense", 2, {}),
    ]
    pairs = [build_pair(keras, s) for s in specs]
    k_model = keras.Sequential([keras.Input((T, F), batch_size=B)] + [k for k, _ in pairs])
    model = rc.Sequential([r for _, r in pairs])
    rng = np.random.default_rng(7)
    randomize(k_model, rng)
    params = params_from_keras(model, k_model)
    chunks = [rng.normal(size=(B, T, F)).astype("float32") for _ in range(3)]
    states = None
    for chunk in chunks:
        y_keras = np.asarray(k_model(chunk))
        y, states = model.apply(params, chunk, initial_states=states, return_states=True)
        assert max_rel_err(y, y_keras) <= 1e-5
    # the first recurrent layer returns sequences: chunked == whole, step for step
    whole = rc.Sequential([model.layers[0]]).apply((params[0],), np.concatenate(chunks, axis=1))
    s = None
    pieces = []
    for chunk in chunks:
        y, (s,) = rc.Sequential([model.layers[0]]).apply((params[0],), chunk, initial_states=(s,), return_states=True)
        pieces.append(y)
    assert max_rel_err(np.concatenate(pieces, axis=1), whole) <= 1e-6
