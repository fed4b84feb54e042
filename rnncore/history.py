r"""What a training run returns: :class:`History`, :class:`Divergence`, :class:`TrainingDiverged`,
and :class:`Run`, the run in progress as callbacks see it.

A :class:`History` is Keras's: ``history[key]`` lists one float per epoch run, in the order of
``epoch``; on top of Keras it carries the per-step gradient norms (``(steps, layers)``,
:math:`\|\nabla_{\theta_\ell} L\|_2` before clipping) and, when a non-finite value stopped the run,
where that happened (a :class:`Divergence`).

This module needs neither optax nor the compiled steps, so that a reader of results (the pictures
of :mod:`rnncore.plot`, say) can check for a :class:`History` without importing the training code.

Example:
    >>> from rnncore.history import History, Divergence
    >>> h = History()
    >>> h.append(0, {"loss": 0.5})
    >>> h.append(1, {"loss": 0.25})
    >>> h.epoch, h.history["loss"]
    ([0, 1], [0.5, 0.25])
    >>> Divergence(epoch=1, step=3, what="gradient", layer=0, layer_name="0:LSTM").message()
    'the gradient of layer 0 (0:LSTM) became non-finite (NaN/inf) at epoch 2, step 4'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple, Optional

import numpy as np

__all__ = ["History", "Divergence", "TrainingDiverged", "Run", "NONFINITE_KINDS"]

#: What a training step found non-finite, in the order the compiled step numbers them.
NONFINITE_KINDS = ("loss", "gradient", "updated params")


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
        """The sentence that :func:`rnncore.fit`'s warning and error begin with."""
        where = f"epoch {self.epoch + 1}, step {self.step + 1}"
        if self.layer is None:
            return f"the loss became non-finite (NaN/inf) at {where}"
        return f"the {self.what} of layer {self.layer} ({self.layer_name}) became non-finite (NaN/inf) at {where}"


class History:
    """Keras's ``History``: ``history`` (dict of per-epoch lists of floats), ``epoch`` (the epoch
    indices run), ``params`` (the settings of the run); and ``gradient_norms`` (``(steps, layers)``
    NumPy array or None), ``layer_names``, ``diverged`` (a :class:`Divergence` or None)."""

    def __init__(self) -> None:
        self.history: dict[str, list] = {}
        self.epoch: list[int] = []
        self.params: dict = {}
        self.gradient_norms: Optional[np.ndarray] = None
        self.layer_names: tuple = ()
        self.diverged: Optional[Divergence] = None

    def append(self, epoch: int, logs: dict) -> None:
        """Record one epoch: ``epoch`` joins :attr:`epoch`, each ``logs[key]`` joins ``history[key]``."""
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)}, diverged={self.diverged})"


class TrainingDiverged(RuntimeError):
    """Raised by ``fit(..., on_nonfinite="raise")``; ``params`` are the last good params, ``history``
    the run so far, ``divergence`` the :class:`Divergence`."""

    def __init__(self, message: str, params: Any, history: History, divergence: Divergence):
        super().__init__(message)
        self.params, self.history, self.divergence = params, history, divergence


@dataclass
class Run:
    """The run in progress, as callbacks see it (see :mod:`rnncore.callbacks`): the model, the
    current params (a callback may replace them), the :class:`History` so far, each metric's
    direction (``"min"`` or ``"max"``, by history key), and ``stop_training`` (set it to end the
    run after the epoch)."""

    model: Any
    params: Any
    history: History
    metric_directions: dict = field(default_factory=dict)
    stop_training: bool = False
