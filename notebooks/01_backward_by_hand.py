# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # How does backpropagation through time actually compute the gradient?
#
# A recurrent network reuses the same weights at every step, so the gradient of a loss spread over
# T steps is a sum over steps, and the gradient reaching a state has to travel back through every
# later step. This notebook writes that backward pass by hand, the way Karpathy's `min-char-rnn`
# does (the `dhnext` loop, in NumPy float64), and then checks it number for number against
# `rc.bptt.backward` and against `jax.grad` of a loss on an `rc.layers.SimpleRNN` layer. The
# `dhnext` it carries from step to step turns out to be the quantity rnncore calls
# `Gradients.states`, $\partial L/\partial s_t$, and the step from one `dhnext` to the next is a
# product with the per-step Jacobian $J_t^\top$.
#
# **The model.** A tanh SimpleRNN (Keras's `SimpleRNNCell`, row vectors) followed by a linear
# read-out, with Keras's mean squared error over every sequence, step and output:
#
# $$a_t = x_t K + b + h_{t-1} R,\qquad h_t = \tanh(a_t),\qquad \hat y_t = h_t V + c,\qquad
#   L = \frac{1}{B\,T\,O}\sum_{b,t,o} (\hat y_{t} - y_{t})^2 .$$
#
# The state is $s_t = h_t$, with $s_0 = 0$.

# %%
import os

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

jax.config.update("jax_enable_x64", True)  # float64: the three computations must agree to rounding

import rnncore as rc

FAST = os.environ.get("RNNCORE_FAST") == "1"
T = 30 if FAST else 100  # sequence length
UNITS = 8 if FAST else 32  # hidden units
B, F, O = 3, 4, 2  # batch, input features, outputs

# %% [markdown]
# Parameters come from rnncore's own Keras initialization (Glorot-uniform kernel, orthogonal
# recurrent kernel) in float64; a small random bias and read-out make the numbers asymmetric, so a
# transposed matrix or a swapped index would show.

# %%
cell = rc.cells.SimpleRNN(UNITS)
p = cell.init(jax.random.PRNGKey(0), input_dim=F, dtype=jnp.float64)  # SimpleRNNParams(kernel, recurrent_kernel, bias)
rng = np.random.default_rng(0)
p = p._replace(bias=jnp.asarray(0.1 * rng.normal(size=UNITS)))
V = rng.normal(size=(UNITS, O)) / np.sqrt(UNITS)  # read-out
c = 0.1 * rng.normal(size=O)
xs = rng.normal(size=(B, T, F))
ys = rng.normal(size=(B, T, O))
K, R, b = (np.asarray(w) for w in p)
print(f"K {K.shape}, R {R.shape}, b {b.shape}, V {V.shape}; x {xs.shape}, targets {ys.shape}")

# %% [markdown]
# ## 1. The backward pass by hand
#
# The forward loop keeps every state. The backward loop walks the steps in reverse. At step t the
# gradient reaching $h_t$ has two sources: the loss at step t through the read-out,
# $\bar y_t = \partial L/\partial \hat y_t\, V^\top$, and everything later, through $h_{t+1}$
# (`dhnext`). Through $\tanh$ it becomes the gradient of the pre-activation,
# `dhraw` $= (1-h_t^2)\odot$ `dh`; every weight used at step t collects its share, and the part
# that flows on to $h_{t-1}$ is `dhraw @ R.T`:
#
# $$\bar h_t = \bar y_t + \bar h^{\text{next}}_t,\qquad \bar a_t = (1-h_t^2)\odot \bar h_t,\qquad
#   \bar K \mathrel{+}= x_t^\top \bar a_t,\quad \bar R \mathrel{+}= h_{t-1}^\top \bar a_t,\quad
#   \bar b \mathrel{+}= \textstyle\sum_b \bar a_t,\qquad \bar h^{\text{next}}_{t-1} = \bar a_t R^\top .$$


# %%
def forward_numpy(K, R, b, V, c, xs):
    hs = np.zeros((B, T + 1, UNITS))  # hs[:, t] = h_t, hs[:, 0] = h_0 = 0
    for t in range(1, T + 1):
        hs[:, t] = np.tanh(xs[:, t - 1] @ K + b + hs[:, t - 1] @ R)
    return hs, hs[:, 1:] @ V + c


def backward_numpy(K, R, b, V, c, xs, ys):
    hs, y_hat = forward_numpy(K, R, b, V, c, xs)
    loss = np.mean((y_hat - ys) ** 2)  # Keras "mse"
    d_yhat = 2.0 * (y_hat - ys) / (B * T * O)  # dL/dy_hat
    dK, dR, db = np.zeros_like(K), np.zeros_like(R), np.zeros_like(b)
    dV, dc = np.einsum("btu,bto->uo", hs[:, 1:], d_yhat), d_yhat.sum(axis=(0, 1))
    dxs = np.zeros_like(xs)
    dy = d_yhat @ V.T  # dL/dh_t through the read-out
    dhnext_all = np.zeros((B, T, UNITS))  # kept to compare: what flows into step t
    dh_all = np.zeros((B, T, UNITS))  # ... and dh at every step
    dhnext = np.zeros((B, UNITS))  # nothing comes after step T
    for t in range(T, 0, -1):
        dhnext_all[:, t - 1] = dhnext
        dh = dy[:, t - 1] + dhnext  # this step's loss + everything later
        dh_all[:, t - 1] = dh
        dhraw = (1.0 - hs[:, t] ** 2) * dh  # through tanh
        dK += xs[:, t - 1].T @ dhraw
        dR += hs[:, t - 1].T @ dhraw
        db += dhraw.sum(axis=0)
        dxs[:, t - 1] = dhraw @ K.T
        dhnext = dhraw @ R.T  # on to h_{t-1}
    return loss, (dK, dR, db, dV, dc), dxs, dhnext_all, dh_all, dhnext, dy


loss_np, grads_np, dxs_np, dhnext_np, dh_np, dh0_np, dy_np = backward_numpy(K, R, b, V, c, xs, ys)
print(f"loss = {loss_np:.6f}")

# %% [markdown]
# ## 2. The same gradient from `rc.bptt.backward`
#
# `rc.bptt.backward(cell, params, xs, d_outputs)` runs the same reverse loop as one `lax.scan`,
# for $L = \sum_t \langle y_t, \bar y_t\rangle$ with `d_outputs` $= \bar y$: the gradient that
# arrives at each output $y_t = h_t$ from outside the recurrence. Here that is `dy`, the read-out's
# share. It returns the parameter gradients, $\partial L/\partial x$, $\partial L/\partial s_0$
# (`initial_state`), and `states[:, t-1]`: the gradient that reaches $s_t$ through every *later*
# step, which is exactly what the hand-written loop calls `dhnext` when it enters step t.

# %%
g = rc.bptt.backward(cell, p, jnp.asarray(xs), d_outputs=jnp.asarray(dy_np))


def max_diff(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


bptt_errors = {
    "kernel": max_diff(g.params.kernel, grads_np[0]),
    "recurrent_kernel": max_diff(g.params.recurrent_kernel, grads_np[1]),
    "bias": max_diff(g.params.bias, grads_np[2]),
    "inputs": max_diff(g.inputs, dxs_np),
    "states vs dhnext": max_diff(g.states, dhnext_np),
    "initial_state": max_diff(g.initial_state.h, dh0_np),
}
scale = max(float(np.max(np.abs(a))) for a in grads_np[:3])
for name, err in bptt_errors.items():
    print(f"rc.bptt.backward vs NumPy loop, {name:17s} max |difference| = {err:.1e}")
print(f"(largest parameter-gradient entry: {scale:.2e}; largest dhnext entry: {np.abs(dhnext_np).max():.2e})")
assert max(bptt_errors.values()) < 1e-12, bptt_errors

# %% [markdown]
# The last two lines are the point: the `dhnext` the hand-written loop carries into step t is, to
# the last bits of float64, `Gradients.states[:, t-1]`, and the `dhnext` left over after step 1 is
# `Gradients.initial_state` $=\partial L/\partial s_0$.
#
# The loop's `dh` adds this step's own output share, $\bar h_t = \bar y_t + $ `dhnext`: the *total*
# derivative $\partial L/\partial s_t$, everything computed from $s_t$. For a whole model,
# `rc.depth.model_state_gradients` (and `rc.analysis.gradient_flow`, which takes its norms) returns
# that total, starting from the model's output gradient. Here the model is the layer plus a
# `Dense` read-out, and its output gradient is $\partial L/\partial \hat y$:

# %%
model = rc.Sequential([rc.layers.SimpleRNN(UNITS, return_sequences=True), rc.layers.Dense(O)])
params = (p, rc.layers.DenseParams(jnp.asarray(V), jnp.asarray(c)))
y_hat = model.apply(params, jnp.asarray(xs))
d_yhat = 2.0 * (y_hat - ys) / (B * T * O)  # Keras "mse", differentiated
total = rc.depth.model_state_gradients(model, params, jnp.asarray(xs), d_yhat)[0]
flow = rc.analysis.gradient_flow(model, params, jnp.asarray(xs), jnp.asarray(ys), loss="mse")
total_error = max_diff(total, dh_np)
flow_error = max(max_diff(flow.state_norms[0], np.linalg.norm(dh_np, axis=-1)), abs(float(flow.loss) - loss_np))
print(f"model_state_gradients vs the loop's dh:           max |difference| = {total_error:.1e}")
print(f"gradient_flow norms and loss vs ||dh||, the loss: max |difference| = {flow_error:.1e}")
assert max(total_error, flow_error) < 1e-12

# %% [markdown]
# ## 3. The same gradient from `jax.grad` of a layer
#
# A third, independent route: write the loss on `rc.layers.SimpleRNN(return_sequences=True)` and a
# read-out in `jax.numpy` and let JAX differentiate it. (The layer's own VJP is
# `rc.bptt.backward`; with `backward_pass="autodiff"` JAX differentiates the forward `lax.scan`
# itself instead, so the two are checked against each other too.)


# %%
def layer_loss(layer):
    def loss(params, V, c, xs, ys):
        h = layer.apply(params, xs)  # (B, T, units)
        return jnp.mean((h @ V + c - ys) ** 2)

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2, 3)))


args = (p, jnp.asarray(V), jnp.asarray(c), jnp.asarray(xs), jnp.asarray(ys))
jax_errors = {}
for backward_pass in ("explicit", "autodiff"):
    layer = rc.layers.SimpleRNN(UNITS, return_sequences=True, backward_pass=backward_pass)
    loss_jax, (dp, dV, dc, dxs) = layer_loss(layer)(*args)
    got = (dp.kernel, dp.recurrent_kernel, dp.bias, dV, dc)
    jax_errors[backward_pass] = max(
        max(max_diff(a, b) for a, b in zip(got, grads_np)), max_diff(dxs, dxs_np), abs(float(loss_jax) - loss_np)
    )
    print(
        f"jax.grad (backward_pass={backward_pass!r}) vs NumPy loop: max |difference| over loss, "
        f"K, R, b, V, c and x = {jax_errors[backward_pass]:.1e}"
    )
assert max(jax_errors.values()) < 1e-12, jax_errors

# %% [markdown]
# ## 4. `dhnext` is a product with the Jacobian
#
# Differentiate one step, $h_t = \tanh(x_t K + b + h_{t-1}R)$, with respect to $h_{t-1}$. In the
# column convention ($J_{ij} = \partial h_{t,i}/\partial h_{t-1,j}$),
#
# $$J_t = \frac{\partial h_t}{\partial h_{t-1}} = \operatorname{diag}(1 - h_t^2)\, R^\top,
#   \qquad\text{so}\qquad \bar h^{\text{next}}_{t-1} = J_t^\top \bar h_t
#   = R\,\big((1-h_t^2)\odot\bar h_t\big),$$
#
# which is `dhraw @ R.T` written for row vectors. Unrolling the recursion, the gradient at $s_k$
# is a sum over every later loss term, each carried back by a product of Jacobians:
#
# $$\frac{\partial L}{\partial s_k} = \sum_{t \ge k} \Big(\frac{\partial s_t}{\partial s_k}\Big)^{\!\top}
#   \bar y_t,\qquad \frac{\partial s_T}{\partial s_k} = J_T J_{T-1}\cdots J_{k+1}.$$
#
# `rc.bptt.step_jacobians` returns every $J_t$ (`J[:, t-1]`), and `rc.bptt.jacobian_products` the
# products to the end, `P[:, k]` $=\partial s_T/\partial s_k$.

# %%
J = rc.bptt.step_jacobians(cell, p, jnp.asarray(xs))  # (B, T, S, S)
P = rc.bptt.jacobian_products(J)  # P[:, k] = ds_T/ds_k
hs_np, _ = forward_numpy(K, R, b, V, c, xs)
J_by_hand = (1.0 - hs_np[:, 1:, :, None] ** 2) * R.T  # diag(1 - h_t^2) R^T
jacobian_error = max_diff(J, J_by_hand)

# one step of the loop: dhnext into step t-1 = J_t^T (dy_t + dhnext into step t)
recursion = np.einsum("btij,bti->btj", np.asarray(J[:, 1:]), dy_np[:, 1:] + np.asarray(g.states[:, 1:]))
recursion_error = max_diff(g.states[:, :-1], recursion)

# a loss on the last output only: what reaches s_k is (ds_T/ds_k)^T dy_T
d_last = np.zeros_like(dy_np)
d_last[:, -1] = dy_np[:, -1]
g_last = rc.bptt.backward(cell, p, jnp.asarray(xs), d_outputs=jnp.asarray(d_last))
chain = np.einsum("bkij,bi->bkj", np.asarray(P), dy_np[:, -1])  # k = 0 .. T-1
chain_error = max(max_diff(g_last.states[:, :-1], chain[:, 1:]), max_diff(g_last.initial_state.h, chain[:, 0]))
print(f"step_jacobians vs diag(1 - h^2) R^T:                  max |difference| = {jacobian_error:.1e}")
print(f"dhnext_(t-1) = J_t^T (dy_t + dhnext_t), every t:       max |difference| = {recursion_error:.1e}")
print(f"last-step loss: gradient at s_k = (J_T...J_(k+1))^T dy_T: max |difference| = {chain_error:.1e}")
assert max(jacobian_error, recursion_error, chain_error) < 1e-12

# %% [markdown]
# ## 5. How much gradient reaches each step
#
# With a loss at every step, $\lVert\partial L/\partial s_t\rVert$ stays of the order of the
# per-step loss gradient: every step gets its own share, whatever happens to the shares from far
# away. The share that comes from the *last* step alone, $(\partial s_T/\partial s_t)^\top\bar y_T$,
# must cross $T-t$ Jacobians, and $\lVert\partial s_T/\partial s_t\rVert$ shrinks geometrically
# with the distance: $\lVert J_t\rVert \le \lVert R\rVert_2\,\max_i (1-h_{t,i}^2) \le 1$ for this
# orthogonal $R$, and in practice well below 1 as soon as the units are driven away from $h=0$.
# That is the vanishing gradient, seen in the very loop that computes the gradient (notebook 03
# takes it further).

# %%
steps = np.arange(1, T + 1)
norm_all = np.linalg.norm(dh_np, axis=-1)  # (B, T): ||dL/ds_t||, total
norm_last = np.linalg.norm(chain[:, 1:], axis=-1)  # from the last step's loss only
norm_last = np.concatenate([norm_last, np.linalg.norm(dy_np[:, -1:], axis=-1)], axis=1)  # t = T: dy_T itself
norm_P = np.linalg.norm(np.asarray(P), ord=2, axis=(-2, -1))  # (B, T): ||ds_T/ds_k||, k = 0..T-1

fig, ax = plt.subplots(figsize=(7.5, 4.2), layout="constrained")
for row in range(B):
    first = row == 0
    ax.semilogy(
        steps,
        norm_all[row],
        color="C0",
        lw=1.5,
        label=r"loss at every step: $\|\partial L/\partial s_t\|$" if first else None,
    )
    ax.semilogy(
        steps,
        norm_last[row],
        color="C3",
        lw=1.5,
        label=r"loss at the last step only: $\|(\partial s_T/\partial s_t)^\top \bar y_T\|$" if first else None,
    )
    ax.semilogy(
        np.arange(0, T),
        norm_P[row],
        color="C2",
        ls="--",
        lw=1,
        label=r"$\|\partial s_T/\partial s_t\|_2$ (jacobian_products)" if first else None,
    )
ax.set_xlabel("step t")
ax.set_ylabel("norm (log scale)")
ax.set_title(f"Gradient reaching each step: tanh SimpleRNN, {UNITS} units, T = {T}, {B} sequences")
ax.legend(fontsize=8)
plt.show()

# %%
decay_last = float(np.exp(np.mean(np.log(norm_last[:, 0] / norm_last[:, -1]))))
spread_all = float(np.exp(np.mean(np.log(norm_all[:, 0] / norm_all[:, -1]))))
rate = float(np.mean(np.log(norm_P[:, 0])) / T)
print(
    f"last-step loss: ||grad at s_1|| / ||grad at s_T|| = {decay_last:.2e} (geometric batch mean); "
    f"log ||ds_T/ds_0|| / T = {rate:.3f} nats per step ({np.exp(rate):.3f}x per step)"
)
print(f"loss at every step: ||dL/ds_1|| / ||dL/ds_T|| = {spread_all:.2f}")
assert decay_last < 1e-2 and spread_all > 100 * decay_last

# %%
worst = max(
    *bptt_errors.values(), *jax_errors.values(), total_error, flow_error, jacobian_error, recursion_error, chain_error
)
print(
    f"Answer: BPTT is the reverse loop dh = dy_t + dhnext, dhraw = (1 - h^2) dh, dhnext = dhraw @ R^T, with "
    f"every weight collecting its share at every step. Written by hand in NumPy float64, it agrees with "
    f"rc.bptt.backward and with jax.grad of a SimpleRNN layer to {worst:.1e} (T = {T}, {UNITS} units). The "
    f"dhnext entering step t is exactly Gradients.states[:, t-1] (what s_t receives from later steps), and "
    f"dh is the total dL/ds_t of model_state_gradients. Each dhnext is one product with J_t^T, so the gradient "
    f"a loss at step T sends to step 1 is carried by J_T...J_2 and here shrinks {1 / decay_last:.1e}x on the "
    f"way back from step {T} to step 1, while with a loss at every step ||dL/ds_1|| stays "
    f"{spread_all:.2g} times ||dL/ds_T||."
)
