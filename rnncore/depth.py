"""Depth: the chain through the layers of a stacked model, beside the chain through time.

:mod:`rnncore.bptt` opens the backward pass of one recurrent layer through time. A ``Sequential``
stacks them: the gradient reaching layer l's state at step t comes from its own later steps and from
everything above it, through the output :math:`h^{(l)}_t` that layer l+1 consumes. This module
follows that chain through depth.

* :func:`model_state_gradients`: :math:`\\partial L/\\partial s^{(l)}_t` for every recurrent layer
  and step, the total one (through time and through the layers above).
* :func:`cross_layer_jacobians`: :math:`\\partial s^{(l)}/\\partial s^{(l-1)}` at every position,
  the direct coupling between consecutive recurrent layers, which together with the per-step
  Jacobians of :func:`rnncore.bptt.step_jacobians` gives the stacked network's Jacobian
  (a ``Sequential``'s stack).

On a graph (:class:`rnncore.Model`) a recurrent layer called more than once is measured call by
call: :func:`per_call` gives the graph with one layer per recurrent call
(:meth:`rnncore.Model.per_call`), which the analyses run on.

Both run the model's own forward, :meth:`rnncore.models.Sequential.run`, which records what each
recurrent layer consumed (:class:`rnncore.layers.Consumed`) and takes zero "taps" added to each
layer's outputs and final state; there is no second copy of the model's semantics here (masks,
dropout keys, ``Bidirectional``'s flips and merges live in :mod:`rnncore.layers`).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, cast

import jax
import jax.numpy as jnp

from . import bptt, compilation, functional, layers
from .layers import Directions

__all__ = ["CrossLayerJacobian", "Directions", "as_mask", "per_call", "model_state_gradients", "cross_layer_jacobians"]


def as_mask(mask) -> Optional[jax.Array]:
    """A mask as the analyses of a model take it: None, or any ``(B, T)`` array, True where nonzero
    (a 0/1 float mask is the boolean one)."""
    return None if mask is None else jnp.asarray(mask).astype(bool)


def per_call(model, params, initial_states=None) -> tuple:
    """``(model, params, initial_states, origins)`` as the analyses read a model: a graph
    (:class:`rnncore.Model`) whose recurrent layer is called more than once becomes its split graph
    :meth:`rnncore.Model.per_call`, one layer per call with the layer's params (and its
    ``initial_states`` entry) in each; ``origins`` gives, per layer of the returned model, the
    index of the layer of ``model`` it is. Any other model is returned as it is (``origins`` the
    identity)."""
    if not isinstance(model, functional.Model):
        return model, params, initial_states, tuple(range(len(model.layers)))
    view = model.per_call()
    if view.model is model:
        return model, params, initial_states, view.origins
    model.check_params(params)
    return view.model, view.params(params), view.per_layer(initial_states), view.origins


class CrossLayerJacobian(NamedTuple):
    """:func:`cross_layer_jacobians` for one pair of consecutive recurrent layers.

    ``lower``, ``upper``: their indices in ``model.layers``; ``jacobian``: ``(B, T, S_upper,
    S_lower)``, or :class:`Directions` over the upper layer's directions (outer) and the lower
    layer's (inner) where either is ``Bidirectional``.
    """

    lower: int
    upper: int
    jacobian: Any


def _zero_tap(c: layers.Consumed):
    return (
        jnp.zeros(c.outputs.shape, c.outputs.dtype),
        jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), c.initial_state),
    )


def model_state_gradients(
    model,
    params,
    x: jax.Array,
    d_output,
    mask: Optional[jax.Array] = None,
    training: bool = False,
    rng: Optional[jax.Array] = None,
    *,
    initial_states=None,
) -> tuple:
    """:math:`\\partial L/\\partial s^{(l)}_t` for every recurrent layer l of a ``Sequential`` and
    every step t, for :math:`L = \\langle \\text{model.apply(params, x, mask)}, \\bar y\\rangle`
    with ``d_output`` :math:`= \\bar y` (the model's output structure and shapes; a tuple where
    the model returns one).

    The derivative is the total one with respect to the state after step t: everything computed
    from :math:`s_t` (as if a perturbation were added to :math:`s_t` right after the step), i.e.
    the output :math:`y_t = h_t` it carries, which flows up into layer l+1 and above, and every
    later step of layer l:

    .. math::
        \\frac{\\partial L}{\\partial s^{(l)}_t} = J^{(l)\\top}_{t+1}\\,
            \\frac{\\partial L}{\\partial s^{(l)}_{t+1}}
            + \\Big(\\frac{\\partial y^{(l)}_t}{\\partial s^{(l)}_t}\\Big)^{\\!\\top}
              \\frac{\\partial L}{\\partial y^{(l)}_t}

    (for LSTM :math:`\\partial y_t/\\partial s_t` selects ``h``; the final state's gradient,
    where the model returns it, enters at t = T). This is :attr:`rnncore.bptt.Gradients.states`
    of :func:`rnncore.bptt.backward`, which stops at what step t+1 receives, plus the share of
    :math:`y_t` itself. A masked step whose output is the carried ``h`` counts it there too; a zero
    output (``zero_output_for_mask``, e.g. inside ``Bidirectional`` with ``return_sequences``)
    depends on nothing.

    Computed as the chain through depth and time: one ``jax.grad`` with respect to zero "taps"
    added to each recurrent layer's output sequence and final state gives
    :math:`\\partial L/\\partial y^{(l)}_t` from everything above layer l; then the layer's
    explicit reverse scan (:func:`rnncore.bptt.backward`) runs the recursion above. The model runs
    its own forward, :meth:`rnncore.models.Sequential.run` with those taps (mask propagation,
    ``training`` and ``rng`` for dropout, ``initial_states``, as ``Sequential.apply``). A layer with
    ``truncate_gradient`` gives the truncated gradients its training pass uses, in its own scan and
    in the layers below it.

    On a graph (:class:`rnncore.Model`) the gradients run along its calls; a recurrent layer called
    more than once gives one entry per call: the entries are those of :func:`per_call`'s model,
    ``model.per_call().model.layers`` (where every recurrent layer is called once, that is
    ``model.layers`` itself).

    Returns:
        A tuple with one entry per layer of ``model.layers``: ``None`` for a non-recurrent layer;
        ``(B, T, S_l)`` for a recurrent one, ``[:, t-1]`` = :math:`\\partial L/\\partial s^{(l)}_t`
        in processing order (LSTM: the ``h`` part, then the ``c`` part); :class:`Directions`
        ``(forward, backward)`` of those for a ``Bidirectional`` layer, each direction in its own
        processing order.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> import rnncore as rc
        >>> model = rc.Sequential([rc.layers.LSTM(3, return_sequences=True), rc.layers.GRU(2),
        ...                        rc.layers.Dense(1)])
        >>> params = model.init(jax.random.PRNGKey(0), (5, 4))
        >>> g = rc.depth.model_state_gradients(model, params, jnp.ones((2, 5, 4)), jnp.ones((2, 1)))
        >>> [None if a is None else a.shape for a in g]
        [(2, 5, 6), (2, 5, 2), None]
    """
    mask = as_mask(mask)
    model, params, initial_states, _ = per_call(model, params, initial_states)
    out_shape = jax.eval_shape(lambda: model.run(params, x, mask, training, rng, initial_states=initial_states).output)
    if isinstance(d_output, list):
        d_output = tuple(d_output)
    out_leaves, out_tree = jax.tree_util.tree_flatten(out_shape)
    d_leaves, d_tree = jax.tree_util.tree_flatten(d_output)
    d_shapes = [tuple(jnp.shape(a)) for a in d_leaves]
    if cast(Any, d_tree) != out_tree or d_shapes != [tuple(a.shape) for a in out_leaves]:
        raise ValueError(
            f"d_output must match the model's output: shapes {[tuple(a.shape) for a in out_leaves]}; got {d_shapes}."
        )
    return compilation.jit_static(_model_state_gradients, model=model, training=bool(training))(
        params=params, x=x, d_output=d_output, mask=mask, rng=rng, initial_states=initial_states
    )


def _model_state_gradients(model, training, params, x, d_output, mask, rng, initial_states):
    def run(taps):
        out, consumed, _, _ = model.run(params, x, mask, training, rng, initial_states=initial_states, taps=taps)
        return out, consumed

    d_leaves = jax.tree_util.tree_leaves(d_output)
    _, consumed_shape = jax.eval_shape(lambda: run(None))

    def tap_for(c):
        if c is None:
            return None
        return Directions(_zero_tap(c.forward), _zero_tap(c.backward)) if isinstance(c, Directions) else _zero_tap(c)

    taps = tuple(tap_for(c) for c in consumed_shape)

    def objective(taps):
        out, consumed = run(taps)
        total = sum(jnp.sum(o * jnp.asarray(d, o.dtype)) for o, d in zip(jax.tree_util.tree_leaves(out), d_leaves))
        return total, consumed

    d_taps, consumed = jax.grad(objective, has_aux=True)(taps)

    def states(layer, c: layers.Consumed, dt):
        d_ys, d_final = dt
        later = bptt.backward(
            layer.cell,
            c.params,
            c.xs,
            d_ys,
            c.initial_state,
            c.mask,
            d_final_state=d_final,
            dropout_masks=c.dropout_masks,
            go_backwards=layer.go_backwards,
            zero_output_for_mask=layer.zero_output_for_mask,
            unroll=layer.unroll,
            truncate_gradient=getattr(layer, "truncate_gradient", None),
        ).states
        cell = layer.cell
        _, read_out = jax.vjp(lambda v: cell.output(cell.vector_to_state(v)), later)
        (own,) = read_out(jnp.where(layer.emits(c.mask)[:, :, None], d_ys, 0))
        return later + own

    result = []
    for layer, c, dt in zip(model.layers, consumed, d_taps):
        if c is None:
            result.append(None)
        elif isinstance(c, Directions):
            result.append(
                Directions(
                    states(layer.forward_layer, c.forward, dt.forward),
                    states(layer.backward_layer, c.backward, dt.backward),
                )
            )
        else:
            result.append(states(layer, c, dt))
    return tuple(result)


def cross_layer_jacobians(
    model, params, x: jax.Array, mask: Optional[jax.Array] = None, *, initial_states=None
) -> tuple:
    """The Jacobians through depth: for every pair of consecutive recurrent layers
    (l−1, l) of a ``Sequential`` (inference mode), :math:`C^{(l)}_\\tau = \\partial s^{(l)}/\\partial
    s^{(l-1)}` at every position τ of the sequence that flows between them.

    Layer l's input at position τ is layer l−1's output there, passed through the per-step
    layers between them (``Dense``, ``Dropout``, ``Masking``; identity when there are none), so

    .. math::
        C^{(l)}_\\tau = \\frac{\\partial s^{(l)}_{q(\\tau)}}{\\partial x^{(l)}_\\tau}\\,
                     \\frac{\\partial x^{(l)}_\\tau}{\\partial h^{(l-1)}_\\tau}\\,
                     \\frac{\\partial h^{(l-1)}_\\tau}{\\partial s^{(l-1)}_{p(\\tau)}}
        \\in \\mathbb{R}^{S_l \\times S_{l-1}}

    (column convention, like :func:`rnncore.bptt.step_jacobians`), where :math:`h^{(l-1)}_\\tau` is the
    sequence layer l−1 returns (the merged one for ``Bidirectional``),
    :math:`s^{(l-1)}_{p(\\tau)}` the state whose output sits at position τ and
    :math:`s^{(l)}_{q(\\tau)}` the state after the step that consumes position τ, both in their
    layer's processing-order numbering (:math:`s_0` the initial state): p(τ) = τ for a layer
    that runs forward and for a lone ``go_backwards`` layer (it returns its outputs in processing
    order), p(τ) = T − τ + 1 for the backward direction of a ``Bidirectional`` (its outputs are
    flipped back); q(τ) = τ, or T − τ + 1 for a ``go_backwards`` direction. For two forward
    layers, ``jacobian[:, t-1]`` = :math:`\\partial s^{(l)}_t/\\partial s^{(l-1)}_t`.

    :math:`C^{(l)}_\\tau` is the direct coupling, every other state held fixed. Where the lower
    layer runs forward it is also the total derivative (:math:`s^{(l-1)}_t` reaches
    :math:`s^{(l)}_t` by no other path); from a backward direction, a state also reaches earlier
    positions of the upper layer through its later steps, and the total derivative adds those paths.

    With the per-step Jacobians :math:`J^{(l)}_t` (:func:`rnncore.bptt.step_jacobians`) they give the stacked
    network's Jacobian :math:`\\partial (s^{(1)}_t, \\ldots, s^{(L)}_t)/\\partial (s^{(1)}_{t-1},
    \\ldots, s^{(L)}_{t-1})`: block-lower-triangular over layers, :math:`J^{(l)}_t` on the diagonal
    and :math:`\\partial s^{(l)}_t/\\partial s^{(m)}_{t-1} = C^{(l)}_t \\cdots C^{(m+1)}_t J^{(m)}_t`
    below it, for m < l (forward layers).

    The output is read from the state as :func:`model_state_gradients` reads it
    (:math:`h^{(l-1)}_\\tau` = the ``h`` of :math:`s^{(l-1)}_{p(\\tau)}`, a zero output depends on
    nothing), so both describe the same perturbation of :math:`s^{(l-1)}_{p(\\tau)}`. A masked
    position gives 0: layer l carries its state there.

    A ``Sequential`` only: a graph (:class:`rnncore.Model`) is refused with a ``ValueError``, as
    its recurrent layers need not feed one another position by position (an encoder's final state
    starting a decoder, two branches merged); :func:`model_state_gradients` and
    :func:`rnncore.analysis.gradient_flow` measure the gradient through a graph's depth.

    Returns:
        A tuple of :class:`CrossLayerJacobian` ``(lower, upper, jacobian)``, one per pair, in
        order; ``jacobian`` is ``(B, T, S_l, S_{l-1})`` with ``[:, τ-1]`` = :math:`C^{(l)}_\\tau`,
        or :class:`Directions` (upper directions, each of them :class:`Directions` over the lower
        directions where the lower layer is ``Bidirectional``).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> import rnncore as rc
        >>> model = rc.Sequential([rc.layers.SimpleRNN(3, return_sequences=True),
        ...                        rc.layers.LSTM(2, return_sequences=True)])
        >>> params = model.init(jax.random.PRNGKey(0), (5, 4))
        >>> (c,) = rc.depth.cross_layer_jacobians(model, params, jnp.ones((2, 5, 4)))
        >>> c.lower, c.upper, c.jacobian.shape
        (0, 1, (2, 5, 4, 3))
    """
    if isinstance(model, functional.Model):
        raise ValueError(
            "model is a graph (rnncore.Model); cross_layer_jacobians follows a stack of layers, each consuming the "
            "sequence the one before returns: supported: rnncore.Sequential (recurrent layers with Dense, Dropout or "
            "Masking between them). For a graph, rnncore.depth.model_state_gradients and "
            "rnncore.analysis.gradient_flow measure the gradient through depth."
        )
    mask = as_mask(mask)
    recurrent = [i for i, layer in enumerate(model.layers) if layers.is_recurrent(layer)]
    jacobians = compilation.jit_static(_cross_layer_jacobians, model=model)(
        params=params, x=x, mask=mask, initial_states=initial_states
    )
    return tuple(CrossLayerJacobian(lo, up, j) for lo, up, j in zip(recurrent, recurrent[1:], jacobians))


def _cross_layer_jacobians(model, params, x, mask, initial_states):
    _, consumed, masks_in, _ = model.run(params, x, mask, initial_states=initial_states)
    recurrent = [i for i, layer in enumerate(model.layers) if layers.is_recurrent(layer)]
    pairs = []
    for lo, up in zip(recurrent, recurrent[1:]):
        lower, upper = model.layers[lo], model.layers[up]
        between = [(model.layers[i], params[i]) for i in range(lo + 1, up)]
        lower_bi = layers.is_bidirectional(lower)
        lo_dirs = (lower.forward_layer, lower.backward_layer) if lower_bi else (lower,)
        lo_cons = tuple(consumed[lo]) if lower_bi else (consumed[lo],)
        up_dirs = (upper.forward_layer, upper.backward_layer) if layers.is_bidirectional(upper) else (upper,)
        up_cons = tuple(consumed[up]) if layers.is_bidirectional(upper) else (consumed[up],)
        steps = lo_cons[0].xs.shape[1]
        batch = lo_cons[0].xs.shape[0]
        up_mask = jnp.ones((batch, steps), bool) if masks_in[up] is None else masks_in[up]
        # outputs of each lower direction at each position, as the merge sees them
        lo_outputs = [c.outputs[:, ::-1] if (lower_bi and d == 1) else c.outputs for d, c in enumerate(lo_cons)]
        per_up = []
        for ub, (ul, uc) in enumerate(zip(up_dirs, up_cons)):
            up_states = _state_vectors(ul, uc)
            s_up_prev = up_states[:, ::-1][:, 1:] if ul.go_backwards else up_states[:, :-1]
            per_lo = []
            for la, (ll, lc) in enumerate(zip(lo_dirs, lo_cons)):
                lo_states = _state_vectors(ll, lc)[:, 1:]
                backward_half = lower_bi and la == 1
                s_lo = lo_states[:, ::-1] if backward_half else lo_states
                m_lo = jnp.broadcast_to(ll.emits(masks_in[lo]), (batch, steps))
                m_lo = m_lo[:, ::-1] if backward_half else m_lo
                other = lo_outputs[1 - la] if lower_bi else jnp.zeros_like(lo_outputs[0])
                fn = _coupling(lower.merge_mode if lower_bi else None, la, ll.cell, ul.cell, uc.params, between)
                jac = jax.vmap(jax.vmap(jax.jacfwd(fn)))(s_lo, s_up_prev, m_lo, up_mask, other)
                per_lo.append(jac)
            per_up.append(Directions(*per_lo) if lower_bi else per_lo[0])
        pairs.append(Directions(*per_up) if len(per_up) == 2 else per_up[0])
    return tuple(pairs)


def _state_vectors(layer, c: layers.Consumed) -> jax.Array:
    """``(B, T + 1, S)``: ``s_0 .. s_T`` of one direction, in its processing order."""
    tr = bptt.forward(
        layer.cell,
        c.params,
        c.xs,
        c.initial_state,
        c.mask,
        dropout_masks=c.dropout_masks,
        go_backwards=layer.go_backwards,
    )
    return layer.cell.state_to_vector(tr.states)


def _coupling(merge_mode, direction, lower_cell, upper_cell, upper_params, between):
    """One batch row, one position: the lower state ``s`` -> the upper state after the step that
    consumes the lower layer's output there (the other direction's output held fixed)."""

    def fn(s_lo, s_up_prev, m_lo, m_up, other):
        y = lower_cell.output(lower_cell.vector_to_state(s_lo[None]))
        y = jnp.where(m_lo, y, jnp.zeros_like(y))  # a zero output (masked step) is not a function of s
        if merge_mode is not None:
            pair = (y, other[None]) if direction == 0 else (other[None], y)
            y = layers.merge_directions(merge_mode, *pair)[0]
        for layer, p in between:
            y = layer.apply(p, y[:, None, :])[:, 0]
        new, _ = upper_cell.step(upper_params, upper_cell.vector_to_state(s_up_prev[None]), y)
        return jnp.where(m_up, upper_cell.state_to_vector(new)[0], s_up_prev)

    return fn
