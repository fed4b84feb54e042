"""rnncore's analyses on a converted flax nnx model, checked against nnx itself (float64):
rc.bptt.step_jacobians against jax.jacfwd of the nnx cell's own call (nnx's carry (c, h) against
rnncore's state (h, c))."""

import jax
import jax.numpy as jnp
import pytest
from conftest import max_rel_err
from covering import only
from flax import nnx
from nnx_oracles import F, inputs, randomize

import rnncore as rc


@pytest.mark.parametrize("name", only(["LSTMCell", "GRUCell"], keep=["LSTMCell"]))  # GRU: test_flax_analysis
def test_step_jacobians_against_nnx_cell(name, x64):
    cell = randomize(getattr(nnx, name)(F, 3, param_dtype=jnp.float64, rngs=nnx.Rngs(0)))
    x = inputs(dtype="float64")
    model, params = rc.from_flax(nnx.RNN(cell))
    J = rc.bptt.step_jacobians(model.layers[0].cell, params[0], x)
    u, lstm = 3, name == "LSTMCell"
    graph, state = nnx.split(cell)

    def step(s, xt):  # one batch row: rnncore's state vector -> rnncore's state vector, through nnx's cell
        carry = (s[u:], s[:u]) if lstm else s
        new, _ = nnx.merge(graph, state)(jax.tree_util.tree_map(lambda a: a[None], carry), xt[None])
        return (jnp.concatenate([new[1], new[0]], axis=-1) if lstm else new)[0]

    s = jnp.zeros((x.shape[0], 2 * u if lstm else u), jnp.float64)
    for t in range(x.shape[1]):
        oracle = jax.vmap(jax.jacfwd(step))(s, x[:, t])
        assert max_rel_err(J[:, t], oracle) < 1e-12, t
        s = jax.vmap(step)(s, x[:, t])
