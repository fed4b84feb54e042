"""Keras ``RNN`` over a list of cells (``RNN([cell_1, cell_2])``, or ``RNN(StackedRNNCells([...]))``,
which Keras serializes alike): an rnncore ``RNN`` over :class:`~rnncore.cells.StackedCells`.

Its weights are each cell's ``kernel``, ``recurrent_kernel`` and ``bias`` in turn (the first cell's
first, as ``get_weights()`` lists them), cell k's kernel taking cell k−1's output. In
``model.weights.h5`` each cell has its own group,
``layers/rnn[_k]/cell/cells/<snake class name>[_j]/vars``, numbered per class within the stack.
:func:`rnn_kind` makes the ``RNN`` kind that sends a stacked layer here and any other to the
single-cell kind.

>>> from rnncore import cells, layers
>>> stack = layers.RNN(cells.StackedCells((cells.SimpleRNN(3), cells.LSTM(2))))
>>> weight_shapes(stack, (None, 4))
[('cells[0].kernel', (4, 3)), ('cells[0].recurrent_kernel', (3, 3)), ('cells[0].bias', (3,)), \
('cells[1].kernel', (3, 8)), ('cells[1].recurrent_kernel', (2, 8)), ('cells[1].bias', (8,))]
>>> cell_groups(["LSTMCell", "SimpleRNNCell", "LSTMCell"])
['lstm_cell', 'simple_rnn_cell', 'lstm_cell_1']
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from ... import cells
from ... import layers as L
from . import recurrent
from .config import check_origin, construct, entry_name, parse_args
from .context import Context
from .layer_kind import LayerKind, fields_of, kind_str

__all__ = ["rnn_kind", "is_stacked", "weight_shapes", "cell_groups"]

_CELL_FIELDS = ("kernel", "recurrent_kernel", "bias")


def is_stacked(layer: Any) -> bool:
    """Whether ``layer`` is a recurrent layer over :class:`~rnncore.cells.StackedCells`."""
    return isinstance(getattr(layer, "cell", None), cells.StackedCells)


def _stacked_entry(entry: Any) -> bool:
    config = entry.get("config") if isinstance(entry, dict) else None
    cell = config.get("cell") if isinstance(config, dict) else None
    return isinstance(cell, list) or (isinstance(cell, dict) and cell.get("class_name") == "StackedRNNCells")


def cell_groups(classes: list) -> list:
    """The group names Keras gives the cells of a stack in ``model.weights.h5``: each class in snake
    case, ``_1``, ``_2``, ... for its repeats."""
    seen: dict = {}
    out = []
    for cls in classes:
        snake = re.sub("([a-z])([A-Z])", r"\1_\2", re.sub("(.)([A-Z][a-z]+)", r"\1_\2", cls)).lower()
        k = seen.get(snake, -1) + 1
        seen[snake] = k
        out.append(snake if k == 0 else f"{snake}_{k}")
    return out


def _cell_entries(ctx: Context, entry: dict, at: str) -> list:
    cell = entry["config"]["cell"]
    if isinstance(cell, list):
        return cell
    config = cell.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("cells"), list) or not config["cells"]:
        raise ctx.error(f"{at}: StackedRNNCells config has no list of cells.")
    parse_args(ctx, {k: v for k, v in config.items() if k != "cells"}, f"{at}, StackedRNNCells", ())
    return config["cells"]


def _cell(ctx: Context, cell_entry: Any, at: str) -> Any:
    cls = check_origin(ctx, cell_entry, at)
    if cls not in recurrent.RNN_CELLS:
        raise ctx.error(f"{at}: cell {cls} is not supported; expected one of {', '.join(recurrent.RNN_CELLS)}.")
    cell_at = f"{at} ({cls})"
    cell_type = recurrent.RNN_CELLS[cls]
    kwargs = parse_args(ctx, cell_entry.get("config"), cell_at, recurrent.CELL_ARGS[cell_type])
    if "units" not in kwargs:
        raise ctx.error(f"{cell_at}: config has no units.")
    return construct(ctx, cell_at, cell_type, **kwargs)


def _from_config(ctx: Context, entry: dict, at: str) -> L.RNN:
    check_origin(ctx, entry, at)
    config = entry["config"]
    stack = tuple(
        _cell(ctx, e, f"{at}, cell {k} {entry_name(e)!r}") for k, e in enumerate(_cell_entries(ctx, entry, at))
    )
    flags = parse_args(ctx, {k: v for k, v in config.items() if k != "cell"}, at, recurrent.FLAGS)
    return construct(ctx, at, L.RNN, cells.StackedCells(stack), **flags)


def _cell_layers(layer: L.RNN) -> list:
    return [L.RNN(c) for c in layer.cell.cells]


def weight_shapes(layer: L.RNN, input_shape: tuple) -> list:
    """``[(field, shape or None), ...]`` of a stacked layer for inputs of ``input_shape = (T, F)``."""
    out: list = []
    features = input_shape[-1]
    for k, single in enumerate(_cell_layers(layer)):
        out += [(f"cells[{k}].{f}", s) for f, s in recurrent.weight_shapes(single, (None, features))]
        features = single.cell.units
    return out


def _params(layer: L.RNN, arrays: list) -> Any:
    out, start = [], 0
    for single in _cell_layers(layer):
        n = 3 if single.cell.use_bias else 2
        out.append(recurrent.params_from_arrays(single, arrays[start : start + n]))
        start += n
    return layer.cell.params_type(*out)


def _arrays(layer: L.RNN, entry: Any, at: str) -> list:
    singles = _cell_layers(layer)
    if not isinstance(entry, (tuple, list)) or len(entry) != len(singles):
        raise ValueError(
            f"{at} (RNN over StackedCells) needs one params entry per cell ({len(singles)}); got {kind_str(entry)}."
        )
    out: list = []
    for k, (single, p) in enumerate(zip(singles, entry)):
        out += [(f"cells[{k}].{f}", a) for f, a in fields_of(_CELL_FIELDS)(single, p, f"{at}.cells[{k}]")]
    return out


def _read(ctx: Context, source: Any, layer: L.RNN, entry: dict, expected: list) -> list:
    name = entry_name(entry)
    if not hasattr(source, "h5"):  # a live model: the RNN layer's weights are every cell's, in order
        return source.get(name, "RNN")
    classes = [e.get("class_name") for e in _cell_entries(ctx, entry, name)]
    arrays: list = []
    for group in cell_groups(classes):
        arrays += source.get(name, "StackedRNNCells", f"cell/cells/{group}")
    return arrays


def _first_weights(source: Any, entry: dict) -> list:
    if not hasattr(source, "h5"):
        return source.get(entry_name(entry), "RNN")
    cell = entry["config"]["cell"]
    first = (cell if isinstance(cell, list) else cell["config"]["cells"])[0]
    return source.get(entry_name(entry), "StackedRNNCells", f"cell/cells/{cell_groups([first['class_name']])[0]}")


def _exportable(layer: L.RNN, at: str) -> None:
    if len(layer.cell.cells) == 1:
        raise ValueError(
            f"{at}: a StackedCells of one cell has no working Keras counterpart (Keras's StackedRNNCells "
            "fails on one cell); use RNN(cell) with that cell instead."
        )
    for k, single in enumerate(_cell_layers(layer)):
        recurrent.keras_cell_type(single, f"{at}.cell.cells[{k}]")


def _to_keras(keras: Any, layer: L.RNN, dtype: str, at: str) -> Any:
    _exportable(layer, at)
    if layer.truncate_gradient is not None:
        raise ValueError(
            f"{at}: truncate_gradient={layer.truncate_gradient} has no Keras equivalent (Keras differentiates "
            "through every step); expected None."
        )
    keras_cells = [
        getattr(keras.layers, type(c).__name__ + "Cell")(
            **recurrent.keras_cell_kwargs(keras, c, f"{at}.cell.cells[{k}]"), dtype=dtype
        )
        for k, c in enumerate(layer.cell.cells)
    ]
    flags = {f: getattr(layer, f) for f in recurrent.FLAGS}
    return keras.layers.RNN(keras_cells, **flags, dtype=dtype)


def rnn_kind(single: LayerKind) -> LayerKind:
    """The ``RNN`` kind: a layer over :class:`~rnncore.cells.StackedCells` (a config whose cell is a
    ``StackedRNNCells`` or a list) goes to this module, any other to ``single``."""

    def by_layer(stacked_fn: Any, single_fn: Any) -> Any:
        return lambda layer, *args: (stacked_fn if is_stacked(layer) else single_fn)(layer, *args)

    return replace(
        single,
        from_config=lambda ctx, entry, at: (_from_config if _stacked_entry(entry) else single.from_config)(
            ctx, entry, at
        ),
        weight_shapes=by_layer(weight_shapes, single.weight_shapes),
        params=by_layer(_params, single.params),
        arrays=by_layer(_arrays, single.arrays),
        to_keras=lambda keras, layer, dtype, at: (_to_keras if is_stacked(layer) else single.to_keras)(
            keras, layer, dtype, at
        ),
        exportable=by_layer(_exportable, single.exportable),
        read=lambda ctx, source, layer, entry, expected: (_read if is_stacked(layer) else single.read)(
            ctx, source, layer, entry, expected
        ),
        first_weights=lambda source, entry: (_first_weights if _stacked_entry(entry) else single.first_weights)(
            source, entry
        ),
    )
