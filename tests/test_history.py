"""rnncore.history: what a run returns, importable without the training code."""

import ast
import pathlib

import pytest

import rnncore as rc
from rnncore import history, train


def test_append_records_an_epoch():
    h = history.History()
    h.append(0, {"loss": 1.0, "mae": 2.0})
    h.append(1, {"loss": 0.5, "mae": 1.0})
    assert h.epoch == [0, 1]
    assert h.history == {"loss": [1.0, 0.5], "mae": [2.0, 1.0]}
    assert h.gradient_norms is None and h.diverged is None and h.layer_names == ()
    assert repr(h) == "History(epochs=2, keys=['loss', 'mae'], diverged=None)"


def test_divergence_message_names_the_layer_or_the_loss():
    assert history.Divergence(0, 2, "loss", None, None).message() == (
        "the loss became non-finite (NaN/inf) at epoch 1, step 3"
    )
    assert history.Divergence(1, 0, "updated params", 2, "2:Dense").message() == (
        "the updated params of layer 2 (2:Dense) became non-finite (NaN/inf) at epoch 2, step 1"
    )
    assert history.NONFINITE_KINDS == ("loss", "gradient", "updated params")


def test_training_diverged_carries_the_run():
    h, d = history.History(), history.Divergence(0, 0, "loss", None, None)
    with pytest.raises(RuntimeError, match="stopped") as info:
        raise history.TrainingDiverged("stopped", (1, 2), h, d)
    assert info.value.params == (1, 2) and info.value.history is h and info.value.divergence is d


def test_run_defaults():
    run = history.Run(model=None, params=(), history=history.History())
    assert run.metric_directions == {} and run.stop_training is False


@pytest.mark.parametrize("name", ["History", "Divergence", "TrainingDiverged", "Run"])
def test_the_old_path_is_the_same_object(name):
    assert getattr(train, name) is getattr(history, name)
    assert name in train.__all__


def _imported_modules(path: pathlib.Path) -> set:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is None:  # from . import x
            names.update("." * node.level + a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + node.module)
    return names


def test_history_and_plot_need_neither_optax_nor_train():
    package = pathlib.Path(rc.__file__).parent
    assert _imported_modules(package / "history.py") <= {"__future__", "dataclasses", "typing", "numpy"}
    plot_imports = _imported_modules(package / "plot.py")
    assert "optax" not in plot_imports and ".train" not in plot_imports
    assert ".history" in plot_imports
