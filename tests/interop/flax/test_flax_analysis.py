"""rnncore's analyses on a converted flax model, checked against flax itself (float64):
rc.bptt.step_jacobians against jax.jacfwd of flax's cell call (flax's carry (c, h) against rnncore's
state (h, c)), and rc.analysis.gradient_flow against the gradient of flax's loss with respect to
perturbations of each step's carry."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest
from conftest import max_rel_err
from covering import only
from flax_oracles import inputs, random_variables

import rnncore as rc

DT = jnp.float64


def _flax_steps(cell, cell_params, x, taps=None):
    """flax's cell called step by step (the oracle's loop): carries after each step, outputs; ``taps``
    ``(T, ...)`` are added to the carry after each step, and the output read from it (the output is
    the carry's h), so that their gradient is the total dL/ds_t."""
    carry = cell.initialize_carry(jax.random.PRNGKey(0), x[:, 0].shape)
    carries, ys = [], []
    for t in range(x.shape[1]):
        carry, y = cell.apply({"params": cell_params}, carry, x[:, t])
        if taps is not None:
            carry = jax.tree_util.tree_map(lambda c, d: c + d[t], carry, taps)
            y = carry[1] if isinstance(carry, tuple) else carry
        carries.append(carry)
        ys.append(y)
    return carries, jnp.stack(ys, axis=1)


def _as_state(carry):
    """rnncore's state vector (h, c) from flax's carry ((c, h) for an LSTM)."""
    if isinstance(carry, tuple):
        c, h = carry
        return jnp.concatenate([h, c], axis=-1)
    return carry


@pytest.mark.parametrize(
    "cell",
    only(  # the LSTM's carry order by default: test_nnx_analysis
        [nn.SimpleCell(3, param_dtype=DT), nn.LSTMCell(3, param_dtype=DT), nn.GRUCell(3, param_dtype=DT)],
        keep=["GRUCell"],
        ids=["SimpleCell", "LSTMCell", "GRUCell"],
    ),
)
def test_step_jacobians_against_flax_cell(cell, x64):
    module = nn.RNN(cell)
    x = inputs(dtype="float64")
    variables = random_variables(module, x, dtype="float64")
    model, params = rc.from_flax(module, variables)
    layer = model.layers[0]
    J = rc.bptt.step_jacobians(layer.cell, params[0], x)
    cell_params = variables["params"]["cell"]
    carries, _ = _flax_steps(cell, cell_params, x)
    u = cell.features
    prev = [cell.initialize_carry(jax.random.PRNGKey(0), x[:, 0].shape)] + carries[:-1]

    def step(s, xt):  # one batch row: rnncore's state vector -> rnncore's state vector, through flax's cell
        carry = (s[u:], s[:u]) if isinstance(cell, nn.LSTMCell) else s
        new, _ = cell.apply({"params": cell_params}, jax.tree_util.tree_map(lambda a: a[None], carry), xt[None])
        return _as_state(new)[0]

    for t in range(x.shape[1]):
        s_prev = _as_state(prev[t])
        oracle = jax.vmap(jax.jacfwd(step))(s_prev, x[:, t])
        assert max_rel_err(J[:, t], oracle) < 1e-12, t


@pytest.mark.slow
def test_gradient_flow_against_flax(x64):
    cell = nn.LSTMCell(3, param_dtype=DT)
    dense = nn.Dense(2, param_dtype=DT)
    module = nn.Sequential([nn.RNN(cell), dense])
    x = inputs(dtype="float64")
    variables = random_variables(module, x, dtype="float64")
    target = inputs(seed=5, dtype="float64", shape=(3, 7, 2))
    model, params = rc.from_flax(module, variables)

    def loss(y_pred, y):
        return jnp.sum(jnp.sin(y_pred) * y)

    flow = rc.analysis.gradient_flow(model, params, x, target, loss)
    u, (b, t) = 3, x.shape[:2]
    p = variables["params"]

    def flax_loss(taps):
        _, ys = _flax_steps(cell, p["layers_0"]["cell"], x, taps)
        return loss(dense.apply({"params": p["layers_1"]}, ys), target)

    zeros = (jnp.zeros((t, b, u), DT), jnp.zeros((t, b, u), DT))
    d_c, d_h = jax.grad(flax_loss)(zeros)  # dL/dc_t, dL/dh_t: (T, B, u)
    state = jnp.sqrt(jnp.sum(d_h**2, -1) + jnp.sum(d_c**2, -1)).T
    hidden = jnp.sqrt(jnp.sum(d_h**2, -1)).T
    assert max_rel_err(flow.state_norms[0], state) < 1e-12
    assert max_rel_err(flow.hidden_norms[0], hidden) < 1e-12
