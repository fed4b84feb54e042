"""rnncore.data: padding equals keras.utils.pad_sequences, masks agree with it, bucketing covers
every sequence once, Standardizer equals keras.layers.Normalization, windowing equals a loop, and
the synthetic tasks' baselines are what their docstrings state."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnncore import data


def ragged(rng, n, max_len, feat=None, p_empty=0.2):
    seqs = []
    for _ in range(n):
        length = 0 if rng.random() < p_empty else int(rng.integers(1, max_len + 1))
        shape = (length,) if feat is None else (length, feat)
        seqs.append((rng.normal(size=shape) * 5).tolist())
    return seqs


# ---------------------------------------------------------------- pad_sequences vs Keras


def assert_same(keras, seqs, **kw):
    ours = data.pad_sequences(seqs, **kw)
    ref = keras.utils.pad_sequences(seqs, **kw)
    assert ours.dtype == ref.dtype and ours.shape == ref.shape
    np.testing.assert_array_equal(ours, ref)


@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("truncating", ["pre", "post"])
@pytest.mark.parametrize("maxlen", [None, 1, 3, 9])
@pytest.mark.parametrize("dtype", ["int32", "float32", "float64", "int64"])
@pytest.mark.parametrize("feat", [None, 3])
def test_pad_sequences_matches_keras(keras, padding, truncating, maxlen, dtype, feat):
    rng = np.random.default_rng(hash((padding, truncating, maxlen, dtype, feat)) % 2**32)
    seqs = ragged(rng, 7, 6, feat)
    seqs[0] = list(seqs[0]) or [[1.5] * 3 if feat else 1.5]  # at least one non-empty
    for value in (0.0, -1, 2.5):
        assert_same(keras, seqs, maxlen=maxlen, dtype=dtype, padding=padding, truncating=truncating, value=value)


def test_pad_sequences_edge_cases(keras):
    assert_same(keras, [[], [], []])  # all empty: (3, 0)
    assert_same(keras, [[], []], maxlen=4, value=7)
    assert_same(keras, [], maxlen=3)
    assert_same(keras, [[1, 2, 3]], maxlen=0, truncating="post")
    assert_same(keras, [np.arange(5), np.arange(2)], maxlen=3)  # numpy rows
    assert_same(keras, [["a", "bb"], ["c"]], dtype=object, value="z")
    assert data.pad_sequences([[1, 2, 3]], maxlen=0).shape == (1, 0)  # Keras raises here


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 8), min_size=1, max_size=6),
    maxlen=st.one_of(st.none(), st.integers(1, 10)),
    padding=st.sampled_from(["pre", "post"]),
    truncating=st.sampled_from(["pre", "post"]),
    value=st.sampled_from([0.0, -1.0, 3.0, 0.5]),
    dtype=st.sampled_from(["int32", "float32", "float64"]),
    feat=st.sampled_from([None, 1, 2]),
    seed=st.integers(0, 2**16),
)
def test_pad_sequences_hypothesis(lengths, maxlen, padding, truncating, value, dtype, feat, seed):
    import keras

    rng = np.random.default_rng(seed)
    seqs = [(rng.normal(size=(n,) if feat is None else (n, feat)) * 3).tolist() for n in lengths]
    ours = data.pad_sequences(seqs, maxlen, dtype, padding, truncating, value)
    ref = keras.utils.pad_sequences(seqs, maxlen, dtype, padding, truncating, value)
    assert ours.dtype == ref.dtype and ours.shape == ref.shape
    np.testing.assert_array_equal(ours, ref)


# ---------------------------------------------------------------- masks


@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("maxlen", [0, 3, 8])
def test_mask_matches_padding_placement(padding, maxlen):
    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 10, size=12)
    seqs = [list(range(1, n + 1)) for n in lengths]  # values never equal the pad value 0
    padded = data.pad_sequences(seqs, maxlen=maxlen, padding=padding, value=0)
    mask = data.mask_from_lengths(lengths, maxlen, padding=padding)
    assert mask.dtype == bool and mask.shape == (12, maxlen)
    np.testing.assert_array_equal(mask, padded != 0)
    np.testing.assert_array_equal(data.lengths_from_mask(mask), np.minimum(lengths, maxlen))


# ---------------------------------------------------------------- bucketing


@pytest.mark.parametrize("batch_size", [1, 3, 8, 100])
@pytest.mark.parametrize("boundaries", [None, [3, 6]])
@pytest.mark.parametrize("shuffle", [False, True])
def test_bucket_by_length_covers_once(batch_size, boundaries, shuffle):
    rng = np.random.default_rng(1)
    seqs = ragged(rng, 37, 10, feat=2, p_empty=0.05)
    batches = data.bucket_by_length(seqs, batch_size, boundaries=boundaries, shuffle=shuffle, seed=3)
    seen = np.concatenate([b.index for b in batches])
    np.testing.assert_array_equal(np.sort(seen), np.arange(37))
    for b in batches:
        assert 1 <= len(b.index) <= batch_size
        lens = np.array([len(seqs[i]) for i in b.index])
        assert b.x.shape == (len(b.index), lens.max(), 2) and b.mask.shape == b.x.shape[:2]
        np.testing.assert_array_equal(data.lengths_from_mask(b.mask), lens)
        for row, i in enumerate(b.index):
            np.testing.assert_allclose(b.x[row, : lens[row]], np.asarray(seqs[i]).reshape(-1, 2))
            assert not b.x[row, lens[row] :].any()
        if boundaries is not None:
            assert len(set(np.searchsorted(boundaries, lens, side="right"))) == 1
    if not shuffle and boundaries is None:  # sorted by length: batches are tight
        maxes = [b.mask.shape[1] for b in batches]
        assert maxes == sorted(maxes)
    again = data.bucket_by_length(seqs, batch_size, boundaries=boundaries, shuffle=shuffle, seed=3)
    assert all(np.array_equal(a.index, b.index) for a, b in zip(batches, again))


# ---------------------------------------------------------------- Standardizer


def test_standardizer_matches_keras_normalization(keras):
    rng = np.random.default_rng(2)
    x = (rng.normal(size=(16, 9, 4)) * [1.0, 10.0, 0.1, 3.0] + [0.0, 5.0, -2.0, 100.0]).astype("float32")
    x[..., 2] = 0.25  # a constant feature: variance 0, scale 1e-7
    s = data.Standardizer().fit(x)
    norm = keras.layers.Normalization(axis=-1)
    norm.adapt(x)
    np.testing.assert_allclose(s.mean, np.asarray(norm.mean).ravel(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(s.variance, np.asarray(norm.variance).ravel(), rtol=1e-5, atol=1e-6)
    test = (rng.normal(size=(3, 5, 4)) * 4).astype("float32")
    test[..., 2] = 0.25
    ours, ref = s.transform(test), np.asarray(norm(test))
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-6 * np.abs(ref).max())
    np.testing.assert_allclose(s.inverse_transform(ours), test, rtol=1e-5, atol=1e-5)


def test_standardizer_excludes_masked_steps(keras):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(10, 7, 3)).astype("float32")
    lengths = rng.integers(1, 8, size=10)
    mask = data.mask_from_lengths(lengths, 7)
    x[~mask] = 1e4  # padding garbage that must not leak into the statistics
    s = data.Standardizer().fit(x, mask=mask)
    norm = keras.layers.Normalization(axis=-1)
    norm.adapt(x[mask])
    np.testing.assert_allclose(s.mean, np.asarray(norm.mean).ravel(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(s.variance, np.asarray(norm.variance).ravel(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s.transform(x[mask]), np.asarray(norm(x[mask])), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- windows


@pytest.mark.parametrize("L,H,S", [(1, 1, 1), (5, 1, 1), (4, 3, 2), (10, 0, 3), (7, 2, 5)])
@pytest.mark.parametrize("feat", [None, 2])
def test_windows_against_loop(L, H, S, feat):
    series = np.arange(40.0) if feat is None else np.arange(80.0).reshape(40, 2)
    x, y = data.windows(series, L, H, S)
    s2 = series.reshape(40, -1)
    xs, ys, i = [], [], 0
    while i + L + H <= 40:
        xs.append(s2[i : i + L])
        ys.append(s2[i + L : i + L + H])
        i += S
    np.testing.assert_array_equal(x, np.stack(xs))
    np.testing.assert_array_equal(y, np.stack(ys))


# ---------------------------------------------------------------- synthetic tasks


def test_adding_problem_structure_and_baseline():
    x, y = data.adding_problem(20000, 50, seed=0)
    assert x.shape == (20000, 50, 2) and y.shape == (20000, 1) and x.dtype == np.float32
    marks = x[..., 1]
    assert set(np.unique(marks)) == {0.0, 1.0}
    assert (marks[:, :25].sum(1) == 1).all() and (marks[:, 25:].sum(1) == 1).all()
    np.testing.assert_allclose(y[:, 0], (x[..., 0] * marks).sum(1), rtol=1e-6)
    mse = float(np.mean((y - 1.0) ** 2))
    assert abs(mse - data.ADDING_BASELINE_MSE) / data.ADDING_BASELINE_MSE < 0.03, mse
    np.testing.assert_array_equal(data.adding_problem(5, 7, seed=4)[0], data.adding_problem(5, 7, seed=4)[0])
    assert not np.array_equal(data.adding_problem(5, 7, seed=4)[0], data.adding_problem(5, 7, seed=5)[0])


def test_copy_memory_structure_and_baseline():
    T, K, c = 30, 8, 10
    x, y = data.copy_memory(20000, T, n_symbols=K, copy_length=c, seed=0)
    assert x.shape == y.shape == (20000, T + 2 * c) and x.dtype == np.int32
    assert ((x[:, :c] >= 1) & (x[:, :c] <= K)).all()
    assert (x[:, c : c + T - 1] == 0).all() and (x[:, c + T - 1] == K + 1).all() and (x[:, c + T :] == 0).all()
    assert (y[:, : T + c] == 0).all() and (y[:, T + c :] == x[:, :c]).all()
    # the best memoryless predictor: the per-position marginal of the targets
    ce = 0.0
    for t in range(T + 2 * c):
        p = np.bincount(y[:, t], minlength=K + 2) / len(y)
        ce -= np.mean(np.log(p[y[:, t]]))
    ce /= T + 2 * c
    expected = c * math.log(K) / (T + 2 * c)
    assert expected == pytest.approx(data.copy_memory_baseline(T, K, c))
    assert abs(ce - expected) / expected < 0.02, (ce, expected)
    np.testing.assert_array_equal(data.copy_memory(3, 5, seed=1)[0], data.copy_memory(3, 5, seed=1)[0])


def test_noisy_sine():
    x, y = data.noisy_sine(500, 40, noise=0.0, seed=0)
    assert x.shape == (500, 40, 1) and y.shape == (500, 1)
    x1, _ = data.noisy_sine(500, 40, noise=0.1, seed=0)
    assert 0.09 < np.std(x1 - x) < 0.11  # same sines, added noise of the stated scale
    # a noise-free sine satisfies s_{t+1} = 2 cos(w) s_t - s_{t-1}; w from the first three steps
    s = np.concatenate([x[..., 0], y], axis=1).astype(np.float64)
    cosw = (s[:, 2] + s[:, 0]) / (2 * s[:, 1])
    ok = np.abs(s[:, 1]) > 0.2
    pred = 2 * cosw * s[:, -2] - s[:, -3]
    np.testing.assert_allclose(pred[ok], s[ok, -1], atol=1e-3)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: data.pad_sequences([]), "sequences"),
        (lambda: data.pad_sequences([[1]], maxlen=-1), "maxlen"),
        (lambda: data.pad_sequences([[1]], padding="middle"), "padding"),
        (lambda: data.pad_sequences([[1]], truncating="both"), "truncating"),
        (lambda: data.pad_sequences([[1], 2]), "sequences"),
        (lambda: data.pad_sequences(5), "sequences"),
        (lambda: data.pad_sequences([[1]], value="x"), "value"),
        (lambda: data.pad_sequences([[[1, 2]], [[1, 2, 3]]]), "shape"),
        (lambda: data.mask_from_lengths([1, -2], 3), "lengths"),
        (lambda: data.mask_from_lengths([1], -3), "maxlen"),
        (lambda: data.mask_from_lengths([1], 3, padding="left"), "padding"),
        (lambda: data.lengths_from_mask(np.ones(3)), "mask"),
        (lambda: data.bucket_by_length([[1]], 0), "batch_size"),
        (lambda: data.bucket_by_length([], 2), "sequences"),
        (lambda: data.bucket_by_length([[1]], 2, boundaries=[5, 3]), "boundaries"),
        (lambda: data.Standardizer().transform(np.ones((2, 3))), "fit"),
        (lambda: data.Standardizer().fit(np.ones((0, 3))), "x"),
        (lambda: data.Standardizer().fit(np.ones((2, 3, 1)), mask=np.zeros((2, 3), bool)), "mask"),
        (lambda: data.Standardizer().fit(np.ones((2, 3, 1)), mask=np.ones((2, 4), bool)), "mask"),
        (lambda: data.Standardizer().fit(np.ones((2, 3))).transform(np.ones((2, 4))), "features"),
        (lambda: data.windows(np.arange(5), 5, 1), "input_length + target_length"),
        (lambda: data.windows(np.arange(5), 0), "input_length"),
        (lambda: data.windows(np.arange(5), 2, stride=0), "stride"),
        (lambda: data.windows(np.ones((2, 2, 2)), 1), "series"),
        (lambda: data.adding_problem(10, 1), "T"),
        (lambda: data.adding_problem(0, 10), "n"),
        (lambda: data.adding_problem(10, 10, seed=-1), "seed"),
        (lambda: data.copy_memory(10, 0), "T"),
        (lambda: data.copy_memory(10, 5, n_symbols=0), "n_symbols"),
        (lambda: data.copy_memory(10, 5, copy_length=2.5), "copy_length"),
        (lambda: data.noisy_sine(10, 5, noise=-0.1), "noise"),
    ],
)
def test_bad_input_raises_value_error(call, words):
    with pytest.raises(ValueError, match=words.replace("+", r"\+")):
        call()
