"""rnncore.initializers against Keras 3's definitions.

The random bits differ from Keras's (rnncore draws from its own key), so distributions are
compared, not values: exact bounds, moments on large shapes, a two-sample Kolmogorov-Smirnov
distance to Keras's own samples, and structure (orthogonality, fused fans, bias layout).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnncore as rc
from rnncore import initializers as I

KEY = jax.random.PRNGKey(0)
BIG = (64, 512)  # an LSTM kernel (F=64, 4u=512): 32768 draws


def ks_distance(a, b) -> float:
    """Two-sample Kolmogorov-Smirnov statistic sup |F_a - F_b|."""
    a, b = np.sort(np.ravel(a)), np.sort(np.ravel(b))
    grid = np.concatenate([a, b])
    fa = np.searchsorted(a, grid, side="right") / a.size
    fb = np.searchsorted(b, grid, side="right") / b.size
    return float(np.max(np.abs(fa - fb)))


def ks_critical(n: int, m: int, alpha: float = 1e-6) -> float:
    """The two-sample KS rejection threshold at level alpha (asymptotic)."""
    return math.sqrt(-0.5 * math.log(alpha / 2)) * math.sqrt((n + m) / (n * m))


def keras_sample(keras, name, shape, seed=1, **config):
    cls = type(keras.initializers.get(name))
    return np.asarray(cls(seed=seed, **config)(shape, dtype="float32"))


def fused_fans_limit(shape, mode, scale):
    fan_in, fan_out = shape[-2], shape[-1]
    receptive = math.prod(shape[:-2])
    fan_in, fan_out = fan_in * receptive, fan_out * receptive
    n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
    return scale / n


# --- fans ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(), (7,), (3, 5), (8, 4 * 16), (16, 3 * 16), (1, 1), (2, 3, 4), (3, 3, 2, 8)])
def test_compute_fans_equals_keras(keras, shape):
    from keras.src.initializers.random_initializers import compute_fans

    assert I.compute_fans(shape) == compute_fans(shape)
    assert all(isinstance(f, int) for f in I.compute_fans(shape))


# --- variance scaling, uniform --------------------------------------------------------------------

UNIFORM = {
    # name: (mode, scale): limit = sqrt(3 * scale / n)
    "glorot_uniform": ("fan_avg", 1.0),  # sqrt(6 / (fan_in + fan_out))
    "he_uniform": ("fan_in", 2.0),  # sqrt(6 / fan_in)
    "lecun_uniform": ("fan_in", 1.0),  # sqrt(3 / fan_in)
}


@pytest.mark.parametrize("name,shape", [(n, BIG) for n in sorted(UNIFORM)] + [("glorot_uniform", (3, 32, 128))])
def test_uniform_limits_exact(keras, name, shape):
    mode, scale = UNIFORM[name]
    limit = math.sqrt(3.0 * fused_fans_limit(shape, mode, scale))
    w = np.asarray(I.get(name)(KEY, shape))
    assert w.shape == shape and w.dtype == np.float32
    assert np.abs(w).max() <= np.float32(limit)
    assert np.abs(w).max() >= 0.999 * limit  # 32768+ draws reach the edge
    assert (w < 0).mean() == pytest.approx(0.5, abs=0.02)
    assert w.std() == pytest.approx(limit / math.sqrt(3), rel=0.02)
    ref = keras_sample(keras, name, shape)
    assert np.abs(ref).max() <= np.float32(limit)  # the oracle obeys the same limit
    assert ks_distance(w, ref) < ks_critical(w.size, ref.size)


def test_glorot_uses_the_fused_lstm_kernel_shape(keras):
    # LSTM kernel (F, 4u): fan_out = 4u, not u (per gate).
    f, u = 8, 32
    cell = rc.cells.LSTM(u, recurrent_initializer="zeros")
    p = cell.init(KEY, input_dim=f)
    fused, per_gate = math.sqrt(6 / (f + 4 * u)), math.sqrt(6 / (f + u))
    k = np.abs(np.asarray(p.kernel))
    assert k.max() <= np.float32(fused) < per_gate
    assert k.max() >= 0.99 * fused
    for g in range(4):  # every gate block spans the whole fused range
        assert k[:, g * u : (g + 1) * u].max() >= 0.95 * fused
    layer = keras.layers.LSTMCell(u, recurrent_initializer="zeros")  # default kernel_initializer
    layer.build((None, f))
    kk = layer.get_weights()[0]
    assert kk.shape == p.kernel.shape
    assert np.abs(kk).max() <= np.float32(fused)
    assert ks_distance(p.kernel, kk) < ks_critical(kk.size, kk.size)


# --- variance scaling, normal ---------------------------------------------------------------------

NORMAL = {"glorot_normal": ("fan_avg", 1.0), "he_normal": ("fan_in", 2.0), "lecun_normal": ("fan_in", 1.0)}


@pytest.mark.parametrize("name", sorted(NORMAL))
def test_truncated_normal_std_and_truncation(keras, name):
    mode, scale = NORMAL[name]
    s = fused_fans_limit(BIG, mode, scale)
    w = np.asarray(I.get(name)(KEY, BIG), np.float64)
    # Keras corrects the truncation: the samples' std is sqrt(scale / n) itself
    assert w.std() == pytest.approx(math.sqrt(s), rel=0.03)
    assert abs(w.mean()) < 0.02 * math.sqrt(s)
    bound = 2 * math.sqrt(s) / 0.87962566103423978  # 2 sigma of the underlying normal
    assert np.abs(w).max() <= bound * (1 + 1e-6)
    assert np.abs(w).max() >= 0.98 * bound
    ref = keras_sample(keras, name, BIG)
    assert np.abs(ref).max() <= bound * (1 + 1e-6)
    assert ks_distance(w, ref) < ks_critical(w.size, ref.size)


@pytest.mark.parametrize(
    "scale,mode,distribution",
    [(2.0, "fan_out", "uniform"), (0.5, "fan_avg", "untruncated_normal"), (3.0, "fan_in", "truncated_normal")],
)
def test_variance_scaling_equals_keras(keras, scale, mode, distribution):
    shape = (3, 32, 128)
    s = fused_fans_limit(shape, mode, scale)
    w = np.asarray(I.VarianceScaling(scale, mode, distribution)(KEY, shape), np.float64)
    assert w.std() == pytest.approx(math.sqrt(s), rel=0.03)
    if distribution == "untruncated_normal":
        assert np.abs(w).max() > 3.5 * math.sqrt(s)  # not truncated
    ref = keras_sample(keras, "variance_scaling", shape, scale=scale, mode=mode, distribution=distribution)
    assert ks_distance(w, ref) < ks_critical(w.size, ref.size)


def test_variance_scaling_defaults_equal_keras(keras):
    cfg = keras.initializers.VarianceScaling().get_config()
    vs = I.VarianceScaling()
    assert (vs.scale, vs.mode, vs.distribution) == (cfg["scale"], cfg["mode"], cfg["distribution"])


@pytest.mark.parametrize(
    "kwargs,match", [({"mode": "fan_sum"}, "mode='fan_sum'"), ({"distribution": "normal"}, "distribution='normal'")]
)
def test_variance_scaling_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        I.VarianceScaling(**kwargs)


# --- plain random -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,cls,fields",
    [
        ("random_normal", I.RandomNormal, ("mean", "stddev")),
        ("random_uniform", I.RandomUniform, ("minval", "maxval")),
        ("truncated_normal", I.TruncatedNormal, ("mean", "stddev")),
    ],
)
def test_plain_random_defaults_equal_keras(keras, name, cls, fields):
    cfg = keras.initializers.get(name).get_config()
    ours = cls()
    assert isinstance(I.get(name), cls)
    assert {f: getattr(ours, f) for f in fields} == {f: cfg[f] for f in fields}


def test_random_normal(keras):
    w = np.asarray(I.get("random_normal")(KEY, BIG), np.float64)
    assert w.std() == pytest.approx(0.05, rel=0.02) and abs(w.mean()) < 1e-3
    assert np.abs(w).max() > 0.2  # 4 sigma: untruncated
    w2 = np.asarray(I.RandomNormal(mean=1.5, stddev=0.2)(KEY, BIG), np.float64)
    assert w2.mean() == pytest.approx(1.5, abs=0.005) and w2.std() == pytest.approx(0.2, rel=0.02)
    ref = keras_sample(keras, "random_normal", BIG)
    assert ks_distance(w, ref) < ks_critical(w.size, ref.size)


def test_random_uniform(keras):
    w = np.asarray(I.get("random_uniform")(KEY, BIG))
    assert w.min() >= np.float32(-0.05) and w.max() <= np.float32(0.05)
    assert w.min() < -0.0499 and w.max() > 0.0499
    w2 = np.asarray(I.RandomUniform(minval=1.0, maxval=3.0)(KEY, BIG))
    assert w2.min() >= 1.0 and w2.max() <= 3.0 and w2.mean() == pytest.approx(2.0, abs=0.01)
    ref = keras_sample(keras, "random_uniform", BIG)
    assert ks_distance(w, ref) < ks_critical(w.size, ref.size)


def test_truncated_normal_is_not_variance_corrected(keras):
    # keras.initializers.TruncatedNormal(stddev): samples of N(0, stddev) cut at 2 stddev, with no
    # correction (the std of what comes out is 0.8796 stddev), unlike the variance-scaling family.
    w = np.asarray(I.get("truncated_normal")(KEY, BIG), np.float64)
    assert np.abs(w).max() <= 0.1 * (1 + 1e-6) and np.abs(w).max() > 0.098
    assert w.std() == pytest.approx(0.05 * 0.87962566103423978, rel=0.02)
    ref = keras_sample(keras, "truncated_normal", BIG)
    assert ks_distance(w, ref) < ks_critical(w.size, ref.size)


# --- deterministic ----------------------------------------------------------------------------------


def test_zeros_ones_constant(keras):
    for name in ("zeros", "ones"):
        w = I.get(name)(KEY, (3, 4))
        np.testing.assert_array_equal(w, keras.initializers.get(name)((3, 4)))
        assert w.dtype == jnp.float32
    np.testing.assert_array_equal(I.Constant(0.7)(KEY, (2, 5)), keras.initializers.Constant(0.7)((2, 5)))
    assert I.get("constant")(KEY, (2,)).tolist() == [0.0, 0.0]


def test_identity(keras):
    np.testing.assert_array_equal(I.get("identity")(KEY, (4, 4)), np.eye(4))
    np.testing.assert_array_equal(I.Identity(gain=2.5)(KEY, (3, 5)), keras.initializers.Identity(gain=2.5)((3, 5)))
    np.testing.assert_array_equal(I.Identity()(KEY, (5, 3)), np.eye(5, 3))
    with pytest.raises(ValueError, match=r"identity.*2-D.*\(2, 3, 3\)"):
        I.Identity()(KEY, (2, 3, 3))


def test_float64_dtypes(x64):
    for name in I.NAMES:
        shape = (8, 32)
        w = jax.eval_shape(lambda k: I.get(name)(k, shape, jnp.float64), KEY)  # nothing to compile
        assert w.dtype == jnp.float64, name
        assert w.shape == shape


# --- orthogonal -----------------------------------------------------------------------------------


def _max_dev(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def test_orthogonal_fused_recurrent_kernel():
    # LSTM recurrent kernel (u, 4u): the u rows are orthonormal over 4u columns ...
    u = 16
    r = np.asarray(I.get("orthogonal")(KEY, (u, 4 * u)), np.float64)
    assert _max_dev(r @ r.T, np.eye(u)) < 1e-5
    # ... and no gate block is orthogonal (its spectral norm is below 1)
    for g in range(4):
        block = r[:, g * u : (g + 1) * u]
        assert _max_dev(block @ block.T, np.eye(u)) > 0.3
        assert np.linalg.norm(block, 2) < 1.0
    # the same through a cell's init
    p = rc.cells.LSTM(u).init(KEY, input_dim=3)
    rk = np.asarray(p.recurrent_kernel, np.float64)
    assert _max_dev(rk @ rk.T, np.eye(u)) < 1e-5
    assert _max_dev(rk[:, :u] @ rk[:, :u].T, np.eye(u)) > 0.3


@pytest.mark.parametrize("shape", [(16, 16), (48, 16), (2, 8, 16), (4, 2, 4)])
def test_orthogonal_shapes(shape):
    w = np.asarray(I.Orthogonal(gain=1.5)(KEY, shape), np.float64)
    assert w.shape == shape
    m = w.reshape(-1, shape[-1])  # leading dimensions flattened, as Keras does
    gram = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
    assert _max_dev(gram, 1.5**2 * np.eye(min(m.shape))) < 1e-5


def test_orthogonal_is_haar_sign_fixed():
    # With Keras's sign fix (columns times sign(diag R)) the diagonal of a square Q is centred;
    # a raw QR would give a mean near -0.2 for 6x6.
    keys = jax.random.split(KEY, 300)
    q = jax.vmap(lambda k: I.Orthogonal()(k, (6, 6)))(keys)
    diag = np.asarray(jax.vmap(jnp.diag)(q))
    assert abs(diag.mean()) < 0.05
    assert (diag > 0).mean() == pytest.approx(0.5, abs=0.05)


def test_orthogonal_entries_distributed_as_keras(keras):
    shape = (64, 256)
    w = np.asarray(I.get("orthogonal")(KEY, shape))
    ref = keras_sample(keras, "orthogonal", shape)
    assert _max_dev(ref @ ref.T, np.eye(64)) < 1e-5  # the oracle has the same structure
    assert ks_distance(w, ref) < ks_critical(w.size, ref.size)


def test_orthogonal_float64_is_orthogonal_to_float64_accuracy(x64):
    r = np.asarray(I.get("orthogonal")(KEY, (16, 64), jnp.float64))
    assert r.dtype == np.float64
    assert _max_dev(r @ r.T, np.eye(16)) < 1e-13


def test_orthogonal_needs_rank_two():
    with pytest.raises(ValueError, match=r"rank >= 2.*\(5,\)"):
        I.Orthogonal()(KEY, (5,))


def test_orthogonal_per_gate():
    u = 12
    r = np.asarray(I.get("orthogonal_per_gate")(KEY, (u, 4 * u)), np.float64)
    blocks = [r[:, g * u : (g + 1) * u] for g in range(4)]
    for b in blocks:
        assert _max_dev(b @ b.T, np.eye(u)) < 1e-5
        assert _max_dev(b.T @ b, np.eye(u)) < 1e-5
    assert _max_dev(r @ r.T, 4 * np.eye(u)) < 1e-5
    assert min(_max_dev(a, b) for i, a in enumerate(blocks) for b in blocks[i + 1 :]) > 0.1  # independent
    p = rc.cells.GRU(u, recurrent_initializer="orthogonal_per_gate").init(KEY, input_dim=3)
    for g in range(3):
        b = np.asarray(p.recurrent_kernel[:, g * u : (g + 1) * u], np.float64)
        assert _max_dev(b @ b.T, np.eye(u)) < 1e-5
    w2 = np.asarray(I.OrthogonalPerGate(gain=2.0)(KEY, (u, 2 * u)), np.float64)
    assert _max_dev(w2[:, :u] @ w2[:, :u].T, 4 * np.eye(u)) < 1e-4
    with pytest.raises(ValueError, match=r"orthogonal_per_gate.*\(12, 40\)"):
        I.OrthogonalPerGate()(KEY, (12, 40))


# --- get --------------------------------------------------------------------------------------------


def test_names_are_keras_names(keras):
    from keras.src.initializers import ALL_OBJECTS_DICT

    assert set(I.NAMES) - set(ALL_OBJECTS_DICT) == {"orthogonal_per_gate"}  # rnncore's own option
    for name in I.NAMES:
        assert callable(I.get(name))


def test_get_callable_and_unknown():
    def mine(key, shape, dtype=jnp.float32):
        return jnp.full(shape, 3.0, dtype)

    assert I.get(mine) is mine
    assert rc.cells.SimpleRNN(2, kernel_initializer=mine).init(KEY, 2).kernel.tolist() == [[3.0, 3.0]] * 2
    with pytest.raises(ValueError, match=r"initializer='glorot' is not a known initializer"):
        I.get("glorot")
    with pytest.raises(ValueError, match=r"kernel_initializer='glorot'"):
        I.get("glorot", name="kernel_initializer")
    with pytest.raises(ValueError, match=r"initializer=None"):
        I.get(None)


# --- biases -------------------------------------------------------------------------------------


def test_lstm_unit_forget_bias_default_equals_keras(keras):
    u, f = 5, 3
    fast = dict(kernel_initializer="zeros", recurrent_initializer="zeros")  # default bias init
    layer = keras.layers.LSTM(u, **fast)
    layer.build((None, 4, f))
    kb = layer.get_weights()[2]
    b = np.asarray(rc.cells.LSTM(u, **fast).init(KEY, f).bias)
    np.testing.assert_array_equal(kb, np.r_[np.zeros(u), np.ones(u), np.zeros(2 * u)])  # the oracle
    np.testing.assert_array_equal(b, kb)


@pytest.mark.parametrize("cell_type", [rc.cells.LSTM, rc.cells.LayerNormLSTM])
def test_unit_forget_bias_sets_the_forget_block_only(keras, cell_type):
    # The forget block is set to 1; the other blocks still come from bias_initializer.
    u, f = 16, 2
    fast = dict(kernel_initializer="zeros", recurrent_initializer="zeros")
    kcell = keras.layers.LSTMCell(u, bias_initializer=keras.initializers.RandomNormal(seed=2), **fast)
    kcell.build((None, f))
    kb = kcell.get_weights()[2]
    b = np.asarray(cell_type(u, bias_initializer="random_normal", **fast).init(KEY, f).bias)
    for bias in (kb, b):
        np.testing.assert_array_equal(bias[u : 2 * u], 1.0)
        others = np.r_[bias[:u], bias[2 * u :]]
        assert np.all(others != 1.0) and 0.03 < others.std() < 0.08  # N(0, 0.05)
    assert ks_distance(np.r_[b[:u], b[2 * u :]], np.r_[kb[:u], kb[2 * u :]]) < ks_critical(3 * u, 3 * u)
    b_off = np.asarray(cell_type(u, bias_initializer="random_normal", unit_forget_bias=False, **fast).init(KEY, f).bias)
    assert np.all(b_off != 1.0) and 0.03 < b_off.std() < 0.08
    np.testing.assert_array_equal(cell_type(u, unit_forget_bias=False, **fast).init(KEY, f).bias, 0.0)


@pytest.mark.parametrize("reset_after,use_bias", [(True, True), (False, True), (True, False)])
def test_gru_bias_shapes_equal_keras(keras, reset_after, use_bias):
    u, f = 4, 3
    fast = dict(kernel_initializer="zeros", recurrent_initializer="zeros")
    layer = keras.layers.GRU(u, reset_after=reset_after, use_bias=use_bias, **fast)
    layer.build((None, 2, f))
    p = rc.cells.GRU(u, reset_after=reset_after, use_bias=use_bias, **fast).init(KEY, f)
    assert [tuple(w.shape) for w in p if w is not None] == [w.shape for w in layer.get_weights()]
    expected = {(True, True): (2, 3 * u), (False, True): (3 * u,), (True, False): None}[(reset_after, use_bias)]
    assert (None if p.bias is None else p.bias.shape) == expected


@pytest.mark.parametrize(
    "alias, canonical", [("normal", "random_normal"), ("uniform", "random_uniform"), ("one", "ones"), ("zero", "zeros")]
)
def test_keras_aliases(keras, alias, canonical):
    """Keras's short aliases name the same initializers, with the same defaults."""
    assert type(keras.initializers.get(alias)) is type(keras.initializers.get(canonical))
    assert I.get(alias) == I.get(canonical)
