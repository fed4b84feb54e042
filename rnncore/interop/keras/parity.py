r"""The parity table of ``rnncore check-keras``: rnncore against Keras 3 on fixed and random stacks.

Every model is ``Masking -> two recurrent layers -> Dense(2)`` with random, asymmetric weights on a
padded, masked batch; each row gives the largest relative error
:math:`\max|a-b|/\max(1, \max|b|)` of the outputs and of the gradients of :math:`\sum \sin(y)`
with respect to every weight and the inputs. Keras is imported (through :func:`~rnncore.keras.to_keras`)
only when a table is computed.

>>> [kind for kind, _, _ in _fixed_cases()]
['SimpleRNN', 'LSTM', 'GRU', 'GRU', 'Bidirectional']
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional, Sequence

import numpy as np

from ... import layers as L
from ...models import Sequential
from ..errors import relative_error
from .export import to_keras
from .weights import keras_weights

__all__ = ["parity_table", "LAYER_TYPES"]

LAYER_TYPES = ("SimpleRNN", "LSTM", "GRU", "Bidirectional")


def _fixed_cases() -> list:
    """Today's parity stacks: ``(layer type, description, layers)``."""
    return [
        ("SimpleRNN", "SimpleRNN", [L.SimpleRNN(6, return_sequences=True), L.SimpleRNN(5, go_backwards=True)]),
        ("LSTM", "LSTM", [L.LSTM(6, return_sequences=True), L.LSTM(5, go_backwards=True)]),
        ("GRU", "GRU reset_after=True", [L.GRU(6, return_sequences=True), L.GRU(5, go_backwards=True)]),
        (
            "GRU",
            "GRU reset_after=False",
            [L.GRU(6, return_sequences=True, reset_after=False), L.GRU(5, reset_after=False, go_backwards=True)],
        ),
        (
            "Bidirectional",
            "Bidirectional LSTM",
            [L.Bidirectional(L.LSTM(4, return_sequences=True), merge_mode="concat"), L.LSTM(5)],
        ),
    ]


def _random_layer(kind: str, rng: np.random.Generator, return_sequences: bool) -> L.RNN:
    units = int(rng.integers(1, 9))
    flags: dict[str, Any] = dict(
        return_sequences=return_sequences, go_backwards=bool(rng.integers(2)), use_bias=bool(rng.integers(2))
    )
    if kind == "SimpleRNN":
        return L.SimpleRNN(units, activation=str(rng.choice(["tanh", "relu", "sigmoid"])), **flags)
    rec = str(rng.choice(["sigmoid", "hard_sigmoid"]))
    if kind == "LSTM":
        return L.LSTM(units, recurrent_activation=rec, **flags)
    return L.GRU(units, recurrent_activation=rec, reset_after=bool(rng.integers(2)), **flags)


def _random_case(kind: str, rng: np.random.Generator) -> tuple:
    """A random two-layer stack whose first layer is ``kind``: ``(description, layers)``."""
    first: Any
    if kind == "Bidirectional":
        inner = _random_layer(str(rng.choice(["SimpleRNN", "LSTM", "GRU"])), rng, True)
        inner = dataclasses.replace(inner, go_backwards=False)  # Keras: the wrapped layer runs forwards
        merge = str(rng.choice(["concat", "sum", "ave", "mul"]))
        first = L.Bidirectional(inner, merge_mode=merge)
        desc = f"Bidirectional({type(inner).__name__}({inner.cell.units}), {merge})"
    else:
        first = _random_layer(kind, rng, True)
        desc = f"{kind}({first.cell.units}, go_backwards={first.go_backwards}, use_bias={first.cell.use_bias})"
    second = _random_layer(str(rng.choice(["SimpleRNN", "LSTM", "GRU"])), rng, bool(rng.integers(2)))
    return desc + f" + {type(second).__name__}({second.cell.units})", [first, second]


def _errors(model: Sequential, params: Any, x: np.ndarray) -> tuple:
    """``(output error, gradient error)`` of ``model`` against its Keras twin."""
    import jax
    import jax.numpy as jnp

    kmodel = to_keras(model, params)

    def loss(p, xx):
        return jnp.sum(jnp.sin(model.apply(p, xx)))

    def kloss(tv, xx):
        y, _ = kmodel.stateless_call(tv, [v.value for v in kmodel.non_trainable_variables], xx)
        return jnp.sum(jnp.sin(y))

    out_err = relative_error(model.apply(params, x), kmodel(x))
    gp, gx = jax.grad(loss, argnums=(0, 1))(params, x)
    tv = [v.value for v in kmodel.trainable_variables]
    kgp, kgx = jax.grad(kloss, argnums=(0, 1))(tv, x)
    grad_err = max([relative_error(a, b) for a, b in zip(keras_weights(model, gp), kgp)] + [relative_error(gx, kgx)])
    return out_err, grad_err


def parity_table(
    seed: int = 0,
    trials: int = 0,
    kinds: Optional[Sequence[str]] = None,
    batch: int = 4,
    steps: int = 12,
    features: int = 3,
) -> list:
    r"""Rows ``(layer type, description, output_error, gradient_error)`` against Keras 3, float32.

    The fixed stacks first (SimpleRNN, LSTM, GRU in both reset modes, Bidirectional LSTM, each as
    two layers), then ``trials`` random configurations per layer type (``kinds``: a subset of
    :data:`LAYER_TYPES`); every model is
    ``Masking -> two recurrent layers -> Dense(2)`` with random, asymmetric weights on a padded,
    masked batch (rows of random lengths, post-padded with zeros). Errors are
    :math:`\max|a-b|/\max(1, \max|b|)` of the outputs and of the gradients of
    :math:`\sum \sin(y)` with respect to every weight and the inputs (Keras through
    ``stateless_call`` and ``jax.grad``).
    """
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, steps, features)).astype("float32")
    lengths = rng.integers(1, steps + 1, size=batch)
    for b, n in enumerate(lengths):  # post-padding with zeros, masked by a Masking layer
        x[b, n:] = 0.0
    kinds = LAYER_TYPES if kinds is None else tuple(kinds)
    cases = [case for case in _fixed_cases() if case[0] in kinds]
    for _ in range(trials):
        for kind in kinds:
            cases.append((kind, *_random_case(kind, rng)))
    rows = []
    for kind, desc, stack in cases:
        model = Sequential([L.Masking(0.0), *stack, L.Dense(2)])
        params = model.init(jax.random.PRNGKey(seed), (steps, features))
        params = jax.tree_util.tree_map(lambda a: jnp.asarray(rng.normal(size=a.shape) * 0.5, a.dtype), params)
        rows.append((kind, desc, *_errors(model, params, x)))
    return rows
