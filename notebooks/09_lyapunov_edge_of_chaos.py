# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # What is the edge of chaos, and what do Lyapunov spectra say about trainability?
#
# A recurrent network is a dynamical system, $s_t = F(s_{t-1}, x_t)$. Push its state a little at
# step $k$ and follow the push forward: it grows or shrinks like $\partial s_T/\partial s_k =
# J_T J_{T-1}\cdots J_{k+1}$, with $J_t = \partial s_t/\partial s_{t-1}$. The **same product**,
# transposed, carries the gradient backwards in BPTT:
#
# $$\frac{\partial L}{\partial s_k} = \Big(\frac{\partial s_T}{\partial s_k}\Big)^{\!\top}\frac{\partial L}{\partial s_T}.$$
#
# The **Lyapunov exponents** $\lambda_1 \ge \lambda_2 \ge \dots$ are the asymptotic growth rates of
# that product, in nats per step (Oseledets 1968):
# $\sigma_i(\partial s_{k+n}/\partial s_k) \approx e^{\lambda_i n}$ for large $n$. They are computed
# by the QR method (Benettin et al. 1980; for RNNs Engelken, Wolf & Abbott 2020): carry an
# orthonormal frame $Q$ along the trajectory, $J_t Q_{t-1} = Q_t R_t$, and average
# $\log|(R_t)_{ii}|$.
#
# * $\lambda_1 < 0$: perturbations die out — the dynamics are **ordered**, and gradients from a
#   loss at step $T$ **vanish** like $e^{\lambda_1 (T-k)}$.
# * $\lambda_1 > 0$: nearby trajectories separate — the dynamics are **chaotic**, and gradients
#   **explode**.
# * $\lambda_1 \approx 0$: the **edge of chaos**, where information and gradients travel far.
#
# For a random tanh network $h_t = \tanh(W h_{t-1} + \dots)$ with $W = g\,W_0$ and $W_0$ Gaussian
# with entries of variance $1/N$, the eigenvalues of $W$ fill a disc of radius $g$ (the circular
# law), and for large $N$ the autonomous network turns chaotic at $g = 1$ (Sompolinsky, Crisanti &
# Sommers 1988). Below it the state decays to the fixed point $h = 0$, where $J = W$ and
# $\lambda_1 = \log \rho(W) \approx \log g$.
#
# We measure all of this with `rc.analysis.lyapunov_spectrum` and `rc.bptt`.

# %%
import os
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import rnncore as rc

FAST = os.environ.get("RNNCORE_FAST") == "1"
N = 64  # units (state sizes up to 64 keep the per-step QR cheap on a CPU)
T = 200 if FAST else 1000  # steps of the trajectory
WARMUP = 60 if FAST else 300  # transient steps left out of the averages
B = 4 if FAST else 8  # trajectories (random initial states) per network
GAINS = np.round(np.linspace(0.5, 2.5, 9 if FAST else 17), 3)
started = time.perf_counter()

# %% [markdown]
# ## A random tanh SimpleRNN with recurrent kernel $g\,W_0$
#
# Keras's SimpleRNN computes $h_t = \tanh(x_t K + h_{t-1} R + b)$ with row vectors, so
# $J_t = \operatorname{diag}(1 - h_t^2)\,R^\top$. We take `rc.cells.SimpleRNN(N)`, keep its
# input kernel, set the bias to zero and replace the recurrent kernel by $R = g\,W_0$, with $W_0$
# either Gaussian ($\mathcal N(0, 1/N)$ entries) or orthogonal (every eigenvalue on the unit circle).
# The trajectories start from random states $h_0 \sim \mathcal N(0, 1)$. Two drives: none
# ($x_t = 0$, the autonomous network of the theory) and white noise $x_t \sim \mathcal N(0, 1)$.

# %%
cell = rc.cells.SimpleRNN(N)
base = cell.init(jax.random.PRNGKey(0), input_dim=1)
base = base._replace(bias=jnp.zeros_like(base.bias))
W_gauss = jax.random.normal(jax.random.PRNGKey(1), (N, N)) / np.sqrt(N)
W_orth = rc.initializers.get("orthogonal")(jax.random.PRNGKey(2), (N, N))
h0 = cell.state_type(jax.random.normal(jax.random.PRNGKey(3), (B, N)))  # SimpleRNNState(h)
drives = {"no input": jnp.zeros((B, T, 1)), "noise input": jax.random.normal(jax.random.PRNGKey(4), (B, T, 1))}


def with_gain(W0, g):
    return base._replace(recurrent_kernel=jnp.asarray(g * W0, jnp.float32))


def spectrum(params, xs):
    """All N exponents, (B, N), nats/step (one compiled program for every gain: params are traced)."""
    return np.asarray(rc.analysis.lyapunov_spectrum(cell, params, xs, initial_state=h0, warmup=WARMUP))


print(
    f"N = {N} units, T = {T} steps ({WARMUP} warm-up), {B} trajectories per network, "
    f"spectral radius of W0: Gaussian {np.abs(np.linalg.eigvals(np.asarray(W_gauss))).max():.3f}, "
    f"orthogonal {np.abs(np.linalg.eigvals(np.asarray(W_orth))).max():.3f}"
)

# %% [markdown]
# ## The largest exponent across gains
#
# For each gain we compute the full spectrum (N exponents) of each of the $B$ trajectories and keep
# $\lambda_1$, averaged over the trajectories.

# %%
spectra = {}  # (W0 name, drive) -> (len(GAINS), B, N)
for w_name, W0 in (("Gaussian", W_gauss), ("orthogonal", W_orth)):
    for d_name, xs in drives.items():
        spectra[w_name, d_name] = np.stack([spectrum(with_gain(W0, g), xs) for g in GAINS])
lam1 = {key: s[:, :, 0].mean(axis=1) for key, s in spectra.items()}  # (len(GAINS),)


def crossing(gains, values):
    """The gain where values first cross 0 (linear interpolation)."""
    i = int(np.argmax(values > 0))
    return float(gains[i - 1] - values[i - 1] * (gains[i] - gains[i - 1]) / (values[i] - values[i - 1]))


fig, ax = plt.subplots(figsize=(7, 4))
for (w_name, d_name), v in lam1.items():
    ax.plot(GAINS, v, "o-" if w_name == "Gaussian" else "s--", label=f"{w_name} $W_0$, {d_name}")
ax.plot(GAINS[GAINS < 1], np.log(GAINS[GAINS < 1]), "k:", label=r"$\log g$ (fixed point $h=0$)")
ax.axhline(0, color="gray", lw=0.8)
ax.axvline(1, color="gray", lw=0.8, ls=":")
ax.set(xlabel="gain g", ylabel=r"$\lambda_1$ (nats/step)", title="Largest Lyapunov exponent of a random tanh RNN")
ax.legend(fontsize=8)
plt.close(fig)  # shown once, as the cell's value
fig

# %%
i_half, i_two = int(np.argmin(abs(GAINS - 0.5))), int(np.argmin(abs(GAINS - 2.0)))
g_half, g_two = GAINS[i_half], GAINS[i_two]
g_star = {key: crossing(GAINS, v) for key, v in lam1.items()}
for key, v in lam1.items():
    print(
        f"{key[0]:>10} W0, {key[1]:<11}: lambda_1(g={g_half}) = {v[i_half]:+.3f}, "
        f"lambda_1(g={g_two}) = {v[i_two]:+.3f}, crosses 0 at g = {g_star[key]:.2f}"
    )
print(f"log {g_half} = {np.log(g_half):+.3f}")
for key, v in lam1.items():
    assert v[i_half] < 0 < v[i_two], f"{key}: expected lambda_1 < 0 at g={g_half} and > 0 at g={g_two}"
# below the transition, with no input, the state falls to h = 0, where J = W and lambda_1 = log rho(W)
rho_gauss = np.abs(np.linalg.eigvals(g_half * np.asarray(W_gauss))).max()
assert abs(lam1["Gaussian", "no input"][i_half] - np.log(rho_gauss)) < 0.05
assert abs(lam1["orthogonal", "no input"][i_half] - np.log(g_half)) < 0.05

# %% [markdown]
# Below $g = 1$ without input the network forgets its initial state and sits at $h = 0$:
# $\lambda_1 = \log\rho(g W_0)$, the dotted line. Past $g \approx 1$ the exponent turns positive:
# chaos. Two effects move the measured crossing away from exactly 1. Input pushes units into the flat
# part of tanh, where $1 - h^2$ is small, which suppresses chaos (Molgedey, Schuchhardt & Schuster
# 1992; Rajan, Abbott & Sompolinsky 2010). And a network of a few dozen units is far from the
# large-$N$ limit: just above $g = 1$ the autonomous dynamics can settle on a fixed point or a periodic
# orbit ($\lambda_1 \le 0$) before chaos takes over, depending on the draw of $W_0$.
#
# ## The whole spectrum
#
# $\lambda_1$ is the fate of the most expanding direction; the spectrum says how many directions
# expand. With an orthogonal $W_0$ and $g < 1$, every eigenvalue of $W$ has modulus $g$, so all $N$
# exponents equal $\log g$: a flat spectrum. In the chaotic regime only a fraction of the exponents is
# positive, and their sum is the rate at which the dynamics create information (Pesin's formula).

# %%
show = [g for g in (0.5, 1.0, 1.5, 2.0, 2.5) if np.min(abs(GAINS - g)) < 0.13]
idx = [int(np.argmin(abs(GAINS - g))) for g in show]
fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
for ax, w_name in zip(axes, ("Gaussian", "orthogonal")):
    s = spectra[w_name, "noise input"]
    for i in idx:
        ax.plot(np.arange(1, N + 1), s[i].mean(axis=0), label=f"g = {GAINS[i]}")
    ax.axhline(0, color="gray", lw=0.8)
    ax.set(xlabel="index i", title=f"{w_name} $W_0$, noise input")
axes[0].set_ylabel(r"$\lambda_i$ (nats/step)")
axes[1].legend()
plt.close(fig)  # shown once, as the cell's value
fig

# %%
n_positive = {GAINS[i]: float((spectra["Gaussian", "noise input"][i] > 0).sum(axis=1).mean()) for i in idx}
print(
    "number of positive exponents (Gaussian W0, noise input), mean over trajectories:",
    {float(g): v for g, v in n_positive.items()},
)
flat = spectra["orthogonal", "no input"][i_half]
print(
    f"orthogonal W0, g = {g_half}, no input: exponents from {flat.min():+.4f} to {flat.max():+.4f} "
    f"(log g = {np.log(g_half):+.4f})"
)
assert np.allclose(flat, np.log(g_half), atol=0.05)

# %% [markdown]
# ## Exponents are gradient decay rates
#
# The exponents are not an abstraction beside BPTT: the norm of the gradient a loss at the last step
# sends back $\ell$ steps is bounded by $\lVert\partial s_T/\partial s_{T-\ell}\rVert_2$, and
#
# $$\log \lVert \partial s_T/\partial s_{T-\ell} \rVert_2 \approx \text{const} + \lambda_1 \ell .$$
#
# `rc.bptt.step_jacobians` gives every $J_t$ and `rc.bptt.log_norms_to_end` the log-norm of their
# products to the end, in the log domain (a float32 product underflows to zero or overflows within a
# few hundred steps). We fit the slope over lags and compare it with $\lambda_1$; the second singular
# value (`rc.analysis.singular_values_by_lag`) decays with slope $\lambda_2$.

# %%
sel = [int(np.argmin(abs(GAINS - g))) for g in (0.5, 1.0, 2.0)]
xs = drives["noise input"]
log_norms_by_lag = jax.jit(lambda p: rc.bptt.log_norms_to_end(rc.bptt.step_jacobians(cell, p, xs, initial_state=h0)))
lag_fit = np.arange(WARMUP // 2, T - WARMUP)  # lags used for the slope: away from both ends
fig, ax = plt.subplots(figsize=(7, 4))
slopes, lyap = {}, {}
for i in sel:
    p = with_gain(W_gauss, GAINS[i])
    log_norm = np.asarray(log_norms_by_lag(p))[:, ::-1]  # [b, lag-1], lag 1..T
    lags = np.arange(1, T + 1)
    slopes[GAINS[i]] = float(np.polyfit(lags[lag_fit], log_norm[:, lag_fit].mean(axis=0), 1)[0])
    lyap[GAINS[i]] = float(spectra["Gaussian", "noise input"][i][:, 0].mean())
    (line,) = ax.plot(lags, log_norm.mean(axis=0), label=f"g = {GAINS[i]}: slope {slopes[GAINS[i]]:+.3f}")
    ax.plot(
        lags,
        log_norm.mean(axis=0)[lag_fit[0]] + lyap[GAINS[i]] * (lags - lags[lag_fit[0]]),
        ":",
        color=line.get_color(),
    )
ax.set(
    xlabel=r"lag $\ell$",
    ylabel=r"$\log\|\partial s_T/\partial s_{T-\ell}\|_2$ (nats)",
    title=r"Gradient norm by lag (solid) and slope $\lambda_1$ (dotted)",
)
ax.legend()
plt.close(fig)  # shown once, as the cell's value
fig

# %%
for g in slopes:
    print(f"g = {g}: slope of log-norm by lag {slopes[g]:+.4f} nats/step, lambda_1 {lyap[g]:+.4f} nats/step")
for g in slopes:
    assert abs(slopes[g] - lyap[g]) < 0.02 + 0.1 * abs(lyap[g]), f"g={g}: the slope should be lambda_1"
    assert np.sign(slopes[g]) == np.sign(lyap[g]) or abs(lyap[g]) < 0.02

# %%
p = with_gain(W_gauss, GAINS[sel[0]])
sv = np.asarray(rc.analysis.singular_values_by_lag(cell, p, xs, initial_state=h0, k=2)).mean(axis=0)
slope_sv = np.polyfit(np.arange(1, T + 1)[lag_fit], sv[lag_fit], 1)[0]
lam_12 = spectra["Gaussian", "noise input"][sel[0]][:, :2].mean(axis=0)
for g in slopes:
    print(f"g = {g}: over 50 steps the gradient is multiplied by about exp(50 lambda_1) = {np.exp(50 * lyap[g]):.1e}")
print(
    f"g = {GAINS[sel[0]]}: slopes of log sigma_1, log sigma_2 by lag {slope_sv[0]:+.4f}, {slope_sv[1]:+.4f}; "
    f"lambda_1, lambda_2 {lam_12[0]:+.4f}, {lam_12[1]:+.4f}"
)

# %% [markdown]
# So the exponent *is* the per-step rate of gradient decay (or growth): a gradient sent back $\ell$
# steps is multiplied by about $e^{\lambda_1 \ell}$ (printed above for 50 steps), and no optimizer
# finds a dependency whose gradient has fallen by many orders of magnitude. Its inverse $1/|\lambda_1|$ is the number of steps over which
# the gradient changes by a factor $e$ — it diverges at the edge of chaos. This is why initializing
# near $\lambda_1 \approx 0$ (orthogonal or identity recurrent kernels, Saxe et al. 2014; Le,
# Jaitly & Hinton 2015) helps training, and why training itself tends to move networks there
# (Engelken, Wolf & Abbott 2020).
#
# ## LSTM and GRU at Keras's default initialization
#
# Gated cells at Keras's defaults (Glorot-uniform kernel, orthogonal recurrent kernel, zero bias,
# forget bias 1 for the LSTM), 32 units, on the same noise input. The LSTM state is $(h, c)$, so it
# has 64 exponents.

# %%
NG = 32  # units of the gated cells in both modes: the LSTM state (h, c) has 64 entries
gated = {"SimpleRNN (Keras default)": rc.layers.SimpleRNN(NG), "LSTM": rc.layers.LSTM(NG), "GRU": rc.layers.GRU(NG)}
gated_spectra = {}
for name, layer in gated.items():
    p = layer.init(jax.random.PRNGKey(5), (T, 1))
    gated_spectra[name] = np.asarray(rc.analysis.lyapunov_spectrum(layer.cell, p, xs, warmup=WARMUP)).mean(axis=0)
fig, ax = plt.subplots(figsize=(7, 4))
for name, s in gated_spectra.items():
    ax.plot(np.arange(1, s.size + 1), s, label=f"{name}: $\\lambda_1$ = {s[0]:+.3f}")
ax.axhline(0, color="gray", lw=0.8)
ax.set(xlabel="index i", ylabel=r"$\lambda_i$ (nats/step)", title="Lyapunov spectra at Keras's default init")
ax.legend()
plt.close(fig)  # shown once, as the cell's value
fig

# %%
for name, s in gated_spectra.items():
    print(
        f"{name:>26}: lambda_1 = {s[0]:+.4f}, lambda_NG = {s[NG - 1]:+.4f}, "
        f"{int((s > -0.05).sum())} of {s.size} exponents above -0.05 nats/step"
    )
for name in ("LSTM", "GRU"):
    assert gated_spectra[name][0] < 0, f"{name} at Keras's default init should be ordered (lambda_1 < 0)"

# %%
lam_g = lam1["Gaussian", "no input"]
lam_n = lam1["Gaussian", "noise input"]
print(
    f"Answer: the edge of chaos is the gain where the largest Lyapunov exponent crosses 0. For a random "
    f"tanh RNN with Gaussian recurrent kernel g*W0 (N = {N}) it crosses at g = "
    f"{g_star['Gaussian', 'no input']:.2f} without input and g = {g_star['Gaussian', 'noise input']:.2f} "
    f"with noise input (lambda_1 = {lam_g[i_half]:+.3f} at g = {g_half}, {lam_g[i_two]:+.3f} at g = {g_two}, "
    f"no input). lambda_1 is the measured per-step rate of the BPTT gradient "
    f"(slopes {', '.join(f'{slopes[g]:+.3f}' for g in slopes)} vs lambda_1 "
    f"{', '.join(f'{lyap[g]:+.3f}' for g in lyap)} at g = {', '.join(str(g) for g in slopes)}): "
    f"below the edge gradients vanish, above it they explode. At Keras's default init LSTM and GRU are "
    f"ordered (lambda_1 = {gated_spectra['LSTM'][0]:+.3f} and {gated_spectra['GRU'][0]:+.3f}; Keras's "
    f"SimpleRNN {gated_spectra['SimpleRNN (Keras default)'][0]:+.3f}) on this input: their gradients vanish, "
    f"slowly. ({time.perf_counter() - started:.0f} s)"
)
