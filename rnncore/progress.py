r"""What :func:`rnncore.fit` prints while it runs, in Keras's ``verbose`` modes.

``verbose=1`` draws a bar that fills as the epoch's :math:`S` steps are done (redrawn at most every
0.1 s, and at the last step), with the running loss; ``verbose=2`` prints one line per epoch;
``0`` prints nothing; ``"auto"`` is 1 on a terminal and 2 otherwise. Every epoch ends with its
seconds and its logs, each value to 4 significant digits.

Example:
    >>> import io
    >>> from rnncore.progress import ProgressBar
    >>> out = io.StringIO()
    >>> bar = ProgressBar(2, epochs=1, steps=4, stream=out)
    >>> bar.epoch_begin(0)
    >>> bar.epoch_end(0, {"loss": 0.123456, "mae": 0.5})
    >>> out.getvalue().split(" - ")[0], out.getvalue().split(" - ")[2:]
    ('Epoch 1/1', ['loss: 0.1235', 'mae: 0.5\n'])
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable, Optional, TextIO, Union

__all__ = ["ProgressBar", "format_logs"]


def format_logs(logs: dict) -> str:
    """``"key: value - key: value"``, each value to 4 significant digits, as Keras prints them."""
    return " - ".join(f"{k}: {v:.4g}" for k, v in logs.items())


class ProgressBar:
    """Keras's progress output for ``epochs`` epochs of ``steps`` steps each on ``stream``
    (``sys.stdout`` by default); ``verbose`` is ``"auto"``, 0, 1 or 2 (a ``ValueError`` otherwise)."""

    def __init__(self, verbose: Union[str, int], epochs: int, steps: int, stream: Optional[TextIO] = None):
        self.stream: Any = sys.stdout if stream is None else stream
        if verbose == "auto":
            isatty = getattr(self.stream, "isatty", lambda: False)
            verbose = 1 if isatty() else 2
        if verbose not in (0, 1, 2):
            raise ValueError(f"verbose={verbose!r}; expected 'auto', 0, 1 or 2.")
        self.mode, self.epochs, self.steps = verbose, epochs, steps
        self.last = 0.0
        self.start = time.perf_counter()

    def epoch_begin(self, epoch: int) -> None:
        """Start the clock of epoch ``epoch`` (from 0); the bar mode prints its title."""
        self.start = time.perf_counter()
        if self.mode == 1:
            print(f"Epoch {epoch + 1}/{self.epochs}", file=self.stream)

    def step(self, done: int, loss: Callable[[], float]) -> None:
        """``done`` steps of the epoch are finished; ``loss()`` (called only when the bar is redrawn,
        since it waits for the device) is the running loss."""
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
        """Print the epoch's seconds and ``logs``."""
        seconds = time.perf_counter() - self.start
        if self.mode == 1:
            self.stream.write(f"\r{self.steps}/{self.steps} [{'=' * 30}] - {seconds:.1f}s - {format_logs(logs)}\n")
        elif self.mode == 2:
            self.stream.write(f"Epoch {epoch + 1}/{self.epochs} - {seconds:.1f}s - {format_logs(logs)}\n")
        self.stream.flush()
