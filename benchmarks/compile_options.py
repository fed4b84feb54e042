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

import jax
import jax.numpy as jnp
from timing import SIZES, compare, machine, rounds_argument

import rnncore as rc

KINDS = ("SimpleRNN", "LSTM", "GRU")


def main():
    rounds = rounds_argument(__doc__, 9)
    print(f"# rc.jit vs jax.jit, float32, {machine()}, rnncore's options: {rc.compilation.compiler_options()}")
    print(
        "| layer | B, T, F, H | forward jax.jit (ms) | forward rc.jit (ms) | speed-up | "
        "fwd+bwd jax.jit (ms) | fwd+bwd rc.jit (ms) | speed-up | compile fwd+bwd jax.jit / rc.jit (s) | "
        "max diff / max entry |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for kind in KINDS:
        for b, t, f, h in SIZES:
            model = rc.Sequential([getattr(rc.layers, kind)(h, return_sequences=True)])
            params = model.init(jax.random.PRNGKey(0), (t, f))
            x = jax.random.normal(jax.random.PRNGKey(1), (b, t, f))
            grad = jax.grad(lambda p, x: jnp.sum(model.apply(p, x)), argnums=(0, 1))
            fp, fo, _, _, df = compare(jax.jit(model.apply), rc.jit(model.apply), (params, x), rounds)
            gp, go, cp, co, dg = compare(jax.jit(grad), rc.jit(grad), (params, x), rounds)
            print(
                f"| {kind} | {b}, {t}, {f}, {h} | {1e3 * fp:.2f} | {1e3 * fo:.2f} | {fp / fo:.2f} | "
                f"{1e3 * gp:.1f} | {1e3 * go:.1f} | {gp / go:.2f} | {cp:.1f} / {co:.1f} | {max(df, dg):.1e} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
