"""Theory as tests for :mod:`rnncore.analysis`.

Every expected value comes from outside rnncore: closed-form theory (linear RNNs with orthogonal or
normal recurrent matrices, the Pascanu–Mikolov–Bengio bound, the order-to-chaos transition of random
tanh networks at g = 1), NumPy eigenvalues and singular values, and stacked RNNs written from
the cell equations as plain loops (tests/stacked_oracles.py), differentiated by ``jax.grad`` and
``jax.jacfwd`` with respect to additive perturbations of their states.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from stacked_oracles import B, T, keras_masked_mse, lstm_step, rand, stack_oracle, zeros_e

import rnncore as rc
from rnncore import analysis, cells

# --- independent oracles ---------------------------------------------------------------------------


def orthogonal(rng, n):
    q, r = np.linalg.qr(rng.normal(size=(n, n)))
    return q * np.sign(np.diag(r))


def linear_rnn(recurrent, input_dim=2):
    """A SimpleRNN with no activation and the given recurrent kernel (row convention h @ R)."""
    n = recurrent.shape[0]
    cell = cells.SimpleRNN(n, activation=None)
    rng = np.random.default_rng(0)
    p = cells.SimpleRNNParams(rand(rng, input_dim, n), jnp.asarray(recurrent), rand(rng, n))
    return cell, p


def test_gradient_flow_equals_norms_of_perturbation_gradients(stack):
    model, params, w, x, mask = stack
    y = jnp.asarray(np.random.default_rng(3).normal(size=(B, T, 2)))
    flow = analysis.gradient_flow(model, params, x, y, "mse", mask=mask)

    def objective(e1, e2):
        return keras_masked_mse(stack_oracle(w, x, mask, e1, e2)[0], y, mask)

    e = zeros_e([4, 6])
    g1, g2 = jax.grad(objective, argnums=(0, 1))(*e)
    want_s = np.stack([np.linalg.norm(g1, axis=-1).T, np.linalg.norm(g2, axis=-1).T])
    want_h = np.stack([np.linalg.norm(g1, axis=-1).T, np.linalg.norm(g2[..., :3], axis=-1).T])
    assert flow.layer_names == ("0:SimpleRNN", "1:LSTM") and flow.layer_indices == (0, 1)
    assert flow.state_norms.shape == (2, B, T)
    np.testing.assert_allclose(flow.state_norms, want_s, rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(flow.hidden_norms, want_h, rtol=1e-11, atol=1e-14)
    assert abs(float(flow.loss) - float(objective(*e))) < 1e-12
    # the LSTM's c part carries gradient of its own
    assert float(jnp.max(flow.state_norms[1] - flow.hidden_norms[1])) > 1e-3


def test_gradient_flow_callable_loss(stack):
    model, params, w, x, mask = stack
    y = jnp.asarray(np.random.default_rng(4).normal(size=(B, T, 2)))

    def loss(y_pred, y_true):  # unmasked, prediction first
        return jnp.sum((y_pred - y_true) ** 3)

    flow = analysis.gradient_flow(model, params, x, y, loss, mask=mask)
    g1, g2 = jax.grad(lambda e1, e2: loss(stack_oracle(w, x, mask, e1, e2)[0], y), argnums=(0, 1))(*zeros_e([4, 6]))
    np.testing.assert_allclose(flow.state_norms[0], np.linalg.norm(g1, axis=-1).T, rtol=1e-11)
    np.testing.assert_allclose(flow.state_norms[1], np.linalg.norm(g2, axis=-1).T, rtol=1e-11)


# --- linear RNNs: the theory is exact --------------------------------------------------------------


@pytest.mark.parametrize("a", [0.9, 1.1])
def test_linear_orthogonal_rnn_norms_and_exponents(x64, a):
    """R = a Q, Q orthogonal: ds_T/ds_k = (a Q^T)^(T-k), every singular value a^(T-k), every
    Lyapunov exponent ln a."""
    n, steps = 5, 40
    cell, p = linear_rnn(a * orthogonal(np.random.default_rng(6), n))
    xs = jnp.asarray(np.random.default_rng(7).normal(size=(2, steps, 2)))
    lags = np.arange(1, steps + 1)
    sv = analysis.singular_values_by_lag(cell, p, xs)
    assert sv.shape == (2, steps, n)
    np.testing.assert_allclose(
        sv, np.broadcast_to((lags * math.log(a))[None, :, None], sv.shape), rtol=1e-10, atol=1e-10
    )
    lam = analysis.lyapunov_spectrum(cell, p, xs, warmup=3)
    np.testing.assert_allclose(lam, np.full((2, n), math.log(a)), rtol=0, atol=1e-12)
    lam_jvp = analysis.lyapunov_spectrum(cell, p, xs, k=2, method="jvp")
    np.testing.assert_allclose(lam_jvp, np.full((2, 2), math.log(a)), rtol=0, atol=1e-12)


def test_full_spectrum_sums_to_mean_log_det_of_lstm_jacobians(x64):
    """With k = S the frame is square, so |det R_t| = |det J_t| at every step: the exponents sum
    to the mean of log|det J_t| over the counted steps (Liouville), here for a nonlinear LSTM with
    J_t from jax.jacfwd of the step written above, along its own loop."""
    rng = np.random.default_rng(17)
    u, steps, warmup = 3, 30, 4
    w = (rand(rng, 2, 4 * u), rand(rng, u, 4 * u, scale=0.9), rand(rng, 4 * u))
    xs = rand(rng, 2, steps, 2, scale=1.0)
    h = c = jnp.zeros((2, u))
    logdets = []

    def step_vec(s, x):
        nh, nc = lstm_step(w, s[:u][None], s[u:][None], x[None])
        return jnp.concatenate([nh[0], nc[0]])

    # one compiled program for each step's Jacobian and one for the step (the same loop, not op by op)
    jacobian_at = jax.jit(jax.vmap(jax.jacfwd(step_vec)))
    step = jax.jit(lambda h, c, x: lstm_step(w, h, c, x))
    for t in range(steps):
        s = jnp.concatenate([h, c], axis=-1)
        jac = jacobian_at(s, xs[:, t])
        logdets.append(np.linalg.slogdet(np.asarray(jac))[1])
        h, c = step(h, c, xs[:, t])
    want = np.mean(np.stack(logdets)[warmup:], axis=0)
    for method in ("jacobian", "jvp"):
        lam = analysis.lyapunov_spectrum(cells.LSTM(u), cells.LSTMParams(*w), xs, warmup=warmup, method=method)
        assert lam.shape == (2, 2 * u)
        np.testing.assert_allclose(np.sum(np.asarray(lam), axis=-1), want, rtol=1e-10)
        assert np.all(np.diff(np.asarray(lam), axis=-1) <= 0)


@pytest.mark.parametrize("method", ["auto", "jacobian"])
def test_lyapunov_of_a_cell_without_closed_form(x64, method):
    """A user's cell with no ``jacobian``: JVPs ("auto") or jax.jacfwd of its step ("jacobian")."""

    class PlainCell(cells.SimpleRNN):
        jacobian = None

    a = 0.7
    _, p = linear_rnn(a * orthogonal(np.random.default_rng(18), 4))
    lam = analysis.lyapunov_spectrum(PlainCell(4, activation=None), p, jnp.ones((1, 20, 2)), method=method)
    np.testing.assert_allclose(lam, np.full((1, 4), math.log(a)), rtol=0, atol=1e-12)


def test_masked_steps_are_identity_and_not_counted(x64):
    """With a mask, ds_T/ds_{T-lag} = (a Q^T)^(real steps among the last lag), and each exponent
    still averages ln a over the real steps only."""
    a, steps = 0.8, 12
    cell, p = linear_rnn(a * orthogonal(np.random.default_rng(19), 3))
    mask = np.random.default_rng(20).random((2, steps)) > 0.4
    xs = jnp.ones((2, steps, 2))
    sv = np.asarray(analysis.singular_values_by_lag(cell, p, xs, mask=jnp.asarray(mask)))
    real_in_lag = np.cumsum(mask[:, ::-1], axis=1)  # lag = 1..T counts the last lag steps
    np.testing.assert_allclose(sv, np.broadcast_to((real_in_lag * math.log(a))[..., None], sv.shape), atol=1e-12)
    lam = analysis.lyapunov_spectrum(cell, p, xs, mask=jnp.asarray(mask))
    np.testing.assert_allclose(lam, np.full((2, 3), math.log(a)), atol=1e-12)
    all_masked = jnp.asarray(np.array([[True] * 3 + [False] * (steps - 3)] * 2))
    with pytest.raises(ValueError, match="batch row 0 has no real"):
        analysis.lyapunov_spectrum(cell, p, xs, mask=all_masked, warmup=5)


def test_linear_rnn_float32_lyapunov_and_memory_horizon():
    a, n, steps = 0.9, 4, 60
    cell, p = linear_rnn((a * orthogonal(np.random.default_rng(8), n)).astype(np.float32))
    p = cells.SimpleRNNParams(*(v.astype(jnp.float32) for v in p))
    xs = jnp.ones((1, steps, 2), jnp.float32)
    lam = analysis.lyapunov_spectrum(cell, p, xs)
    assert float(jnp.max(jnp.abs(lam - math.log(a)))) < 2e-6
    # n(lag) / n(1) = a^(lag-1) >= f  <=>  lag <= 1 + ln f / ln a
    for f in (0.5, 0.01):
        want = 1 + math.floor(math.log(f) / math.log(a))
        assert analysis.memory_horizon(cell, p, xs, fraction=f).tolist() == [want]
    # never falls below: the horizon is the whole sequence
    assert analysis.memory_horizon(cell, p, xs[:, :5], fraction=0.01).tolist() == [5]


@pytest.mark.parametrize("kind", ["symmetric", "rotations"])
def test_normal_recurrent_matrix_spectrum_is_log_eigenvalue_moduli(x64, kind):
    rng = np.random.default_rng(9)
    if kind == "symmetric":
        lam = np.array([1.2, -0.9, 0.7, 0.5, -0.3, 0.1])
        q = orthogonal(rng, 6)
        w = q @ np.diag(lam) @ q.T
    else:
        blocks = np.zeros((6, 6))
        for j, (rho, theta) in enumerate([(1.1, 0.3), (0.8, 2.0), (0.5, 1.1)]):
            c, s = math.cos(theta), math.sin(theta)
            blocks[2 * j : 2 * j + 2, 2 * j : 2 * j + 2] = rho * np.array([[c, -s], [s, c]])
        q = orthogonal(rng, 6)
        w = q @ blocks @ q.T
    want = np.sort(np.log(np.abs(np.linalg.eigvals(w))))[::-1]
    cell, p = linear_rnn(w)
    xs = jnp.asarray(rng.normal(size=(2, 300, 2)))
    got = analysis.lyapunov_spectrum(cell, p, xs, warmup=120)
    np.testing.assert_allclose(got, np.broadcast_to(want, got.shape), rtol=0, atol=1e-9)
    top3 = analysis.lyapunov_spectrum(cell, p, xs, k=3, warmup=120, method="jvp")
    np.testing.assert_allclose(top3, np.broadcast_to(want[:3], top3.shape), rtol=0, atol=1e-9)


def test_pascanu_bound_holds_for_tanh_rnn(x64):
    """||ds_T/ds_{T-l}|| <= (gamma sigma_max(R))^l with gamma = 1 for tanh."""
    rng = np.random.default_rng(10)
    n, steps = 8, 50
    cell = cells.SimpleRNN(n)
    recurrent = 1.4 * rng.normal(size=(n, n)) / math.sqrt(n)
    p = cells.SimpleRNNParams(rand(rng, 3, n), jnp.asarray(recurrent), rand(rng, n, scale=0.2))
    xs = jnp.asarray(rng.normal(size=(4, steps, 3)) * 0.3)
    log_sigma = math.log(np.linalg.svd(recurrent, compute_uv=False)[0])
    lognorm = np.asarray(analysis.singular_values_by_lag(cell, p, xs, k=1)[..., 0])
    bound = np.arange(1, steps + 1) * log_sigma
    assert np.all(lognorm <= bound[None] + 1e-9)
    # the bound is not vacuous here: it exceeds 1, while the first factor is close to it
    assert log_sigma > 0 and np.max(lognorm[:, 0] - bound[0]) > -0.5
    v = analysis.verdict(cell, p, xs)
    assert v.gamma == 1.0 and abs(v.bound_rate - log_sigma) < 1e-12 and v.rate <= v.bound_rate
    assert abs(v.log_gain - float(np.mean(lognorm[:, -1]))) < 1e-12


@pytest.mark.parametrize("a, label", [(0.9, "vanishing"), (1.0, "healthy"), (1.1, "exploding")])
def test_verdict_on_linear_rnn(a, label):
    """||ds_T/ds_0|| = a^T: 0.9^100 = 2.7e-5 < 1e-3; 1.1^100 = 1.4e4 > 1e3."""
    cell, p = linear_rnn(a * orthogonal(np.random.default_rng(11), 4))
    p = cells.SimpleRNNParams(*(v.astype(jnp.float32) for v in p))
    v = analysis.verdict(cell, p, jnp.zeros((2, 100, 2), jnp.float32))
    assert v.label == label
    assert abs(v.log_gain - 100 * math.log(a)) < 1e-3 and abs(v.rate - math.log(a)) < 1e-5
    assert abs(v.bound_rate - math.log(a)) < 1e-6


# --- the order-to-chaos transition of random tanh networks -----------------------------------------


def random_tanh_rnn(n, g, seed):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(n, n)) / math.sqrt(n)  # W_ij ~ N(0, 1/N)
    cell = cells.SimpleRNN(n, activation="tanh", use_bias=False)
    p = cells.SimpleRNNParams(jnp.zeros((1, n), jnp.float32), jnp.asarray(g * w.T, jnp.float32))
    h0 = jnp.asarray(rng.normal(size=(1, n)), jnp.float32)
    return cell, p, (h0,), w


@pytest.mark.parametrize("g", [0.5, 2.0])
def test_random_tanh_rnn_order_and_chaos(g):
    """h_t = tanh(g W h_{t-1}): contracting (lambda_1 < 0) for g < 1, chaotic (lambda_1 > 0) for g > 1
    (Sompolinsky, Crisanti & Sommers 1988). For g < 1 the state decays to the fixed point 0, where
    J = g W, so lambda_1 = ln(g rho(W))."""
    n = 200
    cell, p, h0, w = random_tanh_rnn(n, g, seed=12)
    xs = jnp.zeros((1, 600, 1), jnp.float32)
    lam = analysis.lyapunov_spectrum(cell, p, xs, initial_state=h0, k=3, warmup=200)
    top = float(lam[0, 0])
    if g < 1:
        assert top < 0
        want = math.log(g * np.max(np.abs(np.linalg.eigvals(w))))
        assert abs(top - want) < 0.005, (top, want)
    else:
        assert top > 0.05, top


def mean_field_lambda(g, nodes=80):
    """Mean-field largest exponent of h_t = tanh(g W h_{t-1}): lambda = 1/2 ln(g^2 E[tanh'(a)^2]),
    a ~ N(0, D), D = g^2 E[tanh(a)^2] (Gauss-Hermite quadrature)."""
    z, wz = np.polynomial.hermite_e.hermegauss(nodes)
    wz = wz / wz.sum()
    d = 1.0
    for _ in range(500):
        d = g * g * np.sum(wz * np.tanh(math.sqrt(d) * z) ** 2)
    return 0.5 * math.log(g * g * np.sum(wz * (1 - np.tanh(math.sqrt(d) * z) ** 2) ** 2))


def test_random_tanh_rnn_largest_exponent_matches_mean_field():
    """g = 2: the mean-field value is 0.1547 nats/step; N = 400 is within 0.01 of it (finite size)."""
    cell, p, h0, _ = random_tanh_rnn(400, 2.0, seed=13)
    xs = jnp.zeros((1, 3000, 1), jnp.float32)
    top = float(analysis.lyapunov_spectrum(cell, p, xs, initial_state=h0, k=1, warmup=500)[0, 0])
    want = mean_field_lambda(2.0)
    assert abs(want - 0.1547) < 1e-4
    assert abs(top - want) < 0.02, (top, want)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_tanh_rnn_mean_field_large_n_matrix_free(seed):
    """N = 1000 with Jacobian-vector products only (no 1000 x 1000 matrix per step)."""
    cell, p, h0, _ = random_tanh_rnn(1000, 2.0, seed=seed)
    xs = jnp.zeros((1, 4000, 1), jnp.float32)
    top = float(analysis.lyapunov_spectrum(cell, p, xs, initial_state=h0, k=1, warmup=500, method="jvp")[0, 0])
    assert abs(top - mean_field_lambda(2.0)) < 0.01, top


# --- gate saturation, recounted in NumPy -----------------------------------------------------------


def np_sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def recount(values, real, rule, low=0.05, high=0.95):
    v = np.stack(values)  # (T, B, u)
    sat = (v < low) | (v > high) if rule == "sigmoid" else np.abs(v) > high
    keep = np.broadcast_to(real.T[:, :, None], v.shape)
    return np.sum(sat & keep) / np.sum(keep)


def test_gate_saturation_lstm_equals_numpy_recount(x64):
    rng = np.random.default_rng(14)
    u, steps = 5, 12
    kernel, recurrent, bias = rng.normal(size=(3, 4 * u)) * 2.0, rng.normal(size=(u, 4 * u)), rng.normal(size=4 * u)
    xs = rng.normal(size=(B, steps, 3))
    mask = rng.random((B, steps)) > 0.3
    h, c = np.zeros((B, u)), np.zeros((B, u))
    gates = {k: [] for k in ("i", "f", "g", "o", "tanh(c)")}
    for t in range(steps):
        z = xs[:, t] @ kernel + h @ recurrent + bias
        zi, zf, zc, zo = np.split(z, 4, axis=-1)
        i, f, g, o = np_sigmoid(zi), np_sigmoid(zf), np.tanh(zc), np_sigmoid(zo)
        c_new = f * c + i * g
        for k, v in zip(gates, (i, f, g, o, np.tanh(c_new))):
            gates[k].append(v)
        m = mask[:, t][:, None]
        c = np.where(m, c_new, c)
        h = np.where(m, o * np.tanh(c_new), h)
    cell = cells.LSTM(u)
    p = cells.LSTMParams(jnp.asarray(kernel), jnp.asarray(recurrent), jnp.asarray(bias))
    got = analysis.gate_saturation(cell, p, jnp.asarray(xs), mask=jnp.asarray(mask))
    assert list(got) == ["i", "f", "g", "o", "tanh(c)"]
    for k, vals in gates.items():
        want = recount(vals, mask, "tanh" if k in ("g", "tanh(c)") else "sigmoid")
        assert abs(got[k] - want) < 1e-12, (k, got[k], want)
    assert 0.05 < got["i"] < 0.95  # neither none nor all saturated
    # go_backwards on the reversed sequence processes the same steps in the same order
    flipped = analysis.gate_saturation(
        cell, p, jnp.asarray(xs[:, ::-1]), mask=jnp.asarray(mask[:, ::-1]), go_backwards=True
    )
    assert flipped == pytest.approx(got, abs=1e-12)


def np_layer_norm(v, gamma, beta, eps=1e-3):
    mean = v.mean(-1, keepdims=True)
    return (v - mean) / np.sqrt(((v - mean) ** 2).mean(-1, keepdims=True) + eps) * gamma + beta


def test_gate_saturation_layernorm_lstm_equals_numpy_recount(x64):
    """TF Addons' LayerNormLSTMCell: z = LN(xK) + LN(hR) + b, c = LN(f c + i g), h = o tanh(c)."""
    rng = np.random.default_rng(21)
    u, steps = 3, 8
    k, r, b = rng.normal(size=(2, 4 * u)), rng.normal(size=(u, 4 * u)), rng.normal(size=4 * u)
    norms = [
        rng.normal(size=n) * 1.5 + (1.0 if j % 2 == 0 else 0.0)
        for j, n in enumerate([4 * u, 4 * u, 4 * u, 4 * u, u, u])
    ]
    xs = rng.normal(size=(B, steps, 2))
    h, c = np.zeros((B, u)), np.zeros((B, u))
    gates = {name: [] for name in ("i", "f", "g", "o", "tanh(c)")}
    for t in range(steps):
        z = np_layer_norm(xs[:, t] @ k, norms[0], norms[1]) + np_layer_norm(h @ r, norms[2], norms[3]) + b
        zi, zf, zc, zo = np.split(z, 4, axis=-1)
        i, f, g, o = np_sigmoid(zi), np_sigmoid(zf), np.tanh(zc), np_sigmoid(zo)
        c = np_layer_norm(f * c + i * g, norms[4], norms[5])
        h = o * np.tanh(c)
        for name, v in zip(gates, (i, f, g, o, np.tanh(c))):
            gates[name].append(v)
    p = cells.LayerNormLSTMParams(*(jnp.asarray(a) for a in (k, r, b, *norms)))
    got = analysis.gate_saturation(cells.LayerNormLSTM(u), p, jnp.asarray(xs))
    real = np.ones((B, steps), bool)
    want = {name: recount(v, real, "tanh" if name in ("g", "tanh(c)") else "sigmoid") for name, v in gates.items()}
    assert got == pytest.approx(want, abs=1e-12)
    assert max(got.values()) > 0.05


def test_gate_saturation_gru_and_simple_rnn_equal_numpy_recount(x64):
    rng = np.random.default_rng(15)
    u, steps = 4, 10
    kernel, recurrent = rng.normal(size=(3, 3 * u)) * 2.0, rng.normal(size=(u, 3 * u))
    bias = rng.normal(size=(2, 3 * u))
    xs = rng.normal(size=(B, steps, 3))
    h = np.zeros((B, u))
    zs, rs, hhs = [], [], []
    for t in range(steps):  # Keras GRU, reset_after=True
        xk = xs[:, t] @ kernel + bias[0]
        hr = h @ recurrent + bias[1]
        z = np_sigmoid(xk[:, :u] + hr[:, :u])
        r = np_sigmoid(xk[:, u : 2 * u] + hr[:, u : 2 * u])
        hh = np.tanh(xk[:, 2 * u :] + r * hr[:, 2 * u :])
        zs.append(z), rs.append(r), hhs.append(hh)
        h = z * h + (1 - z) * hh
    p = cells.GRUParams(jnp.asarray(kernel), jnp.asarray(recurrent), jnp.asarray(bias))
    got = analysis.gate_saturation(cells.GRU(u), p, jnp.asarray(xs))
    real = np.ones((B, steps), bool)
    assert got == pytest.approx(
        {"z": recount(zs, real, "sigmoid"), "r": recount(rs, real, "sigmoid"), "hh": recount(hhs, real, "tanh")},
        abs=1e-12,
    )
    assert max(got.values()) > 0.05

    k2, r2 = rng.normal(size=(3, u)) * 2.0, rng.normal(size=(u, u))
    h, hs = np.zeros((B, u)), []
    for t in range(steps):
        h = np.tanh(xs[:, t] @ k2 + h @ r2)
        hs.append(h)
    p = cells.SimpleRNNParams(jnp.asarray(k2), jnp.asarray(r2), jnp.zeros(u))
    got = analysis.gate_saturation(cells.SimpleRNN(u), p, jnp.asarray(xs), low=0.1, high=0.9)
    assert got == pytest.approx({"h": recount(hs, real, "tanh", 0.1, 0.9)}, abs=1e-12)
    # a linear activation has no saturation to report
    assert analysis.gate_saturation(cells.SimpleRNN(u, activation=None), p, jnp.asarray(xs)) == {}


# --- losses: Keras's definitions -----------------------------------------------------------------


def test_named_losses_equal_keras(keras):
    rng = np.random.default_rng(16)
    probs = rng.random((5, 4)).astype(np.float32) * 0.98 + 0.01
    binary = (rng.random((5, 4)) > 0.5).astype(np.float32)
    onehot = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 5)]
    real = rng.normal(size=(5, 4)).astype(np.float32)
    cases = {
        "mse": (real, probs),
        "mae": (real, probs),
        "binary_crossentropy": (binary, probs),
        "categorical_crossentropy": (onehot, probs),
        "sparse_categorical_crossentropy": (np.argmax(onehot, -1)[:, None], probs),
    }
    for name, (y_true, y_pred) in cases.items():
        want = float(np.mean(np.asarray(keras.losses.get(name)(y_true, y_pred))))
        got = float(analysis.loss_function(name)(jnp.asarray(y_pred), jnp.asarray(y_true)))
        assert abs(got - want) < 1e-6 * max(1.0, abs(want)), (name, got, want)


# --- bad input -----------------------------------------------------------------------------------


def test_bad_input_errors():
    cell, p = linear_rnn(0.5 * np.eye(3))
    p = cells.SimpleRNNParams(*(v.astype(jnp.float32) for v in p))
    xs = jnp.ones((2, 8, 2))
    with pytest.raises(ValueError, match=r"k=4; expected an integer in \[1, 3\]"):
        analysis.lyapunov_spectrum(cell, p, xs, k=4)
    with pytest.raises(ValueError, match=r"k=0"):
        analysis.singular_values_by_lag(cell, p, xs, k=0)
    with pytest.raises(ValueError, match="T=0"):
        analysis.lyapunov_spectrum(cell, p, jnp.ones((2, 0, 2)))
    with pytest.raises(ValueError, match="T=0"):
        analysis.gate_saturation(cell, p, jnp.ones((2, 0, 2)))
    for warmup in (8, 9, -1):
        with pytest.raises(ValueError, match=rf"warmup={warmup}; expected an integer in \[0, 7\]"):
            analysis.lyapunov_spectrum(cell, p, xs, warmup=warmup)
    with pytest.raises(ValueError, match="method="):
        analysis.lyapunov_spectrum(cell, p, xs, method="svd")
    with pytest.raises(ValueError, match="fraction=0"):
        analysis.memory_horizon(cell, p, xs, fraction=0)
    with pytest.raises(ValueError, match="loss='hinge'"):
        analysis.loss_function("hinge")


def test_non_finite_states_name_the_first_step_and_row():
    cell, p = linear_rnn(0.5 * np.eye(3))
    p = cells.SimpleRNNParams(*(v.astype(jnp.float32) for v in p))
    xs = jnp.ones((3, 8, 2)).at[1, 2, 0].set(jnp.nan).at[2, 5, 1].set(jnp.inf)
    for fn in (
        analysis.lyapunov_spectrum,
        analysis.singular_values_by_lag,
        analysis.gate_saturation,
        analysis.memory_horizon,
        analysis.verdict,
    ):
        with pytest.raises(ValueError, match=r"step t=3 .*batch row 1"):
            fn(cell, p, xs)
    # go_backwards: the NaN at position 3 of 8 is consumed at step 6
    with pytest.raises(ValueError, match=r"step t=6 .*batch row 1"):
        analysis.lyapunov_spectrum(cell, p, xs[:2], go_backwards=True)
    # overflow: h_t = 1 + 1e10 h_{t-1} passes float32's 3.4e38 at t = 5
    big = cells.SimpleRNNParams(jnp.ones((1, 1)), jnp.full((1, 1), 1e10), jnp.zeros(1))
    with pytest.raises(ValueError, match=r"step t=5 .*batch row 0"):
        analysis.lyapunov_spectrum(cells.SimpleRNN(1, activation=None), big, jnp.ones((1, 8, 1)))
    with pytest.raises(ValueError, match="initial_state"):
        analysis.lyapunov_spectrum(cell, p, jnp.ones((1, 8, 2)), initial_state=(jnp.full((1, 3), jnp.nan),))


def test_gradient_flow_reports_non_finite_values():
    """A NaN that poisons the backward pass is reported with its layer, not returned as NaN norms."""
    model = rc.Sequential([rc.layers.LSTM(3, return_sequences=True), rc.layers.GRU(2), rc.layers.Dense(1)])
    params = model.init(jax.random.PRNGKey(0), (5, 2))
    x = jnp.ones((2, 5, 2))
    with pytest.raises(ValueError, match="loss is non-finite"):
        rc.analysis.gradient_flow(model, params, x, jnp.full((2, 1), jnp.nan), "mse")
    huge = params[:2] + (params[2]._replace(kernel=jnp.full_like(params[2].kernel, jnp.inf)),)
    with pytest.raises(ValueError, match="non-finite"):
        rc.analysis.gradient_flow(model, huge, x, jnp.zeros((2, 1)), "mse")


def test_gradient_flow_norms_do_not_underflow_in_float32():
    """A vanishing float32 gradient of ~1e-21 has a norm of ~1e-21, not 0 (its squares underflow)."""
    model = rc.Sequential([rc.layers.GRU(32), rc.layers.Dense(1)])
    params = model.init(jax.random.PRNGKey(0), input_shape=(100, 4))
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 100, 4))
    y = jnp.ones((2, 1))
    flow = rc.analysis.gradient_flow(model, params, x, y, loss="mse")
    grads = rc.depth.model_state_gradients(
        model, params, x, jax.grad(lambda yp: rc.analysis.loss_function("mse")(yp, y))(model.apply(params, x))
    )
    expected = np.linalg.norm(np.asarray(grads[0], np.float64), axis=-1)
    assert expected.min() < 1e-19  # the regime where squaring in float32 underflows
    np.testing.assert_allclose(np.asarray(flow.state_norms[0], np.float64), expected, rtol=1e-5)


def test_gradient_flow_takes_a_zero_one_mask_of_any_dtype_as_the_boolean_one():
    model = rc.Sequential([rc.layers.SimpleRNN(3, return_sequences=True), rc.layers.Dense(1)])
    params = model.init(jax.random.PRNGKey(0), (5, 2))
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 5, 2))
    y = jnp.zeros((2, 5, 1))
    m = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    as_float = analysis.gradient_flow(model, params, x, y, mask=m.astype(np.float32))
    as_bool = analysis.gradient_flow(model, params, x, y, mask=m.astype(bool))
    np.testing.assert_array_equal(as_float.state_norms, as_bool.state_norms)
    assert np.all(np.asarray(as_bool.state_norms)[0, 0, 3:] == 0.0)  # the mask took effect


def test_gradient_flow_refuses_a_recurrent_layer_inside_time_distributed():
    # the inner LSTM runs one chain per outer step: no row would be right, so the layer is named instead
    model = rc.Sequential(
        [
            rc.layers.TimeDistributed(rc.layers.TimeDistributed(rc.layers.LSTM(2))),
            rc.layers.Flatten(),
            rc.layers.Dense(1),
        ]
    )
    params = model.init(jax.random.PRNGKey(0), (2, 3, 4, 5))
    x, y = jnp.ones((1, 2, 3, 4, 5)), jnp.zeros((1, 1))
    with pytest.raises(
        ValueError,
        match=r"gradient_flow: layers\[0\] is TimeDistributed\(TimeDistributed\(LSTM\)\), a recurrent layer run",
    ):
        analysis.gradient_flow(model, params, x, y)
