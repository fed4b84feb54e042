"""State_dict files, read without running anything in them: ``.pt``/``.pth`` and ``.safetensors``.

* ``.pt`` / ``.pth`` (``torch.save(model.state_dict(), path)``) are read with
  ``torch.load(path, map_location="cpu", weights_only=True)``: PyTorch's restricted unpickler, which
  builds tensors and plain containers and refuses every other object *before* creating it, so a
  pickle's ``__reduce__`` never runs. What it gives must then be a flat mapping of names to tensors
  (a checkpoint dict holding other things, such as an epoch count or optimizer state, is refused:
  save the model's ``state_dict()`` alone).
* ``.safetensors`` are read with :func:`safetensors.numpy.load_file` (a JSON header and raw
  bytes; no PyTorch needed), imported on first use.

Arrays come back as NumPy arrays by name; only float32/float64 weights are taken (see
:mod:`~rnncore.interop.torch.weights`).

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "m.onnx")
>>> read_state_dict(path)
Traceback (most recent call last):
...
ValueError: '...m.onnx': no such file (expected a state_dict saved as .pt, .pth or .safetensors).
"""

from __future__ import annotations

import os
import pickle
import zipfile
from typing import Any

import numpy as np

__all__ = ["SUFFIXES", "is_state_dict_file", "read_state_dict"]

SUFFIXES = (".pt", ".pth", ".safetensors")


def is_state_dict_file(path: Any) -> bool:
    """Whether ``path`` names a file this module reads (by its suffix)."""
    return isinstance(path, (str, os.PathLike)) and os.fspath(path).lower().endswith(SUFFIXES)


def _read_pickled(path: str) -> Any:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(
            f"{path!r}: holds objects other than tensors, which are not loaded (nothing in the file was run): {first}"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, AttributeError, TypeError) as e:
        raise ValueError(f"{path!r}: is not a readable PyTorch file ({type(e).__name__}: {e}).") from None


def _flat_tensors(path: str, obj: Any) -> dict:
    import torch

    if not isinstance(obj, dict):
        raise ValueError(
            f"{path!r}: holds a {type(obj).__name__}; expected a state_dict (a mapping of names to tensors, "
            "saved by torch.save(model.state_dict(), path))."
        )
    out = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise ValueError(
                f"{path!r}: entry {key!r} is a {type(value).__name__}, not a tensor; expected a state_dict alone "
                "(save model.state_dict(), not a checkpoint dict)."
            )
        out[key] = value.detach().cpu().numpy()
    return out


def _read_safetensors(path: str) -> dict:
    try:
        from safetensors.numpy import load_file
    except ImportError as e:  # pragma: no cover - safetensors is in the test extras
        raise ImportError("reading a .safetensors file needs safetensors (pip install safetensors).") from e
    try:
        return {k: np.asarray(v) for k, v in load_file(path).items()}
    except (OSError, ValueError, TypeError) as e:
        raise ValueError(f"{path!r}: is not a readable .safetensors file ({e}).") from None
    except Exception as e:  # safetensors_rust.SafetensorError derives from Exception only
        if type(e).__name__ != "SafetensorError":
            raise
        raise ValueError(f"{path!r}: is not a readable .safetensors file ({e}).") from None


def read_state_dict(path: Any) -> dict:
    """The arrays of a state_dict file, by name (see the module docstring)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"{path!r}: no such file (expected a state_dict saved as .pt, .pth or .safetensors).")
    if path.lower().endswith(".safetensors"):
        return _read_safetensors(path)
    if path.lower().endswith((".pt", ".pth")):
        return _flat_tensors(path, _read_pickled(path))
    raise ValueError(f"{path!r}: unknown file type; expected a state_dict saved as .pt, .pth or .safetensors.")
