r"""The compiled steps of :func:`rnncore.fit` and :func:`rnncore.train.evaluate`, and the cache that
lets a second run with equal settings reuse them.

**The training step** (:func:`make_train_step`) takes one batch, by its sample indices ``idx``
into the training data already on the device (and, for truncated BPTT, the chunk of ``length``
steps from ``t0``), and in one program computes

.. math::
    L = \mathrm{loss}(y, \hat y(\theta), w, m), \qquad g = \nabla_\theta L, \qquad
    \theta' = \theta + \mathrm{update}(g, \text{opt state}, \theta),

(:math:`\theta` the trainable params only, :func:`trainable`; the moving statistics of a
``BatchNormalization`` are replaced by those its training forward assigns), the metric updates
and the per-layer gradient norms :math:`\|g_\ell\|_2` (in float32). It also
checks that :math:`L`, every layer's :math:`g_\ell` and :math:`\theta'` are finite: a step that is
not keeps params, optimizer state, loss total and metrics as they were and records in
:class:`Health` the first bad step, what was bad (an index into
:data:`rnncore.history.NONFINITE_KINDS`) and the first bad layer (-1 for the loss); since the
health is carried, every later step is frozen too. ``good_params`` follows the params at which the
latest finite loss was measured. The state is donated: each step reuses its input's buffers.

The loss total is Keras's loss tracker, :math:`\sum_b n_b L_b` over :math:`\sum_b n_b`.

**The evaluation step** (:func:`make_eval_step`) accumulates the same totals and metrics with
``training=False`` and no update.

**Meshes.** With a mesh, a batch whose size is a multiple of the device count is constrained to
be split along its sample axis (:func:`sharded`); GSPMD adds the all-reduce of the gradient.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from rnncore import steps
    >>> steps.all_finite((jnp.ones(2), jnp.array([1.0, jnp.inf])))
    Array(False, dtype=bool)
    >>> float(steps.tree_norm((jnp.full(4, 2.0),)))
    4.0
"""

from __future__ import annotations

import collections
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from . import compilation, meshes
from . import layers as L

__all__ = [
    "Samples",
    "Health",
    "n_samples",
    "TrainState",
    "take",
    "on_device",
    "all_finite",
    "tree_norm",
    "slice_time",
    "sharded",
    "trainable",
    "with_non_trainable",
    "make_train_step",
    "make_eval_step",
    "cached",
    "COMPILED",
]


class Samples(NamedTuple):
    """Inputs ``x (N, T, F)`` (a tuple of such arrays, in the model's input order, for a graph of
    several inputs), targets ``y (N, ...)``, ``sample_weight (N,)`` or ``(N, T)`` or None,
    ``mask (N, T)`` bool or None: NumPy arrays after the checks, JAX arrays on the device."""

    x: Any
    y: Any
    sample_weight: Any
    mask: Any


def n_samples(samples: Samples) -> int:
    """The number of samples ``N`` (the leading size of the inputs)."""
    return int(jax.tree_util.tree_leaves(samples.x)[0].shape[0])


def take(samples: Samples, index: Any) -> Samples:
    """The rows ``index`` (an index array or a slice) of every array present, every input together."""
    return Samples(*(None if a is None else jax.tree_util.tree_map(lambda v: v[index], a) for a in samples))


def on_device(samples: Samples) -> Samples:
    """Every array present as a JAX array."""
    return Samples(*(None if a is None else jax.tree_util.tree_map(jnp.asarray, a) for a in samples))


class Health(NamedTuple):
    """Whether every step so far was finite (bool), and for the first that was not: its index in
    the epoch, what was non-finite (index into :data:`rnncore.history.NONFINITE_KINDS`) and the
    first bad layer (-1: the loss); int32 scalars."""

    ok: jax.Array
    step: jax.Array
    what: jax.Array
    layer: jax.Array

    @staticmethod
    def fine() -> "Health":
        """The health at the start of an epoch."""
        return Health(jnp.array(True), jnp.int32(0), jnp.int32(0), jnp.int32(0))


class TrainState(NamedTuple):
    """What a training step carries: params, ``good_params`` (those at which the latest finite loss
    was measured), optimizer state, the epoch's loss total and sample count, the metric states and
    the :class:`Health`."""

    params: Any
    good_params: Any
    opt_state: Any
    loss_total: jax.Array
    loss_count: jax.Array
    metric_states: tuple
    health: Health


def all_finite(tree: Any) -> jax.Array:
    """True where every element of every leaf of ``tree`` is finite (True for an empty tree)."""
    leaves = jax.tree_util.tree_leaves(tree)
    if not leaves:
        return jnp.array(True)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in leaves]))


def tree_norm(tree: Any) -> jax.Array:
    r""":math:`\sqrt{\sum_{\text{leaves}} \sum a^2}` in float32 (0 for an empty tree)."""
    leaves = jax.tree_util.tree_leaves(tree)
    if not leaves:
        return jnp.zeros([], jnp.float32)
    return jnp.sqrt(sum(jnp.sum(jnp.square(a.astype(jnp.float32))) for a in leaves))


def slice_time(a: Any, t0: Any, length: int) -> Any:
    """Steps ``t0 .. t0 + length - 1`` of ``a``'s time axis (axis 1); ``a`` as is when it has none."""
    if a is None or a.ndim < 2:
        return a
    return jax.lax.dynamic_slice_in_dim(a, t0, length, axis=1)


def sharded(batch: Samples, mesh: Optional[Any]) -> Samples:
    """The batch split along its sample axis over every mesh axis; replicated where the batch size
    is not a multiple of the device count (a smaller last batch)."""
    if mesh is None or n_samples(batch) % mesh.size:
        return batch
    spec = meshes.leading_axis_sharding(mesh)
    return Samples(
        *(
            None if a is None else jax.tree_util.tree_map(lambda v: jax.lax.with_sharding_constraint(v, spec), a)
            for a in batch
        )
    )


def _batch(data: Samples, idx, t0, length, chunked: bool, mesh) -> Samples:
    batch = Samples(
        *(None if a is None else jax.tree_util.tree_map(lambda v: jnp.take(v, idx, axis=0), a) for a in data)
    )
    if chunked:
        batch = Samples(*(slice_time(a, t0, length) for a in batch))
    return sharded(batch, mesh)


def _health(health: Health, loss_ok, grad_ok, param_ok, step_index) -> Health:
    """The health after a step whose loss, per-layer gradients and per-layer updates were (not) finite."""
    ok_now = loss_ok & jnp.all(grad_ok) & jnp.all(param_ok)
    first = health.ok & ~ok_now
    what = jnp.where(~loss_ok, 0, jnp.where(~jnp.all(grad_ok), 1, 2))
    layer = jnp.where(~loss_ok, -1, jnp.where(~jnp.all(grad_ok), jnp.argmin(grad_ok), jnp.argmin(param_ok)))
    return Health(
        health.ok & ok_now,
        jnp.where(first, step_index, health.step).astype(jnp.int32),
        jnp.where(first, what, health.what).astype(jnp.int32),
        jnp.where(first, layer, health.layer).astype(jnp.int32),
    )


def trainable(model: Any, params: Any) -> Any:
    """``params`` with every layer's non-trainable fields (moving statistics) set to None: the tree the
    gradient and the optimizer see, as Keras's optimizer sees only ``trainable_variables``; ``params``
    itself for a model without any."""
    if not any(L.non_trainable_fields(layer) for layer in model.layers):
        return params
    return tuple(L.trainable_part(layer, p) for layer, p in zip(model.layers, params))


def with_non_trainable(model: Any, train_params: Any, params: Any) -> Any:
    """``train_params`` with the non-trainable fields of ``params`` put back (the inverse of :func:`trainable`)."""
    if not any(L.non_trainable_fields(layer) for layer in model.layers):
        return train_params
    return tuple(L.with_non_trainable(layer, t, p) for layer, t, p in zip(model.layers, train_params, params))


def make_train_step(
    model: Any, loss: Any, metrics: tuple, optimizer: Any, training: bool, chunked: bool, mesh: Optional[Any] = None
) -> Callable:
    """The jitted ``step(state, data, idx, t0, rng, s0, step_index, length) -> (state, finals, norms)``:
    one optimizer step on the batch ``idx`` of ``data`` (a :class:`Samples` on the device), chunk
    ``[t0, t0 + length)`` when ``chunked``, from initial states ``s0``; ``finals`` are the layers'
    final states, ``norms`` the per-layer gradient norms. ``state`` (a :class:`TrainState`) is
    donated; ``length`` is static."""

    updates_statistics = training and any(L.has_moving_statistics(layer) for layer in model.layers)

    def compute(train_params, params, batch: Samples, rng, s0):
        full = with_non_trainable(model, train_params, params)
        if updates_statistics:
            y_pred, finals, out_mask, full = model.apply_and_update(full, batch.x, batch.mask, rng, s0)
        else:
            y_pred, finals, out_mask = model.apply_with_mask(full, batch.x, batch.mask, training, rng, s0)
        return loss(batch.y, y_pred, batch.sample_weight, out_mask), (y_pred, finals, out_mask, full)

    def step(state: TrainState, data: Samples, idx, t0, rng, s0, step_index, length):
        batch = _batch(data, idx, t0, length, chunked, mesh)
        train_params = trainable(model, state.params)
        (value, (y_pred, finals, out_mask, after)), grads = jax.value_and_grad(compute, has_aux=True)(
            train_params, state.params, batch, rng, s0
        )
        updates, opt_state = optimizer.update(grads, state.opt_state, train_params)
        # the trained fields from the optimizer, the moving statistics from this step's forward
        new_params = with_non_trainable(model, optax.apply_updates(train_params, updates), after)
        loss_ok = jnp.isfinite(value)
        health = _health(
            state.health,
            loss_ok,
            jnp.stack([all_finite(g) for g in grads]),
            jnp.stack([all_finite(p) for p in new_params]),
            step_index,
        )
        ok = health.ok

        def keep(new, old):
            return jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new, old)

        n = jnp.asarray(n_samples(batch), state.loss_total.dtype)
        metric_states = tuple(
            m.update(s, batch.y, y_pred, batch.sample_weight, out_mask) for m, s in zip(metrics, state.metric_states)
        )
        good = jax.tree_util.tree_map(
            lambda a, b: jnp.where(state.health.ok & loss_ok, a, b), state.params, state.good_params
        )
        new_state = TrainState(
            keep(new_params, state.params),
            good,
            keep(opt_state, state.opt_state),
            jnp.where(ok, state.loss_total + value.astype(n.dtype) * n, state.loss_total),
            jnp.where(ok, state.loss_count + n, state.loss_count),
            keep(metric_states, state.metric_states),
            health,
        )
        norms = jnp.stack([tree_norm(g) for g in grads])
        return new_state, finals, norms

    return compilation.jit(step, static_argnames=("length",), donate_argnums=(0,))


def make_eval_step(model: Any, loss: Any, metrics: tuple, mesh: Optional[Any] = None) -> Callable:
    """The jitted ``step(params, (total, count, metric_states), batch) -> (total, count, metric_states)``:
    the batch's loss times its size added to ``total``, its size to ``count``, its metric updates,
    with ``training=False``."""

    def step(params, totals, batch: Samples):
        batch = sharded(batch, mesh)
        y_pred, _, out_mask = model.apply_with_mask(params, batch.x, batch.mask, False, None, None)
        value = loss(batch.y, y_pred, batch.sample_weight, out_mask)
        total, count, metric_states = totals
        n = jnp.asarray(n_samples(batch), total.dtype)
        metric_states = tuple(
            m.update(s, batch.y, y_pred, batch.sample_weight, out_mask) for m, s in zip(metrics, metric_states)
        )
        return total + value.astype(total.dtype) * n, count + n, metric_states

    return compilation.jit(step)


#: The compiled steps by ``(maker name, *settings)``, most recently used last (16 kept).
COMPILED: "collections.OrderedDict[tuple, Callable]" = collections.OrderedDict()


def cached(make: Callable, *key: Any) -> Callable:
    """``make(*key)``, reused for an equal key: a second ``fit`` of the same model, loss, metrics
    and optimizer settings skips compiling its steps again (16 most recent kept in :data:`COMPILED`;
    an unhashable key is made anew every time)."""
    try:
        hash(key)
    except TypeError:
        return make(*key)
    full = (make.__name__,) + key
    if full in COMPILED:
        COMPILED.move_to_end(full)
        return COMPILED[full]
    COMPILED[full] = made = make(*key)
    if len(COMPILED) > 16:
        COMPILED.popitem(last=False)
    return made
