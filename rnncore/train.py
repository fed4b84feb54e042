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
  validation batches with the params at the end of the epoch, ``training=False``;
* **moving statistics** (``BatchNormalization``, also inside ``TimeDistributed``; see
  :mod:`rnncore.layers.statistics`) are Keras's non-trainable variables: the gradient and the
  optimizer see only :func:`rnncore.steps.trainable` of the params (no slots, no weight decay, no
  share of ``global_clipnorm``'s norm), and each step writes back the statistics Keras assigns
  after its training forward, :math:`\bar m \leftarrow \rho\,\bar m + (1-\rho)\,m_{\text{batch}}`
  (mask-aware; once per call of a layer called several times in a graph). Validation uses them.
  With ``training=False`` they are used and never assigned.

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
  chunk. ``y`` then has a time axis, sliced like ``x``. Moving statistics are assigned once per
  chunk, from that chunk's batch statistics (what Keras's ``train_on_batch`` on each chunk does).
  The validation loss is taken on whole sequences (the chunked forward pass with carried states
  equals the whole one).
* **Checkpoints**: ``checkpoint=path`` saves params (moving statistics included), optimizer state,
  epoch, step and history atomically at the end of every epoch (:mod:`rnncore.checkpoints`);
  ``resume=True`` continues from the file if it exists. Shuffling (permutation ``fold_in(PRNGKey(seed), epoch)``) and
  dropout (key ``fold_in(fold_in(PRNGKey(seed), 1 << 30), step)``) depend only on the epoch and
  step, so a resumed run equals an uninterrupted one.
* **Data parallel over devices**: ``mesh=`` (a ``jax.sharding.Mesh``, or a sequence of devices,
  which becomes ``Mesh(devices, ("batch",))``) runs the same jitted step with every batch sharded
  along its sample axis over all the mesh's axes (``NamedSharding(mesh, PartitionSpec(axes))``)
  and params, optimizer state and the data replicated; GSPMD inserts the all-reduce of the
  gradient (Xu et al. 2021, arXiv:2105.04663). Results equal the single-device run up to the
  order of the sums across shards (float32: ~1e-6 relative after a few epochs; float64: ~1e-15).
  Batch statistics (``BatchNormalization``) are those of the whole global batch, as on one
  device, not of each shard.
  ``batch_size`` must be a multiple of the device count (a ``ValueError`` otherwise); a smaller
  last batch that is not runs replicated, every device computing all of it, so results never
  depend on the device count. Validation batches are sharded the same way.
* Progress: ``verbose="auto"`` shows a progress bar on a terminal and one line per epoch otherwise
  (``1``: bar, ``2``: lines, ``0``: silent).

Where the pieces live: the results of a run (:class:`History`, :class:`Divergence`,
:class:`TrainingDiverged`, :class:`Run`) in :mod:`rnncore.history`, the compiled steps and their
cache in :mod:`rnncore.steps`, the optimizers by name in :func:`rnncore.optimizers.get`, the meshes
in :mod:`rnncore.meshes`, the progress bar in :mod:`rnncore.progress`; this module checks the
inputs and runs the epochs.

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

import math
import os
import warnings
from dataclasses import dataclass, replace
from typing import Any, Callable, NamedTuple, Optional, Sequence, Union, cast

import jax
import jax.numpy as jnp
import numpy as np

from . import checkpoints, checks, meshes, optimizers, steps
from . import layers as L
from . import losses as _losses
from . import metrics as _metrics
from .history import NONFINITE_KINDS, Divergence, History, Run, TrainingDiverged
from .progress import ProgressBar
from .steps import Samples

__all__ = ["fit", "evaluate", "History", "Divergence", "TrainingDiverged", "Run"]

# names whose home moved, still answered here with a DeprecationWarning
_MOVED = {
    "get_optimizer": ("rnncore.optimizers.get", lambda: optimizers.get),
    "OPTIMIZERS": ("rnncore.optimizers.OPTIMIZERS", lambda: optimizers.OPTIMIZERS),
    "batch_mesh": ("rnncore.meshes.batch_mesh", lambda: meshes.batch_mesh),
}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        new, value = _MOVED[name]
        warnings.warn(f"rnncore.train.{name} is deprecated; use {new}.", DeprecationWarning, stacklevel=2)
        return value()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- input checks ---------------------------------------------------------------------------------


def _array(value, name: str, dtype=None) -> np.ndarray:
    try:
        a = np.asarray(value) if dtype is None else np.asarray(value, dtype=dtype)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{name} must be an array; got {type(value).__name__} ({e}).") from None
    if a.dtype == object:
        raise ValueError(
            f"{name} must be a numeric array; got ragged or object data (pad it with rnncore.data.pad_sequences)."
        )
    return a


def _first_nonfinite(a: np.ndarray, name: str) -> None:
    if np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.complexfloating):
        bad = ~np.isfinite(a)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"{name} holds NaN or inf (first at index {where}); clean or mask the data first.")


def _check_targets(y, n: int, x_shape: tuple, prefix: str) -> np.ndarray:
    if y is None:
        raise ValueError(f"{prefix}y is missing; fit needs targets.")
    y = _array(y, f"{prefix}y")
    if y.ndim == 0 or y.shape[0] != n:
        raise ValueError(
            f"{prefix}x and {prefix}y must have the same number of samples; "
            f"got x {x_shape} ({n} samples) and y {y.shape}."
        )
    return y


def _check_sample_weight(sample_weight, n: int, prefix: str) -> Optional[np.ndarray]:
    if sample_weight is None:
        return None
    sample_weight = _array(sample_weight, f"{prefix}sample_weight")
    if sample_weight.ndim not in (1, 2) or sample_weight.shape[0] != n:
        raise ValueError(
            f"{prefix}sample_weight must be (samples,) or (samples, time) with {n} samples; "
            f"got shape {sample_weight.shape}."
        )
    _first_nonfinite(sample_weight, f"{prefix}sample_weight")
    return sample_weight


def _check_mask(mask, x_shape: tuple, prefix: str) -> Optional[np.ndarray]:
    if mask is None:
        return None
    mask = _array(mask, f"{prefix}mask")
    if mask.shape != x_shape[:2]:
        raise ValueError(f"{prefix}mask must be (samples, time) = {x_shape[:2]}; got shape {mask.shape}.")
    return mask.astype(bool)


def _input_names(model) -> tuple:
    """The input names of a graph of several inputs; ``()`` for a model of one input."""
    names = tuple(getattr(model, "input_names", ()) or ())
    return names if len(names) > 1 else ()


def _check_inputs(x, names: tuple, prefix: str) -> tuple:
    """Several inputs (a dict by name, or a list/tuple in the model's order, as Keras's ``fit`` takes
    them) as a tuple of arrays with one sample count, checked one by one."""
    if isinstance(x, dict):
        missing = [k for k in names if k not in x]
        extra = [k for k in x if k not in names]
        if missing or extra:
            raise ValueError(
                f"{prefix}x has the inputs {list(x)}; expected {list(names)} (missing {missing}, unknown {extra})."
            )
        x = [x[k] for k in names]
    elif not isinstance(x, (list, tuple)) or len(x) != len(names):
        got = f"{len(x)} arrays" if isinstance(x, (list, tuple)) else type(x).__name__
        raise ValueError(
            f"{prefix}x must hold one array per input of the model, {list(names)} (a dict by name or a list "
            f"in that order); got {got}."
        )
    arrays = tuple(_check_one_input(a, f"{prefix}x[{k!r}]") for k, a in zip(names, x))
    counts = {k: a.shape[0] for k, a in zip(names, arrays)}
    if len(set(counts.values())) > 1:
        raise ValueError(f"{prefix}x's inputs have different sample counts {counts}; expected one count for all.")
    return arrays


def _check_one_input(x, name: str) -> np.ndarray:
    x = _array(x, name)
    token_ids = x.ndim == 2 and np.issubdtype(x.dtype, np.integer)
    if x.ndim != 3 and not token_ids:
        raise ValueError(
            f"{name} must be (samples, time, features), or integer token ids (samples, time); got shape {x.shape}."
        )
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {x.shape}); fit needs at least one sample.")
    _first_nonfinite(x, name)
    return x


def _check_data(x, y, sample_weight, mask, prefix: str = "", names: tuple = ()) -> Samples:
    if names:
        xs = _check_inputs(x, names, prefix)
        if mask is not None:
            raise ValueError(
                f"{prefix}mask: a model of several inputs ({list(names)}) takes its masks from its Masking or "
                "Embedding layers; mask= is for a model of one input."
            )
        n = xs[0].shape[0]
        y = _check_targets(y, n, xs[0].shape, prefix)
        _first_nonfinite(y, f"{prefix}y")
        return Samples(xs, y, _check_sample_weight(sample_weight, n, prefix), None)
    x = _array(x, f"{prefix}x")
    token_ids = x.ndim == 2 and np.issubdtype(x.dtype, np.integer)
    if x.ndim != 3 and not token_ids:
        raise ValueError(
            f"{prefix}x must be (samples, time, features), or integer token ids (samples, time); got shape {x.shape}."
        )
    n = x.shape[0]
    if n == 0:
        raise ValueError(f"{prefix}x is empty (shape {x.shape}); fit needs at least one sample.")
    y = _check_targets(y, n, x.shape, prefix)
    _first_nonfinite(x, f"{prefix}x")
    _first_nonfinite(y, f"{prefix}y")
    sample_weight = _check_sample_weight(sample_weight, n, prefix)
    return Samples(x, y, sample_weight, _check_mask(mask, x.shape, prefix))


def _validation_data(validation_data, names: tuple = ()) -> Samples:
    if not isinstance(validation_data, (tuple, list)) or not 2 <= len(validation_data) <= 4:
        raise ValueError(
            "validation_data must be (x, y), (x, y, sample_weight) or (x, y, sample_weight, "
            f"mask); got {type(validation_data).__name__} of length "
            f"{len(validation_data) if isinstance(validation_data, (tuple, list)) else '-'}."
        )
    x, y, sample_weight, mask = list(validation_data) + [None] * (4 - len(validation_data))
    return _check_data(x, y, sample_weight, mask, prefix="validation_data ", names=names)


def _validation(
    validation_data, validation_split, data: Samples, names: tuple = ()
) -> tuple[Samples, Optional[Samples]]:
    r"""``(training samples, validation samples or None)``, Keras's split: the last
    :math:`N - \lfloor N(1-v) \rfloor` samples, before any shuffling."""
    if validation_data is not None:
        if validation_split:
            raise ValueError("pass validation_data or validation_split, not both.")
        return data, _validation_data(validation_data, names)
    v = checks.real("validation_split", validation_split, 0, 1, high_open=True)
    if v == 0.0:
        return data, None
    n = steps.n_samples(data)
    split_at = int(math.floor(n * (1.0 - v)))
    if split_at == 0 or split_at == n:
        raise ValueError(
            f"validation_split={validation_split} leaves {split_at} training and {n - split_at} "
            f"validation samples out of {n}; both need at least one."
        )
    return steps.take(data, slice(0, split_at)), steps.take(data, slice(split_at, n))


def _check_arguments(
    model,
    params,
    batch_size,
    epochs,
    initial_epoch,
    on_nonfinite,
    chunk_length,
    truncate_gradient,
    resume,
    checkpoint,
    mesh,
) -> tuple:
    """``(batch_size, chunk_length, truncate_gradient, mesh)`` after checking every scalar argument of
    :func:`fit`, in the order of its signature's meaning (the model and params first)."""
    if not hasattr(model, "apply_with_mask") or not hasattr(model, "layers"):
        raise ValueError(f"model must be an rnncore.Sequential or rnncore.Model; got {type(model).__name__}.")
    model.check_params(params)
    batch_size = checks.positive_int("batch_size", batch_size)
    checks.integer("epochs", epochs, minimum=0)
    checks.integer("initial_epoch", initial_epoch, minimum=0)
    checks.one_of("on_nonfinite", on_nonfinite, ("stop", "raise"))
    if chunk_length is not None:
        chunk_length = checks.positive_int("chunk_length", chunk_length)
    if truncate_gradient is not None:
        truncate_gradient = checks.positive_int("truncate_gradient", truncate_gradient)
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint=path.")
    mesh = meshes.batch_mesh(mesh)
    if mesh is not None and batch_size % mesh.size:
        raise ValueError(
            f"batch_size={batch_size} must be a multiple of the {mesh.size} devices of mesh= so that "
            "every batch splits evenly over them."
        )
    return batch_size, chunk_length, truncate_gradient, mesh


def _chunks(model, chunk_length: Optional[int], y_shape, y: np.ndarray, n_steps: int) -> list:
    """The ``(t0, length)`` of each chunk of a batch's sequences: one whole chunk without truncated
    BPTT, else chunks of ``chunk_length`` steps (the last may be shorter)."""
    if chunk_length is None:
        return [(0, n_steps)]
    if any(isinstance(layer, L.Bidirectional) for layer in model.layers):
        raise ValueError("chunk_length: a Bidirectional layer cannot carry its state from chunk to chunk.")
    if len(getattr(y_shape, "shape", ())) != 3 or y.ndim < 2 or y.shape[1] != n_steps:
        raise ValueError(
            f"chunk_length needs a model that outputs a sequence (return_sequences=True) and y with "
            f"the same time axis as x ({n_steps} steps); got model output "
            f"{getattr(y_shape, 'shape', y_shape)} and y {y.shape}."
        )
    return [(t, min(chunk_length, n_steps - t)) for t in range(0, n_steps, chunk_length)]


# --- the model the gradient sees --------------------------------------------------------------------


def _truncated(model, k2: Optional[int]):
    if k2 is None:
        return model
    if hasattr(model, "calls"):  # a graph rnncore.Model
        raise ValueError("truncate_gradient: a graph rnncore.Model is not supported; use an rnncore.Sequential.")
    layers = []
    for layer in model.layers:
        if isinstance(layer, L.Bidirectional):
            layer = L.Bidirectional(
                replace(layer.forward_layer, truncate_gradient=k2),
                layer.merge_mode,
                backward_layer=replace(layer.backward_layer, truncate_gradient=k2),
            )
        elif isinstance(layer, L.RNN):
            layer = replace(layer, truncate_gradient=k2, backward_pass="explicit")
        layers.append(layer)
    return type(model)(layers)


def _copy(tree):
    return jax.tree_util.tree_map(lambda a: jnp.array(a, copy=True), tree)


def _layer_names(model) -> tuple:
    return tuple(f"{i}:{type(layer).__name__}" for i, layer in enumerate(model.layers))


def _output_shape(model, params, x: np.ndarray):
    return jax.eval_shape(lambda p, xb: model.apply(p, xb), params, jax.tree_util.tree_map(lambda a: a[:1], x))


# --- metrics as a run tracks them -------------------------------------------------------------------


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


def _metric_objects(metrics, weighted_metrics, loss, data: Samples, y_pred_shape) -> tuple:
    tracked: list = []
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


# --- evaluate -------------------------------------------------------------------------------------


def evaluate(
    model,
    params,
    x,
    y,
    *,
    loss="mse",
    metrics=(),
    weighted_metrics=(),
    batch_size: int = 32,
    sample_weight=None,
    mask=None,
) -> dict:
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
    data = _check_data(x, y, sample_weight, mask, names=_input_names(model))
    batch_size = checks.positive_int("batch_size", batch_size)
    loss_obj = _losses.get(loss)
    metric_objs = _metric_objects(metrics, weighted_metrics, loss_obj, data, _output_shape(model, params, data.x))
    step = steps.cached(steps.make_eval_step, model, loss_obj, metric_objs)
    return _evaluate(step, metric_objs, params, steps.on_device(data), batch_size)


def _evaluate(step, metric_objs, params, data: Samples, batch_size: int) -> dict:
    dtype = jnp.result_type(*jax.tree_util.tree_leaves(params)[:1], jnp.float32)
    totals = (jnp.zeros([], dtype), jnp.zeros([], dtype), tuple(m.init() for m in metric_objs))
    n = steps.n_samples(data)
    for i in range(0, n, batch_size):
        totals = step(params, totals, steps.take(data, slice(i, min(i + batch_size, n))))
    total, count, states = totals
    return {"loss": float(total / count), **_results(metric_objs, states)}


# --- fit, piece by piece --------------------------------------------------------------------------


@dataclass
class _Plan:
    """What every epoch of a run uses, fixed before the first."""

    train_step: Callable
    eval_step: Optional[Callable]
    train_data: Samples  # on the device, replicated over the mesh
    val_data: Optional[Samples]
    metrics: tuple
    chunks: list
    chunked: bool
    batch_size: int
    shuffle: bool
    key: jax.Array  # shuffling: fold_in(key, epoch)
    dropout_key: jax.Array  # dropout: fold_in(dropout_key, step)
    training: bool
    gradient_norms: bool
    dtype: Any
    mesh: Any
    progress: ProgressBar

    @property
    def n_train(self) -> int:
        return steps.n_samples(self.train_data)


class _Start:
    """Where a run begins: fresh params and optimizer state at ``initial_epoch``, or what a
    checkpoint holds when resuming from one that exists."""

    def __init__(self, model, params, opt_state, initial_epoch: int, checkpoint, resume: bool):
        self.params, self.opt_state = params, opt_state
        self.epoch, self.step = int(initial_epoch), 0
        self.history = History()
        self.history.layer_names = _layer_names(model)
        if resume and os.path.exists(os.fspath(checkpoint)):
            ckpt = checkpoints.load_checkpoint(checkpoint, model, params, opt_state)
            self.params = ckpt.params
            self.opt_state = ckpt.opt_state if ckpt.opt_state is not None else opt_state
            self.epoch, self.step = int(cast(int, ckpt.epoch)), int(cast(int, ckpt.step))
            self.history.history = {k: list(v) for k, v in ckpt.history.items()}
            done = len(next(iter(ckpt.history.values()), []))
            self.history.epoch = list(range(self.epoch - done, self.epoch))


def _batches(n: int, batch_size: int, perm) -> list:
    return [perm[i : i + batch_size] for i in range(0, n, batch_size)]


def _epoch_state(plan: _Plan, params, good_params, opt_state) -> steps.TrainState:
    state = steps.TrainState(
        params,
        good_params,
        opt_state,
        jnp.zeros([], plan.dtype),
        jnp.zeros([], plan.dtype),
        tuple(m.init() for m in plan.metrics),
        steps.Health.fine(),
    )
    # distinct buffers (the step donates every one of them), laid out as the step returns them,
    # so that its first call compiles the same program as the others
    return meshes.replicated(_copy(state), plan.mesh)


def _train_batch(plan: _Plan, state, idx, done: int, global_step: int, epoch_norms: list):
    """One batch's optimizer steps (one per chunk, the states carried from chunk to chunk)."""
    s0 = None
    for t0, length in plan.chunks:
        rng = jax.random.fold_in(plan.dropout_key, global_step) if plan.training else None
        state, finals, norms = plan.train_step(
            state,
            plan.train_data,
            idx,
            jnp.int32(t0),
            rng,
            s0,
            jnp.int32(done),
            length=length if plan.chunked else None,
        )
        s0 = finals if plan.chunked else None
        if plan.gradient_norms:
            epoch_norms.append(norms)
        done += 1
        global_step += 1
        plan.progress.step(done, lambda: float(state.loss_total / jnp.maximum(state.loss_count, 1)))
    return state, done, global_step


def _train_epoch(plan: _Plan, epoch: int, params, good_params, opt_state, global_step: int):
    """``(state, per-step gradient norms, global step)`` after the epoch's batches, or after the
    first check (one every ~16 steps) that finds a non-finite step."""
    n = plan.n_train
    perm = np.asarray(jax.random.permutation(jax.random.fold_in(plan.key, epoch), n)) if plan.shuffle else np.arange(n)
    state = _epoch_state(plan, params, good_params, opt_state)
    epoch_norms: list = []
    done = 0
    for idx in _batches(n, plan.batch_size, perm):
        state, done, global_step = _train_batch(plan, state, jnp.asarray(idx), done, global_step, epoch_norms)
        if done % 16 < len(plan.chunks) and not bool(state.health.ok):  # a sync every ~16 steps, not every step
            break
    return state, epoch_norms, global_step


def _epoch_logs(plan: _Plan, state, params) -> dict:
    logs = {
        "loss": float(state.loss_total / state.loss_count) if float(state.loss_count) > 0 else math.nan,
        **_results(plan.metrics, state.metric_states),
    }
    if plan.val_data is not None:
        val = _evaluate(plan.eval_step, plan.metrics, params, plan.val_data, plan.batch_size)
        logs.update({f"val_{k}": v for k, v in val.items()})
    return logs


def _divergence(epoch: int, health, layer_names: tuple) -> Divergence:
    layer = None if int(health.layer) < 0 else int(health.layer)
    return Divergence(
        epoch, int(health.step), NONFINITE_KINDS[int(health.what)], layer, None if layer is None else layer_names[layer]
    )


def _callback(callbacks: Sequence, hook: str, *args) -> None:
    for cb in callbacks:
        method = getattr(cb, hook, None)
        if method is not None:
            method(*args)


def _run_epochs(plan: _Plan, run: Run, start: _Start, epochs: int, callbacks: Sequence, checkpoint) -> list:
    """The epochs from ``start.epoch`` to ``epochs``; returns the gradient norms per epoch."""
    history, opt_state, global_step = run.history, start.opt_state, start.step
    good_params = start.params  # not run.params, which an on_train_begin callback may have replaced
    norms_log: list = []
    for epoch in range(start.epoch, epochs):
        _callback(callbacks, "on_epoch_begin", epoch, run)
        plan.progress.epoch_begin(epoch)
        state, epoch_norms, global_step = _train_epoch(plan, epoch, run.params, good_params, opt_state, global_step)
        health = jax.device_get(state.health)
        good_params = state.good_params
        run.params, opt_state = (state.params if health.ok else good_params), state.opt_state
        logs = _epoch_logs(plan, state, run.params)
        if epoch_norms:
            stacked = np.asarray(jnp.stack(epoch_norms))
            norms_log.append(stacked if health.ok else stacked[: int(health.step) + 1])
        history.append(epoch, logs)
        plan.progress.epoch_end(epoch, logs)
        if not health.ok:
            history.diverged = _divergence(epoch, health, history.layer_names)
            break
        _callback(callbacks, "on_epoch_end", epoch, logs, run)
        if checkpoint is not None:
            checkpoints.save_checkpoint(
                checkpoint, run.model, run.params, opt_state, epoch=epoch + 1, step=global_step, history=history.history
            )
        if run.stop_training:
            break
    return norms_log


def _report_divergence(run: Run, on_nonfinite: str) -> None:
    """Warn (``"stop"``) or raise :class:`TrainingDiverged` (``"raise"``) for a run that diverged;
    the warning points at the caller of :func:`fit`."""
    divergence = run.history.diverged
    if divergence is None:
        return
    message = (
        f"fit stopped: {divergence.message()}; the returned params are the last at which the "
        "loss was finite. "
        "Remedies: a lower learning rate, gradient clipping (clipnorm / global_clipnorm), standardized "
        "inputs."
    )
    if on_nonfinite == "raise":
        raise TrainingDiverged(message, run.params, run.history, divergence)
    warnings.warn(message, RuntimeWarning, stacklevel=3)


def fit(
    model,
    params,
    x,
    y,
    *,
    loss: Union[str, Callable] = "mse",
    optimizer="rmsprop",
    metrics: Sequence = (),
    weighted_metrics: Sequence = (),
    epochs: int = 1,
    batch_size: int = 32,
    shuffle: bool = True,
    seed: int = 0,
    validation_split: float = 0.0,
    validation_data=None,
    sample_weight=None,
    mask=None,
    callbacks: Sequence = (),
    initial_epoch: int = 0,
    verbose: Union[str, int] = "auto",
    gradient_norms: bool = False,
    chunk_length: Optional[int] = None,
    truncate_gradient: Optional[int] = None,
    checkpoint=None,
    resume: bool = False,
    on_nonfinite: str = "stop",
    training: bool = True,
    mesh=None,
):
    r"""Train ``model`` from ``params``; returns ``(params, history)`` (see the module docstring).

    Args:
        model: an :class:`rnncore.Sequential` or a graph :class:`rnncore.Model`.
        params: its params (not modified; the run works on a copy).
        x: ``(N, T, F)``; for a graph of several inputs, one such array per input, as a dict by
            input name or a list in the model's input order (Keras's forms), every one with ``N``
            samples: batches, shuffling and ``validation_split`` take the same rows of each
            (``mask=`` and ``chunk_length`` are for one input, ``truncate_gradient`` for a
            ``Sequential``).
        y: targets with ``N`` rows, as the loss expects them.
        loss: a Keras loss name, an :mod:`rnncore.losses` loss, or a callable
            ``(y_true, y_pred) -> per-sample values``.
        optimizer: an optax ``GradientTransformation`` (e.g. :func:`rnncore.optimizers.adam`) or a
            Keras optimizer name (Keras's defaults; ``"rmsprop"`` like ``Model.compile``).
        metrics: Keras metric names or :mod:`rnncore.metrics` objects; as in Keras they see the
            output mask but not ``sample_weight``.
        weighted_metrics: the same, weighted by ``sample_weight`` (history key ``weighted_<name>``
            where the name is taken).
        epochs: Keras's meaning; likewise ``batch_size``, ``shuffle``, ``validation_split``,
            ``sample_weight`` and ``initial_epoch``.
        validation_data: ``(x, y)``, ``(x, y, sample_weight)`` or ``(x, y, sample_weight, mask)``.
        seed: shuffling and dropout keys.
        mask: ``(N, T)`` bool, True for real steps.
        callbacks: see :mod:`rnncore.callbacks` (``EarlyStopping``).
        verbose: ``"auto"``, 0, 1 (progress bar) or 2 (a line per epoch).
        gradient_norms: record each step's gradient norm per layer in ``history.gradient_norms``.
        chunk_length: truncated BPTT's k1 (with ``truncate_gradient``, its k2).
        checkpoint: a ``.npz`` path saved at every epoch end; ``resume`` continues from it.
        on_nonfinite: ``"stop"`` (warn, return the last good params) or ``"raise"``.
        training: run dropout layers in training mode (Keras: True during fit).
        mesh: None (one device), a ``jax.sharding.Mesh`` or a sequence of devices: data-parallel
            training, each batch sharded over the devices (see the module docstring).

    Returns:
        ``(params, history)``: the trained params and a :class:`History`.
    """
    batch_size, chunk_length, truncate_gradient, mesh = _check_arguments(
        model,
        params,
        batch_size,
        epochs,
        initial_epoch,
        on_nonfinite,
        chunk_length,
        truncate_gradient,
        resume,
        checkpoint,
        mesh,
    )
    names = _input_names(model)
    train_data, val_data = _validation(
        validation_data, validation_split, _check_data(x, y, sample_weight, mask, names=names), names
    )
    loss_obj = _losses.get(loss)
    optimizer = optimizers.get(optimizer)
    y_shape = _output_shape(model, params, train_data.x)
    metric_objs = _metric_objects(metrics, weighted_metrics, loss_obj, train_data, y_shape)
    if names and chunk_length is not None:
        raise ValueError(f"chunk_length: truncated BPTT trains a model of one input; this one has {list(names)}.")
    chunks = _chunks(model, chunk_length, y_shape, train_data.y, jax.tree_util.tree_leaves(train_data.x)[0].shape[1])
    chunked = chunk_length is not None

    params = _copy(params)  # the step donates its input
    start = _Start(model, params, optimizer.init(steps.trainable(model, params)), initial_epoch, checkpoint, resume)
    start.params, start.opt_state = meshes.replicated((start.params, start.opt_state), mesh)
    steps_per_epoch = -(-steps.n_samples(train_data) // batch_size) * len(chunks)
    history = start.history
    history.params = {
        "epochs": int(epochs),
        "steps": steps_per_epoch,
        "batch_size": batch_size,
        "verbose": verbose,
        "chunk_length": chunk_length,
        "truncate_gradient": truncate_gradient,
    }

    train_step = steps.cached(
        steps.make_train_step,
        _truncated(model, truncate_gradient),
        loss_obj,
        metric_objs,
        optimizer,
        training,
        chunked,
        mesh,
    )
    eval_step = steps.cached(steps.make_eval_step, model, loss_obj, metric_objs, mesh) if val_data is not None else None
    key = jax.random.PRNGKey(seed)
    plan = _Plan(
        train_step=train_step,
        eval_step=eval_step,
        train_data=meshes.replicated(steps.on_device(train_data), mesh),
        val_data=meshes.replicated(steps.on_device(val_data), mesh) if val_data is not None else None,
        metrics=metric_objs,
        chunks=chunks,
        chunked=chunked,
        batch_size=batch_size,
        shuffle=shuffle,
        key=key,
        dropout_key=jax.random.fold_in(key, 1 << 30),
        training=training,
        gradient_norms=gradient_norms,
        mesh=mesh,
        dtype=jnp.result_type(*jax.tree_util.tree_leaves(start.params)[:1], jnp.float32),
        progress=ProgressBar(verbose, int(epochs), steps_per_epoch),
    )
    run = Run(model, start.params, history, {m.key: m.direction for m in metric_objs})
    callbacks = list(callbacks)
    _callback(callbacks, "on_train_begin", run)
    norms_log = _run_epochs(plan, run, start, int(epochs), callbacks, checkpoint)
    _callback(callbacks, "on_train_end", run)
    if norms_log:
        history.gradient_norms = np.concatenate(norms_log)
    _report_divergence(run, on_nonfinite)
    return run.params, history
