r"""PyTorch's recurrent weights in Keras's layout, and back (NumPy only).

PyTorch's ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` layer k (direction ``_reverse`` for the backward
one) holds ``weight_ih_l{k} (G·u, F)``, ``weight_hh_l{k} (G·u, u)``, ``bias_ih_l{k} (G·u,)`` and
``bias_hh_l{k} (G·u,)`` (no biases with ``bias=False``), column-vector layout:
:math:`W_{ih} x + b_{ih} + W_{hh} h + b_{hh}`. Keras's (and rnncore's) are row vectors:
:math:`x K + h R + b` with ``kernel (F, G·u)``, ``recurrent_kernel (u, G·u)``. So

* ``kernel = W_ih[blocks]ᵀ``, ``recurrent_kernel = W_hh[blocks]ᵀ``, the gate blocks reordered:
  LSTM is ``i, f, g, o`` in both (g is Keras's c); GRU is ``r, z, n`` in PyTorch and ``z, r, h``
  in Keras, so Keras's blocks are PyTorch's ``(1, 0, 2)``;
* Elman RNN and LSTM: both biases only ever appear summed, so Keras's one bias is
  ``b_ih + b_hh`` (back: ``b_ih = b``, ``b_hh = 0``);
* GRU: PyTorch's ``n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))`` is Keras's ``reset_after=True``
  form, whose bias ``(2, 3u)`` is ``[b_ih; b_hh]``, each reordered.

For *gradients* (``gradients=True``) a summed bias takes ``b_ih``'s alone: :math:`\partial L/\partial b
= \partial L/\partial b_{ih} = \partial L/\partial b_{hh}`.

>>> import numpy as np
>>> w = {"weight_ih_l0": np.arange(6.0).reshape(3, 2), "weight_hh_l0": np.zeros((3, 1)),
...      "bias_ih_l0": np.array([1.0, 2, 3]), "bias_hh_l0": np.array([10.0, 20, 30])}
>>> kernel, recurrent_kernel, bias = direction_arrays("GRU", w, "_l0", use_bias=True)
>>> kernel.tolist(), bias.tolist()   # z, r, h: PyTorch's rows 1, 0, 2
([[2.0, 0.0, 4.0], [3.0, 1.0, 5.0]], [[2.0, 1.0, 3.0], [20.0, 10.0, 30.0]])
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["GATES", "KERAS_BLOCKS", "suffix", "tensor_names", "direction_arrays", "direction_tensors"]

GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}
# Keras's gate block j is PyTorch's block KERAS_BLOCKS[mode][j] (each a permutation that is its own inverse)
KERAS_BLOCKS = {"RNN": (0,), "LSTM": (0, 1, 2, 3), "GRU": (1, 0, 2)}


def suffix(layer: int, reverse: bool) -> str:
    """The name suffix of PyTorch layer ``layer``'s weights: ``_l0``, ``_l1_reverse``."""
    return f"_l{layer}" + ("_reverse" if reverse else "")


def tensor_names(use_bias: bool, end: str) -> list:
    """The state_dict names of one direction of one layer (``end`` from :func:`suffix`)."""
    names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if use_bias else [])
    return [n + end for n in names]


def _reorder(a: np.ndarray, mode: str) -> np.ndarray:
    """Gate blocks (rows, PyTorch layout) from one framework's order to the other's."""
    blocks = np.split(np.asarray(a), GATES[mode], axis=0)
    return np.concatenate([blocks[j] for j in KERAS_BLOCKS[mode]], axis=0)


def direction_arrays(mode: str, tensors: Any, end: str, use_bias: bool, gradients: bool = False) -> tuple:
    """``(kernel, recurrent_kernel, bias or None)`` in Keras's layout from PyTorch's named arrays."""
    kernel = _reorder(tensors["weight_ih" + end], mode).T
    recurrent_kernel = _reorder(tensors["weight_hh" + end], mode).T
    if not use_bias:
        return kernel, recurrent_kernel, None
    b_ih, b_hh = _reorder(tensors["bias_ih" + end], mode), _reorder(tensors["bias_hh" + end], mode)
    if mode == "GRU":
        bias = np.stack([b_ih, b_hh])
    else:
        bias = b_ih if gradients else b_ih + b_hh
    return kernel, recurrent_kernel, bias


def direction_tensors(mode: str, params: Any, end: str) -> dict:
    """PyTorch's named arrays of one direction from Keras-layout cell params (the inverse of
    :func:`direction_arrays`; a summed bias goes to ``b_ih``, with ``b_hh = 0``)."""
    kernel, recurrent_kernel = np.asarray(params[0]), np.asarray(params[1])
    bias = None if params[2] is None else np.asarray(params[2])
    out = {"weight_ih" + end: _reorder(kernel.T, mode), "weight_hh" + end: _reorder(recurrent_kernel.T, mode)}
    if bias is not None:
        if mode == "GRU":
            out["bias_ih" + end], out["bias_hh" + end] = _reorder(bias[0], mode), _reorder(bias[1], mode)
        else:
            out["bias_ih" + end], out["bias_hh" + end] = _reorder(bias, mode), np.zeros_like(bias)
    return out
