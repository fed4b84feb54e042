"""What the classic RNN remedies change, measured with ``rc.fit`` on small synthetic tasks.

Four experiments, one markdown table each:

1. Gated memory: on the adding problem (Hochreiter & Schmidhuber 1997) at T=100 an LSTM and a tanh
   SimpleRNN of the same width get the same optimizer and the same number of steps; the test MSE is
   compared with the predict-1 baseline 1/6.
2. Gradient clipping (Pascanu, Mikolov & Bengio 2013): SGD at a learning rate where a SimpleRNN on
   noisy sines diverges to NaN/inf, with and without ``clipnorm`` / ``global_clipnorm``.
3. Standardized inputs: the same SimpleRNN on inputs ``x*50+200`` as they come and after
   ``rc.data.Standardizer`` fitted on the training inputs only.
4. Truncated BPTT (``truncate_gradient=k2``) on a task whose dependency length is fixed: recall the
   value marked D steps before the end of the sequence; test MSE and time per epoch for each k2.

Everything runs through ``rc.fit``, ``rc.optimizers`` and ``rc.data``; float32 on the default JAX
device. The default run takes a few minutes on 2 CPU cores; ``--quick`` is a smoke run of about a
minute (fewer steps and one seed, so its numbers need not reach the targets).

    python benchmarks/remedies.py [--quick] [--only 1 3]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import time
import warnings

import jax
import numpy as np

import rnncore as rc

BATCH = 64


def fit(model, params, x, y, optimizer, epochs, seed, **kwargs):
    """``rc.fit`` with the RuntimeWarning of a diverged run caught; returns params, history, seconds."""
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        params, history = rc.fit(
            model,
            params,
            x,
            y,
            loss="mse",
            optimizer=optimizer,
            epochs=epochs,
            batch_size=BATCH,
            seed=seed,
            verbose=0,
            **kwargs,
        )
    return params, history, time.perf_counter() - t0


def mse(model, params, x, y):
    return rc.train.evaluate(model, params, x, y, loss="mse", batch_size=256)["loss"]


def first_below(values, target):
    """1-based index of the first value below target, or None."""
    return next((i + 1 for i, v in enumerate(values) if v < target), None)


def table(header, rows):
    print("| " + " | ".join(header) + " |")
    print("| " + " | ".join("---" if i == 0 else "---:" for i in range(len(header))) + " |")
    for r in rows:
        print("| " + " | ".join(str(c) for c in r) + " |", flush=True)
    print()


def g(v):
    return "nan" if v is None or not np.isfinite(v) else f"{v:.4g}"


# --- 1. LSTM vs SimpleRNN on the adding problem ----------------------------------------------------


def adding(quick):
    T, units, lr, clip = 100, 32, 3e-3, 1.0
    n_train, n_test = 3200, 1000
    epochs = 6 if quick else 80
    seeds = [0] if quick else [0, 1, 2]
    x, y = rc.data.adding_problem(n_train, T, seed=100)
    xt, yt = rc.data.adding_problem(n_test, T, seed=200)
    steps = epochs * -(-n_train // BATCH)
    print(
        f"## 1. Adding problem, T={T}: LSTM vs tanh SimpleRNN, {units} units + Dense(1), "
        f"adam(lr={lr}, clipnorm={clip}), batch {BATCH}, {n_train} training / {n_test} test sequences "
        f"(data seeds 100 / 200), {steps} steps each; baseline MSE 1/6 = {rc.data.ADDING_BASELINE_MSE:.4f}\n"
    )
    rows, wins = [], {}
    for name, layer in (("LSTM", rc.layers.LSTM), ("SimpleRNN", rc.layers.SimpleRNN)):
        for seed in seeds:
            model = rc.Sequential([layer(units), rc.layers.Dense(1)])
            p = model.init(jax.random.PRNGKey(seed), input_shape=(T, 2))
            p, h, sec = fit(
                model, p, x, y, rc.optimizers.adam(lr, clipnorm=clip), epochs, seed, validation_data=(xt, yt)
            )
            test = h.history["val_loss"]
            hit = first_below(test, 0.01)
            wins.setdefault(name, []).append(test[-1] < 0.01)
            rows.append(
                [
                    name,
                    seed,
                    steps,
                    "-" if hit is None else hit * (steps // epochs),
                    g(mse(model, p, x, y)),
                    g(test[-1]),
                    g(min(test)),
                    f"{sec:.0f}",
                ]
            )
    table(
        [
            "model",
            "seed",
            "steps",
            "first step with test MSE < 0.01",
            "final train MSE",
            "final test MSE",
            "best test MSE",
            "wall (s)",
        ],
        rows,
    )
    print(", ".join(f"{k}: {sum(v)}/{len(v)} seeds end below 0.01" for k, v in wins.items()) + "\n")


# --- 2. gradient clipping -----------------------------------------------------------------------------


def clipping(quick):
    T, units, n_train, n_test = 50, 32, 2048, 512
    epochs = 5 if quick else 20
    seeds = [0] if quick else [0, 1, 2]
    x, y = rc.data.noisy_sine(n_train, T, noise=0.1, seed=1)
    xt, yt = rc.data.noisy_sine(n_test, T, noise=0.1, seed=2)
    spe = -(-n_train // BATCH)
    print(
        f"## 2. Gradient clipping: SimpleRNN({units}, tanh) + Dense(1) on noisy_sine(T={T}, noise=0.1), "
        f"{n_train} / {n_test} sequences (data seeds 1 / 2), batch {BATCH}, {epochs} epochs ({epochs * spe} steps); "
        f"init seeds {', '.join(map(str, seeds))}; the norm is the global gradient norm before clipping\n"
    )
    configs = [
        ("sgd(lr=0.3)", lambda: rc.optimizers.sgd(0.3), None),
        ("sgd(lr=0.3, clipnorm=1.0)", lambda: rc.optimizers.sgd(0.3, clipnorm=1.0), 1.0),
        ("sgd(lr=0.3, global_clipnorm=1.0)", lambda: rc.optimizers.sgd(0.3, global_clipnorm=1.0), 1.0),
        ("sgd(lr=0.1), for reference", lambda: rc.optimizers.sgd(0.1), None),
    ]
    rows = []
    for name, make, c in configs:
        where, largest, over, last, test, secs = [], [], [], [], [], []
        for seed in seeds:
            model = rc.Sequential([rc.layers.SimpleRNN(units), rc.layers.Dense(1)])
            p = model.init(jax.random.PRNGKey(seed), input_shape=(T, 1))
            p, h, sec = fit(model, p, x, y, make(), epochs, seed, gradient_norms=True)
            norms = np.sqrt(np.sum(np.square(h.gradient_norms), axis=1))
            d = h.diverged
            where.append("-" if d is None else str(d.epoch * spe + d.step + 1))
            largest.append(norms[np.isfinite(norms)].max())
            over.append(np.sum(norms > c) if c is not None else None)
            last.append(h.history["loss"][-1])
            test.append(None if d is not None else mse(model, p, xt, yt))
            secs.append(sec)
        rows.append(
            [
                name,
                " / ".join(where),
                " / ".join(g(v) for v in largest),
                "-" if c is None else " / ".join(str(v) for v in over),
                " / ".join(g(v) for v in last),
                " / ".join("-" if v is None else g(v) for v in test),
                f"{sum(secs):.0f}",
            ]
        )
    per = " (" + ", ".join(map(str, seeds)) + ")"
    table(
        [
            "optimizer",
            "diverged at step" + per,
            "largest finite norm" + per,
            "steps with norm > clip" + per,
            "last epoch loss" + per,
            "test MSE" + per,
            "wall, all seeds (s)",
        ],
        rows,
    )


# --- 3. standardized inputs -----------------------------------------------------------------------------


def standardizing(quick):
    T, units, n_train, n_test, lr, target = 50, 32, 2048, 512, 1e-3, 0.02
    epochs = 5 if quick else 30
    seeds = [0] if quick else [0, 1]
    x, y = rc.data.noisy_sine(n_train, T, noise=0.1, seed=1)
    xt, yt = rc.data.noisy_sine(n_test, T, noise=0.1, seed=2)
    raw, raw_t = x * 50 + 200, xt * 50 + 200
    s = rc.data.Standardizer().fit(raw)  # training inputs only
    inputs = [
        ("x as generated (mean 0, std about 0.7)", x, xt),
        ("raw: x*50 + 200", raw, raw_t),
        ("standardized raw (Standardizer fit on training inputs)", s.transform(raw), s.transform(raw_t)),
    ]
    print(
        f"## 3. Standardized inputs: SimpleRNN({units}, tanh) + Dense(1), adam(lr={lr}), noisy_sine(T={T}), "
        f"targets unscaled, {n_train} / {n_test} sequences (data seeds 1 / 2), batch {BATCH}, {epochs} epochs; "
        f"target test MSE {target}\n"
    )
    rows = []
    for name, a, at in inputs:
        for seed in seeds:
            model = rc.Sequential([rc.layers.SimpleRNN(units), rc.layers.Dense(1)])
            p = model.init(jax.random.PRNGKey(seed), input_shape=(T, 1))
            p, h, sec = fit(model, p, a, y, rc.optimizers.adam(lr), epochs, seed, validation_data=(at, yt))
            test = h.history["val_loss"]
            hit = first_below(test, target)
            rows.append([name, seed, "-" if hit is None else hit, g(test[0]), g(test[-1]), f"{sec:.0f}"])
    table(
        [
            "inputs",
            "seed",
            f"first epoch with test MSE < {target}",
            "test MSE after epoch 1",
            f"test MSE after epoch {epochs}",
            "wall (s)",
        ],
        rows,
    )


# --- 4. truncated BPTT ------------------------------------------------------------------------------------


def marked_recall(n, T, D, seed):
    """Channel 0 uniform on [0, 1], channel 1 marks step T-D (0-based); the target is the marked
    value, D steps from the end counting the last step as 1. Predicting 0.5 gives MSE 1/12."""
    r = np.random.default_rng(seed)
    v = r.uniform(0, 1, (n, T))
    m = np.zeros((n, T))
    m[:, T - D] = 1.0
    return np.stack([v, m], -1).astype(np.float32), v[:, T - D : T - D + 1].astype(np.float32)


class EpochTimer:
    def __init__(self):
        self.seconds = []

    def on_epoch_begin(self, epoch, run):
        self.t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs, run):
        self.seconds.append(time.perf_counter() - self.t0)


def truncation(quick):
    T, D, units, lr, clip, n_train, n_test = 40, 10, 32, 1e-2, 1.0, 2048, 512
    epochs = 5 if quick else 12
    seeds = [0] if quick else [0, 1]
    k2s = [5, 10, 40] if quick else [5, 8, 10, 12, 20, None]
    x, y = marked_recall(n_train, T, D, seed=1)
    xt, yt = marked_recall(n_test, T, D, seed=2)
    print(
        f"## 4. Truncated BPTT: recall the value marked D={D} steps from the end, T={T}; LSTM({units}) + Dense(1), "
        f"adam(lr={lr}, clipnorm={clip}), {n_train} / {n_test} sequences (data seeds 1 / 2), "
        f"batch {BATCH}, {epochs} epochs; "
        f"predict-0.5 baseline MSE 1/12 = {1 / 12:.4f}\n"
    )
    rows = []
    for k2 in k2s:
        # cuts at s_k2, s_2k2, ...: the final output's gradient reaches the last ((T-1) % k2) + 1 inputs
        reach = T if k2 is None else (T - 1) % k2 + 1
        tests, per_epoch = [], []
        for seed in seeds:
            model = rc.Sequential([rc.layers.LSTM(units), rc.layers.Dense(1)])
            p = model.init(jax.random.PRNGKey(seed), input_shape=(T, 2))
            timer = EpochTimer()
            p, h, sec = fit(
                model,
                p,
                x,
                y,
                rc.optimizers.adam(lr, clipnorm=clip),
                epochs,
                seed,
                truncate_gradient=k2,
                callbacks=[timer],
            )
            tests.append(mse(model, p, xt, yt))
            per_epoch += timer.seconds[1:]  # epoch 1 compiles
        rows.append(
            [
                "full (None)" if k2 is None else k2,
                reach,
                "yes" if reach >= D else "no",
                " / ".join(g(t) for t in tests),
                f"{1e3 * statistics.median(per_epoch):.0f}",
            ]
        )
    table(
        [
            "k2",
            "inputs the output's gradient reaches",
            f"reaches the mark (>= {D})",
            "test MSE per seed (" + ", ".join(map(str, seeds)) + ")",
            "ms per epoch (median, after epoch 1)",
        ],
        rows,
    )


EXPERIMENTS = {1: adding, 2: clipping, 3: standardizing, 4: truncation}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: fewer steps, one seed (about a minute)")
    ap.add_argument("--only", type=int, nargs="+", choices=sorted(EXPERIMENTS), default=sorted(EXPERIMENTS))
    args = ap.parse_args()
    print(
        f"# remedies{' (--quick)' if args.quick else ''}, {datetime.date.today()}, float32, "
        f"{jax.devices()[0].platform}, {platform.processor() or platform.machine()}, jax {jax.__version__}\n"
    )
    t0 = time.perf_counter()
    for i in args.only:
        EXPERIMENTS[i](args.quick)
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
