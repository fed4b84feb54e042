"""The Jacobian chain against brute-force autodiff, and gradient flow against one backward pass.

For SimpleRNN (H=128, S=128) and LSTM (H=128, S=256) at T=100 and T=1000, batch 1:

* ``step_jacobians + jacobian_products``: every :math:`\\partial s_T/\\partial s_k`, k = 0 … T−1,
  ``(1, T, S, S)``, from the closed-form per-step Jacobians and one reverse scan of products.
  **Brute force**: ``jax.jacrev`` of :math:`s_T` with respect to additive perturbations
  :math:`e_k` of every state :math:`s_k` at once (the loop ``s_k + e_k -> step -> …``), which is
  exactly :math:`\\partial s_T/\\partial s_k` for all k: S reverse passes over T steps (JAX vmaps
  them). The other obvious brute force, one ``jacrev`` of the map :math:`s_k \\mapsto s_T` per k,
  costs S·T²/2 step VJPs (T=1000, S=256: 1.3·10⁸) and is not run.
* ``log_singular_values_to_end`` (log σ of every product, QR-stabilized) against the brute-force
  products followed by an SVD of each (which in float32 underflows to log 0 = −inf over long T).
* ``lyapunov_spectrum`` (all S exponents, QR method) against the same brute-force products and an
  SVD of the whole chain, :math:`\\tfrac1T\\log\\sigma_i(\\partial s_T/\\partial s_0)`.
* ``gradient_flow`` (per-step ‖∂L/∂s_t‖, ‖∂L/∂h_t‖ of a recurrent layer + Dense model, MSE) against
  one plain ``jax.grad`` of the same loss with respect to the params.

Everything is jitted; the first call (compilation included) is reported apart from the median of
``--rounds`` further calls. LAPACK (QR, SVD) runs single-threaded (``OPENBLAS_NUM_THREADS=1``
unless set): on a small or shared machine OpenBLAS's spinning threads make a 256×256 QR 10–100×
slower and erratic. ``lyapunov_spectrum`` and ``gradient_flow`` are timed as a user calls
them (their jitted core plus the host-side finiteness check).

    python benchmarks/bptt_jacobians.py [--rounds 5] [--steps 100 1000]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy and jax load OpenBLAS

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from timing import timed  # noqa: E402

import rnncore as rc  # noqa: E402
from rnncore import analysis, bptt  # noqa: E402

UNITS, FEATURES = 128, 16
CELLS = {"SimpleRNN": rc.cells.SimpleRNN, "LSTM": rc.cells.LSTM}
LAYERS = {"SimpleRNN": rc.layers.SimpleRNN, "LSTM": rc.layers.LSTM}


def brute_products(cell, params, xs):
    """``(1, T, S, S)``: ``[:, k]`` = ∂s_T/∂s_k by ``jax.jacrev`` through perturbations of every state."""
    steps = xs.shape[1]
    s0 = cell.initial_state(xs.shape[0], xs.dtype)
    xs_t = jnp.swapaxes(xs, 0, 1)

    def final_state(e):  # e: (T, B, S), e[k] added to s_k before the step that consumes it
        def body(s, inp):
            x, ek = inp
            s = cell.vector_to_state(cell.state_to_vector(s) + ek)
            new, _ = cell.step(params, s, x)
            return new, None

        s_end, _ = jax.lax.scan(body, s0, (xs_t, e))
        return cell.state_to_vector(s_end)[0]  # (S,)

    jac = jax.jacrev(final_state)(jnp.zeros((steps, xs.shape[0], cell.state_size), xs.dtype))  # (S, T, 1, S)
    return jnp.transpose(jac[:, :, 0, :], (1, 0, 2))[None]


def bench(fn, args, rounds):
    """``(first call s, median of rounds s)``."""
    first = timed(fn, *args)
    return first, statistics.median(timed(fn, *args) for _ in range(rounds))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, nargs="+", default=[100, 1000])
    args = ap.parse_args()
    cores = os.cpu_count()
    print(
        f"# Jacobian chain vs brute force, float32, batch 1, {jax.devices()[0].platform} "
        f"({cores} cores), {platform.processor() or platform.machine()}, jax {jax.__version__}, "
        f"OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}, {args.rounds} rounds; "
        "times in ms, first call (compile included) in s"
    )
    print()
    print(
        "| cell | S | T | what | rnncore (ms) | baseline (ms) | baseline / rnncore "
        "| first call rnncore / baseline (s) | check |"
    )
    print("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- |")
    for kind, cell_type in CELLS.items():
        cell = cell_type(UNITS)
        params = cell.init(jax.random.PRNGKey(0), FEATURES)
        size = cell.state_size
        for steps in args.steps:
            xs = jax.random.normal(jax.random.PRNGKey(1), (1, steps, FEATURES))
            chain = jax.jit(lambda p, x: bptt.jacobian_products(bptt.step_jacobians(cell, p, x)))
            brute = jax.jit(lambda p, x: brute_products(cell, p, x))
            logsv = jax.jit(lambda p, x: bptt.log_singular_values_to_end(bptt.step_jacobians(cell, p, x)))
            brute_logsv = jax.jit(lambda p, x: jnp.log(jnp.linalg.svd(brute_products(cell, p, x), compute_uv=False)))
            brute_lyap = jax.jit(
                lambda p, x: jnp.log(jnp.linalg.svd(brute_products(cell, p, x)[:, 0], compute_uv=False)) / x.shape[1]
            )

            def lyap(p, x):
                return analysis.lyapunov_spectrum(cell, p, x)

            rows = []
            c_first, c_med = bench(chain, (params, xs), args.rounds)
            b_first, b_med = bench(brute, (params, xs), args.rounds)
            p_chain, p_brute = np.asarray(chain(params, xs)), np.asarray(brute(params, xs))
            err = np.max(np.abs(p_chain - p_brute)) / max(np.max(np.abs(p_brute)), 1e-30)
            rows.append(
                (
                    "all ∂s_T/∂s_k: step_jacobians + jacobian_products vs jacrev",
                    c_first,
                    c_med,
                    b_first,
                    b_med,
                    f"max rel diff {err:.1e}",
                )
            )

            l_first, l_med = bench(logsv, (params, xs), args.rounds)
            bl_first, bl_med = bench(brute_logsv, (params, xs), args.rounds)
            ours, theirs = np.asarray(logsv(params, xs))[0, 0, 0], np.asarray(brute_logsv(params, xs))[0, 0, 0]
            rows.append(
                (
                    "log σ of every product: log_singular_values_to_end vs jacrev + SVD",
                    l_first,
                    l_med,
                    bl_first,
                    bl_med,
                    f"log σ₁(∂s_T/∂s_0): {ours:.2f} vs {theirs:.2f}",
                )
            )

            y_first, y_med = bench(lyap, (params, xs), args.rounds)
            by_first, by_med = bench(brute_lyap, (params, xs), args.rounds)
            lam, lam_b = np.asarray(lyap(params, xs))[0], np.asarray(brute_lyap(params, xs))[0]
            # with all S exponents, sum = mean log|det J_t| exactly (|det R_t| = |det J_t|)
            logdet = np.mean(np.linalg.slogdet(np.asarray(bptt.step_jacobians(cell, params, xs), np.float64))[1])
            rows.append(
                (
                    f"{size} Lyapunov exponents: lyapunov_spectrum vs jacrev + SVD of the chain",
                    y_first,
                    y_med,
                    by_first,
                    by_med,
                    f"λ₁ {lam[0]:.4f} vs {lam_b[0]:.4f}; Σλ {lam.sum():.3f} vs "
                    f"{lam_b.sum():.3f}, mean log det J_t {logdet:.3f}",
                )
            )

            model = rc.Sequential([LAYERS[kind](UNITS, return_sequences=True), rc.layers.Dense(1)])
            mparams = model.init(jax.random.PRNGKey(2), (steps, FEATURES))
            y = jax.random.normal(jax.random.PRNGKey(3), (1, steps, 1))
            plain = jax.jit(jax.grad(lambda p, x, t: jnp.mean(jnp.square(model.apply(p, x) - t))))

            def flow(p, x, t):
                return analysis.gradient_flow(model, p, x, t, "mse").state_norms

            f_first, f_med = bench(flow, (mparams, xs, y), args.rounds)
            g_first, g_med = bench(plain, (mparams, xs, y), args.rounds)
            rows.append(("gradient_flow vs one jax.grad of the loss", f_first, f_med, g_first, g_med, ""))

            for what, o_first, o_med, b_first, b_med, check in rows:
                print(
                    f"| {kind} | {size} | {steps} | {what} | {1e3 * o_med:.1f} | {1e3 * b_med:.1f} | "
                    f"{b_med / o_med:.2f} | {o_first:.1f} / {b_first:.1f} | {check} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
