"""Fresh memory: what the temporary buffers of forward+backward cost on the CPU.

XLA:CPU allocates a program's temporary buffers on every call. glibc serves allocations above its
mmap threshold (at most 32 MiB) with fresh ``mmap`` pages, so every 4 KiB page of them is a page
fault, zeroed by the kernel, each call. For ``jax.grad`` of one layer (the quantity
``benchmarks/peers.py`` times) this script prints, per cell and size, the program's temporary
memory (``compiled.memory_analysis()``), the minor page faults per call and the median time, once
with the default allocator settings and once, in a second process, with
``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` (glibc >= 2.35 then asks for transparent huge pages:
one fault per 2 MiB).

    python benchmarks/memory.py [--rounds 7] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

SIZES = [(32, 100, 32, 128), (128, 200, 64, 256), (16, 1000, 8, 64)]
KINDS = ("SimpleRNN", "LSTM", "GRU")
TUNED = "glibc.malloc.hugetlb=1"


def measure(rounds: int) -> list[dict]:
    """Each row's temporary MiB, faults per call and median ms in this process."""
    import jax
    import jax.numpy as jnp

    import rnncore as rc

    rows = []
    for kind in KINDS:
        for b, t, f, h in SIZES:
            layer = rc.layers.RNN(getattr(rc.cells, kind)(h), return_sequences=True)
            x = jax.random.normal(jax.random.PRNGKey(1), (b, t, f))
            p = layer.cell.init(jax.random.PRNGKey(0), f)
            grad = jax.jit(jax.grad(lambda p, x: jnp.sum(layer.apply(p, x)), argnums=(0, 1)))
            temp = grad.lower(p, x).compile().memory_analysis().temp_size_in_bytes / 2**20
            jax.block_until_ready(grad(p, x))
            samples, calls = [], 0
            faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            for _ in range(rounds):
                t0, k = time.perf_counter(), 0
                while time.perf_counter() - t0 < 0.1:
                    jax.block_until_ready(grad(p, x))
                    k += 1
                samples.append((time.perf_counter() - t0) / k * 1e3)
                calls += k
            faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0) / calls
            rows.append(dict(kind=kind, size=(b, t, f, h), temp=temp, faults=faults, ms=statistics.median(samples)))
    return rows


def run_child(rounds: int, threads: int, tuned: bool) -> list[dict]:
    env = dict(os.environ)
    if tuned:
        env["GLIBC_TUNABLES"] = TUNED
    else:
        env.pop("GLIBC_TUNABLES", None)
    cmd = [sys.executable, __file__, "--child", "--rounds", str(rounds)]
    if threads:
        cmd = ["taskset", "-c", ",".join(str(c) for c in sorted(os.sched_getaffinity(0))[:threads])] + cmd
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1, help="cores each process may use (default 1)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(args.rounds)))
        return
    plain = run_child(args.rounds, args.threads, tuned=False)
    tuned = run_child(args.rounds, args.threads, tuned=True)
    sys.path.insert(0, os.path.dirname(__file__))
    from timing import machine

    print(f"# forward+backward of one layer, float32, {args.threads} core(s), {machine()}")
    print(
        "| cell | B, T, F, H | temporary MiB | page faults per call | ms "
        f"| faults with {TUNED} | ms with it | speed-up |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for a, b in zip(plain, tuned):
        print(
            f"| {a['kind']} | {', '.join(map(str, a['size']))} | {a['temp']:.0f} | {a['faults']:.0f} | "
            f"{a['ms']:.1f} | {b['faults']:.0f} | {b['ms']:.1f} | {a['ms'] / b['ms']:.2f} |"
        )


if __name__ == "__main__":
    main()
