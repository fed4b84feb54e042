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
# # What do SimpleRNN, LSTM and GRU compute, exactly, and does rnncore compute what Keras computes?
#
# Textbooks write the three cells in slightly different ways: column or row vectors, the gates in
# different orders inside the fused weight matrices, the GRU's update gate weighting the old state
# or the new one, the reset gate applied before or after the recurrent matrix. Each choice changes
# the numbers a set of weights produces. This notebook writes each cell's step from its equations,
# in plain `jax.numpy`, with Keras 3's conventions, and checks it against rnncore's `cell.step` and
# against the Keras layers themselves (JAX backend) with random, asymmetric weights: weights where
# every gate block differs, so that a swapped gate cannot go unnoticed.
#
# Keras uses **row vectors** (`x @ kernel + h @ recurrent_kernel + bias`) and fuses the gates
# along the last axis of `kernel (F, n·u)`, `recurrent_kernel (u, n·u)` and `bias`.

# %%
import os

os.environ.setdefault("KERAS_BACKEND", "jax")  # before keras is imported

import jax
import jax.numpy as jnp
import keras
import matplotlib.pyplot as plt
import numpy as np

import rnncore as rc

FAST = os.environ.get("RNNCORE_FAST") == "1"
T = 20 if FAST else 60  # sequence length
UNITS = 8 if FAST else 32
B, F = 4, 3  # batch, input features
print("keras", keras.__version__, "backend", keras.backend.backend())

rng = np.random.default_rng(0)
x = rng.normal(size=(B, T, F)).astype("float32")


def random_weights(shapes):
    """Keras-ordered weights (kernel, recurrent_kernel, bias), every entry drawn independently, the
    matrices scaled by 1/sqrt(fan-in) so that the units are driven but not all saturated."""
    return [
        (rng.normal(size=shape) / (np.sqrt(shape[0]) if i < 2 else 2.0)).astype("float32")
        for i, shape in enumerate(shapes)
    ]


def max_err(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


# %% [markdown]
# ## The equations
#
# **SimpleRNN** (Elman 1990): $h_t = \tanh(x_t K + b + h_{t-1}R)$.
#
# **LSTM** (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000), Keras gate order
# $[i, f, c, o]$, $\sigma$ the sigmoid:
#
# $$z = x_t K + h_{t-1}R + b = [z_i\,|\,z_f\,|\,z_c\,|\,z_o],\quad
#   i = \sigma(z_i),\; f = \sigma(z_f),\; g = \tanh(z_c),\; o = \sigma(z_o),$$
# $$c_t = f\odot c_{t-1} + i\odot g,\qquad h_t = o\odot\tanh(c_t).$$
#
# **GRU** (Cho et al. 2014), Keras gate order $[z, r, h]$, `reset_after=True` (Keras's default, the
# cuDNN variant): the reset gate multiplies the recurrent term *after* the matrix, and there are two
# bias rows, $b^{x}$ (input side) and $b^{h}$ (recurrent side):
#
# $$u = h_{t-1}R + b^{h},\quad v = x_t K + b^{x},\quad
#   z = \sigma(v_z + u_z),\; r = \sigma(v_r + u_r),\; \tilde h = \tanh(v_h + r\odot u_h),$$
# $$h_t = z\odot h_{t-1} + (1-z)\odot\tilde h .$$
#
# Keras's $z$ weights the *old* state (as PyTorch's does; some texts swap $z$ and $1-z$).


# %%
def simple_rnn_step(p, h, x):
    return jnp.tanh(x @ p.kernel + p.bias + h @ p.recurrent_kernel)


def lstm_gates(p, h, c, x):
    z = x @ p.kernel + h @ p.recurrent_kernel + p.bias
    zi, zf, zc, zo = jnp.split(z, 4, axis=-1)  # Keras: i, f, c, o
    return jax.nn.sigmoid(zi), jax.nn.sigmoid(zf), jnp.tanh(zc), jax.nn.sigmoid(zo)


def lstm_step(p, state, x):
    h, c = state
    i, f, g, o = lstm_gates(p, h, c, x)
    c = f * c + i * g
    return o * jnp.tanh(c), c


def gru_step(p, h, x):
    v = x @ p.kernel + p.bias[0]  # input side, bias row 0
    u = h @ p.recurrent_kernel + p.bias[1]  # recurrent side, bias row 1
    vz, vr, vh = jnp.split(v, 3, axis=-1)  # Keras: z, r, h
    uz, ur, uh = jnp.split(u, 3, axis=-1)
    z, r = jax.nn.sigmoid(vz + uz), jax.nn.sigmoid(vr + ur)
    hh = jnp.tanh(vh + r * uh)  # reset_after=True: r after R
    return z * h + (1.0 - z) * hh  # Keras: z weights the old state


def run_equations(kind, p, x):
    """Outputs h_1..h_T (B, T, u) of the written-out step, a plain Python loop over time."""
    h = jnp.zeros((x.shape[0], UNITS))
    state = (h, h)
    out = []
    for t in range(x.shape[1]):
        if kind == "LSTM":
            state = lstm_step(p, state, x[:, t])
            out.append(state[0])
        else:
            h = (simple_rnn_step if kind == "SimpleRNN" else gru_step)(p, h, x[:, t])
            out.append(h)
    return jnp.stack(out, axis=1)


# %% [markdown]
# ## Three Keras layers with random weights
#
# Each Keras layer is built with `use_cudnn=False` (the plain scan, the same arithmetic on every
# device) and given random weights with `layer.set_weights`. rnncore's parameter NamedTuples have
# Keras's field names and order, so `rc.cells.LSTMParams(*layer.get_weights())` is the same weights.

# %%
keras_layers = {
    "SimpleRNN": keras.layers.SimpleRNN(UNITS, return_sequences=True),
    "LSTM": keras.layers.LSTM(UNITS, return_sequences=True, use_cudnn=False),
    "GRU": keras.layers.GRU(UNITS, return_sequences=True, use_cudnn=False),  # reset_after=True
}
rc_cells = {"SimpleRNN": rc.cells.SimpleRNN(UNITS), "LSTM": rc.cells.LSTM(UNITS), "GRU": rc.cells.GRU(UNITS)}
params_types = {"SimpleRNN": rc.cells.SimpleRNNParams, "LSTM": rc.cells.LSTMParams, "GRU": rc.cells.GRUParams}
keras_models, params = {}, {}
for name, layer in keras_layers.items():
    km = keras.Sequential([keras.Input((T, F)), layer])
    layer.set_weights(random_weights([w.shape for w in layer.get_weights()]))
    keras_models[name] = km
    params[name] = params_types[name](*(jnp.asarray(w) for w in layer.get_weights()))
    print(
        f"{name:9s} weights: " + ", ".join(f"{f} {tuple(w.shape)}" for f, w in zip(params[name]._fields, params[name]))
    )

# %% [markdown]
# ## Equations against `cell.step` against Keras
#
# Three computations of the same outputs $h_1\ldots h_T$: the equations above; rnncore's
# `cell.step` in a Python loop, and its scanned layer after `rc.from_keras` reads the Keras model
# (architecture and weights); and the Keras layer itself. All in float32, so agreement means
# differences of the order of float32 rounding, about $10^{-7}$ relative, accumulated over T steps.

# %%
errors = {}
for name, km in keras_models.items():
    cell, p = rc_cells[name], params[name]
    eq = run_equations(name, p, jnp.asarray(x))
    state, steps = cell.initial_state(B), []
    for t in range(T):
        state, y = cell.step(p, state, jnp.asarray(x[:, t]))
        steps.append(y)
    by_step = jnp.stack(steps, axis=1)
    model, rc_params = rc.from_keras(km)
    by_layer = model.apply(rc_params, x)
    by_keras = np.asarray(km(x))
    same_weights = max(max_err(a, b) for a, b in zip(rc_params[0], p))
    errors[name] = {
        "equations vs cell.step": max_err(eq, by_step),
        "equations vs Keras": max_err(eq, by_keras),
        "rc.from_keras model vs Keras": max_err(by_layer, by_keras),
        "from_keras weights vs set_weights": same_weights,
    }
    for what, e in errors[name].items():
        print(f"{name:9s} {what:34s} max |difference| = {e:.1e}")
    print(f"{name:9s} (mean |h_t| = {float(np.abs(by_keras).mean()):.2f})")
worst = max(max(e.values()) for e in errors.values())
assert worst < 1e-5, errors

# %% [markdown]
# ## What a wrong convention costs
#
# A constant-initialised test cannot see a swapped gate: if every block of the weights is the same,
# any order gives the same numbers. With these asymmetric weights, each classic slip gives visibly
# different outputs from the same weights:
#
# * the LSTM's blocks read in Haiku's order $[i, g, f, o]$ instead of Keras's $[i, f, c, o]$;
# * the GRU's update gate weighting the *new* state, $h_t = (1-z)\odot h_{t-1} + z\odot\tilde h$;
# * the GRU's reset gate applied *before* the matrix, $\tilde h = \tanh(v_h + (r\odot h_{t-1})R_h)$
#   (Keras's `reset_after=False`, which also has a single bias row).


# %%
def lstm_step_haiku_order(p, state, x):
    h, c = state
    z = x @ p.kernel + h @ p.recurrent_kernel + p.bias
    zi, zg, zf, zo = jnp.split(z, 4, axis=-1)  # i, g, f, o: the wrong order here
    c = jax.nn.sigmoid(zf) * c + jax.nn.sigmoid(zi) * jnp.tanh(zg)
    return jax.nn.sigmoid(zo) * jnp.tanh(c), c


def gru_step_z_on_new(p, h, x):
    v, u = x @ p.kernel + p.bias[0], h @ p.recurrent_kernel + p.bias[1]
    (vz, vr, vh), (uz, ur, uh) = jnp.split(v, 3, axis=-1), jnp.split(u, 3, axis=-1)
    z, r = jax.nn.sigmoid(vz + uz), jax.nn.sigmoid(vr + ur)
    return (1.0 - z) * h + z * jnp.tanh(vh + r * uh)


def gru_step_reset_before(p, h, x):
    v, u = x @ p.kernel + p.bias[0], h @ p.recurrent_kernel + p.bias[1]
    (vz, vr, vh), (uz, ur, _) = jnp.split(v, 3, axis=-1), jnp.split(u, 3, axis=-1)
    z, r = jax.nn.sigmoid(vz + uz), jax.nn.sigmoid(vr + ur)
    hh = jnp.tanh(vh + (r * h) @ p.recurrent_kernel[:, 2 * UNITS :])
    return z * h + (1.0 - z) * hh


def run_step(step, p, x, lstm=False):
    h = jnp.zeros((x.shape[0], UNITS))
    state, out = (h, h), []
    for t in range(x.shape[1]):
        state = step(p, state if lstm else state[0], x[:, t])
        state = state if lstm else (state, state)
        out.append(state[0])
    return jnp.stack(out, axis=1)


slips = {
    "LSTM read in order [i, g, f, o]": max_err(
        run_step(lstm_step_haiku_order, params["LSTM"], x, lstm=True), keras_models["LSTM"](x)
    ),
    "GRU with z weighting the new state": max_err(
        run_step(gru_step_z_on_new, params["GRU"], x), keras_models["GRU"](x)
    ),
    "GRU with the reset before R": max_err(run_step(gru_step_reset_before, params["GRU"], x), keras_models["GRU"](x)),
}
for what, e in slips.items():
    print(f"{what:36s} vs Keras: max |difference| = {e:.2f}   ({e / worst:.0e} x the largest error above)")
assert min(slips.values()) > 1e3 * worst, (slips, worst)

# the same slip under constant weights: every gate block alike, the wrong order is invisible
constant = rc.cells.LSTMParams(*(jnp.full_like(w, 0.1) for w in params["LSTM"]))
blind = max_err(
    run_step(lstm_step_haiku_order, constant, x, lstm=True), run_equations("LSTM", constant, jnp.asarray(x))
)
print(f"with constant weights, the order [i, g, f, o] vs [i, f, c, o]: max |difference| = {blind:.1e}")
assert blind < 1e-6

# %% [markdown]
# ## Inside the LSTM: its gates over time
#
# `rc.bptt.forward(..., keep_gates=True)` keeps every step's gate values (`cell.gate_values`): here
# the Keras LSTM above, on the first sequence. They are the written-out gates too.

# %%
cell, p = rc_cells["LSTM"], params["LSTM"]
tr = rc.bptt.forward(cell, p, jnp.asarray(x), keep_gates=True)
gv = tr.gates  # LSTMGates(z, i, f, g, o, c), (B, T, ·)
h_prev = np.concatenate([np.zeros((B, 1, UNITS), "float32"), np.asarray(tr.outputs[:, :-1])], axis=1)
c_prev = np.asarray(tr.states.c[:, :-1])
gate_err = max_err(jnp.stack(lstm_gates(p, h_prev, c_prev, x)), jnp.stack([gv.i, gv.f, gv.g, gv.o]))
print(f"gate values: written-out equations vs cell.gate_values: max |difference| = {gate_err:.1e}")
assert gate_err < 1e-5
sat = rc.analysis.gate_saturation(cell, p, jnp.asarray(x))
print("saturated fraction per gate:", {k: round(v, 3) for k, v in sat.items()})

panels = [
    ("input gate $i$", gv.i, "viridis", (0, 1)),
    ("forget gate $f$", gv.f, "viridis", (0, 1)),
    ("candidate $g$", gv.g, "RdBu_r", (-1, 1)),
    ("output gate $o$", gv.o, "viridis", (0, 1)),
    ("cell state $c$", gv.c, "RdBu_r", None),
    ("output $h$", tr.outputs, "RdBu_r", (-1, 1)),
]
fig, axes = plt.subplots(2, 4, figsize=(14, 5.6), layout="constrained", gridspec_kw=dict(width_ratios=[1, 1, 1, 1.15]))
for ax, (title, v, cmap, lim) in zip([*axes[0, :3], *axes[1, :3]], panels):
    v = np.asarray(v[0]).T  # (units, T), sequence 0
    if lim is None:
        m = float(np.abs(v).max())
        lim = (-m, m)
    im = ax.imshow(
        v,
        aspect="auto",
        cmap=cmap,
        vmin=lim[0],
        vmax=lim[1],
        interpolation="nearest",
        extent=(0.5, T + 0.5, UNITS - 0.5, -0.5),
    )
    ax.set_title(title)
    ax.set_xlabel("step t")
    ax.set_ylabel("unit")
    fig.colorbar(im, ax=ax, shrink=0.85)
axes[0, 3].plot(np.arange(1, T + 1), x[0], lw=1)
axes[0, 3].set_title("inputs $x_t$ (sequence 0)")
axes[0, 3].set_xlabel("step t")
rc.plot.gate_saturation(sat, ax=axes[1, 3], title="saturated values (whole batch)")
plt.show()

# %%
print(
    f"Answer: written from their equations in jax.numpy (row vectors; LSTM gates [i, f, c, o] with c = f*c + i*g, "
    f"h = o*tanh(c); GRU gates [z, r, h] with the reset after the recurrent matrix and h = z*h + (1-z)*h~), "
    f"SimpleRNN, LSTM and GRU give Keras 3's outputs to {worst:.1e} in float32 ({UNITS} units, T = {T}, random "
    f"asymmetric weights), and so do rnncore's cell.step and its rc.from_keras model; the classic slips (Haiku's "
    f"LSTM gate order, z on the new state, the reset before R) miss Keras by "
    f"{min(slips.values()):.2f} to {max(slips.values()):.2f}."
)
