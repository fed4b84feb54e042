"""rnncore.interop.flax's nnx side (nnx_cells, nnx_recurrent, nnx_module_kinds, nnx_loading): every
flax nnx cell, nnx.RNN's flags, nnx.Bidirectional, nnx.Linear (and an activation), nnx.LayerNorm,
nnx.Embed, nnx.Dropout (evaluation mode) and nnx.Sequential, against nnx's own call and nnx.grad of
it (outputs, gradients with respect to the inputs and every param), float32 and float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import max_rel_err
from covering import sweep
from flax import nnx
from nnx_oracles import F, check, inputs, randomize

import rnncore as rc
from rnncore import layers as L

CELLS = ("SimpleCell", "LSTMCell", "OptimizedLSTMCell", "GRUCell")
LAYERS = {"SimpleCell": "SimpleRNN", "LSTMCell": "LSTM", "OptimizedLSTMCell": "LSTM", "GRUCell": "GRU"}


def _cell(name, f, u, dtype=jnp.float32, **kw):
    if name == "SimpleCell":  # its computation dtype defaults to float32, not to the params'
        kw.setdefault("dtype", dtype)
    return getattr(nnx, name)(f, u, param_dtype=dtype, rngs=nnx.Rngs(0), **kw)


def _all_cells(dtype=jnp.float32):
    """The four cells in one stack (one compilation): each cell's params get their own gradient."""
    sizes = [(F, 5), (5, 4), (4, 6), (6, 3)]
    return nnx.Sequential(*[nnx.RNN(_cell(name, f, u, dtype)) for name, (f, u) in zip(CELLS, sizes)])


# slow: every cell is checked against nnx, with gradients, in float32 by default in this file's other tests
# (SimpleCell, LSTMCell, GRUCell in test_stack_in_sequential, OptimizedLSTMCell in
# test_bidirectional_merge_carry_time_major, GRUCell and SimpleCell in test_cell_activations)
@pytest.mark.slow
def test_every_cell_float32():
    module = randomize(_all_cells())
    model, _ = rc.from_flax(module)
    assert [type(layer).__name__ for layer in model.layers] == [LAYERS[n] for n in CELLS]
    check(module, inputs())


@pytest.mark.slow  # float64 by default: test_each_cell[GRUCell-float64]
def test_every_cell_float64(x64):
    check(randomize(_all_cells(jnp.float64)), inputs(dtype="float64"), dtype="float64")


@pytest.mark.parametrize("name, dtype", sweep(CELLS, ["float32", "float64"], default=lambda n, d: (n, d) == (3, 1)))
def test_each_cell(name, dtype):
    with jax.enable_x64(dtype == "float64"):
        module = randomize(nnx.RNN(_cell(name, F, 5, jnp.dtype(dtype))))
        check(module, inputs(dtype=dtype), dtype=dtype)


@pytest.mark.slow  # every function's mapping: test_flax_activations; relu and hard_sigmoid in a cell: test_nnx_export
def test_cell_activations():
    cell = _cell("GRUCell", F, 3, gate_fn=jax.nn.hard_sigmoid, activation_fn=jax.nn.soft_sign)
    module = randomize(nnx.Sequential(nnx.RNN(cell), nnx.RNN(_cell("SimpleCell", 3, 2, activation_fn=jax.nn.relu))))
    model, _ = rc.from_flax(module)
    gru, simple = (layer.cell for layer in model.layers)
    assert (gru.recurrent_activation, gru.activation, simple.activation) == ("hard_sigmoid", "softsign", "relu")
    check(module, inputs())


def test_optimized_lstm_is_the_fused_lstm():
    """OptimizedLSTMCell's fused dense_i/dense_h are LSTMCell's per-gate Linears side by side (i, f, g, o)."""
    lstm = randomize(_cell("LSTMCell", F, 3))
    fused = _cell("OptimizedLSTMCell", F, 3)
    gates = [lstm.ii, lstm.if_, lstm.ig, lstm.io], [lstm.hi, lstm.hf, lstm.hg, lstm.ho]
    fused.dense_i.kernel.set_value(jnp.concatenate([g.kernel.get_value() for g in gates[0]], axis=-1))
    fused.dense_h.kernel.set_value(jnp.concatenate([g.kernel.get_value() for g in gates[1]], axis=-1))
    fused.dense_h.bias.set_value(jnp.concatenate([g.bias.get_value() for g in gates[1]], axis=-1))
    (_, (p,)), (_, (q,)) = rc.from_flax(nnx.RNN(lstm)), rc.from_flax(nnx.RNN(fused))
    assert all(bool(jnp.array_equal(a, b)) for a, b in zip(p, q))


def test_gru_layout():
    """nnx's fused blocks r, z, n land in Keras's [z, r, h]; the recurrent bias is zero."""
    cell = randomize(_cell("GRUCell", F, 2))
    _, (p,) = rc.from_flax(nnx.RNN(cell))
    k, b, r = cell.dense_i.kernel.get_value(), cell.dense_i.bias.get_value(), cell.dense_h.kernel.get_value()
    assert jnp.array_equal(p.kernel[:, 0:2], k[:, 2:4]) and jnp.array_equal(p.kernel[:, 2:4], k[:, 0:2])
    assert jnp.array_equal(p.recurrent_kernel[:, 4:], r[:, 4:]) and jnp.array_equal(p.bias[0, 2:4], b[0:2])
    assert not p.bias[1].any()


def test_reverse_and_return_carry():
    """reverse=True is go_backwards (outputs in processing order); return_carry=True is return_state,
    flax_call giving nnx's (carry, y) with the LSTM carry (c, h)."""
    module = randomize(nnx.RNN(_cell("LSTMCell", F, 3), reverse=True, return_carry=True))
    model, params = rc.from_flax(module)
    assert model.layers[0].go_backwards and model.layers[0].return_state
    check(module, inputs())
    y, h, c = model.apply(params, inputs())
    (fc, fh), fy = module(inputs())
    assert max(max_rel_err(h, fh), max_rel_err(c, fc), max_rel_err(y, fy)) < 1e-6


def test_time_major():
    module = randomize(nnx.RNN(_cell("GRUCell", F, 3), time_major=True, return_carry=True))
    check(module, inputs(shape=(7, 3, F)), time_major=True)


def test_keep_order_is_refused_alone():
    x = inputs()
    kept = randomize(nnx.RNN(_cell("GRUCell", F, 3), reverse=True, keep_order=True))
    with pytest.raises(ValueError, match=r"\(RNN\): reverse=True with keep_order=True .* expected keep_order=False"):
        rc.from_flax(kept)
    kept.keep_order = False
    model, params = rc.from_flax(kept)
    kept.keep_order = True
    assert max_rel_err(jnp.flip(model.apply(params, x), axis=1), kept(x)) < 1e-6


@pytest.mark.slow  # by default: test_bidirectional_merge_carry_time_major, test_stack_in_sequential
def test_bidirectional():
    module = randomize(nnx.Bidirectional(nnx.RNN(_cell("LSTMCell", F, 3)), nnx.RNN(_cell("GRUCell", F, 2))))
    check(module, inputs())
    layer = rc.from_flax(module)[0].layers[0]
    assert layer.merge_mode == "concat" and layer.backward_layer.go_backwards and not layer.forward_layer.go_backwards


@pytest.mark.parametrize(
    "merge_fn, mode",
    [(jnp.add, "sum"), pytest.param(rc.interop.flax.merge_average, "ave", marks=pytest.mark.slow)],
)
def test_bidirectional_merge_carry_time_major(merge_fn, mode):
    rnns = nnx.RNN(_cell("SimpleCell", F, 3)), nnx.RNN(_cell("OptimizedLSTMCell", F, 3))
    module = randomize(nnx.Bidirectional(*rnns, merge_fn=merge_fn, return_carry=True, time_major=True))
    assert rc.from_flax(module)[0].layers[0].merge_mode == mode
    check(module, inputs(shape=(7, 3, F)), time_major=True)


def _stack(dtype=jnp.float32):
    rngs = nnx.Rngs(0)
    kw = {"param_dtype": dtype, "rngs": rngs}
    return nnx.Sequential(
        nnx.Embed(11, F, **kw),
        nnx.LayerNorm(F, **kw),
        nnx.RNN(_cell("GRUCell", F, 5, dtype)),
        nnx.Dropout(0.3, rngs=rngs),
        nnx.Linear(5, 4, **kw),
        jax.nn.relu,
        nnx.Bidirectional(nnx.RNN(_cell("LSTMCell", 4, 3, dtype)), nnx.RNN(_cell("LSTMCell", 4, 3, dtype))),
        nnx.LayerNorm(6, epsilon=1e-3, use_bias=False, use_fast_variance=False, **kw),
        nnx.RNN(_cell("SimpleCell", 6, 4, dtype), reverse=True),
        rc.interop.flax.last_step,
        nnx.Linear(4, 2, use_bias=False, **kw),
        jax.nn.softmax,
    )


def _ids(seed=0):
    return jnp.asarray(np.random.default_rng(seed).integers(0, 11, size=(3, 7)), jnp.int32)


def test_stack_in_sequential():
    module = randomize(_stack())
    with pytest.raises(ValueError, match=r"layers\[3\] \(Dropout\): deterministic=False \(nnx's training mode\)"):
        rc.from_flax(module)
    module.eval()
    check(module, _ids())
    model, params = rc.from_flax(module)
    kinds = [(type(layer).__name__, getattr(layer, "activation", None)) for layer in model.layers]
    assert kinds == [
        ("Embedding", None),
        ("LayerNormalization", None),
        ("GRU", None),
        ("Dropout", None),
        ("Dense", "relu"),
        ("Bidirectional", None),
        ("LayerNormalization", None),
        ("SimpleRNN", None),
        ("Dense", "softmax"),
    ]
    assert model.layers[1] == L.LayerNormalization(epsilon=1e-6)
    assert model.layers[6] == L.LayerNormalization(epsilon=1e-3, center=False)
    assert not model.layers[7].return_sequences and model.layers[7].go_backwards
    assert params[8].bias is None and params[6].beta is None
    assert model.layers[3].rate == 0.3


@pytest.mark.slow
def test_stack_float64(x64):
    module = randomize(_stack(jnp.float64))
    module.eval()
    check(module, _ids(), dtype="float64")


def test_linear_layernorm_float64_inputs(x64):
    """A float input (gradients with respect to it too) through LayerNorm and Linear, float64, away from zero mean."""
    kw = {"param_dtype": jnp.float64, "rngs": nnx.Rngs(0)}
    module = randomize(nnx.Sequential(nnx.LayerNorm(F, use_scale=False, **kw), nnx.Linear(F, 3, **kw), jax.nn.tanh))
    check(module, inputs(dtype="float64") * 3 + 1, dtype="float64")
