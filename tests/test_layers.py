"""Keras parity of ``rnncore.layers``: SimpleRNN, LSTM, GRU (both reset modes), RNN(cell) and
Bidirectional against Keras 3 (JAX backend, ``use_cudnn=False``, float32).

Every Keras layer is built once per case and given random, asymmetric weights (default init has
zero biases, which hide a swapped gate); rnncore gets the very same arrays through the params
NamedTuples. Outputs, states and the gradients of a fixed weighted sum of every output w.r.t. each
weight (in ``get_weights()`` order), the inputs and the initial state must agree to 1e-5.
Dropout in training mode runs with the same masks on both sides: rnncore draws them with
``cell.dropout_masks(key, ...)``, and they are handed to the Keras cell in place of its own.

The float64 tests check the scan against a plain Python loop of ``cell.step`` to 1e-12.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import max_rel_err, random_like
from covering import sweep
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rnncore as rc

# Keras reads weights with np.array(variable), which NumPy 2 reports once per weight.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

TOL = 1e-5
KINDS = ("SimpleRNN", "LSTM", "GRU", "GRU_v1")  # GRU_v1: reset_after=False
ACTIVATIONS = ("tanh", "relu", "sigmoid", "hard_sigmoid", "softsign", "elu", "linear")
RECURRENT_ACTIVATIONS = ("sigmoid", "hard_sigmoid", "tanh", "softsign", "linear")
# Keras's own initial values are overwritten at once; zeros skip compiling its initializers.
_KERAS_INIT = dict(kernel_initializer="zeros", recurrent_initializer="zeros", bias_initializer="zeros")


def _fast_compile_options():
    """Every case compiles a small new program once: on CPU, XLA's cheapest settings compile it
    several times faster (the arithmetic is the same IEEE float32). Empty where not accepted."""
    if jax.default_backend() != "cpu":
        return {}
    opts = {
        "xla_backend_optimization_level": 0,
        "xla_cpu_use_fusion_emitters": False,
        "xla_cpu_parallel_codegen_split_count": 1,
    }
    try:
        jax.jit(lambda a: a + 1, compiler_options=opts)(0.0)
    except Exception:  # an XLA without these options
        return {}
    return opts


fast_jit = functools.partial(jax.jit, compiler_options=_fast_compile_options())


# --- building the same layer twice --------------------------------------------------------------


def cell_kwargs(kind, kw):
    """Drop the arguments ``kind`` does not take (so one config serves every cell)."""
    kw = dict(kw)
    if kind == "SimpleRNN":
        kw.pop("recurrent_activation", None)
    if kind != "LSTM":
        kw.pop("unit_forget_bias", None)
    return kw


def keras_rnn(keras, kind, units, **kw):
    kw = cell_kwargs(kind, kw)
    if kind == "SimpleRNN":
        return keras.layers.SimpleRNN(units, **_KERAS_INIT, **kw)
    if kind == "LSTM":
        return keras.layers.LSTM(units, use_cudnn=False, **_KERAS_INIT, **kw)
    return keras.layers.GRU(units, use_cudnn=False, reset_after=(kind == "GRU"), **_KERAS_INIT, **kw)


def rc_rnn(kind, units, **kw):
    kw = cell_kwargs(kind, kw)
    if kind == "GRU_v1":
        return rc.layers.GRU(units, reset_after=False, **kw)
    return getattr(rc.layers, kind)(units, **kw)


def keras_cell(keras, kind, units, **kw):
    kw = cell_kwargs(kind, kw)
    if kind == "SimpleRNN":
        return keras.layers.SimpleRNNCell(units, **_KERAS_INIT, **kw)
    if kind == "LSTM":
        return keras.layers.LSTMCell(units, **_KERAS_INIT, **kw)
    return keras.layers.GRUCell(units, reset_after=(kind == "GRU"), **_KERAS_INIT, **kw)


def rc_cell(kind, units, **kw):
    kw = cell_kwargs(kind, kw)
    if kind == "GRU_v1":
        return rc.cells.GRU(units, reset_after=False, **kw)
    return getattr(rc.cells, kind)(units, **kw)


def n_states(kind):
    return 2 if kind == "LSTM" else 1


def randomize(keras_obj, rng):
    """Random asymmetric weights into a built Keras layer or model; returns them."""
    weights = random_like(rng, keras_obj.get_weights())
    keras_obj.set_weights(weights)
    return weights


def make_mask(kind, batch, steps, rng):
    """``(B, T)`` booleans, True where a step is real.

    ``post``/``pre``: right/left padding with random lengths (row 0 full length);
    ``random``: arbitrary, with the first step of row 0 masked and, when B > 1, the last row
    masked throughout.
    """
    if kind is None:
        return None
    if kind in ("post", "pre"):
        lengths = rng.integers(1, steps + 1, size=batch)
        lengths[0] = steps
        t = np.arange(steps)[None]
        m = t < lengths[:, None] if kind == "post" else t >= steps - lengths[:, None]
    elif kind == "random":
        m = rng.random((batch, steps)) < 0.6
        m[0, 0] = False
        if batch > 1:
            m[-1] = False
    else:
        raise ValueError(kind)
    return jnp.asarray(m)


def random_state(rng, kind, batch, units):
    return tuple(jnp.asarray(a) for a in random_like(rng, [np.zeros((batch, units))] * n_states(kind)))


# --- running both sides: outputs and gradients --------------------------------------------------


def _cotangent(shape, k):
    """A fixed, position-dependent weight for output ``k``: the loss is ``Σ_k <out_k, w_k>``."""
    n = int(np.prod(shape))
    return jnp.cos(0.7 * jnp.arange(n, dtype=jnp.float32) + 1.3 * k).reshape(shape)


def as_tuple(out):
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def _loss(out):
    out = as_tuple(out)
    return sum(jnp.sum(o * _cotangent(o.shape, k)) for k, o in enumerate(out)), out


def keras_run(obj, x, initial_state=None, **call_kwargs):
    """Keras outputs and gradients ``(per weight in get_weights() order, d inputs, d initial
    state)``, by ``jax.grad`` through ``stateless_call``."""
    trainable = list(obj.trainable_variables)
    tv = [v.value for v in trainable]
    ntv = [v.value for v in obj.non_trainable_variables]
    ids = [id(v) for v in trainable]
    order = [ids.index(id(w)) for w in obj.weights]  # every weight is trainable

    def loss(tv, x, s0):
        kwargs = dict(call_kwargs)
        if s0 is not None:
            kwargs["initial_state"] = list(s0)
        out, _ = obj.stateless_call(tv, ntv, x, **kwargs)
        return _loss(out)

    (_, out), (gw, gx, gs) = fast_jit(jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True))(
        tv, jnp.asarray(x), initial_state
    )
    return out, ([gw[i] for i in order], gx, gs)


def rc_run(fn, params, x, initial_state=None):
    """rnncore outputs and gradients of the same loss; ``fn(params, x, initial_state)``."""

    def loss(p, x, s0):
        return _loss(fn(p, x, s0))

    (_, out), (gp, gx, gs) = fast_jit(jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True))(
        params, jnp.asarray(x), initial_state
    )
    return out, (jax.tree_util.tree_leaves(gp), gx, gs)


def assert_close(got, want, what, tol=TOL):
    got, want = as_tuple(got), as_tuple(want)
    assert len(got) == len(want), f"{what}: {len(got)} arrays vs {len(want)}"
    for i, (a, b) in enumerate(zip(got, want)):
        assert np.shape(a) == np.shape(b), f"{what}[{i}]: shape {np.shape(a)} vs {np.shape(b)}"
        err = max_rel_err(a, b)
        assert err <= tol, f"{what}[{i}]: max rel err {err:.3g} > {tol:g}"


def assert_same_run(rc_result, keras_result, what=""):
    (out, (gw, gx, gs)), (k_out, (k_gw, k_gx, k_gs)) = rc_result, keras_result
    assert_close(out, k_out, f"{what} outputs")
    assert_close(gw, k_gw, f"{what} d/dweights")
    assert_close(gx, k_gx, f"{what} d/dinputs")
    if k_gs is not None:
        assert_close(gs, k_gs, f"{what} d/dinitial_state")


def keras_masks(masks):
    """rnncore ``(n, B, ·)`` masks in Keras's form: one ``(B, ·)`` array, or a list per gate."""
    if masks is None:
        return None
    return masks[0] if masks.shape[0] == 1 else [masks[g] for g in range(masks.shape[0])]


def inject_dropout_masks(keras_cell_obj, masks, batch, features, units):
    """Make the Keras cell use rnncore's ``DropoutMasks`` (checking their count and shapes)."""
    count = getattr(keras_cell_obj, "dropout_mask_count", None)
    n = 1 if count is None else count
    if keras_cell_obj.dropout > 0:
        assert masks.inputs is not None and masks.inputs.shape == (n, batch, features)
    else:
        assert masks is None or masks.inputs is None
    if keras_cell_obj.recurrent_dropout > 0:
        assert masks.recurrent is not None and masks.recurrent.shape == (n, batch, units)
    else:
        assert masks is None or masks.recurrent is None
    k_in = keras_masks(None if masks is None else masks.inputs)
    k_rec = keras_masks(None if masks is None else masks.recurrent)
    keras_cell_obj.get_dropout_mask = lambda step_input: k_in
    keras_cell_obj.get_recurrent_dropout_mask = lambda step_input: k_rec


# --- one recurrent layer against Keras ----------------------------------------------------------


def check_layer(keras, kind, units=3, F=2, T=5, B=2, mask=None, init=False, training=False, seed=0, **kw):
    """Build ``kind`` in Keras and rnncore with ``kw``, run both, compare outputs and gradients."""
    rng = np.random.default_rng(seed)
    k_layer = keras_rnn(keras, kind, units, **kw)
    k_layer.build((B, T, F))
    weights = randomize(k_layer, rng)
    layer = rc_rnn(kind, units, **kw)
    params = layer.cell.params_type(*weights)
    x = jnp.asarray(random_like(rng, [np.zeros((B, T, F))], scale=1.0)[0])
    m = make_mask(mask, B, T, rng)
    s0 = random_state(rng, kind, B, units) if init else None
    key = jax.random.PRNGKey(seed)
    if training:
        dmasks = fast_jit(lambda k: layer.cell.dropout_masks(k, B, F, jnp.float32))(key)
        inject_dropout_masks(k_layer.cell, dmasks, B, F, units)
    else:
        dmasks = None
    got = rc_run(lambda p, x, s: layer.apply(p, x, m, training=training, rng=key, initial_state=s), params, x, s0)
    want = keras_run(k_layer, x, s0, mask=m, training=training)
    n_out = 1 + (n_states(kind) if kw.get("return_state") else 0)
    assert len(want[0]) == n_out
    assert_same_run(got, want, f"{kind} {kw}")
    return got, want, dmasks


SEQ_STATE = dict(return_sequences=True, return_state=True)
LAYER_CASES = {
    "defaults": dict(units=3, F=2, T=7, B=3),
    "T1_B1_init": dict(units=2, F=3, T=1, B=1, init=True, **SEQ_STATE),
    "backwards_init": dict(units=5, F=4, T=6, B=2, init=True, go_backwards=True, **SEQ_STATE),
    "post_mask_init": dict(units=3, F=2, T=6, B=3, mask="post", init=True, **SEQ_STATE),
    "pre_mask_backwards_softsign_tanh": dict(
        units=4,
        F=2,
        T=5,
        B=3,
        mask="pre",
        go_backwards=True,
        activation="softsign",
        recurrent_activation="tanh",
        return_sequences=True,
    ),
    "random_mask_backwards_init": dict(
        units=3, F=3, T=7, B=3, mask="random", init=True, go_backwards=True, **SEQ_STATE
    ),
    "no_bias_relu_hard_sigmoid_random_mask": dict(
        units=6,
        F=3,
        T=6,
        B=3,
        mask="random",
        use_bias=False,
        activation="relu",
        recurrent_activation="hard_sigmoid",
        unit_forget_bias=False,
        return_state=True,
    ),
    "elu_linear_init": dict(
        units=2, F=4, T=5, B=3, activation="elu", recurrent_activation="linear", init=True, **SEQ_STATE
    ),
    "unroll_sigmoid_softsign_random_mask_init": dict(
        units=4,
        F=2,
        T=6,
        B=3,
        unroll=True,
        mask="random",
        init=True,
        activation="sigmoid",
        recurrent_activation="softsign",
        **SEQ_STATE,
    ),
    "unroll_backwards_linear_post_mask_init": dict(
        units=3,
        F=2,
        T=5,
        B=3,
        unroll=True,
        go_backwards=True,
        mask="post",
        init=True,
        activation="linear",
        return_state=True,
    ),
}


# the kind each case runs with by default: every case once, every kind with and without a mask,
# unrolled and going backwards, recurrent activations on the gated kinds
LAYER_CASE_DEFAULT_KINDS = {
    "defaults": ("SimpleRNN",),
    "T1_B1_init": ("LSTM",),
    "backwards_init": ("GRU",),
    "post_mask_init": ("GRU_v1",),
    "pre_mask_backwards_softsign_tanh": ("LSTM",),
    "random_mask_backwards_init": ("SimpleRNN",),
    "no_bias_relu_hard_sigmoid_random_mask": ("GRU",),
    "elu_linear_init": ("GRU_v1",),
    "unroll_sigmoid_softsign_random_mask_init": ("LSTM", "GRU_v1"),
    "unroll_backwards_linear_post_mask_init": ("SimpleRNN", "GRU"),
}


@pytest.mark.parametrize(
    "kind, case",
    sweep(
        KINDS,
        list(LAYER_CASES),
        default=lambda k, c: KINDS[k] in LAYER_CASE_DEFAULT_KINDS[list(LAYER_CASES)[c]],
    ),
)
def test_layer_matches_keras(keras, kind, case):
    check_layer(keras, kind, seed=sum(map(ord, case)), **LAYER_CASES[case])


DROPOUT_CASES = {
    "inputs_only_post_mask": dict(dropout=0.4, mask="post"),
    "recurrent_only_random_mask_init": dict(recurrent_dropout=0.4, mask="random", init=True),
    "both_unroll_backwards_pre_mask": dict(
        dropout=0.3, recurrent_dropout=0.35, unroll=True, go_backwards=True, mask="pre", init=True
    ),
}


@pytest.mark.parametrize(
    "kind, case", sweep(KINDS, list(DROPOUT_CASES), default=lambda k, c: (k + c) % 3 == 0 or (k, c) == (1, 0))
)
def test_dropout_training_matches_keras_with_same_masks(keras, kind, case):
    """Keras's mask counts (checked in :func:`inject_dropout_masks`): SimpleRNN 1+1; LSTM one
    input mask with the fused matmul, 4+4 with recurrent dropout; GRU 1, or 3+3."""
    kw = dict(units=4, F=3, T=6, B=3, **SEQ_STATE, **DROPOUT_CASES[case])
    _, _, masks = check_layer(keras, kind, training=True, seed=7, **kw)
    per_gate = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3, "GRU_v1": 3}[kind]
    n = per_gate if kw.get("recurrent_dropout", 0) > 0 else 1
    for rate, m in ((kw.get("dropout", 0), masks.inputs), (kw.get("recurrent_dropout", 0), masks.recurrent)):
        if rate:  # live masks: some entries dropped, the rest scaled by 1/(1-rate)
            assert m.shape[0] == n
            np.testing.assert_allclose(np.unique(np.asarray(m)), [0.0, 1 / (1 - rate)], rtol=1e-6)


@pytest.mark.parametrize(
    "kind,go_backwards,unroll",
    [
        ("SimpleRNN", True, False),
        ("LSTM", False, False),
        ("GRU", True, False),
        ("GRU_v1", False, False),
        ("LSTM", True, True),
    ],
)
def test_zero_output_for_mask_matches_keras_rnn(keras, kind, go_backwards, unroll):
    """``keras.layers.RNN(cell, zero_output_for_mask=True)``: masked steps output exact zeros on
    the scan path; Keras's unrolled loop ignores the flag."""
    units, F, T, B = 3, 2, 6, 3
    rng = np.random.default_rng(11)
    flags = dict(
        return_sequences=True, return_state=True, go_backwards=go_backwards, zero_output_for_mask=True, unroll=unroll
    )
    k_layer = keras.layers.RNN(keras_cell(keras, kind, units, activation="softsign"), **flags)
    k_layer.build((B, T, F))
    weights = randomize(k_layer, rng)
    layer = rc.layers.RNN(rc_cell(kind, units, activation="softsign"), **flags)
    params = layer.cell.params_type(*weights)
    x = jnp.asarray(rng.normal(size=(B, T, F)).astype("float32"))
    m = make_mask("random", B, T, rng)
    s0 = random_state(rng, kind, B, units)
    got = rc_run(lambda p, x, s: layer.apply(p, x, m, initial_state=s), params, x, s0)
    assert_same_run(got, keras_run(k_layer, x, s0, mask=m), kind)
    y = np.asarray(got[0][0])
    m_processing = np.asarray(m)[:, ::-1] if go_backwards else np.asarray(m)
    assert np.all(np.any(y[m_processing] != 0, axis=-1))
    assert np.all(y[~m_processing] == 0) != unroll
    # A row masked throughout keeps its initial state.
    for s, s_init in zip(got[0][1:], s0):
        np.testing.assert_array_equal(np.asarray(s)[-1], np.asarray(s_init)[-1])


def keras_forward(obj, x, initial_state=None, **call_kwargs):
    """Keras outputs (jitted ``stateless_call``) as a tuple."""
    tv = [v.value for v in obj.trainable_variables]
    ntv = [v.value for v in obj.non_trainable_variables]
    if initial_state is not None:
        call_kwargs["initial_state"] = list(initial_state)
    return as_tuple(fast_jit(lambda tv, x: obj.stateless_call(tv, ntv, x, **call_kwargs)[0])(tv, x))


@pytest.mark.parametrize("kind", KINDS)
def test_go_backwards_outputs_in_processing_order(keras, kind):
    """``y[:, 0]`` is the output after consuming ``x[:, -1]``; the last output is the one after
    ``x[:, 0]`` (Keras's scan path, pinned on both sides)."""
    units, F, T, B = 3, 2, 5, 2
    rng = np.random.default_rng(3)
    k_layer = keras_rnn(keras, kind, units, go_backwards=True, return_sequences=True)
    k_layer.build((B, T, F))
    weights = randomize(k_layer, rng)
    layer = rc_rnn(kind, units, go_backwards=True, return_sequences=True)
    params = layer.cell.params_type(*weights)
    x = jnp.asarray(rng.normal(size=(B, T, F)).astype("float32"))
    cell, state, ys = layer.cell, layer.cell.initial_state(B), []
    for t in reversed(range(T)):
        state, y = cell.step(params, state, x[:, t])
        ys.append(y)
    expected = jnp.stack(ys, axis=1)
    y_rc, (y_keras,) = fast_jit(layer.apply)(params, x), keras_forward(k_layer, x)
    _, first = cell.step(params, cell.initial_state(B), x[:, -1])
    assert_close(y_rc[:, 0], first, "rnncore y[:, 0]")
    assert_close(y_keras[:, 0], first, "Keras y[:, 0]")
    assert_close(y_rc, expected, "rnncore sequence")
    assert_close(y_keras, expected, "Keras sequence")
    assert_close(
        fast_jit(rc_rnn(kind, units, go_backwards=True).apply)(params, x), expected[:, -1], "rnncore last output"
    )
    # The two directions really differ (the checks above cannot pass by symmetry).
    forward_first = fast_jit(rc_rnn(kind, units, return_sequences=True).apply)(params, x)[:, 0]
    assert max_rel_err(forward_first, first) > 1e-3


@pytest.mark.parametrize("kind", KINDS)
def test_unroll_masked_first_step_with_initial_state(keras, kind):
    """Keras's unrolled loop outputs zeros (not ``h_0``) at a masked first step; its scan outputs
    ``h_0``. rnncore's ``unroll`` flag reproduces both; states and later outputs agree."""
    units, F, T, B = 3, 2, 5, 2
    rng = np.random.default_rng(5)
    x = jnp.asarray(rng.normal(size=(B, T, F)).astype("float32"))
    m = jnp.asarray([[False, False, True, False, True], [True, True, False, True, True]])
    s0 = random_state(rng, kind, B, units)
    weights, outs = None, {}
    for unroll in (False, True):
        k_layer = keras_rnn(keras, kind, units, unroll=unroll, **SEQ_STATE)
        k_layer.build((B, T, F))
        if weights is None:
            weights = randomize(k_layer, rng)
        k_layer.set_weights(weights)
        layer = rc_rnn(kind, units, unroll=unroll, **SEQ_STATE)
        params = layer.cell.params_type(*weights)
        got = fast_jit(lambda p, x, s: layer.apply(p, x, m, initial_state=s))(params, x, s0)
        assert_close(got, keras_forward(k_layer, x, s0, mask=m), f"{kind} unroll={unroll}")
        outs[unroll] = got
    h0 = np.asarray(s0[0])
    scan_y, unroll_y = np.asarray(outs[False][0]), np.asarray(outs[True][0])
    assert np.abs(h0[0]).max() > 0.1
    np.testing.assert_array_equal(scan_y[0, :2], np.stack([h0[0], h0[0]]))
    np.testing.assert_array_equal(unroll_y[0, :2], 0.0)
    assert_close(unroll_y[:, 2:], scan_y[:, 2:], "outputs after the first real step")
    assert_close(unroll_y[1], scan_y[1], "row without a masked first step")
    assert_close(outs[True][1:], outs[False][1:], "final states")


# --- Bidirectional ------------------------------------------------------------------------------

BIDI_CASES = {
    # (kind, merge_mode, return_sequences, return_state, mask, init, backward kind or None)
    "lstm_concat_seq_state_mask": ("LSTM", "concat", True, True, "random", True, None),
    "gru_sum_seq_post": ("GRU", "sum", True, False, "post", True, None),
    "simple_ave_last_state_pre": ("SimpleRNN", "ave", False, True, "pre", True, None),
    "gru_v1_mul_seq_state": ("GRU_v1", "mul", True, True, None, False, None),
    "lstm_none_seq_state_mask": ("LSTM", None, True, True, "random", True, None),
    "gru_none_last": ("GRU", None, False, False, "post", False, None),
    "custom_backward_gru_concat": ("LSTM", "concat", True, False, "random", False, "GRU"),
    "custom_backward_gru_v1_sum_state": ("GRU", "sum", False, True, "random", True, "GRU_v1"),
    "custom_backward_simple_mul": ("SimpleRNN", "mul", True, True, "post", True, "SimpleRNN"),
}


def build_bidirectional(keras, kind, merge_mode, seqs, state, backward, units=3, back_units=None, **kw):
    flags = dict(return_sequences=seqs, return_state=state, **kw)
    k_back = r_back = None
    if backward is not None:
        bkw = dict(flags, go_backwards=True, activation="softsign")
        k_back = keras_rnn(keras, backward, back_units or units, **bkw)
        r_back = rc_rnn(backward, back_units or units, **bkw)
    k_bi = keras.layers.Bidirectional(
        keras_rnn(keras, kind, units, **flags), merge_mode=merge_mode, backward_layer=k_back
    )
    r_bi = rc.layers.Bidirectional(rc_rnn(kind, units, **flags), merge_mode=merge_mode, backward_layer=r_back)
    return k_bi, r_bi


def bidirectional_params(r_bi, k_bi):
    n_fwd = len(k_bi.forward_layer.weights)
    assert all(a is b for a, b in zip(k_bi.weights[:n_fwd], k_bi.forward_layer.weights))
    w = k_bi.get_weights()
    return rc.layers.BidirectionalParams(
        r_bi.forward_layer.cell.params_type(*w[:n_fwd]), r_bi.backward_layer.cell.params_type(*w[n_fwd:])
    )


@pytest.mark.parametrize("case", list(BIDI_CASES))
def test_bidirectional_matches_keras(keras, case):
    kind, merge_mode, seqs, state, mask, init, backward = BIDI_CASES[case]
    units, F, T, B = 3, 2, 5, 3
    back_units = 4 if merge_mode == "concat" and backward else units
    rng = np.random.default_rng(sum(map(ord, case)))
    k_bi, r_bi = build_bidirectional(keras, kind, merge_mode, seqs, state, backward, units, back_units)
    k_bi.build((B, T, F))
    randomize(k_bi, rng)
    params = bidirectional_params(r_bi, k_bi)
    x = jnp.asarray(rng.normal(size=(B, T, F)).astype("float32"))
    m = make_mask(mask, B, T, rng)
    s0 = None
    if init:  # Keras splits a flat list in half: forward states, then backward states.
        s0 = random_state(rng, kind, B, units) + random_state(rng, backward or kind, B, back_units)
    got = rc_run(lambda p, x, s: r_bi.apply(p, x, m, initial_state=s), params, x, s0)
    want = keras_run(k_bi, x, s0, mask=m)
    assert_same_run(got, want, case)
    n_merged = 2 if merge_mode is None else 1
    n_state = (n_states(kind) + n_states(backward or kind)) if state else 0
    assert len(got[0]) == n_merged + n_state
    if seqs and m is not None:  # both directions output zeros at masked steps, in input time
        for y in got[0][:n_merged]:
            assert np.all(np.asarray(y)[~np.asarray(m)] == 0)


@pytest.mark.parametrize("kind", ["LSTM", "GRU_v1"])
def test_bidirectional_dropout_training_same_masks(keras, kind):
    """Forward masks from ``fold_in(key, 0)``, backward from ``fold_in(key, 1)``."""
    units, F, T, B = 3, 2, 5, 3
    rng = np.random.default_rng(13)
    k_bi, r_bi = build_bidirectional(
        keras, kind, "concat", True, False, None, units, dropout=0.3, recurrent_dropout=0.3
    )
    k_bi.build((B, T, F))
    randomize(k_bi, rng)
    params = bidirectional_params(r_bi, k_bi)
    x = jnp.asarray(rng.normal(size=(B, T, F)).astype("float32"))
    m = make_mask("post", B, T, rng)
    key = jax.random.PRNGKey(21)
    for i, (k_layer, r_layer) in enumerate(
        [(k_bi.forward_layer, r_bi.forward_layer), (k_bi.backward_layer, r_bi.backward_layer)]
    ):
        draw = fast_jit(lambda k, c=r_layer.cell: c.dropout_masks(k, B, F, jnp.float32))
        masks = draw(jax.random.fold_in(key, i))
        inject_dropout_masks(k_layer.cell, masks, B, F, units)
    got = rc_run(lambda p, x, s: r_bi.apply(p, x, m, training=True, rng=key), params, x)
    assert_same_run(got, keras_run(k_bi, x, mask=m, training=True), kind)


def test_max_rel_err_compares_overflows_by_position():
    """The search below can draw cells that overflow float32 (linear gates): Keras's infinities must
    be reproduced exactly where they are, and the finite entries compared as usual."""
    inf = np.inf
    assert max_rel_err([inf, -inf, 2.0], [inf, -inf, 2.0]) == 0.0
    assert max_rel_err([inf, 1.0], [-inf, 1.0]) == inf
    assert max_rel_err([inf, 1.0], [3e38, 1.0]) == inf
    assert max_rel_err([1e38, 1.0], [inf, 1.0]) == inf
    assert max_rel_err([np.nan, 1.0], [np.nan, 1.0]) == 0.0
    assert max_rel_err([inf, 4.0, 1.0], [inf, 2.0, 1.0]) == 1.0
    assert max_rel_err([inf, 1.0 + 1e-3], [inf, 1.0]) == pytest.approx(1e-3)


# --- a search over configurations ---------------------------------------------------------------


@st.composite
def layer_configs(draw):
    kind = draw(st.sampled_from(KINDS))
    cfg = dict(
        kind=kind,
        units=draw(st.integers(1, 6)),
        F=draw(st.integers(1, 5)),
        T=draw(st.integers(1, 7)),
        B=draw(st.integers(1, 3)),
        activation=draw(st.sampled_from(ACTIVATIONS)),
        recurrent_activation=draw(st.sampled_from(RECURRENT_ACTIVATIONS)),
        use_bias=draw(st.booleans()),
        unit_forget_bias=draw(st.booleans()),
        go_backwards=draw(st.booleans()),
        return_sequences=draw(st.booleans()),
        return_state=draw(st.booleans()),
        unroll=draw(st.booleans()),
        mask=draw(st.sampled_from([None, "post", "pre", "random"])),
        init=draw(st.booleans()),
        seed=draw(st.integers(0, 2**16)),
    )
    if draw(st.booleans()):
        cfg.update(
            training=True,
            dropout=draw(st.sampled_from([0.0, 0.3])),
            recurrent_dropout=draw(st.sampled_from([0.0, 0.4])),
        )
    return cfg


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cfg=layer_configs())
def test_layer_matches_keras_search(keras, cfg):
    check_layer(keras, cfg.pop("kind"), **cfg)


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cfg=layer_configs())
def test_layer_matches_keras_longer_search(keras, cfg):
    check_layer(keras, cfg.pop("kind"), **cfg)


# --- float64: the scan is a loop of steps ---------------------------------------------------------


def loop_reference(cell, params, x, mask, s0, *, zero_output_for_mask, unroll, dropout_masks):
    """Keras's time loop written out over ``x`` and ``mask`` already in processing order: a
    masked step keeps the state; its output is the previous state's ``h`` (scan), zeros (scan
    with ``zero_output_for_mask``) or the previous output, zeros before the first step (unrolled
    loop). Returns the outputs and the states s_0..s_T."""
    state, prev_out, ys, states = s0, None, [], [s0]
    for t in range(x.shape[1]):
        new, y = cell.step(params, state, x[:, t], dropout_masks)
        if mask is not None:
            keep = mask[:, t][:, None]
            if unroll:
                fallback = jnp.zeros_like(y) if prev_out is None else prev_out
            else:
                fallback = jnp.zeros_like(y) if zero_output_for_mask else state[0]
            y = jnp.where(keep, y, fallback)
            new = type(new)(*(jnp.where(keep, n, o) for n, o in zip(new, state)))
        state, prev_out = new, y
        ys.append(y)
        states.append(state)
    return jnp.stack(ys, axis=1), states


LOOP_CASES = {
    "mask_backwards": dict(mask="random", go_backwards=True),
    "mask_zero_output_dropout": dict(mask="random", zero_output_for_mask=True, dropout=0.3, recurrent_dropout=0.4),
    "mask_unroll_backwards": dict(mask="pre", unroll=True, go_backwards=True),
}


@pytest.mark.parametrize("case", list(LOOP_CASES))
@pytest.mark.parametrize("kind", KINDS + ("LayerNormLSTM",))
def test_scan_equals_loop_of_steps_float64(x64, kind, case):
    cfg = dict(LOOP_CASES[case])
    mask_kind = cfg.pop("mask", None)
    flags = {k: cfg.pop(k, False) for k in ("go_backwards", "zero_output_for_mask", "unroll")}
    units, F, T, B = 4, 3, 6, 3
    rng = np.random.default_rng(17)
    cell = rc.cells.LayerNormLSTM(units, **cfg) if kind == "LayerNormLSTM" else rc_cell(kind, units, **cfg)
    shapes = jax.eval_shape(lambda k: cell.init(k, F, jnp.float64), jax.random.PRNGKey(0))
    params = type(shapes)(
        *(jnp.asarray(a) for a in random_like(rng, [np.zeros(a.shape) for a in shapes], dtype="float64"))
    )
    x = jnp.asarray(rng.normal(size=(B, T, F)))
    mask = make_mask(mask_kind, B, T, rng)
    s0 = cell.state_type(*(jnp.asarray(rng.normal(size=(B, units)) * 0.5) for _ in cell.state_type._fields))
    key = jax.random.PRNGKey(1)
    training = bool(cfg)
    dmasks = fast_jit(lambda k: cell.dropout_masks(k, B, F, jnp.float64))(key) if training else None
    backwards = flags["go_backwards"]

    @fast_jit
    def reference(params, x, mask, s0):
        return loop_reference(
            cell,
            params,
            x[:, ::-1] if backwards else x,
            None if mask is None else (mask[:, ::-1] if backwards else mask),
            s0,
            zero_output_for_mask=flags["zero_output_for_mask"],
            unroll=flags["unroll"],
            dropout_masks=dmasks,
        )

    layer = rc.layers.RNN(cell, return_sequences=True, return_state=True, **flags)
    ys, states = reference(params, x, mask, s0)
    y, *final = fast_jit(lambda p, x, m, s: layer.apply(p, x, m, training=training, rng=key, initial_state=s))(
        params, x, mask, s0
    )
    assert y.dtype == jnp.float64
    assert_close(y, ys, "outputs", tol=1e-12)
    assert_close(final, states[-1], "final state", tol=1e-12)
    tr = fast_jit(lambda p, x, m, s: rc.bptt.forward(cell, p, x, s, m, dropout_masks=dmasks, **flags))(
        params, x, mask, s0
    )
    for name, leaf in zip(cell.state_type._fields, tr.states):
        assert_close(leaf, jnp.stack([getattr(s, name) for s in states], axis=1), f"states.{name}", tol=1e-12)
    assert_close(tr.outputs, ys, "trajectory outputs", tol=1e-12)


# --- static under jit ---------------------------------------------------------------------------


def test_layers_hashable_and_jit_equals_eager():
    kw = dict(return_sequences=True, return_state=True, go_backwards=True, dropout=0.2, recurrent_dropout=0.3)
    layer, same = rc.layers.LSTM(3, **kw), rc.layers.LSTM(3, **kw)
    assert layer == same and hash(layer) == hash(same)
    assert layer != rc.layers.LSTM(3, **dict(kw, go_backwards=False))
    bi = rc.layers.Bidirectional(rc.layers.GRU(3, return_sequences=True), merge_mode="ave")
    assert hash(bi) == hash(rc.layers.Bidirectional(rc.layers.GRU(3, return_sequences=True), merge_mode="ave"))
    params = layer.init(jax.random.PRNGKey(0), (5, 2))
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 5, 2))
    mask = jnp.asarray([[True, False, True, True, True], [False] * 5])
    key = jax.random.PRNGKey(2)
    traces = []

    def run(lyr, p, x, m, k):
        traces.append(1)
        return lyr.apply(p, x, m, training=True, rng=k)

    jitted = jax.jit(run, static_argnums=0)
    eager = layer.apply(params, x, mask, training=True, rng=key)
    for got in (jitted(layer, params, x, mask, key), jitted(same, params, x, mask, key)):
        assert_close(got, eager, "jit vs eager", tol=1e-6)
    assert len(traces) == 1  # an equal layer hits the cache
