"""rnncore.from_torch / to_torch against PyTorch's own forward and autograd: random asymmetric
weights, float32 to ~1e-6 and float64 to ~1e-12, every recurrent kind and output, both layouts."""

import itertools

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")
from covering import only  # noqa: E402
from torch import nn  # noqa: E402
from torch_oracles import RECURRENT, Head, errors, head_arch, randomize  # noqa: E402

import rnncore as rc  # noqa: E402

# float32: outputs to 1e-6, gradients (sums over batch and time) to 1e-5, the bound of check-keras; float64
# (the same configurations agree to ~1e-15) to 1e-12
F32, F64 = (1e-6, 1e-5), (1e-12, 1e-12)
B, T, F, U = 3, 6, 4, 5


def head(
    mode,
    output,
    *,
    num_layers=1,
    bidirectional=False,
    batch_first=True,
    bias=True,
    nonlinearity="tanh",
    dropout=0.0,
    dtype=torch.float32,
    seed=0,
    torch_draw=False,
):
    kwargs = dict(
        num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first, bias=bias, dropout=dropout
    )
    if mode == "RNN":
        kwargs["nonlinearity"] = nonlinearity
    rnn = RECURRENT[mode](F, U, **kwargs, dtype=dtype)
    fc = nn.Linear(U * (2 if bidirectional else 1), 2, dtype=dtype)
    if torch_draw:  # PyTorch's own initial distribution, U(-1/√u, 1/√u)
        return randomize(Head(rnn, fc, output), seed, scale=U**-0.5, uniform=True)
    return randomize(Head(rnn, fc, output), seed)


def inputs(batch_first, dtype="float32", seed=1):
    shape = (B, T, F) if batch_first else (T, B, F)
    return np.random.default_rng(seed).normal(size=shape).astype(dtype)


def within(errs, tol):
    """Outputs within ``tol[0]``, every gradient within ``tol[1]``."""
    return errs["outputs"] < tol[0] and max(errs.values()) < tol[1]


def check(module, x, tol, time_major=False, arch="head"):
    errs = errors(module, x, time_major=time_major, arch=head_arch(module) if arch == "head" else arch)
    assert within(errs, tol), errs
    return errs


# --- a covering subset, float32 -------------------------------------------------------------------------

COVERING = [
    # mode, output, num_layers, bidirectional, batch_first, bias, nonlinearity
    ("RNN", "sequence", 1, False, True, True, "tanh"),
    ("RNN", "last", 2, True, False, False, "relu"),
    ("LSTM", "last", 2, False, True, True, "tanh"),
    ("LSTM", "last", 1, True, True, True, "tanh"),
    ("LSTM", "final", 2, True, False, False, "tanh"),
    ("GRU", "final", 1, False, True, False, "tanh"),
    ("GRU", "sequence", 2, True, False, True, "tanh"),
    ("GRU", "last", 1, True, True, True, "tanh"),
]


COVERING_IDS = ["-".join(map(str, case)) for case in COVERING]
# by default the four of them that still hold every value of every axis; the others are slow
FLOAT32_BY_DEFAULT = [COVERING_IDS[i] for i in (1, 3, 5, 6)]


@pytest.mark.parametrize(
    "mode,output,num_layers,bidirectional,batch_first,bias,nonlinearity",
    only(COVERING, keep=FLOAT32_BY_DEFAULT, ids=COVERING_IDS),
)
def test_float32_against_torch(mode, output, num_layers, bidirectional, batch_first, bias, nonlinearity):
    module = head(
        mode,
        output,
        num_layers=num_layers,
        bidirectional=bidirectional,
        batch_first=batch_first,
        bias=bias,
        nonlinearity=nonlinearity,
        dropout=0.25 if num_layers > 1 else 0.0,
    )
    check(module, inputs(batch_first), F32, time_major=not batch_first)


@pytest.mark.parametrize("mode,output,num_layers,bidirectional,batch_first,bias,nonlinearity", COVERING[1::3])
def test_float64_against_torch(x64, mode, output, num_layers, bidirectional, batch_first, bias, nonlinearity):
    module = head(
        mode,
        output,
        num_layers=num_layers,
        bidirectional=bidirectional,
        batch_first=batch_first,
        bias=bias,
        nonlinearity=nonlinearity,
        dtype=torch.float64,
    )
    check(module, inputs(batch_first, "float64"), F64, time_major=not batch_first)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:dropout option adds dropout after all but last recurrent layer")
@pytest.mark.parametrize(
    "mode,output,num_layers,bidirectional,batch_first,bias",
    list(
        itertools.product(
            ["RNN", "LSTM", "GRU"], ["sequence", "last", "final"], [1, 2], [False, True], [True, False], [True, False]
        )
    ),
)
def test_every_configuration_against_torch(mode, output, num_layers, bidirectional, batch_first, bias):
    # A ReLU recurrence with N(0, 0.5²) weights explodes (gradients ~1e4, growing every step), which
    # amplifies the two frameworks' float32 rounding (summation orders) to ~4e-5 in the gradients,
    # while float64 agrees to ~2e-14 (measured); ReLU modules get PyTorch's own draw here.
    for nonlinearity in ("tanh", "relu") if mode == "RNN" else ("tanh",):
        module = head(
            mode,
            output,
            num_layers=num_layers,
            bidirectional=bidirectional,
            batch_first=batch_first,
            bias=bias,
            nonlinearity=nonlinearity,
            dropout=0.5,
            torch_draw=nonlinearity == "relu",
        )
        check(module, inputs(batch_first), F32, time_major=not batch_first)
        with jax.enable_x64(True):
            check(module.double(), inputs(batch_first, "float64"), F64, time_major=not batch_first)


# --- what the conversion builds -------------------------------------------------------------------------


def test_the_layers_a_stacked_bidirectional_lstm_becomes():
    module = head("LSTM", "last", num_layers=2, bidirectional=True, dropout=0.3)
    model, params = rc.from_torch(module, arch=head_arch(module))
    names = [type(layer).__name__ for layer in model.layers]
    assert names == ["Bidirectional", "Dropout", "Bidirectional", "LastStep", "Dense"]
    assert model.layers[1].rate == pytest.approx(0.3)
    assert model.layers[2].return_sequences and model.layers[2].merge_mode == "concat"
    lstm = module.rnn
    w = lstm.weight_ih_l1_reverse.detach().numpy()
    np.testing.assert_array_equal(params[2].backward.kernel, w.T)  # LSTM: i, f, g, o in both
    b = (lstm.bias_ih_l0 + lstm.bias_hh_l0).detach().numpy()
    np.testing.assert_allclose(params[0].forward.bias, b, rtol=0, atol=0)


def test_gru_gates_are_reordered_and_its_two_biases_kept_apart():
    gru = randomize(nn.GRU(2, 3), 0)
    model, params = rc.from_torch(gru)
    assert model.layers[0].cell.reset_after and model.layers[0].return_sequences
    r, z, n = np.split(gru.weight_hh_l0.detach().numpy(), 3)
    np.testing.assert_array_equal(params[0].recurrent_kernel, np.concatenate([z, r, n]).T)
    b_ih, b_hh = (np.split(b.detach().numpy(), 3) for b in (gru.bias_ih_l0, gru.bias_hh_l0))
    np.testing.assert_array_equal(
        params[0].bias, [np.concatenate([b_ih[1], b_ih[0], b_ih[2]]), np.concatenate([b_hh[1], b_hh[0], b_hh[2]])]
    )


def test_bidirectional_last_step_differs_from_the_final_state():
    """output[:, -1] of a bidirectional module is not cat(h_n[-2], h_n[-1]): the backward half has
    seen one step. Both are reproduced, each by its own layers."""
    last, final = head("GRU", "last", bidirectional=True), head("GRU", "final", bidirectional=True)
    final.load_state_dict(last.state_dict())
    x = inputs(True)
    with torch.no_grad():
        assert not np.allclose(last(torch.from_numpy(x)), final(torch.from_numpy(x)), atol=1e-3)
    check(last, x, F32)
    check(final, x, F32)


@pytest.mark.filterwarnings("ignore:dropout option adds dropout after all but last recurrent layer")
def test_num_layers_one_drops_nothing_and_dropout_is_identity_at_inference():
    module = head("LSTM", "sequence", num_layers=1, dropout=0.5)
    model, _ = rc.from_torch(module, arch=head_arch(module))
    assert [type(layer).__name__ for layer in model.layers] == ["LSTM", "Dense"]
    check(head("LSTM", "sequence", num_layers=3, dropout=0.9), inputs(True), F32)


def test_the_truncated_bptt_question_model():
    """nn.LSTM(batch_first=True) + nn.Linear on every step, as a subclassed module's forward."""

    class Seq2Seq(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(F, U, batch_first=True)
            self.linear = nn.Linear(U, 1)

        def forward(self, x):
            out, _ = self.lstm(x)
            return self.linear(out)

    module = randomize(Seq2Seq(), 3)
    model, _ = rc.from_torch(module)
    assert [type(layer).__name__ for layer in model.layers] == ["LSTM", "Dense"]
    assert model.layers[0].return_sequences
    check(module, inputs(True), F32, arch=None)


# --- to_torch -----------------------------------------------------------------------------------------------


def test_to_torch_round_trip_and_forward():
    model = rc.Sequential(
        [
            rc.layers.Bidirectional(rc.layers.LSTM(4, return_sequences=True)),
            rc.layers.Dropout(0.2),
            rc.layers.GRU(3, use_bias=False, return_sequences=True),
            rc.layers.SimpleRNN(3, activation="relu", return_sequences=True),
            rc.layers.Bidirectional(rc.layers.GRU(2, return_sequences=True)),
            rc.layers.LastStep(),
            rc.layers.Dense(2),
        ]
    )
    params = model.init(jax.random.PRNGKey(0), (T, F))
    params = jax.tree_util.tree_map(
        lambda a: np.random.default_rng(a.size).normal(size=a.shape).astype("float32"), params
    )
    module = rc.to_torch(model, params)
    x = inputs(True)
    with torch.no_grad():
        y_t = module(torch.from_numpy(x)).numpy()
    from conftest import max_rel_err

    assert max_rel_err(model.apply(params, x), y_t) < F32[0]
    again, params_again = rc.from_torch(module)
    assert again == model
    for a, b in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(params_again)):
        np.testing.assert_array_equal(a, b)
    check(module, x, F32, arch=None)


def test_to_torch_float64_and_time_major(x64):
    model = rc.Sequential([rc.layers.LSTM(3, return_sequences=True), rc.layers.Dense(2)])
    params = jax.tree_util.tree_map(
        lambda a: np.random.default_rng(1).normal(size=a.shape), model.init(jax.random.PRNGKey(0), (T, F), "float64")
    )
    module = rc.to_torch(model, params, batch_first=False)
    assert module.get_submodule("0").weight_ih_l0.dtype == torch.float64
    x = inputs(False, "float64")
    check(module, x, F64, time_major=True, arch=None)


@pytest.mark.parametrize(
    "layer,message",
    [
        (rc.layers.LSTM(2, go_backwards=True), "go_backwards=True; expected False"),
        (rc.layers.GRU(2, reset_after=False), "reset_after=False; expected True"),
        (rc.layers.SimpleRNN(2, activation="sigmoid"), "activation='sigmoid'; expected 'tanh' or 'relu'"),
        (rc.layers.LSTM(2, dropout=0.1), "dropout=0.1; expected"),
        (rc.layers.Bidirectional(rc.layers.LSTM(2), merge_mode="sum"), "merge_mode='sum'; expected 'concat'"),
        (rc.layers.LayerNormLSTM(2), "cell LayerNormLSTM has no PyTorch module"),
        (rc.layers.Masking(0.0), "Masking): no PyTorch module"),
    ],
)
def test_to_torch_refuses_what_torch_has_not(layer, message):
    model = rc.Sequential([layer, rc.layers.Dense(1)])
    params = model.init(jax.random.PRNGKey(0), (T, F))
    with pytest.raises(ValueError, match="layers\\[0\\].*" + __import__("re").escape(message)):
        rc.to_torch(model, params)


# --- refusals of from_torch -----------------------------------------------------------------------------------


def test_proj_size_is_refused_by_name():
    with pytest.raises(ValueError, match="proj_size=2; expected 0"):
        rc.from_torch(nn.LSTM(3, 4, proj_size=2))
    sd = nn.LSTM(3, 4, proj_size=2).state_dict()
    with pytest.raises(ValueError, match="has weight_hr_l0, so proj_size > 0; expected proj_size=0"):
        rc.from_torch(sd, arch=[{"type": "LSTM", "name": ""}])


def test_unknown_modules_are_refused_with_the_supported_list():
    with pytest.raises(
        ValueError,
        match=r"module '1' \(Conv1d\) is not supported .*; supported modules: nn.RNN, nn.LSTM, nn.GRU, nn.Linear",
    ):
        rc.from_torch(nn.Sequential(nn.Linear(3, 3), nn.Conv1d(3, 3, 1)))
    with pytest.raises(ValueError, match="type='Conv1d' is not supported; expected one of RNN, LSTM, GRU"):
        rc.from_torch({}, arch=[{"type": "Conv1d"}])

    class MyLSTM(nn.LSTM):
        pass

    with pytest.raises(ValueError, match="MyLSTM.*not supported"):
        rc.from_torch(nn.Sequential(MyLSTM(3, 3)))


def test_a_recurrent_module_inside_nn_sequential_is_refused():
    with pytest.raises(ValueError, match="PyTorch cannot run it inside an nn.Sequential"):
        rc.from_torch(nn.Sequential(nn.LSTM(3, 3), nn.Linear(3, 1)))


def test_a_description_that_does_not_match_the_weights_is_refused():
    sd = head("LSTM", "last").state_dict()
    with pytest.raises(ValueError, match=r"arch\[0\] \(LSTM\): hidden_size=7, but its weights say hidden_size=5"):
        rc.from_torch(sd, arch=[{"type": "LSTM", "name": "rnn", "hidden_size": 7}, {"type": "Linear", "name": "fc"}])
    with pytest.raises(ValueError, match="weights no spec of the description claims: fc.weight, fc.bias"):
        rc.from_torch(sd, arch=[{"type": "LSTM", "name": "rnn"}])
    with pytest.raises(ValueError, match=r"arch\[0\] \(GRU\): weight_ih_l0 has 20 rows; expected a multiple of 3"):
        rc.from_torch(sd, arch=[{"type": "GRU", "name": "rnn"}, {"type": "Linear", "name": "fc"}])
    sd2 = dict(sd, **{"fc.bias": torch.zeros(3)})
    with pytest.raises(ValueError, match=r"arch\[1\] \(Linear 'fc'\): fc.bias has shape \(3,\); expected \(2,\)"):
        rc.from_torch(sd2, arch=[{"type": "LSTM", "name": "rnn"}, {"type": "Linear", "name": "fc"}])
    with pytest.raises(ValueError, match="unknown key 'units'; expected type, name, input_size"):
        rc.from_torch(sd, arch=[{"type": "LSTM", "units": 3}])
    with pytest.raises(ValueError, match="pass arch="):
        rc.from_torch(sd)


# --- Embedding (padding_idx) and LayerNorm ----------------------------------------------------------------


def _token_model(dtype, norm_kwargs, batch_first=True, output="last", padding_idx=0):
    emb = nn.Embedding(12, F, padding_idx=padding_idx, dtype=dtype)
    rnn = nn.LSTM(F, U, batch_first=batch_first, dtype=dtype)
    norm = nn.LayerNorm(U, **norm_kwargs, dtype=dtype)
    return randomize(Head(rnn, nn.Linear(U, 2, dtype=dtype), output, emb=emb, norm=norm), 4)


def _tokens(batch_first, padding_idx=0, rows=12):
    ids = np.random.default_rng(2).integers(0, rows, size=(B, T))
    ids[:, :2] = padding_idx % rows  # padding tokens, which PyTorch still looks up
    return ids if batch_first else np.ascontiguousarray(ids.T)


@pytest.mark.parametrize(
    "norm_kwargs,batch_first,output",
    [
        ({}, True, "last"),
        ({"elementwise_affine": False}, False, "sequence"),
        ({"bias": False, "eps": 1e-3}, True, "final"),
    ],
)
def test_embedding_and_layernorm_float32(norm_kwargs, batch_first, output):
    module = _token_model(torch.float32, norm_kwargs, batch_first, output)
    model, params = rc.from_torch(module, arch=head_arch(module))
    assert [type(layer).__name__ for layer in model.layers] == ["Embedding", "LSTM", "LayerNormalization", "Dense"]
    norm = model.layers[2]
    assert norm.epsilon == module.norm.eps and norm.scale == module.norm.elementwise_affine
    assert norm.center == (module.norm.elementwise_affine and module.norm.bias is not None)
    check(module, _tokens(batch_first), F32, time_major=not batch_first)


def test_embedding_padding_row_gets_no_gradient_float64(x64):
    module = _token_model(torch.float64, {}, padding_idx=-2)
    arch = head_arch(module)
    assert arch[0]["padding_idx"] == 10  # PyTorch stores -2 as 10
    check(module, _tokens(True, padding_idx=10), F64)
    model, params = rc.from_torch(module, arch=arch)
    grads = jax.grad(lambda p: jax.numpy.sum(jax.numpy.sin(model.apply(p, _tokens(True, 10)))))(params)
    assert model.layers[0].padding_idx == 10
    assert not np.any(np.asarray(grads[0].embeddings[10])) and np.any(np.asarray(grads[0].embeddings[1:10]))


def test_embedding_model_round_trip_and_init_from_token_shape():
    model = rc.Sequential(
        [
            rc.layers.Embedding(9, 3, padding_idx=1),
            rc.layers.GRU(4, return_sequences=True),
            rc.layers.LayerNormalization(epsilon=1e-5),
            rc.layers.Dense(2),
        ]
    )
    params = model.init(jax.random.PRNGKey(0), input_shape=(T,))
    module = rc.to_torch(model, params)
    assert module.get_submodule("0").padding_idx == 1 and module.get_submodule("2").eps == 1e-5
    again, params_again = rc.from_torch(module)
    assert again == model
    for a, b in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(params_again)):
        np.testing.assert_array_equal(a, b)
    check(module, _tokens(True, padding_idx=1, rows=9), F32, arch=None)


def test_embedding_settings_rnncore_does_not_have_are_refused():
    with pytest.raises(ValueError, match="max_norm=1.0; expected None"):
        rc.from_torch(nn.Sequential(nn.Embedding(5, 2, max_norm=1.0)))
    with pytest.raises(ValueError, match="scale_grad_by_freq=True; expected False"):
        rc.from_torch(nn.Sequential(nn.Embedding(5, 2, scale_grad_by_freq=True)))
    with pytest.raises(ValueError, match=r"normalized_shape=\(2, 3\); expected one size"):
        rc.from_torch(nn.Sequential(nn.LayerNorm([2, 3])))
    model = rc.Sequential([rc.layers.Embedding(5, 2, mask_zero=True), rc.layers.GRU(2)])
    with pytest.raises(ValueError, match="mask_zero=True; expected False"):
        rc.to_torch(model, model.init(jax.random.PRNGKey(0), (T,)))
