"""The layers' reverse step: each cell's hand-written core VJP against a traced VJP of its core.

For SimpleRNN, LSTM and GRU at the three benchmark sizes, times ``jax.grad`` of a scalar loss through a
layer whose reverse scan runs the cell's hand-written ``core_vjp`` (the default) and through the
same layer with ``has_core_vjp`` switched off (a traced ``jax.vjp`` of ``core`` per step, ``h R``
recomputed). Both are jitted, compile time apart, rounds interleaved, medians compared; the
gradients' largest relative difference is printed, and the number of operations XLA runs per
step in the compiled forward and reverse loops (fusions, matmuls, copies: each one a dispatch).

    python benchmarks/reverse_step.py [--rounds 15]
"""

from __future__ import annotations

import re
import statistics

import jax
import jax.numpy as jnp
from timing import SIZES, machine, rounds_argument, timed

import rnncore as rc

KINDS = ("SimpleRNN", "LSTM", "GRU")


def make_grad(cell):
    layer = rc.layers.RNN(cell, return_sequences=True)

    def loss(p, x):
        return jnp.mean(jnp.square(layer.apply(p, x)))

    return layer, jax.jit(jax.grad(loss, argnums=(0, 1)))


def ops_per_step(compiled_text: str) -> list[int]:
    """Operations in each while-loop body of a compiled HLO module, leaving out the ones that cost
    nothing at run time (parameters, tuples, constants, bitcasts)."""
    bodies, counts, current = re.findall(r"body=%?([\w.\-]+)", compiled_text), {}, None
    for line in compiled_text.splitlines():
        head = re.match(r"^(?:ENTRY )?%?([\w.\-]+) .*\{$", line)
        if head:
            current, counts[head.group(1)] = head.group(1), 0
        elif line.startswith("}"):
            current = None
        elif current and not re.search(r"= [^=]*\b(parameter|get-tuple-element|tuple|constant|bitcast)\(", line):
            counts[current] += 1
    return [counts.get(b, 0) for b in bodies]


def main():
    rounds = rounds_argument(__doc__, 15)
    print(f"# hand-written vs traced core VJP, float32, {machine()}")
    print(
        "| layer | B, T, F, H | hand-written (ms) | traced (ms) | traced / hand-written | "
        "ops per step fwd / rev: hand-written | traced | compile (s) hand-written / traced | max rel diff |"
    )
    print("| --- | --- | ---: | ---: | ---: | --- | --- | ---: | ---: |")
    for kind in KINDS:
        base = getattr(rc.cells, kind)
        traced = type(f"Traced{kind}", (base,), {"has_core_vjp": False})
        for b, t, f, h in SIZES:
            x = jax.random.normal(jax.random.PRNGKey(1), (b, t, f))
            layer, g_hand = make_grad(base(h))
            _, g_traced = make_grad(traced(h))
            p = layer.init(jax.random.PRNGKey(0), (t, f))
            c_hand, c_traced = timed(g_hand, p, x), timed(g_traced, p, x)
            ops = [ops_per_step(g.lower(p, x).compile().as_text()) for g in (g_hand, g_traced)]
            th, tt = [], []
            for _ in range(rounds):
                th.append(timed(g_hand, p, x))
                tt.append(timed(g_traced, p, x))
            diff = max(
                float(jnp.max(jnp.abs(u - v)) / jnp.max(jnp.abs(v)))
                for u, v in zip(jax.tree_util.tree_leaves(g_hand(p, x)), jax.tree_util.tree_leaves(g_traced(p, x)))
            )
            mh, mt = statistics.median(th), statistics.median(tt)
            print(
                f"| {kind} | {b}, {t}, {f}, {h} | {1e3 * mh:.1f} | {1e3 * mt:.1f} | {mt / mh:.2f} | "
                f"{' / '.join(map(str, ops[0]))} | {' / '.join(map(str, ops[1]))} | {c_hand:.1f} / {c_traced:.1f} | "
                f"{diff:.1e} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
