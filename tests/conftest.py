"""Shared test set-up: Keras on the JAX backend, float64 contexts, random asymmetric weights."""

import os

os.environ["KERAS_BACKEND"] = "jax"  # must precede any keras import
# pytest-xdist runs one worker per core; a multi-threaded BLAS in each only oversubscribes them
# (a 256x256 QR measured 30-80x slower on a busy 2-core machine with OpenBLAS's default threads).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax
import numpy as np
import pytest


@pytest.fixture
def x64():
    """Run the test body with float64 enabled (``jax.enable_x64``), restored afterwards."""
    with jax.enable_x64(True):
        yield


@pytest.fixture
def stack(x64):
    """The stacked model the depth and gradient-flow oracles share (tests/stacked_oracles.py), in float64."""
    from stacked_oracles import stack_case

    return stack_case()


@pytest.fixture
def keras():
    """Keras 3 on the JAX backend (skips only where keras is not installed at all)."""
    keras = pytest.importorskip("keras")
    assert keras.backend.backend() == "jax", keras.backend.backend()
    return keras


def random_like(rng: np.random.Generator, arrays, scale: float = 0.5, dtype="float32"):
    """Random, asymmetric replacements for ``arrays`` (every gate block different, biases non-zero),
    so that a swapped gate or a transposed kernel cannot pass unnoticed."""
    return [(rng.normal(size=np.shape(a)) * scale).astype(dtype) for a in arrays]


def max_rel_err(a, b) -> float:
    """max |a - b| / max(1, max |b|) over the finite entries of ``b``: absolute near zero, relative
    at scale. Where ``b`` is not finite (an overflow both sides must reproduce, e.g. an LSTM with
    linear gates) ``a`` must hold exactly the same value, and ``a`` must be finite wherever ``b`` is;
    otherwise the error is inf."""
    a, b = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(b, np.float64))
    finite = np.isfinite(b)
    if not np.array_equal(a[~finite], b[~finite], equal_nan=True) or not np.isfinite(a[finite]).all():
        return float("inf")
    if not finite.any():
        return 0.0
    a, b = a[finite], b[finite]
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))
