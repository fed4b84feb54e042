"""What the Jacobian chain means: gradient flow through time and depth, singular values by lag,
Lyapunov exponents, gate saturation, and a verdict on vanishing or exploding gradients.

Everything here reads the chain :mod:`rnncore.bptt` exposes. With :math:`J_t = \\partial
s_t/\\partial s_{t-1}` the per-step state Jacobian (column convention, :math:`s_t` the state after
the t-th step in processing order), the gradient a loss at step T sends back k steps
is shaped by the product

.. math::
    \\frac{\\partial s_T}{\\partial s_{T-k}} = J_T J_{T-1} \\cdots J_{T-k+1},

whose singular values shrink or grow geometrically in k (Hochreiter 1991; Bengio, Simard &
Frasconi 1994; Pascanu, Mikolov & Bengio 2013). Their asymptotic rates are the Lyapunov exponents
of the trajectory (Oseledets 1968; Benettin et al. 1980; Engelken, Wolf & Abbott 2020).

Functions that follow a trajectory run it under ``jit`` and then check on the host that every state
it reached is finite; a NaN or inf raises a ``ValueError`` naming the first step and batch row
where it appeared (so they cannot themselves be called inside ``jit``). On an accelerator they run
with ``jax.default_matmul_precision("highest")``, so that reduced-precision matmuls do not blur
the spectra.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from rnncore import analysis, cells
    >>> cell = cells.SimpleRNN(4, activation=None)
    >>> p = cell.init(jax.random.PRNGKey(0), 2)._replace(recurrent_kernel=0.5 * jnp.eye(4))
    >>> lam = analysis.lyapunov_spectrum(cell, p, jnp.ones((1, 50, 2)))  # every exponent is ln 0.5
    >>> bool(jnp.allclose(lam, jnp.log(0.5), atol=1e-5))
    True
"""

from __future__ import annotations

import functools
import math
from typing import Callable, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np

from . import activations, bptt, cells, checks, compilation, depth, functional, layers, losses
from .cells import contract

__all__ = [
    "GradientFlow",
    "Verdict",
    "gradient_flow",
    "refuse_wrapped_recurrent",
    "loss_function",
    "lyapunov_spectrum",
    "singular_values_by_lag",
    "memory_horizon",
    "horizon_from_log_norms",
    "gate_saturation",
    "verdict",
    "verdict_label",
    "pascanu_gamma",
    # the traceable kernels and host-side checks behind them, shared with rnncore.sweeps
    "state_directions",
    "highest_precision",
    "raise_first_nonfinite",
    "finite_states",
    "lyapunov_kernel",
    "lyapunov_options",
    "initial_frame",
    "check_lyapunov_run",
    "lag_spectrum_kernel",
    "saturation_kind",
]

# --- argument checks ----------------------------------------------------------------------------


def _check_xs(xs) -> jax.Array:
    return layers.check_sequences(xs, name="xs")


def _check_mask(mask, xs):
    return layers.check_mask(mask, xs)


def state_directions(k: Optional[int], state_size: int) -> int:
    """How many directions of the state an analysis follows: ``k`` checked to be an integer in
    ``[1, state_size]``, or ``state_size`` (all of them) for ``k=None``."""
    if k is None:
        return state_size
    return checks.integer("k", k, minimum=1, maximum=state_size, what=f"the state size S={state_size}")


def _initial_state(cell, xs, initial_state):
    if initial_state is None:
        return cell.initial_state(xs.shape[0], xs.dtype)
    return cell.state_type(*(jnp.asarray(a, xs.dtype) for a in initial_state))


def highest_precision():
    """A context in which matmuls run at full float32 precision on an accelerator
    (``jax.default_matmul_precision("highest")``), so that reduced-precision matmuls do not blur
    the spectra."""
    return jax.default_matmul_precision("highest")


# --- finiteness, checked on the host -----------------------------------------------------------


def raise_first_nonfinite(finite, what: str = "state") -> None:
    """On the host: a ``ValueError`` naming the first step and batch row where ``finite`` is False;
    ``finite``: ``(T + 1, B)`` booleans over ``s_0 .. s_T`` (processing order), as
    :func:`finite_states` returns."""
    finite = np.asarray(finite)
    if finite.all():
        return
    t, b = np.argwhere(~finite)[0]
    if t == 0:
        raise ValueError(f"initial_state holds a non-finite value (NaN or inf) in batch row {b}.")
    raise ValueError(
        f"non-finite {what} (NaN or inf) first reached at step t={t} (s_{t}, processing order), batch row {b}: "
        "the trajectory diverged there or the inputs or params hold NaN/inf."
    )


def finite_states(cell, params, xs, s0, mask, dropout_masks, go_backwards):
    """Traceable: whether each state of the trajectory on ``xs (B, T, F)`` from ``s0`` is finite,
    ``(T + 1, B)`` booleans over :math:`s_0 \\ldots s_T` in processing order."""
    tr = bptt.forward(cell, params, xs, s0, mask, dropout_masks=dropout_masks, go_backwards=go_backwards)
    vec = cell.state_to_vector(tr.states)  # (B, T + 1, S)
    return jnp.all(jnp.isfinite(vec), axis=-1).T  # (T + 1, B)


def _check_trajectory(cell, params, xs, s0, mask, dropout_masks, go_backwards) -> None:
    run = compilation.jit_static(finite_states, cell=cell, go_backwards=go_backwards)
    raise_first_nonfinite(run(params=params, xs=xs, s0=s0, mask=mask, dropout_masks=dropout_masks))


# --- losses, as Keras defines them (rnncore.losses) --------------------------------------------


def loss_function(loss: Union[str, Callable]) -> Callable:
    """``(y_pred, y, mask=None) -> scalar`` for a Keras loss name or a callable ``(y_pred, y)``.

    Names (``"mse"``, ``"mae"``, ``"huber"``, ``"binary_crossentropy"``, ``"categorical_crossentropy"``,
    ``"sparse_categorical_crossentropy"``, Keras's other aliases too) are :func:`rnncore.losses.get`'s
    losses, Keras 3's definitions with ``from_logits=False``: per sample the mean over the last axis of
    :math:`(y - \\hat y)^2`, :math:`|y - \\hat y|`,
    :math:`-[y \\log \\hat y + (1-y) \\log(1-\\hat y)]` (:math:`\\hat y` clipped to
    :math:`[\\epsilon, 1-\\epsilon]`, :math:`\\epsilon = 10^{-7}`), or
    :math:`-\\sum_c y_c \\log \\hat y_c` with :math:`\\hat y` renormalized to sum 1 and clipped;
    then Keras's ``"sum_over_batch_size"`` reduction: the mean over every remaining entry, or,
    where the model's output carries a mask (a sequence output of a masked model),
    :math:`\\sum l \\cdot m / \\sum m` (0 when no step is real).

    Example:
        >>> import jax.numpy as jnp
        >>> from rnncore import analysis
        >>> float(analysis.loss_function("mse")(jnp.array([[1.0], [3.0]]), jnp.array([[0.0], [1.0]])))
        2.5
    """
    if callable(loss):

        def custom(y_pred, y, mask=None):
            return loss(y_pred, y)

        return custom
    if not isinstance(loss, str):
        raise ValueError(f"loss={loss!r}; expected a callable (y_pred, y) -> scalar or a loss name.")
    loss_obj = losses.get(loss)  # raises naming loss= for an unknown name

    def named(y_pred, y, mask=None):
        if isinstance(y_pred, (tuple, list)):
            raise ValueError(
                f"loss={loss!r} needs a single model output; this model returns {len(y_pred)}. Pass a callable loss."
            )
        if mask is not None:
            # the output mask applies where it is shaped like the per-sample values (a sequence output)
            values = jax.eval_shape(
                lambda yt, yp: loss_obj.call(*losses.squeeze_or_expand_to_same_rank(jnp.asarray(yt, yp.dtype), yp)),
                y,
                y_pred,
            )
            if tuple(jnp.shape(mask)) != tuple(values.shape):
                mask = None
        return loss_obj(y, y_pred, mask=mask)

    return named


# --- gradient flow through time and depth -------------------------------------------------------


class GradientFlow(NamedTuple):
    """What :func:`gradient_flow` measures, one row per recurrent direction.

    ``state_norms (R, B, T)``: :math:`\\lVert\\partial L/\\partial s^{(r)}_t\\rVert_2` with
    ``[r, b, t-1]`` for step t of row r in its processing order; ``hidden_norms (R, B, T)``: the
    same for the ``h`` part of the state (equal to ``state_norms`` for SimpleRNN and GRU, whose
    state is ``h``); ``layer_names``: R names, for a ``Sequential`` such as ``"1:LSTM"`` or
    ``"2:Bidirectional(GRU).backward"`` (the index in ``model.layers`` first), for a graph
    (:class:`rnncore.Model`) the layer's name, ``"encoder"`` or ``"bi.backward"``, and
    ``"siamese (call 2)"`` for the second call of a recurrent layer called more than once (one
    row per call, :meth:`rnncore.Model.per_call`); ``layer_indices``: R indices into
    ``model.layers`` (the calls of one layer share it); ``go_backwards``: R flags (a backward row's step t consumes
    input position T − t + 1); ``loss``: the loss value; ``steps``: R lengths, each row's number
    of steps (a graph's layers may run over sequences of different lengths: a shorter row is
    NaN after its last step; empty where every row has T steps).

    Per batch row; ``state_norms.mean(axis=1)`` is the batch average (a layer × time grid).
    """

    state_norms: jax.Array
    hidden_norms: jax.Array
    layer_names: tuple
    layer_indices: tuple
    go_backwards: tuple
    loss: jax.Array
    steps: tuple = ()


def _padded(rows: list) -> jax.Array:
    """``(R, B, T_max)``: rows of ``(B, T_r)`` stacked, each NaN after its own last step."""
    longest = max(r.shape[-1] for r in rows)
    return jnp.stack([jnp.pad(r, ((0, 0), (0, longest - r.shape[-1])), constant_values=jnp.nan) for r in rows])


def _wrapped_name(layer) -> Optional[str]:
    """``TimeDistributed(LSTM)`` for a ``TimeDistributed`` with a recurrent layer somewhere inside, else None."""
    if not isinstance(layer, layers.TimeDistributed):
        return None
    inner = layer.layer
    if layers.is_recurrent(inner):
        return f"TimeDistributed({type(inner).__name__})"
    deeper = _wrapped_name(inner)
    return None if deeper is None else f"TimeDistributed({deeper})"


def refuse_wrapped_recurrent(model, who: str) -> None:
    """A ValueError naming the first layer of ``model`` that runs a recurrent layer inside
    ``TimeDistributed``: the analyses follow the chain through time of the model's own recurrent
    layers, and such a layer runs a separate chain for every outer step, which they do not cover.

    Example:
        >>> import rnncore as rc
        >>> model = rc.Sequential([rc.layers.TimeDistributed(rc.layers.LSTM(3)), rc.layers.LSTM(2)])
        >>> rc.analysis.refuse_wrapped_recurrent(model, "gradient_flow")
        Traceback (most recent call last):
        ...
        ValueError: gradient_flow: layers[0] is TimeDistributed(LSTM), a recurrent layer run once per outer step; ...
    """
    names = [f"layer {n!r}" for n in model.names] if hasattr(model, "names") else None
    names = names or [f"layers[{i}]" for i in range(len(model.layers))]
    for name, layer in zip(names, model.layers):
        wrapped = _wrapped_name(layer)
        if wrapped is not None:
            raise ValueError(
                f"{who}: {name} is {wrapped}, a recurrent layer run once per outer step; the analyses "
                "follow recurrent layers of the model itself (SimpleRNN, LSTM, GRU, RNN, Bidirectional), "
                "not recurrent layers inside TimeDistributed."
            )


def _rows(model, origins=None):
    """``(index, name, sublayer)`` per recurrent direction of ``model`` (a graph's split one,
    :func:`rnncore.depth.per_call`, whose layer j is layer ``origins[j]`` of the original)."""
    graph = isinstance(model, functional.Model)
    rows = []
    for j, layer in enumerate(model.layers):
        i = j if origins is None else origins[j]
        if layers.is_bidirectional(layer):
            inner = type(layer.forward_layer).__name__
            name = model.names[j] if graph else f"{i}:Bidirectional({inner})"
            rows.append((i, f"{name}.forward", layer.forward_layer))
            rows.append((i, f"{name}.backward", layer.backward_layer))
        elif hasattr(layer, "cell"):
            rows.append((i, model.names[j] if graph else f"{i}:{type(layer).__name__}", layer))
    return rows


def _norm(v: jax.Array) -> jax.Array:
    """The 2-norm over the last axis, scaled by the largest entry first, so that float32 norms of
    vanishing gradients (entries below ~1e-19, whose squares underflow) are not reported as 0."""
    scale = jnp.max(jnp.abs(v), axis=-1, keepdims=True)
    safe = jnp.where(scale > 0, scale, 1.0)
    return jnp.where(scale[..., 0] > 0, safe[..., 0] * jnp.sqrt(jnp.sum(jnp.square(v / safe), axis=-1)), 0.0)


def _gradient_flow(model, loss, training, params, x, y, mask, rng, initial_states):
    fn = loss_function(loss)
    mask = depth.as_mask(mask)
    y_pred, _, _, out_mask = model.run(params, x, mask, training, rng, initial_states=initial_states)
    value, d_out = jax.value_and_grad(lambda yp: fn(yp, y, out_mask))(y_pred)
    grads = depth.model_state_gradients(model, params, x, d_out, mask, training, rng, initial_states=initial_states)
    per_row = []
    for layer, g in zip(model.layers, grads):
        if g is None:
            continue
        subs = (layer.forward_layer, layer.backward_layer) if isinstance(g, depth.Directions) else (layer,)
        for sub, gs in zip(subs, tuple(g) if isinstance(g, depth.Directions) else (g,)):
            h = sub.cell.output(sub.cell.vector_to_state(gs))
            per_row.append((_norm(gs), _norm(h)))
    if not per_row:
        raise ValueError("gradient_flow: the model has no recurrent layer.")
    return _padded([s for s, _ in per_row]), _padded([h for _, h in per_row]), value


def _check_flow(state_norms, value, rows, steps: tuple) -> None:
    """A non-finite loss or gradient norm raises, naming the layer, batch row and step."""
    norms = np.array(state_norms)
    for r, n in enumerate(steps):
        norms[r, :, n:] = 0.0  # past a shorter row's last step
    if not np.isfinite(np.asarray(value)):
        raise ValueError(
            f"gradient_flow: the loss is non-finite ({float(value)}); the model's outputs, the "
            "targets, the inputs or the params hold NaN/inf."
        )
    bad = ~np.isfinite(norms)
    if bad.any():
        r, b, t = np.argwhere(bad)[-1]  # the latest step: where the backward pass first met it
        raise ValueError(
            f"gradient_flow: non-finite dL/ds (NaN or inf) in layer {rows[r][1]}, batch row {b}, "
            f"reaching step t={t + 1} (processing order) and every step before it."
        )


def gradient_flow(
    model,
    params,
    x: jax.Array,
    y,
    loss: Union[str, Callable] = "mse",
    mask: Optional[jax.Array] = None,
    training: bool = False,
    rng: Optional[jax.Array] = None,
    *,
    initial_states=None,
) -> GradientFlow:
    """How much gradient reaches every step of every recurrent layer: a layer × time grid of
    :math:`\\lVert \\partial L/\\partial s^{(l)}_t \\rVert` and
    :math:`\\lVert \\partial L/\\partial h^{(l)}_t \\rVert`.

    :math:`L` = ``loss(model.apply(params, x, mask), y)`` (see :func:`loss_function`: a Keras
    name, or a callable ``(y_pred, y) -> scalar``, prediction first). The gradient with respect to
    :math:`s^{(l)}_t` is the total derivative through every later step of layer l and every layer
    above it, the sum of both routes:

    .. math::
        \\frac{\\partial L}{\\partial s^{(l)}_{t}} =
        J^{(l)\\top}_{t+1} \\frac{\\partial L}{\\partial s^{(l)}_{t+1}}
        + \\Big(\\frac{\\partial y^{(l)}_{t}}{\\partial s^{(l)}_{t}}\\Big)^{\\!\\top}
          \\frac{\\partial L}{\\partial y^{(l)}_{t}},

    computed by :func:`rnncore.depth.model_state_gradients`. Vanishing gradients show as norms
    falling geometrically towards early steps (and towards low layers, where depth multiplies in
    the cross-layer Jacobians); exploding ones as norms growing (Pascanu, Mikolov & Bengio 2013,
    Fig. 5 plots exactly this quantity). For an LSTM, ``hidden_norms`` is the gradient with
    respect to :math:`h_t` with :math:`c_t` held fixed; the gap to ``state_norms`` is what
    reaches :math:`c_t`, the constant-error carousel (Hochreiter & Schmidhuber 1997).

    Args:
        model: an :class:`rnncore.Sequential` or a graph :class:`rnncore.Model` (a recurrent layer
            called more than once gives a row per call).
        params: its params.
        x: inputs ``(B, T, F)`` (a graph's: one array per input); y: targets as the loss expects them.
        mask, training, rng, initial_states: as ``model.apply`` takes them.

    Returns:
        :class:`GradientFlow` ``(state_norms (R, B, T), hidden_norms (R, B, T), layer_names,
        layer_indices, go_backwards, loss)``, one row per recurrent layer (two for a
        Bidirectional one), per batch row, in each row's processing order.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> import rnncore as rc
        >>> model = rc.Sequential([rc.layers.SimpleRNN(4, return_sequences=True),
        ...                        rc.layers.LSTM(3), rc.layers.Dense(1)])
        >>> params = model.init(jax.random.PRNGKey(0), (6, 2))
        >>> flow = rc.analysis.gradient_flow(model, params, jnp.ones((2, 6, 2)), jnp.zeros((2, 1)), "mse")
        >>> flow.state_norms.shape, flow.layer_names
        ((2, 2, 6), ('0:SimpleRNN', '1:LSTM'))
    """
    refuse_wrapped_recurrent(model, "gradient_flow")
    model, params, initial_states, origins = depth.per_call(model, params, initial_states)
    run = compilation.jit_static(_gradient_flow, model=model, loss=loss, training=training)
    with highest_precision():
        states, hidden, value = run(params=params, x=x, y=y, mask=mask, rng=rng, initial_states=initial_states)
    rows = _rows(model, origins)
    consumed = jax.eval_shape(lambda: model.run(params, x, depth.as_mask(mask), initial_states=initial_states).consumed)
    lengths = [
        int(d.xs.shape[1])
        for c in consumed
        if c is not None
        for d in (tuple(c) if isinstance(c, depth.Directions) else (c,))
    ]
    steps = () if len(set(lengths)) <= 1 else tuple(lengths)
    _check_flow(states, value, rows, steps)
    return GradientFlow(
        states,
        hidden,
        tuple(r[1] for r in rows),
        tuple(r[0] for r in rows),
        tuple(bool(r[2].go_backwards) for r in rows),
        value,
        steps,
    )


# --- Lyapunov exponents -------------------------------------------------------------------------


def lyapunov_kernel(cell, k, warmup, method, go_backwards, params, xs, s0, mask, dropout_masks, q0):
    r"""Traceable core of :func:`lyapunov_spectrum`: the QR recursion :math:`J_t Q_{t-1} = Q_t R_t`
    from the frame ``q0 (B, S, k)`` (:func:`initial_frame`), summing :math:`\log|\operatorname{diag}
    R_t|` over the real steps after ``warmup``.

    ``method``: ``"jacobian"`` (``cell.jacobian``, or ``jax.jacfwd`` of its step) or ``"jvp"`` (the
    frame pushed through ``cell.step`` by JVPs), as :func:`lyapunov_options` resolves it. Returns
    ``(exponents (B, k) unsorted, count (B,) steps counted, finite (T + 1, B) per state, bad (T, B)
    per step's Jacobian)``, for :func:`check_lyapunov_run`.
    """
    tr = bptt.forward(cell, params, xs, s0, mask, dropout_masks=dropout_masks, go_backwards=go_backwards)
    states_t = jax.tree_util.tree_map(lambda s: jnp.swapaxes(s, 0, 1), tr.states)  # (T + 1, B, ·)
    finite = jnp.all(jnp.isfinite(cell.state_to_vector(states_t)), axis=-1)  # (T + 1, B)
    prev_t = jax.tree_util.tree_map(lambda s: s[:-1], states_t)
    xs_t = bptt.time_major(xs, go_backwards)
    mask_t = None if mask is None else bptt.time_major(mask, go_backwards)
    steps = jnp.arange(1, xs.shape[1] + 1)

    if method == "jvp":

        def advance(s_prev, x, q):
            def step_vec(v):
                new, _ = cell.step(params, cell.vector_to_state(v), x, dropout_masks)
                return cell.state_to_vector(new)

            s_vec = cell.state_to_vector(s_prev)
            return jax.vmap(lambda col: jax.jvp(step_vec, (s_vec,), (col,))[1], in_axes=2, out_axes=2)(q)
    else:
        jac = contract.optional_member(cell, "jacobian") or functools.partial(cells.Cell.jacobian_fallback, cell)

        def advance(s_prev, x, q):
            return jac(params, s_prev, x, dropout_masks) @ q

    batch = xs.shape[0]
    zero = jnp.zeros((batch, k), q0.dtype)

    def body(carry, inp):
        q, total, lost, count = carry
        t, s_prev, x, m = inp
        v = advance(s_prev, x, q)  # J_t Q, (B, S, k)
        real = jnp.ones((batch,), bool) if m is None else m
        v = jnp.where(real[:, None, None], v, q)  # a masked step: J_t = I
        q_new, r = jnp.linalg.qr(v)
        logd = jnp.log(jnp.abs(jnp.diagonal(r, axis1=-2, axis2=-1)))  # (B, k)
        bad = jnp.any(jnp.isnan(logd) | (logd == jnp.inf), axis=-1)
        use = jnp.logical_and(real, t > warmup)
        total, lost = bptt.kahan_add(total, lost, jnp.where(use[:, None], logd, 0.0))
        return (q_new, total, lost, count + use), bad

    (_, total, _, count), bad = jax.lax.scan(
        body, (q0, zero, zero, jnp.zeros((batch,), jnp.int32)), (steps, prev_t, xs_t, mask_t)
    )
    return total / count[:, None], count, finite, bad


def _lyapunov_args(cell, xs, initial_state, k, warmup, mask, method, key):
    """Checked arguments of :func:`lyapunov_spectrum`: ``(xs, k, method, mask, s0, q0)``."""
    xs = _check_xs(xs)
    k, method = lyapunov_options(cell, xs.shape[1], k, warmup, method)
    mask = _check_mask(mask, xs)
    s0 = _initial_state(cell, xs, initial_state)
    q0 = initial_frame(jax.random.PRNGKey(0) if key is None else key, xs.shape[0], cell.state_size, k, xs.dtype)
    return xs, k, method, mask, s0, q0


def lyapunov_options(cell, steps: int, k: Optional[int], warmup: int, method: str) -> tuple[int, str]:
    """Checked ``(k, method)`` of :func:`lyapunov_spectrum` for T = ``steps`` (``warmup`` checked to
    be in ``[0, T - 1]``); ``method="auto"`` resolved to ``"jacobian"`` for a cell with a
    closed-form ``jacobian``, else ``"jvp"``."""
    k = state_directions(k, cell.state_size)
    checks.integer("warmup", warmup, minimum=0, maximum=steps - 1, what=f"T={steps} steps")
    checks.one_of("method", method, ("auto", "jacobian", "jvp"))
    if method == "auto":
        method = "jacobian" if contract.optional_member(cell, "jacobian") is not None else "jvp"
    return k, method


def initial_frame(key: jax.Array, batch: int, size: int, k: int, dtype) -> jax.Array:
    """The initial orthonormal frame ``Q_0`` of :func:`lyapunov_kernel`, ``(B, S, k)``: the Q of a
    Gaussian matrix's QR."""
    q0, _ = jnp.linalg.qr(jax.random.normal(key, (batch, size, k), dtype))
    return q0


def check_lyapunov_run(finite, bad, count, warmup: int) -> None:
    """On the host, from what :func:`lyapunov_kernel` returns: a non-finite state or Jacobian, or a
    batch row with no counted step, raises a ``ValueError`` naming it."""
    raise_first_nonfinite(finite)
    bad = np.asarray(bad)
    if bad.any():
        t, b = np.argwhere(bad)[0]
        raise ValueError(f"non-finite Jacobian (NaN or inf) at step t={t + 1} (processing order), batch row {b}.")
    count = np.asarray(count)
    if (count == 0).any():
        b = int(np.argmax(count == 0))
        raise ValueError(f"batch row {b} has no real (unmasked) step after warmup={warmup}; no exponent to average.")


def lyapunov_spectrum(
    cell,
    params,
    xs: jax.Array,
    initial_state=None,
    k: Optional[int] = None,
    warmup: int = 0,
    *,
    mask: Optional[jax.Array] = None,
    dropout_masks=None,
    go_backwards: bool = False,
    method: str = "auto",
    key: Optional[jax.Array] = None,
) -> jax.Array:
    """The k largest Lyapunov exponents of the trajectory the cell follows on ``xs``, ``(B, k)``,
    in nats per step, largest first, by the QR method (Benettin, Galgani, Giorgilli & Strelcyn
    1980; for RNNs Engelken, Wolf & Abbott 2020).

    An orthonormal frame :math:`Q_0 \\in \\mathbb{R}^{S\\times k}` (random, from ``key``) is
    carried along the trajectory and re-orthonormalized at every step,

    .. math::
        J_t Q_{t-1} = Q_t R_t, \\qquad
        \\lambda_i = \\frac{1}{T - w} \\sum_{t = w+1}^{T} \\log |(R_t)_{ii}|,

    with w = ``warmup`` steps discarded while the frame aligns with the most expanding directions.
    :math:`\\lambda_1` is the rate :math:`\\tfrac1n\\log\\lVert\\partial s_{t+n}/\\partial s_t\\rVert`
    at which perturbations (forward) and gradients (backward) grow or shrink along this trajectory:
    :math:`\\lambda_1 < 0` means contracting dynamics and vanishing long-range gradients,
    :math:`\\lambda_1 > 0` chaos and exploding ones. For a linear RNN with a constant recurrent
    matrix W they are :math:`\\log|\\mu_i|` of W's eigenvalues. Only the products' logs are summed
    (compensated), so they are finite for any T even where :math:`\\partial s_T/\\partial s_0`
    under- or overflows.

    Args:
        cell: any cell (its closed-form ``jacobian``, or ``jax.jacfwd`` of its ``step`` for a
            user's cell without one).
        params, xs ``(B, T, F)``, initial_state, mask, dropout_masks, go_backwards: as
            :func:`rnncore.bptt.forward` takes them. A masked step (:math:`J_t = I`) is neither
            applied nor counted.
        k: how many exponents (default: all S).
        warmup: steps excluded from the average, in [0, T).
        method: ``"jacobian"`` (form :math:`J_t`, S×S, and multiply), ``"jvp"`` (k
            Jacobian–vector products of the step per step, never forming S×S: for large S and
            small k), or ``"auto"``: ``"jacobian"`` when the cell has a closed form, else
            ``"jvp"``.
        key: PRNG key of the initial frame (default ``PRNGKey(0)``).

    Returns:
        ``(B, k)``, sorted largest first; ``-inf`` where a Jacobian is exactly singular.

    Raises:
        ValueError: k outside [1, S], T = 0, warmup outside [0, T), or a non-finite state (naming
            the first step and batch row where it appeared).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from rnncore import analysis, cells
        >>> cell = cells.SimpleRNN(2, activation=None, use_bias=False)
        >>> p = cell.init(jax.random.PRNGKey(0), 1)._replace(recurrent_kernel=jnp.diag(jnp.array([0.5, 2.0])))
        >>> lam = analysis.lyapunov_spectrum(cell, p, jnp.zeros((1, 40, 1)), warmup=10)
        >>> [round(v, 4) for v in lam[0].tolist()], round(float(jnp.log(2.0)), 4), round(float(jnp.log(0.5)), 4)
        ([0.6931, -0.6931], 0.6931, -0.6931)
    """
    xs, k, method, mask, s0, q0 = _lyapunov_args(cell, xs, initial_state, k, warmup, mask, method, key)
    run = compilation.jit_static(
        lyapunov_kernel, cell=cell, k=k, warmup=int(warmup), method=method, go_backwards=go_backwards
    )
    with highest_precision():
        lam, count, finite, bad = run(params=params, xs=xs, s0=s0, mask=mask, dropout_masks=dropout_masks, q0=q0)
    check_lyapunov_run(finite, bad, count, warmup)
    return -jnp.sort(-lam, axis=-1)


# --- singular values by lag, memory horizon ------------------------------------------------------


def lag_spectrum_kernel(cell, k, go_backwards, params, xs, s0, mask, dropout_masks):
    r"""Traceable core of :func:`singular_values_by_lag`: the ``k`` largest
    :math:`\log\sigma_i(\partial s_T/\partial s_{T-\ell})` for every lag, ``(B, T, k)``, ``[:, ℓ-1]``."""
    J = bptt.step_jacobians(cell, params, xs, s0, mask, dropout_masks=dropout_masks, go_backwards=go_backwards)
    return bptt.log_singular_values_to_end(J, k=k)[:, ::-1]


def singular_values_by_lag(
    cell,
    params,
    xs: jax.Array,
    initial_state=None,
    mask: Optional[jax.Array] = None,
    k: Optional[int] = None,
    *,
    dropout_masks=None,
    go_backwards: bool = False,
) -> jax.Array:
    """:math:`\\log \\sigma_i(\\partial s_T/\\partial s_{T-\\ell})` for every lag
    :math:`\\ell = 1 \\ldots T`, ``(B, T, k)``: ``[:, lag-1, i]``, largest first, in nats.

    How much a perturbation of the state :math:`\\ell` steps before the end can still move the
    final state, direction by direction; the gradient a loss at the last step sends back
    :math:`\\ell` steps is bounded by :math:`\\sigma_1`. Geometric decay in :math:`\\ell` is the
    vanishing gradient (Bengio, Simard & Frasconi 1994), a slope of :math:`\\lambda_i` per step
    for long lags (:func:`lyapunov_spectrum`). Computed in the log domain
    (:func:`rnncore.bptt.log_singular_values_to_end`), finite for any T; singular values more
    than ~1/eps below the largest are unresolved and may be ``-inf``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from rnncore import analysis, cells
        >>> cell = cells.SimpleRNN(3, activation=None)
        >>> p = cell.init(jax.random.PRNGKey(0), 1)._replace(recurrent_kernel=0.9 * jnp.eye(3))
        >>> v = analysis.singular_values_by_lag(cell, p, jnp.ones((1, 4, 1)), k=1)
        >>> [round(a, 4) for a in v[0, :, 0].tolist()]  # lag * ln 0.9
        [-0.1054, -0.2107, -0.3161, -0.4214]
    """
    xs = _check_xs(xs)
    k = state_directions(k, cell.state_size)
    mask = _check_mask(mask, xs)
    s0 = _initial_state(cell, xs, initial_state)
    _check_trajectory(cell, params, xs, s0, mask, dropout_masks, go_backwards)
    run = compilation.jit_static(lag_spectrum_kernel, cell=cell, k=k, go_backwards=go_backwards)
    with highest_precision():
        return run(params=params, xs=xs, s0=s0, mask=mask, dropout_masks=dropout_masks)


def memory_horizon(
    cell,
    params,
    xs: jax.Array,
    initial_state=None,
    mask: Optional[jax.Array] = None,
    fraction: float = 0.01,
    *,
    dropout_masks=None,
    go_backwards: bool = False,
) -> jax.Array:
    """The largest lag over which the gradient stays above ``fraction`` of the last step's,
    ``(B,)`` integers in [0, T].

    With :math:`n(\\ell) = \\lVert \\partial s_T/\\partial s_{T-\\ell} \\rVert_2` (the largest
    singular value, :func:`singular_values_by_lag`), the horizon is the largest :math:`L` such that
    :math:`n(\\ell) \\ge \\text{fraction} \\cdot n(1) > 0` for every :math:`\\ell \\le L`; it is 0
    when :math:`n(1) = 0`, and T means the gradient never fell below the fraction within the
    sequence (the horizon is at least T). For geometric decay :math:`n(\\ell) \\approx
    n(1)\\,e^{\\lambda(\\ell-1)}` it is :math:`1 + \\lfloor \\ln(\\text{fraction})/\\lambda \\rfloor`
    (Bengio, Simard & Frasconi 1994: information is latched only over this span).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from rnncore import analysis, cells
        >>> cell = cells.SimpleRNN(2, activation=None)
        >>> p = cell.init(jax.random.PRNGKey(0), 1)._replace(recurrent_kernel=0.5 * jnp.eye(2))
        >>> analysis.memory_horizon(cell, p, jnp.ones((1, 20, 1)), fraction=0.1).tolist()  # 0.5**3 >= 0.1 > 0.5**4
        [4]
    """
    checks.real("fraction", fraction, 0, 1, low_open=True)
    logn = singular_values_by_lag(
        cell, params, xs, initial_state, mask, 1, dropout_masks=dropout_masks, go_backwards=go_backwards
    )[..., 0]
    return horizon_from_log_norms(logn, fraction)


def horizon_from_log_norms(logn: jax.Array, fraction: float = 0.01) -> jax.Array:
    r""":func:`memory_horizon` from :math:`\log n(\ell)`, ``(B, T)`` with ``[:, ℓ-1]`` for lag ℓ (the
    largest log singular values :func:`singular_values_by_lag` returns): ``(B,)`` integers."""
    above = (logn >= logn[:, :1] + math.log(fraction)) & (logn > -jnp.inf)
    return jnp.sum(jnp.cumprod(above, axis=1), axis=1)


# --- gate saturation ----------------------------------------------------------------------------

_SIGMOID_LIKE = ("sigmoid", "hard_sigmoid", "sparse_sigmoid")
_TANH_LIKE = ("tanh", "hard_tanh", "softsign")


def saturation_kind(identifier) -> Optional[str]:
    """How a gate with this activation saturates: ``"sigmoid"`` (near 0 and 1: ``sigmoid``,
    ``hard_sigmoid``, ``sparse_sigmoid``), ``"tanh"`` (near ±1: ``tanh``, ``hard_tanh``,
    ``softsign``), or None (no saturation of this kind: ``relu``, linear, ...)."""
    name = identifier if isinstance(identifier, str) else activations.name_of(activations.get(identifier))
    if name in _SIGMOID_LIKE:
        return "sigmoid"
    if name in _TANH_LIKE:
        return "tanh"
    return None


def _gate_activations(cell) -> dict:
    """``{gate name: activation identifier}``, as the cell names them (``cell.gate_activations()``)."""
    order = cell.gate_activations() if isinstance(cell, contract.GatedCell) else {}
    if not order:
        raise ValueError(
            f"gate_saturation needs a cell that names its gates (gate_activations() and named_gates(), "
            f"rnncore.cells.contract); got {type(cell).__name__}."
        )
    return order


def _saturation(cell, low, high, go_backwards, params, xs, s0, mask, dropout_masks):
    tr = bptt.forward(
        cell, params, xs, s0, mask, dropout_masks=dropout_masks, go_backwards=go_backwards, keep_gates=True
    )
    real = jnp.ones(xs.shape[:2], bool) if mask is None else mask
    real = real[:, ::-1] if go_backwards else real  # (B, T) in processing order, as the gates
    gates = cell.named_gates(tr.gates)
    out = {}
    for name, act in cell.gate_activations().items():
        v, kind = gates[name], saturation_kind(act)
        if kind is None:
            continue
        sat = (v < low) | (v > high) if kind == "sigmoid" else jnp.abs(v) > high
        keep = jnp.broadcast_to(real[:, :, None], v.shape)
        out[name] = jnp.sum(sat & keep) / jnp.sum(keep)
    return out


def gate_saturation(
    cell,
    params,
    xs: jax.Array,
    initial_state=None,
    mask: Optional[jax.Array] = None,
    *,
    low: float = 0.05,
    high: float = 0.95,
    dropout_masks=None,
    go_backwards: bool = False,
) -> dict:
    """Per gate, the fraction of its values that are saturated along the trajectory: sigmoid
    gates below ``low`` or above ``high``, tanh outputs beyond :math:`\\pm` ``high``.

    A saturated unit has :math:`\\varphi' \\approx 0` (:math:`\\sigma' = \\sigma(1-\\sigma) < 0.0475`
    outside [0.05, 0.95], :math:`\\tanh' = 1 - \\tanh^2 < 0.0975` beyond ±0.95): it passes almost no
    gradient to its pre-activation, so its weights stop learning (Bengio, Simard & Frasconi 1994;
    Glorot & Bengio 2010). An open forget gate (:math:`f \\approx 1`) is the intended saturation
    that keeps the LSTM's :math:`\\partial c_t/\\partial c_{t-1} = \\operatorname{diag}(f)` near
    the identity; gates stuck near 0 or 1 everywhere are hard to move (Gu et al. 2020, "Improving
    the gating mechanism of recurrent neural networks").

    Gates (the cell's ``gate_activations()`` and ``named_gates()``): LSTM and LayerNormLSTM ``i, f, o`` (recurrent
    activation), ``g`` and ``tanh(c)`` (activation; ``c`` the new cell state); GRU ``z, r``
    (recurrent activation) and ``hh`` (the candidate); SimpleRNN ``h`` (its activation output).
    The rule follows the activation: sigmoid-like (``sigmoid``, ``hard_sigmoid``,
    ``sparse_sigmoid``) or tanh-like (``tanh``, ``hard_tanh``, ``softsign``); a gate with any other
    activation (e.g. ``relu``, linear) has no saturation of this kind and is left out. Counted over
    every batch row, unit and real (unmasked) step.

    Returns:
        ``{gate name: fraction}`` (Python floats in [0, 1]).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from rnncore import analysis, cells
        >>> cell = cells.GRU(4)
        >>> p = cell.init(jax.random.PRNGKey(0), 3)
        >>> sat = analysis.gate_saturation(cell, p, jnp.zeros((2, 5, 3)))  # all pre-activations 0
        >>> sat
        {'z': 0.0, 'r': 0.0, 'hh': 0.0}
    """
    xs = _check_xs(xs)
    mask = _check_mask(mask, xs)
    order = _gate_activations(cell)
    if not 0 < low < high < 1:
        raise ValueError(f"low={low!r}, high={high!r}; expected 0 < low < high < 1.")
    s0 = _initial_state(cell, xs, initial_state)
    _check_trajectory(cell, params, xs, s0, mask, dropout_masks, go_backwards)
    run = compilation.jit_static(_saturation, cell=cell, low=float(low), high=float(high), go_backwards=go_backwards)
    fractions = run(params=params, xs=xs, s0=s0, mask=mask, dropout_masks=dropout_masks)
    return {name: float(fractions[name]) for name in order if name in fractions}


# --- a verdict ----------------------------------------------------------------------------------

_GAMMA = {  # sup |phi'|: the gamma of Pascanu, Mikolov & Bengio (2013)
    "linear": 1.0,
    "tanh": 1.0,
    "sigmoid": 0.25,
    "hard_sigmoid": 1.0 / 6.0,
    "relu": 1.0,
    "relu6": 1.0,
    "softsign": 1.0,
    "hard_tanh": 1.0,
    "softplus": 1.0,
    "elu": 1.0,
    "leaky_relu": 1.0,
}


def pascanu_gamma(activation) -> Optional[float]:
    """:math:`\\gamma = \\sup_a |\\varphi'(a)|` for a Keras activation name (or None: linear),
    ``None`` where unknown: 1 for tanh, relu, linear, …; 1/4 for sigmoid; 1/6 for Keras 3's
    ``hard_sigmoid`` (:math:`\\mathrm{relu6}(x+3)/6`)."""
    name = activation if isinstance(activation, str) else activations.name_of(activations.get(activation))
    if name is None:  # a user's callable
        return None
    return _GAMMA.get(name)


class Verdict(NamedTuple):
    """What :func:`verdict` decided and the numbers it decided on.

    ``label``: ``"vanishing"``, ``"exploding"`` or ``"healthy"``; ``log_gain``: the batch mean of
    :math:`\\log\\lVert\\partial s_T/\\partial s_0\\rVert_2` (nats); ``log_gain_per_row (B,)``;
    ``rate``: ``log_gain / T`` (nats per step); ``low``, ``high``: the thresholds on the gain;
    ``steps``: T; ``gamma``, ``sigma_max``: :math:`\\gamma` and :math:`\\sigma_{\\max}(W_{rec})`
    of a SimpleRNN (None for gated cells); ``bound_rate``: :math:`\\log(\\gamma\\sigma_{\\max})`, the
    Pascanu bound on ``rate`` (None for gated cells).
    """

    label: str
    log_gain: float
    log_gain_per_row: np.ndarray
    rate: float
    low: float
    high: float
    steps: int
    gamma: Optional[float]
    sigma_max: Optional[float]
    bound_rate: Optional[float]


def verdict_label(log_gain: float, low: float = 1e-3, high: float = 1e3) -> str:
    r""":func:`verdict`'s label for a whole-sequence gain :math:`\log\lVert\partial s_T/\partial s_0\rVert`:
    ``"vanishing"`` below ``log(low)``, ``"exploding"`` above ``log(high)``, else ``"healthy"``."""
    if log_gain < math.log(low):
        return "vanishing"
    if log_gain > math.log(high):
        return "exploding"
    return "healthy"


def verdict(
    cell,
    params,
    xs: jax.Array,
    initial_state=None,
    mask: Optional[jax.Array] = None,
    *,
    low: float = 1e-3,
    high: float = 1e3,
    dropout_masks=None,
    go_backwards: bool = False,
) -> Verdict:
    """``"vanishing"``, ``"exploding"`` or ``"healthy"``, from the gain of the whole chain,
    :math:`G = \\lVert \\partial s_T/\\partial s_0 \\rVert_2`, along the trajectory on ``xs``.

    :math:`G` bounds how much of a gradient arriving at the last state reaches the first one, in
    its best-preserved direction: :math:`\\lVert \\partial L/\\partial s_0 \\rVert \\le G
    \\lVert \\partial L/\\partial s_T \\rVert`. The verdict compares the geometric mean of
    :math:`G` over the batch with two thresholds:

    * ``"vanishing"`` if :math:`G <` ``low`` (default :math:`10^{-3}`): less than a thousandth of
      the gradient at step T can reach step 0 in any direction, so what happened T steps back is
      effectively invisible to learning;
    * ``"exploding"`` if :math:`G >` ``high`` (default :math:`10^{3}`): some direction amplifies
      gradients a thousandfold over the sequence (the regime gradient clipping exists for);
    * ``"healthy"`` otherwise.

    The thresholds are on the whole sequence, so the same network may be healthy on 20 steps and
    vanishing on 200: ``rate`` = :math:`\\log G/T` (nats/step) is the length-free number, close to
    the largest Lyapunov exponent for long T (:func:`lyapunov_spectrum`).

    For a SimpleRNN, :math:`h_t = \\varphi(x_t K + h_{t-1} W_{rec} + b)`, Pascanu, Mikolov &
    Bengio (2013, §3.1) bound every factor :math:`\\lVert J_t \\rVert \\le \\gamma\\,
    \\sigma_{\\max}(W_{rec})` with :math:`\\gamma = \\sup|\\varphi'|` (1 for tanh, 1/4 for sigmoid), so

    .. math::
        \\Big\\lVert \\frac{\\partial h_t}{\\partial h_k} \\Big\\rVert
        \\le (\\gamma\\, \\sigma_{\\max}(W_{rec}))^{t-k}:

    :math:`\\gamma\\sigma_{\\max} < 1` is *sufficient* for vanishing (``rate`` ≤ ``bound_rate``
    < 0 whatever the inputs), and :math:`\\gamma\\sigma_{\\max} > 1` is *necessary* for exploding.
    The measured ``rate`` is usually well below the bound, as saturation makes
    :math:`|\\varphi'| < \\gamma`. Gated cells have no such simple bound (None).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from rnncore import analysis, cells
        >>> cell = cells.SimpleRNN(3)
        >>> p = cell.init(jax.random.PRNGKey(0), 2)._replace(recurrent_kernel=0.5 * jnp.eye(3))
        >>> v = analysis.verdict(cell, p, jnp.ones((1, 30, 2)))
        >>> v.label, v.rate <= v.bound_rate, round(v.bound_rate, 4)
        ('vanishing', True, -0.6931)
    """
    if not 0 < low < high:
        raise ValueError(f"low={low!r}, high={high!r}; expected 0 < low < high.")
    logn = singular_values_by_lag(
        cell, params, xs, initial_state, mask, 1, dropout_masks=dropout_masks, go_backwards=go_backwards
    )[:, -1, 0]
    per_row = np.asarray(logn, np.float64)
    mean = float(np.mean(per_row))
    steps = int(jnp.shape(xs)[1])
    label = verdict_label(mean, low, high)
    gamma = sigma = bound = None
    if isinstance(cell, cells.SimpleRNN):
        gamma = pascanu_gamma(cell.activation)
        sigma = float(np.linalg.norm(np.asarray(params.recurrent_kernel, np.float64), 2))
        if gamma is not None:
            bound = math.log(gamma * sigma) if gamma * sigma > 0 else -math.inf
    return Verdict(label, mean, per_row, mean / steps, float(low), float(high), steps, gamma, sigma, bound)
