r"""``fit``: training on optax with Keras's definitions, truncated BPTT, and a run that cannot be lost.

:func:`fit` trains a :class:`rnncore.Sequential` the way ``keras.Model.fit`` does, number for
number (with :mod:`rnncore.optimizers` and ``shuffle=False`` a Keras model and its
``rc.from_keras`` twin give the same per-epoch losses and final weights in float32):

* batches are consecutive slices of the (per-epoch permuted, with ``shuffle=True``) training
  samples; the last batch may be smaller. ``validation_split=v`` keeps the last
  :math:`N - \lfloor N(1-v) \rfloor` samples, before shuffling, for validation, as Keras does;
* one step: :math:`L = \mathrm{loss}(y, \hat y(\theta), w, m)` with Keras's reduction
  (:mod:`rnncore.losses`; :math:`m` the mask the model attaches to its output), the gradient
  :math:`\nabla_\theta L` by the layers' explicit BPTT, then one optimizer update;
* the epoch's ``"loss"`` is Keras's loss tracker, the batch losses weighted by batch size,
  :math:`\sum_b n_b L_b / \sum_b n_b`, each :math:`L_b` taken before its update; metrics
  accumulate over every sample of the epoch (:mod:`rnncore.metrics`; ``metrics`` unweighted,
  ``weighted_metrics`` weighted by ``sample_weight``, as Keras does); ``"val_*"`` the same over the
  validation batches with the params at the end of the epoch, ``training=False``.

On top of Keras:

* **Non-finite values stop the run, and nothing is lost.** Each step checks, inside the compiled
  step, that the loss, every layer's gradient and the updated params are finite; a step that is
  not leaves params and optimizer state as they were and freezes every later step. The run stops
  at the end of that epoch's check and returns the last good params — those at which the latest
  finite loss was measured: the params of the failing step when its gradient or update was
  non-finite, the params before the previous update when the loss itself was — with
  ``history.diverged`` (a :class:`Divergence`: epoch, step, the first layer whose gradient was
  non-finite) and a ``RuntimeWarning``; ``on_nonfinite="raise"`` raises :class:`TrainingDiverged`
  carrying the params and history instead.
* **Gradient norms per layer** for every step (``gradient_norms=True``):
  ``history.gradient_norms`` is ``(steps, layers)``, :math:`\|\nabla_{\theta_\ell} L\|_2` before
  clipping.
* **Truncated BPTT** (Williams & Peng 1990; Sutskever 2013, §2.8.6): ``chunk_length=k1`` cuts each
  batch of sequences into chunks of k1 steps, one optimizer step per chunk, the final states of
  one chunk the initial states of the next (Keras's ``stateful`` pattern; states reset to zero at
  each new batch); ``truncate_gradient=k2`` cuts the gradient's chain every k2 steps inside each
  chunk. ``y`` then has a time axis, sliced like ``x``. The validation loss is taken on whole
  sequences (the chunked forward pass with carried states equals the whole one).
* **Checkpoints**: ``checkpoint=path`` saves params, optimizer state, epoch, step and history
  atomically at the end of every epoch (:mod:`rnncore.checkpoints`); ``resume=True`` continues
  from the file if it exists. Shuffling (permutation ``fold_in(PRNGKey(seed), epoch)``) and
  dropout (key ``fold_in(fold_in(PRNGKey(seed), 1 << 30), step)``) depend only on the epoch and
  step, so a resumed run equals an uninterrupted one.
* **Data parallel over devices**: ``mesh=`` (a ``jax.sharding.Mesh``, or a sequence of devices,
  which becomes ``Mesh(devices, ("batch",))``) runs the same jitted step with every batch sharded
  along its sample axis over all the mesh's axes (``NamedSharding(mesh, PartitionSpec(axes))``)
  and params, optimizer state and the data replicated; GSPMD inserts the all-reduce of the
  gradient (Xu et al. 2021, arXiv:2105.04663). Results equal the single-device run up to the
  order of the sums across shards (float32: ~1e-6 relative after a few epochs; float64: ~1e-15).
  ``batch_size`` must be a multiple of the device count (a ``ValueError`` otherwise); a smaller
  last batch that is not runs replicated, every device computing all of it, so results never
  depend on the device count. Validation batches are sharded the same way.
* Progress: ``verbose="auto"`` shows a progress bar on a terminal and one line per epoch otherwise
  (``1``: bar, ``2``: lines, ``0``: silent).

Example:
    >>> import jax, jax.numpy as jnp
    >>> import rnncore as rc
    >>> x, y = rc.data.adding_problem(64, 10, seed=0)
    >>> model = rc.Sequential([rc.layers.LSTM(8), rc.layers.Dense(1)])
    >>> params = model.init(jax.random.PRNGKey(1), input_shape=(10, 2))
    >>> params, history = rc.fit(model, params, x, y, loss="mse", optimizer=rc.optimizers.adam(1e-2),
    ...                          metrics=["mae"], epochs=3, batch_size=16, verbose=0)
    >>> sorted(history.history), len(history.history["loss"])
    (['loss', 'mae'], 3)
"""

from __future__ import annotations

import collections
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Callable, NamedTuple, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from . import checkpoints, compilation
from . import layers as L
from . import losses as _losses
from . import metrics as _metrics
from . import optimizers as _optimizers
from . import sweeps

__all__ = ["fit", "evaluate", "History", "Divergence", "TrainingDiverged", "Run", "get_optimizer"]

OPTIMIZERS: dict[str, Callable] = {
    "adam": _optimizers.adam, "adamw": _optimizers.adamw, "rmsprop": _optimizers.rmsprop,
    "sgd": _optimizers.sgd, "adagrad": _optimizers.adagrad,
}


def get_optimizer(optimizer) -> optax.GradientTransformation:
    """An optax transformation, or a Keras optimizer name with Keras's defaults
    (``"adam"``, ``"adamw"``, ``"rmsprop"``, ``"sgd"``, ``"adagrad"``)."""
    if isinstance(optimizer, str):
        name = optimizer.lower()
        if name not in OPTIMIZERS:
            raise ValueError(f"optimizer={optimizer!r}; expected an optax GradientTransformation or one of "
                             f"{', '.join(map(repr, OPTIMIZERS))}.")
        return OPTIMIZERS[name]()
    if isinstance(optimizer, optax.GradientTransformation) or (
            hasattr(optimizer, "init") and hasattr(optimizer, "update")):
        return optimizer
    raise ValueError(f"optimizer must be an optax GradientTransformation or a name; got {type(optimizer).__name__}.")


# --- what a run returns ---------------------------------------------------------------------------

_WHAT = ("loss", "gradient", "updated params")


class Divergence(NamedTuple):
    """Where a run met a non-finite value: ``epoch`` and ``step`` (both from 0; ``step`` counts
    optimizer steps within the epoch), ``what`` (``"loss"``, ``"gradient"`` or
    ``"updated params"``), ``layer`` (index of the first layer whose gradient or update was
    non-finite; None when the loss itself was) and its name."""

    epoch: int
    step: int
    what: str
    layer: Optional[int]
    layer_name: Optional[str]

    def message(self) -> str:
        where = f"epoch {self.epoch + 1}, step {self.step + 1}"
        if self.layer is None:
            return f"the loss became non-finite (NaN/inf) at {where}"
        return f"the {self.what} of layer {self.layer} ({self.layer_name}) became non-finite (NaN/inf) at {where}"


class History:
    """Keras's ``History``: ``history`` (dict of per-epoch lists of floats), ``epoch`` (the epoch
    indices run), ``params`` (the settings of the run); and ``gradient_norms`` (``(steps, layers)``
    NumPy array or None), ``layer_names``, ``diverged`` (a :class:`Divergence` or None)."""

    def __init__(self):
        self.history: dict[str, list] = {}
        self.epoch: list[int] = []
        self.params: dict = {}
        self.gradient_norms: Optional[np.ndarray] = None
        self.layer_names: tuple = ()
        self.diverged: Optional[Divergence] = None

    def _append(self, epoch: int, logs: dict) -> None:
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)}, diverged={self.diverged})"


class TrainingDiverged(RuntimeError):
    """Raised by ``fit(..., on_nonfinite="raise")``; ``params`` are the last good params, ``history``
    the run so far, ``divergence`` the :class:`Divergence`."""

    def __init__(self, message: str, params, history: History, divergence: Divergence):
        super().__init__(message)
        self.params, self.history, self.divergence = params, history, divergence


@dataclass
class Run:
    """The run in progress, as callbacks see it (see :mod:`rnncore.callbacks`)."""

    model: Any
    params: Any
    history: History
    metric_directions: dict = field(default_factory=dict)
    stop_training: bool = False


# --- input checks ---------------------------------------------------------------------------------

def _array(value, name: str, dtype=None) -> np.ndarray:
    try:
        a = np.asarray(value) if dtype is None else np.asarray(value, dtype=dtype)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{name} must be an array; got {type(value).__name__} ({e}).") from None
    if a.dtype == object:
        raise ValueError(f"{name} must be a numeric array; got ragged or object data (pad it with "
                         "rnncore.data.pad_sequences).")
    return a


def _first_nonfinite(a: np.ndarray, name: str) -> None:
    if np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.complexfloating):
        bad = ~np.isfinite(a)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"{name} holds NaN or inf (first at index {where}); clean or mask the data first.")


class _Data(NamedTuple):
    x: Any
    y: Any
    sample_weight: Any
    mask: Any


def _check_data(x, y, sample_weight, mask, prefix: str = "") -> _Data:
    x = _array(x, f"{prefix}x")
    if x.ndim != 3:
        raise ValueError(f"{prefix}x must be (samples, time, features); got shape {x.shape}.")
    n = x.shape[0]
    if n == 0:
        raise ValueError(f"{prefix}x is empty (shape {x.shape}); fit needs at least one sample.")
    if y is None:
        raise ValueError(f"{prefix}y is missing; fit needs targets.")
    y = _array(y, f"{prefix}y")
    if y.ndim == 0 or y.shape[0] != n:
        raise ValueError(f"{prefix}x and {prefix}y must have the same number of samples; "
                         f"got x {x.shape} ({n} samples) and y {y.shape}.")
    _first_nonfinite(x, f"{prefix}x")
    _first_nonfinite(y, f"{prefix}y")
    if sample_weight is not None:
        sample_weight = _array(sample_weight, f"{prefix}sample_weight")
        if sample_weight.ndim not in (1, 2) or sample_weight.shape[0] != n:
            raise ValueError(f"{prefix}sample_weight must be (samples,) or (samples, time) with {n} samples; "
                             f"got shape {sample_weight.shape}.")
        _first_nonfinite(sample_weight, f"{prefix}sample_weight")
    if mask is not None:
        mask = _array(mask, f"{prefix}mask")
        if mask.shape != x.shape[:2]:
            raise ValueError(f"{prefix}mask must be (samples, time) = {x.shape[:2]}; got shape {mask.shape}.")
        mask = mask.astype(bool)
    return _Data(x, y, sample_weight, mask)


def _take(d: _Data, index) -> _Data:
    return _Data(*(None if a is None else a[index] for a in d))


def _device(d: _Data) -> _Data:
    return _Data(*(None if a is None else jnp.asarray(a) for a in d))


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {value!r}.")
    return int(value)


def _validation(validation_data, validation_split, data: _Data):
    if validation_data is not None:
        if validation_split:
            raise ValueError("pass validation_data or validation_split, not both.")
        if not isinstance(validation_data, (tuple, list)) or not 2 <= len(validation_data) <= 4:
            raise ValueError("validation_data must be (x, y), (x, y, sample_weight) or (x, y, sample_weight, "
                             f"mask); got {type(validation_data).__name__} of length "
                             f"{len(validation_data) if isinstance(validation_data, (tuple, list)) else '-'}.")
        parts = list(validation_data) + [None] * (4 - len(validation_data))
        return data, _check_data(*parts, prefix="validation_data ")
    v = float(validation_split)
    if not 0.0 <= v < 1.0:
        raise ValueError(f"validation_split must be in [0, 1); got {validation_split!r}.")
    if v == 0.0:
        return data, None
    n = data.x.shape[0]
    split_at = int(math.floor(n * (1.0 - v)))
    if split_at == 0 or split_at == n:
        raise ValueError(f"validation_split={validation_split} leaves {split_at} training and {n - split_at} "
                         f"validation samples out of {n}; both need at least one.")
    return _take(data, slice(0, split_at)), _take(data, slice(split_at, n))


# --- the model the gradient sees --------------------------------------------------------------------

def _truncated(model, k2: Optional[int]):
    if k2 is None:
        return model
    layers = []
    for layer in model.layers:
        if isinstance(layer, L.Bidirectional):
            layer = L.Bidirectional(replace(layer.forward_layer, truncate_gradient=k2), layer.merge_mode,
                                    backward_layer=replace(layer.backward_layer, truncate_gradient=k2))
        elif isinstance(layer, L.RNN):
            layer = replace(layer, truncate_gradient=k2, backward_pass="explicit")
        layers.append(layer)
    return type(model)(layers)


def _copy(tree):
    return jax.tree_util.tree_map(lambda a: jnp.array(a, copy=True), tree)


def _layer_names(model) -> tuple:
    return tuple(f"{i}:{type(layer).__name__}" for i, layer in enumerate(model.layers))


# --- the compiled steps ---------------------------------------------------------------------------

class _Health(NamedTuple):
    ok: jax.Array      # bool: every step so far finite
    step: jax.Array    # int32: first bad step in the epoch
    what: jax.Array    # int32: index into _WHAT
    layer: jax.Array   # int32: first bad layer (-1: the loss)


class _State(NamedTuple):
    params: Any
    good_params: Any  # the params at which the latest finite loss was measured
    opt_state: Any
    loss_total: jax.Array
    loss_count: jax.Array
    metric_states: tuple
    health: _Health


def _all_finite(tree) -> jax.Array:
    leaves = jax.tree_util.tree_leaves(tree)
    if not leaves:
        return jnp.array(True)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in leaves]))


def _norm(tree) -> jax.Array:
    leaves = jax.tree_util.tree_leaves(tree)
    if not leaves:
        return jnp.zeros([], jnp.float32)
    return jnp.sqrt(sum(jnp.sum(jnp.square(a.astype(jnp.float32))) for a in leaves))


def _slice_time(a, t0, length):
    if a is None or a.ndim < 2:
        return a
    return jax.lax.dynamic_slice_in_dim(a, t0, length, axis=1)


_COMPILED: "collections.OrderedDict" = collections.OrderedDict()


def _cached(make, *key):
    """``make(*key)``, reused for an equal key: a second ``fit`` of the same model, loss, metrics
    and optimizer settings skips compiling its steps again (16 most recent kept)."""
    try:
        hash(key)
    except TypeError:
        return make(*key)
    full = (make.__name__,) + key
    if full in _COMPILED:
        _COMPILED.move_to_end(full)
        return _COMPILED[full]
    _COMPILED[full] = made = make(*key)
    if len(_COMPILED) > 16:
        _COMPILED.popitem(last=False)
    return made


def batch_mesh(mesh) -> Optional[Mesh]:
    """``None``, a ``jax.sharding.Mesh`` (as is), or a sequence of devices as ``Mesh(devices, ("batch",))``."""
    return sweeps.mesh_over(mesh, "batch")


def _replicated(tree, mesh):
    return tree if mesh is None else jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def _sharded(batch: _Data, mesh) -> _Data:
    """The batch split along its sample axis over every mesh axis; replicated where the batch size
    is not a multiple of the device count (a smaller last batch)."""
    if mesh is None or batch.x.shape[0] % mesh.size:
        return batch
    spec = NamedSharding(mesh, PartitionSpec(mesh.axis_names))
    return _Data(*(None if a is None else jax.lax.with_sharding_constraint(a, spec) for a in batch))


def _make_train_step(model, loss, metrics, optimizer, training, chunked, mesh=None):
    def compute(params, batch: _Data, rng, s0):
        y_pred, finals, out_mask = model.apply_with_mask(params, batch.x, batch.mask, training, rng, s0)
        return loss(batch.y, y_pred, batch.sample_weight, out_mask), (y_pred, finals, out_mask)

    def step(state: _State, data: _Data, idx, t0, rng, s0, step_index, length):
        batch = _Data(*(None if a is None else jnp.take(a, idx, axis=0) for a in data))
        if chunked:
            batch = _Data(_slice_time(batch.x, t0, length), _slice_time(batch.y, t0, length),
                          _slice_time(batch.sample_weight, t0, length), _slice_time(batch.mask, t0, length))
        batch = _sharded(batch, mesh)
        (value, (y_pred, finals, out_mask)), grads = jax.value_and_grad(compute, has_aux=True)(
            state.params, batch, rng, s0)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        new_params = optax.apply_updates(state.params, updates)
        grad_ok = jnp.stack([_all_finite(g) for g in grads])
        param_ok = jnp.stack([_all_finite(p) for p in new_params])
        loss_ok = jnp.isfinite(value)
        ok_now = loss_ok & jnp.all(grad_ok) & jnp.all(param_ok)
        ok = state.health.ok & ok_now
        first = state.health.ok & ~ok_now
        what = jnp.where(~loss_ok, 0, jnp.where(~jnp.all(grad_ok), 1, 2))
        layer = jnp.where(~loss_ok, -1, jnp.where(~jnp.all(grad_ok), jnp.argmin(grad_ok), jnp.argmin(param_ok)))
        h = state.health
        health = _Health(ok, jnp.where(first, step_index, h.step).astype(jnp.int32),
                         jnp.where(first, what, h.what).astype(jnp.int32),
                         jnp.where(first, layer, h.layer).astype(jnp.int32))

        def keep(new, old):
            return jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new, old)

        n = jnp.asarray(batch.x.shape[0], state.loss_total.dtype)
        metric_states = tuple(m.update(s, batch.y, y_pred, batch.sample_weight, out_mask)
                              for m, s in zip(metrics, state.metric_states))
        good = jax.tree_util.tree_map(lambda a, b: jnp.where(state.health.ok & loss_ok, a, b), state.params,
                                      state.good_params)
        new_state = _State(keep(new_params, state.params), good, keep(opt_state, state.opt_state),
                           jnp.where(ok, state.loss_total + value.astype(n.dtype) * n, state.loss_total),
                           jnp.where(ok, state.loss_count + n, state.loss_count),
                           keep(metric_states, state.metric_states), health)
        norms = jnp.stack([_norm(g) for g in grads])
        return new_state, finals, norms

    return compilation.jit(step, static_argnames=("length",), donate_argnums=(0,))


def _make_eval_step(model, loss, metrics, mesh=None):
    def step(params, totals, batch: _Data):
        batch = _sharded(batch, mesh)
        y_pred, _, out_mask = model.apply_with_mask(params, batch.x, batch.mask, False, None, None)
        value = loss(batch.y, y_pred, batch.sample_weight, out_mask)
        total, count, metric_states = totals
        n = jnp.asarray(batch.x.shape[0], total.dtype)
        metric_states = tuple(m.update(s, batch.y, y_pred, batch.sample_weight, out_mask)
                              for m, s in zip(metrics, metric_states))
        return total + value.astype(total.dtype) * n, count + n, metric_states

    return compilation.jit(step)


# --- progress -------------------------------------------------------------------------------------

def _fmt(logs: dict) -> str:
    return " - ".join(f"{k}: {v:.4g}" for k, v in logs.items())


class _Progress:
    def __init__(self, verbose, epochs: int, steps: int, stream=None):
        self.stream = sys.stdout if stream is None else stream
        if verbose == "auto":
            isatty = getattr(self.stream, "isatty", lambda: False)
            verbose = 1 if isatty() else 2
        if verbose not in (0, 1, 2):
            raise ValueError(f"verbose={verbose!r}; expected 'auto', 0, 1 or 2.")
        self.mode, self.epochs, self.steps = verbose, epochs, steps
        self.last = 0.0

    def epoch_begin(self, epoch: int) -> None:
        self.start = time.perf_counter()
        if self.mode == 1:
            print(f"Epoch {epoch + 1}/{self.epochs}", file=self.stream)

    def step(self, done: int, loss: Callable[[], float]) -> None:
        now = time.perf_counter()
        if self.mode != 1 or (now - self.last < 0.1 and done < self.steps):
            return
        self.last = now
        width = 30
        filled = int(width * done / self.steps)
        bar = "=" * max(filled - 1, 0) + (">" if filled < width else "=") + "." * (width - filled)
        self.stream.write(f"\r{done}/{self.steps} [{bar}] - loss: {loss():.4g}")
        self.stream.flush()

    def epoch_end(self, epoch: int, logs: dict) -> None:
        seconds = time.perf_counter() - self.start
        if self.mode == 1:
            self.stream.write(f"\r{self.steps}/{self.steps} [{'=' * 30}] - {seconds:.1f}s - {_fmt(logs)}\n")
        elif self.mode == 2:
            self.stream.write(f"Epoch {epoch + 1}/{self.epochs} - {seconds:.1f}s - {_fmt(logs)}\n")
        self.stream.flush()


# --- fit ------------------------------------------------------------------------------------------

def _batches(n: int, batch_size: int, perm) -> list:
    return [perm[i:i + batch_size] for i in range(0, n, batch_size)]


class _Tracked(NamedTuple):
    """A metric as a run tracks it: its history key, and whether it sees the sample weights
    (Keras: ``weighted_metrics`` do, ``metrics`` do not; both see the output mask)."""

    metric: Any
    key: str
    weighted: bool

    @property
    def direction(self):
        return self.metric.direction

    def init(self):
        return self.metric.init()

    def update(self, state, y_true, y_pred, sample_weight, mask):
        return self.metric.update(state, y_true, y_pred, sample_weight if self.weighted else None, mask)

    def result(self, state):
        return self.metric.result(state)


def _metric_objects(metrics, weighted_metrics, loss, data: _Data, y_pred_shape) -> tuple:
    tracked = []
    for weighted, group, arg in ((False, metrics, "metrics"), (True, weighted_metrics, "weighted_metrics")):
        if isinstance(group, (str, bytes)) or callable(group):
            group = [group]
        for m in group:
            metric = _metrics.get(m, y_true=data.y, y_pred=y_pred_shape, loss=loss)
            key = metric.name
            if weighted and key in {t.key for t in tracked}:
                key = f"weighted_{key}"  # Keras's name for a weighted twin of an unweighted metric
            if key == "loss" or key in {t.key for t in tracked}:
                raise ValueError(f"{arg}: {m!r} gives the history key {key!r}, which is already taken.")
            tracked.append(_Tracked(metric, key, weighted))
    return tuple(tracked)


def _results(metrics, states) -> dict:
    return {m.key: float(m.result(s)) for m, s in zip(metrics, states)}


def evaluate(model, params, x, y, *, loss="mse", metrics=(), weighted_metrics=(), batch_size: int = 32,
             sample_weight=None, mask=None) -> dict:
    """Keras's ``evaluate``: ``{"loss": ..., metric: ...}`` over batches of ``batch_size``, the loss
    the batch-size weighted mean of batch losses, the metrics accumulated over all samples,
    ``training=False``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> import rnncore as rc
        >>> model = rc.Sequential([rc.layers.GRU(2), rc.layers.Dense(1)])
        >>> params = model.init(jax.random.PRNGKey(0), input_shape=(3, 1))
        >>> sorted(rc.train.evaluate(model, params, jnp.ones((5, 3, 1)), jnp.ones((5, 1)), metrics=["mae"]))
        ['loss', 'mae']
    """
    data = _check_data(x, y, sample_weight, mask)
    batch_size = _positive_int(batch_size, "batch_size")
    loss_obj = _losses.get(loss)
    y_shape = jax.eval_shape(lambda p, xb: model.apply(p, xb), params, jnp.asarray(data.x[:1]))
    metric_objs = _metric_objects(metrics, weighted_metrics, loss_obj, data, y_shape)
    return _evaluate(_cached(_make_eval_step, model, loss_obj, metric_objs), metric_objs, params, _device(data), batch_size)


def _evaluate(step, metric_objs, params, data: _Data, batch_size: int) -> dict:
    dtype = jnp.result_type(*jax.tree_util.tree_leaves(params)[:1], jnp.float32)
    totals = (jnp.zeros([], dtype), jnp.zeros([], dtype), tuple(m.init() for m in metric_objs))
    n = data.x.shape[0]
    for i in range(0, n, batch_size):
        totals = step(params, totals, _take(data, slice(i, min(i + batch_size, n))))
    total, count, states = totals
    return {"loss": float(total / count), **_results(metric_objs, states)}


def fit(model, params, x, y, *, loss: Union[str, Callable] = "mse", optimizer="rmsprop", metrics: Sequence = (),
        weighted_metrics: Sequence = (), epochs: int = 1, batch_size: int = 32, shuffle: bool = True, seed: int = 0,
        validation_split: float = 0.0, validation_data=None, sample_weight=None, mask=None,
        callbacks: Sequence = (), initial_epoch: int = 0, verbose: Union[str, int] = "auto",
        gradient_norms: bool = False, chunk_length: Optional[int] = None,
        truncate_gradient: Optional[int] = None, checkpoint=None, resume: bool = False,
        on_nonfinite: str = "stop", training: bool = True, mesh=None):
    r"""Train ``model`` from ``params``; returns ``(params, history)`` (see the module docstring).

    Args:
        model: an :class:`rnncore.Sequential`. params: its params (not modified; the run works on a
            copy).
        x: ``(N, T, F)``; y: targets with ``N`` rows, as the loss expects them.
        loss: a Keras loss name, an :mod:`rnncore.losses` loss, or a callable
            ``(y_true, y_pred) -> per-sample values``.
        optimizer: an optax ``GradientTransformation`` (e.g. :func:`rnncore.optimizers.adam`) or a
            Keras optimizer name (Keras's defaults; ``"rmsprop"`` like ``Model.compile``).
        metrics: Keras metric names or :mod:`rnncore.metrics` objects; as in Keras they see the
            output mask but not ``sample_weight``. weighted_metrics: the same, weighted by
            ``sample_weight`` (history key ``weighted_<name>`` where the name is taken).
        epochs, batch_size, shuffle, validation_split, validation_data, sample_weight,
            initial_epoch: Keras's meanings. ``validation_data`` is ``(x, y)``,
            ``(x, y, sample_weight)`` or ``(x, y, sample_weight, mask)``.
        seed: shuffling and dropout keys. mask: ``(N, T)`` bool, True for real steps.
        callbacks: see :mod:`rnncore.callbacks` (``EarlyStopping``).
        verbose: ``"auto"``, 0, 1 (progress bar) or 2 (a line per epoch).
        gradient_norms: record each step's gradient norm per layer in ``history.gradient_norms``.
        chunk_length, truncate_gradient: truncated BPTT (k1, k2).
        checkpoint, resume: a ``.npz`` path saved at every epoch end; continue from it.
        on_nonfinite: ``"stop"`` (warn, return the last good params) or ``"raise"``.
        training: run dropout layers in training mode (Keras: True during fit).
        mesh: None (one device), a ``jax.sharding.Mesh`` or a sequence of devices: data-parallel
            training, each batch sharded over the devices (see the module docstring).

    Returns:
        ``(params, history)``: the trained params and a :class:`History`.
    """
    if not hasattr(model, "apply_with_mask") or not hasattr(model, "layers"):
        raise ValueError(f"model must be an rnncore.Sequential; got {type(model).__name__}.")
    model._check_params(params)
    batch_size = _positive_int(batch_size, "batch_size")
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
        raise ValueError(f"epochs must be an integer >= 0; got {epochs!r}.")
    if isinstance(initial_epoch, bool) or not isinstance(initial_epoch, (int, np.integer)) or initial_epoch < 0:
        raise ValueError(f"initial_epoch must be an integer >= 0; got {initial_epoch!r}.")
    if on_nonfinite not in ("stop", "raise"):
        raise ValueError(f"on_nonfinite={on_nonfinite!r}; expected 'stop' or 'raise'.")
    if chunk_length is not None:
        chunk_length = _positive_int(chunk_length, "chunk_length")
    if truncate_gradient is not None:
        truncate_gradient = _positive_int(truncate_gradient, "truncate_gradient")
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint=path.")
    mesh = batch_mesh(mesh)
    if mesh is not None and batch_size % mesh.size:
        raise ValueError(f"batch_size={batch_size} must be a multiple of the {mesh.size} devices of mesh= so that "
                         "every batch splits evenly over them.")

    data = _check_data(x, y, sample_weight, mask)
    train_data, val_data = _validation(validation_data, validation_split, data)
    loss_obj = _losses.get(loss)
    optimizer = get_optimizer(optimizer)
    grad_model = _truncated(model, truncate_gradient)
    n_train, n_steps_total = train_data.x.shape[0], train_data.x.shape[1]

    y_shape = jax.eval_shape(lambda p, xb: model.apply(p, xb), params, jnp.asarray(train_data.x[:1]))
    metric_objs = _metric_objects(metrics, weighted_metrics, loss_obj, train_data, y_shape)
    chunks = [(0, n_steps_total)]
    if chunk_length is not None:
        if any(isinstance(layer, L.Bidirectional) for layer in model.layers):
            raise ValueError("chunk_length: a Bidirectional layer cannot carry its state from chunk to chunk.")
        if len(getattr(y_shape, "shape", ())) != 3 or train_data.y.ndim < 2 or train_data.y.shape[1] != n_steps_total:
            raise ValueError(f"chunk_length needs a model that outputs a sequence (return_sequences=True) and y with "
                             f"the same time axis as x ({n_steps_total} steps); got model output "
                             f"{getattr(y_shape, 'shape', y_shape)} and y {train_data.y.shape}.")
        chunks = [(t, min(chunk_length, n_steps_total - t)) for t in range(0, n_steps_total, chunk_length)]
    chunked = chunk_length is not None

    params = _copy(params)  # the step donates its input
    opt_state = optimizer.init(params)
    history = History()
    history.layer_names = _layer_names(model)
    start_epoch, global_step = int(initial_epoch), 0
    if resume and os.path.exists(os.fspath(checkpoint)):
        ckpt = checkpoints.load_checkpoint(checkpoint, model, params, opt_state)
        params = ckpt.params
        opt_state = ckpt.opt_state if ckpt.opt_state is not None else opt_state
        start_epoch, global_step = int(ckpt.epoch), int(ckpt.step)
        history.history = {k: list(v) for k, v in ckpt.history.items()}
        history.epoch = list(range(start_epoch - len(next(iter(ckpt.history.values()), [])), start_epoch))
    params, opt_state = _replicated((params, opt_state), mesh)
    n_batches = -(-n_train // batch_size)
    steps_per_epoch = n_batches * len(chunks)
    history.params = {"epochs": int(epochs), "steps": steps_per_epoch, "batch_size": batch_size,
                      "verbose": verbose, "chunk_length": chunk_length, "truncate_gradient": truncate_gradient}

    train_step = _cached(_make_train_step, grad_model, loss_obj, metric_objs, optimizer, training, chunked, mesh)
    eval_step = _cached(_make_eval_step, model, loss_obj, metric_objs, mesh) if val_data is not None else None
    dev_train = _replicated(_device(train_data), mesh)
    dev_val = _replicated(_device(val_data), mesh) if val_data is not None else None
    key = jax.random.PRNGKey(seed)
    dropout_key = jax.random.fold_in(key, 1 << 30)
    dtype = jnp.result_type(*jax.tree_util.tree_leaves(params)[:1], jnp.float32)
    progress = _Progress(verbose, int(epochs), steps_per_epoch)
    run = Run(model, params, history, {m.key: m.direction for m in metric_objs})
    norms_log: list = []
    cbs = list(callbacks)
    for cb in cbs:
        getattr(cb, "on_train_begin", lambda r: None)(run)

    good_params = params
    for epoch in range(start_epoch, int(epochs)):
        for cb in cbs:
            getattr(cb, "on_epoch_begin", lambda e, r: None)(epoch, run)
        progress.epoch_begin(epoch)
        perm = (np.asarray(jax.random.permutation(jax.random.fold_in(key, epoch), n_train)) if shuffle
                else np.arange(n_train))
        state = _State(run.params, good_params, opt_state, jnp.zeros([], dtype), jnp.zeros([], dtype),
                       tuple(m.init() for m in metric_objs),
                       _Health(jnp.array(True), jnp.int32(0), jnp.int32(0), jnp.int32(0)))
        # distinct buffers (the step donates every one of them), laid out as the step returns them,
        # so that its first call compiles the same program as the others
        state = _replicated(_copy(state), mesh)
        epoch_norms, done = [], 0
        for idx in _batches(n_train, batch_size, perm):
            idx = jnp.asarray(idx)
            s0 = None
            for t0, length in chunks:
                rng = jax.random.fold_in(dropout_key, global_step) if training else None
                state, finals, norms = train_step(state, dev_train, idx, jnp.int32(t0), rng, s0,
                                                  jnp.int32(done), length=length if chunked else None)
                s0 = finals if chunked else None
                if gradient_norms:
                    epoch_norms.append(norms)
                done += 1
                global_step += 1
                progress.step(done, lambda: float(state.loss_total / jnp.maximum(state.loss_count, 1)))
            if done % 16 < len(chunks) and not bool(state.health.ok):  # a sync every ~16 steps, not every step
                break
        health = jax.device_get(state.health)
        good_params = state.good_params
        run.params, opt_state = (state.params if health.ok else good_params), state.opt_state
        logs = {"loss": float(state.loss_total / state.loss_count) if float(state.loss_count) > 0 else math.nan,
                **_results(metric_objs, state.metric_states)}
        if val_data is not None:
            val = _evaluate(eval_step, metric_objs, run.params, dev_val, batch_size)
            logs.update({f"val_{k}": v for k, v in val.items()})
        if epoch_norms:
            stacked = np.asarray(jnp.stack(epoch_norms))
            if not health.ok:
                stacked = stacked[: int(health.step) + 1]
            norms_log.append(stacked)
        history._append(epoch, logs)
        progress.epoch_end(epoch, logs)
        if not health.ok:
            layer = None if int(health.layer) < 0 else int(health.layer)
            history.diverged = Divergence(epoch, int(health.step), _WHAT[int(health.what)], layer,
                                          None if layer is None else history.layer_names[layer])
            break
        for cb in cbs:
            getattr(cb, "on_epoch_end", lambda e, lg, r: None)(epoch, logs, run)
        if checkpoint is not None:
            checkpoints.save_checkpoint(checkpoint, model, run.params, opt_state, epoch=epoch + 1,
                                        step=global_step, history=history.history)
        if run.stop_training:
            break

    for cb in cbs:
        getattr(cb, "on_train_end", lambda r: None)(run)
    if norms_log:
        history.gradient_norms = np.concatenate(norms_log)
    if history.diverged is not None:
        message = (f"fit stopped: {history.diverged.message()}; the returned params are the last at which the "
                   "loss was finite. "
                   "Remedies: a lower learning rate, gradient clipping (clipnorm / global_clipnorm), standardized "
                   "inputs.")
        if on_nonfinite == "raise":
            raise TrainingDiverged(message, run.params, history, history.diverged)
        warnings.warn(message, RuntimeWarning, stacklevel=2)
    return run.params, history
