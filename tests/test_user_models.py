"""The everyday recurrent models a practitioner brings (tests/keras_user_models.py): a text classifier
over padded token ids, the character-level addition model, an encoder-decoder, a Conv1D front end
and a stack with LayerNormalization. Each loads from a live Keras model and from its saved file,
reproduces Keras's outputs and weight gradients (Keras 3 on JAX as the oracle; files saved by
Keras on TensorFlow too, behind the ``tensorflow`` marker), and ``rnncore diagnose --model`` prints
a table and draws a picture of it."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import keras_user_models as zoo
import numpy as np
import pytest
from conftest import max_rel_err

import rnncore as rc
from rnncore import cli

TOL = 1e-5


def _args(xs: dict):
    arrays = list(xs.values())
    return arrays if len(arrays) > 1 else arrays[0]


def _first(y):
    return np.asarray(y[0] if isinstance(y, (list, tuple)) else y)


# a graph with two inputs and a token model in the default run; the others with the slow checks
LOADED_BY_DEFAULT = ("encoder_decoder", "text_classifier")


@pytest.mark.parametrize(
    "name", [n if n in LOADED_BY_DEFAULT else pytest.param(n, marks=pytest.mark.slow) for n in sorted(zoo.MODELS)]
)
def test_loads_live_and_from_its_file_and_equals_keras(keras, tmp_path, name):
    km = zoo.build(keras, name)
    x = _args(zoo.inputs(name))
    theirs = np.asarray(km(x, training=False))
    model, params = rc.from_keras(km)
    assert max_rel_err(_first(model.apply(params, x)), theirs) < TOL
    path = tmp_path / f"{name}.keras"
    km.save(path)
    from_file, file_params = rc.from_keras(str(path))
    assert max_rel_err(_first(from_file.apply(file_params, x)), theirs) < TOL

    probe = np.random.default_rng(3).normal(size=theirs.shape).astype("float32")
    ours = rc.keras_weights(model, jax.grad(lambda p: jnp.sum(model.apply(p, x) * probe))(params))
    non_trainable = [v.value for v in km.non_trainable_variables]

    def keras_loss(trainable):
        y, _ = km.stateless_call(trainable, non_trainable, x, training=False)
        return jnp.sum(y * probe)

    theirs_g = jax.grad(keras_loss)([v.value for v in km.trainable_variables])
    assert len(ours) == len(theirs_g)
    assert max(max_rel_err(a, b) for a, b in zip(ours, theirs_g)) < TOL


def _data_file(folder, name: str) -> str:
    xs = zoo.inputs(name)
    if len(xs) > 1:
        path = os.path.join(folder, f"{name}.npz")
        np.savez(path, **xs)
    else:
        path = os.path.join(folder, f"{name}.npy")
        np.save(path, next(iter(xs.values())))
    return path


# the token model in the default run (its loading is checked above); the others with the slow checks
DIAGNOSED_BY_DEFAULT = ("text_classifier",)


@pytest.mark.parametrize(
    "name", [n if n in DIAGNOSED_BY_DEFAULT else pytest.param(n, marks=pytest.mark.slow) for n in sorted(zoo.MODELS)]
)
def test_rnncore_diagnose_prints_a_table_and_draws_a_picture(keras, tmp_path, name, capsys):
    km = zoo.build(keras, name)
    model_path = str(tmp_path / f"{name}.keras")
    km.save(model_path)
    picture = tmp_path / f"{name}.png"
    status = cli.main(["diagnose", "--model", model_path, "--data", _data_file(tmp_path, name), "--out", str(picture)])
    printed = capsys.readouterr().out
    assert status == 0
    model, _ = rc.from_keras(km)
    rows = [line for line in printed.splitlines() if line.startswith(f"{name}.keras ")]
    directions = sum(2 if rc.layers.is_bidirectional(lay) else 1 for lay in model.layers if rc.layers.is_recurrent(lay))
    assert len(rows) == directions
    assert all(r.split()[-1] in ("vanishing", "exploding", "healthy") for r in rows)
    assert picture.stat().st_size > 10_000


def _tensorflow_python():
    python = os.environ.get("RNNCORE_TF_PYTHON")
    if python and os.path.exists(python):
        return python
    if os.environ.get("RNNCORE_REQUIRE_TF"):
        pytest.fail("RNNCORE_REQUIRE_TF is set but RNNCORE_TF_PYTHON names no Python with TensorFlow.")
    pytest.skip("no Python with Keras on TensorFlow (make test-tensorflow sets RNNCORE_TF_PYTHON)")


@pytest.mark.tensorflow
def test_files_saved_by_keras_on_tensorflow_reproduce_its_outputs(tmp_path):
    python = _tensorflow_python()
    tests = os.path.dirname(os.path.abspath(__file__))
    script = f"import sys; sys.path.insert(0, {tests!r}); import keras_user_models as z; z.save_all({str(tmp_path)!r})"
    env = dict(
        os.environ,
        KERAS_BACKEND="tensorflow",
        CUDA_VISIBLE_DEVICES="",
        TF_CPP_MIN_LOG_LEVEL="3",
        TF_ENABLE_ONEDNN_OPTS="0",
    )
    done = subprocess.run([python, "-c", script], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    for name in zoo.MODELS:
        with np.load(tmp_path / f"{name}.npz") as saved:
            theirs = saved["out"]
            xs = {k: saved[k] for k in saved.files if k != "out"}
        model, params = rc.from_keras(str(tmp_path / f"{name}.keras"))
        assert max_rel_err(_first(model.apply(params, _args(xs))), theirs) < TOL, name


def test_the_keras_user_models_module_imports_neither_rnncore_nor_jax():
    """keras_user_models is what the TensorFlow side imports: it must run where neither is installed."""
    code = "import sys; sys.modules['rnncore'] = sys.modules['jax'] = None; import keras_user_models"
    tests = os.path.dirname(os.path.abspath(__file__))
    done = subprocess.run([sys.executable, "-c", code], cwd=tests, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


class _TruncatedBpttNet:
    """The model of the truncated-BPTT question: nn.LSTM(batch_first=True) -> nn.Linear on every step."""

    @staticmethod
    def build(torch):
        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.lstm = torch.nn.LSTM(3, 6, batch_first=True)
                self.fc = torch.nn.Linear(6, 1)

            def forward(self, x):
                out, _ = self.lstm(x)
                return self.fc(out)

        torch.manual_seed(0)
        net = Net()
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(0.5 * torch.randn_like(p))
        return net

    ARCH = [
        {"type": "LSTM", "name": "lstm", "batch_first": True, "output": "sequence"},
        {"type": "Linear", "name": "fc"},
    ]


@pytest.mark.parametrize("suffix", [".pt", pytest.param(".safetensors", marks=pytest.mark.slow)])
def test_the_pytorch_model_loads_live_and_from_its_file_and_is_diagnosed(tmp_path, capsys, suffix):
    torch = pytest.importorskip("torch")
    net = _TruncatedBpttNet.build(torch)
    x = np.random.default_rng(0).normal(size=(3, 15, 3)).astype("float32")
    theirs = net(torch.from_numpy(x)).detach().numpy()
    model, params = rc.from_torch(net)
    assert max_rel_err(np.asarray(model.apply(params, x)), theirs) < 1e-6
    path = str(tmp_path / f"net{suffix}")
    if suffix == ".pt":
        torch.save(net.state_dict(), path)
    else:
        from safetensors.torch import save_file

        save_file(net.state_dict(), path)
    from_file, file_params = rc.from_torch(path, arch=_TruncatedBpttNet.ARCH)
    assert max_rel_err(np.asarray(from_file.apply(file_params, x)), theirs) < 1e-6
    arch = tmp_path / "arch.json"
    arch.write_text(__import__("json").dumps(_TruncatedBpttNet.ARCH))
    np.save(tmp_path / "x.npy", x)
    picture = tmp_path / "net.png"
    argv = ["diagnose", "--model", path, "--arch", str(arch), "--data", str(tmp_path / "x.npy"), "--out", str(picture)]
    assert cli.main(argv) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith(f"net{suffix} ")]
    assert len(rows) == 1 and rows[0].split()[-1] in ("vanishing", "exploding", "healthy")
    assert picture.stat().st_size > 10_000
