"""rnncore.interop.flax's nnx side both ways: rc.to_flax(model, params, api="nnx") equals rnncore, the
round trips keep every param bit for bit, and everything either side cannot represent is refused by
name (from_flax's nnx refusals, to_flax's, and the mix-ups of linen and nnx arguments)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import max_rel_err
from flax import nnx
from nnx_oracles import F, inputs, randomize

import rnncore as rc
from rnncore import layers as L


def _random_params(model, seed=3, input_shape=(7, F)):
    rng = np.random.default_rng(seed)
    params = model.init(jax.random.PRNGKey(0), input_shape)
    return jax.tree_util.tree_map(lambda a: jnp.asarray(rng.normal(size=a.shape) * 0.5, a.dtype), params)


@nnx.jit
def _call(module, x):
    return module(x)


def _params_list(module):
    return [
        (path, np.asarray(a).tolist()) for path, a in jax.tree_util.tree_leaves_with_path(nnx.state(module, nnx.Param))
    ]


def test_to_nnx_equals_rnncore_and_comes_back():
    model = rc.Sequential(
        [
            L.SimpleRNN(5, activation="relu", return_sequences=True, go_backwards=True),
            L.Dropout(0.25),
            L.Bidirectional(L.LSTM(3, recurrent_activation="hard_sigmoid", return_sequences=True), merge_mode="sum"),
            L.LayerNormalization(epsilon=1e-3, center=False),
            L.Dense(4, activation="gelu"),
            L.GRU(3, return_sequences=False),
            L.Dense(2, activation="softmax"),
        ]
    )
    params = _random_params(model)
    gru = params[5]  # nnx's GRUCell has no recurrent h bias; Keras's recurrent z, r biases fold into the input ones
    params = params[:5] + (gru._replace(bias=gru.bias.at[1, 6:].set(0)),) + params[6:]
    module = rc.to_flax(model, params, api="nnx")
    assert [getattr(m, "__name__", type(m).__name__) for m in module.layers] == [
        "RNN", "Dropout", "Bidirectional", "LayerNorm", "Linear", "gelu", "RNN", "last_step", "Linear", "softmax"
    ]  # fmt: skip
    x = inputs()
    assert max_rel_err(_call(module, x), jax.jit(model.apply)(params, x)) < 1e-6
    back, back_params = rc.from_flax(module)
    assert back.layers == model.layers
    gru = params[5]
    folded = gru.bias.at[0, :6].add(gru.bias[1, :6]).at[1, :6].set(0)
    expected = params[:5] + (gru._replace(bias=folded),) + params[6:]
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(jnp.array_equal, back_params, expected))


def test_from_nnx_round_trip_keeps_params():
    rngs = nnx.Rngs(0)
    module = randomize(
        nnx.Sequential(
            nnx.Embed(9, F, rngs=rngs),
            nnx.RNN(nnx.GRUCell(F, 3, rngs=rngs), reverse=True),
            nnx.Bidirectional(nnx.RNN(nnx.SimpleCell(3, 2, rngs=rngs)), nnx.RNN(nnx.LSTMCell(3, 2, rngs=rngs))),
            nnx.LayerNorm(4, rngs=rngs),
            nnx.Linear(4, 2, rngs=rngs),
            jax.nn.tanh,
            nnx.RNN(nnx.LSTMCell(2, 2, rngs=rngs), return_carry=True),
        )
    )
    module2 = rc.to_flax(*rc.from_flax(module), api="nnx")
    assert _params_list(module2) == _params_list(module)
    ids = jnp.asarray(np.random.default_rng(0).integers(0, 9, size=(3, 7)), jnp.int32)
    ((c, h), y), ((c2, h2), y2) = _call(module, ids), _call(module2, ids)
    assert max(max_rel_err(y2, y), max_rel_err(c2, c), max_rel_err(h2, h)) < 1e-6


def test_gru_recurrent_h_bias_is_refused_for_nnx():
    model = rc.Sequential([L.GRU(2, return_sequences=True)])
    params = _random_params(model)
    with pytest.raises(ValueError, match=r"layers\[0\]: the GRU's recurrent h bias .* non-zero .* rc.to_flax\(model"):
        rc.to_flax(model, params, api="nnx")
    module, variables = rc.to_flax(model, params)  # linen's GRUCell has it
    assert max_rel_err(module.apply(variables, inputs()), model.apply(params, inputs())) < 1e-6


@pytest.mark.parametrize(
    "layer, message",
    [
        (L.Masking(0.0), r"layers\[0\] \(Masking\) has no flax nnx counterpart"),
        (L.LSTM(2, use_bias=False, return_sequences=True), r"use_bias=False has no flax counterpart"),
        (L.GRU(2, reset_after=False, return_sequences=True), r"reset_after=False has no flax counterpart"),
        (L.LSTM(2, stateful=True, return_sequences=True), r"stateful=True has no flax counterpart"),
        (L.Bidirectional(L.GRU(2)), r"return_sequences=False has no flax counterpart"),
        (L.SimpleRNN(2, activation=lambda a: a * 2, return_sequences=True), r"activation=.* callable of its own"),
        (L.Embedding(5, 2, mask_zero=True), r"mask_zero=True has no flax counterpart"),
        (L.LayerNormalization(rms_scaling=True), r"rms_scaling=True has no flax nnx.LayerNorm counterpart"),
        (L.LayerNormalization(center=False, scale=False), r"its feature size, which nnx.LayerNorm takes .* unknown"),
    ],
)
def test_to_nnx_refusals(layer, message):
    model = rc.Sequential([layer])
    params = model.init(jax.random.PRNGKey(0), (4,) if isinstance(layer, L.Embedding) else (5, 3))
    with pytest.raises(ValueError, match=message):
        rc.to_flax(model, params, api="nnx")


def test_bad_api():
    model = rc.Sequential([L.Dense(2)])
    with pytest.raises(ValueError, match=r"api='torch'; expected 'linen' or 'nnx'"):
        rc.to_flax(model, model.init(jax.random.PRNGKey(0), (3,)), api="torch")


def _rngs():
    return nnx.Rngs(0)


class _MyCell(nnx.GRUCell):
    pass


@pytest.mark.parametrize(
    "build, message",
    [
        (
            lambda: nnx.RNN(nnx.SimpleCell(F, 2, residual=True, rngs=_rngs())),
            r"flax nnx module \(RNN\), cell SimpleCell: residual=True has no rnncore equivalent",
        ),
        (
            lambda: nnx.RNN(_MyCell(F, 2, rngs=_rngs())),
            r"cell _MyCell is not supported; expected one of nnx.SimpleCell",
        ),
        (lambda: nnx.RNN(nnx.LSTMCell(F, 2, gate_fn=jax.nn.gelu, rngs=_rngs())), r"gate_fn=gelu has no rnncore"),
        (
            lambda: nnx.RNN(nnx.GRUCell(F, 2, activation_fn=lambda a: a, rngs=_rngs())),
            r"activation_fn=<lambda> has no rnncore equivalent",
        ),
        (
            lambda: nnx.RNN(nnx.GRUCell(F, 2, carry_init=nnx.initializers.ones, rngs=_rngs())),
            r"cell GRUCell: carry_init=.* does not give zeros",
        ),
        (
            lambda: nnx.RNN(nnx.LSTMCell(F, 2, dtype=jnp.bfloat16, rngs=_rngs())),
            r"cell LSTMCell.ii: dtype=bfloat16 differs from its params' dtype float32",
        ),
        (
            lambda: nnx.RNN(nnx.OptimizedLSTMCell(F, 2, promote_dtype=lambda a, dtype=None: a, rngs=_rngs())),
            r"cell OptimizedLSTMCell.dense_i: promote_dtype=.* is not supported; expected its default",
        ),
        (
            lambda: nnx.RNN(nnx.GRUCell(F, 2, rngs=_rngs()), state_axes=nnx.StateAxes({nnx.Param: 0, ...: None})),
            r"\(RNN\): state_axes=.* is not supported; expected its default",
        ),
        (
            lambda: nnx.Bidirectional(
                nnx.RNN(nnx.GRUCell(F, 2, rngs=_rngs())),
                nnx.RNN(nnx.GRUCell(F, 2, rngs=_rngs())),
                merge_fn=jnp.subtract,
            ),
            r"\(Bidirectional\): merge_fn=subtract has no rnncore merge mode",
        ),
        (
            lambda: nnx.Linear(F, 2, precision="highest", rngs=_rngs()),
            r"\(Linear\): precision='highest' is not supported",
        ),
        (lambda: nnx.LayerNorm(F, reduction_axes=(1, 2), rngs=_rngs()), r"reduction_axes=\(1, 2\) is not supported"),
        (lambda: nnx.Embed(5, 2, dtype=jnp.bfloat16, rngs=_rngs()), r"\(Embed\): dtype=bfloat16 differs"),
        (lambda: nnx.Dropout(0.5, broadcast_dims=(1,)), r"\(Dropout\): broadcast_dims=\(1,\) is not supported"),
        (
            lambda: nnx.Sequential(nnx.RNN(nnx.GRUCell(F, 2, rngs=_rngs())), jax.nn.relu),
            r"layers\[1\] \(function relu\): a function in a flax Sequential",
        ),
        (lambda: nnx.Sequential(nnx.Linear(F, 2, rngs=_rngs()), jax.nn.gelu), r"function=gelu has no rnncore"),
        (
            lambda: nnx.Conv(F, 2, (3,), rngs=_rngs()),
            r"flax nnx module \(Conv\) is not supported; expected one of nnx.RNN, nnx.Bidirectional",
        ),
        (
            lambda: nnx.Sequential(
                nnx.RNN(nnx.GRUCell(F, 2, rngs=_rngs()), time_major=True), nnx.RNN(nnx.GRUCell(2, 2, rngs=_rngs()))
            ),
            r"differ in time_major",
        ),
        (
            lambda: nnx.Sequential(
                nnx.RNN(nnx.GRUCell(F, 2, rngs=_rngs()), return_carry=True), nnx.RNN(nnx.GRUCell(2, 2, rngs=_rngs()))
            ),
            r"return_carry=True\) but is not the last",
        ),
    ],
)
def test_from_nnx_refusals(build, message):
    with pytest.warns(UserWarning) if "carry_init" in message else _no_warning():
        module = build()
    with pytest.raises(ValueError, match=message):
        rc.from_flax(module)


class _no_warning:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_linen_and_nnx_arguments_are_not_mixed():
    module = nnx.Linear(F, 2, rngs=_rngs())
    with pytest.raises(ValueError, match=r"variables=dict: a flax nnx module holds its own params; expected no"):
        rc.from_flax(module, {"params": {}})
    with pytest.raises(ValueError, match=r"variables=None: a flax linen Dense holds no params; expected its variables"):
        rc.from_flax(nn.Dense(2))
    with pytest.raises(
        ValueError, match=r"module must be a flax linen Module \(or an nnx one, without variables\); got Sequential"
    ):
        rc.from_flax(rc.Sequential([L.GRU(2)]), {"params": {}})


def test_params_of_the_wrong_shape_are_refused():
    cell = nnx.GRUCell(F, 2, rngs=_rngs())
    cell.dense_h.kernel = nnx.Param(jnp.zeros((3, 6)))
    with pytest.raises(ValueError, match=r"cell GRUCell.dense_h: kernel has shape \(3, 6\); expected \(2, 6\)"):
        rc.from_flax(nnx.RNN(cell))
