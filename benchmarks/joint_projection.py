"""One matmul per step, ``[x_t, h_{t-1}] [K; R]``, against two, ``x_t K + h_{t-1} R``.

SimpleRNN and LSTM read their two projections only as a sum (``sums_projections``), so their forward
scans take both as one matmul over the concatenated input and previous output, with ``[K; R]``
stacked once before the loop. For both cells at the three benchmark sizes (float32,
return_sequences), times the layer's forward pass and its forward+backward pass (``jax.grad`` of
the sum of the outputs with respect to the params and the inputs) with the default cell and with
the same cell with ``sums_projections`` switched off, each compiled by ``rc.jit``, in one process.
Compile time apart; rounds interleaved in alternating order, each sample the mean of enough calls
to last about 0.05 s, medians compared. Also printed: the operations XLA runs per step in the
compiled forward loop, and the largest difference between the two programs' results relative to
the largest entry.

    python benchmarks/joint_projection.py [--rounds 15]     # pin to one core: taskset -c 0 python ...
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from reverse_step import ops_per_step
from timing import SIZES, compare, machine, rounds_argument

import rnncore as rc

KINDS = ("SimpleRNN", "LSTM")


def _programs(cell):
    model = rc.Sequential([rc.layers.RNN(cell, return_sequences=True)])
    grad = jax.grad(lambda p, x: jnp.sum(model.apply(p, x)), argnums=(0, 1))
    return model, rc.jit(model.apply), rc.jit(grad)


def main():
    rounds = rounds_argument(__doc__, 15)
    print(f"# one matmul per step vs two, float32, {machine()}")
    print(
        "| layer | B, T, F, H | forward two (ms) | forward one (ms) | speed-up | fwd+bwd two (ms) | "
        "fwd+bwd one (ms) | speed-up | ops per forward step two / one | compile fwd+bwd two / one (s) | "
        "max diff / max entry |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |")
    for kind in KINDS:
        base = getattr(rc.cells, kind)
        two_matmuls = type(f"TwoMatmul{kind}", (base,), {"sums_projections": False})
        for b, t, f, h in SIZES:
            model, fwd_one, grad_one = _programs(base(h))
            _, fwd_two, grad_two = _programs(two_matmuls(h))
            params = model.init(jax.random.PRNGKey(0), (t, f))
            x = jax.random.normal(jax.random.PRNGKey(1), (b, t, f))
            ops = [ops_per_step(fn.lower(params, x).compile().as_text())[0] for fn in (fwd_two, fwd_one)]
            f2, f1, _, _, df = compare(fwd_two, fwd_one, (params, x), rounds)
            g2, g1, c2, c1, dg = compare(grad_two, grad_one, (params, x), rounds)
            print(
                f"| {kind} | {b}, {t}, {f}, {h} | {1e3 * f2:.2f} | {1e3 * f1:.2f} | {f2 / f1:.2f} | "
                f"{1e3 * g2:.1f} | {1e3 * g1:.1f} | {g2 / g1:.2f} | {ops[0]} / {ops[1]} | {c2:.1f} / {c1:.1f} | "
                f"{max(df, dg):.1e} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
