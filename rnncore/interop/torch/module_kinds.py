"""One entry per PyTorch module kind: everything the converter knows about it, in one place.

=================  ======================================================  ========================================
``torch.nn``       rnncore layers                                          weights (PyTorch -> rnncore)
=================  ======================================================  ========================================
``RNN``            ``SimpleRNN(activation=nonlinearity)`` per layer         see ``recurrent.py`` (transposed,
``LSTM``           ``LSTM`` per layer                                       gate blocks reordered, RNN/LSTM
``GRU``            ``GRU(reset_after=True)`` per layer                      biases summed, GRU bias ``(2, 3u)``)
``Linear``         ``Dense(out_features, use_bias=bias)``                   ``kernel = weightᵀ``, ``bias``
``Dropout``        ``Dropout(p)``                                           none
``Embedding``      ``Embedding(num, dim, padding_idx=padding_idx)``         ``embeddings = weight``
``LayerNorm``      ``LayerNormalization(epsilon=eps)``, ``center = bias``    ``gamma = weight``, ``beta = bias``
                   and ``scale = elementwise_affine``
``ReLU``, ...      ``Activation(name)``                                     none
=================  ======================================================  ========================================

(recurrent modules: one layer per PyTorch layer, inside ``Bidirectional(merge_mode="concat")``
when bidirectional, ``Dropout(dropout)`` between layers; see :mod:`~rnncore.interop.torch.recurrent_kind`;
activation modules, one ``Activation`` each: see :mod:`~rnncore.interop.torch.activation_kinds`.)

:data:`KINDS` maps class names to kinds, in the order messages list them. Adding a PyTorch module
kind is adding one entry here (and, when it needs one, an rnncore layer in :mod:`rnncore.layers`).

>>> list(KINDS)[:8]
['RNN', 'LSTM', 'GRU', 'Linear', 'Dropout', 'Embedding', 'LayerNorm', 'Identity']
>>> [type(layer).__name__ for layer in KINDS["Linear"].layers({"in_features": 3, "out_features": 2, "bias": False})]
['Dense']
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ... import checks
from ... import layers as L
from .activation_kinds import ACTIVATION_KINDS
from .module_kind import NOT_GIVEN, Arg, ModuleKind
from .recurrent_kind import GRU, LSTM, RNN

__all__ = ["KINDS", "supported_list", "kind_named"]


def _array(a: Any) -> Any:
    """A weight as a NumPy array (params are converted to JAX arrays once, when assembled)."""
    return np.asarray(a)


def _sizes(spec: dict, seen: dict, at: str) -> dict:
    """``spec`` with the sizes ``seen`` on the weights, checked against those it gives."""
    out = dict(spec)
    for key, value in seen.items():
        given = spec.get(key)
        if given is not None and given != value:
            raise ValueError(f"{at} ({spec['type']}): {key}={given!r}, but its weights say {key}={value!r}.")
        out[key] = value
    return out


def _needs(weights: Any, key: str, spec: dict, at: str) -> tuple:
    if key not in weights:
        raise ValueError(f"{at} ({spec['type']}): no {key} among its weights ({', '.join(sorted(weights)) or 'none'}).")
    return tuple(np.shape(weights[key]))


# --- Linear -----------------------------------------------------------------------------------------------


def _linear_infer(spec: dict, weights: Any, at: str) -> dict:
    out_features, in_features = _needs(weights, "weight", spec, at)
    return _sizes(spec, dict(in_features=in_features, out_features=out_features, bias="bias" in weights), at)


LINEAR = ModuleKind(
    torch_class="Linear",
    args={
        "in_features": Arg(NOT_GIVEN, checks.positive_int),
        "out_features": Arg(NOT_GIVEN, checks.positive_int),
        "bias": Arg(True, checks.boolean),
    },
    layers=lambda spec: [L.Dense(spec["out_features"], use_bias=spec["bias"])],
    params=lambda spec, w, gradients: [
        L.DenseParams(_array(w["weight"]).T, _array(w["bias"]) if spec["bias"] else None)
    ],
    from_module=lambda m: dict(in_features=m.in_features, out_features=m.out_features, bias=m.bias is not None),
    tensor_shapes=lambda spec: {
        "weight": (spec["out_features"], spec["in_features"]),
        **({"bias": (spec["out_features"],)} if spec["bias"] else {}),
    },
    infer=_linear_infer,
    tensors=lambda spec, entries: {
        "weight": np.asarray(entries[0].kernel).T,
        **({"bias": np.asarray(entries[0].bias)} if spec["bias"] else {}),
    },
    build=lambda nn, spec, dtype: nn.Linear(spec["in_features"], spec["out_features"], bias=spec["bias"], dtype=dtype),
)


# --- Dropout ----------------------------------------------------------------------------------------------

DROPOUT = ModuleKind(
    torch_class="Dropout",
    args={"p": Arg(0.5, lambda n, v: checks.real(n, v, 0, 1))},
    layers=lambda spec: [L.Dropout(spec["p"])],
    params=lambda spec, w, gradients: [()],
    from_module=lambda m: dict(p=float(m.p)),
    tensors=lambda spec, entries: {},
    build=lambda nn, spec, dtype: nn.Dropout(spec["p"]),
)


# --- Embedding --------------------------------------------------------------------------------------------


def _embedding_from_module(m: Any) -> dict:
    for arg, inert in (("max_norm", None), ("scale_grad_by_freq", False)):
        if getattr(m, arg) != inert:
            raise ValueError(
                f"{arg}={getattr(m, arg)!r}; expected {inert!r} (it changes the embeddings or their gradient, "
                "which rnncore's Embedding does not)."
            )
    return dict(num_embeddings=m.num_embeddings, embedding_dim=m.embedding_dim, padding_idx=m.padding_idx)


def _embedding_refuse(spec: dict, at: str) -> None:
    k, n = spec["padding_idx"], spec["num_embeddings"]
    if k is not None and not -n <= k < n:
        raise ValueError(f"{at} (Embedding): padding_idx={k}; expected an integer in [{-n}, {n - 1}].")


def _embedding_layers(spec: dict) -> list:
    k = spec["padding_idx"]
    padding_idx = None if k is None else k % spec["num_embeddings"]  # PyTorch: -1 is the last row
    return [L.Embedding(spec["num_embeddings"], spec["embedding_dim"], padding_idx=padding_idx)]


def _embedding_infer(spec: dict, weights: Any, at: str) -> dict:
    num, dim = _needs(weights, "weight", spec, at)
    return _sizes(spec, dict(num_embeddings=num, embedding_dim=dim), at)


EMBEDDING = ModuleKind(
    torch_class="Embedding",
    args={
        "num_embeddings": Arg(NOT_GIVEN, checks.positive_int),
        "embedding_dim": Arg(NOT_GIVEN, checks.positive_int),
        "padding_idx": Arg(None, lambda n, v: checks.integer(n, v)),
    },
    layers=_embedding_layers,
    params=lambda spec, w, gradients: [L.EmbeddingParams(_array(w["weight"]))],
    from_module=_embedding_from_module,
    refuse=_embedding_refuse,
    tensor_shapes=lambda spec: {"weight": (spec["num_embeddings"], spec["embedding_dim"])},
    infer=_embedding_infer,
    tensors=lambda spec, entries: {"weight": np.asarray(entries[0].embeddings)},
    build=lambda nn, spec, dtype: nn.Embedding(
        spec["num_embeddings"], spec["embedding_dim"], padding_idx=spec["padding_idx"], dtype=dtype
    ),
)


# --- LayerNorm --------------------------------------------------------------------------------------------


def _layernorm_from_module(m: Any) -> dict:
    shape = tuple(m.normalized_shape)
    if len(shape) != 1:
        raise ValueError(
            f"normalized_shape={shape}; expected one size (normalization over the last axis, as rnncore's "
            "LayerNormalization(axis=-1))."
        )
    return dict(
        normalized_shape=shape[0],
        eps=float(m.eps),
        elementwise_affine=bool(m.elementwise_affine),
        bias=m.bias is not None if m.elementwise_affine else True,
    )


def _normalized_shape(name: str, value: Any) -> int:
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise ValueError(
                f"{name}={list(value)}; expected one size (normalization over the last axis, as rnncore's "
                "LayerNormalization(axis=-1))."
            )
        value = value[0]
    return checks.positive_int(name, value)


def _layernorm_layers(spec: dict) -> list:
    affine = spec["elementwise_affine"]
    return [L.LayerNormalization(epsilon=spec["eps"], center=affine and spec["bias"], scale=affine)]


def _layernorm_params(spec: dict, w: Any, gradients: bool) -> list:
    affine = spec["elementwise_affine"]
    gamma = _array(w["weight"]) if affine else None
    beta = _array(w["bias"]) if affine and spec["bias"] else None
    return [L.LayerNormalizationParams(gamma, beta)]


def _layernorm_shapes(spec: dict) -> dict:
    if not spec["elementwise_affine"]:
        return {}
    size = (spec["normalized_shape"],)
    return {"weight": size, "bias": size} if spec["bias"] else {"weight": size}


def _layernorm_infer(spec: dict, weights: Any, at: str) -> dict:
    if "weight" not in weights:
        if spec.get("normalized_shape") is None:
            raise ValueError(f"{at} (LayerNorm): without weights (elementwise_affine=False) it needs normalized_shape.")
        return _sizes(spec, dict(elementwise_affine=False), at)
    (size,) = np.shape(weights["weight"])
    return _sizes(spec, dict(normalized_shape=size, elementwise_affine=True, bias="bias" in weights), at)


def _layernorm_tensors(spec: dict, entries: list) -> dict:
    p = entries[0]
    out = {}
    if spec["elementwise_affine"]:
        out["weight"] = np.asarray(p.gamma)
        if spec["bias"]:
            out["bias"] = np.asarray(p.beta)
    return out


LAYERNORM = ModuleKind(
    torch_class="LayerNorm",
    args={
        "normalized_shape": Arg(NOT_GIVEN, _normalized_shape),
        "eps": Arg(1e-5, lambda n, v: checks.real(n, v, 0, None, low_open=True)),
        "elementwise_affine": Arg(True, checks.boolean),
        "bias": Arg(True, checks.boolean),
    },
    layers=_layernorm_layers,
    params=_layernorm_params,
    from_module=_layernorm_from_module,
    tensor_shapes=_layernorm_shapes,
    infer=_layernorm_infer,
    tensors=_layernorm_tensors,
    build=lambda nn, spec, dtype: nn.LayerNorm(
        spec["normalized_shape"],
        eps=spec["eps"],
        elementwise_affine=spec["elementwise_affine"],
        bias=spec["bias"],
        dtype=dtype,
    ),
)


# --- the table --------------------------------------------------------------------------------------------

KINDS: dict = {
    **{kind.torch_class: kind for kind in (RNN, LSTM, GRU, LINEAR, DROPOUT, EMBEDDING, LAYERNORM)},
    **ACTIVATION_KINDS,
}


def supported_list() -> str:
    """The supported ``torch.nn`` module classes as messages list them."""
    return ", ".join(f"nn.{name}" for name in KINDS)


def kind_named(name: Any, at: str) -> ModuleKind:
    """The kind of a spec's ``type``, or a ``ValueError`` naming ``at`` and listing the supported ones."""
    kind = KINDS.get(name) if isinstance(name, str) else None
    if kind is None:
        raise ValueError(f"{at}: type={name!r} is not supported; expected one of {', '.join(KINDS)}.")
    return kind
