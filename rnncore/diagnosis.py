r"""What ``rnncore diagnose`` computes: how gradients travel back through every recurrent layer of a
model, one row of numbers per recurrent direction (a Bidirectional layer has two).

The probe is a projection of the model's (first) output at its last step,

.. math::

    L = \sum_b \langle y_{b,T},\, v_b \rangle, \qquad \lVert v_b \rVert_2 = 1,

with :math:`v_b` a random unit vector per batch row (:func:`output_directions`), so that
:math:`\lVert\partial L/\partial y_{b,T}\rVert = 1` for every row and the numbers below do not
depend on the scale of a loss. For each recurrent direction :func:`diagnose_model` reports

* :math:`\lVert\partial L/\partial s_{T-k}\rVert` at the chosen lags k (batch mean): the gradient
  the loss sends back k steps, the total derivative through every later step and every layer above
  (:func:`rnncore.analysis.gradient_flow`); lag k = T is the initial state :math:`s_0`
  (:func:`initial_state_gradient_norms`);
* the memory horizon and the verdict, both from the log lag spectrum
  :math:`\log\lVert\partial s_T/\partial s_{T-\ell}\rVert_2` (:func:`horizon_and_verdict`,
  the formulas of :func:`rnncore.analysis.memory_horizon` and :func:`rnncore.analysis.verdict`);
* the largest Lyapunov exponent :math:`\lambda_1` (:func:`rnncore.analysis.lyapunov_spectrum`,
  nats/step, batch mean, :math:`\lfloor T/10 \rfloor` warm-up steps);
* the fraction of saturated gate values (:func:`rnncore.analysis.gate_saturation`, per gate and
  pooled over the gates).

:func:`format_table` prints those rows; the per-layer results feed :func:`rnncore.plot.diagnose`.
Everything here is library code on the analysis floor: it imports the layers and analysis,
never Keras, matplotlib or the command line.

Example:
    >>> from rnncore import diagnosis
    >>> rows = [dict(model="lstm", layer="0:LSTM", grad_norm_by_lag={1: 0.5, 10: 0.0123},
    ...              memory_horizon=12.0, lyapunov_max=-0.0712, saturation=0.031, verdict="healthy")]
    >>> print(diagnosis.format_table(rows, lags=(1, 10, 50)))  # doctest: +NORMALIZE_WHITESPACE
    model          layer                        k=1      k=10      k=50  horizon    λ_max saturated  verdict
    lstm           0:LSTM                  5.00e-01  1.23e-02         —     12.0  -0.0712      3.1%  healthy
"""

from __future__ import annotations

from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from . import analysis, checks, compilation, data, depth
from . import layers as L

__all__ = [
    "LAGS",
    "model_inputs",
    "diagnose_model",
    "format_table",
    "has_recurrent_layer",
    "horizon_and_verdict",
    "initial_state_gradient_norms",
    "input_features",
    "output_directions",
    "projection_loss",
    "random_inputs",
    "zero_states",
]

LAGS = (1, 10, 50, 100)
"""The lags k at which ``rnncore diagnose`` reports :math:`\\lVert\\partial L/\\partial s_{T-k}\\rVert`."""


# --- what the model's own forward consumed -----------------------------------------------------


def _model_run(model, params, x, mask, training, rng, initial_states, taps):
    """``model.run`` with the model first, so that it can be bound as a static argument."""
    return model.run(params, x, mask, training, rng, initial_states=initial_states, taps=taps)


# --- inputs and the probe ----------------------------------------------------------------------


def has_recurrent_layer(model) -> bool:
    """Whether ``model`` has a recurrent layer (SimpleRNN, LSTM, GRU, RNN or Bidirectional).

    Example:
        >>> import rnncore as rc
        >>> from rnncore import diagnosis
        >>> diagnosis.has_recurrent_layer(rc.Sequential([rc.layers.Dense(2)]))
        False
        >>> diagnosis.has_recurrent_layer(rc.Sequential([rc.layers.GRU(2), rc.layers.Dense(1)]))
        True
    """
    return any(L.is_recurrent(layer) for layer in model.layers)


def input_features(model, params) -> Optional[int]:
    """The feature size F of the inputs ``(B, T, F)`` the model's first weighted layer takes (from
    its kernel, ``(F, ...)``), or None where no layer has a kernel.

    Example:
        >>> import jax, rnncore as rc
        >>> from rnncore import diagnosis
        >>> model = rc.Sequential([rc.layers.Masking(0.0), rc.layers.LSTM(4)])
        >>> diagnosis.input_features(model, model.init(jax.random.PRNGKey(0), (5, 3)))
        3
    """
    for p in params:
        if isinstance(p, L.BidirectionalParams):
            return int(p.forward.kernel.shape[0])
        kernel = getattr(p, "kernel", None)
        if kernel is not None:
            return int(kernel.shape[0])
    return None


def _token_ids(path: str, a: np.ndarray, what: str) -> np.ndarray:
    """``a`` as int32 token ids ``(B, T)`` (one sequence ``(T,)`` gets a batch of 1), or a clear error."""
    if a.dtype == bool or not np.issubdtype(a.dtype, np.number):
        raise ValueError(f"--data {path}: {what} must be integer token ids; got dtype {a.dtype}.")
    if not np.issubdtype(a.dtype, np.integer) and not np.array_equal(a, np.round(a)):
        raise ValueError(f"--data {path}: {what} must be integer token ids; got non-integer values.")
    a = a[None] if a.ndim == 1 else a
    if a.ndim < 2 or 0 in a.shape:
        raise ValueError(f"--data {path}: {what} must be token ids (batch, time) or (time,); got shape {a.shape}.")
    return a.astype(np.int32)


def _floats(path: str, a: np.ndarray, rank: int, what: str) -> np.ndarray:
    if a.dtype == bool or not np.issubdtype(a.dtype, np.number):
        raise ValueError(f"--data {path}: {what} must hold numbers; got dtype {a.dtype}.")
    a = np.asarray(a, np.float32)
    a = a[None] if a.ndim == rank - 1 else a
    if a.ndim != rank or 0 in a.shape:
        raise ValueError(f"--data {path}: {what} must have rank {rank} (batch first); got shape {a.shape}.")
    return a


def _graph_inputs(model, path: str) -> tuple:
    if not path.lower().endswith(".npz"):
        raise ValueError(
            f"--data {path}: the model has {len(model.input_names)} inputs ({', '.join(model.input_names)}); "
            "expected a .npz file with one array per input, named as the inputs."
        )
    with np.load(path, allow_pickle=False) as z:
        missing = [n for n in model.input_names if n not in z.files]
        if missing:
            raise ValueError(f"--data {path}: the .npz file has no array named {missing[0]!r}; it holds {z.files}.")
        arrays = {n: np.asarray(z[n]) for n in model.input_names}
    out = []
    for name, spec in zip(model.input_names, model.input_specs):
        what = f"input {name!r}"
        integer = np.issubdtype(np.dtype(spec.dtype), np.integer)
        out.append(
            _token_ids(path, arrays[name], what) if integer else _floats(path, arrays[name], len(spec.shape) + 1, what)
        )
    return tuple(out)


def model_inputs(model, params, path: str):
    """The inputs in the file ``path`` for ``model``: what ``rnncore diagnose --model M --data
    PATH`` analyses it on.

    A :class:`rnncore.Model` of several inputs reads a ``.npz`` holding one array per input, named
    as the inputs; a model whose first layer is an ``Embedding`` reads integer token ids ``(B, T)``
    (``.npy``, ``.npz`` or ``.csv``; one sequence ``(T,)`` gets a batch of 1); any other reads
    :func:`rnncore.data.load_array`'s ``(B, T, F)``, checked against the first kernel. Every error
    is a one-line ``ValueError`` starting ``--data PATH:``.
    """
    import os

    if not os.path.isfile(path):
        raise ValueError(f"--data {path}: no such file.")
    if hasattr(model, "input_specs") and len(model.input_specs) > 1:
        return _graph_inputs(model, path)
    first = model.calls[0].layer if hasattr(model, "calls") else model.layers[0]
    if isinstance(first, L.Embedding):
        if path.lower().endswith(".npz"):
            with np.load(path, allow_pickle=False) as z:
                raw = np.asarray(z["x"] if "x" in z.files else z[z.files[0]]) if z.files else np.zeros((0,))
        elif path.lower().endswith(".npy"):
            raw = np.load(path, allow_pickle=False)
        else:
            raw = data.load_array(path)[0, :, 0]
        return _token_ids(path, np.asarray(raw), "the token ids")
    x = data.load_array(path)
    features = input_features(model, params)
    if features is not None and x.shape[2] != features:
        got = x.shape if x.shape[0] > 1 else x.shape[1:]
        raise ValueError(
            f"--data {path}: the model expects inputs of shape (batch, time, {features}) "
            f"(or (time, {features}) for one sequence); got {got}."
        )
    return x


def random_inputs(batch: int, steps: int, features: int, seed: int) -> np.ndarray:
    r"""Standard normal inputs ``(batch, steps, features)``, float32, standardized per feature over
    the batch and time (:class:`rnncore.data.Standardizer`): mean 0 and variance 1 exactly, the
    inputs ``rnncore diagnose`` uses without ``--data``.

    Example:
        >>> from rnncore import diagnosis
        >>> x = diagnosis.random_inputs(4, 20, 3, seed=0)
        >>> x.shape, x.dtype, bool(abs(x.mean()) < 1e-6), bool(abs(x.std() - 1) < 1e-5)
        ((4, 20, 3), dtype('float32'), True, True)
    """
    shape = tuple(
        checks.positive_int(name, n) for name, n in (("batch", batch), ("steps", steps), ("features", features))
    )
    x = np.random.default_rng(checks.integer("seed", seed, minimum=0)).normal(size=shape)
    return data.Standardizer().fit(x).transform(x).astype(np.float32)


def projection_loss(y_pred, v) -> jax.Array:
    r"""The probe :math:`L = \sum \langle y, v \rangle` (elementwise product summed), on the first
    output where the model returns several.

    Example:
        >>> import jax.numpy as jnp
        >>> from rnncore import diagnosis
        >>> float(diagnosis.projection_loss(jnp.array([[1.0, 2.0]]), jnp.array([[0.5, 0.25]])))
        1.0
    """
    if isinstance(y_pred, (tuple, list)):
        y_pred = y_pred[0]
    return jnp.sum(y_pred * v)


def output_directions(model, params, x, seed: int) -> jax.Array:
    r"""Random unit vectors :math:`v_b` per batch row on the model's (first) output at its last step,
    shaped like that output: ``(B, W)``, or ``(B, T, W)`` with zeros before the last step for a
    model that returns sequences. Drawn from ``numpy.random.default_rng(seed + 1)``.

    Example:
        >>> import jax, numpy as np, rnncore as rc
        >>> from rnncore import diagnosis
        >>> model = rc.Sequential([rc.layers.SimpleRNN(3, return_sequences=True)])
        >>> params = model.init(jax.random.PRNGKey(0), (5, 2))
        >>> v = diagnosis.output_directions(model, params, np.zeros((4, 5, 2), np.float32), seed=0)
        >>> v.shape, np.allclose(np.linalg.norm(v[:, -1], axis=-1), 1), bool((v[:, :-1] == 0).all())
        ((4, 5, 3), True, True)
    """
    out = jax.eval_shape(lambda p, xx: model.apply(p, xx), params, x)
    out = out[0] if isinstance(out, (tuple, list)) else out
    b, width = out.shape[0], out.shape[-1]
    v = np.random.default_rng(seed + 1).normal(size=(b, width))
    v /= np.linalg.norm(v, axis=-1, keepdims=True)
    if len(out.shape) == 3:
        full = np.zeros(out.shape)
        full[:, -1] = v
        v = full
    return jnp.asarray(v, out.dtype)


def zero_states(model, batch: int, dtype) -> tuple:
    """One initial state per layer of ``model``: the cell's zero state for a recurrent layer, a
    ``(forward, backward)`` pair for a Bidirectional one, None for the others (the
    ``initial_states`` argument of ``model.apply``)."""
    states: list = []
    for layer in model.layers:
        if L.is_bidirectional(layer):
            states.append(
                (
                    layer.forward_layer.cell.initial_state(batch, dtype),
                    layer.backward_layer.cell.initial_state(batch, dtype),
                )
            )
        elif hasattr(layer, "cell"):
            states.append(layer.cell.initial_state(batch, dtype))
        else:
            states.append(None)
    return tuple(states)


def _initial_states(model, params, x) -> tuple:
    """One initial state per layer, the one the model's own forward starts each recurrent layer
    from (zeros, or in a graph the state another layer returned), None for the others."""
    run = compilation.jit_static(_model_run, model=model, training=False)
    _, consumed, _, _ = run(params=params, x=x, mask=None, rng=None, initial_states=None, taps=None)
    return tuple(
        None
        if c is None
        else (c.forward.initial_state, c.backward.initial_state)
        if isinstance(c, L.Directions)
        else c.initial_state
        for c in consumed
    )


def initial_state_gradient_norms(model, params, x, v) -> list:
    r""":math:`\lVert\partial L/\partial s_0\rVert_2` per recurrent direction (``(B,)`` NumPy float64
    arrays, in :func:`rnncore.analysis.gradient_flow`'s row order), for the probe
    :math:`L` = :func:`projection_loss` of the model's output and ``v``, at the initial states the
    model's forward starts from (zeros, or in a graph the states another layer passes on).

    The norms are taken on the host in float64: the squares of float32 gradients near
    :math:`10^{-20}` underflow.
    """

    model, params, _, _ = depth.per_call(model, params)

    def loss(s0):
        return projection_loss(model.apply(params, x, initial_states=s0), v)

    def norm(cell, g):
        return np.linalg.norm(np.asarray(cell.state_to_vector(g), np.float64), axis=-1)

    grads = compilation.jit(jax.grad(loss))(_initial_states(model, params, x))
    norms = []
    for layer, g in zip(model.layers, grads):
        if L.is_bidirectional(layer):
            for sub, gs in zip((layer.forward_layer, layer.backward_layer), g):
                norms.append(norm(sub.cell, gs))
        elif hasattr(layer, "cell"):
            norms.append(norm(layer.cell, g))
    return norms


def _consumed(model, params, x) -> list:
    """``(layer, consumed)`` per recurrent direction, in ``gradient_flow``'s row order: what each
    direction's scan consumed (its params, inputs, initial state, mask and dropout masks)."""
    run = compilation.jit_static(_model_run, model=model, training=False)
    _, consumed, _, _ = run(params=params, x=x, mask=None, rng=None, initial_states=None, taps=None)
    rows = []
    for layer, c in zip(model.layers, consumed):
        if c is None:
            continue
        if isinstance(c, L.Directions):
            rows += [(layer.forward_layer, c.forward), (layer.backward_layer, c.backward)]
        else:
            rows.append((layer, c))
    return rows


def horizon_and_verdict(log_norms, fraction: float = 0.01, low: float = 1e-3, high: float = 1e3) -> tuple:
    r"""From the log lag spectrum :math:`\log n(\ell) = \log\lVert\partial s_T/\partial s_{T-\ell}\rVert_2`,
    ``(B, T)`` with ``[:, ℓ-1]`` for lag ℓ: ``(horizon, log_gain, label)``.

    ``horizon`` is the batch mean of :func:`rnncore.analysis.memory_horizon` (the largest L with
    :math:`n(\ell) \ge \text{fraction}\cdot n(1)` for every :math:`\ell \le L`); ``log_gain`` the
    batch mean of :math:`\log n(T) = \log\lVert\partial s_T/\partial s_0\rVert_2` and ``label``
    :func:`rnncore.analysis.verdict_label` of it with the thresholds ``low`` and ``high``.

    Example:
        >>> import numpy as np
        >>> from rnncore import diagnosis
        >>> lags = np.arange(1, 21)
        >>> h, g, label = diagnosis.horizon_and_verdict(np.log(0.5) * lags[None], fraction=0.1)
        >>> float(h), round(g, 3), label  # 0.5**4 >= 0.1 * 0.5 > 0.5**5; 0.5**20 < 1e-3
        (4.0, -13.863, 'vanishing')
    """
    horizon = float(np.mean(np.asarray(analysis.horizon_from_log_norms(jnp.asarray(log_norms), fraction))))
    log_gain = float(np.mean(np.asarray(log_norms[:, -1], np.float64)))
    return horizon, log_gain, analysis.verdict_label(log_gain, low, high)


# --- the diagnosis -----------------------------------------------------------------------------


def diagnose_model(model, params, x, *, lags: Sequence[int] = LAGS, seed: int = 0, k_singular: int = 8) -> tuple:
    r"""Diagnose every recurrent layer of ``model`` on inputs ``x (B, T, F)``.

    Returns ``(rows, results)``. ``rows`` holds one dict per recurrent direction (of a graph, per
    call and direction: a recurrent layer called more than once is measured in each call,
    :meth:`rnncore.Model.per_call`):

    * ``layer``: its name in :func:`rnncore.analysis.gradient_flow` (``"0:LSTM"``; in a graph the
      layer's name, ``"encoder"``, ``"siamese (call 2)"``);
    * ``grad_norm_by_lag``: {k: batch mean of :math:`\lVert\partial L/\partial s_{T-k}\rVert`} for
      the lags :math:`1 \le k \le T` (k = T is :math:`s_0`), for :math:`L` = :func:`projection_loss`
      on the directions of :func:`output_directions` (drawn from ``seed``);
    * ``memory_horizon``, ``log_gain``, ``verdict``: :func:`horizon_and_verdict` of the lag spectrum
      :func:`rnncore.analysis.singular_values_by_lag` (its ``min(k_singular, S)`` largest values);
    * ``lyapunov_max``: the batch mean of the largest exponent of
      :func:`rnncore.analysis.lyapunov_spectrum` (``min(k_singular, S)`` exponents,
      :math:`\lfloor T/10 \rfloor` warm-up steps);
    * ``gates``: :func:`rnncore.analysis.gate_saturation`, and ``saturation`` its mean over the gates
      (None for a cell without saturating gates).

    ``results`` is {layer name: dict(flow, lyapunov, saturation, singular_values)} for
    :func:`rnncore.plot.diagnose` (``flow`` the :class:`rnncore.analysis.GradientFlow` row of that
    direction). Raises ``ValueError`` where the model has no recurrent layer.
    """
    lags = tuple(checks.integer("lags", k) for k in lags)
    seed = checks.integer("seed", seed)
    k_singular = checks.positive_int("k_singular", k_singular)
    analysis.refuse_wrapped_recurrent(model, "diagnose")
    if not has_recurrent_layer(model):
        raise ValueError(
            "the model has no recurrent layer (SimpleRNN, LSTM, GRU, RNN or Bidirectional); nothing to diagnose."
        )
    x = tuple(jnp.asarray(a) for a in x) if isinstance(x, (tuple, list)) else jnp.asarray(x)
    model, params, _, _ = depth.per_call(model, params)
    v = output_directions(model, params, x, seed)
    flow = analysis.gradient_flow(model, params, x, v, loss=projection_loss)
    s0_norms = initial_state_gradient_norms(model, params, x, v)
    rows, results = [], {}
    for r, (layer, c) in enumerate(_consumed(model, params, x)):
        steps = c.xs.shape[1]
        warmup = steps // 10
        cell, kw = layer.cell, dict(mask=c.mask, dropout_masks=c.dropout_masks, go_backwards=layer.go_backwards)
        norms = np.asarray(flow.state_norms[r, :, :steps], np.float64)  # (B, T): [:, t-1] = |dL/ds_t|
        by_lag = {}
        for k in lags:
            if 1 <= k < steps:
                by_lag[k] = float(norms[:, steps - 1 - k].mean())
            elif k == steps:
                by_lag[k] = float(s0_norms[r].mean())
        # one log-domain lag spectrum serves the horizon, the verdict and the picture (the costly part:
        # a QR and an SVD of S x S per step)
        k = min(k_singular, cell.state_size)
        svals = analysis.singular_values_by_lag(cell, c.params, c.xs, c.initial_state, k=k, **kw)
        horizon, log_gain, label = horizon_and_verdict(svals[..., 0])
        lyap = analysis.lyapunov_spectrum(cell, c.params, c.xs, c.initial_state, k=k, warmup=warmup, **kw)
        sat = analysis.gate_saturation(cell, c.params, c.xs, c.initial_state, **kw)
        name = flow.layer_names[r]
        rows.append(
            dict(
                layer=name,
                grad_norm_by_lag=by_lag,
                memory_horizon=horizon,
                lyapunov_max=float(np.mean(np.asarray(lyap[:, 0], np.float64))),
                saturation=float(np.mean(list(sat.values()))) if sat else None,
                gates=sat,
                verdict=label,
                log_gain=log_gain,
            )
        )
        one_row = flow._replace(
            state_norms=flow.state_norms[r : r + 1, :, : c.xs.shape[1]],
            hidden_norms=flow.hidden_norms[r : r + 1, :, : c.xs.shape[1]],
            layer_names=flow.layer_names[r : r + 1],
            layer_indices=flow.layer_indices[r : r + 1],
            go_backwards=flow.go_backwards[r : r + 1],
            steps=(),
        )
        results[name] = dict(flow=one_row, lyapunov=lyap, saturation=sat, singular_values=svals)
    return rows, results


def _fmt_lag(value) -> str:
    return "—" if value is None else f"{value:.2e}"


def format_table(rows: list, lags: Sequence[int]) -> str:
    """The diagnosis as a text table: a heading, then one line per row of :func:`diagnose_model`
    with a ``model`` key added (a lag the row lacks shows as ``—``); the layer column is as wide as
    its longest name, 22 at least."""
    width = max([22] + [len(str(r["layer"])) for r in rows])
    head = (
        f"{'model':<14} {'layer':<{width}} "
        + " ".join(f"{'k=' + str(k):>9}" for k in lags)
        + f" {'horizon':>8} {'λ_max':>8} {'saturated':>9}  verdict"
    )
    lines = [head]
    for r in rows:
        sat = "—" if r["saturation"] is None else f"{r['saturation']:.1%}"
        lines.append(
            f"{r['model']:<14} {r['layer']:<{width}} "
            + " ".join(f"{_fmt_lag(r['grad_norm_by_lag'].get(k)):>9}" for k in lags)
            + f" {r['memory_horizon']:>8.1f} {r['lyapunov_max']:>+8.4f} {sat:>9}  {r['verdict']}"
        )
    return "\n".join(lines)
