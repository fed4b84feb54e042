"""PyTorch's activation modules against PyTorch's own forward and autograd: each between two random
asymmetric ``nn.Linear`` (pre-activations ~N(0, 3²), so negative, saturated and shrunk ranges are all
hit), float32 to 1e-6 / 1e-5 and float64 to 1e-12; the refusals; the description and ``to_torch``
round trips."""

import json

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")
from conftest import max_rel_err  # noqa: E402
from torch import nn  # noqa: E402
from torch_oracles import errors, randomize, rnncore_run, torch_run  # noqa: E402

import rnncore as rc  # noqa: E402
from rnncore.interop.torch import torch_gradients  # noqa: E402
from rnncore.interop.torch.activation_kinds import ACTIVATION_KINDS  # noqa: E402

F32, F64 = (1e-6, 1e-5), (1e-12, 1e-12)
B, T, F, U = 3, 6, 4, 7

# every module of the table, in the settings rnncore represents
MODULES = {
    "Identity": lambda: nn.Identity(),
    "ReLU": lambda: nn.ReLU(),
    "ReLU6": lambda: nn.ReLU6(inplace=True),
    "LeakyReLU": lambda: nn.LeakyReLU(0.2),
    "ELU": lambda: nn.ELU(),
    "CELU": lambda: nn.CELU(),
    "SELU": lambda: nn.SELU(),
    "GELU": lambda: nn.GELU(),
    "SiLU": lambda: nn.SiLU(),
    "Mish": lambda: nn.Mish(),
    "Softplus": lambda: nn.Softplus(),
    "Softsign": lambda: nn.Softsign(),
    "Tanh": lambda: nn.Tanh(),
    "Sigmoid": lambda: nn.Sigmoid(),
    "LogSigmoid": lambda: nn.LogSigmoid(),
    "Hardsigmoid": lambda: nn.Hardsigmoid(),
    "Hardswish": lambda: nn.Hardswish(),
    "Hardtanh": lambda: nn.Hardtanh(),
    "Tanhshrink": lambda: nn.Tanhshrink(),
    "Softshrink": lambda: nn.Softshrink(),
    "Hardshrink": lambda: nn.Hardshrink(),
    "Softmax": lambda: nn.Softmax(dim=-1),
    "LogSoftmax": lambda: nn.LogSoftmax(dim=-1),
}


def test_every_activation_kind_is_tested():
    assert sorted(MODULES) == sorted(ACTIVATION_KINDS)


def between_linears(name, dtype):
    """``Linear(F, U) -> activation -> Linear(U, 2)``, random weights: pre-activations ~N(0, 3²)."""
    module = nn.Sequential(nn.Linear(F, U, dtype=dtype), MODULES[name](), nn.Linear(U, 2, dtype=dtype))
    return randomize(module, seed=len(name), scale=1.5)


def inputs(dtype="float32", seed=1):
    return np.random.default_rng(seed).normal(size=(B, T, F)).astype(dtype)


def activation_errors(name, dtype):
    module = between_linears(name, dtype)
    model, _ = rc.from_torch(module)
    assert [type(layer).__name__ for layer in model.layers] == ["Dense", "Activation", "Dense"]
    assert model.layers[1].activation == ACTIVATION_KINDS[name].notes["activation"]
    return errors(module, inputs("float32" if dtype == torch.float32 else "float64"))


# Tanhshrink, x − tanh x: both frameworks differentiate it as 1 − tanh′x, which cancels where tanh′x ≈ 1
# (small x), and each rounds tanh′ its own way (PyTorch 1 − tanh²x, JAX 4σ(2x)σ(−2x)); in float32 the
# two gradients then differ by ~1.1e-5 (measured) while each is within ~8e-6 of the float64 one. Its
# gradients' oracle is PyTorch's autograd on float64 copies of the same float32 weights and inputs.
GRADIENTS_IN_FLOAT64 = {"Tanhshrink"}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_float32_against_torch(name):
    errs = activation_errors(name, torch.float32)
    assert errs["outputs"] < F32[0], errs
    if name in GRADIENTS_IN_FLOAT64:
        model, params = rc.from_torch(between_linears(name, torch.float32))
        x = inputs()
        _, gx_t, grads_t = torch_run(between_linears(name, torch.float32).double(), x.astype("float64"))
        _, gx, gp = rnncore_run(model, params, x)
        expected = torch_gradients(between_linears(name, torch.float64), grads_t)
        errs = {"inputs": max_rel_err(gx, gx_t)}
        pairs = zip(jax.tree_util.tree_leaves(gp), jax.tree_util.tree_leaves(expected))
        errs["params"] = max(max_rel_err(a, b) for a, b in pairs)
    assert max(errs.values()) < F32[1], errs


# float64 by default where the two sides evaluate exp, erf or log (the rest are sums, products, tanh and
# comparisons), every kind in the slow checks
FLOAT64_DEFAULT = ["ELU", "GELU", "LogSigmoid", "LogSoftmax", "Mish", "SELU", "Softplus"]


@pytest.mark.parametrize(
    "name",
    [
        n if n in FLOAT64_DEFAULT else pytest.param(n, marks=pytest.mark.slow)
        for n in sorted(MODULES)
        if n != "Hardsigmoid"
    ],
)
def test_float64_against_torch(x64, name):
    errs = activation_errors(name, torch.float64)
    assert max(errs.values()) < F64[1], errs


def test_hardsigmoid_float64_torch_backward_uses_one_sixth_rounded_to_float32(x64):
    """PyTorch's Hardsigmoid backward multiplies by 1/6 rounded to float32 (0.16666667163...) whatever
    the dtype, rnncore's (JAX's) by 1/6: the gradients upstream of it (the input's, the first
    Linear's) differ by exactly that factor, 1 + 3e-8, and agree to 1e-12 once it is taken out."""
    module = between_linears("Hardsigmoid", torch.float64)
    x = inputs("float64")
    model, params = rc.from_torch(module)
    y_t, gx_t, grads_t = torch_run(module, x)
    y, gx, gp = rnncore_run(model, params, x)
    ratio = (1 / 6) / float(np.float32(1 / 6))
    assert max_rel_err(y, y_t) < F64[0]
    assert max_rel_err(gx, gx_t * ratio) < F64[1] and max_rel_err(gx, gx_t) > 1e-9
    expected = torch_gradients(module, {k: g * ratio if k.startswith("0.") else g for k, g in grads_t.items()})
    for a, b in zip(jax.tree_util.tree_leaves(gp), jax.tree_util.tree_leaves(expected)):
        assert max_rel_err(a, b) < F64[1]


def test_relu_derivative_at_zero_is_zero_in_both(x64):
    module = randomize(nn.Sequential(nn.ReLU(), nn.Linear(F, 2, dtype=torch.float64)), 0)
    x = inputs("float64")
    x[:, :, 0] = 0.0
    errs = errors(module, x)
    assert max(errs.values()) < F64[1], errs


def test_softplus_above_its_threshold_differs_by_less_than_exp_minus_20(x64):
    """PyTorch's Softplus returns x where x > 20; log(1 + eˣ) = x + e⁻ˣ + ..., so the two differ there
    by less than e⁻²⁰ ≈ 2e-9 in float64, and not at all in float32 (spacing 1.9e-6 at 20)."""
    x = np.linspace(-30.0, 40.0, 701)
    model, params = rc.from_torch(nn.Softplus())
    t = torch.from_numpy(x).requires_grad_(True)
    y_t = nn.functional.softplus(t)
    y_t.sum().backward()
    y = np.asarray(model.apply(params, x[None]))[0]
    g = np.asarray(jax.grad(lambda v: model.apply(params, v[None]).sum())(x))
    below = x <= 20
    assert max_rel_err(y[below], y_t.detach().numpy()[below]) < F64[0]
    assert max_rel_err(g[below], t.grad.numpy()[below]) < F64[1]
    assert np.max(np.abs(y - y_t.detach().numpy())) <= np.exp(-20.0)
    assert np.max(np.abs(g - t.grad.numpy())) <= np.exp(-20.0)
    x32 = x.astype("float32")
    y32 = nn.functional.softplus(torch.from_numpy(x32)).numpy()
    np.testing.assert_array_equal(y32[x32 > 20], np.asarray(model.apply(params, x32[None]))[0][x32 > 20])


# --- refusals -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "module,message",
    [
        (nn.LeakyReLU(), "negative_slope=0.01; expected 0.2"),
        (nn.ELU(alpha=0.5), "alpha=0.5; expected 1.0"),
        (nn.CELU(alpha=2.0), "alpha=2.0; expected 1.0"),
        (nn.GELU(approximate="tanh"), "approximate='tanh'; expected 'none'"),
        (nn.Softplus(beta=2.0), "beta=2.0; expected 1.0"),
        (nn.Softplus(threshold=10.0), "threshold=10.0; expected 20.0"),
        (nn.Hardtanh(-2.0, 2.0), "min_val=-2.0; expected -1.0"),
        (nn.Softshrink(0.3), "lambd=0.3; expected 0.5"),
        (nn.Hardshrink(1.0), "lambd=1.0; expected 0.5"),
        (nn.Softmax(dim=1), "dim=1; expected -1"),
        (nn.LogSoftmax(), "dim=None; expected -1"),
    ],
)
def test_settings_without_an_equal_activation_are_refused_by_name(module, message):
    with pytest.raises(ValueError, match=rf"\({type(module).__name__}\): " + __import__("re").escape(message)):
        rc.from_torch(nn.Sequential(nn.Linear(F, U), module))


def test_unknown_activation_modules_are_refused_with_the_supported_list():
    for module in (nn.PReLU(), nn.Threshold(0.1, 0.0), nn.Softmin(dim=-1), nn.GLU()):
        with pytest.raises(ValueError, match=rf"\({type(module).__name__}\) is not supported .* nn.GELU, "):
            rc.from_torch(nn.Sequential(nn.Linear(F, U), module))
    with pytest.raises(ValueError, match=r"arch\[1\] \(LeakyReLU\): negative_slope=0.01; expected 0.2"):
        rc.from_torch(nn.Linear(F, U).state_dict(), arch=[{"type": "Linear", "name": ""}, {"type": "LeakyReLU"}])
    with pytest.raises(ValueError, match=r"arch\[1\] \(ReLU\): unknown key 'alpha'; expected type, name, inplace"):
        rc.from_torch({}, arch=[{"type": "Linear"}, {"type": "ReLU", "alpha": 1.0}])
    with pytest.raises(ValueError, match=r"arch\[0\] \(GELU\): approximate='erf'; expected one of 'none', 'tanh'"):
        rc.from_torch({}, arch=[{"type": "GELU", "approximate": "erf"}])


@pytest.mark.parametrize(
    "layer,message",
    [
        (rc.layers.Dense(2, activation="exponential"), "activation='exponential' has no PyTorch module"),
        (rc.layers.Activation("sparse_plus"), "activation='sparse_plus' has no PyTorch module"),
        (rc.layers.Dense(2, activation=jax.numpy.sin), "has no PyTorch module; PyTorch's modules represent"),
    ],
)
def test_to_torch_refuses_activations_torch_has_not(layer, message):
    model = rc.Sequential([rc.layers.Dense(3), layer])
    params = _random_params(model)
    with pytest.raises(ValueError, match=r"layers\[1\].*" + __import__("re").escape(message)):
        rc.to_torch(model, params)


# --- the description and to_torch -------------------------------------------------------------------------


def test_a_description_with_activations_reads_a_state_dict(tmp_path):
    module = randomize(
        nn.Sequential(nn.Linear(F, U), nn.GELU(), nn.Linear(U, U), nn.LeakyReLU(0.2), nn.Linear(U, 3)), 5, 1.5
    )
    arch = [
        {"type": "Linear", "name": "0"},
        {"type": "GELU", "name": "1", "approximate": "none"},
        {"type": "Linear", "name": "2"},
        {"type": "LeakyReLU", "name": "3", "negative_slope": 0.2, "inplace": False},
        {"type": "Linear", "name": "4"},
    ]
    path = tmp_path / "arch.json"
    path.write_text(json.dumps(arch))
    live_model, live_params = rc.from_torch(module)
    file_model, file_params = rc.from_torch(module.state_dict(), arch=str(path))
    assert file_model == live_model
    for a, b in zip(jax.tree_util.tree_leaves(live_params), jax.tree_util.tree_leaves(file_params)):
        np.testing.assert_array_equal(a, b)
    errs = errors(module, inputs(), arch=arch)
    assert errs["outputs"] < F32[0] and max(errs.values()) < F32[1], errs


def _random_params(model, dtype="float32"):
    """N(0, 1) kernels and biases for a model of Dense and Activation layers on F features (drawn
    directly: ``model.init`` compiles an initializer per layer, seconds on a busy machine)."""
    rng, features, params = np.random.default_rng(0), F, []
    for layer in model.layers:
        if isinstance(layer, rc.layers.Dense):
            kernel = rng.normal(size=(features, layer.units)).astype(dtype)
            params.append(rc.layers.DenseParams(kernel, rng.normal(size=layer.units).astype(dtype)))
            features = layer.units
        else:
            params.append(())
    return tuple(params)


def test_to_torch_writes_a_dense_activation_as_linear_then_the_module():
    model = rc.Sequential(
        [
            rc.layers.Dense(6, activation="gelu"),
            rc.layers.Activation("tanh"),
            rc.layers.Dense(4, activation="linear"),
            rc.layers.Dense(3, activation="softmax"),
        ]
    )
    params = _random_params(model)
    module = rc.to_torch(model, params)
    assert [spec["type"] for spec in module.arch] == ["Linear", "GELU", "Tanh", "Linear", "Linear", "Softmax"]
    x = inputs()
    with torch.no_grad():
        assert max_rel_err(model.apply(params, x), module(torch.from_numpy(x)).numpy()) < F32[0]
    again, params_again = rc.from_torch(module)
    assert [type(layer).__name__ for layer in again.layers] == [
        "Dense",
        "Activation",
        "Activation",
        "Dense",
        "Dense",
        "Activation",
    ]
    np.testing.assert_array_equal(again.apply(params_again, x), model.apply(params, x))
    twice = rc.to_torch(again, params_again)
    assert twice.arch == module.arch
    for (k, a), (k2, b) in zip(module.state_dict().items(), twice.state_dict().items()):
        assert k == k2
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    errs = errors(module, x)
    assert errs["outputs"] < F32[0] and max(errs.values()) < F32[1], errs


def test_activation_layers_round_trip_exactly_float64(x64):
    model = rc.Sequential(
        [
            rc.layers.Dense(6),
            rc.layers.Activation("selu"),
            rc.layers.Dense(5),
            rc.layers.Activation("hard_silu"),
            rc.layers.Dense(3),
            rc.layers.Activation("log_softmax"),
        ]
    )
    params = _random_params(model, "float64")
    module = rc.to_torch(model, params)
    assert module.get_submodule("5").dim == -1
    state_dict, arch = module.state_dict(), json.loads(json.dumps(module.arch))  # what a file and its JSON hold
    again, params_again = rc.from_torch(state_dict, arch=arch)
    assert again == model
    for a, b in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(params_again)):
        np.testing.assert_array_equal(a, b)
    errs = errors(module, inputs("float64"))
    assert max(errs.values()) < F64[1], errs
