r"""The ``rnncore`` command: ``diagnose``, ``train``, ``check-keras``, ``-flax``, ``-torch``; parsing and printing only.

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
  steps; the picture shows the 8 largest), the fraction of saturated gate values
  (:func:`rnncore.analysis.gate_saturation`, pooled over its gates) and the verdict
  (:func:`rnncore.analysis.verdict`);

and draws them (:func:`rnncore.plot.diagnose`). What it computes is :mod:`rnncore.diagnosis`
(:func:`rnncore.diagnosis.diagnose_model`); a ``--data`` file is read by
:func:`rnncore.data.load_array` and a ``.keras`` model by :func:`rnncore.keras.from_keras`.
``rnncore train`` trains on a synthetic task with a chosen cell and remedies (optimizer, clipping,
initialization, layer normalization, truncated BPTT) and compares the final loss with the task's
known baseline. ``rnncore check-keras`` compares rnncore with Keras 3 on fixed and random
configurations (:func:`rnncore.interop.keras.parity.parity_table`), ``rnncore check-flax`` with flax
linen per cell type (:func:`rnncore.interop.flax.parity.parity_table`), ``rnncore check-torch`` with
PyTorch (:func:`rnncore.interop.torch.parity.parity_table`). ``diagnose --model`` also reads a
PyTorch state_dict (``.pt``, ``.pth``, ``.safetensors``) with ``--arch``, its description
(:func:`rnncore.interop.torch.from_torch`).

Errors in what the user gave (arguments, files, data shapes) print one line starting
``rnncore: error:`` on stderr and exit with status 2.

``diagnose_model``, ``format_table``, ``initial_state_gradient_norms``, ``load_data`` and
``parity_table`` were once defined here; those names still resolve, with a ``DeprecationWarning``,
to :mod:`rnncore.diagnosis`, :func:`rnncore.data.load_array` and
:mod:`rnncore.interop.keras.parity`.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import math
import os
import sys
import time
import warnings
from typing import Any, Optional, Sequence

import jax
import numpy as np

from . import analysis, data, diagnosis, initializers
from . import layers as L
from . import losses as _losses
from . import optimizers as _optimizers
from .models import Sequential

__all__ = ["main", "build_parser", "CELLS", "LAGS"]

CELLS = {"simple_rnn": L.SimpleRNN, "lstm": L.LSTM, "gru": L.GRU, "layernorm_lstm": L.LayerNormLSTM}
LAGS = diagnosis.LAGS
OPTIMIZERS = ("adam", "adamw", "rmsprop", "sgd", "adagrad")
TASKS = ("adding", "copy", "sine")
LAYER_TYPES = ("SimpleRNN", "LSTM", "GRU", "Bidirectional")
FLAX_CELL_TYPES = ("SimpleCell", "LSTMCell", "OptimizedLSTMCell", "GRUCell", "Bidirectional")
TORCH_TYPES = ("RNN", "LSTM", "GRU")

# name once defined here -> (module that holds it now, its name there)
_MOVED = {
    "diagnose_model": ("rnncore.diagnosis", "diagnose_model"),
    "format_table": ("rnncore.diagnosis", "format_table"),
    "initial_state_gradient_norms": ("rnncore.diagnosis", "initial_state_gradient_norms"),
    "load_data": ("rnncore.data", "load_array"),
    "parity_table": ("rnncore.interop.keras.parity", "parity_table"),
}


def __getattr__(name: str) -> Any:
    """The names that moved out of the command line, with a ``DeprecationWarning``."""
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attribute = _MOVED[name]
    warnings.warn(f"rnncore.cli.{name} is deprecated; use {module}.{attribute}.", DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module(module), attribute)


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


# --- diagnose -----------------------------------------------------------------------------------


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
        model, params = _load_model(args.model, args.arch)
        analysis.refuse_wrapped_recurrent(model, f"--model {args.model}")
        if not diagnosis.has_recurrent_layer(model):
            raise ValueError(
                f"--model {args.model}: the model has no recurrent layer (SimpleRNN, LSTM, GRU, RNN or "
                "Bidirectional); nothing to diagnose."
            )
        x = diagnosis.model_inputs(model, params, args.data)
        x = tuple(a[: args.batch] for a in x) if isinstance(x, tuple) else x[: args.batch]
        label = os.path.basename(args.model)
        rows, res = diagnosis.diagnose_model(model, params, x, lags=lags, seed=args.seed)
        for r in rows:
            r["model"] = label
        all_rows += rows
        results.update(res)
        shapes = ", ".join(str(tuple(a.shape)) for a in (x if isinstance(x, tuple) else (x,)))
        heading = f"rnncore diagnose: {args.model} on {args.data}, inputs {shapes}"
        first = x[0] if isinstance(x, tuple) else x
        title = f"{label} on {os.path.basename(args.data)} (T={first.shape[1]})"
        settings = dict(model=args.model, data=args.data, batch=int(first.shape[0]), input_shapes=shapes)
    else:
        if args.data is not None or args.arch is not None:
            raise UsageError("--data and --arch go with --model (without --model the inputs are random).")
        x = diagnosis.random_inputs(args.batch, args.seq_len, args.features, args.seed)
        for cell_name in args.cell:
            model = _synthetic_model(cell_name, args.units, args.layers, args.init)
            params = model.init(jax.random.PRNGKey(args.seed), (args.seq_len, args.features))
            rows, res = diagnosis.diagnose_model(model, params, x, lags=lags, seed=args.seed)
            for r in rows:
                r["model"] = cell_name
            all_rows += rows
            for name, value in res.items():
                results[cell_name if args.layers == 1 else f"{cell_name} {name}"] = value
        heading = (
            f"rnncore diagnose: standardized random inputs B={args.batch}, T={args.seq_len}, "
            f"F={args.features}; {args.layers} layer(s) of {args.units} units, kernel glorot_uniform, "
            f"recurrent kernel {args.init}, seed {args.seed}"
        )
        title = f"T={args.seq_len}, {args.layers}×{args.units} units, recurrent kernel {args.init}"
        settings = dict(
            cells=list(args.cell),
            units=args.units,
            layers=args.layers,
            init=args.init,
            batch=args.batch,
            seq_len=args.seq_len,
            features=args.features,
            seed=args.seed,
        )
    picture = None
    if not args.no_plot:
        picture = args.out
        _diagnose_picture(results, picture, title)
    seconds = time.perf_counter() - t0
    if args.json:
        out = dict(
            settings=settings,
            lags=list(lags),
            rows=[{**r, "grad_norm_by_lag": {str(k): v for k, v in r["grad_norm_by_lag"].items()}} for r in all_rows],
            picture=picture,
            seconds=round(seconds, 3),
        )
        print(json.dumps(out, indent=1))
        return 0
    print(heading)
    print(
        "k=…: ‖∂L/∂s_{T-k}‖, the gradient a loss at the last step (a unit vector on the output per row) sends "
        "back k steps, batch mean"
    )
    print(diagnosis.format_table(all_rows, lags))
    print(
        "horizon: lags over which the gradient stays above 1% of lag 1's; λ_max: largest Lyapunov exponent "
        "(nats/step); saturated: gate values outside [0.05, 0.95] (sigmoid) or beyond ±0.95 (tanh)"
    )
    print((f"picture: {picture}; " if picture else "") + f"{seconds:.1f} s")
    return 0


def _load_model(path: str, arch: Optional[str]) -> tuple:
    """A ``.keras`` model, or a PyTorch state_dict file (``.pt``, ``.pth``, ``.safetensors``) with its ``--arch``."""
    from .interop.torch import files as torch_files

    if torch_files.is_state_dict_file(path) or arch is not None:
        if arch is None:
            raise UsageError(
                f"--model {path} is a PyTorch state_dict, which holds weights, not what they compute; "
                "pass --arch ARCH.json (a list of layer specs, see rnncore.interop.torch.arch)."
            )
        from .interop.torch import from_torch

        return from_torch(path, arch=arch)
    from .keras import from_keras

    return from_keras(path)


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
    tokens, y = data.copy_memory(
        args.samples, args.seq_len, n_symbols=n_symbols, copy_length=copy_length, seed=args.seed
    )
    x = np.eye(n_symbols + 2, dtype=np.float32)[tokens]  # one-hot tokens
    baseline = data.copy_memory_baseline(args.seq_len, n_symbols, copy_length)
    return (
        x,
        y,
        L.Dense(n_symbols + 2),
        _losses.SparseCategoricalCrossentropy(from_logits=True),
        baseline,
        "memoryless: c·log K / (T + 2c)",
    )


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
    stack = [
        make(args.units, recurrent_initializer=args.init, return_sequences=sequence_out or i < args.layers - 1)
        for i in range(args.layers)
    ]
    model = Sequential([*stack, head])
    params = model.init(jax.random.PRNGKey(args.seed), x.shape[1:])
    label = (
        f"{cell_name} {args.units}×{args.layers}, {args.optimizer}"
        + (f" lr {args.lr:g}" if args.lr is not None else "")
        + (f", clipnorm {args.clipnorm:g}" if args.clipnorm is not None else "")
        + (f", global_clipnorm {args.global_clipnorm:g}" if args.global_clipnorm is not None else "")
        + (f", init {args.init}" if args.init != "orthogonal" else "")
        + (f", truncate {args.truncate}" if args.truncate is not None else "")
    )
    print(f"rnncore train: {args.task} task, T={args.seq_len}, {args.samples} samples (20% validation); {label}")
    t0 = time.perf_counter()
    params, history = fit(
        model,
        params,
        x,
        y,
        loss=loss,
        optimizer=_optimizer(args),
        epochs=args.epochs,
        batch_size=args.batch_size,
        validation_split=0.2,
        seed=args.seed,
        verbose=args.verbose,
        truncate_gradient=args.truncate,
    )
    seconds = time.perf_counter() - t0
    logs = history.history
    status = 0
    if history.diverged is not None:
        print(f"training stopped: {history.diverged.message()}")
        status = 1
    if logs.get("loss"):
        train_loss, val_loss = logs["loss"][-1], logs.get("val_loss", [float("nan")])[-1]
        print(
            f"final loss {train_loss:.4g} (train), {val_loss:.4g} (validation); baseline {baseline:.4g} "
            f"({baseline_text}); validation/baseline = {val_loss / baseline:.3g} in {seconds:.1f} s"
        )
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


def _keras_backend() -> str:
    """The backend Keras runs on, without importing it: a Keras already imported says; otherwise
    ``KERAS_BACKEND``, which Keras reads first when it is imported."""
    keras = sys.modules.get("keras")
    if keras is not None:
        return keras.backend.backend()
    return os.environ.get("KERAS_BACKEND", "jax")


def _missing(package: str, command: str, framework: str) -> bool:
    """Whether ``package`` is not installed, saying so on stderr as the ``command`` refusal."""
    if importlib.util.find_spec(package) is not None:
        return False
    print(
        f"rnncore: error: {command} compares rnncore with {framework}, which is not installed; "
        "install it with: pip install 'rnncore[test]'",
        file=sys.stderr,
    )
    return True


def _cmd_check_keras(args) -> int:
    os.environ.setdefault("KERAS_BACKEND", "jax")
    if _missing("keras", "check-keras", "Keras 3"):
        return 2
    backend = _keras_backend()
    if backend != "jax":
        print(
            f"rnncore: error: check-keras needs Keras on the JAX backend; KERAS_BACKEND is "
            f"{backend!r} (set KERAS_BACKEND=jax).",
            file=sys.stderr,
        )
        return 2
    from .interop.keras.parity import parity_table

    t0 = time.perf_counter()
    rows = parity_table(seed=args.seed, trials=args.trials, kinds=args.only)
    print(
        f"rnncore vs Keras 3 (JAX backend), float32, random weights, masked batch, 2-layer stacks + Dense; "
        f"seed {args.seed}, {args.trials} random configuration(s) per layer type"
    )
    return _print_parity(rows, args.verbose, 1e-5, t0)


def _print_parity(rows: list, verbose: bool, threshold: float, t0: float) -> int:
    """The parity table of ``check-keras`` / ``check-flax`` / ``check-torch`` rows ``(type, description, output error,
    gradient error)``; exit status 0 when every error is within ``threshold``."""
    if verbose:
        print(f"{'configuration':<64} {'outputs':>10} {'gradients':>10}")
        for kind, desc, out_err, grad_err in rows:
            print(f"{desc:<64} {out_err:>10.2e} {grad_err:>10.2e}")
    print(f"{'layer type':<18} {'cases':>5} {'max rel. error, outputs':>24} {'max rel. error, gradients':>26}")
    for kind in dict.fromkeys(r[0] for r in rows):
        mine = [r for r in rows if r[0] == kind]
        print(f"{kind:<18} {len(mine):>5} {max(r[2] for r in mine):>24.2e} {max(r[3] for r in mine):>26.2e}")
    worst = max(max(r[2], r[3]) for r in rows)
    verdict = "within" if worst <= threshold else "ABOVE"
    print(f"largest error {worst:.2e} ({verdict} {threshold:.0e}) in {time.perf_counter() - t0:.1f} s")
    return 0 if worst <= threshold else 1


# --- check-flax ---------------------------------------------------------------------------------


def _cmd_check_flax(args) -> int:
    if _missing("flax", "check-flax", "flax"):
        return 2
    from .interop.flax.parity import parity_table

    t0 = time.perf_counter()
    rows = parity_table(seed=args.seed, trials=args.trials, kinds=args.only, dtype=args.dtype)
    print(
        f"rnncore vs flax linen, {args.dtype}, random weights, 2-layer stacks + Dense; "
        f"seed {args.seed}, {args.trials} random configuration(s) per cell type"
    )
    return _print_parity(rows, args.verbose, 1e-5 if args.dtype == "float32" else 1e-12, t0)


# --- check-torch --------------------------------------------------------------------------------


def _cmd_check_torch(args) -> int:
    if _missing("torch", "check-torch", "PyTorch"):
        return 2
    from .interop.torch.parity import parity_table

    t0 = time.perf_counter()
    rows = parity_table(seed=args.seed, trials=args.trials, kinds=args.only)
    print(
        f"rnncore vs PyTorch, float32, random weights, a recurrent module (random depth, directions, layout, "
        f"output) + Linear; seed {args.seed}, {args.trials} random configuration(s) per module type"
    )
    return _print_parity(rows, args.verbose, 1e-5, t0)


# --- the parser ---------------------------------------------------------------------------------

_DIAGNOSE_EXAMPLES = """examples:
  rnncore diagnose                                   # SimpleRNN, LSTM, GRU; 64 units, T=100
  rnncore diagnose --cell lstm gru --seq-len 300 --units 32
  rnncore diagnose --cell simple_rnn --init identity # IRNN
  rnncore diagnose --layers 3 --json > diagnosis.json
  rnncore diagnose --model my_model.keras --data x.npy --out my_model.png
  rnncore diagnose --model my_model.pt --arch arch.json --data x.npy   # also .safetensors

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

_CHECK_TORCH_EXAMPLES = """examples:
  rnncore check-torch                                # the fixed models and 2 random ones per module type
  rnncore check-torch --trials 10 --seed 3 --verbose
  rnncore check-torch --only LSTM GRU --trials 5
"""

_CHECK_EXAMPLES = """examples:
  rnncore check-keras                                # the fixed stacks and 2 random ones per layer type
  rnncore check-keras --trials 10 --seed 3 --verbose
  rnncore check-keras --only LSTM GRU --trials 5
"""

_CHECK_FLAX_EXAMPLES = """examples:
  rnncore check-flax                                 # the fixed stacks and 2 random ones per cell type
  rnncore check-flax --dtype float64 --trials 5 --verbose
  rnncore check-flax --only LSTMCell GRUCell
"""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rnncore",
        description="Keras-exact recurrent networks with the backward pass opened up: "
        "diagnose vanishing and exploding gradients, train with remedies, check Keras and flax parity.",
        epilog="`rnncore` with no command runs `rnncore diagnose`. See `rnncore COMMAND --help`.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    fmt = argparse.RawDescriptionHelpFormatter
    init_names = [n for n in initializers.NAMES if n not in ("constant", "variance_scaling")]

    d = sub.add_parser(
        "diagnose",
        help="gradient flow, memory horizon, Lyapunov exponent, saturation, verdict",
        description="How gradients travel back through recurrent layers: the gradient a loss at the "
        "last step sends back k steps, the memory horizon, the largest Lyapunov exponent, gate "
        "saturation and a vanishing/exploding verdict, for every recurrent layer.",
        epilog=_DIAGNOSE_EXAMPLES,
        formatter_class=fmt,
    )
    d.add_argument(
        "--cell",
        nargs="+",
        choices=list(CELLS),
        default=["simple_rnn", "lstm", "gru"],
        help="cells to compare (default: simple_rnn lstm gru)",
    )
    d.add_argument("--units", type=_positive_int, default=64, help="units per layer (default 64)")
    d.add_argument("--seq-len", type=_positive_int, default=100, help="time steps T (default 100)")
    d.add_argument("--layers", type=_positive_int, default=1, help="stacked recurrent layers (default 1)")
    d.add_argument(
        "--init",
        choices=init_names,
        default="orthogonal",
        help="recurrent kernel initializer (default orthogonal, Keras's; identity: IRNN)",
    )
    d.add_argument(
        "--batch",
        type=_positive_int,
        default=16,
        help="sequences (default 16; with --data, at most this many are used)",
    )
    d.add_argument("--features", type=_positive_int, default=8, help="input features (default 8)")
    d.add_argument("--lags", type=_positive_int, nargs="+", default=list(LAGS), help="lags k (default 1 10 50 100)")
    d.add_argument("--seed", type=_nonneg_int, default=0, help="weights and inputs (default 0)")
    d.add_argument(
        "--model", help="a saved Keras model (.keras), or a PyTorch state_dict (.pt, .pth, .safetensors), to analyse"
    )
    d.add_argument("--arch", help="with a PyTorch --model: its description, a JSON list of layer specs")
    d.add_argument("--data", help="its inputs: .npy, .npz or .csv (see below)")
    d.add_argument("--out", default="diagnose.png", help="picture (default diagnose.png)")
    d.add_argument("--no-plot", action="store_true", help="do not draw the picture")
    d.add_argument("--json", action="store_true", help="print JSON instead of the table")
    d.set_defaults(run=_cmd_diagnose)

    t = sub.add_parser(
        "train",
        help="train on a synthetic task (adding, copy, sine) with remedies",
        description="Train a recurrent network on a synthetic task with rc.fit and compare the final "
        "loss with the task's known baseline.",
        epilog=_TRAIN_EXAMPLES,
        formatter_class=fmt,
    )
    t.add_argument("--task", choices=TASKS, default="adding", help="adding (MSE), copy (cross-entropy), sine (MSE)")
    t.add_argument(
        "--seq-len",
        type=_positive_int,
        default=50,
        help="T (default 50; for copy the blank period, sequences are T + 20 long)",
    )
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
    t.add_argument(
        "--truncate", type=_positive_int, metavar="K2", help="truncated BPTT: cut the gradient every K2 steps"
    )
    t.add_argument("--seed", type=_nonneg_int, default=0, help="data, weights, shuffling (default 0)")
    t.add_argument(
        "--verbose",
        default="auto",
        type=lambda s: s if s == "auto" else int(s),
        help="auto (progress bar on a terminal), 0, 1 or 2, as rc.fit",
    )
    t.add_argument("--out", default="train.png", help="loss-curve picture (default train.png)")
    t.add_argument("--no-plot", action="store_true", help="do not draw the picture")
    t.set_defaults(run=_cmd_train)

    def check_parser(name: str, what: str, choices: Sequence[str], run, **kwargs):
        p = sub.add_parser(name, formatter_class=fmt, **kwargs)
        p.add_argument("--seed", type=_nonneg_int, default=0, help="weights, inputs and configurations (default 0)")
        p.add_argument("--trials", type=_nonneg_int, default=2, help=f"random configurations per {what} (default 2)")
        p.add_argument("--only", nargs="+", choices=choices, help=f"check only these {what}s")
        p.set_defaults(run=run)
        return p

    c = check_parser(
        "check-keras",
        "layer type",
        LAYER_TYPES,
        _cmd_check_keras,
        help="compare outputs and gradients with Keras 3",
        description="Compare rnncore with Keras 3 (JAX backend) on outputs and gradients: fixed "
        "stacks and random configurations per layer type. Exit 0 if every error is within 1e-5.",
        epilog=_CHECK_EXAMPLES,
    )
    c.add_argument("--verbose", action="store_true", help="one line per configuration")

    fl = check_parser(
        "check-flax",
        "cell type",
        FLAX_CELL_TYPES,
        _cmd_check_flax,
        help="compare outputs and gradients with flax linen",
        description="Compare rnncore (rc.from_flax) with flax linen on outputs and gradients: fixed "
        "stacks and random configurations per cell type. Exit 0 if every error is within 1e-5 "
        "(float32) or 1e-12 (float64).",
        epilog=_CHECK_FLAX_EXAMPLES,
    )
    fl.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="default float32")
    fl.add_argument("--verbose", action="store_true", help="one line per configuration")

    ct = check_parser(
        "check-torch",
        "module type",
        TORCH_TYPES,
        _cmd_check_torch,
        help="compare outputs and gradients with PyTorch",
        description="Compare rnncore with PyTorch on outputs and gradients: fixed models and random "
        "configurations per recurrent module type. Exit 0 if every error is within 1e-5.",
        epilog=_CHECK_TORCH_EXAMPLES,
    )
    ct.add_argument("--verbose", action="store_true", help="one line per configuration")
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
            raise UsageError("no command; expected diagnose, train, check-keras, check-flax or check-torch.")
        return args.run(args)
    except SystemExit as e:  # --help
        return e.code if isinstance(e.code, int) else 0
    except (UsageError, ValueError, OSError) as e:
        message = " ".join(str(e).split()) or type(e).__name__
        print(f"rnncore: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
