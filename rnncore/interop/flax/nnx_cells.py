r"""One entry per flax nnx cell: its rnncore cell, and its parameters both ways.

nnx's cells hold ``nnx.Linear`` s (``x @ kernel (+ bias)``, row vectors like Keras's); rnncore
keeps Keras's fused layout (``kernel (F, G·u)``, ``recurrent_kernel (u, G·u)``, ``bias``):

* ``SimpleCell``: :math:`h' = \varphi(x W_i + b_i + h W_h)` -> ``cells.SimpleRNN``:
  ``kernel = dense_i.kernel``, ``recurrent_kernel = dense_h.kernel``, ``bias = dense_i.bias``.
  ``residual=True`` adds :math:`h` inside :math:`\varphi`; rnncore has no such cell, and it is refused.
* ``LSTMCell``: eight Linears, input ``ii, if_, ig, io`` without bias, recurrent ``hi, hf, hg, ho``
  with one; gates ``i, f, g, o`` = Keras's ``[i, f, c, o]`` -> ``cells.LSTM``: ``kernel =
  [ii|if_|ig|io]``, ``recurrent_kernel = [hi|hf|hg|ho]``, ``bias = [b_hi|b_hf|b_hg|b_ho]``.
* ``OptimizedLSTMCell``: ``dense_i (F, 4u)`` without bias, ``dense_h (u, 4u)`` with one, split
  ``i, f, g, o``: already Keras's fused layout and order.
* ``GRUCell``: ``dense_i (F, 3u)`` with bias and ``dense_h (u, 3u)`` without, split ``r, z, n``:
  :math:`r, z = \rho(x W_{i\cdot} + b_{i\cdot} + h W_{h\cdot})`,
  :math:`n = \varphi(x W_{in} + b_{in} + r \odot h W_{hn})`, :math:`h' = (1 - z) n + z h`: Keras's
  ``reset_after=True`` GRU with blocks ``[z, r, h]`` and a zero recurrent bias. Back to nnx, Keras's
  recurrent ``z``, ``r`` biases fold into the input ones; a non-zero recurrent ``h`` bias
  (:math:`b_{hn}`, inside :math:`r \odot (\cdot)`) has no place in nnx's GRUCell and is refused
  (flax linen's ``nn.GRUCell`` has it).

``gate_fn`` is the recurrent activation, ``activation_fn`` the activation (:mod:`~rnncore.interop.flax.activations`);
``carry_init`` must be None or give zeros; ``dtype`` None or the params' dtype; ``promote_dtype`` flax's own.

>>> sorted(NNX_CELLS)
['GRUCell', 'LSTMCell', 'OptimizedLSTMCell', 'SimpleCell']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import jax.numpy as jnp
import numpy as np

from ... import cells
from .activations import activation_name, flax_function
from .cells import for_rnncore_cell
from .fields import check_dtype, check_zero_init
from .nnx_fields import check_settings, linear_params, set_param

__all__ = ["NnxCellKind", "NNX_CELLS", "cell_to_nnx", "supported_list"]

_CELL_SETTINGS = ("in_features", "hidden_features", "gate_fn", "activation_fn", "dtype", "carry_init")


@dataclass(frozen=True)
class NnxCellKind:
    """What the converter knows about one nnx cell class: ``to_rnncore(cell, at) -> (rnncore cell,
    cell params)`` reads the cell's settings and params."""

    nnx_class: str
    to_rnncore: Callable[[Any, str], tuple]


def _check_cell(cell: Any, at: str, dtype: Any, extra: tuple = ()) -> None:
    check_settings(cell, at, _CELL_SETTINGS + extra)
    check_dtype(cell, at, dtype)
    if cell.carry_init is not None:
        check_zero_init(cell, at, "carry_init")


def _functions(cell: Any, at: str) -> dict:
    return {
        "activation": activation_name(cell.activation_fn, at, "activation_fn"),
        "recurrent_activation": activation_name(cell.gate_fn, at, "gate_fn"),
    }


def _simple_in(cell: Any, at: str) -> tuple:
    f, u = cell.in_features, cell.hidden_features
    kernel, bias = linear_params(cell.dense_i, f"{at}.dense_i", True, (f, u))
    recurrent, _ = linear_params(cell.dense_h, f"{at}.dense_h", False, (u, u))
    _check_cell(cell, at, kernel.dtype, ("residual",))
    if cell.residual:
        raise ValueError(f"{at}: residual=True has no rnncore equivalent; expected residual=False.")
    rc = cells.SimpleRNN(u, activation=activation_name(cell.activation_fn, at, "activation_fn"))
    return rc, cells.SimpleRNNParams(kernel, recurrent, bias)


_LSTM_GATES = ("i", "f", "g", "o")  # nnx's names, in Keras's order [i, f, c, o]


def _lstm_in(cell: Any, at: str) -> tuple:
    f, u = cell.in_features, cell.hidden_features
    ks, rs, bs = [], [], []
    for g in _LSTM_GATES:
        name = "i" + g + ("_" if g == "f" else "")  # nnx calls the input forget Linear `if_`
        ks.append(linear_params(getattr(cell, name), f"{at}.{name}", False, (f, u))[0])
        r, b = linear_params(getattr(cell, "h" + g), f"{at}.h{g}", True, (u, u))
        rs.append(r)
        bs.append(b)
    kernel = jnp.concatenate(ks, axis=-1)
    _check_cell(cell, at, kernel.dtype)
    params = cells.LSTMParams(kernel, jnp.concatenate(rs, axis=-1), jnp.concatenate(bs, axis=-1))
    return cells.LSTM(u, **_functions(cell, at)), params


def _optimized_lstm_in(cell: Any, at: str) -> tuple:
    f, u = cell.in_features, cell.hidden_features
    kernel, _ = linear_params(cell.dense_i, f"{at}.dense_i", False, (f, 4 * u))
    recurrent, bias = linear_params(cell.dense_h, f"{at}.dense_h", True, (u, 4 * u))
    _check_cell(cell, at, kernel.dtype)
    return cells.LSTM(u, **_functions(cell, at)), cells.LSTMParams(kernel, recurrent, bias)


def _rz_swap(a: Any) -> Any:
    """nnx's GRU blocks ``[r, z, n]`` <-> Keras's ``[z, r, h]`` (the same swap both ways)."""
    r, z, n = jnp.split(a, 3, axis=-1)
    return jnp.concatenate([z, r, n], axis=-1)


def _gru_in(cell: Any, at: str) -> tuple:
    f, u = cell.in_features, cell.hidden_features
    kernel, bias = linear_params(cell.dense_i, f"{at}.dense_i", True, (f, 3 * u))
    recurrent, _ = linear_params(cell.dense_h, f"{at}.dense_h", False, (u, 3 * u))
    _check_cell(cell, at, kernel.dtype)
    rc = cells.GRU(u, reset_after=True, **_functions(cell, at))
    biases = jnp.stack([_rz_swap(bias), jnp.zeros_like(bias)])
    return rc, cells.GRUParams(_rz_swap(kernel), _rz_swap(recurrent), biases)


NNX_CELLS: dict = {
    "SimpleCell": NnxCellKind("SimpleCell", _simple_in),
    "LSTMCell": NnxCellKind("LSTMCell", _lstm_in),
    "OptimizedLSTMCell": NnxCellKind("OptimizedLSTMCell", _optimized_lstm_in),
    "GRUCell": NnxCellKind("GRUCell", _gru_in),
}
"""flax nnx cell class name -> :class:`NnxCellKind`."""


def supported_list() -> str:
    """The supported nnx cells as messages list them."""
    return ", ".join(f"nnx.{name}" for name in NNX_CELLS)


# --- rnncore -> nnx ---------------------------------------------------------------------------------


def _zero_recurrent_h_bias(b_hn: Any, at: str) -> None:
    try:
        values = np.asarray(b_hn)
    except Exception as error:  # a tracer: the values cannot be read
        raise ValueError(
            f"{at}: to_flax(api='nnx') reads a GRU's recurrent h bias to check that it is zero (nnx's GRUCell has "
            "none); expected concrete params, not traced ones."
        ) from error
    if values.any():
        raise ValueError(
            f"{at}: the GRU's recurrent h bias (bias[1][2*units:], inside r * (h @ W_hn + b_hn)) is non-zero "
            f"(largest |b_hn| = {float(np.abs(values).max()):.3g}); flax nnx's GRUCell has no such bias, so this GRU "
            "has no nnx counterpart. Expected a zero recurrent h bias; flax linen's nn.GRUCell has it: "
            "rc.to_flax(model, params) (api='linen')."
        )


def cell_to_nnx(cell: Any, p: Any, at: str) -> Any:
    """The nnx cell (holding the params ``p``) equal to an rnncore cell: ``nnx.SimpleCell``,
    ``nnx.LSTMCell`` or ``nnx.GRUCell``."""
    from flax import nnx

    for_rnncore_cell(cell, at)  # refuses what no flax cell has (use_bias=False, dropout, reset_after=False, ...)
    dtype = jnp.asarray(p.kernel).dtype
    f, u = int(jnp.shape(p.kernel)[0]), cell.units
    common: dict[str, Any] = {"param_dtype": dtype, "rngs": nnx.Rngs(0)}
    activation = flax_function(cell.activation, at, "activation")
    if isinstance(cell, cells.SimpleRNN):
        out: Any = nnx.SimpleCell(f, u, activation_fn=activation, dtype=dtype, **common)
        set_param(out.dense_i, "kernel", p.kernel)
        set_param(out.dense_i, "bias", p.bias)
        set_param(out.dense_h, "kernel", p.recurrent_kernel)
        return out
    gate = flax_function(cell.recurrent_activation, at, "recurrent_activation")
    if isinstance(cell, cells.LSTM):
        out = nnx.LSTMCell(f, u, gate_fn=gate, activation_fn=activation, **common)
        ks, rs, bs = (jnp.split(jnp.asarray(a), 4, axis=-1) for a in (p.kernel, p.recurrent_kernel, p.bias))
        for g, k, r, b in zip(_LSTM_GATES, ks, rs, bs):
            set_param(getattr(out, "i" + g + ("_" if g == "f" else "")), "kernel", k)
            set_param(getattr(out, "h" + g), "kernel", r)
            set_param(getattr(out, "h" + g), "bias", b)
        return out
    input_bias, recurrent_bias = jnp.asarray(p.bias)[0], jnp.asarray(p.bias)[1]
    _zero_recurrent_h_bias(recurrent_bias[2 * u :], at)
    out = nnx.GRUCell(f, u, gate_fn=gate, activation_fn=activation, **common)
    folded = input_bias.at[: 2 * u].add(recurrent_bias[: 2 * u])  # Keras's recurrent z, r biases only add to these
    set_param(out.dense_i, "kernel", _rz_swap(p.kernel))
    set_param(out.dense_i, "bias", _rz_swap(folded))
    set_param(out.dense_h, "kernel", _rz_swap(p.recurrent_kernel))
    return out
