r"""The parity table of ``rnncore check-torch``: rnncore against PyTorch on fixed and random models.

Every model is one PyTorch recurrent module (``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU``: depth,
directions, layout, bias, nonlinearity and what is taken of it drawn at random) followed by an
``nn.Linear(·, 2)``, with random, asymmetric weights drawn as PyTorch initializes them,
:math:`\mathcal U(-1/\sqrt{u}, 1/\sqrt{u})` (every gate block and bias different), in a
:func:`~.stack_module.stack_class` module, converted by :func:`~.loading.from_torch`. Each row
gives the largest relative error :math:`\max|a-b|/\max(1, \max|b|)` of the outputs and of the
gradients of :math:`\sum \sin(y)` with respect to the inputs and every weight (PyTorch's autograd
against ``jax.grad`` through rnncore's explicit BPTT). PyTorch is imported only when a table is
computed.

>>> [kind for kind, _, _ in _fixed_cases()]
['RNN', 'RNN', 'LSTM', 'LSTM', 'GRU', 'GRU']
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from ..errors import relative_error
from .loading import from_torch, torch_gradients
from .module_kinds import KINDS
from .stack_module import stack_class

__all__ = ["parity_table", "LAYER_TYPES"]

LAYER_TYPES = ("RNN", "LSTM", "GRU")


def _spec(mode: str, **kw: Any) -> dict:
    spec = dict(type=mode, name="rnn", num_layers=1, bias=True, batch_first=True, bidirectional=False)
    spec.update(output="sequence", dropout=0.0)
    spec.update(kw)
    if mode == "RNN":
        spec.setdefault("nonlinearity", "tanh")
    return spec


def _fixed_cases() -> list:
    """``(layer type, description, spec)``: each kind twice, stacked and bidirectional among them."""
    return [
        ("RNN", "RNN tanh, every step", _spec("RNN")),
        (
            "RNN",
            "RNN relu, 2 layers, bidirectional, last step",
            _spec("RNN", nonlinearity="relu", num_layers=2, bidirectional=True, output="last"),
        ),
        ("LSTM", "LSTM 2 layers, last step", _spec("LSTM", num_layers=2, output="last", dropout=0.5)),
        (
            "LSTM",
            "LSTM bidirectional, time-major, h_n",
            _spec("LSTM", bidirectional=True, batch_first=False, output="final"),
        ),
        ("GRU", "GRU no bias, every step", _spec("GRU", bias=False)),
        (
            "GRU",
            "GRU 2 layers, bidirectional, last step",
            _spec("GRU", num_layers=2, bidirectional=True, output="last"),
        ),
    ]


def _random_case(kind: str, rng: np.random.Generator) -> tuple:
    kw: dict = dict(
        num_layers=int(rng.integers(1, 3)),
        bidirectional=bool(rng.integers(2)),
        batch_first=bool(rng.integers(2)),
        bias=bool(rng.integers(2)),
        output=str(rng.choice(["sequence", "last", "final"])),
    )
    if kind == "RNN":
        kw["nonlinearity"] = str(rng.choice(["tanh", "relu"]))
    desc = ", ".join(f"{k}={v}" for k, v in kw.items())
    return f"{kind}({desc})", _spec(kind, **kw)


def _module(torch: Any, spec: dict, features: int, units: int, seed: int) -> Any:
    spec = dict(spec, input_size=features, hidden_size=units)
    if spec["type"] == "LSTM":
        spec["proj_size"] = 0
    rnn = KINDS[spec["type"]].build(torch.nn, spec, torch.float32)
    fc = torch.nn.Linear(units * (2 if spec["bidirectional"] else 1), 2)
    module = stack_class()([spec, {"type": "Linear", "name": "fc"}], [rnn, fc])
    g, k = torch.Generator().manual_seed(seed), units**-0.5
    with torch.no_grad():
        for p in module.parameters():
            p.copy_((torch.rand(p.shape, generator=g) * 2 - 1) * k)
    return module.eval()


def _errors(torch: Any, module: Any, x: np.ndarray) -> tuple:
    """``(output error, gradient error)`` of rnncore against PyTorch for ``module`` on ``x`` (PyTorch's layout)."""
    import jax
    import jax.numpy as jnp

    model, params = from_torch(module)
    time_major = not module.arch[0]["batch_first"]
    module.zero_grad()
    xt = torch.tensor(x, requires_grad=True)
    y_t = module(xt)
    torch.sin(y_t).sum().backward()
    grads = {n: p.grad for n, p in module.named_parameters()}
    x_rc = np.ascontiguousarray(np.swapaxes(x, 0, 1) if time_major else x)

    def loss(p, xx):
        return jnp.sum(jnp.sin(model.apply(p, xx)))

    y = np.asarray(model.apply(params, x_rc))
    gp, gx = jax.jit(jax.grad(loss, argnums=(0, 1)))(params, x_rc)
    if time_major:
        gx = np.swapaxes(np.asarray(gx), 0, 1)
        y = np.swapaxes(y, 0, 1) if y.ndim == 3 else y
    expected = jax.tree_util.tree_leaves(torch_gradients(module, grads))
    errs = [relative_error(a, b) for a, b in zip(jax.tree_util.tree_leaves(gp), expected)]
    return relative_error(y, y_t.detach().numpy()), max(errs + [relative_error(gx, xt.grad.numpy())])


def parity_table(
    seed: int = 0,
    trials: int = 0,
    kinds: Optional[Sequence[str]] = None,
    batch: int = 4,
    steps: int = 12,
    features: int = 3,
    units: int = 5,
) -> list:
    r"""Rows ``(layer type, description, output_error, gradient_error)`` against PyTorch, float32.

    The fixed models first (two per kind, see :func:`_fixed_cases`), then ``trials`` random ones
    per layer type (``kinds``: a subset of :data:`LAYER_TYPES`); see the module docstring.
    """
    import torch

    rng = np.random.default_rng(seed)
    kinds = LAYER_TYPES if kinds is None else tuple(kinds)
    cases = [case for case in _fixed_cases() if case[0] in kinds]
    for _ in range(trials):
        for kind in kinds:
            cases.append((kind, *_random_case(kind, rng)))
    rows = []
    for i, (kind, desc, spec) in enumerate(cases):
        module = _module(torch, spec, features, units, seed * 1000 + i)
        shape = (batch, steps, features) if spec["batch_first"] else (steps, batch, features)
        x = rng.normal(size=shape).astype("float32")
        rows.append((kind, desc, *_errors(torch, module, x)))
    return rows
