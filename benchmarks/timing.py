"""What the benchmark scripts share: the layer sizes, one timed call, two programs compared in interleaved rounds,
the ``--rounds`` argument and the line that names the machine. Imported by the scripts next to it
(``python benchmarks/<script>.py``)."""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import jax
import jax.numpy as jnp

#: The layer sizes every speed benchmark times, (B, T, F, H): small, large, long and thin.
SIZES = [
    (32, 100, 32, 128),
    (128, 200, 64, 256),
    (16, 1000, 8, 64),
]


def timed(fn, *args) -> float:
    """Seconds for one call of ``fn(*args)``, waiting for its result."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - t0


def _sample(fn, args, calls):
    t0 = time.perf_counter()
    for _ in range(calls):
        jax.block_until_ready(fn(*args))
    return (time.perf_counter() - t0) / calls


def compare(first, second, args, rounds, sample_s=0.05):
    """Two programs side by side: each sample the mean of enough calls of one to last about
    ``sample_s``, rounds interleaved in alternating order. Returns (median s first, median s second,
    first-call s first, first-call s second, largest difference of their results / largest entry)."""
    c_first, c_second = timed(first, *args), timed(second, *args)
    a, b = jax.tree_util.tree_leaves(first(*args)), jax.tree_util.tree_leaves(second(*args))
    diff = max(float(jnp.max(jnp.abs(u - v))) / max(float(jnp.max(jnp.abs(u))), 1e-30) for u, v in zip(a, b))
    calls = max(1, int(sample_s / timed(first, *args)))
    t1, t2 = [], []
    for r in range(rounds):
        pair = ((first, t1), (second, t2)) if r % 2 == 0 else ((second, t2), (first, t1))
        for fn, samples in pair:
            samples.append(_sample(fn, args, calls))
    return statistics.median(t1), statistics.median(t2), c_first, c_second, diff


def rounds_argument(doc: str, default: int) -> int:
    """The script's ``--rounds`` (timing rounds per row), with its docstring's first line as help."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=default)
    return ap.parse_args().rounds


def machine() -> str:
    """The device platform, the processor and the JAX version, e.g. ``"cpu, x86_64, jax 0.10.2"``."""
    return f"{jax.devices()[0].platform}, {platform.processor() or platform.machine()}, jax {jax.__version__}"
