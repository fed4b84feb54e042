r"""Host-side data utilities and synthetic sequence tasks with known baselines.

Everything here is NumPy on the host: padding ragged sequences exactly as Keras's
``keras.utils.pad_sequences`` does, masks and lengths that agree with that padding, bucketing by
length, a per-feature :class:`Standardizer` that computes what ``keras.layers.Normalization``
computes, time-series windowing, and three synthetic tasks whose trivial baselines are known in
closed form, so a training curve can be read against them:

* :func:`adding_problem` (Hochreiter & Schmidhuber 1997): predicting the constant 1 gives
  :math:`\mathrm{MSE} = \operatorname{Var}(a+b) = 2 \cdot \tfrac{1}{12} = \tfrac16`.
* :func:`copy_memory` (Arjovsky, Shah & Bengio 2016): a memoryless predictor (blank, then uniform
  over the symbols) gives cross-entropy
  :math:`\frac{c \log K}{T + 2c}` per step (:math:`c` = copy length, :math:`K` = symbols).
* :func:`noisy_sine`: one-step-ahead forecasting of a sine of random frequency and phase.

Batches are batch-first, ``(B, T, F)``, as everywhere in rnncore.

Example:
    >>> from rnncore import data
    >>> data.pad_sequences([[1], [2, 3], [4, 5, 6]])
    array([[0, 0, 1],
           [0, 2, 3],
           [4, 5, 6]], dtype=int32)
    >>> data.mask_from_lengths([1, 2, 3], 3, padding="pre").astype(int)
    array([[0, 0, 1],
           [0, 1, 1],
           [1, 1, 1]])
"""

from __future__ import annotations

import math
from typing import List, NamedTuple, Optional

import numpy as np

from . import checks

__all__ = [
    "pad_sequences",
    "mask_from_lengths",
    "lengths_from_mask",
    "Batch",
    "bucket_by_length",
    "Standardizer",
    "windows",
    "adding_problem",
    "copy_memory",
    "noisy_sine",
    "ADDING_BASELINE_MSE",
    "copy_memory_baseline",
]

#: MSE of always predicting 1 on :func:`adding_problem`: :math:`\operatorname{Var}(a + b) = 1/6`.
ADDING_BASELINE_MSE = 1.0 / 6.0

_SIDES = ("pre", "post")


# --------------------------------------------------------------------------------------------
# padding, masks, lengths


def pad_sequences(sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre", value=0.0):
    r"""Pad (and truncate) a ragged list of sequences into one array, as Keras does.

    With :math:`L_b = \min(\mathrm{len}(s_b), T)` and :math:`T` = ``maxlen`` (default: the longest
    sequence), row :math:`b` holds the last (``truncating="pre"``) or first (``"post"``)
    :math:`L_b` items of :math:`s_b`, placed at the end (``padding="pre"``) or start (``"post"``);
    the other :math:`T - L_b` positions hold ``value``. Items may be scalars or equal-shaped
    feature vectors: the item shape is taken from the first non-empty sequence.

    Args:
        sequences: a list of B sequences (lists or arrays), possibly empty.
        maxlen: T, an int >= 0, or None for the longest length.
        dtype: output dtype (values are cast with NumPy rules, so floats into ``"int32"`` truncate).
        padding, truncating: ``"pre"`` or ``"post"``.
        value: the padding value.

    Returns:
        array of shape ``(B, T) + item_shape``.

    Raises:
        ValueError: on empty ``sequences`` without ``maxlen``, a non-iterable item, ``maxlen < 0``,
            an unknown ``padding``/``truncating``, a string ``value`` with a non-string ``dtype``,
            or items whose shapes disagree.

    Example:
        >>> pad_sequences([[1, 2, 3], [4]], maxlen=2, padding="post", truncating="post", value=-1)
        array([[ 1,  2],
               [ 4, -1]], dtype=int32)
        >>> pad_sequences([[[1.0, 2.0]], []], dtype="float32").shape
        (2, 1, 2)
    """
    checks.one_of("padding", padding, _SIDES)
    checks.one_of("truncating", truncating, _SIDES)
    if not hasattr(sequences, "__len__"):
        raise ValueError(f"`sequences` must be a list of sequences; got {type(sequences).__name__}")
    lengths, item_shape, found = [], (), False
    for i, s in enumerate(sequences):
        try:
            n = len(s)
        except TypeError:
            raise ValueError(f"`sequences` must be a list of sequences; item {i} is {s!r}") from None
        lengths.append(n)
        if n and not found:
            item_shape, found = np.asarray(s).shape[1:], True
    if maxlen is None:
        if not lengths:
            raise ValueError("`sequences` is empty; pass `maxlen` to get a (0, maxlen) array")
        maxlen = max(lengths)
    else:
        maxlen = checks.integer("maxlen", maxlen, minimum=0)
    is_str = np.issubdtype(dtype, np.str_) or np.issubdtype(dtype, np.bytes_)
    if isinstance(value, str) and dtype is not object and not is_str:
        raise ValueError(f"`value` {value!r} is a string but `dtype` {dtype!r} is not; use dtype=object")
    out = np.full((len(lengths), maxlen) + item_shape, value, dtype=dtype)
    if maxlen == 0:
        return out
    for i, s in enumerate(sequences):
        if not lengths[i]:
            continue
        kept = np.asarray(s[-maxlen:] if truncating == "pre" else s[:maxlen], dtype=dtype)
        if kept.shape[1:] != item_shape:
            raise ValueError(
                f"`sequences` item {i} has items of shape {kept.shape[1:]}, expected {item_shape} "
                "(taken from the first non-empty sequence)"
            )
        if padding == "post":
            out[i, : len(kept)] = kept
        else:
            out[i, maxlen - len(kept) :] = kept
    return out


def mask_from_lengths(lengths, maxlen, padding="post"):
    r"""Boolean ``(B, T)`` mask that is True on the real steps of sequences padded to ``maxlen``.

    :math:`m_{bt} = [t < L_b]` for ``padding="post"`` and :math:`m_{bt} = [t \ge T - L_b]` for
    ``"pre"``, with :math:`L_b = \min(\mathrm{lengths}_b, T)` (longer sequences are truncated),
    exactly where :func:`pad_sequences` puts the data.

    Example:
        >>> mask_from_lengths([0, 2, 5], 3).astype(int)
        array([[0, 0, 0],
               [1, 1, 0],
               [1, 1, 1]])
    """
    checks.one_of("padding", padding, _SIDES)
    maxlen = checks.integer("maxlen", maxlen, minimum=0)
    lengths = np.asarray(lengths)
    if lengths.ndim != 1 or not (lengths.size == 0 or np.issubdtype(lengths.dtype, np.integer)):
        raise ValueError(f"`lengths` must be a 1-D array of integers; got {lengths!r}")
    if lengths.size and lengths.min() < 0:
        raise ValueError(f"`lengths` must be >= 0; got {lengths.min()}")
    lengths = np.minimum(lengths, maxlen)[:, None]
    t = np.arange(maxlen)[None, :]
    return t < lengths if padding == "post" else t >= maxlen - lengths


def lengths_from_mask(mask):
    r"""Number of real steps per row of a boolean ``(B, T)`` mask: :math:`L_b = \sum_t m_{bt}`.

    Example:
        >>> lengths_from_mask(mask_from_lengths([3, 0, 1], 4, padding="pre"))
        array([3, 0, 1])
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"`mask` must have shape (B, T); got shape {mask.shape}")
    return mask.astype(bool).sum(axis=1).astype(int)


# --------------------------------------------------------------------------------------------
# bucketing


class Batch(NamedTuple):
    """One bucketed batch: ``x`` ``(b, T_batch, ...)`` padded with ``padding`` at the end, ``mask``
    ``(b, T_batch)`` True on real steps, ``index`` ``(b,)`` positions in the original list."""

    x: np.ndarray
    mask: np.ndarray
    index: np.ndarray  # type: ignore[assignment]  # Keras-style name; shadows tuple.index


def bucket_by_length(
    sequences, batch_size, boundaries=None, shuffle=False, seed=0, dtype=None, value=0.0
) -> List[Batch]:
    r"""Group sequences of similar length into batches, each padded (``"post"``) to its own max length.

    Sequences are sorted by length (stably); with ``boundaries`` :math:`b_1 < \dots < b_k` they
    first go into buckets :math:`[0, b_1), [b_1, b_2), \dots, [b_k, \infty)` and batches never mix
    buckets. Each bucket is cut into batches of at most ``batch_size``. With ``shuffle`` the order
    inside each bucket and the order of the batches are shuffled (deterministic for ``seed``).
    Every sequence appears in exactly one batch.

    Args:
        sequences: a non-empty list of sequences (scalars or equal-shaped feature vectors).
        batch_size: int >= 1.
        boundaries: optional increasing positive ints.
        dtype: output dtype; None takes it from the first non-empty sequence (``float32`` if none).
        value: padding value.

    Returns:
        a list of :class:`Batch`.

    Example:
        >>> seqs = [[1, 2, 3], [4], [5, 6], [7]]
        >>> [b.x.shape for b in bucket_by_length(seqs, batch_size=2)]
        [(2, 1), (2, 3)]
        >>> bucket_by_length(seqs, batch_size=2)[1].index
        array([2, 0])
    """
    batch_size = checks.integer("batch_size", batch_size, minimum=1)
    seed = checks.integer("seed", seed, minimum=0)
    if not hasattr(sequences, "__len__") or len(sequences) == 0:
        raise ValueError(f"`sequences` must be a non-empty list of sequences; got {sequences!r}")
    lengths = np.array([len(s) for s in sequences], dtype=int)
    first = next((s for s in sequences if len(s)), None)
    item_shape = np.asarray(first).shape[1:] if first is not None else ()
    if dtype is None:
        dtype = np.asarray(first).dtype if first is not None else np.float32
    if boundaries is None:
        bucket = np.zeros_like(lengths)
    else:
        b = np.asarray(boundaries)
        if (
            b.ndim != 1
            or b.size == 0
            or not np.issubdtype(b.dtype, np.integer)
            or np.any(b < 1)
            or np.any(np.diff(b) <= 0)
        ):
            raise ValueError(f"`boundaries` must be increasing positive integers; got {boundaries!r}")
        bucket = np.searchsorted(b, lengths, side="right")
    rng = np.random.default_rng(seed)
    groups = []
    for k in np.unique(bucket):
        members = np.flatnonzero(bucket == k)
        members = members[np.argsort(lengths[members], kind="stable")]
        if shuffle:
            members = rng.permutation(members)
        groups += [members[i : i + batch_size] for i in range(0, len(members), batch_size)]
    if shuffle:
        groups = [groups[i] for i in rng.permutation(len(groups))]
    out = []
    for idx in groups:
        seqs = [sequences[i] for i in idx]
        t = int(lengths[idx].max())
        x = pad_sequences(seqs, maxlen=t, dtype=dtype, padding="post", truncating="post", value=value)
        if x.shape[2:] != item_shape:  # a batch of empty sequences only: keep the feature shape
            x = np.full((len(idx), t) + item_shape, value, dtype=dtype)
        out.append(Batch(x, mask_from_lengths(lengths[idx], t, padding="post"), idx))
    return out


# --------------------------------------------------------------------------------------------
# standardization


class Standardizer:
    r"""Per-feature standardization fitted on training data only, as ``keras.layers.Normalization``.

    ``fit`` takes :math:`x` of shape ``(B, T, F)`` (or ``(N, F)``) and an optional boolean ``(B, T)``
    mask; masked steps are excluded. Over the kept rows it stores, per feature,
    :math:`\mu = \overline{x}` and the population variance :math:`\sigma^2 = \overline{(x-\mu)^2}`.
    ``transform`` computes :math:`(x - \mu) / \max(\sqrt{\sigma^2}, 10^{-7})`, Keras's formula, and
    ``inverse_transform`` undoes it.

    Example:
        >>> import numpy as np
        >>> x = np.array([[[1.0], [3.0], [99.0]]])
        >>> s = Standardizer().fit(x, mask=np.array([[True, True, False]]))
        >>> s.mean, s.variance
        (array([2.]), array([1.]))
        >>> s.transform(x)[0, :, 0]
        array([-1.,  1., 97.])
    """

    def __init__(self) -> None:
        self.mean: Optional[np.ndarray] = None
        self.variance: Optional[np.ndarray] = None

    @staticmethod
    def _rows(x, mask=None):
        x = np.asarray(x)
        if x.ndim < 2 or x.size == 0:
            raise ValueError(f"`x` must be non-empty with shape (B, T, F) or (N, F); got shape {x.shape}")
        if mask is None:
            return x.reshape(-1, x.shape[-1])
        mask = np.asarray(mask)
        if mask.shape != x.shape[:-1]:
            raise ValueError(f"`mask` must have shape {x.shape[:-1]}; got {mask.shape}")
        rows = x[mask.astype(bool)]
        if rows.shape[0] == 0:
            raise ValueError("`mask` masks every step; nothing to fit")
        return rows

    def fit(self, x, mask=None) -> "Standardizer":
        rows = self._rows(x, mask).astype(np.float64)
        self.mean = rows.mean(axis=0)
        self.variance = ((rows - self.mean) ** 2).mean(axis=0)
        return self

    def _scale(self):
        if self.mean is None:
            raise ValueError("Standardizer is not fitted; call `fit` first")
        return np.maximum(np.sqrt(self.variance), 1e-7)

    @staticmethod
    def _dtype(x):
        return x.dtype if np.issubdtype(x.dtype, np.floating) else np.float32

    def transform(self, x):
        x = np.asarray(x)
        scale = self._scale()
        if x.shape[-1:] != self.mean.shape:
            raise ValueError(f"`x` must have {self.mean.shape[0]} features; got shape {x.shape}")
        return ((x - self.mean) / scale).astype(self._dtype(x))

    def inverse_transform(self, x):
        x = np.asarray(x)
        scale = self._scale()
        if x.shape[-1:] != self.mean.shape:
            raise ValueError(f"`x` must have {self.mean.shape[0]} features; got shape {x.shape}")
        return (x * scale + self.mean).astype(self._dtype(x))


# --------------------------------------------------------------------------------------------
# windowing


def windows(series, input_length, target_length=1, stride=1):
    r"""Cut a series into (input window, following target window) pairs.

    For a series :math:`s` of length N (shape ``(N,)`` is read as one feature),
    window :math:`i` is :math:`x_i = s[iS : iS + L]` and :math:`y_i = s[iS + L : iS + L + H]`
    (:math:`L` = ``input_length``, :math:`H` = ``target_length``, :math:`S` = ``stride``), for
    :math:`i = 0, \dots, W-1`, :math:`W = \lfloor (N - L - H) / S \rfloor + 1`.

    Returns:
        ``x`` of shape ``(W, L, F)`` and ``y`` of shape ``(W, H, F)``.

    Example:
        >>> x, y = windows(np.arange(6.0), input_length=3, target_length=1, stride=2)
        >>> x[..., 0], y[..., 0]
        (array([[0., 1., 2.],
               [2., 3., 4.]]), array([[3.],
               [5.]]))
    """
    s = np.asarray(series)
    if s.ndim == 1:
        s = s[:, None]
    if s.ndim != 2:
        raise ValueError(f"`series` must have shape (N,) or (N, F); got shape {np.shape(series)}")
    L = checks.integer("input_length", input_length, minimum=1)
    H = checks.integer("target_length", target_length, minimum=0)
    S = checks.integer("stride", stride, minimum=1)
    if s.shape[0] < L + H:
        raise ValueError(f"`series` of length {s.shape[0]} is shorter than input_length + target_length = {L + H}")
    W = (s.shape[0] - L - H) // S + 1
    starts = np.arange(W) * S
    x = s[starts[:, None] + np.arange(L)[None, :]]
    y = s[starts[:, None] + L + np.arange(H)[None, :]]
    return x, y


# --------------------------------------------------------------------------------------------
# synthetic tasks


def adding_problem(n, T, seed=0):
    r"""The adding problem (Hochreiter & Schmidhuber 1997).

    ``x[..., 0]`` is uniform on [0, 1]; ``x[..., 1]`` is 1 at exactly two steps, one drawn uniformly
    in each half (:math:`[0, \lfloor T/2 \rfloor)` and :math:`[\lfloor T/2 \rfloor, T)`), and 0
    elsewhere. The target is the sum :math:`a + b` of the two marked values. Predicting the
    constant 1 (= :math:`\mathbb{E}[a+b]`) gives
    :math:`\mathrm{MSE} = \operatorname{Var}(a) + \operatorname{Var}(b) = 1/6`
    (:data:`ADDING_BASELINE_MSE`); a model must beat that to have learned anything.

    Returns:
        ``x`` float32 ``(n, T, 2)`` and ``y`` float32 ``(n, 1)``.

    Example:
        >>> x, y = adding_problem(4, 10, seed=0)
        >>> x.shape, y.shape, x[..., 1].sum(axis=1).tolist()
        ((4, 10, 2), (4, 1), [2.0, 2.0, 2.0, 2.0])
    """
    n = checks.integer("n", n, minimum=1)
    T = checks.integer("T", T, minimum=2)
    rng = np.random.default_rng(checks.integer("seed", seed, minimum=0))
    values = rng.uniform(0.0, 1.0, size=(n, T))
    half = T // 2
    first = rng.integers(0, half, size=n)
    second = rng.integers(half, T, size=n)
    marks = np.zeros((n, T))
    rows = np.arange(n)
    marks[rows, first] = 1.0
    marks[rows, second] = 1.0
    x = np.stack([values, marks], axis=-1).astype(np.float32)
    y = (x[rows, first, 0] + x[rows, second, 0])[:, None]
    return x, y.astype(np.float32)


def copy_memory_baseline(T, n_symbols=8, copy_length=10):
    r"""Cross-entropy per step (nats) of the memoryless copy-memory predictor:
    :math:`\frac{c \log K}{T + 2c}`.

    Example:
        >>> round(copy_memory_baseline(100), 4)
        0.1733
    """
    return copy_length * math.log(n_symbols) / (T + 2 * copy_length)


def copy_memory(n, T, n_symbols=8, copy_length=10, seed=0):
    r"""The copy-memory task (Arjovsky, Shah & Bengio 2016).

    Tokens: ``0`` blank, ``1..K`` symbols (:math:`K` = ``n_symbols``), ``K+1`` delimiter. The input
    of length :math:`T + 2c` (:math:`c` = ``copy_length``) is :math:`c` random symbols, then a blank
    period of :math:`T` steps whose last step is the delimiter, then :math:`c` blanks. The target is
    :math:`T + c` blanks, then the :math:`c` symbols. The memoryless baseline (blank for the first
    :math:`T+c` steps, uniform over the symbols after) has cross-entropy
    :math:`\frac{c \log K}{T + 2c}` per step (:func:`copy_memory_baseline`).

    Returns:
        ``x`` and ``y``, int32 ``(n, T + 2c)`` token ids (``K + 2`` classes in all).

    Example:
        >>> x, y = copy_memory(1, 3, n_symbols=4, copy_length=2, seed=1)
        >>> x.shape, int(x[0, 2 + 3 - 1]), bool((y[0, -2:] == x[0, :2]).all())
        ((1, 7), 5, True)
    """
    n = checks.integer("n", n, minimum=1)
    T = checks.integer("T", T, minimum=1)
    K = checks.integer("n_symbols", n_symbols, minimum=1)
    c = checks.integer("copy_length", copy_length, minimum=1)
    rng = np.random.default_rng(checks.integer("seed", seed, minimum=0))
    symbols = rng.integers(1, K + 1, size=(n, c))
    x = np.zeros((n, T + 2 * c), dtype=np.int32)
    x[:, :c] = symbols
    x[:, c + T - 1] = K + 1
    y = np.zeros_like(x)
    y[:, T + c :] = symbols
    return x, y


def noisy_sine(n, T, noise=0.1, seed=0):
    r"""One-step-ahead forecasting of noisy sines.

    Each sequence has frequency :math:`\omega \sim U[0.05, 0.5]` rad/step and phase
    :math:`\varphi \sim U[0, 2\pi)`; ``x[:, t, 0]`` :math:`= \sin(\omega t + \varphi) + \epsilon_t`,
    :math:`\epsilon_t \sim \mathcal N(0, \text{noise}^2)`, for :math:`t = 0..T-1`, and the target is
    the noise-free next value :math:`\sin(\omega T + \varphi)`.

    Returns:
        ``x`` float32 ``(n, T, 1)`` and ``y`` float32 ``(n, 1)``.

    Example:
        >>> x, y = noisy_sine(3, 20, noise=0.0, seed=0)
        >>> x.shape, y.shape, bool(np.abs(x).max() <= 1)
        ((3, 20, 1), (3, 1), True)
    """
    n = checks.integer("n", n, minimum=1)
    T = checks.integer("T", T, minimum=1)
    checks.real("noise", noise, minimum=0)
    rng = np.random.default_rng(checks.integer("seed", seed, minimum=0))
    omega = rng.uniform(0.05, 0.5, size=(n, 1))
    phi = rng.uniform(0.0, 2 * np.pi, size=(n, 1))
    t = np.arange(T + 1)[None, :]
    clean = np.sin(omega * t + phi)
    x = clean[:, :T] + noise * rng.standard_normal((n, T))
    return x[..., None].astype(np.float32), clean[:, T:].astype(np.float32)


def load_array(path: str) -> np.ndarray:
    """Inputs from the file ``path``, float32, ``(B, T, F)``: what ``rnncore diagnose --data`` reads.

    ``.npy``: the array; ``.npz``: the array named ``x``, else the first one; ``.csv``: one
    sequence, a row per time step and a column per feature (comma-separated; a first line that is
    not numbers is taken as a header). A 2-D array is one sequence ``(T, F)`` and gets a batch axis
    of 1. Anything else (a missing or unreadable file, an unknown extension, an empty file,
    non-numbers, another number of axes) raises a one-line ``ValueError`` starting ``--data PATH:``.

    Example:
        >>> import os, tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = os.path.join(folder, "x.csv")
        ...     with open(path, "w") as f:
        ...         _ = f.write("a,b\\n1,2\\n3,4\\n5,6\\n")  # a header, then three steps of two features
        ...     print(load_array(path).shape)
        (1, 3, 2)
    """
    import os

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
        raise ValueError(
            f"--data {path}: expected (batch, time, features) or one sequence (time, features); got shape {x.shape}."
        )
    return x
