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
# # My RNN's loss does not decrease: what should I try?
#
# A checklist, each item measured on the same small task with `rc.fit` (Keras's training loop, number
# for number):
#
# 1. **The learning rate and the optimizer.** One gradient step moves the weights by
#    $\Delta\theta = -\eta\, g$ (SGD) or $-\eta\, \hat m / (\sqrt{\hat v} + \epsilon)$ (Adam): too small an
#    $\eta$ and nothing moves, too large and every step overshoots.
# 2. **Gradient clipping.** Exploding gradients (Pascanu, Mikolov & Bengio 2013) make single steps huge;
#    clipping rescales $g \leftarrow g \cdot \min(1, c / \lVert g\rVert)$. Keras's `clipnorm` applies this to
#    *each variable* on its own, `global_clipnorm` to all of them together.
# 3. **A run that diverges** to inf or NaN, and what `rc.fit` returns then.
# 4. **Standardized inputs**: $x \leftarrow (x - \mu) / \sigma$, with $\mu, \sigma$ from the training data only.
# 5. **Early stopping** on the validation loss, keeping the best weights.
#
# The task: forecast the next value of a noisy sine (`rc.data.noisy_sine`). Predicting the mean target
# for every sequence has MSE $\operatorname{Var}(y)$: a model whose loss stays there has learned nothing.

# %%
import os
import warnings

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import rnncore as rc

FAST = os.environ.get("RNNCORE_FAST") == "1"
T = 15 if FAST else 30
N, N_VAL, BATCH = (192, 64, 32) if FAST else (2048, 512, 64)
EPOCHS = 6 if FAST else 30
UNITS = 16 if FAST else 32

x, y = rc.data.noisy_sine(N, T, seed=0)
x_val, y_val = rc.data.noisy_sine(N_VAL, T, seed=1)
baseline = float(np.var(y))  # MSE of predicting the mean target
model = rc.Sequential([rc.layers.SimpleRNN(UNITS), rc.layers.Dense(1)])
params0 = model.init(jax.random.PRNGKey(0), input_shape=(T, 1))
print(f"{N} training sequences of {T} steps; predict-the-mean baseline MSE = {baseline:.3f}")


def train(optimizer, xs=x, epochs=EPOCHS, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return rc.fit(
            model,
            params0,
            xs,
            y,
            loss="mse",
            optimizer=optimizer,
            epochs=epochs,
            batch_size=BATCH,
            shuffle=False,
            verbose=0,
            **kw,
        )


# %% [markdown]
# ## 1. Learning rate and optimizer
#
# Keras's defaults: SGD $\eta = 0.01$, Adam and RMSprop $\eta = 0.001$. Then Adam with $\eta$ a hundred
# times smaller and a thousand times larger than its default.

# %%
runs = {
    "SGD (lr 0.01)": rc.optimizers.sgd(),
    "Adam (lr 1e-3)": rc.optimizers.adam(),
    "RMSprop (lr 1e-3)": rc.optimizers.rmsprop(),
    "Adam, lr 1e-5 (too low)": rc.optimizers.adam(1e-5),
    "Adam, lr 1.0 (too high)": rc.optimizers.adam(1.0),
}
histories = {name: train(opt)[1] for name, opt in runs.items()}
final = {name: h.history["loss"][-1] for name, h in histories.items()}
for name, value in final.items():
    print(f"{name:25s} final loss {value:.4f}  ({value / baseline:.0%} of the baseline)")
good = min(final[k] for k in ("SGD (lr 0.01)", "Adam (lr 1e-3)", "RMSprop (lr 1e-3)"))
too_low, too_high = final["Adam, lr 1e-5 (too low)"], final["Adam, lr 1.0 (too high)"]
assert good < 0.4 * baseline, good
assert too_low > 2 * good and too_high > 2 * good, (too_low, too_high, good)
rc.plot.training_curves(histories, title="Same model, same data: only the optimizer differs")

# %% [markdown]
# Too low a rate moves slowly from where it started; too high a rate jumps around at or above the baseline. The three defaults all
# learn. Adam's step is $\approx\eta$ per weight whatever the gradient's scale, which is why $\eta = 1$ is
# hopeless for it, while SGD's step scales with $\lVert g\rVert$.
#
# ## 2. `clipnorm` and `global_clipnorm` clip differently
#
# The same gradients, through both clipping modes: with threshold $c$,
#
# $$ \texttt{clipnorm}: \ g_v \leftarrow g_v \min\!\Big(1, \frac{c}{\lVert g_v\rVert}\Big) \text{ for each variable } v,
# \qquad \texttt{global\_clipnorm}: \ g \leftarrow g \min\!\Big(1, \frac{c}{\lVert g\rVert}\Big),\
# \lVert g\rVert^2 = \textstyle\sum_v \lVert g_v\rVert^2 . $$
#
# We take the gradient of the loss on one batch of *unstandardized* inputs (section 4), whose norm is
# above the threshold $c = 1$, and look at what each mode makes of it. An SGD step with $\eta = 1$
# returns $-$(clipped gradient).

# %%
loss_fn = rc.analysis.loss_function("mse")
x_raw = 40.0 + 15.0 * x  # the same signal in raw units (e.g. degrees), not standardized
grads = jax.grad(lambda p: loss_fn(model.apply(p, x_raw[:BATCH]), y[:BATCH]))(params0)
names = [f"{type(model.layers[i]).__name__}.{f}" for i, p in enumerate(grads) for f in p._fields]
leaves = jax.tree_util.tree_leaves(grads)
norm = lambda tree: float(jnp.sqrt(sum(jnp.sum(g**2) for g in jax.tree_util.tree_leaves(tree))))
per_var = np.array([float(jnp.linalg.norm(g)) for g in leaves])
clip = 1.0
assert norm(grads) > clip and per_var.max() > clip > per_var.min()


def clipped(opt):
    updates, _ = opt.update(grads, opt.init(params0), params0)
    return jax.tree_util.tree_map(lambda u: -u, updates)  # SGD, lr 1: update = -clipped gradient


each = clipped(rc.optimizers.sgd(1.0, clipnorm=clip))
glob = clipped(rc.optimizers.sgd(1.0, global_clipnorm=clip))
cosine = lambda a, b: float(
    sum(jnp.vdot(u, v) for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))
    / (norm(a) * norm(b))
)
each_var = np.array([float(jnp.linalg.norm(g)) for g in jax.tree_util.tree_leaves(each)])
glob_var = np.array([float(jnp.linalg.norm(g)) for g in jax.tree_util.tree_leaves(glob)])
print(f"threshold c = {clip:.3g}; gradient norm {norm(grads):.3g}")
print(f"{'variable':28s} {'|g_v|':>10s} {'clipnorm':>10s} {'global':>10s}")
for n_, a, b, c in zip(names, per_var, each_var, glob_var):
    print(f"{n_:28s} {a:10.3g} {b:10.3g} {c:10.3g}")
print(f"{'whole gradient':28s} {norm(grads):10.3g} {norm(each):10.3g} {norm(glob):10.3g}")
cos_each, cos_glob = cosine(each, grads), cosine(glob, grads)
print(f"cosine with the unclipped gradient: clipnorm {cos_each:.4f}, global_clipnorm {cos_glob:.6f}")
assert np.allclose(each_var, np.minimum(per_var, clip), rtol=1e-5)  # each variable cut to c on its own
assert norm(each) > clip  # so the whole step exceeds c
assert abs(norm(glob) / clip - 1) < 1e-5 and cos_glob > 1 - 1e-5  # global: norm c, same direction
assert cos_each < cos_glob - 1e-3  # per variable: the direction turns

# %%
fig, ax = plt.subplots(figsize=(7, 3.6))
pos = np.arange(len(names))
for k, (vals, label) in enumerate([(per_var, "unclipped"), (each_var, "clipnorm"), (glob_var, "global_clipnorm")]):
    ax.bar(pos + (k - 1) * 0.27, vals, 0.27, label=label)
ax.axhline(clip, color="k", ls=":", label="threshold c")
ax.set_yscale("log")
ax.set_xticks(pos, names, rotation=20, ha="right", fontsize=8)
ax.set_ylabel(r"$\|g_v\|$")
ax.legend(fontsize=8)
fig.tight_layout()
plt.close(fig)  # displayed once, by the next line
fig

# %% [markdown]
# `clipnorm` cuts only the variables above $c$, each to $c$, and leaves the others: the step's total length
# can reach $\sqrt{n}\,c$ for $n$ variables, and its direction is no longer the gradient's (the small
# variables' share grows relative to the large ones'). `global_clipnorm`
# keeps the direction and bounds the whole step by $c$, which is what Pascanu et al. proposed and what
# `torch.nn.utils.clip_grad_norm_` and optax's `clip_by_global_norm` do.
#
# ## 3. A run that diverges, rescued by clipping
#
# SGD with $\eta = 0.3$ (30 times Keras's default): one large gradient throws the weights far out, the
# next gradients are larger still, and the loss overflows. `rc.fit` checks every step for a non-finite loss, gradient or update;
# it stops, warns, sets `history.diverged`, and returns the params from *before* the bad step.

# %%
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    p_div, h_div = rc.fit(
        model,
        params0,
        x,
        y,
        loss="mse",
        optimizer=rc.optimizers.sgd(0.3),
        epochs=EPOCHS,
        batch_size=BATCH,
        shuffle=False,
        verbose=0,
    )
messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
print(h_div.diverged)
print(messages[0])
returned_finite = all(bool(jnp.all(jnp.isfinite(a))) for a in jax.tree_util.tree_leaves(p_div))
loss_returned = rc.train.evaluate(model, p_div, x, y, loss="mse", batch_size=BATCH)["loss"]
print(f"the returned params are finite: {returned_finite}; their training loss {loss_returned:.3g}")
print(f"the training loss per epoch: {h_div.history['loss']}")

runs_clip = {"SGD lr 0.3": h_div}
for name, opt in [
    ("SGD lr 0.3, clipnorm=1", rc.optimizers.sgd(0.3, clipnorm=1.0)),
    ("SGD lr 0.3, global_clipnorm=1", rc.optimizers.sgd(0.3, global_clipnorm=1.0)),
]:
    runs_clip[name] = train(opt)[1]
clip_final = {k: h.history["loss"][-1] for k, h in runs_clip.items()}
for k, v in clip_final.items():
    print(f"{k:30s} final loss {v:.4g}, diverged: {runs_clip[k].diverged is not None}")
global_final = clip_final["SGD lr 0.3, global_clipnorm=1"]
each_final = clip_final["SGD lr 0.3, clipnorm=1"]
assert h_div.diverged is not None and messages and returned_finite
assert runs_clip["SGD lr 0.3, global_clipnorm=1"].diverged is None
assert np.isfinite(global_final) and global_final < 0.2 * baseline, (global_final, baseline)
rc.plot.training_curves(runs_clip, title="SGD with lr 0.3: without clipping, and with")

# %% [markdown]
# "The last good params" means the last *finite* ones: the step that was refused is the one whose loss,
# gradient or update was not finite, and the params returned are those it started from. When it was
# the loss that overflowed, those params are already far out (finite weights, an overflowing or huge
# loss): they are a place to inspect, not a model to keep. The remedy is to prevent the blow-up.
#
# Clipping bounds each step (at most $\eta c$ for `global_clipnorm`, $\eta \sqrt{n}\,c$ for `clipnorm`),
# so a single huge gradient can no longer throw the run to infinity, and the same learning rate now trains
# well.
#
# ## 4. Standardized inputs
#
# The same signal in raw units, $x_{\text{raw}} = 40 + 15x$, drives $\tanh(x W + h U + b)$ into
# saturation, where $\tanh' \approx 0$ and the gradient vanishes. `rc.data.Standardizer` (Keras's
# `Normalization`) is fit on the training inputs only and applied to both training and validation.

# %%
x_val_raw = 40.0 + 15.0 * x_val
standardizer = rc.data.Standardizer().fit(x_raw)  # training data only
x_std, x_val_std = standardizer.transform(x_raw), standardizer.transform(x_val_raw)
print(f"fitted mean {standardizer.mean[0]:.2f}, std {np.sqrt(standardizer.variance[0]):.2f}")
# the same 192 sequences, batches and 10 epochs in fast and full mode, so the epochs count alike
n_cmp, epochs_cmp, opt = 192, 10, rc.optimizers.adam(1e-2)
_, h_raw = rc.fit(
    model,
    params0,
    x_raw[:n_cmp],
    y[:n_cmp],
    loss="mse",
    optimizer=opt,
    epochs=epochs_cmp,
    batch_size=32,
    shuffle=False,
    verbose=0,
    validation_data=(x_val_raw, y_val),
)
_, h_std = rc.fit(
    model,
    params0,
    x_std[:n_cmp],
    y[:n_cmp],
    loss="mse",
    optimizer=opt,
    epochs=epochs_cmp,
    batch_size=32,
    shuffle=False,
    verbose=0,
    validation_data=(x_val_std, y_val),
)
target = 0.1 * baseline


def epochs_to(h, level):
    below = [e + 1 for e, v in enumerate(h.history["loss"]) if v < level]
    return below[0] if below else None


e_raw, e_std = epochs_to(h_raw, target), epochs_to(h_std, target)
print(f"epochs to reach loss {target:.3f} (10% of the baseline): raw {e_raw}, standardized {e_std}")
assert e_std is not None and (e_raw is None or e_std < e_raw), (e_std, e_raw)
rc.plot.training_curves(
    {"raw inputs (40 + 15x)": h_raw, "standardized": h_std}, title="Adam lr 1e-2; dashed: validation"
)

# %% [markdown]
# ## 5. Early stopping on the validation loss
#
# `rc.callbacks.EarlyStopping(monitor="val_loss", patience=p, restore_best_weights=True)` stops once the
# validation loss has not improved for $p$ epochs and hands back the params of the best epoch, not the
# last. A small training set and a large learning rate make the validation loss noisy, which is where it
# matters.

# %%
n_small = BATCH * 2
stopper = rc.callbacks.EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)
p_es, h_es = rc.fit(
    model,
    params0,
    x_std[:n_small],
    y[:n_small],
    loss="mse",
    optimizer=rc.optimizers.adam(3e-2),
    epochs=4 * EPOCHS,
    batch_size=BATCH,
    shuffle=False,
    verbose=0,
    validation_data=(x_val_std, y_val),
    callbacks=[stopper],
)
val = h_es.history["val_loss"]
best_epoch = int(np.argmin(val))
val_returned = rc.train.evaluate(model, p_es, x_val_std, y_val, loss="mse", batch_size=BATCH)["loss"]
print(
    f"ran {len(val)} of {4 * EPOCHS} epochs; best val_loss {min(val):.4f} at epoch {best_epoch + 1}, "
    f"last {val[-1]:.4f}; the returned params score {val_returned:.4f}"
)
assert stopper.best_epoch == best_epoch
assert abs(val_returned - min(val)) < 1e-5 * max(1.0, min(val)), (val_returned, min(val))
rc.plot.training_curves({"early stopping": h_es}, title="Early stopping (dashed: validation)")

# %%
print(
    f"Answer: check the learning rate first (Adam at 1e-5 ends at {too_low / baseline:.0%} and at 1.0 at "
    f"{too_high / baseline:.0%} of the predict-the-mean loss, the Keras defaults reach {good / baseline:.0%}); "
    f"clip the gradient (SGD at lr 0.3 overflowed at epoch {h_div.diverged.epoch + 1}, step "
    f"{h_div.diverged.step + 1}, while with global_clipnorm=1 it ended at {global_final:.4f} and with "
    f"clipnorm=1 at {each_final:.4f}, against {baseline:.3f} for predicting the mean; "
    f"clipnorm clips each variable, turning the step by {np.degrees(np.arccos(min(1.0, cos_each))):.0f} degrees "
    f"and lengthening it to {norm(each):.2f} > c = 1); standardize the inputs (loss below {target:.3f} after "
    f"{e_std} epochs instead of {e_raw if e_raw is not None else f'more than {epochs_cmp}'}); and stop on the "
    f"validation loss, keeping the best epoch's weights (val_loss {val_returned:.4f}, epoch {best_epoch + 1})."
)
