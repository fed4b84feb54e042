"""Argument checks shared by every module: one signature, one wording.

Each check takes the argument's name first and its value second, returns the value in a canonical
Python type (``int``, ``float``, ``bool``, ``str``) when it is acceptable, and otherwise raises a
``ValueError`` that names the argument, repeats the value it got and says what was expected::

    k=4; expected an integer in [1, 3] (the state size).

``what`` (optional everywhere) is appended in parentheses, for the context that makes a bound
meaningful. Booleans are never accepted as numbers (``True`` is not the integer 1 here), NumPy
scalars are accepted wherever the Python type is.

>>> from rnncore import checks
>>> checks.positive_int("units", 4)
4
>>> checks.integer("k", 4, minimum=1, maximum=3, what="the state size")
Traceback (most recent call last):
...
ValueError: k=4; expected an integer in [1, 3] (the state size).
>>> checks.one_of("mode", "avg", ("min", "max"))
Traceback (most recent call last):
...
ValueError: mode='avg'; expected one of 'min', 'max'.
"""

from __future__ import annotations

import numbers
from typing import Any, Optional, Sequence

import numpy as np

__all__ = ["is_integer", "is_real", "integer", "positive_int", "real", "rate", "boolean", "one_of"]


def _suffix(what: Optional[str]) -> str:
    return f" ({what})." if what else "."


def is_integer(value: Any) -> bool:
    """Whether ``value`` is an integer (Python or NumPy) and not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """Whether ``value`` is a real number (Python or NumPy, integers included) and not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _interval(low, high, kind: str, low_open: bool = False, high_open: bool = False) -> str:
    if low is not None and high is not None:
        return f"{kind} in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f"{kind} {'>' if low_open else '>='} {low}"
    if high is not None:
        return f"{kind} {'<' if high_open else '<='} {high}"
    return kind


def integer(
    name: str, value: Any, minimum: Optional[int] = None, maximum: Optional[int] = None, what: Optional[str] = None
) -> int:
    """``value`` as an ``int`` if it is an integer in ``[minimum, maximum]`` (either bound optional)."""
    ok = is_integer(value) and (minimum is None or value >= minimum) and (maximum is None or value <= maximum)
    if not ok:
        raise ValueError(f"{name}={value!r}; expected {_interval(minimum, maximum, 'an integer')}{_suffix(what)}")
    return int(value)


def positive_int(name: str, value: Any, what: Optional[str] = None) -> int:
    """``value`` as an ``int`` if it is an integer >= 1."""
    if not (is_integer(value) and value >= 1):
        raise ValueError(f"{name}={value!r}; expected a positive integer{_suffix(what)}")
    return int(value)


def real(
    name: str,
    value: Any,
    minimum: Optional[float] = None,
    maximum: Optional[float] = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    what: Optional[str] = None,
) -> float:
    """``value`` as a ``float`` if it is a real number in the interval given by ``minimum``/``maximum``
    (closed unless ``low_open``/``high_open``). NaN is never in an interval."""
    ok = is_real(value)
    if ok and minimum is not None:
        ok = value > minimum if low_open else value >= minimum
    if ok and maximum is not None:
        ok = value < maximum if high_open else value <= maximum
    if ok and minimum is None and maximum is None:
        ok = value == value  # not NaN
    if not ok:
        kind = _interval(minimum, maximum, "a float", low_open, high_open)
        if minimum == 0 and low_open and maximum is None:
            kind = "a positive float"
        raise ValueError(f"{name}={value!r}; expected {kind}{_suffix(what)}")
    return float(value)


def rate(name: str, value: Any, what: Optional[str] = None) -> float:
    """A dropout-style rate: a float in [0, 1)."""
    return real(name, value, 0, 1, high_open=True, what=what)


def boolean(name: str, value: Any, what: Optional[str] = None) -> bool:
    """``value`` if it is ``True`` or ``False`` (NumPy bools too)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ValueError(f"{name}={value!r}; expected True or False{_suffix(what)}")


def one_of(name: str, value: Any, choices: Sequence[Any], what: Optional[str] = None) -> Any:
    """``value`` if it equals one of ``choices`` (compared by ``==`` among values of the same type)."""
    if not any(type(value) is type(c) and value == c for c in choices):
        listed = ", ".join(map(repr, choices))
        raise ValueError(f"{name}={value!r}; expected one of {listed}{_suffix(what)}")
    return value
