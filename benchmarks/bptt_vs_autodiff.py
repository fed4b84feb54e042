"""Explicit reverse-scan BPTT against JAX's autodiff of the same scan, side by side.

For SimpleRNN, LSTM and GRU layers at three sizes, times ``jax.grad`` of a scalar loss through a
layer whose VJP is rnncore's explicit reverse scan (``backward_pass="explicit"``, the default)
and through the same layer differentiated by JAX (``backward_pass="autodiff"``). Both are jitted;
compile time is measured apart; rounds are interleaved and the medians compared.

    python benchmarks/bptt_vs_autodiff.py [--rounds 15]
"""

from __future__ import annotations

import statistics

import jax
import jax.numpy as jnp
from timing import SIZES, machine, rounds_argument, timed

import rnncore as rc

KINDS = {"SimpleRNN": rc.layers.SimpleRNN, "LSTM": rc.layers.LSTM, "GRU": rc.layers.GRU}


def make_grad(kind, units, backward_pass):
    layer = KINDS[kind](units, return_sequences=True, backward_pass=backward_pass)

    def loss(p, x):
        return jnp.mean(jnp.square(layer.apply(p, x)))

    return layer, jax.jit(jax.grad(loss, argnums=(0, 1)))


def main():
    rounds = rounds_argument(__doc__, 15)
    print(f"# explicit BPTT vs autodiff, float32, {machine()}")
    print(
        "| layer | B, T, F, H | explicit (ms) | autodiff (ms) | autodiff / explicit | compile explicit / autodiff (s) |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for kind in KINDS:
        for b, t, f, h in SIZES:
            x = jax.random.normal(jax.random.PRNGKey(1), (b, t, f))
            layer, g_exp = make_grad(kind, h, "explicit")
            _, g_auto = make_grad(kind, h, "autodiff")
            p = layer.init(jax.random.PRNGKey(0), (t, f))
            c_exp, c_auto = timed(g_exp, p, x), timed(g_auto, p, x)
            te, ta = [], []
            for _ in range(rounds):
                te.append(timed(g_exp, p, x))
                ta.append(timed(g_auto, p, x))
            me, ma = statistics.median(te), statistics.median(ta)
            print(
                f"| {kind} | {b}, {t}, {f}, {h} | {1e3 * me:.1f} | {1e3 * ma:.1f} | {ma / me:.2f} | "
                f"{c_exp:.1f} / {c_auto:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
