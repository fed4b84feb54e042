"""The error every parity check reports (``rnncore check-keras``, ``check-flax``, ``check-torch``).

>>> import numpy as np
>>> relative_error(np.array([2.0, 1.0]), np.array([2.0, 1.5]))   # max |a - b| = 0.5, over max(1, max |b|) = 2
0.25
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["relative_error"]


def relative_error(a: Any, b: Any) -> float:
    r""":math:`\max|a - b| / \max(1, \max|b|)` in float64: relative to the reference ``b``'s scale,
    absolute below 1."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))
