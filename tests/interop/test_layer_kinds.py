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
    "Embedding": L.Embedding(7, 2),
    "LayerNormalization": L.LayerNormalization(axis=[1, 2], center=False),
    "BatchNormalization": L.BatchNormalization(scale=False),
    "Activation": L.Activation("relu"),
    "RepeatVector": L.RepeatVector(2),
    "Flatten": L.Flatten(),
    "Reshape": L.Reshape((-1,)),
    "Permute": L.Permute((2, 1)),
    "TimeDistributed": L.TimeDistributed(L.BatchNormalization(center=False)),
    "SpatialDropout1D": L.SpatialDropout1D(0.2),
    "GaussianNoise": L.GaussianNoise(0.1),
    "GaussianDropout": L.GaussianDropout(0.1),
    "Conv1D": L.Conv1D(6, 2, groups=3, padding="causal"),
    "MaxPooling1D": L.MaxPooling1D(2),
    "AveragePooling1D": L.AveragePooling1D(3, strides=1, padding="same"),
    "GlobalMaxPooling1D": L.GlobalMaxPooling1D(),
    "GlobalAveragePooling1D": L.GlobalAveragePooling1D(keepdims=True),
}
STACKED = L.RNN(rc.cells.StackedCells((rc.cells.LSTM(3), rc.cells.GRU(2, reset_after=False))))
MERGES = {"Concatenate": L.Concatenate(axis=1), "Add": L.Add(), "Subtract": L.Subtract(), "Multiply": L.Multiply()}
MERGES["Average"] = L.Average()


def test_every_kind_has_a_layer_here():
    assert sorted({**LAYERS, **MERGES}) == sorted(layer_kinds.KINDS)


@pytest.mark.parametrize("cls", sorted(LAYERS) + ["RNN-stacked"])
def test_weight_order_and_shapes_are_those_of_the_layer(cls):
    layer = STACKED if cls == "RNN-stacked" else LAYERS[cls]
    cls = cls.split("-")[0]
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
        "kind_args",
        "embedding_kinds",
        "normalization_kinds",
        "weightless_kinds",
        "wrapper_kinds",
        "conv_kinds",
        "merging_kinds",
        "stacked_kinds",
        "layer_kinds",
        "graph",
        "files",
        "weights",
        "functional",
        "loading",
        "graph_export",
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


@pytest.mark.parametrize("cls", sorted(MERGES))
def test_merge_kinds_have_no_weights_and_take_lists_of_shapes(cls):
    layer = MERGES[cls]
    kind = layer_kinds.for_layer(layer, "layers[0]")
    assert kind.keras_class == cls and not kind.has_weights
    shapes = [(5, F), (5, F)]
    assert kind.weight_shapes(layer, shapes) == []
    assert layer.init(jax.random.PRNGKey(0), shapes) == ()
    assert kind.arrays(layer, (), "layers[0]") == []
