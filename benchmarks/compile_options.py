"""rnncore's compile options against XLA's defaults: ``rc.jit`` vs plain ``jax.jit``, side by side.

For SimpleRNN, LSTM and GRU layers at three sizes (float32, return_sequences), times the forward
pass and the forward+backward pass (``jax.grad`` of the sum of the outputs with respect to the
params and the inputs) compiled by ``jax.jit`` and by ``rc.jit`` (on an AVX-512 CPU: XLA:CPU's
generated code for 512-bit vectors, see ``rnncore/compilation.py``), in one process. Compile time
is measured apart; rounds are interleaved in alternating order, each sample the mean of enough calls
to last about 0.05 s, and the medians compared. The largest difference between the two programs'
results is printed relative to the largest entry.

    python benchmarks/compile_options.py [--rounds 9]        # pin to one core: taskset -c 0 python ...
"""

from __future__ import annotations

import statistics
import time

import jax
import jax.numpy as jnp

import rnncore as rc
from timing import machine, rounds_argument, timed

SIZES = [  # (B, T, F, H)
    (32, 100, 32, 128),
    (128, 200, 64, 256),
    (16, 1000, 8, 64),
]
KINDS = ("SimpleRNN", "LSTM", "GRU")


def _sample(fn, args, calls):
    t0 = time.perf_counter()
    for _ in range(calls):
        jax.block_until_ready(fn(*args))
    return (time.perf_counter() - t0) / calls


def _compare(plain, ours, args, rounds):
    """(median s plain, median s ours, compile s plain, compile s ours, max diff / max entry)."""
    c_plain, c_ours = timed(plain, *args), timed(ours, *args)
    a, b = jax.tree_util.tree_leaves(plain(*args)), jax.tree_util.tree_leaves(ours(*args))
    diff = max(float(jnp.max(jnp.abs(u - v))) / max(float(jnp.max(jnp.abs(u))), 1e-30) for u, v in zip(a, b))
    calls = max(1, int(0.05 / timed(plain, *args)))
    tp, to = [], []
    for r in range(rounds):
        pair = ((plain, tp), (ours, to)) if r % 2 == 0 else ((ours, to), (plain, tp))
        for fn, samples in pair:
            samples.append(_sample(fn, args, calls))
    return statistics.median(tp), statistics.median(to), c_plain, c_ours, diff


def main():
    rounds = rounds_argument(__doc__, 9)
    print(f"# rc.jit vs jax.jit, float32, {machine()}, rnncore's options: {rc.compilation.compiler_options()}")
    print("| layer | B, T, F, H | forward jax.jit (ms) | forward rc.jit (ms) | speed-up | "
          "fwd+bwd jax.jit (ms) | fwd+bwd rc.jit (ms) | speed-up | compile fwd+bwd jax.jit / rc.jit (s) | "
          "max diff / max entry |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for kind in KINDS:
        for (b, t, f, h) in SIZES:
            model = rc.Sequential([getattr(rc.layers, kind)(h, return_sequences=True)])
            params = model.init(jax.random.PRNGKey(0), (t, f))
            x = jax.random.normal(jax.random.PRNGKey(1), (b, t, f))
            grad = jax.grad(lambda p, x: jnp.sum(model.apply(p, x)), argnums=(0, 1))
            fp, fo, _, _, df = _compare(jax.jit(model.apply), rc.jit(model.apply), (params, x), rounds)
            gp, go, cp, co, dg = _compare(jax.jit(grad), rc.jit(grad), (params, x), rounds)
            print(f"| {kind} | {b}, {t}, {f}, {h} | {1e3 * fp:.2f} | {1e3 * fo:.2f} | {fp / fo:.2f} | "
                  f"{1e3 * gp:.1f} | {1e3 * go:.1f} | {gp / go:.2f} | {cp:.1f} / {co:.1f} | {max(df, dg):.1e} |",
                  flush=True)


if __name__ == "__main__":
    main()
