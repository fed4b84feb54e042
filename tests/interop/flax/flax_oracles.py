"""What the flax tests share: flax modules with random, asymmetric variables, and flax's own apply
and ``jax.grad`` of it as the oracle for rnncore's outputs and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
from conftest import max_rel_err

import rnncore as rc

B, T, F = 3, 7, 4


def inputs(seed=0, dtype="float32", shape=(B, T, F)):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), dtype)


def random_variables(module, x, seed=1, dtype="float32", scale=0.5):
    """``module.init`` with every array replaced by a random normal one (biases non-zero, every
    gate different), so that a swapped gate or a transposed kernel cannot pass unnoticed."""
    rng = np.random.default_rng(seed)
    variables = module.init(jax.random.PRNGKey(0), x)
    return jax.tree_util.tree_map(lambda a: jnp.asarray(rng.normal(size=a.shape) * scale, dtype), variables)


def _loss(out):
    return sum(jnp.sum(jnp.sin(o)) for o in jax.tree_util.tree_leaves(out))


def parity(module, variables, x, time_major=False):
    """``(output error, gradient error)`` of the converted model against flax: the outputs (in
    flax's structure, through ``flax_call``), and the gradients of ``sum(sin(outputs))`` with respect
    to the inputs and to every flax param (rnncore's through the conversion, which is differentiable).
    One compilation per side: the outputs ride along as ``has_aux``."""

    def flax_loss(params, xx):
        out = module.apply({"params": params}, xx)
        return _loss(out), out

    def rnncore_loss(params, xx):
        model, p = rc.from_flax(module, {"params": params})
        out = rc.interop.flax.flax_call(model, p, xx, time_major=time_major)
        return _loss(out), out

    argnums = (0, 1) if jnp.issubdtype(x.dtype, jnp.floating) else (0,)  # token ids have no gradient

    def run(loss):
        return jax.jit(jax.grad(loss, argnums=argnums, has_aux=True))(variables["params"], x)

    (g_ours, ours), (g_theirs, theirs) = run(rnncore_loss), run(flax_loss)
    errors = []
    for a_tree, b_tree in ((ours, theirs), (g_ours, g_theirs)):
        assert jax.tree_util.tree_structure(a_tree) == jax.tree_util.tree_structure(b_tree)
        pairs = list(zip(jax.tree_util.tree_leaves(a_tree), jax.tree_util.tree_leaves(b_tree)))
        assert all(np.shape(a) == np.shape(b) for a, b in pairs)
        errors.append(max(max_rel_err(a, b) for a, b in pairs))
    return tuple(errors)


TOL = {"float32": 5e-6, "float64": 1e-12}
