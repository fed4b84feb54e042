"""``.keras`` files, read without Keras: a zip of ``config.json`` and ``model.weights.h5``.

Reading uses :mod:`zipfile`, :mod:`json` and :mod:`h5py` alone, so a file never runs code: what
it names is only checked against the layer kinds rnncore knows (see :mod:`~rnncore.interop.keras.config`). Each member
is read with a size limit (``config.json`` :data:`MAX_CONFIG_BYTES`, ``model.weights.h5``
:data:`MAX_WEIGHTS_BYTES`), the declared size first and the bytes actually read second, so a zip
bomb is refused before it is inflated. Missing, truncated, corrupted and non-zip files (a legacy
``.h5`` model among them) are refused naming the file and what is wrong.

In ``model.weights.h5`` a layer's weights are ``layers/<snake class name>[_k]/[forward_layer/]
[cell/]vars/<i>``, numbered per class in the order of the model's layers (:class:`FileWeights`).

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "m.keras")
>>> _ = open(path, "wb").write(b"not a zip")
>>> read_model(path, lambda ctx, entry, open_weights: None)
Traceback (most recent call last):
...
ValueError: '...m.keras': is not a readable .keras file: not a zip archive, or a truncated or corrupted one (...).
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
import zlib
from typing import Any, Callable, Optional

import numpy as np

from .config import entry_name
from .context import Context, where
from .layer_kinds import h5_group, kind_of_entry

__all__ = ["MAX_CONFIG_BYTES", "MAX_WEIGHTS_BYTES", "read_member", "h5py_module", "FileWeights", "read_model"]

MAX_CONFIG_BYTES = 64 << 20
MAX_WEIGHTS_BYTES = 8 << 30


def h5py_module() -> Any:
    """:mod:`h5py`, imported on first use."""
    try:
        import h5py
    except ImportError as e:  # pragma: no cover - h5py is a dependency
        raise ImportError("reading a .keras file needs h5py (pip install h5py).") from e
    return h5py


def read_member(ctx: Context, zf: zipfile.ZipFile, name: str, limit: int) -> bytes:
    """The bytes of one zip member, refused if it declares or holds more than ``limit``."""
    info = zf.getinfo(name)
    if info.file_size > limit:
        raise ctx.error(f"{name} declares {info.file_size} bytes, more than the {limit} allowed.")
    try:
        with zf.open(name) as f:
            data = f.read(limit + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError, RuntimeError) as e:
        raise ctx.error(f"is corrupted: {name} cannot be read ({e}).") from None
    if len(data) > limit:
        raise ctx.error(f"{name} is larger than the {limit} bytes allowed.")
    return data


class FileWeights:
    """Weights in a ``model.weights.h5``: ``layers/<snake class name>[_k]/[forward_layer/][cell/]vars/<i>``,
    numbered per class in the order of the model's layers (``container``: their config entries)."""

    def __init__(self, ctx: Context, h5: Any, container: list):
        self.ctx, self.h5, self.groups = ctx, h5, {}
        counts: dict = {}
        for entry in container:
            cls = entry.get("class_name")
            base = h5_group(cls) or re.sub(r"(?<!^)(?=[A-Z][a-z])", "_", cls or "").lower()
            k = counts.get(base, -1) + 1
            counts[base] = k
            self.groups[entry_name(entry)] = "layers/" + (base if k == 0 else f"{base}_{k}")
        self._trust_recorded_names(h5)

    def _trust_recorded_names(self, h5: Any) -> None:
        """Keras also records each layer's name on its vars group; trust it where present."""
        group_type = h5py_module().Group
        layers_group = h5.get("layers")
        if not isinstance(layers_group, group_type):
            return
        for key in layers_group:
            vars_group = layers_group[key].get("vars") if isinstance(layers_group[key], group_type) else None
            name = vars_group.attrs.get("name") if vars_group is not None else None
            if isinstance(name, bytes):
                name = name.decode()
            if isinstance(name, str) and name in self.groups:
                self.groups[name] = f"layers/{key}"

    def get(self, name: str, cls: str, part: Optional[str] = None) -> list:
        """The weight arrays of layer ``name`` (class ``cls``; ``part``: ``forward_layer``/``backward_layer``)."""
        kind = kind_of_entry(cls)
        path = self.groups[name] + (f"/{part}" if part else "")
        path += "/cell/vars" if kind is not None and kind.weights_under_cell else "/vars"
        try:
            return self._read(path, name, cls)
        except (KeyError, OSError, RuntimeError, TypeError) as e:
            raise self.ctx.error(f"model.weights.h5 is damaged: {path!r} cannot be read ({e}).") from None

    def _read(self, path: str, name: str, cls: str) -> list:
        h5py = h5py_module()
        group = self.h5.get(path)
        if not isinstance(group, h5py.Group):
            kind = kind_of_entry(cls)
            if kind is not None and not kind.has_weights:
                return []
            raise self.ctx.error(f"model.weights.h5 has no weights for {where(name, cls)} (expected group {path!r}).")
        keys = list(group.keys())
        if not all(k.isdigit() for k in keys):
            raise self.ctx.error(f"model.weights.h5 group {path!r} has unexpected entries {keys}.")
        out = []
        for k in sorted(keys, key=int):
            ds = group[k]
            if not isinstance(ds, h5py.Dataset) or ds.dtype.kind != "f" or ds.attrs.get("dtype") == "bfloat16":
                raise self.ctx.error(f"model.weights.h5 entry {path}/{k} is not a float32/float64 array.")
            out.append(np.asarray(ds[()]))
        return out


def _open_zip(ctx: Context, path: str) -> zipfile.ZipFile:
    if not os.path.exists(path):
        raise ctx.error("no such file (expected a .keras file saved by model.save).")
    if not os.path.isfile(path):
        raise ctx.error("is not a file (expected a .keras zip file saved by model.save).")
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as e:
        try:
            with open(path, "rb") as f:
                head = f.read(8)
        except OSError:
            head = b""
        if head.startswith(b"\x89HDF"):
            raise ctx.error(
                "is an HDF5 file (a legacy .h5 model or bare weights), not a .keras zip archive; "
                "re-save it with model.save('model.keras')."
            ) from None
        raise ctx.error(
            f"is not a readable .keras file: not a zip archive, or a truncated or corrupted one ({e})."
        ) from None


def _weights_opener(ctx: Context, zf: zipfile.ZipFile, names: set, opened: list) -> Callable[[list], FileWeights]:
    def open_weights(container: list) -> FileWeights:
        if "model.weights.h5" not in names:
            other = [n for n in names if "weights" in n]
            hint = f" (it has {other}; only model.weights.h5 is supported)" if other else ""
            raise ctx.error(f"is missing model.weights.h5{hint}.")
        data = read_member(ctx, zf, "model.weights.h5", MAX_WEIGHTS_BYTES)
        h5py = h5py_module()
        try:
            h5 = h5py.File(io.BytesIO(data), "r")
        except (OSError, ValueError) as e:
            raise ctx.error(f"model.weights.h5 is not a readable HDF5 file ({e}).") from None
        opened.append(h5)
        return FileWeights(ctx, h5, container)

    return open_weights


def read_model(path: str, assemble: Callable[[Context, Any, Callable[[list], Any]], Any]) -> Any:
    """``assemble(ctx, model_entry, open_weights)`` on the config of the ``.keras`` file at ``path``;
    ``open_weights(container)`` gives its :class:`FileWeights` (read only when asked for)."""
    ctx = Context(f"{path!r}")
    with _open_zip(ctx, path) as zf:
        names = set(zf.namelist())
        if "config.json" not in names:
            raise ctx.error(f"is missing config.json (found {sorted(names)[:10]}); not a .keras file.")
        config_bytes = read_member(ctx, zf, "config.json", MAX_CONFIG_BYTES)
        try:
            model_entry = json.loads(config_bytes.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            raise ctx.error(f"config.json is not valid JSON ({e}).") from None
        opened: list = []
        try:
            return assemble(ctx, model_entry, _weights_opener(ctx, zf, names, opened))
        finally:
            for h5 in opened:
                h5.close()
