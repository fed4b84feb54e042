"""What the flax nnx tests share: nnx modules with random, asymmetric params, and nnx's own call and
``nnx.grad`` of it as the oracle for rnncore's outputs and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
from conftest import max_rel_err
from flax import nnx

import rnncore as rc

B, T, F = 3, 7, 4
TOL = {"float32": (1e-6, 1e-5), "float64": (1e-12, 1e-12)}
"""(outputs, gradients) bounds on the relative error."""


def inputs(seed=0, dtype="float32", shape=(B, T, F)):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), dtype)


def randomize(module, seed=1, scale=0.5):
    """Every ``nnx.Param`` of ``module`` replaced, in place, by a random normal array of its shape and
    dtype (biases non-zero, every gate different), so that a swapped gate or a transposed kernel
    cannot pass unnoticed. Returns the module."""
    rng = np.random.default_rng(seed)
    state = nnx.state(module, nnx.Param)
    nnx.update(module, jax.tree_util.tree_map(lambda a: jnp.asarray(rng.normal(size=a.shape) * scale, a.dtype), state))
    return module


def _loss(out):
    return sum(jnp.sum(jnp.sin(o)) for o in jax.tree_util.tree_leaves(out))


def parity(module, x, time_major=False):
    """``(output error, gradient error)`` of the converted model against nnx: the outputs (in flax's
    structure, through ``flax_call``), and the gradients of ``sum(sin(outputs))`` with respect to the
    inputs and to every ``nnx.Param`` (rnncore's through the conversion, which is differentiable)."""

    def flax_loss(m, xx):
        out = m(xx)
        return _loss(out), out

    def rnncore_loss(m, xx):
        model, p = rc.from_flax(m)
        out = rc.interop.flax.flax_call(model, p, xx, time_major=time_major)
        return _loss(out), out

    argnums = (0, 1) if jnp.issubdtype(x.dtype, jnp.floating) else 0  # token ids have no gradient

    def run(loss):
        return nnx.jit(nnx.grad(loss, argnums=argnums, has_aux=True))(module, x)

    (g_ours, ours), (g_theirs, theirs) = run(rnncore_loss), run(flax_loss)
    errors = []
    for a_tree, b_tree in ((ours, theirs), (g_ours, g_theirs)):
        assert jax.tree_util.tree_structure(a_tree) == jax.tree_util.tree_structure(b_tree)
        pairs = list(zip(jax.tree_util.tree_leaves(a_tree), jax.tree_util.tree_leaves(b_tree)))
        assert pairs and all(np.shape(a) == np.shape(b) for a, b in pairs)
        errors.append(max(max_rel_err(a, b) for a, b in pairs))
    return tuple(errors)


def check(module, x, time_major=False, dtype="float32"):
    """:func:`parity` within :data:`TOL`; returns the errors."""
    out_err, grad_err = parity(module, x, time_major=time_major)
    bound_out, bound_grad = TOL[dtype]
    assert out_err < bound_out and grad_err < bound_grad, (out_err, grad_err)
    return out_err, grad_err
