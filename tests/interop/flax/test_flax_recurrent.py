"""rnncore.interop.flax.recurrent and module_kinds: nn.RNN's flags (reverse, keep_order, return_carry,
time_major), nn.Bidirectional, and an nn.Sequential stack with Dense, against flax's own apply and
jax.grad of it."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import max_rel_err
from flax_oracles import TOL, inputs, parity, random_variables

import rnncore as rc


def _check(module, x, time_major=False, dtype="float32"):
    variables = random_variables(module, x, dtype=dtype)
    out_err, grad_err = parity(module, variables, x, time_major=time_major)
    assert out_err < TOL[dtype] and grad_err < TOL[dtype], (out_err, grad_err)
    return variables


@pytest.mark.slow  # reverse=True by default: test_return_carry, test_stack_in_sequential
def test_reverse_is_go_backwards():
    """flax's reverse=True returns the outputs in processing order, as rnncore's go_backwards:
    y[:, 0] is the output after consuming x[:, -1]."""
    module = nn.RNN(nn.LSTMCell(3), reverse=True)
    x = inputs()
    variables = _check(module, x)
    model, params = rc.from_flax(module, variables)
    assert model.layers[0].go_backwards and model.layers[0].return_sequences
    y = model.apply(params, x)
    one_step = model.apply(params, x[:, -1:])  # the first step processed, alone
    np.testing.assert_allclose(y[:, 0], one_step[:, 0], rtol=1e-6, atol=1e-7)


def test_keep_order_is_the_flipped_go_backwards():
    """reverse=True, keep_order=True: flax returns the go_backwards outputs flipped back to input
    time; a lone rnncore layer does not, so from_flax refuses it (nn.Bidirectional maps it)."""
    x = inputs()
    kept = nn.RNN(nn.GRUCell(3), reverse=True, keep_order=True)
    variables = random_variables(kept, x)
    model, params = rc.from_flax(nn.RNN(nn.GRUCell(3), reverse=True), variables)
    assert max_rel_err(jnp.flip(model.apply(params, x), axis=1), kept.apply(variables, x)) < 1e-6
    with pytest.raises(ValueError, match=r"reverse=True with keep_order=True .* expected keep_order=False"):
        rc.from_flax(kept, variables)


@pytest.mark.parametrize(
    "cell",
    [
        pytest.param(nn.SimpleCell(3), marks=pytest.mark.slow),
        pytest.param(nn.LSTMCell(3), marks=pytest.mark.slow),  # its carry order: test_return_carry_lstm_order
        nn.GRUCell(3),
    ],
)
def test_return_carry(cell):
    module = nn.RNN(cell, return_carry=True, reverse=True)
    variables = _check(module, inputs())
    model, _ = rc.from_flax(module, variables)
    assert model.layers[0].return_state


def test_return_carry_lstm_order():
    """flax's LSTM carry is (c, h); rnncore's state (h, c): flax_call returns flax's."""
    module = nn.RNN(nn.LSTMCell(3), return_carry=True)
    x = inputs()
    variables = random_variables(module, x)
    model, params = rc.from_flax(module, variables)
    y, h, c = model.apply(params, x)
    (fc, fh), fy = module.apply(variables, x)
    assert max(max_rel_err(h, fh), max_rel_err(c, fc), max_rel_err(y, fy)) < 1e-6
    assert max_rel_err(h, y[:, -1]) == 0


def test_time_major():
    module = nn.RNN(nn.LSTMCell(3), time_major=True, return_carry=True)
    _check(module, inputs(shape=(7, 3, 4)), time_major=True)


@pytest.mark.parametrize(
    "merge_fn, mode",
    [
        pytest.param(None, "concat", marks=pytest.mark.slow),  # by default: test_stack_in_sequential
        pytest.param(rc.interop.flax.merge_sum, "sum", marks=pytest.mark.slow),
        pytest.param(rc.interop.flax.merge_average, "ave", marks=pytest.mark.slow),
        pytest.param(jnp.multiply, "mul", marks=pytest.mark.slow),
    ],
)
def test_bidirectional(merge_fn, mode):
    kwargs = {} if merge_fn is None else {"merge_fn": merge_fn}
    module = nn.Bidirectional(nn.RNN(nn.LSTMCell(3)), nn.RNN(nn.GRUCell(3)), **kwargs)
    variables = _check(module, inputs())
    model, _ = rc.from_flax(module, variables)
    layer = model.layers[0]
    assert layer.merge_mode == mode and layer.backward_layer.go_backwards and not layer.forward_layer.go_backwards


@pytest.mark.slow
def test_bidirectional_return_carry_time_major(x64):
    cell = nn.SimpleCell(2, param_dtype=jnp.float64)
    module = nn.Bidirectional(nn.RNN(nn.OptimizedLSTMCell(2, param_dtype=jnp.float64)), nn.RNN(cell), return_carry=True)
    _check(module, inputs(dtype="float64"), dtype="float64")
    tm = nn.Bidirectional(nn.RNN(nn.GRUCell(2)), nn.RNN(nn.GRUCell(2)), time_major=True)
    _check(tm, inputs(shape=(7, 3, 4)), time_major=True)


def test_stack_in_sequential():
    module = nn.Sequential(
        [
            nn.RNN(nn.GRUCell(5)),
            nn.Dropout(0.3, deterministic=True),
            nn.Dense(4),
            jax.nn.relu,
            nn.Bidirectional(nn.RNN(nn.LSTMCell(3)), nn.RNN(nn.LSTMCell(3))),
            nn.RNN(nn.SimpleCell(4), reverse=True),
            rc.interop.flax.last_step,
            nn.Dense(2, use_bias=False),
            jax.nn.softmax,
        ]
    )
    variables = _check(module, inputs())
    model, params = rc.from_flax(module, variables)
    kinds = [(type(layer).__name__, getattr(layer, "activation", None)) for layer in model.layers]
    assert kinds == [
        ("GRU", None),
        ("Dropout", None),
        ("Dense", "relu"),
        ("Bidirectional", None),
        ("SimpleRNN", None),
        ("Dense", "softmax"),
    ]
    assert not model.layers[4].return_sequences and model.layers[4].go_backwards
    assert params[5].bias is None


@pytest.mark.slow
def test_stack_float64_with_carry(x64):
    dt = jnp.float64
    module = nn.Sequential(
        [
            nn.RNN(nn.LSTMCell(4, param_dtype=dt)),
            nn.Dense(3, param_dtype=dt),
            nn.RNN(nn.GRUCell(2, param_dtype=dt), return_carry=True),
        ]
    )
    _check(module, inputs(dtype="float64"), dtype="float64")


def test_last_step_after_return_carry():
    module = nn.Sequential([nn.RNN(nn.LSTMCell(3), return_carry=True), rc.interop.flax.last_step])
    variables = _check(module, inputs())
    model, _ = rc.from_flax(module, variables)
    assert model.layers[0].return_state and not model.layers[0].return_sequences
