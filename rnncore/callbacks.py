r"""Callbacks for :func:`rnncore.fit`: the Keras hooks, and ``EarlyStopping`` with Keras's rule.

A callback is any object with some of the methods ``on_train_begin(run)``,
``on_epoch_begin(epoch, run)``, ``on_epoch_end(epoch, logs, run)`` and ``on_train_end(run)``
(subclass :class:`Callback` to get no-op defaults). ``run`` is the :class:`rnncore.history.Run` in
progress: ``run.params`` are the current params (a callback may replace them; the next training
step reuses their buffers, so a callback that keeps them copies them first, as
:class:`EarlyStopping` does),
``run.stop_training = True`` ends training after the epoch, ``run.history`` is the
:class:`rnncore.history.History` so far. ``logs`` is the epoch's dict of floats (``"loss"``, metrics,
``"val_..."``), as Keras passes it. ``epoch`` counts from 0.

Example:
    >>> import jax, jax.numpy as jnp
    >>> import rnncore as rc
    >>> model = rc.Sequential([rc.layers.SimpleRNN(4), rc.layers.Dense(1)])
    >>> params = model.init(jax.random.PRNGKey(0), input_shape=(5, 2))
    >>> x, y = jnp.ones((8, 5, 2)), jnp.zeros((8, 1))
    >>> stop = rc.callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=10.0)
    >>> params, history = rc.fit(model, params, x, y, epochs=5, verbose=0, callbacks=[stop])
    >>> history.epoch, stop.stopped_epoch
    ([0, 1], 1)
"""

from __future__ import annotations

import math
from typing import Optional

import jax
import jax.numpy as jnp

from . import checks

__all__ = ["Callback", "EarlyStopping"]


class Callback:
    """Base class with the four hooks :func:`rnncore.fit` calls, each doing nothing."""

    def on_train_begin(self, run) -> None:
        pass

    def on_epoch_begin(self, epoch: int, run) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict, run) -> None:
        pass

    def on_train_end(self, run) -> None:
        pass


_MODES = ("auto", "min", "max")


def _copy(tree):
    """A copy that outlives the buffers the train step donates."""
    return jax.tree_util.tree_map(lambda a: jnp.array(a, copy=True), tree)


class EarlyStopping(Callback):
    r"""Stop when ``monitor`` has stopped improving: Keras 3's ``EarlyStopping``, rule for rule.

    With :math:`\delta` = ``|min_delta|`` and mode ``min``, epoch :math:`e`'s value :math:`v_e`
    improves on the best so far :math:`b` when :math:`v_e + \delta < b` (mode ``max``:
    :math:`v_e - \delta > b`); the first monitored value always improves. ``wait`` counts epochs
    since the last improvement that also beat ``baseline`` (an improvement that does not beat it
    leaves ``wait`` running); training stops at the end of an epoch
    :math:`e > 0` where ``wait >= patience``. Epochs before ``start_from_epoch`` are ignored.
    ``restore_best_weights=True`` puts back the params of the best epoch when training ends (also
    when it ends without stopping early, as Keras 3 does). ``mode="auto"`` minimizes losses and
    error metrics and maximizes accuracies; anything else needs an explicit mode.

    After training: ``stopped_epoch`` (0 when it did not stop), ``best``, ``best_epoch``.

    Args:
        monitor: a key of the epoch logs, e.g. ``"val_loss"`` (default), ``"loss"``, ``"val_mae"``.
        min_delta, patience, mode, baseline, restore_best_weights, start_from_epoch: as in Keras.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        min_delta: float = 0.0,
        patience: int = 0,
        mode: str = "auto",
        baseline: Optional[float] = None,
        restore_best_weights: bool = False,
        start_from_epoch: int = 0,
    ):
        if not isinstance(monitor, str):
            raise ValueError(f"monitor must be the name of a logged value, e.g. 'val_loss'; got {monitor!r}.")
        checks.one_of("mode", mode, _MODES)
        patience = checks.integer("patience", patience, minimum=0)
        start_from_epoch = checks.integer("start_from_epoch", start_from_epoch, minimum=0)
        if not math.isfinite(float(min_delta)):
            raise ValueError(f"min_delta must be a finite number; got {min_delta!r}.")
        self.monitor = monitor
        self.min_delta = abs(float(min_delta))
        self.patience = patience
        self.mode = mode
        self.baseline = baseline
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = start_from_epoch
        self.on_train_begin(None)

    def _direction(self, run) -> str:
        if self.mode != "auto":
            return self.mode
        name = self.monitor.removeprefix("val_")
        if name == "loss":
            return "min"
        directions = {} if run is None else run.metric_directions
        if name in directions:
            return "max" if directions[name] == "up" else "min"
        raise ValueError(
            f"EarlyStopping(monitor={self.monitor!r}, mode='auto'): cannot tell whether {self.monitor!r} should "
            "be minimized or maximized; pass mode='min' or mode='max'."
        )

    def _improves(self, value: float, reference: Optional[float], direction: str) -> bool:
        if reference is None:
            return True
        if direction == "min":
            return value + self.min_delta < reference
        return value - self.min_delta > reference

    def on_train_begin(self, run) -> None:
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None  # Keras 3: the baseline is not a starting best, only a bar for resetting wait
        self.best_epoch = 0
        self.best_weights = None

    def on_epoch_end(self, epoch: int, logs: dict, run) -> None:
        if self.monitor not in logs:
            raise ValueError(
                f"EarlyStopping(monitor={self.monitor!r}): the epoch logs hold only {', '.join(map(repr, logs))}."
            )
        current = logs[self.monitor]
        if epoch < self.start_from_epoch:
            return
        direction = self._direction(run)
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights, self.best_epoch = _copy(run.params), epoch
        self.wait += 1
        if self._improves(current, self.best, direction):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = _copy(run.params)
            if self.baseline is None or self._improves(current, self.baseline, direction):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            run.stop_training = True

    def on_train_end(self, run) -> None:
        if self.restore_best_weights and self.best_weights is not None:
            run.params = self.best_weights
