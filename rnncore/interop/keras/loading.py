"""``from_keras``: a Keras model config (live or from a file) and its weights -> an rnncore model.

The steps, each in its own function: the model's chain of layer entries (a ``Sequential``'s list,
or a functional model's one chain, :mod:`~rnncore.interop.keras.graph`); one rnncore layer per entry through its
:mod:`~rnncore.interop.keras.layer_kinds` entry; the input shape the model declares (or its first kernel tells); then
each layer's params, read and shape-checked (:mod:`~rnncore.interop.keras.weights`), each layer's output shape its
``compute_output_shape``.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Optional

from ...models import Sequential
from . import files
from .config import check_dtype, check_origin, check_trainable, entry_name, input_shape
from .context import Context, where
from .functional import graph_model, graph_params
from .graph import functional_chain, is_op, triples
from .layer_kinds import KINDS, supported_list
from .weights import LiveWeights, first_input_shape, read_params

__all__ = ["from_keras", "assemble"]


def _layer_from_config(ctx: Context, entry: Any) -> Any:
    """A Keras layer config entry -> an rnncore layer (no weights yet)."""
    name = entry_name(entry)
    cls = check_origin(ctx, entry, f"layer {name!r}")
    at = where(name, cls)
    if cls not in KINDS:
        raise ctx.error(f"{at} is not supported by rnncore.from_keras; supported layers: {supported_list()}.")
    return KINDS[cls].from_config(ctx, entry, at)


def _sequential_parts(ctx: Context, entries: list) -> tuple:
    input_entry, chain = None, list(entries)
    if chain and isinstance(chain[0], dict) and chain[0].get("class_name") == "InputLayer":
        input_entry = chain.pop(0)
    for e in chain:
        if isinstance(e, dict) and e.get("class_name") == "InputLayer":
            raise ctx.error(f"{where(entry_name(e), 'InputLayer')} in the middle of a Sequential.")
    return input_entry, chain, chain, None


def _functional_parts(ctx: Context, config: dict, entries: list) -> Optional[tuple]:
    """The parts of a functional model that is one chain (a ``Sequential``), or None for any other graph."""
    for e in entries:  # refuse unknown or custom classes before judging the graph's shape
        if isinstance(e, dict) and not is_op(e):
            check_origin(ctx, e, f"layer {entry_name(e)!r}")
    try:
        input_entry, chain = functional_chain(ctx, config)
    except ValueError:
        return None
    n_outputs = len(triples(config.get("output_layers")))
    return input_entry, chain, [e for e in entries if not is_op(e)], n_outputs


def _model_parts(ctx: Context, model_entry: Any) -> tuple:
    """``(config, input_entry, chain, container, n_outputs)``: the layer entries to convert, those
    whose weights the file holds, and how many outputs a functional model takes (else None);
    ``(config, None, None, container, None)`` for a functional graph that is not one chain."""
    cls = check_origin(ctx, model_entry, "model")
    config = model_entry.get("config")
    if not isinstance(config, dict):
        raise ctx.error("the model config is malformed (no config).")
    at = f"model {config.get('name', '?')!r} ({cls})"
    check_dtype(ctx, config.get("dtype"), at)
    check_trainable(ctx, config.get("trainable"), at)
    entries = config.get("layers")
    if not isinstance(entries, list):
        raise ctx.error(f"{at}: config has no layer list.")
    parts: Optional[tuple]
    if cls == "Sequential":
        parts = _sequential_parts(ctx, entries)
    elif cls in ("Functional", "Model") and "input_layers" in config:
        parts = _functional_parts(ctx, config, entries)
        if parts is None:
            return config, None, None, [e for e in entries if isinstance(e, dict) and not is_op(e)], None
    else:
        raise ctx.error(f"{at} is not supported; expected a Sequential or a functional model (a single chain).")
    if not parts[1]:
        raise ctx.error(f"{at} has no layers.")
    return (config, *parts)


def _outputs_all_of_last(ctx: Context, chain: list, n_outputs: int) -> bool:
    return KINDS[chain[-1].get("class_name")].output_count(_layer_from_config(ctx, chain[-1])) == n_outputs


def _model(ctx: Context, chain: list, n_outputs: Optional[int]) -> Sequential:
    rc_layers = [_layer_from_config(ctx, e) for e in chain]
    last = KINDS[chain[-1].get("class_name")].output_count(rc_layers[-1])
    if n_outputs is not None and n_outputs != last:
        raise ctx.error(
            f"the model outputs {n_outputs} of the {last} outputs of its last layer "
            f"{where(entry_name(chain[-1]), chain[-1].get('class_name'))}; only all of them are supported."
        )
    try:
        return Sequential(rc_layers)
    except ValueError as e:
        raise ctx.error(str(e)) from None


def _declared_shape(ctx: Context, config: dict, input_entry: Optional[dict]) -> Optional[tuple]:
    shape = input_shape(ctx, input_entry) if input_entry is not None else None
    if shape is None:
        built = config.get("build_input_shape")
        if isinstance(built, (list, tuple)) and len(built) >= 2 and isinstance(built[-1], int):
            shape = tuple(built[1:])
    return shape


def _params(ctx: Context, source: Any, model: Sequential, chain: list, shape: Optional[tuple]) -> tuple:
    params = []
    for layer, entry in zip(model.layers, chain):
        kind = KINDS[entry.get("class_name")]
        if shape is None and kind.has_weights:
            shape = first_input_shape(ctx, source, kind, layer, entry)
        if shape is None:
            params.append(())
            continue
        if kind.sequences and len(shape) != 2:
            raise ctx.error(
                f"{where(entry_name(entry), entry.get('class_name'))} receives inputs of shape (batch, "
                f"{', '.join(str(d) for d in shape)}); a recurrent layer needs (batch, time, features)."
            )
        params.append(read_params(ctx, source, kind, layer, entry, shape))
        shape = tuple(layer.compute_output_shape(shape))
    return tuple(params)


def _to_jax(tree: Any) -> Any:
    import jax
    import jax.numpy as jnp

    return jax.tree_util.tree_map(jnp.asarray, tree)


def assemble(ctx: Context, model_entry: Any, open_weights: Callable[[list], Any]) -> tuple:
    """A Keras model config (and a callable giving its weights) -> ``(model, params)``."""
    try:
        config, input_entry, chain, container, n_outputs = _model_parts(ctx, model_entry)
        if chain is not None and n_outputs is not None and not _outputs_all_of_last(ctx, chain, n_outputs):
            chain = None  # a chain whose model returns only some of its last layer's arrays is a graph
        if chain is None:
            graph, entries, shapes = graph_model(ctx, config)
            return graph, _to_jax(graph_params(ctx, open_weights(container), graph, entries, shapes))
        model = _model(ctx, chain, n_outputs)
        shape = _declared_shape(ctx, config, input_entry)
        params = _params(ctx, open_weights(container), model, chain, shape)
    except (KeyError, TypeError, AttributeError, IndexError) as e:
        raise ctx.error(f"the model config is malformed ({type(e).__name__}: {e}).") from None
    return model, _to_jax(params)


def _from_live(model: Any) -> tuple:
    import keras

    ctx = Context(f"keras model {getattr(model, 'name', '?')!r}")
    if not isinstance(model, keras.Model):
        kind = "layer" if isinstance(model, keras.layers.Layer) else "object"
        raise ValueError(
            f"from_keras expects a keras.Model (Sequential or a functional chain) or a path to a .keras file; "
            f"got the Keras {kind} {type(model).__name__} {getattr(model, 'name', '')!r}."
        )
    if type(model).__name__ not in ("Sequential", "Functional") or not type(model).__module__.startswith("keras."):
        raise ctx.error(
            f"{type(model).__name__} is a subclassed model; only Sequential and functional chain models are supported."
        )
    for layer in model.layers:
        if not type(layer).__module__.startswith("keras."):
            raise ctx.error(
                f"{where(layer.name, type(layer).__name__)} is a custom layer (module {type(layer).__module__!r}); "
                f"supported layers: {supported_list()}."
            )
    if not model.built:
        raise ctx.error("the model is not built; give it an Input or call it once.")
    try:
        config = model.get_config()
    except Exception as e:  # noqa: BLE001 - a Keras failure becomes a clear refusal
        raise ctx.error(f"cannot read the model's config ({type(e).__name__}: {e}).") from None
    entry = {
        "module": "keras",
        "class_name": "Sequential" if type(model).__name__ == "Sequential" else "Functional",
        "config": config,
        "registered_name": None,
    }
    live = LiveWeights(model)
    return assemble(ctx, entry, lambda container: live)


def from_keras(keras_model_or_path: Any) -> tuple:
    """An rnncore model and params equal to a Keras model.

    Args:
        keras_model_or_path: a live ``keras.Model`` (``Sequential``, or a functional model that is
            one chain ``Input -> layer -> ... -> layer``), or the path of a ``.keras`` file saved
            by ``model.save``. A file is read without Keras (zip + JSON + HDF5) and nothing in it
            is executed.

    Returns:
        ``(model, params)``: an :class:`~rnncore.models.Sequential` and a tuple with one entry per
        layer (``InputLayer`` skipped): a cell params NamedTuple for a recurrent layer, e.g.
        ``LSTMParams(kernel (F, 4u), recurrent_kernel (u, 4u), bias (4u,) or None)``;
        ``BidirectionalParams(forward, backward)``; ``DenseParams(kernel, bias)``; ``()`` for
        ``Masking`` and ``Dropout``. ``model.apply(params, x)`` equals ``keras_model(x)``.

    Raises:
        ValueError: naming the layer (name and class), the argument and its value, for anything
            rnncore does not represent (unknown layer classes, ``Lambda``, custom objects,
            regularizers, constraints, unknown activations, dtype policies other than
            float32/float64, non-chain graphs); naming the file and what is wrong for a missing,
            corrupted, truncated or non-zip file, a missing ``config.json`` or
            ``model.weights.h5``, or weights whose shapes do not match the config.

    Example:
        >>> import numpy as np, keras, rnncore as rc
        >>> km = keras.Sequential([keras.Input((5, 2)), keras.layers.GRU(3, use_cudnn=False)])
        >>> model, params = rc.from_keras(km)
        >>> type(model.layers[0]).__name__, [w.shape for w in params[0]]
        ('GRU', [(2, 9), (3, 9), (2, 9)])
        >>> x = np.ones((1, 5, 2), "float32")
        >>> bool(np.allclose(model.apply(params, x), km(x), atol=1e-6))
        True
    """
    if isinstance(keras_model_or_path, (str, bytes, os.PathLike)):
        if isinstance(keras_model_or_path, bytes):
            keras_model_or_path = os.fsdecode(keras_model_or_path)
        return files.read_model(os.fspath(keras_model_or_path), assemble)
    if type(keras_model_or_path).__module__.split(".")[0] != "keras":
        raise ValueError(
            f"from_keras expects a keras.Model or a path to a .keras file; got {type(keras_model_or_path).__name__}."
        )
    return _from_live(keras_model_or_path)
