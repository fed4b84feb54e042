"""Keras RNN over a list of cells (StackedRNNCells) through rnncore.from_keras (live and from a
``.keras`` file) and back through to_keras: the model, its weights and its outputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import max_rel_err, random_like
from keras_round_trip import check_keras_model, gradient_errors, randomize

import rnncore as rc
from rnncore.interop.errors import relative_error
from rnncore.interop.keras import stacked_kinds

B, T, F = 3, 7, 4


def _inputs(seed=0):
    x = np.random.default_rng(seed).normal(size=(B, T, F)).astype("float32")
    x[0, :2] = 0.0
    x[1, -3:] = 0.0
    return x


def _model(keras, wrap):
    L = keras.layers
    cells = [L.LSTMCell(3), L.GRUCell(2, reset_after=False), L.LSTMCell(4, use_bias=False)]
    return keras.Sequential(
        [
            keras.Input((T, F)),
            L.Masking(),
            L.RNN(cells if wrap == "list" else L.StackedRNNCells(cells), return_sequences=True, go_backwards=True),
            L.RNN([L.SimpleRNNCell(3), L.GRUCell(2)], return_state=True),
        ]
    )


@pytest.mark.parametrize("wrap", ["list", "StackedRNNCells"])
def test_rnn_over_cells_loads_live_and_from_a_file(keras, tmp_path, wrap):
    km = _model(keras, wrap)
    km.set_weights(random_like(np.random.default_rng(1), km.get_weights()))
    model, params = rc.from_keras(km)
    assert isinstance(model.layers[1].cell, rc.cells.StackedCells)
    assert [type(c).__name__ for c in model.layers[1].cell.cells] == ["LSTM", "GRU", "LSTM"]
    path = tmp_path / "m.keras"
    km.save(path)
    fmodel, fparams = rc.from_keras(path)
    assert fmodel == model
    for a, b in zip(jax.tree_util.tree_leaves(fparams), jax.tree_util.tree_leaves(params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    x = _inputs()
    ours, theirs = jax.jit(model.apply)(params, x), km(x)
    # (output, [h1], [h2]): the last layer returns its stack's state, one entry per cell
    assert len(ours) == len(theirs) == 3
    for a, b in zip(jax.tree_util.tree_leaves(ours), jax.tree_util.tree_leaves(theirs)):
        assert max_rel_err(a, b) < 2e-6
    for a, b in zip(rc.keras_weights(model, params), km.get_weights()):
        np.testing.assert_array_equal(np.asarray(a), b)


def test_rnn_over_cells_round_trips_through_to_keras(keras):
    stack = rc.cells.StackedCells(
        (rc.cells.GRU(3, activation="relu"), rc.cells.SimpleRNN(2, use_bias=False), rc.cells.LSTM(2))
    )
    model = rc.Sequential([rc.layers.RNN(stack, return_sequences=True, zero_output_for_mask=True), rc.layers.Dense(1)])
    params = model.init(jax.random.PRNGKey(0), (T, F))
    leaves, tree = jax.tree_util.tree_flatten(params)
    params = jax.tree_util.tree_unflatten(tree, [jnp.asarray(a) for a in random_like(np.random.default_rng(2), leaves)])
    km = rc.to_keras(model, params)
    assert type(km.layers[0].cell).__name__ == "StackedRNNCells"
    x = _inputs()
    assert max_rel_err(model.apply(params, x), km(x)) < 2e-6
    model2, params2 = rc.from_keras(km)
    assert model2 == model
    for a, b in zip(jax.tree_util.tree_leaves(params2), jax.tree_util.tree_leaves(params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_h5_groups_of_the_cells_are_keras_names():
    assert stacked_kinds.cell_groups(["GRUCell", "GRUCell", "SimpleRNNCell"]) == [
        "gru_cell",
        "gru_cell_1",
        "simple_rnn_cell",
    ]


def test_stacks_keras_cannot_represent_are_refused(keras):
    one = rc.Sequential([rc.layers.RNN(rc.cells.StackedCells((rc.cells.GRU(2),)))])
    with pytest.raises(ValueError, match=r"layers\[0\]: a StackedCells of one cell has no working Keras counterpart"):
        rc.to_keras(one, one.init(jax.random.PRNGKey(0), (T, F)))
    ln = rc.Sequential([rc.layers.RNN(rc.cells.StackedCells((rc.cells.GRU(2), rc.cells.LayerNormLSTM(2))))])
    with pytest.raises(ValueError, match=r"layers\[0\].cell.cells\[1\] \(RNN with cell LayerNormLSTM\) has no Keras"):
        rc.to_keras(ln, ln.init(jax.random.PRNGKey(0), (T, F)))
    L = keras.layers
    bad = keras.Sequential([keras.Input((T, F)), L.RNN([L.GRUCell(2), L.LSTMCell(2, kernel_regularizer="l2")])])
    with pytest.raises(ValueError, match=r"cell 1 'lstm_cell.*' \(LSTMCell\): kernel_regularizer=.* is not supported"):
        rc.from_keras(bad)


# --- Bidirectional over a stack of cells, and inside TimeDistributed ----------------------------------------


def _bidirectional_stack(keras):
    L = keras.layers
    cells = [L.LSTMCell(3), L.GRUCell(2, reset_after=False)]
    layers = [L.Masking(), L.Bidirectional(L.RNN(cells, return_sequences=True), merge_mode="concat"), L.Dense(2)]
    return keras.Sequential([keras.Input((T, F)), *layers]), _inputs()


def _time_distributed_bidirectional_stack(keras):
    L = keras.layers
    stack = L.StackedRNNCells([L.SimpleRNNCell(3), L.LSTMCell(2, use_bias=False)])
    x = np.random.default_rng(3).normal(size=(B, 2, T, F)).astype("float32")
    x[0, 1, -3:] = 0.0
    x[2, 0] = 0.0
    layers = [L.Masking(), L.TimeDistributed(L.Bidirectional(L.RNN(stack), merge_mode="mul"))]
    return keras.Sequential([keras.Input((2, T, F)), *layers]), x


@pytest.mark.parametrize(
    "make",
    [_bidirectional_stack, pytest.param(_time_distributed_bidirectional_stack, marks=pytest.mark.slow)],
    ids=["bidirectional", "time_distributed_bidirectional"],
)
def test_bidirectional_over_cells_equals_keras(keras, tmp_path, make):
    km, x = make(keras)
    km = randomize(km)
    check_keras_model(km, x, tmp_path, tol=1e-6)  # live, .keras file, to_keras back with bit-equal weights
    model, params = rc.from_keras(km)
    bidi = model.layers[1].layer if isinstance(model.layers[1], rc.layers.TimeDistributed) else model.layers[1]
    assert isinstance(bidi.forward_layer.cell, rc.cells.StackedCells) and bidi.backward_layer.go_backwards
    # get_weights(): the forward layer's cells in turn, then the backward layer's
    keras_bidi = km.layers[1].layer if type(km.layers[1]).__name__ == "TimeDistributed" else km.layers[1]
    want = keras_bidi.forward_layer.get_weights() + keras_bidi.backward_layer.get_weights()
    for a, b in zip(rc.keras_weights(model, params), want + km.get_weights()[len(want) :]):
        np.testing.assert_array_equal(np.asarray(a), b)
    errors = gradient_errors(km, model, params, x)
    assert errors["output"] <= 1e-6 and max(errors.values()) <= 1e-5, errors


def test_bidirectional_over_cells_returns_each_directions_stacked_state(keras):
    L = keras.layers
    cells = [L.GRUCell(3), L.LSTMCell(2)]
    km = randomize(keras.Sequential([keras.Input((T, F)), L.Bidirectional(L.RNN(cells, return_state=True))]))
    model, params = rc.from_keras(km)
    x = _inputs()
    ours, theirs = jax.jit(model.apply)(params, x), km(x)
    # (y, forward (h1, (h2, c2)), backward (h1, (h2, c2))): Keras's nesting, flattened alike
    assert len(ours) == len(theirs) == 5
    ours_leaves, theirs_leaves = jax.tree_util.tree_leaves(ours), jax.tree_util.tree_leaves(theirs)
    assert len(ours_leaves) == len(theirs_leaves) == 7
    assert max(relative_error(a, b) for a, b in zip(ours_leaves, theirs_leaves)) <= 1e-6


def _stack_loop(stack, params, x, mask, reverse):
    """A stack of cells as a Python loop of steps (masked steps carry the state and output 0, as in
    a Bidirectional with return_sequences), outputs in input time order."""
    state = stack.initial_state(x.shape[0], x.dtype)
    ys = [None] * x.shape[1]
    for t in reversed(range(x.shape[1])) if reverse else range(x.shape[1]):
        new, y = stack.step(params, state, x[:, t])
        m = mask[:, t][:, None]
        state = jax.tree_util.tree_map(lambda n, s: jnp.where(m, n, s), new, state)
        ys[t] = jnp.where(m, y, 0.0)
    return jnp.stack(ys, axis=1)


def test_bidirectional_over_cells_float64_equals_a_loop_of_steps(x64):
    stack = rc.cells.StackedCells((rc.cells.LSTM(3), rc.cells.GRU(2, reset_after=False)))
    bidi = rc.layers.Bidirectional(rc.layers.RNN(stack, return_sequences=True))
    rng = np.random.default_rng(4)
    params = jax.tree_util.tree_map(
        lambda a: jnp.asarray(rng.normal(size=a.shape) * 0.6 + 0.1),
        bidi.init(jax.random.PRNGKey(0), (T, F), jnp.float64),
    )
    steps = 4
    x = jnp.asarray(rng.normal(size=(B, steps, F)))
    mask = jnp.asarray(np.array([[1, 1, 1, 1], [0, 1, 1, 0], [1, 1, 0, 0]], bool))
    v = jnp.asarray(rng.normal(size=(B, steps, 4)))

    def oracle(p, x):
        fwd, bwd = _stack_loop(stack, p.forward, x, mask, False), _stack_loop(stack, p.backward, x, mask, True)
        return jnp.concatenate([fwd, bwd], axis=-1)

    def value_and_grads(f):
        return jax.jit(jax.value_and_grad(lambda p, x: jnp.sum(f(p, x) * v), argnums=(0, 1)))(params, x)

    y = jax.jit(lambda p, x: bidi.apply(p, x, mask=mask))(params, x)
    assert y.dtype == jnp.float64 and relative_error(y, jax.jit(oracle)(params, x)) <= 1e-12
    ours = value_and_grads(lambda p, x: bidi.apply(p, x, mask=mask))
    for a, b in zip(jax.tree_util.tree_leaves(ours), jax.tree_util.tree_leaves(value_and_grads(oracle))):
        assert relative_error(a, b) <= 1e-12
