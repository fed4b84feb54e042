"""Stacked recurrent models written out from the cell equations as plain loops, the oracles for
the chain through time and depth (:mod:`rnncore.analysis` gradient flow, :mod:`rnncore.depth`).

Each loop adds a perturbation ``e`` to a layer's state right after each step, so that ``jax.grad``
or ``jax.jacfwd`` with respect to zero perturbations is the derivative with respect to that state.
"""

import jax.numpy as jnp
import numpy as np

import rnncore as rc
from rnncore import cells, layers

# --- the cells written from their equations ---------------------------------


def sigmoid(a):
    return 1.0 / (1.0 + jnp.exp(-a))


def srnn_step(w, h, x):
    kernel, recurrent, bias = w
    return jnp.tanh(x @ kernel + bias + h @ recurrent)


def lstm_step(w, h, c, x):
    kernel, recurrent, bias = w
    zi, zf, zc, zo = jnp.split(x @ kernel + h @ recurrent + bias, 4, axis=-1)
    c = sigmoid(zf) * c + sigmoid(zi) * jnp.tanh(zc)
    return sigmoid(zo) * jnp.tanh(c), c


def rand(rng, *shape, scale=0.6):
    return jnp.asarray(rng.normal(size=shape) * scale)


# --- stacked models: SimpleRNN -> LSTM -> Dense, with a mask ---------------------------------------

B, T, F = 3, 6, 2
MASK = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0], [0, 1, 1, 0, 1, 1]], bool)


def stack_model():
    return rc.Sequential(
        [layers.SimpleRNN(4, return_sequences=True), layers.LSTM(3, return_sequences=True), layers.Dense(2)]
    )


def stack_params(rng):
    return (
        (rand(rng, F, 4), rand(rng, 4, 4), rand(rng, 4)),
        (rand(rng, 4, 12), rand(rng, 3, 12), rand(rng, 12)),
        (rand(rng, 3, 2), rand(rng, 2)),
    )


def stack_oracle(w, x, mask, e1, e2):
    """The stack as a loop; ``e1 (T, B, 4)``, ``e2 (T, B, 6)`` are added to each layer's state
    right after each step. A masked step carries the state and outputs the ``h`` it carries."""
    w1, w2, (kd, bd) = w
    h1 = jnp.zeros((x.shape[0], 4))
    h2 = c2 = jnp.zeros((x.shape[0], 3))
    outs, states2 = [], []
    for t in range(x.shape[1]):
        m = mask[:, t][:, None]
        h1 = jnp.where(m, srnn_step(w1, h1, x[:, t]), h1) + e1[t]
        nh, nc = lstm_step(w2, h2, c2, h1)
        h2 = jnp.where(m, nh, h2) + e2[t][:, :3]
        c2 = jnp.where(m, nc, c2) + e2[t][:, 3:]
        outs.append(h2 @ kd + bd)
        states2.append(jnp.concatenate([h2, c2], axis=-1))
    return jnp.stack(outs, axis=1), jnp.stack(states2)


def keras_masked_mse(y_pred, y, mask):
    per_step = jnp.mean(jnp.square(y - y_pred), axis=-1)
    return jnp.sum(per_step * mask) / jnp.sum(mask)


def stack_case():
    """The SimpleRNN -> LSTM -> Dense stack: ``(model, params, raw weights, x, mask)`` (float64
    under the ``stack`` fixture of tests/conftest.py)."""
    rng = np.random.default_rng(1)
    w = stack_params(rng)
    model = stack_model()
    params = (cells.SimpleRNNParams(*w[0]), cells.LSTMParams(*w[1]), layers.DenseParams(*w[2]))
    x = rand(rng, B, T, F, scale=1.0)
    return model, params, w, x, jnp.asarray(MASK)


def zeros_e(sizes):
    return [jnp.zeros((T, B, s)) for s in sizes]


# --- a Bidirectional lower layer --------------------------------------------------------------------


def bidi_oracle(w, x, mask, ef, eb, e2, eb_out=None):
    """Bidirectional(SimpleRNN(3, return_sequences)) -> SimpleRNN(2) -> Dense(1), Keras semantics:
    masked outputs of both directions are 0, the backward one runs from the last position and its
    outputs are put back in input order. ``eb[p-1]`` perturbs its state after processing step p;
    ``eb_out[p-1]`` only the output that state emits (not the state carried on)."""
    wf, wb, w2, (kd, bd) = w
    steps = x.shape[1]
    hf = hb = jnp.zeros((x.shape[0], 3))
    yf, yb = [None] * steps, [None] * steps
    for t in range(steps):
        m = mask[:, t][:, None]
        hf = jnp.where(m, srnn_step(wf, hf, x[:, t]), hf) + ef[t]
        yf[t] = jnp.where(m, hf, 0.0)
    for p in range(1, steps + 1):
        pos = steps - p
        m = mask[:, pos][:, None]
        hb = jnp.where(m, srnn_step(wb, hb, x[:, pos]), hb) + eb[p - 1]
        yb[pos] = jnp.where(m, hb if eb_out is None else hb + eb_out[p - 1], 0.0)
    h2 = jnp.zeros((x.shape[0], 2))
    states2 = []
    for t in range(steps):
        m = mask[:, t][:, None]
        h2 = jnp.where(m, srnn_step(w2, h2, jnp.concatenate([yf[t], yb[t]], -1)), h2) + e2[t]
        states2.append(h2)
    return h2 @ kd + bd, jnp.stack(states2)
