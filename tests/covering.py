"""Parametrizations whose default cases cover every value and whose other cases are slow checks.

Every case of a parametrized oracle compiles programs of its own, so the default suite runs a
covering subset (each value of each axis at least once, each code path once) and ``-m slow`` runs
the rest with the same oracle and the same tolerance.
"""

from __future__ import annotations

import itertools

import pytest


def sweep(*axes, default):
    """Every combination of ``axes`` as ``pytest.param``\\ s: those for which ``default(*indices)`` is
    true run in the default suite, the others with ``-m slow``. ``default`` should pick a covering
    subset (every value of every axis at least once)."""
    params = []
    for combo in itertools.product(*(list(enumerate(a)) for a in axes)):
        indices, values = zip(*combo)
        marks = () if default(*indices) else (pytest.mark.slow,)
        params.append(pytest.param(*values, marks=marks, id="-".join(map(str, values))))
    return params


def diagonal(*axes):
    """:func:`sweep` whose default cases are the diagonal ``r -> (r mod len(axis) for each axis)``,
    ``max(len(axis))`` of them: every value of every axis once or more."""
    longest = max(len(a) for a in axes)
    chosen = {tuple(r % len(a) for a in axes) for r in range(longest)}
    return sweep(*axes, default=lambda *ix: ix in chosen)


def only(cases, keep, ids=None):
    """``cases`` (values, or tuples of values) as ``pytest.param``\\ s, all but those whose id is in
    ``keep`` marked slow. ``ids`` name the cases (default: ``str`` of each)."""
    ids = [str(c) for c in cases] if ids is None else list(ids)
    unknown = set(keep) - set(ids)
    if unknown:
        raise ValueError(f"keep names {sorted(unknown)}, which are not among the cases {ids}")
    params = []
    for case, name in zip(cases, ids):
        values = case if isinstance(case, tuple) else (case,)
        marks = () if name in keep else (pytest.mark.slow,)
        params.append(pytest.param(*values, marks=marks, id=name))
    return params
