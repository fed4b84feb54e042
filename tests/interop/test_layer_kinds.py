"""The table of Keras layer kinds agrees with rnncore's layers, and the public path stays.

Each entry's weight order and shapes must be the ones the rnncore layer's own ``init`` produces,
``params(arrays)`` must give back the params ``arrays(params)`` flattened, and the converter must
import no Keras at module import (Keras is needed only by ``to_keras`` and live models).
"""

import subprocess
import sys

import jax
import numpy as np
import pytest

import rnncore as rc
import rnncore.interop.keras as interop_keras
import rnncore.keras
from rnncore.interop.keras import layer_kinds

L = rc.layers
F = 3
LAYERS = {
    "SimpleRNN": L.SimpleRNN(4, use_bias=False),
    "LSTM": L.LSTM(4),
    "GRU": L.GRU(4, reset_after=False),
    "RNN": L.RNN(rc.cells.GRU(4)),
    "Bidirectional": L.Bidirectional(L.LSTM(3), merge_mode="concat", backward_layer=L.GRU(2, go_backwards=True)),
    "Dense": L.Dense(2),
    "Dropout": L.Dropout(0.5),
    "Masking": L.Masking(0.0),
}


def test_every_kind_has_a_layer_here():
    assert sorted(LAYERS) == sorted(layer_kinds.KINDS)


@pytest.mark.parametrize("cls", sorted(LAYERS))
def test_weight_order_and_shapes_are_those_of_the_layer(cls):
    layer = LAYERS[cls]
    kind = layer_kinds.for_layer(layer, "layers[0]")
    assert kind.keras_class == cls
    params = layer.init(jax.random.PRNGKey(0), (5, F))
    fields = kind.arrays(layer, params, "layers[0]")
    expected = kind.weight_shapes(layer, (5, F))
    assert [f for f, _ in fields] == [f for f, _ in expected]
    assert [None if a is None else tuple(np.shape(a)) for _, a in fields] == [s for _, s in expected]
    arrays = [a for _, a in fields if a is not None]
    rebuilt = kind.params(layer, arrays)
    assert jax.tree_util.tree_structure(rebuilt) == jax.tree_util.tree_structure(params)
    for a, b in zip(jax.tree_util.tree_leaves(rebuilt), jax.tree_util.tree_leaves(params)):
        assert a is b


def test_layers_keras_cannot_represent_are_refused_by_name():
    with pytest.raises(ValueError, match=r"layers\[1\] \(LayerNormLSTM with cell LayerNormLSTM\) has no Keras"):
        layer_kinds.for_layer(L.LayerNormLSTM(3), "layers[1]")
    with pytest.raises(ValueError, match=r"layers\[2\] \(object\) has no Keras counterpart in rnncore.keras"):
        layer_kinds.for_layer(object(), "layers[2]")


def test_public_path_is_the_package():
    for name in ("from_keras", "to_keras", "keras_weights"):
        assert getattr(rnncore.keras, name) is getattr(interop_keras, name) is getattr(rc, name)


def test_importing_the_converter_imports_no_keras():
    code = (
        "import sys, rnncore, rnncore.keras, pkgutil, importlib, rnncore.interop.keras as k\n"
        "for m in pkgutil.iter_modules(k.__path__): importlib.import_module('rnncore.interop.keras.' + m.name)\n"
        "assert 'keras' not in sys.modules, sorted(n for n in sys.modules if n.startswith('keras'))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_modules_import_only_those_above_them():
    """The package's layering, as its docstring's table states it: each module imports only the
    modules listed above it (so a new framework or layer kind never needs a cycle)."""
    import ast
    import pathlib

    order = [
        "context",
        "config",
        "recurrent",
        "layer_kind",
        "layer_kinds",
        "graph",
        "files",
        "weights",
        "loading",
        "export",
        "parity",
    ]
    package = pathlib.Path(interop_keras.__file__).parent
    assert sorted(p.stem for p in package.glob("*.py") if p.stem != "__init__") == sorted(order)
    for i, name in enumerate(order):
        tree = ast.parse((package / f"{name}.py").read_text())
        imported = {
            node.module.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module
        }
        imported |= {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level == 1 and not node.module
            for alias in node.names
        }
        assert imported <= set(order[:i]), (name, imported - set(order[:i]))
        assert not [
            n
            for n in ast.walk(tree)
            if isinstance(n, ast.Import) and any(a.name.split(".")[0] == "keras" for a in n.names) and n.col_offset == 0
        ], f"{name} imports keras at top"
