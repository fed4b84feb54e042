"""rnncore.keras against the installed Keras 3 (JAX backend) as an independent oracle.

Every Keras model gets random, asymmetric weights (never the default init, whose biases are zero)
and ``use_cudnn=False``; outputs, weight order and gradients must agree to 1e-5 relative. Files are
also read in a subprocess where ``import keras`` fails, and everything rnncore cannot represent must
be refused with a message naming the layer and the argument.
"""

import json
import os
import subprocess
import sys
import textwrap
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import max_rel_err, random_like
from covering import only

import rnncore as rc

TOL = 1e-5
B, T, F = 3, 7, 4


def _inputs(seed=0, pad_value=0.0):
    """``(B, T, F)`` with row 0 pre-padded (2 steps) and row 1 post-padded (3 steps) by ``pad_value``."""
    x = np.random.default_rng(seed).normal(size=(B, T, F)).astype("float32")
    x[0, :2] = pad_value
    x[1, -3:] = pad_value
    return x


def _as_list(y):
    return [np.asarray(a) for a in (y if isinstance(y, (list, tuple)) else [y])]


def _randomize(km, seed=1):
    km.set_weights(random_like(np.random.default_rng(seed), km.get_weights()))
    return km


def _assert_same_outputs(model, params, km, x, tol=TOL):
    """rnncore and Keras outputs agree; returns the largest relative error."""
    ours, theirs = _as_list(model.apply(params, x)), _as_list(km(x, training=False))
    assert len(ours) == len(theirs)
    errs = []
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape
        errs.append(max_rel_err(a, b))
    assert max(errs) < tol, errs
    return max(errs)


# --- model zoo: every supported layer and option -------------------------------------------------------


def _zoo(keras, name):
    """Fresh Keras layers for the named case (a new list each call, so a case can be built twice)."""
    L = keras.layers

    def lstm(*a, **k):
        return L.LSTM(*a, use_cudnn=False, **k)

    def gru(*a, **k):
        return L.GRU(*a, use_cudnn=False, **k)

    if name.startswith("merge_"):
        mode = name.split("_", 1)[1]
        mode = None if mode == "none" else mode
        head = [L.Masking(), L.Bidirectional(lstm(3, return_sequences=True), merge_mode=mode)]
        return head + [L.Dense(2)] if mode == "concat" else head
    cases = {
        # depth 1, Keras's unrolled loop
        "gru_reset_before_no_bias": lambda: [gru(3, reset_after=False, use_bias=False, unroll=True)],
        # depth 3, every LSTM option; return_state on the last layer
        "lstm_depth3": lambda: [
            lstm(4, use_bias=False, go_backwards=True, return_sequences=True),
            lstm(
                3,
                activation="softsign",
                recurrent_activation="hard_sigmoid",
                unit_forget_bias=False,
                return_sequences=True,
            ),
            lstm(2, return_state=True),
        ],
        # depth 3 of GRU (reset_after) and SimpleRNN, dropout everywhere (inference), Dense heads
        "gru_simple_rnn_dropout": lambda: [
            gru(4, dropout=0.3, recurrent_dropout=0.2, return_sequences=True),
            L.Dropout(0.5),
            L.SimpleRNN(
                3, activation="relu", use_bias=False, dropout=0.2, recurrent_dropout=0.4, return_sequences=True
            ),
            L.Dense(3, use_bias=False),
            gru(2, go_backwards=True, return_state=True),
        ],
        "rnn_cells": lambda: [
            L.RNN(L.SimpleRNNCell(3), return_sequences=True),
            L.RNN(L.LSTMCell(4, use_bias=False), return_sequences=True),
            L.RNN(L.GRUCell(3, reset_after=False), go_backwards=True),
            L.Dense(2, activation="softmax"),
        ],
        "bidirectional_custom_backward": lambda: [
            L.Bidirectional(
                gru(3, reset_after=False, return_sequences=True),
                backward_layer=gru(3, activation="relu", use_bias=False, return_sequences=True, go_backwards=True),
            ),
            L.Bidirectional(L.RNN(L.SimpleRNNCell(2)), merge_mode="mul"),
        ],
        "bidirectional_return_state": lambda: [L.Masking(), L.Bidirectional(lstm(3, return_state=True))],
        # masking, pre- and post-padded rows, through every kind of layer
        "masking_stack": lambda: [
            L.Masking(),
            lstm(4, return_sequences=True),
            gru(3, return_sequences=True, go_backwards=True),
            L.Dense(3),
            L.Dropout(0.2),
            L.SimpleRNN(2),
        ],
        "masking_nonzero_value": lambda: [
            L.Masking(mask_value=-1.0),
            L.RNN(L.GRUCell(3), return_sequences=True),
            lstm(2, go_backwards=True, return_state=True),
        ],
    }
    return cases[name]()


MERGE_CASES = ["merge_concat", "merge_sum", "merge_ave", "merge_mul", "merge_none"]
CASES = [
    "gru_reset_before_no_bias",
    "lstm_depth3",
    "gru_simple_rnn_dropout",
    "rnn_cells",
    "bidirectional_custom_backward",
    "bidirectional_return_state",
    "masking_stack",
    "masking_nonzero_value",
] + MERGE_CASES
# Functional chains: the cases where the graph carries something (masks, several outputs).
FUNCTIONAL_CASES = ["masking_stack", "masking_nonzero_value", "bidirectional_return_state", "merge_none", "lstm_depth3"]


def _build(keras, name, kind, seed=1):
    layers = _zoo(keras, name)
    inp = keras.Input((T, F))
    if kind == "sequential":
        km = keras.Sequential([inp, *layers])
    else:
        h = inp
        for layer in layers:
            h = layer(h)
        km = keras.Model(inp, h)
    return _randomize(km, seed)


def _case_input(name):
    return _inputs(pad_value=-1.0 if name == "masking_nonzero_value" else 0.0)


LIVE_CASES = [(n, "sequential") for n in CASES] + [(n, "functional") for n in FUNCTIONAL_CASES]
# By default every zoo model once (as a Sequential, or as a functional chain where FILE_CASES loads
# it from a file against Keras) and one functional chain with several outputs; the rest are slow.
# bidirectional_custom_backward covers merge_mode "concat" and "mul".
LIVE_BY_DEFAULT = (
    "gru_reset_before_no_bias-sequential",
    "lstm_depth3-sequential",
    "rnn_cells-sequential",
    "bidirectional_custom_backward-sequential",
    "bidirectional_return_state-sequential",
    "masking_stack-sequential",
    "merge_sum-sequential",
    "merge_ave-sequential",
    "merge_none-functional",
)


@pytest.mark.parametrize(
    "name,kind", only(LIVE_CASES, keep=LIVE_BY_DEFAULT, ids=[f"{n}-{kind}" for n, kind in LIVE_CASES])
)
def test_from_keras_live_matches_keras(keras, name, kind):
    km = _build(keras, name, kind)
    model, params = rc.from_keras(km)
    assert len(model.layers) == len(params) == len([la for la in km.layers if type(la).__name__ != "InputLayer"])
    _assert_same_outputs(model, params, km, _case_input(name))


def test_from_keras_maps_every_argument(keras):
    """Config arguments land on rnncore's cells and layers (initializers included)."""
    L = keras.layers
    km = keras.Sequential(
        [
            keras.Input((T, F)),
            L.LSTM(
                4,
                activation="relu",
                recurrent_activation="hard_sigmoid",
                use_bias=True,
                unit_forget_bias=False,
                kernel_initializer="he_normal",
                recurrent_initializer=keras.initializers.Orthogonal(gain=2.0),
                bias_initializer=keras.initializers.Constant(0.5),
                dropout=0.25,
                recurrent_dropout=0.5,
                return_sequences=True,
                go_backwards=True,
                unroll=True,
                use_cudnn=False,
                seed=3,
            ),
            L.Bidirectional(L.GRU(3, reset_after=False, return_sequences=True, use_cudnn=False), merge_mode="ave"),
            L.Dropout(0.3, noise_shape=(None, 1, None)),
            L.Dense(2, activation="elu", use_bias=False, kernel_initializer="lecun_uniform"),
        ]
    )
    model, _ = rc.from_keras(km)
    lstm, bi, drop, dense = model.layers
    assert type(lstm) is rc.layers.LSTM
    assert lstm.cell == rc.cells.LSTM(
        4,
        activation="relu",
        recurrent_activation="hard_sigmoid",
        use_bias=True,
        unit_forget_bias=False,
        kernel_initializer="he_normal",
        recurrent_initializer=rc.initializers.Orthogonal(gain=2.0),
        bias_initializer=rc.initializers.Constant(0.5),
        dropout=0.25,
        recurrent_dropout=0.5,
    )
    assert (lstm.return_sequences, lstm.go_backwards, lstm.unroll, lstm.return_state, lstm.stateful) == (
        True,
        True,
        True,
        False,
        False,
    )
    assert bi.merge_mode == "ave" and bi.forward_layer.cell == rc.cells.GRU(3, reset_after=False)
    assert not bi.forward_layer.go_backwards and bi.backward_layer.go_backwards
    assert bi.forward_layer.zero_output_for_mask and bi.backward_layer.zero_output_for_mask
    assert drop == rc.layers.Dropout(0.3, noise_shape=(None, 1, None))
    assert dense == rc.layers.Dense(2, activation="elu", use_bias=False, kernel_initializer="lecun_uniform")


def test_float64_policy(keras, x64):
    """A float64 Keras model gives float64 params; Keras's own float64 GRU is only ~1e-8 accurate
    (rnncore matches a float64 NumPy loop to ~1e-16), so the comparison keeps the float32 bound."""
    L = keras.layers
    km = keras.Sequential(
        [
            keras.Input((T, F), dtype="float64"),
            L.Masking(dtype="float64"),
            L.GRU(3, return_sequences=True, use_cudnn=False, dtype="float64"),
            L.Dense(2, dtype="float64"),
        ]
    )
    km.set_weights(random_like(np.random.default_rng(0), km.get_weights(), dtype="float64"))
    model, params = rc.from_keras(km)
    assert {str(a.dtype) for a in jax.tree_util.tree_leaves(params)} == {"float64"}
    _assert_same_outputs(model, params, km, _inputs().astype("float64"))


def test_trainable_false_warns(keras):
    L = keras.layers
    km = _randomize(keras.Sequential([keras.Input((T, F)), L.GRU(3, use_cudnn=False, trainable=False, name="frozen")]))
    with pytest.warns(UserWarning, match=r"'frozen' \(GRU\).*trainable=False"):
        model, params = rc.from_keras(km)
    _assert_same_outputs(model, params, km, _inputs())


# --- .keras files -----------------------------------------------------------------------------------------

FILE_CASES = [
    ("gru_simple_rnn_dropout", "sequential"),
    ("bidirectional_custom_backward", "functional"),
    ("masking_nonzero_value", "functional"),
]


@pytest.mark.parametrize("name,kind", FILE_CASES)
def test_from_keras_file_matches_keras(keras, tmp_path, name, kind):
    km = _build(keras, name, kind)
    path = tmp_path / "m.keras"
    km.save(path)
    model, params = rc.from_keras(path)
    live_model, live_params = rc.from_keras(km)
    assert model == live_model
    for a, b in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(live_params)):
        np.testing.assert_array_equal(a, b)
    _assert_same_outputs(model, params, km, _case_input(name))
    model2, _ = rc.from_keras(str(path))  # str and PathLike alike
    assert model2 == model


_NO_KERAS = textwrap.dedent("""
    import sys
    sys.modules["keras"] = None  # from here on, `import keras` (and keras.*) raises ImportError
    try:
        import keras  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("keras is importable")
    import numpy as np
    import rnncore as rc
    model, params = rc.from_keras(sys.argv[1])
    data = np.load(sys.argv[2])
    ys = model.apply(params, data["x"])
    ys = list(ys) if isinstance(ys, (list, tuple)) else [ys]
    assert len(ys) == len(data.files) - 1
    err = max(float(np.max(np.abs(np.asarray(y) - data[f"y{i}"])) / max(1.0, np.max(np.abs(data[f"y{i}"]))))
              for i, y in enumerate(ys))
    assert sys.modules["keras"] is None
    print("MAXERR", err)
""")


def test_file_loads_without_keras(keras, tmp_path):
    km = _build(keras, "masking_stack", "functional")
    x = _inputs()
    path, npz = tmp_path / "m.keras", tmp_path / "expected.npz"
    km.save(path)
    np.savez(npz, x=x, **{f"y{i}": y for i, y in enumerate(_as_list(km(x, training=False)))})
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("KERAS_BACKEND", None)
    proc = subprocess.run(
        [sys.executable, "-c", _NO_KERAS, str(path), str(npz)], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    err = float(proc.stdout.split("MAXERR")[-1])
    assert err < TOL


# --- keras_weights ----------------------------------------------------------------------------------------


def _every_layer(keras):
    L = keras.layers
    return keras.Sequential(
        [
            keras.Input((T, F)),
            L.Masking(),
            L.SimpleRNN(3, use_bias=False, return_sequences=True),
            L.LSTM(4, return_sequences=True, use_cudnn=False),
            L.GRU(3, reset_after=False, return_sequences=True, use_cudnn=False),
            L.Bidirectional(
                L.GRU(2, return_sequences=True, use_cudnn=False),
                backward_layer=L.GRU(2, use_bias=False, return_sequences=True, go_backwards=True, use_cudnn=False),
            ),
            L.RNN(L.LSTMCell(2, use_bias=False), return_sequences=True),
            L.Dropout(0.2),
            L.Dense(3, use_bias=False),
            L.Dense(2),
        ]
    )


def test_keras_weights_order_is_get_weights_order(keras):
    km = _randomize(_every_layer(keras))
    model, params = rc.from_keras(km)
    ours, theirs = rc.keras_weights(model, params), km.get_weights()
    assert [np.shape(a) for a in ours] == [np.shape(b) for b in theirs]
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(np.asarray(a), b)
    # and per layer, which pins each layer's own order
    for layer, p, kl in zip(model.layers, params, km.layers):
        single = rc.Sequential([layer])
        flat = rc.keras_weights(single, (p,)) if jax.tree_util.tree_leaves(p) else []
        assert len(flat) == len(kl.get_weights())
        for a, b in zip(flat, kl.get_weights()):
            np.testing.assert_array_equal(np.asarray(a), b)


def _grad_model(keras, name):
    L = keras.layers
    layers = {
        # masking, pre- and post-padding, LSTM then a GRU running backwards, Dense on sequences
        "masked_stack": lambda: [
            L.Masking(),
            L.LSTM(3, return_sequences=True, use_cudnn=False),
            L.Dense(3, use_bias=False),
            L.GRU(2, go_backwards=True, use_cudnn=False),
        ],
        # Bidirectional with a different backward layer (no bias), GRU reset_after=False, SimpleRNN
        "bidirectional": lambda: [
            L.SimpleRNN(3, return_sequences=True),
            L.Bidirectional(
                L.GRU(2, reset_after=False, use_cudnn=False),
                backward_layer=L.GRU(2, reset_after=False, use_bias=False, go_backwards=True, use_cudnn=False),
            ),
        ],
    }[name]()
    return _randomize(keras.Sequential([keras.Input((T, F)), *layers]))


# the Bidirectional's gradients in the default run: tests/interop/test_stacked_kinds.py (and the graphs')
@pytest.mark.parametrize("name", ["masked_stack", pytest.param("bidirectional", marks=pytest.mark.slow)])
def test_keras_weights_of_gradients_equal_keras_gradients(keras, name):
    km = _grad_model(keras, name)
    model, params = rc.from_keras(km)
    x = _inputs()
    probes = [
        np.random.default_rng(7 + i).normal(size=y.shape).astype("float32")
        for i, y in enumerate(_as_list(km(x, training=False)))
    ]

    def contract(ys):
        return sum(jnp.sum(y * w) for y, w in zip(ys if isinstance(ys, (list, tuple)) else [ys], probes))

    ours = rc.keras_weights(model, jax.grad(lambda p: contract(model.apply(p, x)))(params))
    non_trainable = [v.value for v in km.non_trainable_variables]

    def keras_loss(trainable):
        ys, _ = km.stateless_call(trainable, non_trainable, x, training=False)
        return contract(ys)

    theirs = jax.grad(keras_loss)([v.value for v in km.trainable_variables])
    assert len(ours) == len(theirs) == len(km.get_weights())
    for a, b in zip(ours, theirs):
        assert np.max(np.abs(np.asarray(b))) > 0
        assert max_rel_err(a, b) < TOL


def test_keras_weights_refuses_bad_trees():
    model = rc.Sequential([rc.layers.LSTM(3), rc.layers.Dense(1)])
    params = model.init(jax.random.PRNGKey(0), (T, F))
    with pytest.raises(ValueError, match="one entry per layer"):
        rc.keras_weights(model, params[:1])
    bad = (params[0]._replace(recurrent_kernel=jnp.zeros((3, 9))), params[1])
    with pytest.raises(ValueError, match=r"layers\[0\].*recurrent_kernel must be shape \(3, 12\); got shape \(3, 9\)"):
        rc.keras_weights(model, bad)
    ln = rc.Sequential([rc.layers.LayerNormLSTM(3)])
    with pytest.raises(ValueError, match="LayerNormLSTM"):
        rc.keras_weights(ln, ln.init(jax.random.PRNGKey(0), (T, F)))


# --- to_keras ---------------------------------------------------------------------------------------------


def _randomize_params(params, seed=3):
    leaves, treedef = jax.tree_util.tree_flatten(params)
    fresh = random_like(np.random.default_rng(seed), leaves)
    return jax.tree_util.tree_unflatten(treedef, [jnp.asarray(a) for a in fresh])


ROUND_TRIP_MODELS = {
    "stack": lambda: rc.Sequential(
        [
            rc.layers.Masking(),
            rc.layers.LSTM(4, return_sequences=True, unit_forget_bias=False),
            rc.layers.Bidirectional(rc.layers.GRU(3, reset_after=False, return_sequences=True), merge_mode="ave"),
            rc.layers.RNN(rc.cells.SimpleRNN(3, activation="relu"), return_sequences=True),
            rc.layers.Dropout(0.2),
            rc.layers.Dense(2, activation="tanh"),
            rc.layers.GRU(2, use_bias=False, go_backwards=True),
        ]
    ),
    "return_state": lambda: rc.Sequential(
        [
            rc.layers.SimpleRNN(3, return_sequences=True, use_bias=False),
            rc.layers.Bidirectional(
                rc.layers.LSTM(2, return_state=True, recurrent_initializer="glorot_normal"), merge_mode=None
            ),
        ]
    ),
}


@pytest.mark.parametrize("name", sorted(ROUND_TRIP_MODELS))
def test_to_keras_round_trip(keras, name):
    model = ROUND_TRIP_MODELS[name]()
    params = _randomize_params(model.init(jax.random.PRNGKey(0), (T, F)))
    km = rc.to_keras(model, params)
    x = _inputs()
    _assert_same_outputs(model, params, km, x)
    for a, b in zip(rc.keras_weights(model, params), km.get_weights()):
        np.testing.assert_array_equal(np.asarray(a), b)
    model2, params2 = rc.from_keras(km)
    assert model2 == model
    assert jax.tree_util.tree_structure(params2) == jax.tree_util.tree_structure(params)
    for a, b in zip(jax.tree_util.tree_leaves(params2), jax.tree_util.tree_leaves(params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_to_keras_stateful_needs_batch_size(keras):
    model = rc.Sequential([rc.layers.LSTM(3, stateful=True, return_sequences=True)])
    params = _randomize_params(model.init(jax.random.PRNGKey(0), (T, F)))
    with pytest.raises(ValueError, match="batch_size"):
        rc.to_keras(model, params)
    km = rc.to_keras(model, params, batch_size=B)
    assert rc.from_keras(km)[0] == model
    _assert_same_outputs(model, params, km, _inputs())


def test_to_keras_refuses_what_keras_cannot_represent(keras):
    model = rc.Sequential([rc.layers.LayerNormLSTM(3), rc.layers.Dense(1)])
    params = model.init(jax.random.PRNGKey(0), (T, F))
    with pytest.raises(ValueError, match=r"layers\[0\].*LayerNormLSTM"):
        rc.to_keras(model, params)
    custom = rc.Sequential([rc.layers.SimpleRNN(2, activation=lambda a: a * 2.0)])
    with pytest.raises(ValueError, match=r"layers\[0\].*activation"):
        rc.to_keras(custom, custom.init(jax.random.PRNGKey(0), (T, F)))


# --- refusals: live models --------------------------------------------------------------------------------


def _unsupported(keras, which):
    L = keras.layers
    layer = {
        "Lambda": lambda: L.Lambda(lambda t: t * 2.0, name="bad"),
        "UpSampling1D": lambda: L.UpSampling1D(2, name="bad"),
    }[which]()
    return keras.Sequential([keras.Input((T, F)), L.LSTM(3, return_sequences=True, use_cudnn=False), layer])


@pytest.mark.parametrize("which", ["Lambda", "UpSampling1D"])
def test_refuses_unsupported_layers(keras, which):
    with pytest.raises(ValueError, match=rf"layer 'bad' \({which}\) is not supported"):
        rc.from_keras(_unsupported(keras, which))


@pytest.mark.parametrize(
    "layer_cls,arg,value",
    [
        ("LSTM", "kernel_regularizer", "l2"),
        ("GRU", "recurrent_constraint", "non_neg"),
        ("SimpleRNN", "kernel_constraint", "max_norm"),
        ("Dense", "bias_regularizer", "l2"),
    ],
)
def test_refuses_regularizers_and_constraints(keras, layer_cls, arg, value):
    L = keras.layers
    extra = {"use_cudnn": False} if layer_cls in ("LSTM", "GRU") else {}
    layer = getattr(L, layer_cls)(3, name="trained", **{arg: value}, **extra)
    km = keras.Sequential([keras.Input((T, F)), layer])
    with pytest.raises(ValueError, match=rf"layer 'trained' \({layer_cls}\): {arg}=.* is not supported"):
        rc.from_keras(km)


def test_refuses_custom_activation_and_dtype_policy(keras):
    L = keras.layers
    km = keras.Sequential([keras.Input((T, F)), L.SimpleRNN(2, activation=lambda a: a, name="act")])
    with pytest.raises(ValueError, match=r"layer 'act' \(SimpleRNN\): activation=.*custom"):
        rc.from_keras(km)
    km = keras.Sequential([keras.Input((T, F)), L.GRU(2, dtype="mixed_float16", use_cudnn=False, name="half")])
    with pytest.raises(ValueError, match=r"layer 'half' \(GRU\).*mixed_float16"):
        rc.from_keras(km)


def test_functional_graphs_that_are_not_one_chain_load_as_graph_models(keras):
    """Two outputs, a merge of two branches, two inputs, a recurrent layer given another mask: each
    a ``rc.Model`` equal to Keras (tests/interop/test_keras_graph.py checks gradients and files)."""
    L = keras.layers
    inp = keras.Input((T, F))
    y = L.LSTM(3, return_sequences=True, use_cudnn=False)(inp)
    masked = L.LSTM(3, return_sequences=True, use_cudnn=False)(L.Masking()(inp))
    other_mask = keras.ops.any(keras.ops.not_equal(inp, 1.0), axis=-1)
    state_out = L.LSTM(3, return_state=True, use_cudnn=False)(inp)
    x = _inputs()
    x[2, 3:] = 1.0
    for km in (
        keras.Model(inp, [y, L.Dense(2)(y)]),
        keras.Model(inp, L.GRU(2, use_cudnn=False, name="remasked")(masked, mask=other_mask)),
        keras.Model(inp, state_out[0]),
    ):
        model, params = rc.from_keras(_randomize(km))
        assert isinstance(model, rc.Model)
        _assert_same_outputs(model, params, km, x)


def test_refuses_non_models(keras):
    with pytest.raises(ValueError, match="keras.Model or a path"):
        rc.from_keras(42)
    with pytest.raises(ValueError, match="keras.Model.*LSTM"):
        rc.from_keras(keras.layers.LSTM(2))


# --- refusals: files --------------------------------------------------------------------------------------


@pytest.fixture
def saved(keras, tmp_path):
    """A small valid .keras file (Sequential: Input, LSTM, Dense) and its config."""
    L = keras.layers
    km = _randomize(
        keras.Sequential(
            [keras.Input((T, F)), L.LSTM(3, return_sequences=True, use_cudnn=False, name="rec"), L.Dense(2, name="out")]
        )
    )
    path = tmp_path / "good.keras"
    km.save(path)
    with zipfile.ZipFile(path) as zf:
        config = json.loads(zf.read("config.json"))
    return path, config


def _write_zip(path, members: dict):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _members(path):
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _with_config(tmp_path, saved_path, config, name="edited.keras"):
    members = _members(saved_path)
    members["config.json"] = json.dumps(config)
    return _write_zip(tmp_path / name, members)


def test_file_refuses_lambda_without_running_it(tmp_path, saved):
    path, config = saved
    # A Lambda whose code would write a marker file; it must never run (nor be deserialized).
    marker = tmp_path / "ran"
    lam = {
        "module": "keras.layers",
        "class_name": "Lambda",
        "registered_name": None,
        "config": {
            "name": "evil",
            "function": {"class_name": "__lambda__", "config": {"code": f"open({str(marker)!r}, 'w')"}},
        },
    }
    config["config"]["layers"].insert(2, lam)
    with pytest.raises(ValueError, match=r"edited\.keras.*layer 'evil' \(Lambda\) is not supported"):
        rc.from_keras(_with_config(tmp_path, path, config))
    assert not marker.exists()


def test_file_refuses_custom_objects(tmp_path, saved):
    path, config = saved
    lstm = config["config"]["layers"][1]
    custom = json.loads(json.dumps(config))
    custom["config"]["layers"][1] = {
        **lstm,
        "module": "my_package.layers",
        "class_name": "MyLSTM",
        "registered_name": "my_package>MyLSTM",
    }
    with pytest.raises(ValueError, match=r"MyLSTM.*my_package"):
        rc.from_keras(_with_config(tmp_path, path, custom, "custom.keras"))
    registered = json.loads(json.dumps(config))
    registered["config"]["layers"][1]["registered_name"] = "Custom>LSTM"
    with pytest.raises(ValueError, match=r"Custom>LSTM"):
        rc.from_keras(_with_config(tmp_path, path, registered, "registered.keras"))
    act = json.loads(json.dumps(config))
    act["config"]["layers"][2]["config"]["activation"] = {
        "module": "builtins",
        "class_name": "function",
        "config": "my_act",
        "registered_name": "my_act",
    }
    with pytest.raises(ValueError, match=r"layer 'out' \(Dense\): activation=.*custom activation \(module 'builtins'"):
        rc.from_keras(_with_config(tmp_path, path, act, "act.keras"))


def test_file_refuses_damaged_files(tmp_path, saved):
    path, config = saved
    data = path.read_bytes()
    # corrupted bytes inside the stored weights
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("model.weights.h5")
    start = info.header_offset + 100
    corrupted = bytearray(data)
    for i in range(start, start + min(200, info.compress_size - 120)):
        corrupted[i] ^= 0x5A
    (tmp_path / "corrupted.keras").write_bytes(bytes(corrupted))
    with pytest.raises(ValueError, match=r"corrupted\.keras.*(corrupted|HDF5|cannot be read)"):
        rc.from_keras(tmp_path / "corrupted.keras")
    (tmp_path / "truncated.keras").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"truncated\.keras.*truncated or corrupted"):
        rc.from_keras(tmp_path / "truncated.keras")
    (tmp_path / "text.keras").write_text("this is not a model\n")
    with pytest.raises(ValueError, match=r"text\.keras.*not a readable \.keras file: not a zip archive"):
        rc.from_keras(tmp_path / "text.keras")
    no_weights = _write_zip(tmp_path / "noweights.keras", {"config.json": json.dumps(config)})
    with pytest.raises(ValueError, match=r"noweights\.keras.*missing model\.weights\.h5"):
        rc.from_keras(no_weights)
    members = _members(path)
    del members["config.json"]
    with pytest.raises(ValueError, match=r"noconfig\.keras.*missing config\.json"):
        rc.from_keras(_write_zip(tmp_path / "noconfig.keras", members))
    with pytest.raises(ValueError, match=r"absent\.keras.*no such file"):
        rc.from_keras(tmp_path / "absent.keras")
    bad_json = _members(path)
    bad_json["config.json"] = b"{not json"
    with pytest.raises(ValueError, match=r"badjson\.keras.*config\.json is not valid JSON"):
        rc.from_keras(_write_zip(tmp_path / "badjson.keras", bad_json))


def test_file_refuses_weights_that_do_not_match_the_config(keras, tmp_path, saved):
    path, config = saved
    wider = json.loads(json.dumps(config))
    wider["config"]["layers"][1]["config"]["units"] = 5
    with pytest.raises(
        ValueError,
        match=r"mismatch\.keras.*layer 'rec' \(LSTM\): weight kernel has shape "
        r"\(4, 12\).*need \(4, 20\)",
    ):
        rc.from_keras(_with_config(tmp_path, path, wider, "mismatch.keras"))
    no_bias = json.loads(json.dumps(config))
    no_bias["config"]["layers"][2]["config"]["use_bias"] = False
    with pytest.raises(ValueError, match=r"layer 'out' \(Dense\) has 2 weight arrays; its config needs 1"):
        rc.from_keras(_with_config(tmp_path, path, no_bias, "nobias.keras"))


def test_doctests(keras):
    import doctest

    import rnncore.keras as rk

    result = doctest.testmod(rk, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_to_keras_refuses_truncated_gradient(keras):
    """Truncated BPTT changes the gradient, which a Keras layer cannot reproduce: refused, named."""
    model = rc.Sequential([rc.layers.LSTM(3, truncate_gradient=2), rc.layers.Dense(1)])
    params = model.init(jax.random.PRNGKey(0), (5, 2))
    with pytest.raises(ValueError, match="truncate_gradient=2"):
        rc.to_keras(model, params)
    rc.to_keras(rc.Sequential([rc.layers.LSTM(3, backward_pass="autodiff"), rc.layers.Dense(1)]), params)
