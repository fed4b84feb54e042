"""Keras RNN over a list of cells (StackedRNNCells) through rnncore.from_keras (live and from a
``.keras`` file) and back through to_keras: the model, its weights and its outputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import max_rel_err, random_like

import rnncore as rc
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
