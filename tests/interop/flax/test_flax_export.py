"""rnncore.interop.flax.export and the round trips: to_flax against flax's own apply, from_flax(to_flax(...))
and to_flax(from_flax(...)) equal, and everything flax cannot represent refused by name."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import max_rel_err
from flax_oracles import inputs, random_variables

import rnncore as rc
from rnncore import layers as L


def _random_params(model, seed=3, input_shape=(7, 4)):
    rng = np.random.default_rng(seed)
    params = model.init(jax.random.PRNGKey(0), input_shape)
    return jax.tree_util.tree_map(lambda a: jnp.asarray(rng.normal(size=a.shape) * 0.5, a.dtype), params)


def _model():
    return rc.Sequential(
        [
            L.SimpleRNN(5, activation="relu", return_sequences=True, go_backwards=True),
            L.Dropout(0.25),
            L.Bidirectional(L.LSTM(3, recurrent_activation="hard_sigmoid", return_sequences=True), merge_mode="sum"),
            L.Dense(4, activation="gelu"),
            L.GRU(3, return_sequences=False),
            L.Dense(2, activation="softmax"),
        ]
    )


def test_to_flax_equals_rnncore():
    model = _model()
    params = _random_params(model)
    module, variables = rc.to_flax(model, params)
    x = inputs()
    assert max_rel_err(jax.jit(module.apply)(variables, x), jax.jit(model.apply)(params, x)) < 1e-6
    back, back_params = rc.from_flax(module, variables)
    assert back.layers == model.layers
    # GRU: Keras's recurrent z, r biases fold into flax's input ones; the rest comes back unchanged
    gru = params[4]
    folded = gru.bias.at[0, :6].add(gru.bias[1, :6]).at[1, :6].set(0)
    expected = params[:4] + (gru._replace(bias=folded),) + params[5:]
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(jnp.array_equal, back_params, expected))


def test_from_flax_round_trip_keeps_variables():
    module = nn.Sequential(
        [
            nn.RNN(nn.GRUCell(3), reverse=True),
            nn.Bidirectional(nn.RNN(nn.SimpleCell(2)), nn.RNN(nn.LSTMCell(2))),
            nn.Dense(2),
            jax.nn.tanh,
            nn.RNN(nn.LSTMCell(2), return_carry=True),
        ]
    )
    x = inputs()
    variables = random_variables(module, x)
    module2, variables2 = rc.to_flax(*rc.from_flax(module, variables))
    leaves = jax.tree_util.tree_leaves_with_path
    assert [(p, np.asarray(a).tolist()) for p, a in leaves(variables2)] == [
        (p, np.asarray(a).tolist()) for p, a in leaves(variables)
    ]
    ((c, h), y), ((c2, h2), y2) = module.apply(variables, x), module2.apply(variables2, x)
    assert max(max_rel_err(y2, y), max_rel_err(c2, c), max_rel_err(h2, h)) < 1e-6


@pytest.mark.parametrize(
    "layer, message",
    [
        (L.Masking(0.0), r"layers\[0\] \(Masking\) has no flax counterpart"),
        (L.LSTM(2, use_bias=False, return_sequences=True), r"use_bias=False has no flax counterpart"),
        (L.GRU(2, reset_after=False, return_sequences=True), r"reset_after=False has no flax counterpart"),
        (L.GRU(2, recurrent_dropout=0.1, return_sequences=True), r"recurrent_dropout=0.1 has no flax counterpart"),
        (L.LSTM(2, stateful=True, return_sequences=True), r"stateful=True has no flax counterpart"),
        (L.SimpleRNN(2, truncate_gradient=3, return_sequences=True), r"truncate_gradient=3 has no flax counterpart"),
        (L.LayerNormLSTM(2, return_sequences=True), r"layers\[0\] \(LayerNormLSTM\) has no flax counterpart"),
        (
            L.RNN(rc.cells.LayerNormLSTM(2), return_sequences=True),
            r"cell LayerNormLSTM has no flax counterpart; expected cells.SimpleRNN",
        ),
        (L.Bidirectional(L.GRU(2)), r"return_sequences=False has no flax counterpart"),
        (L.Bidirectional(L.GRU(2, return_sequences=True), merge_mode=None), r"merge_mode=None has no flax"),
        (L.SimpleRNN(2, activation=lambda a: a * 2, return_sequences=True), r"activation=.* callable of its own"),
        (L.Dropout(0.5, noise_shape=(None, 1, None)), r"noise_shape=\(None, 1, None\) is not exported"),
    ],
)
def test_to_flax_refusals(layer, message):
    model = rc.Sequential([layer])
    params = model.init(jax.random.PRNGKey(0), (5, 3))
    with pytest.raises(ValueError, match=message):
        rc.to_flax(model, params)


def _variables(module, x=None):
    return random_variables(module, inputs() if x is None else x)


@pytest.mark.parametrize(
    "module, message",
    [
        (nn.RNN(nn.SimpleCell(2, residual=True)), r"cell SimpleCell: residual=True has no rnncore equivalent"),
        (nn.RNN(nn.MGUCell(2)), r"cell MGUCell is not supported; expected one of nn.SimpleCell, nn.LSTMCell"),
        (nn.RNN(nn.LSTMCell(2, gate_fn=jax.nn.gelu)), r"gate_fn=gelu has no rnncore equivalent"),
        (nn.RNN(nn.GRUCell(2, activation_fn=lambda a: a)), r"activation_fn=<lambda> has no rnncore equivalent"),
        (nn.RNN(nn.GRUCell(2, carry_init=nn.initializers.ones)), r"carry_init=.* does not give zeros"),
        (nn.RNN(nn.LSTMCell(2, dtype=jnp.bfloat16)), r"dtype=bfloat16 differs from its params' dtype float32"),
        (
            nn.RNN(nn.LSTMCell(2), variable_axes={"params": 0}),
            r"(?s)variable_axes=.* is not supported; expected its default",
        ),
        (
            nn.Bidirectional(nn.RNN(nn.GRUCell(2)), nn.RNN(nn.GRUCell(2)), merge_fn=lambda a, b: a - b),
            r"merge_fn=<lambda> has no rnncore merge mode",
        ),
        (nn.Dense(2, precision="highest"), r"\(Dense\): precision='highest' is not supported; expected its default"),
        (nn.Sequential([nn.Dropout(0.5, deterministic=False)]), r"deterministic=False drops at every call"),
        (nn.Sequential([nn.RNN(nn.GRUCell(2)), jax.nn.relu]), r"function relu\): a function in a flax Sequential"),
        (nn.Sequential([nn.Dense(2), jax.nn.gelu]), r"function=gelu has no rnncore equivalent"),
        (nn.Conv(2, (3,)), r"\(Conv\) is not supported; expected one of nn.RNN, nn.Bidirectional"),
        (
            nn.Sequential([nn.RNN(nn.GRUCell(2), time_major=True), nn.RNN(nn.GRUCell(2))]),
            r"differ in time_major",
        ),
    ],
)
def test_from_flax_refusals(module, message):
    x = inputs(shape=(7, 3, 4)) if getattr(getattr(module, "layers", [None])[0], "time_major", False) else inputs()
    try:
        variables = _variables(module, x)
    except Exception:  # flax itself cannot run it (deterministic=False without an rng): the params are empty
        variables = {"params": {}}
    with pytest.raises(ValueError, match=message):
        rc.from_flax(module, variables)


def test_from_flax_refuses_bad_variables():
    module = nn.RNN(nn.GRUCell(2))
    variables = _variables(module)
    with pytest.raises(ValueError, match=r"collections \['batch_stats'\]; expected 'params' only"):
        rc.from_flax(module, {**variables, "batch_stats": {}})
    with pytest.raises(ValueError, match=r"cell GRUCell: params have no hn/bias; found \[.kernel.\]"):
        cell = dict(variables["params"]["cell"])
        cell["hn"] = {"kernel": cell["hn"]["kernel"]}
        rc.from_flax(module, {"params": {"cell": cell}})
    with pytest.raises(ValueError, match=r"params hr/kernel has shape \(3, 2\); expected \(2, 2\)"):
        cell = dict(variables["params"]["cell"])
        cell["hr"] = {"kernel": jnp.zeros((3, 2))}
        rc.from_flax(module, {"params": {"cell": cell}})
    with pytest.raises(ValueError, match=r"return_carry=True\) but is not the last"):
        seq = nn.Sequential([nn.RNN(nn.GRUCell(2), return_carry=True), nn.RNN(nn.GRUCell(2))])
        rc.from_flax(seq, {"params": {"layers_0": variables["params"], "layers_1": variables["params"]}})
    with pytest.raises(
        ValueError, match=r"module must be a flax linen Module \(or an nnx one, without variables\); got Sequential"
    ):
        rc.from_flax(rc.Sequential([L.GRU(2)]), variables)
