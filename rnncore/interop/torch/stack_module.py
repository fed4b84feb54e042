"""The PyTorch module :func:`~rnncore.interop.torch.to_torch` returns: a description's modules run in order.

``Stack(arch, modules)`` is an ``nn.Module`` whose children are ``modules`` under the specs'
names (so its state_dict keys are ``<name>.<weight>``) and whose ``forward`` passes its input
through them, taking of each recurrent module what its spec's ``output`` says (``output``,
``output[:, -1]`` (``output[-1]`` time-major) or ``h_n[-1]``, concatenated over both directions
when bidirectional). ``arch`` is kept on the module, so :func:`~rnncore.interop.torch.from_torch`
reads it back without reading any code. The class is made on first use (PyTorch is imported only
then) and is the same class afterwards.
"""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["stack_class", "select_output"]


def select_output(torch: Any, spec: dict, output: Any, h: Any) -> Any:
    """What a recurrent module's caller takes of ``(output, h)``, as the spec's ``output`` says."""
    if spec["output"] == "sequence":
        return output
    if spec["output"] == "last":
        return output[:, -1] if spec["batch_first"] else output[-1]
    h_n = h[0] if spec["type"] == "LSTM" else h
    return torch.cat((h_n[-2], h_n[-1]), dim=-1) if spec["bidirectional"] else h_n[-1]


@functools.lru_cache(maxsize=None)
def stack_class() -> type:
    """The ``Stack`` module class (made once, when first asked for)."""
    import torch
    from torch import nn

    class Stack(nn.Module):
        """A chain of ``torch.nn`` modules described by ``arch`` (see :mod:`rnncore.interop.torch.arch`)."""

        def __init__(self, arch: list, modules: list):
            super().__init__()
            self.arch = [dict(spec) for spec in arch]
            for spec, module in zip(self.arch, modules):
                self.add_module(spec["name"], module)

        def forward(self, x):
            for spec in self.arch:
                module = getattr(self, spec["name"])
                if spec["type"] in ("RNN", "LSTM", "GRU"):
                    x = select_output(torch, spec, *module(x))
                else:
                    x = module(x)
            return x

    Stack.__module__ = __name__
    return Stack
