"""One entry per Keras layer kind: everything the converter knows about it, in one place.

A :class:`LayerKind` says, for one Keras layer class,

* **config in**: ``from_config(ctx, entry, at)`` turns the Keras layer's serialized config into an
  rnncore layer, refusing what rnncore does not represent (see :mod:`~rnncore.interop.keras.config`);
* **weights**: ``weight_shapes(layer, input_shape)`` gives the fields of its weights in Keras's
  ``get_weights()`` order with their shapes (``None`` for a weight Keras leaves out, a bias with
  ``use_bias=False``) for inputs of ``input_shape`` (without the batch; a list of shapes for a layer
  of several inputs); the output shape is the layer's own ``compute_output_shape``;
  ``read(ctx, source, layer, entry, expected)``
  reads them; where a model does not declare its input shape, ``first_weights`` reads the part whose
  kernel tells it and ``input_shape_from(layer, kernel)`` says it (``(None, F)`` by default);
  ``params(layer, arrays)`` builds the rnncore params from those arrays, ``arrays(layer, entry, at)``
  goes back (params-shaped tree -> fields);
* **config out**: ``to_keras(keras, layer, dtype, at)`` builds the equal Keras layer, and
  ``exportable(layer, at)`` refuses an rnncore layer Keras cannot represent;
* and how it sits in a model: its group in ``model.weights.h5``, whether its weights live under
  ``cell/``, whether it needs ``(batch, time, features)`` inputs and takes a mask, whether it takes
  integer inputs (token ids), how many arrays it returns.

:data:`KINDS` maps Keras class names to kinds (in the order messages list them); :func:`for_layer`
finds the kind of an rnncore layer. Adding a Keras layer kind is adding one entry to :data:`KINDS`
(and, when it needs an rnncore layer of its own, that layer in :mod:`rnncore.layers`).

>>> {"SimpleRNN", "LSTM", "GRU", "RNN", "Bidirectional", "Dense", "Dropout", "Masking"} <= set(KINDS)
True
>>> {"Conv1D", "MaxPooling1D", "AveragePooling1D", "GlobalMaxPooling1D", "GlobalAveragePooling1D"} <= set(KINDS)
True
>>> {"Concatenate", "Add", "Subtract", "Multiply", "Average"} <= set(KINDS)
True
>>> from rnncore import layers
>>> kind = for_layer(layers.Dense(2), "layers[0]")
>>> kind.keras_class, kind.weight_shapes(layers.Dense(2), (None, 5))
('Dense', [('kernel', (5, 2)), ('bias', (2,))])
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Optional

from ... import layers as L
from . import recurrent, stacked_kinds
from .config import construct, entry_name, keras_activation, keras_initializer, parse_args
from .context import Context, where
from .conv_kinds import CONV1D, POOLING_KINDS
from .embedding_kinds import EMBEDDING
from .layer_kind import LayerKind, Scoped, fields_of, kind_str, weightless
from .merging_kinds import MERGE_KINDS
from .normalization_kinds import BATCH_NORMALIZATION, LAYER_NORMALIZATION
from .weightless_kinds import (
    ACTIVATION,
    FLATTEN,
    GAUSSIAN_DROPOUT,
    GAUSSIAN_NOISE,
    PERMUTE,
    REPEAT_VECTOR,
    RESHAPE,
    SPATIAL_DROPOUT_1D,
)
from .wrapper_kinds import Table, time_distributed_kind

__all__ = ["LayerKind", "KINDS", "for_layer", "supported_list", "h5_group", "kind_of_entry"]


# --- recurrent layers ---------------------------------------------------------------------------------


def _recurrent_exportable(layer: Any, at: str) -> None:
    recurrent.keras_cell_type(layer, at)


def _recurrent_kind(keras_class: str, rnncore_type: type, h5_group: str) -> LayerKind:
    return LayerKind(
        keras_class=keras_class,
        rnncore_types=(rnncore_type,),
        h5_group=h5_group,
        from_config=recurrent.recurrent_layer,
        weight_shapes=recurrent.weight_shapes,
        params=recurrent.params_from_arrays,
        arrays=fields_of(("kernel", "recurrent_kernel", "bias")),
        to_keras=lambda keras, layer, dtype, at: recurrent.keras_recurrent(keras, layer, dtype, at),
        exportable=_recurrent_exportable,
        weights_under_cell=True,
        sequences=True,
        output_count=recurrent.output_count,
    )


# --- Bidirectional ------------------------------------------------------------------------------------------


RNN_KIND = stacked_kinds.rnn_kind(_recurrent_kind("RNN", L.RNN, "rnn"))
"""The ``RNN`` kind; its functions serve any recurrent layer (over one cell or a stack of cells), so
``Bidirectional`` reads and writes its two layers through them."""


def _bidirectional_from_config(ctx: Context, entry: dict, at: str) -> L.Bidirectional:
    config = entry.get("config")
    if not isinstance(config, dict):
        raise ctx.error(f"{at}: malformed config.")
    rest = {k: v for k, v in config.items() if k not in ("layer", "backward_layer", "merge_mode")}
    parse_args(ctx, rest, at, ())
    merge_mode = config.get("merge_mode", "concat")
    if merge_mode not in ("concat", "sum", "ave", "mul", None):
        raise ctx.error(f"{at}: merge_mode={merge_mode!r}; expected 'concat', 'sum', 'ave', 'mul' or None.")
    inner = config.get("layer")
    if not isinstance(inner, dict):
        raise ctx.error(f"{at}: malformed config (no layer).")
    fwd = RNN_KIND.from_config(ctx, inner, f"{at}, forward layer {entry_name(inner)!r}")
    back = config.get("backward_layer")
    bwd = (
        replace(fwd, go_backwards=True)
        if back is None
        else RNN_KIND.from_config(ctx, back, f"{at}, backward layer {entry_name(back)!r}")
    )
    return construct(ctx, at, L.Bidirectional, fwd, merge_mode=merge_mode, backward_layer=bwd)


def _bidirectional_shapes(layer: L.Bidirectional, input_shape: tuple) -> list:
    fwd = RNN_KIND.weight_shapes(layer.forward_layer, input_shape)
    bwd = RNN_KIND.weight_shapes(layer.backward_layer, input_shape)
    return [("forward." + n, s) for n, s in fwd] + [("backward." + n, s) for n, s in bwd]


def _bidirectional_params(layer: L.Bidirectional, arrays: list) -> L.BidirectionalParams:
    nf = sum(1 for _, s in RNN_KIND.weight_shapes(layer.forward_layer, (None, 1)) if s is not None)
    return L.BidirectionalParams(
        RNN_KIND.params(layer.forward_layer, arrays[:nf]), RNN_KIND.params(layer.backward_layer, arrays[nf:])
    )


def _bidirectional_arrays(layer: L.Bidirectional, entry: Any, at: str) -> list:
    if not isinstance(entry, (tuple, list)) or len(entry) != 2:
        raise ValueError(f"{at} (Bidirectional) needs BidirectionalParams(forward, backward); got {kind_str(entry)}.")
    return [("forward." + n, a) for n, a in RNN_KIND.arrays(layer.forward_layer, entry[0], at + ".forward")] + [
        ("backward." + n, a) for n, a in RNN_KIND.arrays(layer.backward_layer, entry[1], at + ".backward")
    ]


def _bidirectional_read(ctx: Context, source: Any, layer: L.Bidirectional, entry: dict, expected: list) -> list:
    name, config = entry_name(entry), entry["config"]
    fwd_expected = [(f, s) for f, s in expected if f.startswith("forward.")]
    arrays = RNN_KIND.read(
        ctx, Scoped(source, name, "forward_layer"), layer.forward_layer, config["layer"], fwd_expected
    )
    n_fwd = len(arrays)
    back = config.get("backward_layer") or config["layer"]
    bwd_expected = [(f, s) for f, s in expected if f.startswith("backward.")]
    arrays += RNN_KIND.read(ctx, Scoped(source, name, "backward_layer"), layer.backward_layer, back, bwd_expected)
    n_want_fwd = sum(1 for _, s in fwd_expected if s is not None)
    if n_fwd != n_want_fwd:
        raise ctx.error(
            f"{where(name, 'Bidirectional')}: the forward layer has {n_fwd} weights; expected {n_want_fwd}."
        )
    return arrays


def _bidirectional_exportable(layer: L.Bidirectional, at: str) -> None:
    RNN_KIND.exportable(layer.forward_layer, at + ".forward_layer")
    RNN_KIND.exportable(layer.backward_layer, at + ".backward_layer")


def _bidirectional_to_keras(keras: Any, layer: L.Bidirectional, dtype: str, at: str) -> Any:
    fwd = RNN_KIND.to_keras(keras, layer.forward_layer, dtype, at + ".forward_layer")
    bwd = RNN_KIND.to_keras(keras, layer.backward_layer, dtype, at + ".backward_layer")
    return keras.layers.Bidirectional(fwd, merge_mode=layer.merge_mode, backward_layer=bwd, dtype=dtype)


def _bidirectional_outputs(layer: L.Bidirectional) -> int:
    n = 1 if layer.merge_mode is not None else 2
    if layer.return_state:
        n += len(layer.forward_layer.cell.state_type._fields) + len(layer.backward_layer.cell.state_type._fields)
    return n


BIDIRECTIONAL = LayerKind(
    keras_class="Bidirectional",
    rnncore_types=(L.Bidirectional,),
    h5_group="bidirectional",
    from_config=_bidirectional_from_config,
    weight_shapes=_bidirectional_shapes,
    params=_bidirectional_params,
    arrays=_bidirectional_arrays,
    to_keras=_bidirectional_to_keras,
    exportable=_bidirectional_exportable,
    read=_bidirectional_read,
    sequences=True,
    first_weights=lambda source, entry: RNN_KIND.first_weights(
        Scoped(source, entry_name(entry), "forward_layer"), entry["config"]["layer"]
    ),
    output_count=_bidirectional_outputs,
)


# --- Dense ------------------------------------------------------------------------------------------------------

_DENSE_ARGS = ("units", "activation", "use_bias", "kernel_initializer", "bias_initializer")


def _dense_from_config(ctx: Context, entry: dict, at: str) -> L.Dense:
    kwargs = parse_args(ctx, entry.get("config"), at, _DENSE_ARGS, elementwise=False)
    if kwargs.get("activation") == "linear":
        kwargs["activation"] = None
    if "units" not in kwargs:
        raise ctx.error(f"{at}: config has no units.")
    return construct(ctx, at, L.Dense, **kwargs)


def _dense_to_keras(keras: Any, layer: L.Dense, dtype: str, at: str) -> Any:
    kwargs = {}
    for arg in ("kernel_initializer", "bias_initializer"):
        init = keras_initializer(keras, getattr(layer, arg), at, arg)
        if init is not None:
            kwargs[arg] = init
    activation = keras_activation(layer.activation, at, "activation")
    return keras.layers.Dense(layer.units, activation=activation, use_bias=layer.use_bias, dtype=dtype, **kwargs)


DENSE = LayerKind(
    keras_class="Dense",
    rnncore_types=(L.Dense,),
    h5_group="dense",
    from_config=_dense_from_config,
    weight_shapes=lambda layer, input_shape: [
        ("kernel", (input_shape[-1], layer.units)),
        ("bias", (layer.units,) if layer.use_bias else None),
    ],
    params=lambda layer, arrays: L.DenseParams(arrays[0], arrays[1] if layer.use_bias else None),
    arrays=fields_of(("kernel", "bias")),
    to_keras=_dense_to_keras,
)


# --- Dropout, Masking -------------------------------------------------------------------------------------------


DROPOUT = weightless(
    "Dropout",
    L.Dropout,
    "dropout",
    ("rate", "noise_shape"),
    lambda keras, layer, dtype, at: keras.layers.Dropout(layer.rate, noise_shape=layer.noise_shape, dtype=dtype),
)
MASKING = weightless(
    "Masking",
    L.Masking,
    "masking",
    ("mask_value",),
    lambda keras, layer, dtype, at: keras.layers.Masking(mask_value=layer.mask_value, dtype=dtype),
)


# --- the table ---------------------------------------------------------------------------------------------------

KINDS: dict = {
    kind.keras_class: kind
    for kind in (
        _recurrent_kind("SimpleRNN", L.SimpleRNN, "simple_rnn"),
        _recurrent_kind("LSTM", L.LSTM, "lstm"),
        _recurrent_kind("GRU", L.GRU, "gru"),
        RNN_KIND,
        BIDIRECTIONAL,
        DENSE,
        DROPOUT,
        MASKING,
        EMBEDDING,
        LAYER_NORMALIZATION,
        BATCH_NORMALIZATION,
        ACTIVATION,
        REPEAT_VECTOR,
        FLATTEN,
        RESHAPE,
        PERMUTE,
        time_distributed_kind(Table(lambda: KINDS, lambda layer, at: for_layer(layer, at))),
        SPATIAL_DROPOUT_1D,
        GAUSSIAN_NOISE,
        GAUSSIAN_DROPOUT,
        CONV1D,
        *POOLING_KINDS,
        *MERGE_KINDS,
    )
}

_BY_RNNCORE_TYPE = {t: kind for kind in KINDS.values() for t in kind.rnncore_types}


def supported_list() -> str:
    """The supported Keras layer classes as messages list them."""
    return f"{', '.join(KINDS)} (and InputLayer)"


def h5_group(cls: Optional[str]) -> Optional[str]:
    """The ``model.weights.h5`` group name Keras gives a layer class (before numbering), if known."""
    if cls == "InputLayer":
        return "input_layer"
    kind = KINDS.get(cls) if isinstance(cls, str) else None
    return kind.h5_group if kind else None


def kind_of_entry(cls: Any) -> Optional[LayerKind]:
    """The kind of a Keras layer class name, or None."""
    return KINDS.get(cls) if isinstance(cls, str) else None


def for_layer(layer: Any, at: str) -> LayerKind:
    """The kind of an rnncore layer Keras can represent; a ``ValueError`` naming ``at`` otherwise."""
    kind = _BY_RNNCORE_TYPE.get(type(layer))
    if kind is None and isinstance(layer, L.Bidirectional):
        kind = BIDIRECTIONAL
    if kind is None:
        if isinstance(layer, L.RNN):
            recurrent.keras_cell_type(layer, at)
        raise ValueError(f"{at} ({type(layer).__name__}) has no Keras counterpart in rnncore.keras.")
    kind.exportable(layer, at)
    return kind
