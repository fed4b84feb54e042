"""``from_torch``: a PyTorch model (live, a state_dict, or a file) -> an rnncore model and its params.

The steps: a description (:mod:`.arch`) and the weights, from the source (:mod:`.live` for a
module, :mod:`~rnncore.interop.torch.files` for a file); each spec completed from its weights
(:mod:`~rnncore.interop.torch.weights`); then each spec's rnncore layers and params through its
:mod:`~rnncore.interop.torch.module_kinds` entry.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ...models import Sequential
from . import files
from .arch import read_arch
from .live import describe, numpy_weights
from .module_kinds import KINDS
from .weights import assign

__all__ = ["from_torch", "assemble", "torch_gradients"]


def _is_torch_module(obj: Any) -> bool:
    return any(c.__module__.startswith("torch.nn") and c.__name__ == "Module" for c in type(obj).__mro__)


def assemble(specs: list, weights: dict, gradients: bool = False) -> tuple:
    """``(model, params)`` from checked specs and their state_dict (``gradients``: see :func:`torch_gradients`)."""
    import jax
    import jax.numpy as jnp

    specs, per_spec = assign(specs, weights)
    layers, params = [], []
    for spec, own in zip(specs, per_spec):
        kind = KINDS[spec["type"]]
        layers += kind.layers(spec)
        params += kind.params(spec, own, gradients)
    return Sequential(layers), jax.tree_util.tree_map(jnp.asarray, tuple(params))


def _source(source: Any, arch: Any) -> tuple:
    """``(specs, weights)`` of any accepted source."""
    if isinstance(source, (str, bytes, os.PathLike)):
        path = os.fsdecode(source) if isinstance(source, bytes) else os.fspath(source)
        if arch is None:
            raise ValueError(
                f"{path!r}: a state_dict file holds weights, not what they compute; pass arch= (a list of layer "
                "specs, or the path of a JSON file holding one)."
            )
        weights = files.read_state_dict(path)
        return read_arch(arch), weights
    if _is_torch_module(source):
        return describe(source, arch)
    if isinstance(source, Mapping):
        if arch is None:
            raise ValueError("a state_dict holds weights, not what they compute; pass arch= (a list of layer specs).")
        return read_arch(arch), numpy_weights(source)
    raise ValueError(
        f"from_torch expects a torch.nn.Module, a state_dict or the path of a .pt/.pth/.safetensors file; got "
        f"{type(source).__name__}."
    )


def from_torch(source: Any, arch: Any = None) -> tuple:
    """An rnncore model equal to a PyTorch model.

    Args:
        source: a live ``torch.nn.Module`` (see :mod:`~rnncore.interop.torch.live` for which ones are read without
            ``arch``), a state_dict (a mapping of names to tensors or arrays), or the path of a
            state_dict file: ``.pt``/``.pth`` (``torch.save(model.state_dict(), path)``, read with
            ``weights_only=True``; nothing in it runs) or ``.safetensors``.
        arch: the description (:mod:`~rnncore.interop.torch.arch`): a list of layer specs, or the path of a JSON file
            holding one. Needed for a state_dict or a file, and for a module whose ``forward`` is
            not one of the recognised patterns (:mod:`~rnncore.interop.torch.forward_patterns`).

    Returns:
        ``(model, params)``: an :class:`~rnncore.models.Sequential` and its params, in the weights'
        dtype. The model takes ``(batch, time, features)`` inputs (``(batch, time)`` integers after an
        ``Embedding``) whatever the PyTorch modules' ``batch_first``: feed it
        ``x_torch.transpose(0, 1)`` for a time-major model; its sequence outputs are batch-first too.

    Raises:
        ValueError: for modules or settings rnncore does not represent (``proj_size > 0``, an unknown
            module class, a ``forward`` that is not recognised), a description that does not match
            the weights, and files that are missing, unreadable or hold anything but tensors.

    Example:
        >>> import torch, numpy as np, rnncore as rc
        >>> lstm = torch.nn.LSTM(3, 4, batch_first=True)
        >>> model, params = rc.from_torch(lstm)
        >>> x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype("float32")
        >>> bool(np.allclose(model.apply(params, x), lstm(torch.from_numpy(x))[0].detach(), atol=1e-6))
        True
    """
    specs, weights = _source(source, arch)
    return assemble(specs, weights)


def torch_gradients(source: Any, grads: Any, arch: Any = None) -> tuple:
    """Gradients in PyTorch's layout (a state_dict of them, e.g. ``{n: p.grad for n, p in
    module.named_parameters()}``) as an rnncore params tree of ``from_torch(source, arch)``'s model:
    transposed and reordered as the weights are, but where two biases add up into one, its gradient
    is ``b_ih``'s (equal to ``b_hh``'s) instead of their sum.
    """
    specs, _ = _source(source, arch)
    return assemble(specs, numpy_weights(grads), gradients=True)[1]
