"""How the loop is built: scan unrolling, the input projection precomputed, bfloat16 matmuls.

For SimpleRNN, LSTM and GRU at the three benchmark sizes, forward passes of one layer written
here on the cell's own pieces, all jitted and timed side by side (interleaved rounds, medians,
compile time apart, the order rotated each round):

* ``scan``: ``lax.scan`` of ``cell.step`` (``x_t K`` and ``h R`` per step), what the layers run
  (undifferentiated they run it with ``unroll=rc.bptt.SCAN_UNROLL``);
* ``unroll=k``: the same scan with ``unroll=k``;
* ``precomputed xK``: ``X K`` for all steps as one matmul before the loop, the loop slicing it;
* and forward+backward of the layer itself (``jax.grad`` of ``mean(y**2)``) in float32 and with
  ``compute_dtype="bfloat16"`` (matmul operands in bfloat16, accumulation, state and gates float32).

    python benchmarks/loop_structure.py [--rounds 15]
"""

from __future__ import annotations

import statistics

import jax
import jax.numpy as jnp
from timing import SIZES, machine, rounds_argument, timed

import rnncore as rc

KINDS = ("SimpleRNN", "LSTM", "GRU")
UNROLLS = (2, 4, 8)


def scan_forward(cell, unroll=1):
    def run(p, x):
        s0 = cell.initial_state(x.shape[0], x.dtype)
        _, ys = jax.lax.scan(lambda s, xt: cell.step(p, s, xt), s0, jnp.swapaxes(x, 0, 1), unroll=unroll)
        return jnp.swapaxes(ys, 0, 1)

    return jax.jit(run)


def precomputed_forward(cell):
    def run(p, x):
        b, t, f = x.shape
        xk = cell.input_projection(p, x.reshape(b * t, f)).reshape(b, t, -1)
        s0 = cell.initial_state(b, x.dtype)

        def body(s, xk_t):
            return cell.core(p, xk_t, cell.recurrent_projection(p, cell.output(s)), s)

        _, ys = jax.lax.scan(body, s0, jnp.swapaxes(xk, 0, 1))
        return jnp.swapaxes(ys, 0, 1)

    return jax.jit(run)


def layer_grad(cell):
    layer = rc.layers.RNN(cell, return_sequences=True)
    return jax.jit(jax.grad(lambda p, x: jnp.mean(jnp.square(layer.apply(p, x))), argnums=(0, 1)))


def main():
    rounds = rounds_argument(__doc__, 15)
    print(f"# loop structure, float32, {machine()}; median ms (compile s)")
    heads = ["scan"] + [f"unroll={k}" for k in UNROLLS] + ["precomputed xK", "fwd+bwd float32", "fwd+bwd bfloat16"]
    print("| cell | B, T, F, H | " + " | ".join(heads) + " | bfloat16 grads: max rel diff |")
    print("| --- | --- |" + " ---: |" * len(heads) + " ---: |")
    for kind in KINDS:
        cell_type = getattr(rc.cells, kind)
        for b, t, f, h in SIZES:
            cell = cell_type(h)
            x = jax.random.normal(jax.random.PRNGKey(1), (b, t, f))
            p = cell.init(jax.random.PRNGKey(0), f)
            fns = (
                [scan_forward(cell)]
                + [scan_forward(cell, k) for k in UNROLLS]
                + [precomputed_forward(cell), layer_grad(cell), layer_grad(cell_type(h, compute_dtype="bfloat16"))]
            )
            compile_s = [timed(fn, p, x) for fn in fns]
            times = [[] for _ in fns]
            for r in range(rounds):  # rotated order: no variant always runs first
                for i in range(len(fns)):
                    j = (i + r) % len(fns)
                    times[j].append(timed(fns[j], p, x))
            g32, g16 = fns[-2](p, x), fns[-1](p, x)
            diff = max(
                float(jnp.max(jnp.abs(u - v)) / jnp.max(jnp.abs(u)))
                for u, v in zip(jax.tree_util.tree_leaves(g32), jax.tree_util.tree_leaves(g16))
            )
            cells = [f"{1e3 * statistics.median(ts):.1f} ({c:.1f})" for ts, c in zip(times, compile_s)]
            print(f"| {kind} | {b}, {t}, {f}, {h} | " + " | ".join(cells) + f" | {diff:.1e} |", flush=True)


if __name__ == "__main__":
    main()
