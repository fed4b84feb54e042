"""The ``rnncore`` command: each subcommand on small settings, its numbers against rnncore.analysis and
rnncore.bptt called directly, user models and data files, and one-line errors with exit status 2."""

import ast
import contextlib
import importlib.util
import io
import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnncore as rc
from rnncore import cli

SMALL = ["--units", "8", "--seq-len", "20", "--batch", "4", "--features", "3"]


def _run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _run_captured(*argv):
    """``_run`` for module-scope fixtures, where capsys is not available."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


def _inputs(batch, steps, features, seed):
    x = np.random.default_rng(seed).normal(size=(batch, steps, features))
    return rc.data.Standardizer().fit(x).transform(x).astype(np.float32)


@pytest.fixture(scope="module")
def lstm_report(tmp_path_factory):
    """``rnncore diagnose --json`` on one small LSTM, run once for the tests that read its numbers."""
    picture = tmp_path_factory.mktemp("diagnose") / "d.png"
    code, out, err = _run_captured(
        "diagnose", "--cell", "lstm", *SMALL, "--lags", "1", "5", "20", "--json", "--out", str(picture)
    )
    assert code == 0, err
    return json.loads(out), picture


def test_diagnose_json_holds_the_numbers_of_rnncore_analysis(lstm_report):
    report, picture = lstm_report
    assert picture.stat().st_size > 0 and report["picture"] == str(picture)
    rows = {r["model"]: r for r in report["rows"]}
    assert list(rows) == ["lstm"]
    x = jnp.asarray(_inputs(4, 20, 3, 0))
    for name, layer in (("lstm", rc.layers.LSTM(8)),):
        p = rc.Sequential([layer]).init(jax.random.PRNGKey(0), (20, 3))[0]
        cell, row = layer.cell, rows[name]
        # the gradient a loss <h_T, v> (v a unit vector per row) sends back k steps, by explicit BPTT
        v = np.random.default_rng(1).normal(size=(4, 8))
        v /= np.linalg.norm(v, axis=-1, keepdims=True)
        g = rc.bptt.backward(cell, p, x, jnp.zeros((4, 20, 8)).at[:, -1].set(v))
        states = np.asarray(g.states, np.float64)
        s0 = np.asarray(cell.state_to_vector(g.initial_state), np.float64)
        want = {1: states[:, 18], 5: states[:, 14], 20: s0}
        for k, vec in want.items():
            np.testing.assert_allclose(row["grad_norm_by_lag"][str(k)], np.linalg.norm(vec, axis=-1).mean(), rtol=1e-4)
        assert row["memory_horizon"] == pytest.approx(float(np.mean(rc.analysis.memory_horizon(cell, p, x))))
        lam = rc.analysis.lyapunov_spectrum(cell, p, x, k=8, warmup=2)
        assert row["lyapunov_max"] == pytest.approx(float(np.mean(lam[:, 0])), rel=1e-5)
        sat = rc.analysis.gate_saturation(cell, p, x)
        assert row["gates"] == pytest.approx(sat) and row["saturation"] == pytest.approx(np.mean(list(sat.values())))
        verdict = rc.analysis.verdict(cell, p, x)
        assert row["verdict"] == verdict.label and row["log_gain"] == pytest.approx(verdict.log_gain, rel=1e-5)


def test_diagnose_table_shows_the_numbers_of_the_json(capsys, lstm_report):
    rows = {r["model"]: r for r in lstm_report[0]["rows"]}
    code, out, err = _run(capsys, "diagnose", "--cell", "lstm", *SMALL, "--lags", "1", "5", "20", "--no-plot")
    assert code == 0, err
    for name, row in rows.items():
        line = next(ln for ln in out.splitlines() if ln.startswith(name + " "))
        fields = line.split()
        assert fields[1] == row["layer"] == f"0:{name.upper()}"
        assert fields[2:5] == [f"{row['grad_norm_by_lag'][k]:.2e}" for k in ("1", "5", "20")]
        assert fields[5:9] == [
            f"{row['memory_horizon']:.1f}",
            f"{row['lyapunov_max']:+.4f}",
            f"{row['saturation']:.1%}",
            row["verdict"],
        ]


def test_diagnose_stack_and_init(capsys, tmp_path):
    # as many features as units: both layers' cells then see (B, T, 8) inputs and share compiled programs
    code, out, err = _run(
        capsys,
        "diagnose",
        "--cell",
        "simple_rnn",
        "--init",
        "identity",
        "--layers",
        "2",
        *SMALL,
        "--features",
        "8",
        "--json",
        "--no-plot",
    )
    assert code == 0, err
    report = json.loads(out)
    assert [r["layer"] for r in report["rows"]] == ["0:SimpleRNN", "1:SimpleRNN"]
    assert report["settings"]["init"] == "identity" and report["picture"] is None
    for r in report["rows"]:
        assert set(r["grad_norm_by_lag"]) == {"1", "10"}  # lags 50 and 100 exceed T = 20


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    keras = pytest.importorskip("keras")
    d = tmp_path_factory.mktemp("models")
    model = keras.Sequential(
        [
            keras.Input((None, 3)),
            keras.layers.LSTM(4, return_sequences=True),
            keras.layers.GRU(3),
            keras.layers.Dense(1),
        ]
    )
    model.save(d / "rnn.keras")
    dense = keras.Sequential([keras.Input((5, 3)), keras.layers.Dense(2)])
    dense.save(d / "dense.keras")
    inside = keras.Sequential(
        [keras.Input((5, 4, 3)), keras.layers.TimeDistributed(keras.layers.GRU(2)), keras.layers.GRU(1)]
    )
    inside.save(d / "inside.keras")
    return d


def test_data_files(tmp_path):
    x = np.random.default_rng(0).normal(size=(2, 12, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "one.npy", x[0])
    np.savez(tmp_path / "x.npz", other=np.zeros(3), x=x)
    np.savez(tmp_path / "first.npz", x[1], np.zeros(3))
    np.savetxt(tmp_path / "x.csv", x[0], delimiter=",", header="a,b,c", comments="")
    np.savetxt(tmp_path / "plain.csv", x[1], delimiter=",")
    for name, want in [
        ("x.npy", x),
        ("one.npy", x[:1]),
        ("x.npz", x),
        ("first.npz", x[1:]),
        ("x.csv", x[:1]),
        ("plain.csv", x[1:]),
    ]:
        np.testing.assert_allclose(rc.data.load_array(str(tmp_path / name)), want, rtol=1e-6, err_msg=name)


def test_data_files_that_cannot_be_inputs_say_why(tmp_path):
    np.savez(tmp_path / "empty.npz")
    (tmp_path / "header.csv").write_text("a,b,c\n")
    np.save(tmp_path / "words.npy", np.array(["a", "b"]))
    np.save(tmp_path / "flat.npy", np.zeros(4, np.float32))
    (tmp_path / "x.txt").write_text("1,2\n")
    for name, message in [
        ("none.npy", "no such file."),
        ("empty.npz", "the .npz file holds no array."),
        ("header.csv", "the .csv file holds no rows of numbers."),
        ("words.npy", "expected numbers; got an array of dtype <U1."),
        ("flat.npy", "expected (batch, time, features) or one sequence (time, features); got shape (4,)."),
        ("x.txt", "unknown file type '.txt'; expected .npy, .npz or .csv."),
    ]:
        path = str(tmp_path / name)
        with pytest.raises(ValueError) as e:
            rc.data.load_array(path)
        assert str(e.value) == f"--data {path}: {message}"


def test_diagnose_a_saved_keras_model_on_user_data(capsys, tmp_path, saved_models):
    x = np.random.default_rng(0).normal(size=(2, 12, 3)).astype(np.float32)
    np.savez(tmp_path / "x.npz", x=x)
    code, out, err = _run(
        capsys,
        "diagnose",
        "--model",
        str(saved_models / "rnn.keras"),
        "--data",
        str(tmp_path / "x.npz"),
        "--json",
        "--out",
        str(tmp_path / "m.png"),
    )
    assert code == 0, err
    report = json.loads(out)
    assert [r["layer"] for r in report["rows"]] == ["0:LSTM", "1:GRU"]
    assert report["settings"]["batch"] == 2 and (tmp_path / "m.png").stat().st_size > 0
    model, params = rc.from_keras(saved_models / "rnn.keras")
    assert report["rows"][0]["memory_horizon"] == pytest.approx(
        float(np.mean(rc.analysis.memory_horizon(model.layers[0].cell, params[0], jnp.asarray(x))))
    )


def _bad(tmp_path, saved_models, case):
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((2, 12, 5), np.float32))
    model = str(saved_models / "rnn.keras")
    return {
        "unknown cell": ["diagnose", "--cell", "elman"],
        "negative units": ["diagnose", "--units", "-4"],
        "missing data file": ["diagnose", "--model", model, "--data", str(tmp_path / "none.npy")],
        "missing model file": ["diagnose", "--model", str(tmp_path / "none.keras"), "--data", str(wrong)],
        "wrong shape": ["diagnose", "--model", model, "--data", str(wrong)],
        "no recurrent layer": ["diagnose", "--model", str(saved_models / "dense.keras"), "--data", str(wrong)],
        "recurrent inside TimeDistributed": [
            "diagnose",
            "--model",
            str(saved_models / "inside.keras"),
            "--data",
            str(wrong),
        ],
        "model without data": ["diagnose", "--model", model],
        "unknown file type": ["diagnose", "--model", model, "--data", str(saved_models / "rnn.keras")],
        "unknown task": ["train", "--task", "parity"],
        "two clippings": ["train", "--clipnorm", "1", "--global-clipnorm", "1"],
        "unknown command": ["fly"],
    }[case]


@pytest.mark.parametrize(
    "case",
    [
        "unknown cell",
        "negative units",
        "missing data file",
        "missing model file",
        "wrong shape",
        "no recurrent layer",
        "recurrent inside TimeDistributed",
        "model without data",
        "unknown file type",
        "unknown task",
        "two clippings",
        "unknown command",
    ],
)
def test_bad_arguments_and_files_give_one_line_and_status_2(capsys, tmp_path, saved_models, case):
    code, out, err = _run(capsys, *_bad(tmp_path, saved_models, case), "--no-plot")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rnncore: error:"), err
    assert "Traceback" not in err + out
    if case == "wrong shape":
        assert "(batch, time, 3)" in err and "(2, 12, 5)" in err
    if case == "no recurrent layer":
        assert "no recurrent layer" in err
    if case == "recurrent inside TimeDistributed":
        assert "layers[0] is TimeDistributed(GRU), a recurrent layer run once per outer step" in err


def test_diagnose_a_torch_state_dict_with_its_description(capsys, tmp_path):
    torch = pytest.importorskip("torch")

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            # as many features as units: both layers' cells see (B, T, 4) inputs and share compiled programs
            self.lstm = torch.nn.LSTM(4, 4, num_layers=2, batch_first=True)
            self.fc = torch.nn.Linear(4, 1)

        def forward(self, x):
            out, _ = self.lstm(x)
            return self.fc(out[:, -1])

    net = Net()
    torch.save(net.state_dict(), tmp_path / "m.pt")
    arch = [{"type": "LSTM", "name": "lstm", "batch_first": True, "output": "last"}, {"type": "Linear", "name": "fc"}]
    (tmp_path / "arch.json").write_text(json.dumps(arch))
    x = np.random.default_rng(0).normal(size=(2, 12, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    argv = ["diagnose", "--model", str(tmp_path / "m.pt"), "--data", str(tmp_path / "x.npy"), "--json", "--no-plot"]
    code, out, err = _run(capsys, *argv, "--arch", str(tmp_path / "arch.json"))
    assert code == 0, err
    report = json.loads(out)
    assert [r["layer"] for r in report["rows"]] == ["0:LSTM", "1:LSTM"]
    model, params = rc.from_torch(net)
    assert report["rows"][1]["memory_horizon"] == pytest.approx(
        float(np.mean(rc.analysis.memory_horizon(model.layers[1].cell, params[1], model.layers[0].apply(params[0], x))))
    )
    code, out, err = _run(capsys, *argv)
    assert code == 2 and "m.pt is a PyTorch state_dict" in err and "--arch ARCH.json" in err


def test_check_torch(capsys, monkeypatch):
    pytest.importorskip("torch")
    from rnncore.interop.torch import parity

    monkeypatch.setattr(parity, "_fixed_cases", lambda: [])
    code, out, err = _run(capsys, "check-torch", "--only", "GRU", "--trials", "1", "--seed", "3", "--verbose")
    assert code == 0, err
    row = next(ln for ln in out.splitlines() if ln.startswith("GRU "))
    assert row.split()[1] == "1" and float(row.split()[3]) <= 1e-5
    assert "GRU(num_layers=" in out


def test_check_torch_without_torch(capsys, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    code, out, err = _run(capsys, "check-torch")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "PyTorch, which is not installed" in err


def test_help_shows_examples(capsys):
    for command in ("diagnose", "train", "check-keras", "check-flax", "check-torch"):
        code, out, _ = _run(capsys, command, "--help")
        assert code == 0 and "examples:" in out and f"rnncore {command}" in out


def test_train_prints_the_baseline_and_draws_the_curve(capsys, tmp_path):
    picture = tmp_path / "t.png"
    code, out, err = _run(
        capsys,
        "train",
        "--task",
        "adding",
        "--cell",
        "gru",
        "--seq-len",
        "8",
        "--samples",
        "40",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--units",
        "4",
        "--clipnorm",
        "1",
        "--init",
        "identity",
        "--out",
        str(picture),
    )
    assert code == 0, err
    assert "baseline 0.1667" in out and "Epoch 2/2" in out and picture.stat().st_size > 0
    code, out, err = _run(
        capsys,
        "train",
        "--task",
        "copy",
        "--cell",
        "lstm",
        "--layernorm",
        "--seq-len",
        "3",
        "--samples",
        "20",
        "--epochs",
        "1",
        "--units",
        "4",
        "--truncate",
        "5",
        "--global-clipnorm",
        "1",
        "--optimizer",
        "rmsprop",
        "--lr",
        "0.01",
        "--no-plot",
    )
    assert code == 0, err
    baseline = rc.data.copy_memory_baseline(3, 8, 10)
    assert f"baseline {baseline:.4g}" in out and "layernorm_lstm" in out


def test_check_keras(capsys, monkeypatch, keras):
    from rnncore.interop.keras import parity

    monkeypatch.setattr(parity, "_fixed_cases", lambda: [])
    code, out, err = _run(capsys, "check-keras", "--only", "LSTM", "--trials", "1", "--seed", "3")
    assert code == 0, err
    row = next(ln for ln in out.splitlines() if ln.startswith("LSTM "))
    assert row.split()[1] == "1" and float(row.split()[3]) <= 1e-5


def test_check_flax(capsys, monkeypatch):
    pytest.importorskip("flax")
    from rnncore.interop.flax import parity

    monkeypatch.setattr(parity, "_fixed_cases", lambda cell: [])
    code, out, err = _run(capsys, "check-flax", "--only", "GRUCell", "--trials", "1", "--seed", "3")
    assert code == 0, err
    row = next(ln for ln in out.splitlines() if ln.startswith("GRUCell "))
    assert row.split()[1] == "1" and float(row.split()[3]) <= 1e-5 and "within 1e-05" in out


def test_check_flax_without_flax(capsys, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "flax" else real(name, *a))
    code, out, err = _run(capsys, "check-flax")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "flax, which is not installed" in err


def test_check_keras_without_keras(capsys, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "keras" else real(name, *a))
    code, out, err = _run(capsys, "check-keras")
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("rnncore: error:")


def test_python_m_rnncore_is_the_command(tmp_path):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.run(
        [sys.executable, "-m", "rnncore", "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: rnncore")
    assert all(command in proc.stdout for command in ("diagnose", "train", "check-keras"))


@pytest.mark.slow
def test_python_m_rnncore_runs_diagnose(tmp_path):
    """Three cells compiled in a fresh process (14-50 s on 2 cores): behind ``slow``; the default run
    keeps :func:`test_python_m_rnncore_is_the_command`."""
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.run(
        [sys.executable, "-m", "rnncore", "diagnose", "--seq-len", "20", "--units", "8"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert [ln.split()[0] for ln in proc.stdout.splitlines() if ln.split()[:1] and ln.split()[0] in cli.CELLS] == [
        "simple_rnn",
        "lstm",
        "gru",
    ]
    assert (tmp_path / "diagnose.png").stat().st_size > 0


@pytest.mark.slow
@pytest.mark.parametrize(
    "argv, expect",
    [
        (["diagnose"], "picture: diagnose.png"),
        (["train"], "baseline"),
        (["check-keras"], "LSTM"),
    ],
)
def test_each_subcommand_on_its_defaults(tmp_path, argv, expect):
    """The console script exactly as a user runs it, on every default (the main job's timing is
    printed on its last line)."""
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.run(
        [sys.executable, "-m", "rnncore", *argv], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert expect in proc.stdout and "Traceback" not in proc.stderr
    if argv[0] != "check-keras":
        assert (tmp_path / f"{argv[0]}.png").stat().st_size > 0


def test_random_check_keras_configurations_are_ones_keras_accepts():
    """Keras refuses Bidirectional around a go_backwards layer; the generator must never draw one."""
    from rnncore.interop.keras import parity

    rng = np.random.default_rng(0)
    for _ in range(200):
        _, layers = parity._random_case("Bidirectional", rng)
        assert not layers[0].forward_layer.go_backwards and layers[0].backward_layer.go_backwards


@pytest.mark.parametrize(
    "old, module, name",
    [
        ("diagnose_model", "rnncore.diagnosis", "diagnose_model"),
        ("format_table", "rnncore.diagnosis", "format_table"),
        ("initial_state_gradient_norms", "rnncore.diagnosis", "initial_state_gradient_norms"),
        ("load_data", "rnncore.data", "load_array"),
        ("parity_table", "rnncore.interop.keras.parity", "parity_table"),
    ],
)
def test_names_that_moved_out_of_the_cli_warn_and_are_the_same_object(old, module, name):
    new = getattr(importlib.import_module(module), name)
    with pytest.warns(DeprecationWarning, match=f"rnncore.cli.{old} is deprecated; use {module}.{name}"):
        alias = getattr(cli, old)
    assert alias is new


def test_an_unknown_cli_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        cli.nothing


def test_the_cli_never_imports_keras():
    """Keras is reached only through rnncore.keras (rnncore.interop.keras), imported inside a command."""
    tree = ast.parse(pathlib.Path(cli.__file__).read_text())
    names = [a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names]
    names += [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 0]
    assert not [n for n in names if n == "keras" or n.startswith("keras.")]
    top = [node.module for node in tree.body if isinstance(node, ast.ImportFrom) and node.level]
    assert not [module for module in top if module in ("keras", "interop.keras", "interop.keras.parity")]
