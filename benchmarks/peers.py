"""rnncore's recurrent layers against PyTorch, Flax and Keras (JAX and TensorFlow backends) on CPU.

For SimpleRNN, LSTM and GRU at three sizes (float32, return_sequences), times the forward pass
and the forward+backward pass (the gradient of the sum of the outputs with respect to the params
and the inputs) of:

* rnncore: ``rc.Sequential([rc.layers.LSTM(H, return_sequences=True)])``, ``model.apply`` and
  ``jax.grad`` of it (the layers' explicit reverse-scan VJP), each compiled by ``rc.jit`` (``jax.jit``
  with rnncore's compile options: 512-bit vectors in XLA:CPU's generated code where the CPU has
  AVX-512, see ``rnncore/compilation.py``);
* PyTorch: ``nn.RNN(tanh)`` / ``nn.LSTM`` / ``nn.GRU`` with ``batch_first=True``; forward under
  ``torch.inference_mode()``, backward by ``torch.autograd.grad``;
* Flax (linen): ``nn.RNN`` over ``SimpleCell`` / ``OptimizedLSTMCell`` / ``GRUCell``, jitted;
* Keras 3 on JAX: jitted ``stateless_call`` of the layer (``use_cudnn=False`` where the argument
  exists) and jitted ``jax.grad`` of it;
* Keras 3 on TensorFlow: the layer call and a ``GradientTape`` gradient, each in a ``tf.function``.

Each framework runs in its own worker process (the Keras backend is fixed per process), all
children of this one; the workers take turns, so only one computes at a time. Every row is
compiled (first call, timed apart) in every worker, then timed in interleaved rounds: in each
round every framework, in an order rotated from round to round, times its forward and its
forward+backward pass, each as the mean of enough calls to last about 0.1 s. The table shows
the median over the rounds. A framework that is not installed is reported as such.

Threads: every worker gets the same N cores (default: all this process may use) — its CPU
affinity is set to them, OMP_NUM_THREADS, MKL_NUM_THREADS and OPENBLAS_NUM_THREADS are set to N,
PyTorch gets ``torch.set_num_threads(N)`` (one inter-op thread), TensorFlow N intra-op and one
inter-op thread; XLA (rnncore, Flax, Keras on JAX) sizes its thread pool by the cores it may use.
JAX_PLATFORMS=cpu and CUDA_VISIBLE_DEVICES= keep everything on the CPU. ``--glibc-tunables``
sets GLIBC_TUNABLES in every worker alike (``glibc.malloc.hugetlb=1``: see benchmarks/memory.py);
``--xla-flags`` sets XLA_FLAGS in every worker alike, e.g. ``--xla_cpu_prefer_vector_width=512`` to
give Flax and Keras on JAX the vector width rnncore compiles with.

Fraction of peak: the forward pass is counted as 2·B·T·(F+H)·G·H FLOPs (G = 1, 4, 3 gates for
SimpleRNN, LSTM, GRU) and forward+backward as 3× that; the peak is the float32 matmul rate of a
jitted 2048×2048 ``jnp.dot`` measured in the same run (median, before and after the rows; the
higher of the two is used).

    python benchmarks/peers.py [--rounds 7] [--only LSTM] [--quick] [--threads N] [--glibc-tunables T]
                               [--xla-flags F]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

SIZES = [  # (B, T, F, H)
    (32, 100, 32, 128),
    (128, 200, 64, 256),
    (16, 1000, 8, 64),
]
CELLS = ("SimpleRNN", "LSTM", "GRU")
GATES = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}
FRAMEWORKS = {  # name: (column heading, modules it needs, extra environment)
    "rnncore": ("rnncore", ("rnncore",), {}),
    "torch": ("PyTorch", ("torch",), {}),
    "flax": ("Flax", ("flax",), {}),
    "keras-jax": ("Keras/JAX", ("keras",), {"KERAS_BACKEND": "jax"}),
    "keras-tf": ("Keras/TF", ("keras", "tensorflow"), {"KERAS_BACKEND": "tensorflow"}),
}
PEERS = [f for f in FRAMEWORKS if f != "rnncore"]
TAG = "@@peers "  # marks protocol lines on a worker's stdout (libraries may print there too)
TARGET_S = 0.1  # each timed sample repeats the call for about this long


# --- workers: one framework each ----------------------------------------------------------------


def _inputs(b, t, f):
    import numpy as np

    return np.random.default_rng(1).standard_normal((b, t, f), dtype=np.float32)


def _jax_pair(fwd, grad, params, x):
    import jax

    return (lambda: jax.block_until_ready(fwd(params, x)), lambda: jax.block_until_ready(grad(params, x)))


def build_rnncore(cell, b, t, f, h):
    import jax
    import jax.numpy as jnp

    import rnncore as rc

    model = rc.Sequential([getattr(rc.layers, cell)(h, return_sequences=True)])
    params = model.init(jax.random.PRNGKey(0), (t, f))
    fwd = rc.jit(model.apply)
    grad = rc.jit(jax.grad(lambda p, x: jnp.sum(model.apply(p, x)), argnums=(0, 1)))
    return _jax_pair(fwd, grad, params, jnp.asarray(_inputs(b, t, f)))


def build_flax(cell, b, t, f, h):
    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    cells = {"SimpleRNN": nn.SimpleCell, "LSTM": nn.OptimizedLSTMCell, "GRU": nn.GRUCell}
    rnn = nn.RNN(cells[cell](features=h))
    x = jnp.asarray(_inputs(b, t, f))
    params = rnn.init(jax.random.PRNGKey(0), x)
    fwd = jax.jit(rnn.apply)
    grad = jax.jit(jax.grad(lambda p, x: jnp.sum(rnn.apply(p, x)), argnums=(0, 1)))
    return _jax_pair(fwd, grad, params, x)


def _keras_layer(cell, h):
    import inspect

    import keras

    cls = getattr(keras.layers, cell)
    kw = {"use_cudnn": False} if "use_cudnn" in inspect.signature(cls.__init__).parameters else {}
    return cls(h, return_sequences=True, **kw)


def build_keras_jax(cell, b, t, f, h):
    import jax
    import jax.numpy as jnp

    layer = _keras_layer(cell, h)
    layer.build((b, t, f))
    tv = [v.value for v in layer.trainable_variables]
    ntv = [v.value for v in layer.non_trainable_variables]

    def call(tv, x):
        return layer.stateless_call(tv, ntv, x)[0]

    fwd = jax.jit(call)
    grad = jax.jit(jax.grad(lambda tv, x: jnp.sum(call(tv, x)), argnums=(0, 1)))
    return _jax_pair(fwd, grad, tv, jnp.asarray(_inputs(b, t, f)))


def build_keras_tf(cell, b, t, f, h):
    import tensorflow as tf

    layer = _keras_layer(cell, h)
    layer.build((b, t, f))
    x = tf.constant(_inputs(b, t, f))

    @tf.function
    def fwd(x):
        return layer(x)

    @tf.function
    def grad(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.reduce_sum(layer(x))
        return tape.gradient(y, (layer.trainable_variables, x))

    return (lambda: fwd(x).numpy()), (lambda: [g.numpy() for g in tf.nest.flatten(grad(x))])


def build_torch(cell, b, t, f, h):
    import torch

    torch.manual_seed(0)
    mods = {
        "SimpleRNN": lambda: torch.nn.RNN(f, h, nonlinearity="tanh", batch_first=True),
        "LSTM": lambda: torch.nn.LSTM(f, h, batch_first=True),
        "GRU": lambda: torch.nn.GRU(f, h, batch_first=True),
    }
    m = mods[cell]()
    x = torch.from_numpy(_inputs(b, t, f))
    params = list(m.parameters())

    def fwd():
        with torch.inference_mode():
            return m(x)[0]

    def grad():
        xg = x.detach().requires_grad_(True)
        return torch.autograd.grad(m(xg)[0].sum(), params + [xg])

    return fwd, grad


BUILDERS = {
    "rnncore": build_rnncore,
    "torch": build_torch,
    "flax": build_flax,
    "keras-jax": build_keras_jax,
    "keras-tf": build_keras_tf,
}


def _versions(name):
    if name == "rnncore":
        import jax

        return f"jax {jax.__version__}"
    if name == "torch":
        import torch

        return f"torch {torch.__version__}"
    if name == "flax":
        import flax
        import jax

        return f"flax {flax.__version__}, jax {jax.__version__}"
    import keras

    if name == "keras-jax":
        import jax

        return f"keras {keras.__version__}, jax {jax.__version__}"
    import tensorflow as tf

    return f"keras {keras.__version__}, tensorflow {tf.__version__}"


def _setup_threads(name, n):
    if name == "torch":
        import torch

        torch.set_num_threads(n)
        torch.set_num_interop_threads(1)
    elif name == "keras-tf":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(1)


def _peak(size, rounds):
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.PRNGKey(0), (size, size), jnp.float32)
    dot = jax.jit(jnp.dot)
    jax.block_until_ready(dot(a, a))
    ts = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        jax.block_until_ready(dot(a, a))
        ts.append(time.perf_counter() - t0)
    return 2 * size**3 / statistics.median(ts)


def worker(name, threads):
    """Serve commands from stdin, one JSON object a line; answer on stdout after TAG."""

    def say(obj):
        sys.stdout.write(TAG + json.dumps(obj) + "\n")
        sys.stdout.flush()

    try:
        for mod in FRAMEWORKS[name][1]:
            __import__(mod)
        _setup_threads(name, threads)
        say({"ok": True, "versions": _versions(name)})
    except ImportError as e:
        say({"ok": False, "why": f"not installed ({e.name or e})"})
        return
    except Exception as e:  # noqa: BLE001 - reported in the table
        say({"ok": False, "why": f"{type(e).__name__}: {e}"})
        return
    fns = {}
    for line in sys.stdin:
        cmd = json.loads(line)
        try:
            if cmd["op"] == "quit":
                return
            if cmd["op"] == "peak":
                say({"flops": _peak(cmd["size"], cmd["rounds"])})
            elif cmd["op"] == "setup":
                fns.clear()
                pair = BUILDERS[name](cmd["cell"], *cmd["size"])
                out = {}
                for mode, fn in zip(("fwd", "bwd"), pair):
                    t0 = time.perf_counter()
                    fn()
                    out[f"first_{mode}"] = time.perf_counter() - t0
                    t0 = time.perf_counter()
                    fn()
                    warm = time.perf_counter() - t0
                    fns[mode] = (fn, max(1, min(200, round(TARGET_S / max(warm, 1e-6)))))
                say(out)
            elif cmd["op"] == "time":
                fn, reps = fns[cmd["mode"]]
                t0 = time.perf_counter()
                for _ in range(reps):
                    fn()
                say({"s": (time.perf_counter() - t0) / reps})
        except Exception as e:  # noqa: BLE001 - reported in the table
            traceback.print_exc()
            fns.clear()
            say({"error": f"{type(e).__name__}: {str(e).splitlines()[0][:80] if str(e) else ''}"})


# --- the driver -----------------------------------------------------------------------------------


class Worker:
    def __init__(self, name, threads, cores, log, glibc_tunables=None, xla_flags=None):
        env = {
            **os.environ,
            "JAX_PLATFORMS": "cpu",
            "CUDA_VISIBLE_DEVICES": "",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "OMP_NUM_THREADS": str(threads),
            "MKL_NUM_THREADS": str(threads),
            "OPENBLAS_NUM_THREADS": str(threads),
            **FRAMEWORKS[name][2],
        }
        if glibc_tunables:
            env["GLIBC_TUNABLES"] = glibc_tunables
        if xla_flags:
            env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + xla_flags).strip()
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--worker", name, "--threads", str(threads)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=env,
            preexec_fn=(lambda: os.sched_setaffinity(0, cores)) if hasattr(os, "sched_setaffinity") else None,
        )
        hello = self._read()
        self.ok = hello.get("ok", False)
        self.why = hello.get("why", "")
        self.versions = hello.get("versions", "")

    def _read(self):
        for line in self.proc.stdout:
            if line.startswith(TAG):
                return json.loads(line[len(TAG) :])
        return {"ok": False, "why": "worker exited", "error": "worker exited"}

    def ask(self, **cmd):
        if self.proc.poll() is not None:
            return {"error": "worker exited"}
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()


def _ms(s):
    return "-" if s is None else f"{1e3 * s:.1f}" if s >= 1e-3 else f"{1e3 * s:.3f}"


def _pct(flops, s, peak):
    return "-" if s is None else f"{100 * flops / s / peak:.1f}%"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds per row (default 7)")
    ap.add_argument("--only", nargs="+", choices=CELLS, metavar="CELL", help="only these cells: SimpleRNN LSTM GRU")
    ap.add_argument("--quick", action="store_true", help="one small row (LSTM unless --only), 3 rounds")
    ap.add_argument(
        "--frameworks",
        nargs="+",
        choices=list(FRAMEWORKS),
        default=list(FRAMEWORKS),
        help="which to run (default: all)",
    )
    cores_avail = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count()))
    ap.add_argument(
        "--threads",
        type=int,
        default=len(cores_avail),
        help=f"cores (and intra-op threads) every framework gets (default {len(cores_avail)})",
    )
    ap.add_argument(
        "--glibc-tunables",
        metavar="TUNABLES",
        help="GLIBC_TUNABLES for every worker alike, e.g. glibc.malloc.hugetlb=1 (benchmarks/memory.py)",
    )
    ap.add_argument(
        "--xla-flags", metavar="FLAGS", help="XLA_FLAGS for every worker alike, e.g. --xla_cpu_prefer_vector_width=512"
    )
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker, args.threads)

    threads = max(1, min(args.threads, len(cores_avail)))
    cores = set(cores_avail[:threads])
    cells = args.only or (["LSTM"] if args.quick else list(CELLS))
    sizes = SIZES[:1] if args.quick else SIZES
    if args.quick and args.rounds == ap.get_default("rounds"):
        args.rounds = 3
    names = ["rnncore"] + [f for f in PEERS if f in args.frameworks]
    t_start = time.perf_counter()
    log = tempfile.NamedTemporaryFile("w", prefix="peers-", suffix=".log", delete=False)
    workers = {}
    try:
        for n in names:
            workers[n] = Worker(n, threads, cores, log, args.glibc_tunables, args.xla_flags)
        live = [n for n in names if workers[n].ok]
        if "rnncore" not in live:
            sys.exit(f"peers: rnncore did not start: {workers['rnncore'].why} (see {log.name})")

        peak_rounds = max(5, args.rounds)
        peaks = [workers["rnncore"].ask(op="peak", size=2048, rounds=peak_rounds)["flops"]]
        results = []  # (cell, size, {name: {"fwd": s, "bwd": s, "first_fwd": s, "first_bwd": s} or {"error": ..}})
        for cell in cells:
            for size in sizes:
                res = {}
                for n in live:
                    r = workers[n].ask(op="setup", cell=cell, size=list(size))
                    res[n] = r if "error" in r else {**r, "fwd": [], "bwd": []}
                active = [n for n in live if "error" not in res[n]]
                for r_i in range(args.rounds):
                    order = active[r_i % len(active) :] + active[: r_i % len(active)] if active else []
                    for n in order:
                        if "error" in res[n]:
                            continue
                        for mode in ("fwd", "bwd"):
                            out = workers[n].ask(op="time", mode=mode)
                            if "error" in out:
                                res[n] = out
                                break
                            res[n][mode].append(out["s"])
                for n in active:
                    if "error" not in res[n]:
                        res[n]["fwd"] = statistics.median(res[n]["fwd"])
                        res[n]["bwd"] = statistics.median(res[n]["bwd"])
                results.append((cell, size, res))
                print(f"# done: {cell} {size} ({time.perf_counter() - t_start:.0f} s)", file=sys.stderr, flush=True)
        peaks.append(workers["rnncore"].ask(op="peak", size=2048, rounds=peak_rounds)["flops"])
    finally:
        for w in workers.values():
            w.close()
        log.close()

    peak = max(peaks)
    wall = time.perf_counter() - t_start
    today = datetime.date.today().isoformat()
    print(
        f"# rnncore against peers, {today}, float32, CPU {platform.processor() or platform.machine()}, "
        f"{threads} of {os.cpu_count()} cores (affinity; OMP/MKL/OPENBLAS_NUM_THREADS={threads}, "
        f"torch.set_num_threads({threads}), TF intra-op {threads} / inter-op 1), {args.rounds} interleaved rounds"
        + (f", GLIBC_TUNABLES={args.glibc_tunables} in every worker" if args.glibc_tunables else "")
        + (f", XLA_FLAGS={args.xla_flags} in every worker" if args.xla_flags else "")
    )
    for n in names:
        w = workers[n]
        print(f"# {n}: {w.versions if w.ok else w.why}")
    print(
        f"# float32 matmul peak (jitted 2048x2048 jnp.dot, median of {peak_rounds}): "
        f"{peaks[0] / 1e9:.1f} GFLOP/s before the rows, {peaks[1] / 1e9:.1f} after; {peak / 1e9:.1f} used"
    )
    print(f"# total wall time {wall:.0f} s")
    heads = [FRAMEWORKS[n][0] for n in names]

    def cell_str(r, key):
        if r is None or not isinstance(r, dict):
            return "-"
        if "error" in r:
            return "error"
        return _ms(r.get(key))

    for mode, title, mult in (
        ("fwd", "forward", 1),
        ("bwd", "forward+backward (grad of sum(outputs) w.r.t. params and inputs)", 3),
    ):
        print()
        print(f"### {title}: median ms per call")
        print()
        print(
            "| cell | B, T, F, H | "
            + " | ".join(f"{h} (ms)" for h in heads)
            + " | rnncore / best peer | best peer | rnncore % of peak | best peer % of peak |"
        )
        print("| --- | --- | " + " | ".join("---:" for _ in heads) + " | ---: | --- | ---: | ---: |")
        for cell, (b, t, f, h), res in results:
            flops = mult * 2 * b * t * (f + h) * GATES[cell] * h
            cols = []
            for n in names:
                w = workers[n]
                cols.append(
                    cell_str(res.get(n), mode) if w.ok else ("not installed" if "not installed" in w.why else "failed")
                )
            mine = res["rnncore"].get(mode) if "error" not in res["rnncore"] else None
            peer_t = {n: res[n][mode] for n in names[1:] if n in res and "error" not in res[n]}
            best = min(peer_t, key=peer_t.get) if peer_t else None
            ratio = f"{mine / peer_t[best]:.2f}" if best and mine else "-"
            print(
                f"| {cell} | {b}, {t}, {f}, {h} | "
                + " | ".join(cols)
                + f" | {ratio} | {FRAMEWORKS[best][0] if best else '-'} | {_pct(flops, mine, peak)} | "
                f"{_pct(flops, peer_t[best], peak) if best else '-'} |"
            )
    print()
    print("### first call (compilation or tracing included), s: forward / forward+backward")
    print()
    print("| cell | B, T, F, H | " + " | ".join(heads) + " |")
    print("| --- | --- | " + " | ".join("---:" for _ in heads) + " |")
    for cell, (b, t, f, h), res in results:
        cols = []
        for n in names:
            r = res.get(n)
            if not workers[n].ok or r is None:
                cols.append("-")
            elif "first_fwd" not in r:
                cols.append("error")
            else:
                cols.append(f"{r['first_fwd']:.1f} / {r['first_bwd']:.1f}")
        print(f"| {cell} | {b}, {t}, {f}, {h} | " + " | ".join(cols) + " |")
    errors = [(cell, size, n, r["error"]) for cell, size, res in results for n, r in res.items() if "error" in r]
    for cell, size, n, e in errors:
        print(f"# error: {n} {cell} {size}: {e}")
    if errors:
        print(f"# worker output in {log.name}")
    else:
        os.unlink(log.name)


if __name__ == "__main__":
    main()
