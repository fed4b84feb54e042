"""rnncore.interop.flax.cells: every flax linen cell, as an nn.RNN, against flax's own apply and
jax.grad of it (outputs, gradients with respect to the inputs and every param), float32 and float64."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest
from covering import only
from flax_oracles import TOL, inputs, parity, random_variables

import rnncore as rc

CELLS = {
    "SimpleCell": lambda **kw: nn.SimpleCell(5, **kw),
    "LSTMCell": lambda **kw: nn.LSTMCell(5, **kw),
    "OptimizedLSTMCell": lambda **kw: nn.OptimizedLSTMCell(5, **kw),
    "GRUCell": lambda **kw: nn.GRUCell(5, **kw),
}
LAYERS = {"SimpleCell": "SimpleRNN", "LSTMCell": "LSTM", "OptimizedLSTMCell": "LSTM", "GRUCell": "GRU"}


# by default OptimizedLSTMCell alone: the other three cells are checked against flax, with gradients, in
# float32 by default in test_flax_recurrent (SimpleCell, LSTMCell, GRUCell in its stack, LSTMCell time-major)
@pytest.mark.parametrize("name", only(list(CELLS), keep=["OptimizedLSTMCell"]))
def test_cell_float32(name):
    module = nn.RNN(CELLS[name]())
    x = inputs()
    variables = random_variables(module, x)
    model, _ = rc.from_flax(module, variables)
    assert type(model.layers[0]).__name__ == LAYERS[name]
    out_err, grad_err = parity(module, variables, x)
    assert out_err < TOL["float32"] and grad_err < TOL["float32"], (out_err, grad_err)


@pytest.mark.parametrize("name", only(list(CELLS), keep=["GRUCell"]))  # float64 once by default
def test_cell_float64(name, x64):
    module = nn.RNN(CELLS[name](param_dtype=jnp.float64))  # flax's carry takes param_dtype
    x = inputs(dtype="float64")
    variables = random_variables(module, x, dtype="float64")
    out_err, grad_err = parity(module, variables, x)
    assert out_err < TOL["float64"] and grad_err < TOL["float64"], (out_err, grad_err)


@pytest.mark.parametrize(
    "name, fields, expected",
    only(
        [
            ("SimpleCell", {"activation_fn": jax.nn.relu}, {"activation": "relu"}),
            (
                "LSTMCell",
                {"gate_fn": jax.nn.hard_sigmoid, "activation_fn": jax.nn.soft_sign},
                {"recurrent_activation": "hard_sigmoid", "activation": "softsign"},
            ),
            ("GRUCell", {"gate_fn": rc.activations.sigmoid, "activation_fn": jnp.tanh}, {"activation": "tanh"}),
        ],
        keep=[],  # every function's mapping: test_flax_activations; relu and hard_sigmoid in a cell: test_flax_export
        ids=["SimpleCell", "LSTMCell", "GRUCell"],
    ),
)
def test_cell_activations(name, fields, expected):
    module = nn.RNN(CELLS[name](**fields))
    x = inputs()
    variables = random_variables(module, x)
    model, _ = rc.from_flax(module, variables)
    cell = model.layers[0].cell
    assert {k: getattr(cell, k) for k in expected} == expected
    out_err, grad_err = parity(module, variables, x)
    assert out_err < TOL["float32"] and grad_err < TOL["float32"], (out_err, grad_err)


def test_lstm_and_optimized_lstm_read_the_same_params():
    x = inputs()
    variables = random_variables(nn.RNN(nn.LSTMCell(5)), x)
    _, p = rc.from_flax(nn.RNN(nn.LSTMCell(5)), variables)
    _, q = rc.from_flax(nn.RNN(nn.OptimizedLSTMCell(5)), variables)
    assert all(bool(jnp.array_equal(a, b)) for a, b in zip(p[0], q[0]))


def test_gru_layout():
    """flax's r, z, n Denses land in Keras's [z, r, h] blocks; b_hn is the recurrent h bias."""
    module = nn.RNN(nn.GRUCell(2))
    variables = random_variables(module, inputs())
    _, (p,) = rc.from_flax(module, variables)
    cell = variables["params"]["cell"]
    assert jnp.array_equal(p.kernel[:, 2:4], cell["ir"]["kernel"])
    assert jnp.array_equal(p.recurrent_kernel[:, 0:2], cell["hz"]["kernel"])
    assert jnp.array_equal(p.bias[0, 4:], cell["in"]["bias"]) and jnp.array_equal(p.bias[1, 4:], cell["hn"]["bias"])
    assert not p.bias[1, :4].any()
