"""Where a model comes from, and how refusals and warnings about it are worded.

Every message of the Keras converter starts with the source (``'model.keras': ``, ``keras model
'seq': ``), then where in the model (``layer 'rec' (LSTM)``), then the argument and its value.

>>> ctx = Context("'model.keras'")
>>> ctx.error(f"{where('rec', 'LSTM')}: units=0; expected a positive integer.")
ValueError("'model.keras': layer 'rec' (LSTM): units=0; expected a positive integer.")
>>> len(short(list(range(100)))), short(list(range(100)))[-8:]
(160, '0, 41...')
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

__all__ = ["Context", "where", "short", "checked"]


def where(name: Any, cls: Any) -> str:
    """``layer 'name' (Class)``: how messages name a layer."""
    return f"layer {name!r} ({cls})"


def short(value: Any) -> str:
    """``repr(value)``, cut to 160 characters."""
    s = repr(value)
    return s if len(s) <= 160 else s[:157] + "..."


class Context:
    """Where the model comes from (for messages) and the warnings collected on the way."""

    def __init__(self, source: str):
        self.source = source

    def error(self, msg: str) -> ValueError:
        """A ``ValueError`` whose message starts with the source."""
        return ValueError(f"{self.source}: {msg}")

    def warn(self, msg: str) -> None:
        """A ``UserWarning`` whose message starts with the source."""
        warnings.warn(f"{self.source}: {msg}", UserWarning, stacklevel=4)


def checked(ctx: Context, at: str, check: Callable[..., Any], *args: Any) -> Any:
    """``check(*args)`` (one of :mod:`rnncore.checks`), its ``ValueError`` prefixed with the source
    and ``at`` (where in the model)."""
    try:
        return check(*args)
    except ValueError as e:
        raise ctx.error(f"{at}: {e}") from None
