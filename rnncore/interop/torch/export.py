"""``to_torch``: an rnncore model as a PyTorch module with the same weights.

Each rnncore layer becomes one ``torch.nn`` module (a recurrent layer an ``nn.RNN``/``nn.LSTM``/
``nn.GRU`` with ``num_layers=1``), described by a spec (:mod:`~rnncore.interop.torch.arch`) whose name is its position;
``LastStep`` after a recurrent layer is that module's ``output="last"``; a ``Dense`` with an activation
is ``nn.Linear`` then the activation's module (:mod:`~rnncore.interop.torch.activation_kinds`), and
``from_torch`` reads those back as ``Dense`` then ``Activation``. The modules sit in a
:func:`~.stack_module.stack_class` module, which keeps the description, and the weights go in
through ``load_state_dict(strict=True)``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import numpy as np

from ... import cells
from ... import layers as L
from ...models import Sequential
from .activation_kinds import exportable_activations, spec_of_activation
from .module_kinds import KINDS
from .stack_module import stack_class
from .weights import output_features

__all__ = ["to_torch", "describe_model", "EXPORTABLE"]

EXPORTABLE = (
    "SimpleRNN (tanh or relu), LSTM (tanh, sigmoid), GRU (reset_after=True, tanh, sigmoid), "
    "Bidirectional (concat) of one of them, LastStep, Dense, Dropout, Embedding, LayerNormalization (axis=-1), "
    "Activation; the activations " + exportable_activations()
)
_MODES = {cells.SimpleRNN: "RNN", cells.LSTM: "LSTM", cells.GRU: "GRU"}


def _refuse(at: str, layer: Any, what: str) -> ValueError:
    return ValueError(f"{at} ({type(layer).__name__}): {what}; PyTorch's modules represent {EXPORTABLE}.")


def _cell_mode(layer: Any, at: str) -> str:
    cell = getattr(layer, "cell", None)
    mode = _MODES.get(type(cell))
    if mode is None or type(layer) not in (L.RNN, L.SimpleRNN, L.LSTM, L.GRU):
        raise _refuse(at, layer, f"cell {type(cell).__name__} has no PyTorch module")
    wanted: dict = {"activation": ("tanh", "relu") if mode == "RNN" else ("tanh",)}
    if mode != "RNN":
        wanted["recurrent_activation"] = ("sigmoid",)
    if mode == "GRU":
        wanted["reset_after"] = (True,)
    wanted.update(dropout=(0.0, 0), recurrent_dropout=(0.0, 0), compute_dtype=(None,))
    for arg, ok in wanted.items():
        value = getattr(cell, arg)
        if not any(value is v or (type(value) is type(v) and value == v) for v in ok):
            raise _refuse(at, layer, f"{arg}={value!r}; expected {' or '.join(repr(v) for v in ok)}")
    for flag, inert in (
        ("go_backwards", False),
        ("return_state", False),
        ("stateful", False),
        ("truncate_gradient", None),
    ):
        if getattr(layer, flag) != inert:
            raise _refuse(at, layer, f"{flag}={getattr(layer, flag)!r}; expected {inert!r}")
    return mode


def _recurrent_spec(layer: Any, p: Any, at: str, batch_first: bool) -> dict:
    bidirectional = isinstance(layer, L.Bidirectional)
    fwd = layer.forward_layer if bidirectional else layer
    if bidirectional:
        if layer.merge_mode != "concat":
            raise _refuse(at, layer, f"merge_mode={layer.merge_mode!r}; expected 'concat'")
        if layer.backward_layer != dataclasses.replace(fwd, go_backwards=True):
            raise _refuse(at, layer, "its backward layer is not its forward layer run backwards")
        p = p.forward
    mode = _cell_mode(fwd, at)
    spec = dict(
        type=mode,
        input_size=int(np.shape(p.kernel)[0]),
        hidden_size=fwd.cell.units,
        num_layers=1,
        bias=fwd.cell.use_bias,
        batch_first=batch_first,
        dropout=0.0,
        bidirectional=bidirectional,
        output="sequence" if fwd.return_sequences else ("final" if bidirectional else "last"),
    )
    if mode == "RNN":
        spec["nonlinearity"] = fwd.cell.activation
    if mode == "LSTM":
        spec["proj_size"] = 0
    return spec


def _activation_spec(layer: Any, at: str) -> dict:
    spec = spec_of_activation(layer.activation)
    if spec is None:
        raise _refuse(at, layer, f"activation={layer.activation!r} has no PyTorch module")
    return spec


def _plain_specs(layer: Any, p: Any, at: str, features: Optional[int]) -> list:
    """The specs of a layer: one, or for a ``Dense`` with an activation, ``Linear`` and the activation's."""
    if type(layer).__name__ == "Dense":
        linear = dict(
            type="Linear", in_features=int(np.shape(p.kernel)[0]), out_features=layer.units, bias=layer.use_bias
        )
        activation = _activation_spec(layer, at)
        return [linear] if activation["type"] == "Identity" else [linear, activation]
    if type(layer).__name__ == "Activation":
        return [_activation_spec(layer, at)]
    return [_plain_spec(layer, p, at, features)]


def _plain_spec(layer: Any, p: Any, at: str, features: Optional[int]) -> dict:
    name = type(layer).__name__
    if name == "Dropout":
        if layer.noise_shape is not None:
            raise _refuse(at, layer, f"noise_shape={layer.noise_shape!r}; expected None")
        return dict(type="Dropout", p=float(layer.rate))
    if name == "Embedding":
        if layer.mask_zero:
            raise _refuse(at, layer, "mask_zero=True; expected False (PyTorch has no masks)")
        num, dim = np.shape(p.embeddings)
        return dict(type="Embedding", num_embeddings=int(num), embedding_dim=int(dim), padding_idx=layer.padding_idx)
    if name == "LayerNormalization":
        if layer.axis not in (-1, [-1], (-1,)) or layer.rms_scaling or (layer.center and not layer.scale):
            raise _refuse(at, layer, "expected axis=-1, rms_scaling=False, and center only with scale")
        size = int(np.shape(p.gamma)[0]) if p.gamma is not None else features
        if size is None:
            raise _refuse(at, layer, "its normalized size is unknown (no gamma and no layer before it tells)")
        return dict(
            type="LayerNorm",
            normalized_shape=size,
            eps=float(layer.epsilon),
            elementwise_affine=layer.scale,
            bias=layer.center,
        )
    raise _refuse(at, layer, "no PyTorch module")


def describe_model(model: Sequential, params: Any, batch_first: bool = True) -> tuple:
    """``(specs, entries)``: one spec per PyTorch module, and the rnncore params entries each covers."""
    if not isinstance(model, Sequential):
        raise ValueError(f"to_torch needs an rnncore Sequential; got {type(model).__name__}.")
    model.check_params(params)
    specs: list = []
    entries: list = []
    features: Optional[int] = None
    for i, (layer, p) in enumerate(zip(model.layers, params)):
        at = f"layers[{i}]"
        if isinstance(layer, L.LastStep):
            last = specs[-1] if specs else None
            if last is None or not KINDS[last["type"]].recurrent or last["output"] != "sequence":
                raise _refuse(at, layer, "it must follow a recurrent layer that returns sequences")
            last["output"] = "last"
            if last["bidirectional"]:
                entries[-1].append(())
            continue
        layer_specs = [_recurrent_spec(layer, p, at, batch_first)] if L.is_recurrent(layer) else None
        for k, spec in enumerate(layer_specs or _plain_specs(layer, p, at, features)):
            spec["name"] = str(len(specs))
            specs.append(spec)
            entries.append([p] if k == 0 else [])  # a Dense's activation holds no weights
            features = output_features(spec, features)
    return specs, entries


def to_torch(model: Sequential, params: Any, batch_first: bool = True) -> Any:
    """A PyTorch module computing what an rnncore model computes, with the same weights.

    Args:
        model: an rnncore :class:`~rnncore.models.Sequential` of layers PyTorch has (see
            :data:`EXPORTABLE`).
        params: its params (float32 or float64: the module gets that dtype).
        batch_first: the recurrent modules' ``batch_first``; with False the module takes ``(T, B, F)``.

    Returns:
        A ``Stack`` module (:mod:`.stack_module`): ``module(x)`` equals ``model.apply(params, x)``;
        ``module.state_dict()`` holds the weights (``"<i>.weight_ih_l0"``, ...), ``module.arch``
        the description, and ``from_torch(module)`` gives ``model`` and ``params`` back.

    Raises:
        ValueError: naming the layer and the setting PyTorch's modules do not have (masks, a
            ``go_backwards`` layer alone, activations other than PyTorch's, cell dropout, ...).

    Example:
        >>> import jax, numpy as np, torch, rnncore as rc
        >>> model = rc.Sequential([rc.layers.GRU(3, return_sequences=True), rc.layers.Dense(1)])
        >>> params = model.init(jax.random.PRNGKey(0), input_shape=(4, 2))
        >>> module = rc.to_torch(model, params)
        >>> x = np.ones((1, 4, 2), "float32")
        >>> bool(np.allclose(module(torch.from_numpy(x)).detach(), model.apply(params, x), atol=1e-6))
        True
    """
    import torch

    specs, entries = describe_model(model, params, batch_first)
    leaves = [a for a in _leaves(params) if a is not None]
    dtype = torch.float64 if leaves and np.asarray(leaves[0]).dtype == np.float64 else torch.float32
    modules, state = [], {}
    for spec, own in zip(specs, entries):
        kind = KINDS[spec["type"]]
        modules.append(kind.build(torch.nn, spec, dtype))
        for key, value in kind.tensors(spec, own).items():
            state[f"{spec['name']}.{key}"] = torch.tensor(np.array(value), dtype=dtype)
    module = stack_class()(specs, modules)
    module.load_state_dict(state, strict=True)
    return module.eval()


def _leaves(tree: Any) -> list:
    import jax

    return jax.tree_util.tree_leaves(tree)
