"""PyTorch as the oracle: random asymmetric weights, a model written in PyTorch, its forward and
autograd gradients, and rnncore's forward and ``jax.grad`` (through its explicit BPTT) to compare."""

import jax
import jax.numpy as jnp
import numpy as np
import torch
from conftest import max_rel_err
from torch import nn

from rnncore.interop.torch import from_torch, torch_gradients

RECURRENT = {"RNN": nn.RNN, "LSTM": nn.LSTM, "GRU": nn.GRU}


def randomize(module: nn.Module, seed: int, scale: float = 0.5, uniform: bool = False) -> nn.Module:
    """Every parameter drawn afresh from N(0, scale²), or U(-scale, scale) with ``uniform`` (PyTorch's
    own draw for scale = 1/√hidden_size): each gate block and bias different."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if uniform:
                p.copy_((torch.rand(p.shape, generator=g, dtype=p.dtype) * 2 - 1) * scale)
            else:
                p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
    return module


class Head(nn.Module):
    """``[emb ->] rnn -> what the spec's output says -> [norm ->] fc``, written in PyTorch."""

    def __init__(self, rnn, fc, output, emb=None, norm=None):
        super().__init__()
        if emb is not None:
            self.emb = emb
        self.rnn, self.fc, self.output = rnn, fc, output
        if norm is not None:
            self.norm = norm

    def forward(self, x):
        if hasattr(self, "emb"):
            x = self.emb(x)
        out, h = self.rnn(x)
        if self.output == "sequence":
            z = out
        elif self.output == "last":
            z = out[:, -1] if self.rnn.batch_first else out[-1]
        else:
            h_n = h[0] if isinstance(self.rnn, nn.LSTM) else h
            z = torch.cat((h_n[-2], h_n[-1]), dim=1) if self.rnn.bidirectional else h_n[-1]
        if hasattr(self, "norm"):
            z = self.norm(z)
        return self.fc(z)


def head_arch(module: Head) -> list:
    """The description of a :class:`Head` (sizes left to the weights)."""
    rnn = module.rnn
    spec = {"type": type(rnn).__name__, "name": "rnn", "batch_first": rnn.batch_first, "output": module.output}
    spec["dropout"] = rnn.dropout
    if isinstance(rnn, nn.RNN):
        spec["nonlinearity"] = rnn.nonlinearity
    arch = [spec, {"type": "Linear", "name": "fc"}]
    if hasattr(module, "norm"):
        norm = module.norm
        arch.insert(1, {"type": "LayerNorm", "name": "norm", "eps": norm.eps})
    if hasattr(module, "emb"):
        arch.insert(0, {"type": "Embedding", "name": "emb", "padding_idx": module.emb.padding_idx})
    return arch


def torch_run(module: nn.Module, x: np.ndarray) -> tuple:
    """``(y, dL/dx or None, {name: dL/dparam})`` for L = Σ sin(y), by torch.autograd (eval mode)."""
    module.eval()
    module.zero_grad()
    xt = torch.from_numpy(x)
    if xt.is_floating_point():
        xt.requires_grad_(True)
    y = module(xt)
    torch.sin(y).sum().backward()
    grads = {n: (p.grad if p.grad is not None else torch.zeros_like(p)) for n, p in module.named_parameters()}
    return y.detach().numpy(), (xt.grad.numpy() if xt.grad is not None else None), grads


def rnncore_run(model, params, x: np.ndarray) -> tuple:
    """``(y, dL/dx or None, dL/dparams)`` for L = Σ sin(y), by jax.grad through rnncore's BPTT."""
    floating = np.issubdtype(x.dtype, np.floating)

    def loss(p, xx):
        return jnp.sum(jnp.sin(model.apply(p, xx)))

    y = model.apply(params, x)
    if floating:
        gp, gx = jax.jit(jax.grad(loss, argnums=(0, 1)))(params, x)
    else:
        gp, gx = jax.jit(jax.grad(loss))(params, x), None
    return np.asarray(y), gx, gp


def errors(module: nn.Module, x: np.ndarray, time_major: bool = False, arch=None) -> dict:
    """Largest relative errors of rnncore against PyTorch: ``outputs``, ``inputs`` (gradient),
    ``params`` (gradients of every weight). ``x`` is PyTorch's input (``(T, B, ...)`` when
    ``time_major``); rnncore gets it batch-first."""
    model, params = from_torch(module, arch=arch)
    y_t, gx_t, grads_t = torch_run(module, x)
    x_rc = np.swapaxes(x, 0, 1) if time_major else x
    y, gx, gp = rnncore_run(model, params, np.ascontiguousarray(x_rc))
    if time_major and y.ndim == 3:
        y = np.swapaxes(y, 0, 1)
    out = {"outputs": max_rel_err(y, y_t)}
    if gx_t is not None:
        out["inputs"] = max_rel_err(np.swapaxes(gx, 0, 1) if time_major else gx, gx_t)
    for name, g in grads_t.items():  # the two biases that add up get the same gradient
        owner = module.get_submodule(name.rsplit(".", 1)[0] if "." in name else "")
        if "bias_hh" in name and not isinstance(owner, nn.GRU):
            pair = max_rel_err(g.numpy(), grads_t[name.replace("bias_hh", "bias_ih")].numpy())
            out["bias_ih vs bias_hh"] = max(out.get("bias_ih vs bias_hh", 0.0), pair)
    expected = torch_gradients(module, grads_t, arch=arch)
    pairs = zip(jax.tree_util.tree_leaves(gp), jax.tree_util.tree_leaves(expected))
    out["params"] = max(max_rel_err(a, b) for a, b in pairs)
    return out
