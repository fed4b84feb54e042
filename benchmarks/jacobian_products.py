"""Products of per-step Jacobians: the sequential reverse scan against ``lax.associative_scan``.

``rc.bptt.jacobian_products(J, method=...)`` for SimpleRNN (S = H) and LSTM (S = 2H) chains at
T = 100 and T = 1000, batch 4, float32 under ``jax.default_matmul_precision("highest")`` (what an
analysis wants on an accelerator; on CPU float32 matmuls are full precision anyway). Both jitted,
compile time apart, interleaved rounds, medians; the check column is the largest difference between
the two relative to the largest product entry.

    python benchmarks/jacobian_products.py [--rounds 9]
"""

from __future__ import annotations

import statistics

import jax
import jax.numpy as jnp
from timing import machine, rounds_argument, timed

import rnncore as rc

CASES = [("SimpleRNN", 64), ("SimpleRNN", 128), ("LSTM", 64)]
STEPS = (100, 1000)
BATCH = 4


def main():
    rounds = rounds_argument(__doc__, 9)
    print(f"# jacobian_products, float32, precision highest, {machine()}, batch {BATCH}")
    print(
        "| cell | S | T | sequential (ms) | associative (ms) | sequential / associative | "
        "compile sequential / associative (s) | max diff / max entry |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    with jax.default_matmul_precision("highest"):
        for kind, units in CASES:
            cell = getattr(rc.cells, kind)(units)
            p = cell.init(jax.random.PRNGKey(0), 8)
            for steps in STEPS:
                x = jax.random.normal(jax.random.PRNGKey(1), (BATCH, steps, 8))
                J = rc.bptt.step_jacobians(cell, p, x)
                seq = jax.jit(lambda j: rc.bptt.jacobian_products(j, "sequential"))
                assoc = jax.jit(lambda j: rc.bptt.jacobian_products(j, "associative"))
                c_seq, c_assoc = timed(seq, J), timed(assoc, J)
                ts, ta = [], []
                for _ in range(rounds):
                    ts.append(timed(seq, J))
                    ta.append(timed(assoc, J))
                a, b = seq(J), assoc(J)
                diff = float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(a)))
                ms, ma = statistics.median(ts), statistics.median(ta)
                print(
                    f"| {kind} | {cell.state_size} | {steps} | {1e3 * ms:.1f} | {1e3 * ma:.1f} | {ms / ma:.2f} | "
                    f"{c_seq:.1f} / {c_assoc:.1f} | {diff:.1e} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
