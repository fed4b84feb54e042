"""A state_dict against a description: each spec's weights found, its sizes read off them, every
name accounted for, the feature sizes chained from module to module, one floating dtype.

``weights`` maps names to arrays (NumPy, or anything ``np.asarray`` reads: tensors are converted
by the caller). Nothing is left over: a weight no spec claims is refused (a description that
leaves out a module would otherwise compute something else silently).

>>> import numpy as np
>>> from rnncore.interop.torch.arch import read_arch
>>> sd = {"fc.weight": np.zeros((2, 5), "float32"), "fc.bias": np.zeros(2, "float32")}
>>> specs, per_spec = assign(read_arch([{"type": "Linear", "name": "fc"}]), sd)
>>> specs[0]["in_features"], sorted(per_spec[0])
(5, ['bias', 'weight'])
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .arch import at_of
from .module_kind import complete, prefixed
from .module_kinds import kind_named

__all__ = ["assign", "output_features"]


def _own(weights: dict, name: str) -> dict:
    if not name:
        return {k: v for k, v in weights.items() if "." not in k}
    head = name + "."
    return {k[len(head) :]: v for k, v in weights.items() if k.startswith(head)}


def output_features(spec: dict, features: Optional[int]) -> Optional[int]:
    """The features a complete spec gives, for ``features`` in (None: unknown)."""
    kind = spec["type"]
    if kind == "Embedding":
        return spec["embedding_dim"]
    if kind in ("RNN", "LSTM", "GRU"):
        return spec["hidden_size"] * (2 if spec["bidirectional"] else 1)
    if kind == "Linear":
        return spec["out_features"]
    return features


_INPUT_ARG = {
    "RNN": "input_size",
    "LSTM": "input_size",
    "GRU": "input_size",
    "Linear": "in_features",
    "LayerNorm": "normalized_shape",
}


def _input_features(spec: dict) -> Optional[int]:
    arg = _INPUT_ARG.get(spec["type"])
    return spec.get(arg) if arg else None


def _check_dtypes(weights: dict) -> None:
    dtypes: dict = {}
    for key, a in weights.items():
        dtype = np.asarray(a).dtype
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"weight {key!r} has dtype {dtype}; expected float32 or float64.")
        dtypes.setdefault(dtype, key)
    if len(dtypes) > 1:
        (d1, k1), (d2, k2) = list(dtypes.items())[:2]
        raise ValueError(f"weights mix dtypes: {k1!r} is {d1}, {k2!r} is {d2}; expected one dtype.")


def assign(specs: list, weights: dict) -> tuple:
    """``(complete specs, per-spec weights)``: each spec's weights (names without its prefix)."""
    _check_dtypes(weights)
    claimed: set = set()
    out_specs, out_weights = [], []
    features: Optional[int] = None
    for i, spec in enumerate(specs):
        at = at_of(i, spec)
        kind = kind_named(spec["type"], at)
        own = _own(weights, spec["name"])
        takes_arg = _INPUT_ARG.get(spec["type"])
        if takes_arg and spec.get(takes_arg) is None and features is not None:
            spec = dict(spec, **{takes_arg: features})  # the features the module before gives
        spec = complete(kind, kind.infer(spec, own, at), at)
        expected = kind.tensor_shapes(spec)
        missing = [prefixed(spec["name"], n) for n in expected if n not in own]
        extra = [prefixed(spec["name"], n) for n in own if n not in expected]
        if missing or extra:
            what = "is missing " + ", ".join(missing) if missing else "has unexpected " + ", ".join(extra)
            raise ValueError(f"{at} ({spec['type']} {spec['name']!r}): the state_dict {what}.")
        for n, shape in expected.items():
            if tuple(np.shape(own[n])) != shape:
                raise ValueError(
                    f"{at} ({spec['type']} {spec['name']!r}): {prefixed(spec['name'], n)} has shape "
                    f"{tuple(np.shape(own[n]))}; expected {shape}."
                )
        claimed |= {prefixed(spec["name"], n) for n in expected}
        takes = _input_features(spec)
        if takes is not None and features is not None and takes != features:
            raise ValueError(
                f"{at} ({spec['type']} {spec['name']!r}) takes {takes} features; the module before it gives {features}."
            )
        features = output_features(spec, features)
        out_specs.append(spec)
        out_weights.append({n: np.asarray(own[n]) for n in expected})
    left = [k for k in weights if k not in claimed]
    if left:
        shown = ", ".join(left[:6]) + (", ..." if len(left) > 6 else "")
        raise ValueError(f"the state_dict has weights no spec of the description claims: {shown}.")
    return out_specs, out_weights
