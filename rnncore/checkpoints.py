r"""Atomic training checkpoints: params, optimizer state, epoch and history in one ``.npz`` file.

:func:`save_checkpoint` writes to a temporary file beside the target and renames it over the target
(``os.replace``, atomic on POSIX and Windows), so a run killed mid-write leaves the previous
checkpoint intact. The file records the model's configuration (its ``repr``), and every array's
path, shape and dtype; :func:`load_checkpoint` refuses a file written for another model or with
params of other shapes, naming the first difference. Arrays are stored as plain NumPy arrays
(``allow_pickle=False`` on load).

Example:
    >>> import os, tempfile, jax
    >>> import rnncore as rc
    >>> model = rc.Sequential([rc.layers.GRU(3), rc.layers.Dense(1)])
    >>> params = model.init(jax.random.PRNGKey(0), input_shape=(None, 2))
    >>> path = os.path.join(tempfile.mkdtemp(), "run.npz")
    >>> rc.checkpoints.save_checkpoint(path, model, params, epoch=4)
    >>> ckpt = rc.checkpoints.load_checkpoint(path, model, params)
    >>> ckpt.epoch, bool((ckpt.params[0].kernel == params[0].kernel).all())
    (4, True)
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Checkpoint", "save_checkpoint", "load_checkpoint"]

_FORMAT = "rnncore-checkpoint-1"


class Checkpoint(NamedTuple):
    """What :func:`load_checkpoint` returns: ``params`` (the structure of the template),
    ``opt_state`` (None unless a template was given and the file holds one), ``epoch`` (the number of
    epochs completed), ``step`` (optimizer steps completed), ``history`` (dict of lists) and
    ``extra`` (the JSON-able dict passed to :func:`save_checkpoint`)."""

    params: Any
    opt_state: Any
    epoch: Optional[int]
    step: Optional[int]
    history: dict
    extra: dict


def _described(tree) -> list:
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return [(jax.tree_util.keystr(path), list(np.shape(leaf)), str(np.asarray(leaf).dtype)) for path, leaf in leaves]


def save_checkpoint(
    path,
    model,
    params,
    opt_state=None,
    *,
    epoch: Optional[int] = None,
    step: Optional[int] = None,
    history: Optional[dict] = None,
    extra: Optional[dict] = None,
) -> None:
    """Write params (and the optimizer state, epoch, step, history) of ``model`` to ``path``
    atomically. ``history`` and ``extra`` must be JSON-serializable."""
    path = os.fspath(path)
    params_leaves = [np.asarray(a) for a in jax.tree_util.tree_leaves(params)]
    opt_leaves = [] if opt_state is None else [np.asarray(a) for a in jax.tree_util.tree_leaves(opt_state)]
    meta = {
        "format": _FORMAT,
        "model": repr(model),
        "params": _described(params),
        "opt_state": None if opt_state is None else _described(opt_state),
        "epoch": epoch,
        "step": step,
        "history": history or {},
        "extra": extra or {},
    }
    arrays: dict[str, Any] = {f"p{i}": a for i, a in enumerate(params_leaves)}
    arrays.update({f"o{i}": a for i, a in enumerate(opt_leaves)})
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".checkpoint-", suffix=".npz", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _compare(kind: str, path: str, stored: list, expected: list) -> None:
    if len(stored) != len(expected):
        raise ValueError(
            f"checkpoint {path!r} holds {len(stored)} {kind} arrays; this model's {kind} have "
            f"{len(expected)}: it was written for another model or optimizer."
        )
    for (p1, s1, d1), (p2, s2, d2) in zip(stored, expected):
        if list(s1) != list(s2) or d1 != d2 or p1 != p2:
            raise ValueError(
                f"checkpoint {path!r}: {kind}{p1} is {d1}{s1} but this model's {kind}{p2} is "
                f"{d2}{s2}: it was written for another model or optimizer."
            )


def load_checkpoint(path, model, params, opt_state=None) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` for ``model``.

    ``params`` (and ``opt_state``, e.g. ``optimizer.init(params)``) are templates giving the
    structure; the file must match them and ``model`` exactly, else ``ValueError`` says what differs.
    """
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint {path!r} does not exist.") from None
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same message
        raise ValueError(f"checkpoint {path!r} is not a readable .npz file ({e}).") from None
    try:
        meta = json.loads(arrays.pop("meta").tobytes().decode())
        assert meta["format"] == _FORMAT
    except Exception:  # noqa: BLE001
        raise ValueError(f"checkpoint {path!r} was not written by rnncore.checkpoints.save_checkpoint.") from None
    if meta["model"] != repr(model):
        raise ValueError(
            f"checkpoint {path!r} was written for another model:\n  saved: {meta['model']}\n  this:  {model!r}"
        )
    _compare("params", path, meta["params"], _described(params))
    treedef = jax.tree_util.tree_structure(params)
    leaves = [jnp.asarray(arrays[f"p{i}"]) for i in range(len(meta["params"]))]
    restored_params = jax.tree_util.tree_unflatten(treedef, leaves)
    restored_opt = None
    if opt_state is not None and meta["opt_state"] is not None:
        _compare("opt_state", path, meta["opt_state"], _described(opt_state))
        leaves = [jnp.asarray(arrays[f"o{i}"]) for i in range(len(meta["opt_state"]))]
        restored_opt = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(opt_state), leaves)
    return Checkpoint(restored_params, restored_opt, meta["epoch"], meta["step"], meta["history"], meta["extra"])
