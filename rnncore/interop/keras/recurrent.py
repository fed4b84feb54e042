"""What the recurrent layer kinds share: the cell arguments, the layer flags, config in and out.

A Keras ``SimpleRNN``/``LSTM``/``GRU`` layer, or ``RNN(SimpleRNNCell | LSTMCell | GRUCell)``, is an
rnncore recurrent layer over the same cell; its weights are ``kernel (F, G·u)``,
``recurrent_kernel (u, G·u)`` and ``bias`` (G = 1, 4, 3; GRU bias ``(2, 3u)`` with
``reset_after``, else ``(3u,)``; no bias with ``use_bias=False``), stored under ``cell/vars``.

>>> from rnncore import cells, layers
>>> weight_shapes(layers.GRU(2, reset_after=True), input_shape=(None, 3))
[('kernel', (3, 6)), ('recurrent_kernel', (2, 6)), ('bias', (2, 6))]
"""

from __future__ import annotations

from typing import Any

from ... import cells
from ... import layers as L
from .config import check_origin, construct, entry_name, keras_activation, keras_initializer, parse_args
from .context import Context

__all__ = [
    "RNN_LAYERS",
    "RNN_CELLS",
    "FLAGS",
    "CELL_ARGS",
    "GATES",
    "recurrent_layer",
    "keras_cell_type",
    "keras_recurrent",
    "keras_cell_kwargs",
    "weight_shapes",
    "params_from_arrays",
    "output_count",
]

RNN_LAYERS = {"SimpleRNN": cells.SimpleRNN, "LSTM": cells.LSTM, "GRU": cells.GRU}
RNN_CELLS = {"SimpleRNNCell": cells.SimpleRNN, "LSTMCell": cells.LSTM, "GRUCell": cells.GRU}
GATES = {cells.SimpleRNN: 1, cells.LSTM: 4, cells.GRU: 3}

FLAGS = ("return_sequences", "return_state", "go_backwards", "stateful", "unroll", "zero_output_for_mask")
CELL_ARGS = {
    cells.SimpleRNN: (
        "units",
        "activation",
        "use_bias",
        "kernel_initializer",
        "recurrent_initializer",
        "bias_initializer",
        "dropout",
        "recurrent_dropout",
    ),
    cells.LSTM: (
        "units",
        "activation",
        "recurrent_activation",
        "use_bias",
        "kernel_initializer",
        "recurrent_initializer",
        "bias_initializer",
        "unit_forget_bias",
        "dropout",
        "recurrent_dropout",
    ),
    cells.GRU: (
        "units",
        "activation",
        "recurrent_activation",
        "use_bias",
        "kernel_initializer",
        "recurrent_initializer",
        "bias_initializer",
        "dropout",
        "recurrent_dropout",
        "reset_after",
    ),
}


# --- Keras config -> rnncore --------------------------------------------------------------------------


def _named_layer(ctx: Context, cls: str, config: Any, at: str) -> L.RNN:
    cell_type = RNN_LAYERS[cls]
    kwargs = parse_args(ctx, config, at, CELL_ARGS[cell_type] + FLAGS)
    flags = {k: kwargs.pop(k) for k in FLAGS if k in kwargs}
    if "units" not in kwargs:
        raise ctx.error(f"{at}: config has no units.")
    cell = construct(ctx, at, cell_type, **kwargs)
    return construct(ctx, at, getattr(L, cls), cell=cell, **flags)


def _rnn_of_cell(ctx: Context, config: Any, at: str) -> L.RNN:
    if not isinstance(config, dict):
        raise ctx.error(f"{at}: malformed config.")
    cell_entry = config.get("cell")
    cell_at = f"{at}, cell {entry_name(cell_entry)!r}"
    cell_cls = check_origin(ctx, cell_entry, cell_at) if isinstance(cell_entry, dict) else type(cell_entry).__name__
    if cell_cls not in RNN_CELLS:
        raise ctx.error(
            f"{at}: cell {cell_cls} is not supported; expected one of {', '.join(RNN_CELLS)}, "
            "or a list (StackedRNNCells) of them."
        )
    cell_at = f"{at}, cell {entry_name(cell_entry)!r} ({cell_cls})"
    cell_type = RNN_CELLS[cell_cls]
    cell_config = cell_entry.get("config") if isinstance(cell_entry, dict) else None
    cell_kwargs = parse_args(ctx, cell_config, cell_at, CELL_ARGS[cell_type])
    if "units" not in cell_kwargs:
        raise ctx.error(f"{cell_at}: config has no units.")
    flags = parse_args(ctx, {k: v for k, v in config.items() if k != "cell"}, at, FLAGS)
    cell = construct(ctx, cell_at, cell_type, **cell_kwargs)
    return construct(ctx, at, L.RNN, cell, **flags)


def recurrent_layer(ctx: Context, entry: Any, at: str) -> L.RNN:
    """A Keras SimpleRNN/LSTM/GRU or RNN(cell) config -> an rnncore recurrent layer."""
    cls = check_origin(ctx, entry, at)
    if cls in RNN_LAYERS:
        return _named_layer(ctx, cls, entry.get("config"), at)
    if cls == "RNN":
        return _rnn_of_cell(ctx, entry.get("config"), at)
    raise ctx.error(f"{at} is not a recurrent layer; expected one of SimpleRNN, LSTM, GRU, RNN.")


# --- weights --------------------------------------------------------------------------------------------


def weight_shapes(layer: L.RNN, input_shape: tuple) -> list:
    """``[(field, shape or None), ...]`` of a recurrent layer for inputs of ``input_shape = (T, F)``."""
    features = input_shape[-1]
    cell = layer.cell
    u = cell.units
    g = GATES[type(cell)]
    bias = None
    if cell.use_bias:
        bias = (2, 3 * u) if isinstance(cell, cells.GRU) and cell.reset_after else (g * u,)
    return [("kernel", (features, g * u)), ("recurrent_kernel", (u, g * u)), ("bias", bias)]


def params_from_arrays(layer: L.RNN, arrays: list) -> Any:
    """The cell params of a recurrent layer from its Keras weights (in order, shapes checked)."""
    cell = layer.cell
    return cell.params_type(arrays[0], arrays[1], arrays[2] if cell.use_bias else None)


def output_count(layer: L.RNN) -> int:
    """How many arrays a recurrent layer returns (Keras and rnncore alike)."""
    return 1 + len(layer.cell.state_type._fields) if layer.return_state else 1


# --- rnncore -> Keras -------------------------------------------------------------------------------------


def keras_cell_type(layer: Any, at: str) -> type:
    """The exact rnncore cell class of a recurrent layer Keras can represent, or a clear error."""
    cell = getattr(layer, "cell", None)
    if type(cell) in CELL_ARGS and type(layer) in (L.RNN, L.SimpleRNN, L.LSTM, L.GRU):
        return type(cell)
    what = type(cell).__name__ if cell is not None else type(layer).__name__
    raise ValueError(
        f"{at} ({type(layer).__name__} with cell {what}) has no Keras counterpart; Keras represents "
        "SimpleRNN, LSTM and GRU cells only."
    )


def keras_cell_kwargs(keras: Any, cell: Any, at: str) -> dict:
    """The Keras constructor arguments of an rnncore SimpleRNN, LSTM or GRU cell."""
    kwargs = {}
    for arg in CELL_ARGS[type(cell)]:
        value = getattr(cell, arg)
        if arg.endswith("activation"):
            value = keras_activation(value, at, arg)
        elif arg.endswith("initializer"):
            value = keras_initializer(keras, value, at, arg)
            if value is None:
                continue
        kwargs[arg] = value
    return kwargs


def keras_recurrent(keras: Any, layer: L.RNN, dtype: str, at: str) -> Any:
    """The Keras layer (``use_cudnn=False``) equal to an rnncore recurrent layer."""
    cell_type = keras_cell_type(layer, at)
    cell = layer.cell
    kwargs = keras_cell_kwargs(keras, cell, at)
    if getattr(layer, "truncate_gradient", None) is not None:
        raise ValueError(
            f"{at}: truncate_gradient={layer.truncate_gradient} has no Keras equivalent (Keras "
            "differentiates through every step); expected None."
        )
    flags = {f: getattr(layer, f) for f in FLAGS}
    cls = cell_type.__name__
    if type(layer) is L.RNN:
        return keras.layers.RNN(getattr(keras.layers, cls + "Cell")(**kwargs, dtype=dtype), **flags, dtype=dtype)
    extra = {} if cell_type is cells.SimpleRNN else {"use_cudnn": False}
    return getattr(keras.layers, cls)(**kwargs, **flags, **extra, dtype=dtype)
