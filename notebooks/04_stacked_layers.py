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
# # Why can stacking recurrent layers make training inconsistent, and what helps?
#
# In a stack of $D$ recurrent layers, layer $l$ reads layer $l-1$'s output sequence. The gradient that
# reaches a state $s^{(l)}_t$ arrives along two routes, through time (the same layer's later steps) and
# through depth (the layer above, at the same step):
#
# $$ \frac{\partial \mathcal L}{\partial s^{(l)}_t} = J^{(l)\top}_{t+1} \frac{\partial \mathcal L}{\partial s^{(l)}_{t+1}}
#    + C^{(l+1)\top}_{t} \frac{\partial \mathcal L}{\partial s^{(l+1)}_{t}}, \qquad
#    J^{(l)}_t = \frac{\partial s^{(l)}_t}{\partial s^{(l)}_{t-1}},\quad
#    C^{(l+1)}_t = \frac{\partial s^{(l+1)}_t}{\partial s^{(l)}_t} . $$
#
# The gradient at the first layer's early steps is a sum over paths, each a product of $J$'s and $C$'s,
# so depth adds factors to every path from the loss to the bottom of the network. This notebook
# measures where the gradient goes in stacks of 1 to 4 LSTM layers (`rc.analysis.gradient_flow`,
# `rc.depth.cross_layer_jacobians`), how training with `rc.fit` varies from seed to seed as depth grows,
# and what gradient clipping and layer normalization change.

# %%
import os
import warnings

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import rnncore as rc

FAST = os.environ.get("RNNCORE_FAST") == "1"
T, UNITS, F = 20, 16, 1
DEPTHS = (1, 2, 3, 4)
SEEDS = tuple(range(3 if FAST else 6))  # the same runs in both modes; full mode adds seeds
N, BATCH, EPOCHS = 128, 32, 12

x, y = rc.data.noisy_sine(N, T, seed=0)  # one-step-ahead forecast of a noisy sine
baseline = float(np.var(y))  # MSE of predicting the mean target


def stack(depth, layer=rc.layers.LSTM):
    """`depth` recurrent layers (all but the last return sequences), then Dense(1)."""
    return rc.Sequential([layer(UNITS, return_sequences=i < depth - 1) for i in range(depth)] + [rc.layers.Dense(1)])


# %% [markdown]
# ## 1. Where the gradient goes, through time and depth
#
# $\lVert\partial\mathcal L/\partial s^{(l)}_t\rVert$ for every layer and step of freshly initialized
# stacks (Keras's initializers), on one batch.

# %%
flows = {}
for depth in DEPTHS:
    model = stack(depth)
    flows[depth] = rc.analysis.gradient_flow(
        model, model.init(jax.random.PRNGKey(0), (T, F)), x[:BATCH], y[:BATCH], "mse"
    )
grid = {depth: np.asarray(flow.state_norms.mean(axis=1)) for depth, flow in flows.items()}  # (layers, T)
for depth, m in grid.items():
    print(
        f"depth {depth}: |dL/ds| at the top layer, step T: {m[-1, -1]:.2e};  first layer, step T: {m[0, -1]:.2e};"
        f"  first layer, step 1: {m[0, 0]:.2e}"
    )
depth_drop = grid[DEPTHS[-1]][0, -1] / grid[1][0, -1]  # the first layer's last state, deep vs shallow
time_drop = grid[1][0, 0] / grid[1][0, -1]  # one layer: step 1 vs step T
assert depth_drop < 0.1 and time_drop < 0.1, (depth_drop, time_drop)

fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
rc.plot.gradient_heatmap(flows[DEPTHS[-1]], ax=axes[0], title=f"{DEPTHS[-1]} stacked LSTMs: log10 |dL/ds|")
for depth, flow in flows.items():
    axes[1].semilogy(
        np.arange(1, T + 1), np.asarray(flow.state_norms[0].mean(axis=0)), "-o", ms=3, label=f"depth {depth}"
    )
axes[1].set_xlabel("step t")
axes[1].set_ylabel(r"first layer $\|\partial\mathcal{L}/\partial s^{(1)}_t\|$")
axes[1].legend()
fig.tight_layout()
plt.close(fig)  # displayed once, by the next line
fig

# %% [markdown]
# At step $T$ the gradient reaches the first layer only through depth: with 4 layers it arrives
# shrunk by the three layers above. Earlier steps collect it along many time-and-depth paths, which is
# why, with depth, the first layer's gradient no longer falls off towards step 1 the way a single
# layer's does. The cross-layer Jacobians $C^{(l)}_t$ are the factors depth adds at each step; their
# largest singular value bounds how much a change of one layer's state can move the next one's.

# %%
deep = stack(DEPTHS[-1])
deep_params = deep.init(jax.random.PRNGKey(0), (T, F))
cross = rc.depth.cross_layer_jacobians(deep, deep_params, x[:BATCH])
sigma_c = {f"{c.lower}->{c.upper}": float(jnp.linalg.norm(c.jacobian, ord=2, axis=(-2, -1)).mean()) for c in cross}
J_first = rc.bptt.step_jacobians(deep.layers[0].cell, deep_params[0], x[:BATCH])
sigma_j = float(jnp.linalg.norm(J_first, ord=2, axis=(-2, -1)).mean())
print("mean largest singular value of C between layers:", {k: round(v, 3) for k, v in sigma_c.items()})
print(f"mean largest singular value of the first layer's J_t: {sigma_j:.3f}")

# %% [markdown]
# ## 2. The gradient reaching the first layer, seed by seed
#
# The same measurement over several initializations: $\log_{10}$ of the gradient at the first layer's
# first step (one compiled function per depth, reused for every seed).

# %%
first_layer = {}
for depth in DEPTHS:
    model = stack(depth)
    first_layer[depth] = np.array(
        [
            float(
                rc.analysis.gradient_flow(model, model.init(jax.random.PRNGKey(s), (T, F)), x[:BATCH], y[:BATCH], "mse")
                .state_norms[0, :, 0]
                .mean()
            )
            for s in SEEDS
        ]
    )
for depth, g in first_layer.items():
    print(
        f"depth {depth}: log10 |dL/ds^(1)_1| over {len(SEEDS)} seeds: {np.round(np.log10(g), 2)}, "
        f"spread (max/min) x{g.max() / g.min():.1f}"
    )

# %% [markdown]
# At initialization the spread from seed to seed is of the same order at every depth: the starting
# gradients do not, by themselves, make deep stacks inconsistent. What differs is what happens during
# training.
#
# ## 3. Training, seed by seed
#
# Each depth trained with `rc.fit` (Adam, learning rate $10^{-2}$, the same data, epochs and batches),
# once per seed. Inconsistent training shows as final losses that differ from seed to seed.


# %%
def train(model, seed, optimizer):
    params = model.init(jax.random.PRNGKey(seed), (T, F))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return rc.fit(
            model,
            params,
            x,
            y,
            loss="mse",
            optimizer=optimizer,
            epochs=EPOCHS,
            batch_size=BATCH,
            shuffle=False,
            verbose=0,
            gradient_norms=True,
        )[1]


runs = {}
for depth in (1, DEPTHS[-1]):
    runs[f"LSTM x{depth}"] = [train(stack(depth), s, rc.optimizers.adam(1e-2)) for s in SEEDS]


def finals(histories, epoch=-1):
    return np.array([h.history["loss"][epoch] for h in histories])


for name, hs in runs.items():
    f = finals(hs)
    print(f"{name}: final losses {np.round(f, 4)}  mean {f.mean():.4f}  max/min x{f.max() / f.min():.2f}")
shallow, deep_f = finals(runs["LSTM x1"]), finals(runs[f"LSTM x{DEPTHS[-1]}"])
spread_shallow, spread_deep = shallow.max() / shallow.min(), deep_f.max() / deep_f.min()
assert deep_f.mean() > 2 * shallow.mean(), (deep_f.mean(), shallow.mean())
assert spread_deep > spread_shallow, (spread_deep, spread_shallow)
fig_seeds, ax_seeds = plt.subplots(figsize=(7, 4))
for (name, hs), color in zip(runs.items(), ("tab:blue", "tab:red")):
    for k, h in enumerate(hs):
        ax_seeds.semilogy(
            np.arange(1, len(h.epoch) + 1),
            h.history["loss"],
            "-o",
            ms=3,
            color=color,
            alpha=0.7,
            label=f"{name} ({len(hs)} seeds)" if k == 0 else None,
        )
ax_seeds.axhline(baseline, color="k", ls=":", label="predict the mean")
ax_seeds.set_xlabel("epoch")
ax_seeds.set_ylabel("training loss (MSE)")
ax_seeds.set_title("1 vs 4 stacked LSTMs, one curve per seed")
ax_seeds.legend()
fig_seeds.tight_layout()
plt.close(fig_seeds)  # displayed once, by the next line
fig_seeds

# %% [markdown]
# The deep stack sits on a plateau near the baseline (MSE of predicting the mean) for longer, and the
# epoch at which it leaves it depends on the seed, hence the spread. `history.gradient_norms` holds the
# gradient norm of every layer's weights at every step:

# %%
gn = runs[f"LSTM x{DEPTHS[-1]}"][0].gradient_norms  # (steps, layers), seed 0
fig2, ax2 = plt.subplots(figsize=(7, 3.5))
for i in range(DEPTHS[-1] + 1):
    ax2.semilogy(gn[:, i], label=runs[f"LSTM x{DEPTHS[-1]}"][0].layer_names[i])
ax2.set_xlabel("optimizer step")
ax2.set_ylabel(r"$\|\nabla_{\theta_\ell}\mathcal{L}\|$")
ax2.set_title(f"{DEPTHS[-1]} stacked LSTMs, seed {SEEDS[0]}: gradient norm per layer")
ax2.legend(fontsize=8)
fig2.tight_layout()
ratio_first_top = np.median(gn[:, 0] / gn[:, DEPTHS[-1] - 1])
print(f"median over steps of |grad first LSTM| / |grad top LSTM|: {ratio_first_top:.2f}")
plt.close(fig2)  # displayed once, by the next line
fig2

# %% [markdown]
# ## 4. What helps? Clipping and layer normalization
#
# The same deep stack and seeds, with
#
# * `clipnorm=0.5`: each weight's gradient scaled to norm $\le 0.5$ on its own;
# * `global_clipnorm=0.5`: the whole gradient scaled to norm $\le 0.5$ (Pascanu et al. 2013);
# * `rc.layers.LayerNormLSTM` (Ba, Kiros & Hinton 2016): the gate pre-activations and the cell state
#   normalized at every step, $\mathrm{LN}(v) = \gamma \odot (v - \mu_v)/\sigma_v + \beta$, so each layer's
#   input to the next keeps a fixed scale whatever the weights do.

# %%
deep_name = f"LSTM x{DEPTHS[-1]}"
remedies = {
    f"{deep_name}, clipnorm=0.5": (stack(DEPTHS[-1]), lambda: rc.optimizers.adam(1e-2, clipnorm=0.5)),
    f"{deep_name}, global_clipnorm=0.5": (stack(DEPTHS[-1]), lambda: rc.optimizers.adam(1e-2, global_clipnorm=0.5)),
    f"LayerNormLSTM x{DEPTHS[-1]}": (stack(DEPTHS[-1], rc.layers.LayerNormLSTM), lambda: rc.optimizers.adam(1e-2)),
}
for name, (model, make_opt) in remedies.items():
    runs[name] = [train(model, s, make_opt()) for s in SEEDS]

half = EPOCHS // 2 - 1
print(f"{'':36s} {'mean loss, epoch ' + str(half + 1):>20s} {'mean final loss':>16s} {'max/min final':>14s}")
summary = {}
for name in [deep_name, *remedies]:
    mid, f = finals(runs[name], half), finals(runs[name])
    summary[name] = (mid.mean(), f.mean(), f.max() / f.min())
    print(f"{name:36s} {mid.mean():20.4f} {f.mean():16.4f} {f.max() / f.min():14.2f}")
ln_mid, plain_mid = summary[f"LayerNormLSTM x{DEPTHS[-1]}"][0], summary[deep_name][0]
assert ln_mid < 0.8 * plain_mid, (ln_mid, plain_mid)

fig3, ax3 = plt.subplots(figsize=(7, 4))
rc.plot.training_curves(
    {name: runs[name][0] for name in ["LSTM x1", deep_name, *remedies]},
    ax=ax3,
    title=f"seed {SEEDS[0]}: remedies for the deep stack",
)
plt.close(fig3)  # displayed once, by the next line
fig3

# %% [markdown]
# Layer normalization shortens the deep stack's plateau: each layer's gates see inputs of a fixed scale
# from the first step on. Clipping changes little *here*: it bounds the size of a step, which rescues a
# run thrown out by an exploding gradient (notebook 05), but a plateau is made of small gradients, and
# clipping cannot make them larger.

# %%
clip_each, clip_global = (summary[f"{deep_name}, clipnorm=0.5"][0], summary[f"{deep_name}, global_clipnorm=0.5"][0])
print(
    f"Answer: stacking slows and destabilizes training: over {len(SEEDS)} seeds, 4 stacked LSTMs end at a mean "
    f"loss of {deep_f.mean():.3f} against {shallow.mean():.3f} for one layer, with final losses spread "
    f"x{spread_deep:.1f} (max/min) instead of x{spread_shallow:.2f}, because the deep stack leaves its "
    f"initial plateau at a seed-dependent epoch. LayerNormLSTM shortens that plateau (mean loss at epoch "
    f"{half + 1}: {ln_mid:.3f} vs {plain_mid:.3f}); clipping bounds the steps but leaves the plateau as it was "
    f"(clipnorm {clip_each:.3f}, global_clipnorm {clip_global:.3f} at epoch {half + 1}); the gradient reaching "
    f"the first layer's last state through depth alone is x{depth_drop:.1e} of a single layer's."
)
