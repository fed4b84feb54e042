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
# # What do bidirectional layers change, and is a GRU as good as an LSTM?
#
# A recurrent layer reading left to right gives at step $t$ an output $\overrightarrow{h}_t$ that
# depends on $x_1, \ldots, x_t$ only. `Bidirectional` (Schuster & Paliwal 1997) runs a second copy
# of the layer right to left, $\overleftarrow{h}_t$ depending on $x_t, \ldots, x_T$, and merges the
# two per step: `merge_mode="concat"` gives $[\overrightarrow{h}_t; \overleftarrow{h}_t]$ (`"sum"`,
# `"ave"`, `"mul"` combine them elementwise, `None` returns both). Every output then sees the whole
# sequence — useful when the answer at step $t$ depends on what comes later (tagging, filling in),
# impossible for streaming prediction.
#
# The GRU (Cho et al. 2014) keeps one state with an update gate $z$,
# $h_t = z_t \odot h_{t-1} + (1 - z_t) \odot \tilde h_t$, where the LSTM (Hochreiter & Schmidhuber
# 1997) keeps two, $(h_t, c_t)$, with separate forget and input gates. The GRU has three gate
# blocks instead of four, so fewer parameters; empirical comparisons find them close
# (Chung et al. 2014; Jozefowicz, Zaremba & Sutskever 2015; Greff et al. 2017). We measure both
# questions with rnncore.

# %%
import os
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import rnncore as rc

FAST = os.environ.get("RNNCORE_FAST") == "1"
UNITS = 16 if FAST else 32
T = 12 if FAST else 30  # sequence length of the task
SHIFT = 3  # the target at step t is the input SHIFT steps later
EPOCHS = 25 if FAST else 60
N_TRAIN, BATCH = (512, 64) if FAST else (2048, 64)
SEEDS = (0, 1) if FAST else (0, 1, 2, 3)
started = time.perf_counter()

# %% [markdown]
# ## What each direction sees: the gradient reaching each input position
#
# Take `Bidirectional(LSTM(u, return_sequences=True))` and a loss on the output at one step $t_0$
# only. `rc.analysis.gradient_flow` returns $\lVert\partial L/\partial s_t\rVert$ for each direction
# separately (rows `...forward` and `...backward`, each in its own processing order; the backward
# row's step $t$ consumes input position $T - t + 1$). The forward state at a position after $t_0$,
# and the backward state at a position before $t_0$, cannot influence $y_{t_0}$: their gradients
# must be exactly zero.

# %%
bi = rc.Sequential([rc.layers.Bidirectional(rc.layers.LSTM(UNITS, return_sequences=True)), rc.layers.Dense(1)])
bi_params = bi.init(jax.random.PRNGKey(0), (T, 1))
x_probe = jax.random.uniform(jax.random.PRNGKey(1), (8, T, 1))
t0 = T // 2  # 1-based input position of the loss


def loss_at_t0(y_pred, y):
    return jnp.mean((y_pred[:, t0 - 1] - y[:, t0 - 1]) ** 2)


flow = rc.analysis.gradient_flow(bi, bi_params, x_probe, jnp.zeros((8, T, 1)), loss_at_t0)
by_position = {}
for name, back, norms in zip(flow.layer_names, flow.go_backwards, np.asarray(flow.state_norms).mean(axis=1)):
    by_position[name.split(".")[-1]] = norms[::-1] if back else norms  # input positions 1..T
positions = np.arange(1, T + 1)
fig, ax = plt.subplots(figsize=(7, 4))
for name, v in by_position.items():
    ax.semilogy(positions, np.where(v > 0, v, np.nan), "o-", label=f"{name} direction")
ax.axvline(t0, color="gray", ls=":", label=f"loss at position {t0}")
ax.set(
    xlabel="input position",
    ylabel=r"$\|\partial L/\partial s\|$ (batch mean)",
    title="Bidirectional LSTM: which states a loss at one step reaches",
)
ax.legend()
plt.close(fig)  # shown once, as the cell's value
fig

# %%
fwd, bwd = by_position["forward"], by_position["backward"]
print(f"names: {flow.layer_names}")
print(
    f"forward direction: gradient > 0 at positions {positions[fwd > 0].min()}..{positions[fwd > 0].max()}; "
    f"backward direction: at positions {positions[bwd > 0].min()}..{positions[bwd > 0].max()}"
)
assert np.all(fwd[t0:] == 0) and np.all(fwd[:t0] > 0), "forward: gradient exactly at positions <= t0"
assert np.all(bwd[: t0 - 1] == 0) and np.all(bwd[t0 - 1 :] > 0), "backward: gradient exactly at positions >= t0"

# %% [markdown]
# ## A task that needs the future
#
# Input: uniform noise $x_t \in [0, 1]$. Target at every step: $y_t = x_{t+3}$ (0 for the last three
# steps). A left-to-right network has not seen $x_{t+3}$ when it must answer; the best it can do is
# the mean, with $\mathrm{MSE} = \tfrac{1}{12}\cdot\tfrac{T-3}{T}$ (it can count steps and get the
# zeros at the end right). Each model is `Sequential([recurrent layer (return_sequences=True),
# Dense(1)])` trained with `rc.fit` (Adam, $10^{-2}$, MSE over every step).


# %%
def future_task(n, seed):
    x = np.random.default_rng(seed).uniform(0.0, 1.0, (n, T, 1)).astype(np.float32)
    y = np.zeros_like(x)
    y[:, :-SHIFT] = x[:, SHIFT:]
    return x, y


x_tr, y_tr = future_task(N_TRAIN, seed=0)
x_val, y_val = future_task(512, seed=1)
UNI_BEST = (1.0 / 12.0) * (T - SHIFT) / T
layers_by_name = {
    "LSTM": lambda: rc.layers.LSTM(UNITS, return_sequences=True),
    "Bidirectional(LSTM)": lambda: rc.layers.Bidirectional(rc.layers.LSTM(UNITS, return_sequences=True)),
    "Bidirectional(GRU)": lambda: rc.layers.Bidirectional(rc.layers.GRU(UNITS, return_sequences=True)),
}


def train(name, seed):
    model = rc.Sequential([layers_by_name[name](), rc.layers.Dense(1)])
    params = model.init(jax.random.PRNGKey(seed), (T, 1))
    t = time.perf_counter()
    _, history = rc.fit(
        model,
        params,
        x_tr,
        y_tr,
        loss="mse",
        optimizer=rc.optimizers.adam(1e-2),
        epochs=EPOCHS,
        batch_size=BATCH,
        validation_data=None if FAST else (x_val, y_val),
        verbose=0,
        seed=seed,
    )
    return history, time.perf_counter() - t


runs = {
    (name, seed): train(name, seed) for name in layers_by_name for seed in SEEDS if name != "LSTM" or seed == SEEDS[0]
}
KEY = "loss" if FAST else "val_loss"  # fast mode skips the validation pass (fresh noise: the two agree closely)
val = {key: h.history[KEY][-1] for key, (h, _) in runs.items()}
uni_mse, bi_mse = val["LSTM", SEEDS[0]], val["Bidirectional(LSTM)", SEEDS[0]]
print(f"best a left-to-right model can do: MSE {UNI_BEST:.4f}")
print(f"LSTM (left to right): {KEY} MSE {uni_mse:.4f}; Bidirectional(LSTM): {bi_mse:.4f}")
assert uni_mse > 0.8 * UNI_BEST, "a unidirectional model cannot predict the future"
assert bi_mse < 0.2 * UNI_BEST, "a bidirectional model should read the future off its backward direction"

# %%
fig, ax = plt.subplots(figsize=(7, 4))
for (name, seed), (h, _) in runs.items():
    ax.semilogy(
        np.arange(1, EPOCHS + 1),
        h.history[KEY],
        color={"LSTM": "C0", "Bidirectional(LSTM)": "C1", "Bidirectional(GRU)": "C2"}[name],
        label=name if seed == SEEDS[0] else None,
        alpha=0.8,
    )
ax.axhline(UNI_BEST, color="gray", ls=":", label="best left-to-right MSE")
ax.set(xlabel="epoch", ylabel=f"{KEY} (MSE)", title=f"Predict $x_{{t+{SHIFT}}}$ at step t (one line per seed)")
ax.legend()
plt.close(fig)  # shown once, as the cell's value
fig

# %% [markdown]
# ## GRU vs LSTM
#
# **Parameters.** With $F$ inputs and $u$ units, an LSTM has $4(uF + u^2 + u)$ weights; a Keras GRU
# (`reset_after=True`, two bias vectors) $3(uF + u^2 + 2u)$ — about three quarters.
#
# **Speed.** One jitted gradient step (forward and explicit BPTT) on a batch, timed after compilation.
#
# **Gradient at long lags.** The fraction of a last-step loss's gradient reaching the first step at
# initialization (Keras default init), over several seeds.
#
# **Accuracy.** The bidirectional task above, several seeds each.


# %%
def n_params(tree):
    return int(sum(np.size(a) for a in jax.tree_util.tree_leaves(tree)))


counts = {
    name: n_params(cls(UNITS).init(jax.random.PRNGKey(0), (T, 1)))
    for name, cls in (("LSTM", rc.layers.LSTM), ("GRU", rc.layers.GRU))
}
assert counts["LSTM"] == 4 * (UNITS * 1 + UNITS**2 + UNITS) and counts["GRU"] == 3 * (UNITS + UNITS**2 + 2 * UNITS)

step_time = {}
xb, yb = jnp.asarray(x_tr[:BATCH]), jnp.asarray(y_tr[:BATCH])
for name, cls in (("LSTM", rc.layers.LSTM), ("GRU", rc.layers.GRU)):
    model = rc.Sequential([cls(UNITS, return_sequences=True), rc.layers.Dense(1)])
    params = model.init(jax.random.PRNGKey(0), (T, 1))
    grad = jax.jit(jax.grad(lambda p: jnp.mean((model.apply(p, xb) - yb) ** 2)))
    jax.block_until_ready(grad(params))
    reps = 20 if FAST else 100
    t = time.perf_counter()
    for _ in range(reps):
        out = grad(params)
    jax.block_until_ready(out)
    step_time[name] = (time.perf_counter() - t) / reps

T_LONG = 50 if FAST else 200
x_long = jax.random.uniform(jax.random.PRNGKey(2), (16, T_LONG, 1))
reach = {}
for name, cls in (("LSTM", rc.layers.LSTM), ("GRU", rc.layers.GRU)):
    model = rc.Sequential([cls(UNITS), rc.layers.Dense(1)])
    r = []
    for seed in range(4 if FAST else 8):
        params = model.init(jax.random.PRNGKey(seed), (T_LONG, 1))
        norms = np.asarray(rc.analysis.gradient_flow(model, params, x_long, jnp.zeros((16, 1)), "mse").state_norms[0])
        r.append(np.mean(np.log10(np.maximum(norms[:, 0] / norms[:, -1], np.finfo(np.float32).tiny))))
    reach[name] = np.array(r)
for name in counts:
    print(
        f"{name}: {counts[name]} parameters, {1e3 * step_time[name]:.2f} ms per gradient step (batch {BATCH}, "
        f"T = {T}), log10 fraction of gradient reaching step 1 of {T_LONG}: mean {reach[name].mean():+.2f} "
        f"(seeds {reach[name].min():+.2f} to {reach[name].max():+.2f})"
    )
assert counts["GRU"] < counts["LSTM"]

# %%
acc = {name: np.array([val[name, s] for s in SEEDS]) for name in ("Bidirectional(LSTM)", "Bidirectional(GRU)")}
for name, v in acc.items():
    print(f"{name}: {KEY} MSE over {len(SEEDS)} seeds: mean {v.mean():.4f}, min {v.min():.4f}, max {v.max():.4f}")
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
for i, (name, v) in enumerate(acc.items()):
    axes[0].scatter(np.full(v.size, i), v, s=40)
axes[0].set(xticks=[0, 1], xticklabels=list(acc), yscale="log", ylabel=f"final {KEY} (MSE)", title="accuracy, per seed")
axes[0].axhline(UNI_BEST, color="gray", ls=":")
axes[1].bar(list(reach), [reach[n].mean() for n in reach], yerr=[reach[n].std() for n in reach], color=["C1", "C2"])
axes[1].set(ylabel=r"$\log_{10}$ fraction reaching step 1", title=f"gradient over {T_LONG} steps at init")
plt.close(fig)  # shown once, as the cell's value
fig

# %%
assert max(acc["Bidirectional(GRU)"].max(), acc["Bidirectional(LSTM)"].max()) < 0.2 * UNI_BEST, (
    "both bidirectional cells should solve the task for every seed"
)
gru_m, lstm_m = acc["Bidirectional(GRU)"], acc["Bidirectional(LSTM)"]
verdict = (
    "the GRU at least as accurate here in every seed, with fewer parameters"
    if gru_m.max() <= lstm_m.min()
    else "the LSTM more accurate here in every seed"
    if lstm_m.max() < gru_m.min()
    else "the seeds overlap: no difference in accuracy resolved here"
)
print(
    f"Answer: a bidirectional layer lets each output see the whole sequence: a loss at position {t0} sends gradient "
    f"to the forward states at positions 1..{t0} and to the backward states at {t0}..{T} only (exactly 0 elsewhere). "
    f"On a task needing the input {SHIFT} steps ahead, a left-to-right LSTM stays at {KEY} MSE {uni_mse:.4f} "
    f"(best possible without the future {UNI_BEST:.4f}) while Bidirectional(LSTM) reaches {bi_mse:.4f}. GRU vs LSTM "
    f"({UNITS} units): {counts['GRU']} vs {counts['LSTM']} parameters, {1e3 * step_time['GRU']:.2f} vs "
    f"{1e3 * step_time['LSTM']:.2f} ms per gradient step, gradient reaching step 1 of {T_LONG} 10^{reach['GRU'].mean():.1f} "
    f"vs 10^{reach['LSTM'].mean():.1f} at init, and on the bidirectional task {KEY} MSE "
    f"{acc['Bidirectional(GRU)'].mean():.4f} ({acc['Bidirectional(GRU)'].min():.4f}-{acc['Bidirectional(GRU)'].max():.4f}) "
    f"vs {acc['Bidirectional(LSTM)'].mean():.4f} ({acc['Bidirectional(LSTM)'].min():.4f}-"
    f"{acc['Bidirectional(LSTM)'].max():.4f}) over {len(SEEDS)} seeds: {verdict}. "
    f"({time.perf_counter() - started:.0f} s)"
)
