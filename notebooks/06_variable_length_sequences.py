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
# # What does padding do to my model, and why mask?
#
# Sequences in a batch must share one length, so shorter ones are **padded** with a filler value
# (`pad_sequences`, `padding="post"` puts the filler after the data, `"pre"` before it). A recurrent
# layer does not know the filler is not data: it keeps stepping,
#
# $$ s_t = f(s_{t-1}, x_t = 0), \qquad t = L+1, \dots, T, $$
#
# so the final state it reports is $s_T$, not the state $s_L$ after the last real step. A **mask**
# $m_t \in \{0, 1\}$ tells the layer which steps are real; Keras (and rnncore) then *carry* the state
# through a masked step,
#
# $$ s_t = m_t\, f(s_{t-1}, x_t) + (1 - m_t)\, s_{t-1}, \qquad J_t = \frac{\partial s_t}{\partial s_{t-1}} = I
# \ \text{ where } m_t = 0 . $$
#
# This notebook measures three consequences: the forward pass (final state/output), the backward pass
# (the gradient that reaches the real steps must cross every padding step's Jacobian), and the loss on
# sequence outputs. Then it counts how much padding bucketing by length saves.

# %%
import os

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import rnncore as rc

FAST = os.environ.get("RNNCORE_FAST") == "1"
L = 10 if FAST else 20  # real steps
PADS = (0, 5, 15) if FAST else (0, 5, 10, 20, 40, 80)  # padding steps appended
F, UNITS, B = 3, 8 if FAST else 16, 4

rng = np.random.default_rng(0)
x_real = rng.normal(size=(B, L, F)).astype(np.float32)  # B sequences of L real steps

model = rc.Sequential([rc.layers.LSTM(UNITS), rc.layers.Dense(1)])
params = model.init(jax.random.PRNGKey(0), input_shape=(None, F))
# A fresh Keras LSTM has zero biases (except the forget gate's 1); a trained one has not. Random biases
# stand in for a trained model, which is where padding bites (see below).
lstm_p = params[0]._replace(bias=0.5 * jax.random.normal(jax.random.PRNGKey(1), params[0].bias.shape))
trained_like = (lstm_p, params[1])


def padded(x, pad, side):
    """x (B, L, F) padded with `pad` zero steps, through rc.data.pad_sequences, and its mask."""
    T = x.shape[1] + pad
    xp = rc.data.pad_sequences(list(x), maxlen=T, dtype="float32", padding=side)
    mask = rc.data.mask_from_lengths([x.shape[1]] * x.shape[0], T, padding=side)
    return xp, mask


# %% [markdown]
# ## 1. The forward pass: the final output with and without a mask
#
# For each amount of padding $P$ we compare the model's output on the padded batch with its output on
# the unpadded sequences: post-padding without a mask, pre-padding without a mask, and post-padding with
# the mask.

# %%
apply = jax.jit(model.apply)  # one compiled function per input shape, reused
y_ref = apply(trained_like, x_real)
rows = []
for P in PADS:
    x_post, m_post = padded(x_real, P, "post")
    x_pre, _ = padded(x_real, P, "pre")
    rows.append(
        dict(
            P=P,
            post=float(jnp.max(jnp.abs(apply(trained_like, x_post) - y_ref))),
            pre=float(jnp.max(jnp.abs(apply(trained_like, x_pre) - y_ref))),
            masked=float(jnp.max(jnp.abs(apply(trained_like, x_post, m_post) - y_ref))),
            pre_fresh=float(jnp.max(jnp.abs(apply(params, x_pre) - apply(params, x_real)))),
        )
    )
print(f"{'P':>4} {'post, no mask':>14} {'pre, no mask':>13} {'post + mask':>12} {'pre, zero biases':>17}")
for r in rows:
    print(f"{r['P']:>4} {r['post']:14.2e} {r['pre']:13.2e} {r['masked']:12.2e} {r['pre_fresh']:17.2e}")

P_max = PADS[-1]
post_err = max(r["post"] for r in rows)
pre_err = max(r["pre"] for r in rows)
mask_err = max(r["masked"] for r in rows)
pre_fresh_err = max(r["pre_fresh"] for r in rows)
assert post_err > 10 * pre_err, (post_err, pre_err)  # post-padding without a mask is the worst
assert pre_err > 1e-5  # pre-padding changes it too, once biases are nonzero
assert mask_err < 1e-6, mask_err  # with the mask: the unpadded answer, to rounding
assert pre_fresh_err < 1e-6, pre_fresh_err  # zero biases: zeros in, zero state stays zero

# %% [markdown]
# Why pre-padding does little: the zeros come *first*, while the state is still the initial $s_0 = 0$.
# With zero biases an LSTM maps $(s = 0, x = 0)$ to $s = 0$ ($g = \tanh 0 = 0$ so $c$ stays $0$, and
# $h = o \odot \tanh 0 = 0$), so leading zeros change nothing at all (last column). With nonzero biases
# the state drifts to a small nonzero $s$ before the data starts, and the data's effect washes most of
# that out. Post-padding instead runs the dynamics on after the data, from wherever the data left the
# state, and the output is read after that.

# %% [markdown]
# ## 2. The backward pass: the gradient that reaches the real steps
#
# With a loss on the final output, the gradient at a real step $t \le L$ is
#
# $$ \frac{\partial \mathcal L}{\partial s_t} = \Big(J_{t+1}^\top \cdots J_{L}^\top\Big)
#    \Big(J_{L+1}^\top \cdots J_{L+P}^\top\Big) \frac{\partial \mathcal L}{\partial s_{L+P}}, $$
#
# so without a mask it crosses $P$ extra Jacobians of the padding steps (a contracting LSTM shrinks it
# at each), with a mask those are $I$. `rc.analysis.gradient_flow` measures
# $\lVert\partial\mathcal L/\partial s_t\rVert$ at every step. (Passing an all-True mask is the same as no
# mask, and reuses one compiled function for both cases.)

# %%
y_target = np.zeros((B, 1), np.float32)
ref_flow = rc.analysis.gradient_flow(model, trained_like, x_real, y_target, "mse")
ref_norms = np.asarray(ref_flow.state_norms[0].mean(axis=0))  # (L,), batch average
unmasked, masked = {}, {}
for P in PADS:
    x_post, m_post = padded(x_real, P, "post")
    no_mask = rc.analysis.gradient_flow(model, trained_like, x_post, y_target, "mse", mask=np.ones_like(m_post))
    with_mask = rc.analysis.gradient_flow(model, trained_like, x_post, y_target, "mse", mask=m_post)
    unmasked[P] = np.asarray(no_mask.state_norms[0, :, :L].mean(axis=0))  # the real steps only
    masked[P] = np.asarray(with_mask.state_norms[0, :, :L].mean(axis=0))

attenuation = {P: float(unmasked[P][-1] / ref_norms[-1]) for P in PADS}  # at the last real step
mask_grad_err = max(float(np.max(np.abs(masked[P] - ref_norms) / ref_norms)) for P in PADS)
for P in PADS:
    print(f"P = {P:3d}: |dL/ds_L| without mask / unpadded = {attenuation[P]:.2e}")
print(f"with the mask, the largest relative difference to the unpadded gradient: {mask_grad_err:.1e}")
assert all(attenuation[a] > attenuation[b] for a, b in zip(PADS[1:], PADS[2:])), attenuation
assert attenuation[PADS[-1]] < 1e-2 * attenuation[PADS[1]], attenuation
assert mask_grad_err < 1e-4, mask_grad_err

# %%
fig, ax = plt.subplots(figsize=(7, 4))
colors = plt.cm.viridis(np.linspace(0, 0.9, len(PADS)))
for c, P in zip(colors, PADS):
    ax.semilogy(np.arange(1, L + 1), unmasked[P], "-o", ms=3, color=c, label=f"no mask, P = {P}")
ax.semilogy(np.arange(1, L + 1), masked[PADS[-1]], "k--", lw=2, label=f"mask, P = {PADS[-1]} (= unpadded)")
ax.set_xlabel("real step t")
ax.set_ylabel(r"$\|\partial \mathcal{L} / \partial s_t\|$ (batch mean)")
ax.set_title("Gradient at the real steps of a post-padded sequence")
ax.legend(fontsize=8)
fig.tight_layout()
plt.close(fig)  # displayed once, by the next line
fig

# %% [markdown]
# ## 3. The loss on sequence outputs
#
# With `return_sequences=True` the model emits one output per step, padding steps included. Keras's
# losses take the mask as weights: $\mathcal L = \sum_{b,t} m_{bt}\, \ell_{bt} / \sum_{b,t} m_{bt}$, the
# mean over real steps only. Without it the padding steps' errors are averaged in, and the mean is taken
# over $B\,T$ entries.

# %%
lengths = np.array([L, L // 2, 3, L - 1])
T = L
seq_model = rc.Sequential([rc.layers.Masking(0.0), rc.layers.LSTM(UNITS, return_sequences=True), rc.layers.Dense(1)])
seq_params = seq_model.init(jax.random.PRNGKey(2), input_shape=(T, F))
x_var = rc.data.pad_sequences([x_real[b, :n] for b, n in enumerate(lengths)], maxlen=T, dtype="float32", padding="post")
mask_var = rc.data.mask_from_lengths(lengths, T, padding="post")
y_seq = rng.normal(size=(B, T, 1)).astype(np.float32)
y_pred, _, out_mask = seq_model.apply_with_mask(seq_params, x_var)  # Masking makes the mask from the zeros
assert np.array_equal(np.asarray(out_mask), mask_var)

mse = rc.losses.MeanSquaredError()
per_step = np.asarray((y_pred - y_seq)[..., 0] ** 2)  # (B, T)
loss_masked = float(mse(y_seq, y_pred, mask=out_mask))
loss_unmasked = float(mse(y_seq, y_pred))
by_hand_real = float(per_step[mask_var].mean())
n_real, n_all = int(mask_var.sum()), mask_var.size
print(f"masked loss {loss_masked:.6f} = mean over the {n_real} real steps {by_hand_real:.6f}")
print(f"unmasked loss {loss_unmasked:.6f} = mean over all {n_all} steps {per_step.mean():.6f}")
assert abs(loss_masked - by_hand_real) < 1e-6 * max(1.0, by_hand_real)
assert abs(loss_unmasked - by_hand_real) > 1e-3

# %% [markdown]
# ## 4. Bucketing: less padding to begin with
#
# Padding every sequence to the longest one in the data set wastes steps (each one still costs a
# recurrent step of compute, masked or not). `rc.data.bucket_by_length` sorts by length and pads each
# batch only to its own longest sequence.

# %%
n_seq, batch_size = (256, 16) if FAST else (2000, 32)
lens = rng.integers(5, 200, size=n_seq)
seqs = [np.zeros((n, 1), np.float32) + 1.0 for n in lens]

padded_global = n_seq * int(lens.max()) - int(lens.sum())
# batches of consecutive sequences, each padded to its own longest one (what a plain loader does)
padded_plain = sum(
    len(chunk) * int(chunk.max()) - int(chunk.sum())
    for chunk in np.array_split(lens, range(batch_size, n_seq, batch_size))
)
batches = rc.data.bucket_by_length(seqs, batch_size=batch_size)  # sorted by length, then cut
padded_bucketed = sum(int((~b.mask).sum()) for b in batches)
# for training, shuffle: within buckets of similar length ([5, 25), [25, 50), ...) and the batch order
shuffled = rc.data.bucket_by_length(
    seqs, batch_size=batch_size, boundaries=list(range(25, 200, 25)), shuffle=True, seed=0
)
padded_shuffled = sum(int((~b.mask).sum()) for b in shuffled)
for bs in (batches, shuffled):
    assert sorted(np.concatenate([b.index for b in bs]).tolist()) == list(range(n_seq))
real_steps = int(lens.sum())
print(f"{n_seq} sequences, {real_steps} real steps, batches of {batch_size}:")
print(f"  padded to the longest overall : {padded_global:7d} padding steps")
print(f"  per batch, unsorted           : {padded_plain:7d}")
print(f"  bucket_by_length              : {padded_bucketed:7d}")
print(f"  bucket_by_length, shuffled    : {padded_shuffled:7d}  (within 8 length buckets)")
assert padded_bucketed < 0.2 * padded_plain < padded_global
assert padded_shuffled < 0.5 * padded_plain

# %%
fig2, ax2 = plt.subplots(figsize=(6, 3.2))
names = ["longest overall", "per batch, unsorted", "buckets, shuffled", "bucket_by_length"]
vals = [padded_global, padded_plain, padded_shuffled, padded_bucketed]
ax2.barh(names, vals, color=["#c44", "#e93", "#9b4", "#4a4"])
ax2.axvline(real_steps, color="k", ls="--", label="real steps")
ax2.set_xlabel("padding steps")
ax2.legend()
fig2.tight_layout()
plt.close(fig2)  # displayed once, by the next line
fig2

# %%
print(
    f"Answer: without a mask, {P_max} post-padding steps change the final output by up to {post_err:.2e} "
    f"and shrink the gradient reaching the last real step to {attenuation[P_max]:.1e} of its unpadded "
    f"value (pre-padding changes the output by up to {pre_err:.1e}, and by {pre_fresh_err:.1e} with zero "
    f"biases); with the mask the output equals the unpadded one to {mask_err:.0e} and the gradient to a "
    f"relative {mask_grad_err:.0e}, and the masked loss is the mean over the {n_real} real steps only. "
    f"Bucketing by length cuts the padding from {padded_plain} to {padded_bucketed} steps "
    f"({padded_shuffled} with shuffled buckets)."
)
