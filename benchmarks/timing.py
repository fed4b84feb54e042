"""What the benchmark scripts share: one timed call, the ``--rounds`` argument and the line that
names the machine. Imported by the scripts next to it (``python benchmarks/<script>.py``)."""

from __future__ import annotations

import argparse
import platform
import time

import jax


def timed(fn, *args) -> float:
    """Seconds for one call of ``fn(*args)``, waiting for its result."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - t0


def rounds_argument(doc: str, default: int) -> int:
    """The script's ``--rounds`` (timing rounds per row), with its docstring's first line as help."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=default)
    return ap.parse_args().rounds


def machine() -> str:
    """The device platform, the processor and the JAX version, e.g. ``"cpu, x86_64, jax 0.10.2"``."""
    return f"{jax.devices()[0].platform}, {platform.processor() or platform.machine()}, jax {jax.__version__}"
