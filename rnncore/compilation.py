"""How rnncore asks XLA to compile its programs: :func:`jit` is ``jax.jit`` with :func:`compiler_options`.

One option matters on CPUs with AVX-512: XLA:CPU generates its elementwise code (the gate
nonlinearities, the state updates, every fused loop body of a scan) for a preferred vector width of
256 bits by default. With 512 bits, measured on an AMD EPYC (``benchmarks/compile_options.py``),
a layer's forward runs 1.03–1.22× and its forward+backward 1.01–1.12× as fast on one core
(0.94–1.11× on two), with the same results to float32 rounding (``tests/test_compilation.py``).

rnncore's own compiled programs (the training and evaluation steps of :func:`rnncore.fit`, the
analyses of :mod:`rnncore.depth` and :mod:`rnncore.analysis`, through :func:`jit_static`) use these
options. A program compiled with plain ``jax.jit`` does not; compile it with :func:`jit`, or set the
option for the whole process before JAX starts::

    XLA_FLAGS=--xla_cpu_prefer_vector_width=512 python train.py

A vector width set in ``XLA_FLAGS`` wins: :func:`compiler_options` then leaves it alone (set
``--xla_cpu_prefer_vector_width=256`` there to keep XLA's default everywhere).

Example:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import rnncore as rc
    >>> model = rc.Sequential([rc.layers.GRU(4)])
    >>> params = model.init(jax.random.PRNGKey(0), input_shape=(5, 3))
    >>> rc.jit(model.apply)(params, jnp.ones((2, 5, 3))).shape
    (2, 4)
"""

from __future__ import annotations

import functools
import os
import platform
from typing import Any, Callable, Optional

import jax

VECTOR_WIDTH_OPTION = "xla_cpu_prefer_vector_width"


@functools.lru_cache(maxsize=None)
def _cpu_has_avx512() -> bool:
    """Whether the host CPU reports AVX-512F (Linux ``/proc/cpuinfo``; False where it cannot tell)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return "avx512f" in line.split()
    except OSError:
        return False
    return False


def compiler_options(backend: str | None = None) -> dict[str, Any]:
    """The XLA compile options rnncore's programs use on ``backend`` (default: JAX's default backend).

    On a CPU backend whose host has AVX-512, ``{"xla_cpu_prefer_vector_width": 512}``, unless
    ``XLA_FLAGS`` already sets that width; otherwise ``{}`` (XLA's own choices).

    Example:
        >>> from rnncore.compilation import compiler_options
        >>> compiler_options("gpu")
        {}
    """
    if backend is None:
        backend = jax.default_backend()
    if backend != "cpu" or not _cpu_has_avx512():
        return {}
    if "--" + VECTOR_WIDTH_OPTION in os.environ.get("XLA_FLAGS", ""):
        return {}
    return {VECTOR_WIDTH_OPTION: 512}


_trace_state_clean: Optional[Callable[[], bool]]
try:  # JAX's own test of "no transformation is tracing"; looked up once, it runs on every call
    from jax._src.core import trace_state_clean as _trace_state_clean
except ImportError:
    _trace_state_clean = None


def _at_top_level(args, kwargs) -> bool:
    """Whether a call happens outside every JAX transformation (where XLA compiles what it runs)."""
    if _trace_state_clean is not None:
        return _trace_state_clean()
    return not any(isinstance(a, jax.core.Tracer) for a in jax.tree_util.tree_leaves((args, kwargs)))


def jit(fn: Callable, **jit_kwargs) -> Callable:
    """``jax.jit(fn, **jit_kwargs)`` compiled with :func:`compiler_options`.

    ``compiler_options`` given here are merged over rnncore's (the caller's value wins); every other
    argument goes to ``jax.jit`` unchanged. Results equal ``jax.jit``'s to float32 rounding. Called
    inside another transformation (an enclosing ``jax.jit``, ``vmap``, ``grad``), it is that plain
    ``jax.jit``: compile options belong to the program XLA compiles, the outermost one.

    Example:
        >>> import jax.numpy as jnp
        >>> from rnncore.compilation import jit
        >>> float(jit(lambda x: jnp.tanh(x).sum())(jnp.zeros(3)))
        0.0
    """
    callers = jit_kwargs.pop("compiler_options", None) or {}
    plain: Any = jax.jit(fn, **jit_kwargs)
    top: list = []  # built on the first top-level call, when JAX's backend is the one the program runs on

    def outermost():
        if not top:
            options = {**compiler_options(), **callers}
            top.append(jax.jit(fn, compiler_options=options, **jit_kwargs) if options else plain)
        return top[0]

    @functools.wraps(fn)
    def run(*args, **kwargs):
        return (outermost() if _at_top_level(args, kwargs) else plain)(*args, **kwargs)

    call: Any = run  # carries jax.jit's methods as attributes

    call.lower = lambda *args, **kwargs: outermost().lower(*args, **kwargs)
    call.trace = lambda *args, **kwargs: outermost().trace(*args, **kwargs)
    call.eval_shape = plain.eval_shape
    # How many programs are compiled for it, as jax.jit's own count (top level and nested alike).
    call._cache_size = lambda: plain._cache_size() + sum(t._cache_size() for t in top if t is not plain)
    return call


def jit_static(fn: Callable, **static) -> Callable:
    """``fn`` compiled by :func:`jit` with the keyword arguments ``static`` bound as static ones.

    The compiled function is cached per ``(fn, names of static)``, so every call with the same
    static values (a cell, a model, flags: frozen dataclasses and plain values, all hashable) reuses
    one program, and a new value compiles once. Where a static value is not hashable, ``fn`` runs
    op by op with it bound (``functools.partial``). The remaining arguments are passed by keyword.

    Example:
        >>> import jax.numpy as jnp
        >>> from rnncore.compilation import jit_static
        >>> def scale(x, factor):
        ...     return x * factor
        >>> jit_static(scale, factor=3.0)(x=jnp.ones(2)).tolist()
        [3.0, 3.0]
    """
    try:
        hash(tuple(static.values()))
    except TypeError:
        return functools.partial(fn, **static)
    return functools.partial(_jitted(fn, tuple(static)), **static)


@functools.lru_cache(maxsize=None)
def _jitted(fn: Callable, static_names: tuple) -> Callable:
    return jit(fn, static_argnames=static_names)
