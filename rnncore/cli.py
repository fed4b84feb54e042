r"""The ``rnncore`` command: ``diagnose``, ``train`` and ``check-keras``.

``rnncore diagnose`` measures how gradients travel through recurrent networks: SimpleRNN, LSTM
and GRU layers with Keras's default initialization on a standardized random sequence, or every
recurrent layer of a user's saved ``.keras`` model on the user's data. Per recurrent layer (per
direction of a Bidirectional one) it reports

* :math:`\lVert\partial L/\partial s_{T-k}\rVert` at lags k = 1, 10, 50, 100: the gradient that a
  loss at the last step sends back k steps, for :math:`L = \sum_b \langle y_{b,T}, v_b\rangle` with
  :math:`v_b` a random unit vector per batch row (so :math:`\lVert\partial L/\partial y_T\rVert = 1`
  per row; for the default models :math:`y_T = h_T` of the top layer), batch mean, total
  derivative through every later step and every layer above (:func:`rnncore.analysis.gradient_flow`;
  lag T is the initial state :math:`s_0`);
* the memory horizon (:func:`rnncore.analysis.memory_horizon`, batch mean), the largest Lyapunov
  exponent (:func:`rnncore.analysis.lyapunov_spectrum`, nats/step, batch mean, T//10 warm-up
  steps; the picture shows the 8 largest), the fraction of saturated gate values (:func:`rnncore.analysis.gate_saturation`, pooled
  over its gates) and the verdict (:func:`rnncore.analysis.verdict`);

and draws them (:func:`rnncore.plot.diagnose`). ``rnncore train`` trains on a synthetic task with a
chosen cell and remedies (optimizer, clipping, initialization, layer normalization, truncated
BPTT) and compares the final loss with the task's known baseline. ``rnncore check-keras``
compares rnncore with Keras 3 on fixed and random configurations.

Errors in what the user gave (arguments, files, data shapes) print one line starting
``rnncore: error:`` on stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from . import analysis, bptt, compilation, data, initializers
from . import layers as L
from . import losses as _losses
from . import optimizers as _optimizers
from .interop.keras.parity import parity_table
from .models import Sequential

__all__ = ["main", "build_parser", "diagnose_model", "format_table", "load_data", "parity_table", "CELLS", "LAGS"]

CELLS = {"simple_rnn": L.SimpleRNN, "lstm": L.LSTM, "gru": L.GRU, "layernorm_lstm": L.LayerNormLSTM}
LAGS = (1, 10, 50, 100)
OPTIMIZERS = ("adam", "adamw", "rmsprop", "sgd", "adagrad")
TASKS = ("adding", "copy", "sine")
LAYER_TYPES = ("SimpleRNN", "LSTM", "GRU", "Bidirectional")


class UsageError(Exception):
    """A bad command line: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse prints usage and exits; one line is enough
        raise UsageError(message)


def _int_at_least(minimum: int, what: str):
    """An argparse type: an integer >= ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


_positive_int = _int_at_least(1, "a positive integer")
_nonneg_int = _int_at_least(0, "an integer >= 0")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


# --- data ---------------------------------------------------------------------------------------


def load_data(path: str) -> np.ndarray:
    """Inputs from ``path``, float32, ``(B, T, F)``.

    ``.npy``: the array; ``.npz``: the array named ``x``, else the first one; ``.csv``: one
    sequence, a row per time step and a column per feature (comma-separated; a first line that is
    not numbers is taken as a header). A 2-D array is one sequence ``(T, F)``.
    """
    ext = os.path.splitext(path)[1].lower()
    if not os.path.isfile(path):
        raise ValueError(f"--data {path}: no such file.")
    try:
        if ext == ".npy":
            x = np.load(path, allow_pickle=False)
        elif ext == ".npz":
            with np.load(path, allow_pickle=False) as z:
                if not z.files:
                    raise ValueError(f"--data {path}: the .npz file holds no array.")
                x = z["x"] if "x" in z.files else z[z.files[0]]
        elif ext == ".csv":
            with open(path, encoding="utf-8") as f:
                lines = [ln for ln in f.read().splitlines() if ln.strip()]
            if lines:
                try:
                    [float(v) for v in lines[0].split(",")]
                except ValueError:
                    lines = lines[1:]  # a header
            if not lines:
                raise ValueError(f"--data {path}: the .csv file holds no rows of numbers.")
            x = np.loadtxt(lines, delimiter=",", ndmin=2, dtype=np.float64)
        else:
            raise ValueError(f"--data {path}: unknown file type {ext!r}; expected .npy, .npz or .csv.")
    except (ValueError, OSError, UnicodeDecodeError) as e:
        msg = str(e)
        raise ValueError(msg if msg.startswith("--data") else f"--data {path}: cannot read it ({msg}).") from None
    if not np.issubdtype(np.asarray(x).dtype, np.number) or np.asarray(x).dtype == bool:
        raise ValueError(f"--data {path}: expected numbers; got an array of dtype {np.asarray(x).dtype}.")
    x = np.asarray(x, np.float32)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or 0 in x.shape:
        raise ValueError(f"--data {path}: expected (batch, time, features) or one sequence (time, features); "
                         f"got shape {x.shape}.")
    return x


def _input_features(model, params) -> Optional[int]:
    """The feature size the model's first weighted layer takes."""
    for layer, p in zip(model.layers, params):
        if isinstance(p, L.BidirectionalParams):
            return int(p.forward.kernel.shape[0])
        kernel = getattr(p, "kernel", None)
        if kernel is not None:
            return int(kernel.shape[0])
    return None


def _random_inputs(batch: int, steps: int, features: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(batch, steps, features))
    return data.Standardizer().fit(x).transform(x).astype(np.float32)


# --- the diagnosis ------------------------------------------------------------------------------


def _projection_loss(y_pred, v):
    """:math:`L = \\sum \\langle y, v\\rangle` (the first output where the model returns several)."""
    if isinstance(y_pred, (tuple, list)):
        y_pred = y_pred[0]
    return jnp.sum(y_pred * v)


def _directions(model, params, x, seed: int):
    """Unit vectors per batch row on the model's (first) output at its last step."""
    out = jax.eval_shape(lambda p, xx: model.apply(p, xx), params, x)
    out = out[0] if isinstance(out, (tuple, list)) else out
    b, width = out.shape[0], out.shape[-1]
    v = np.random.default_rng(seed + 1).normal(size=(b, width))
    v /= np.linalg.norm(v, axis=-1, keepdims=True)
    if len(out.shape) == 3:
        full = np.zeros(out.shape)
        full[:, -1] = v
        v = full
    return jnp.asarray(v, out.dtype)


def _zero_states(model, batch, dtype):
    states = []
    for layer in model.layers:
        if bptt._is_bidirectional(layer):
            states.append((layer.forward_layer.cell.initial_state(batch, dtype),
                           layer.backward_layer.cell.initial_state(batch, dtype)))
        elif hasattr(layer, "cell"):
            states.append(layer.cell.initial_state(batch, dtype))
        else:
            states.append(None)
    return tuple(states)


def initial_state_gradient_norms(model, params, x, v) -> list:
    """:math:`\\lVert\\partial L/\\partial s_0\\rVert` per recurrent direction, ``(B,)`` each, for
    :math:`L` = :func:`_projection_loss` (NumPy float64 arrays)."""
    def loss(s0):
        return _projection_loss(model.apply(params, x, initial_states=s0), v)

    def norm(cell, g):  # on the host in float64: the squares of float32 gradients near 1e-20 underflow
        return np.linalg.norm(np.asarray(cell.state_to_vector(g), np.float64), axis=-1)

    grads = compilation.jit(jax.grad(loss))(_zero_states(model, x.shape[0], x.dtype))
    norms = []
    for layer, g in zip(model.layers, grads):
        if bptt._is_bidirectional(layer):
            for sub, gs in zip((layer.forward_layer, layer.backward_layer), g):
                norms.append(norm(sub.cell, gs))
        elif hasattr(layer, "cell"):
            norms.append(norm(layer.cell, g))
    return norms


def _consumed(model, params, x):
    """``(layer, _Consumed)`` per recurrent direction, in ``gradient_flow``'s row order."""
    run = bptt._jit_static(bptt._model_forward, model=model, training=False)
    _, consumed, _, _ = run(params=params, x=x, mask=None, rng=None, initial_states=None, taps=None)
    rows = []
    for layer, c in zip(model.layers, consumed):
        if c is None:
            continue
        if isinstance(c, bptt.Directions):
            rows += [(layer.forward_layer, c.forward), (layer.backward_layer, c.backward)]
        else:
            rows.append((layer, c))
    return rows


def _horizon_and_verdict(logn, fraction: float = 0.01, low: float = 1e-3, high: float = 1e3):
    """From :math:`\\log\\lVert\\partial s_T/\\partial s_{T-\\ell}\\rVert` ``(B, T)``: the batch mean of
    :func:`rnncore.analysis.memory_horizon`, and :func:`rnncore.analysis.verdict`'s ``log_gain``
    and label, with their defaults."""
    horizon = float(np.mean(np.asarray(analysis.horizon_from_log_norms(logn, fraction))))
    log_gain = float(np.mean(np.asarray(logn[:, -1], np.float64)))
    return horizon, log_gain, analysis.verdict_label(log_gain, low, high)


def diagnose_model(model, params, x, *, lags: Sequence[int] = LAGS, seed: int = 0, k_singular: int = 8):
    """Diagnose every recurrent layer of ``model`` on inputs ``x (B, T, F)``.

    Returns ``(rows, results)``: ``rows`` one dict per recurrent direction (``layer``,
    ``grad_norm_by_lag`` {k: batch mean of :math:`\\lVert\\partial L/\\partial s_{T-k}\\rVert`},
    ``memory_horizon``, ``lyapunov_max``, ``saturation``, ``gates``, ``verdict``, ``log_gain``);
    ``results`` {layer name: dict(flow, lyapunov, saturation, singular_values)} for
    :func:`rnncore.plot.diagnose` (``flow`` is the whole model's :class:`GradientFlow`).
    """
    if not any(bptt._is_recurrent(layer) for layer in model.layers):
        raise ValueError("the model has no recurrent layer (SimpleRNN, LSTM, GRU, RNN or Bidirectional); "
                         "nothing to diagnose.")
    x = jnp.asarray(x)
    steps = x.shape[1]
    v = _directions(model, params, x, seed)
    flow = analysis.gradient_flow(model, params, x, v, loss=_projection_loss)
    s0_norms = initial_state_gradient_norms(model, params, x, v)
    warmup = steps // 10
    rows, results = [], {}
    for r, (layer, c) in enumerate(_consumed(model, params, x)):
        cell, kw = layer.cell, dict(mask=c.mask, dropout_masks=c.dropout_masks, go_backwards=layer.go_backwards)
        norms = np.asarray(flow.state_norms[r], np.float64)  # (B, T): [:, t-1] = |dL/ds_t|
        by_lag = {}
        for k in lags:
            if 1 <= k < steps:
                by_lag[k] = float(norms[:, steps - 1 - k].mean())
            elif k == steps:
                by_lag[k] = float(s0_norms[r].mean())
        # one log-domain lag spectrum serves the horizon, the verdict and the picture (the costly part:
        # a QR and an SVD of S x S per step); the formulas are memory_horizon's and verdict's
        svals = analysis.singular_values_by_lag(cell, c.params, c.xs, c.initial_state,
                                                k=min(k_singular, cell.state_size), **kw)
        horizon, log_gain, label = _horizon_and_verdict(svals[..., 0])
        lyap = analysis.lyapunov_spectrum(cell, c.params, c.xs, c.initial_state, k=min(k_singular, cell.state_size),
                                          warmup=warmup, **kw)
        sat = analysis.gate_saturation(cell, c.params, c.xs, c.initial_state, **kw)
        name = flow.layer_names[r]
        rows.append(dict(
            layer=name,
            grad_norm_by_lag=by_lag,
            memory_horizon=horizon,
            lyapunov_max=float(np.mean(np.asarray(lyap[:, 0], np.float64))),
            saturation=float(np.mean(list(sat.values()))) if sat else None,
            gates=sat,
            verdict=label,
            log_gain=log_gain,
        ))
        one_row = flow._replace(state_norms=flow.state_norms[r:r + 1], hidden_norms=flow.hidden_norms[r:r + 1],
                                layer_names=flow.layer_names[r:r + 1], layer_indices=flow.layer_indices[r:r + 1],
                                go_backwards=flow.go_backwards[r:r + 1])
        results[name] = dict(flow=one_row, lyapunov=lyap, saturation=sat, singular_values=svals)
    return rows, results


def _fmt_lag(value) -> str:
    return "—" if value is None else f"{value:.2e}"


def format_table(rows: list, lags: Sequence[int]) -> str:
    """The diagnosis as a text table, one line per row (``rows`` with a ``model`` key added)."""
    head = (f"{'model':<14} {'layer':<22} " + " ".join(f"{'k=' + str(k):>9}" for k in lags)
            + f" {'horizon':>8} {'λ_max':>8} {'saturated':>9}  verdict")
    lines = [head]
    for r in rows:
        sat = "—" if r["saturation"] is None else f"{r['saturation']:.1%}"
        lines.append(f"{r['model']:<14} {r['layer']:<22} "
                     + " ".join(f"{_fmt_lag(r['grad_norm_by_lag'].get(k)):>9}" for k in lags)
                     + f" {r['memory_horizon']:>8.1f} {r['lyapunov_max']:>+8.4f} {sat:>9}  {r['verdict']}")
    return "\n".join(lines)


def _synthetic_model(cell_name: str, units: int, n_layers: int, init: str) -> Sequential:
    make = CELLS[cell_name]
    stack = [make(units, recurrent_initializer=init, return_sequences=i < n_layers - 1) for i in range(n_layers)]
    return Sequential(stack)


def _cmd_diagnose(args) -> int:
    t0 = time.perf_counter()
    lags = tuple(args.lags)
    all_rows, results = [], {}
    if args.model is not None:
        if args.data is None:
            raise UsageError("--model needs --data (the inputs to analyse it on: .npy, .npz or .csv).")
        from .keras import from_keras

        model, params = from_keras(args.model)
        if not any(bptt._is_recurrent(layer) for layer in model.layers):
            raise ValueError(f"--model {args.model}: the model has no recurrent layer (SimpleRNN, LSTM, GRU, RNN or "
                             "Bidirectional); nothing to diagnose.")
        x = load_data(args.data)
        features = _input_features(model, params)
        if features is not None and x.shape[2] != features:
            raise ValueError(f"--data {args.data}: the model expects inputs of shape (batch, time, {features}) "
                             f"(or (time, {features}) for one sequence); got {x.shape if x.shape[0] > 1 else x.shape[1:]}.")
        x = x[:args.batch]
        label = os.path.basename(args.model)
        rows, res = diagnose_model(model, params, x, lags=lags, seed=args.seed)
        for r in rows:
            r["model"] = label
        all_rows += rows
        results.update(res)
        heading = (f"rnncore diagnose: {args.model} on {args.data}, B={x.shape[0]}, T={x.shape[1]}, "
                   f"F={x.shape[2]}")
        title = f"{label} on {os.path.basename(args.data)} (T={x.shape[1]})"
        settings = dict(model=args.model, data=args.data, batch=int(x.shape[0]), seq_len=int(x.shape[1]),
                        features=int(x.shape[2]))
    else:
        if args.data is not None:
            raise UsageError("--data goes with --model (without --model the inputs are random).")
        x = _random_inputs(args.batch, args.seq_len, args.features, args.seed)
        for cell_name in args.cell:
            model = _synthetic_model(cell_name, args.units, args.layers, args.init)
            params = model.init(jax.random.PRNGKey(args.seed), (args.seq_len, args.features))
            rows, res = diagnose_model(model, params, x, lags=lags, seed=args.seed)
            for r in rows:
                r["model"] = cell_name
            all_rows += rows
            for name, value in res.items():
                results[cell_name if args.layers == 1 else f"{cell_name} {name}"] = value
        heading = (f"rnncore diagnose: standardized random inputs B={args.batch}, T={args.seq_len}, "
                   f"F={args.features}; {args.layers} layer(s) of {args.units} units, kernel glorot_uniform, "
                   f"recurrent kernel {args.init}, seed {args.seed}")
        title = f"T={args.seq_len}, {args.layers}×{args.units} units, recurrent kernel {args.init}"
        settings = dict(cells=list(args.cell), units=args.units, layers=args.layers, init=args.init,
                        batch=args.batch, seq_len=args.seq_len, features=args.features, seed=args.seed)
    picture = None
    if not args.no_plot:
        picture = args.out
        _diagnose_picture(results, picture, title)
    seconds = time.perf_counter() - t0
    if args.json:
        out = dict(settings=settings, lags=list(lags), rows=[
            {**r, "grad_norm_by_lag": {str(k): v for k, v in r["grad_norm_by_lag"].items()}} for r in all_rows],
            picture=picture, seconds=round(seconds, 3))
        print(json.dumps(out, indent=1))
        return 0
    print(heading)
    print("k=…: ‖∂L/∂s_{T-k}‖, the gradient a loss at the last step (a unit vector on the output per row) sends "
          "back k steps, batch mean")
    print(format_table(all_rows, lags))
    print(f"horizon: lags over which the gradient stays above 1% of lag 1's; λ_max: largest Lyapunov exponent "
          f"(nats/step); saturated: gate values outside [0.05, 0.95] (sigmoid) or beyond ±0.95 (tanh)")
    print((f"picture: {picture}; " if picture else "") + f"{seconds:.1f} s")
    return 0


# --- pictures -----------------------------------------------------------------------------------


def _diagnose_picture(results: dict, path: str, title: str) -> None:
    from . import plot

    fig = plot.diagnose(results, path=path, title=title)
    _close(fig)


def _close(fig) -> None:
    import matplotlib.pyplot as plt

    plt.close(fig)


# --- train --------------------------------------------------------------------------------------


def _task(args):
    """``(x, y, head, loss, baseline, baseline_text)`` for the chosen synthetic task."""
    if args.task == "adding":
        x, y = data.adding_problem(args.samples, args.seq_len, seed=args.seed)
        return x, y, L.Dense(1), "mse", data.ADDING_BASELINE_MSE, "predict 1: Var(a+b) = 1/6"
    if args.task == "sine":
        x, y = data.noisy_sine(args.samples, args.seq_len, seed=args.seed)
        return x, y, L.Dense(1), "mse", float(np.var(y)), "predict the mean target: Var(y)"
    n_symbols, copy_length = 8, 10
    tokens, y = data.copy_memory(args.samples, args.seq_len, n_symbols=n_symbols, copy_length=copy_length,
                                 seed=args.seed)
    x = np.eye(n_symbols + 2, dtype=np.float32)[tokens]  # one-hot tokens
    baseline = data.copy_memory_baseline(args.seq_len, n_symbols, copy_length)
    return (x, y, L.Dense(n_symbols + 2), _losses.SparseCategoricalCrossentropy(from_logits=True), baseline,
            "memoryless: c·log K / (T + 2c)")


def _optimizer(args):
    kwargs = dict(clipnorm=args.clipnorm, global_clipnorm=args.global_clipnorm)
    if args.lr is not None:
        kwargs["learning_rate"] = args.lr
    return getattr(_optimizers, args.optimizer)(**kwargs)


def _cmd_train(args) -> int:
    if args.clipnorm is not None and args.global_clipnorm is not None:
        raise UsageError("use --clipnorm or --global-clipnorm, not both (Keras allows one).")
    cell_name = args.cell
    if args.layernorm:
        if cell_name not in ("lstm", "layernorm_lstm"):
            raise UsageError(f"--layernorm applies to --cell lstm (a layer-normalized LSTM); got --cell {cell_name}.")
        cell_name = "layernorm_lstm"
    if args.truncate is not None and args.truncate >= args.seq_len + (20 if args.task == "copy" else 0):
        print(f"note: --truncate {args.truncate} is not shorter than the sequences; it changes nothing.")
    from .train import fit

    x, y, head, loss, baseline, baseline_text = _task(args)
    make = CELLS[cell_name]
    sequence_out = args.task == "copy"
    stack = [make(args.units, recurrent_initializer=args.init,
                  return_sequences=sequence_out or i < args.layers - 1) for i in range(args.layers)]
    model = Sequential([*stack, head])
    params = model.init(jax.random.PRNGKey(args.seed), x.shape[1:])
    label = (f"{cell_name} {args.units}×{args.layers}, {args.optimizer}"
             + (f" lr {args.lr:g}" if args.lr is not None else "")
             + (f", clipnorm {args.clipnorm:g}" if args.clipnorm is not None else "")
             + (f", global_clipnorm {args.global_clipnorm:g}" if args.global_clipnorm is not None else "")
             + (f", init {args.init}" if args.init != "orthogonal" else "")
             + (f", truncate {args.truncate}" if args.truncate is not None else ""))
    print(f"rnncore train: {args.task} task, T={args.seq_len}, {args.samples} samples (20% validation); {label}")
    t0 = time.perf_counter()
    params, history = fit(model, params, x, y, loss=loss, optimizer=_optimizer(args), epochs=args.epochs,
                          batch_size=args.batch_size, validation_split=0.2, seed=args.seed, verbose=args.verbose,
                          truncate_gradient=args.truncate)
    seconds = time.perf_counter() - t0
    logs = history.history
    status = 0
    if history.diverged is not None:
        print(f"training stopped: {history.diverged.message()}")
        status = 1
    if logs.get("loss"):
        train_loss, val_loss = logs["loss"][-1], logs.get("val_loss", [float("nan")])[-1]
        print(f"final loss {train_loss:.4g} (train), {val_loss:.4g} (validation); baseline {baseline:.4g} "
              f"({baseline_text}); validation/baseline = {val_loss / baseline:.3g} in {seconds:.1f} s")
    if not args.no_plot and logs.get("loss"):
        _training_picture({label: history}, args.out, baseline)
        print(f"picture: {args.out}")
    return status


def _training_picture(histories: dict, path: str, baseline: float) -> None:
    from . import plot

    fig = plot.training_curves(histories, key="loss", path=path)
    if fig.axes:
        ax = fig.axes[0]
        ax.axhline(baseline, color="0.4", linestyle="--", linewidth=1, label="baseline")
        ax.legend()
        fig.savefig(path)
    _close(fig)


# --- check-keras --------------------------------------------------------------------------------


def _cmd_check_keras(args) -> int:
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import importlib.util

    if importlib.util.find_spec("keras") is None:
        print("rnncore: error: check-keras compares rnncore with Keras 3, which is not installed; "
              "install it with: pip install 'rnncore[test]'", file=sys.stderr)
        return 2
    import keras

    if keras.backend.backend() != "jax":
        print(f"rnncore: error: check-keras needs Keras on the JAX backend; KERAS_BACKEND is "
              f"{keras.backend.backend()!r} (set KERAS_BACKEND=jax).", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    rows = parity_table(seed=args.seed, trials=args.trials, kinds=args.only)
    print(f"rnncore vs Keras 3 (JAX backend), float32, random weights, masked batch, 2-layer stacks + Dense; "
          f"seed {args.seed}, {args.trials} random configuration(s) per layer type")
    if args.verbose:
        print(f"{'configuration':<64} {'outputs':>10} {'gradients':>10}")
        for kind, desc, out_err, grad_err in rows:
            print(f"{desc:<64} {out_err:>10.2e} {grad_err:>10.2e}")
    print(f"{'layer type':<16} {'cases':>5} {'max rel. error, outputs':>24} {'max rel. error, gradients':>26}")
    for kind in dict.fromkeys(r[0] for r in rows):
        mine = [r for r in rows if r[0] == kind]
        print(f"{kind:<16} {len(mine):>5} {max(r[2] for r in mine):>24.2e} {max(r[3] for r in mine):>26.2e}")
    worst = max(max(r[2], r[3]) for r in rows)
    print(f"largest error {worst:.2e} ({'within' if worst <= 1e-5 else 'ABOVE'} 1e-5) "
          f"in {time.perf_counter() - t0:.1f} s")
    return 0 if worst <= 1e-5 else 1


# --- the parser ---------------------------------------------------------------------------------

_DIAGNOSE_EXAMPLES = """examples:
  rnncore diagnose                                   # SimpleRNN, LSTM, GRU; 64 units, T=100
  rnncore diagnose --cell lstm gru --seq-len 300 --units 32
  rnncore diagnose --cell simple_rnn --init identity # IRNN
  rnncore diagnose --layers 3 --json > diagnosis.json
  rnncore diagnose --model my_model.keras --data x.npy --out my_model.png

data files (--data): .npy (batch, time, features) or (time, features); .npz: the array named x, else the
first one; .csv: one sequence, a row per time step, a column per feature (comma-separated, optional header).
"""

_TRAIN_EXAMPLES = """examples:
  rnncore train                                      # adding problem, LSTM, T=50
  rnncore train --task adding --cell simple_rnn --seq-len 100 --epochs 20
  rnncore train --cell simple_rnn --init identity --optimizer sgd --lr 0.01 --clipnorm 1
  rnncore train --task copy --seq-len 30 --cell lstm --layernorm --global-clipnorm 1
  rnncore train --task sine --cell gru --truncate 10 --out sine.png
"""

_CHECK_EXAMPLES = """examples:
  rnncore check-keras                                # the fixed stacks and 2 random ones per layer type
  rnncore check-keras --trials 10 --seed 3 --verbose
  rnncore check-keras --only LSTM GRU --trials 5
"""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rnncore", description="Keras-exact recurrent networks with the backward pass opened up: "
                     "diagnose vanishing and exploding gradients, train with remedies, check Keras parity.",
                     epilog="`rnncore` with no command runs `rnncore diagnose`. See `rnncore COMMAND --help`.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    fmt = argparse.RawDescriptionHelpFormatter
    init_names = [n for n in initializers.NAMES if n not in ("constant", "variance_scaling")]

    d = sub.add_parser("diagnose", help="gradient flow, memory horizon, Lyapunov exponent, saturation, verdict",
                       description="How gradients travel back through recurrent layers: the gradient a loss at the "
                       "last step sends back k steps, the memory horizon, the largest Lyapunov exponent, gate "
                       "saturation and a vanishing/exploding verdict, for every recurrent layer.",
                       epilog=_DIAGNOSE_EXAMPLES, formatter_class=fmt)
    d.add_argument("--cell", nargs="+", choices=list(CELLS), default=["simple_rnn", "lstm", "gru"],
                   help="cells to compare (default: simple_rnn lstm gru)")
    d.add_argument("--units", type=_positive_int, default=64, help="units per layer (default 64)")
    d.add_argument("--seq-len", type=_positive_int, default=100, help="time steps T (default 100)")
    d.add_argument("--layers", type=_positive_int, default=1, help="stacked recurrent layers (default 1)")
    d.add_argument("--init", choices=init_names, default="orthogonal",
                   help="recurrent kernel initializer (default orthogonal, Keras's; identity: IRNN)")
    d.add_argument("--batch", type=_positive_int, default=16,
                   help="sequences (default 16; with --data, at most this many are used)")
    d.add_argument("--features", type=_positive_int, default=8, help="input features (default 8)")
    d.add_argument("--lags", type=_positive_int, nargs="+", default=list(LAGS), help="lags k (default 1 10 50 100)")
    d.add_argument("--seed", type=_nonneg_int, default=0, help="weights and inputs (default 0)")
    d.add_argument("--model", help="a saved Keras model (.keras) to analyse instead")
    d.add_argument("--data", help="its inputs: .npy, .npz or .csv (see below)")
    d.add_argument("--out", default="diagnose.png", help="picture (default diagnose.png)")
    d.add_argument("--no-plot", action="store_true", help="do not draw the picture")
    d.add_argument("--json", action="store_true", help="print JSON instead of the table")
    d.set_defaults(run=_cmd_diagnose)

    t = sub.add_parser("train", help="train on a synthetic task (adding, copy, sine) with remedies",
                       description="Train a recurrent network on a synthetic task with rc.fit and compare the final "
                       "loss with the task's known baseline.", epilog=_TRAIN_EXAMPLES, formatter_class=fmt)
    t.add_argument("--task", choices=TASKS, default="adding", help="adding (MSE), copy (cross-entropy), sine (MSE)")
    t.add_argument("--seq-len", type=_positive_int, default=50,
                   help="T (default 50; for copy the blank period, sequences are T + 20 long)")
    t.add_argument("--samples", type=_positive_int, default=1000, help="sequences (default 1000; 20%% validation)")
    t.add_argument("--cell", choices=list(CELLS), default="lstm", help="default lstm")
    t.add_argument("--units", type=_positive_int, default=32, help="default 32")
    t.add_argument("--layers", type=_positive_int, default=1, help="stacked recurrent layers (default 1)")
    t.add_argument("--epochs", type=_positive_int, default=10, help="default 10")
    t.add_argument("--batch-size", type=_positive_int, default=32, help="default 32")
    t.add_argument("--optimizer", choices=OPTIMIZERS, default="adam", help="default adam (Keras's defaults)")
    t.add_argument("--lr", type=_positive_float, help="learning rate (default: the optimizer's Keras default)")
    t.add_argument("--clipnorm", type=_positive_float, help="clip each variable's gradient norm")
    t.add_argument("--global-clipnorm", type=_positive_float, help="clip the global gradient norm")
    t.add_argument("--init", choices=init_names, default="orthogonal", help="recurrent kernel initializer")
    t.add_argument("--layernorm", action="store_true", help="layer-normalized LSTM (with --cell lstm)")
    t.add_argument("--truncate", type=_positive_int, metavar="K2", help="truncated BPTT: cut the gradient every K2 steps")
    t.add_argument("--seed", type=_nonneg_int, default=0, help="data, weights, shuffling (default 0)")
    t.add_argument("--verbose", default="auto", type=lambda s: s if s == "auto" else int(s),
                   help="auto (progress bar on a terminal), 0, 1 or 2, as rc.fit")
    t.add_argument("--out", default="train.png", help="loss-curve picture (default train.png)")
    t.add_argument("--no-plot", action="store_true", help="do not draw the picture")
    t.set_defaults(run=_cmd_train)

    c = sub.add_parser("check-keras", help="compare outputs and gradients with Keras 3",
                       description="Compare rnncore with Keras 3 (JAX backend) on outputs and gradients: fixed "
                       "stacks and random configurations per layer type. Exit 0 if every error is within 1e-5.",
                       epilog=_CHECK_EXAMPLES, formatter_class=fmt)
    c.add_argument("--seed", type=_nonneg_int, default=0, help="weights, inputs and configurations (default 0)")
    c.add_argument("--trials", type=_nonneg_int, default=2, help="random configurations per layer type (default 2)")
    c.add_argument("--only", nargs="+", choices=LAYER_TYPES, help="check only these layer types")
    c.add_argument("--verbose", action="store_true", help="one line per configuration")
    c.set_defaults(run=_cmd_check_keras)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The ``rnncore`` command; returns the exit status (no command: ``diagnose``)."""
    # LAPACK (QR, SVD of the lag spectra) through OpenBLAS: its worker threads only contend on small
    # matrices, 50x slower on a busy 2-core machine. Read when the library loads, at the first use.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["diagnose", *argv]
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            raise UsageError("no command; expected diagnose, train or check-keras.")
        return args.run(args)
    except SystemExit as e:  # --help
        return e.code if isinstance(e.code, int) else 0
    except (UsageError, ValueError, OSError) as e:
        message = " ".join(str(e).split()) or type(e).__name__
        print(f"rnncore: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
