"""rnncore.interop.flax.activations: every jax.nn function the converter maps computes exactly what
rnncore's activation of that name computes (values and derivatives, float64, kinks included), and
the others are refused by name."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnncore import activations
from rnncore.interop.flax import activations as A

MAPPED = [(n, getattr(jax.nn, n), rc) for n, rc in A.JAX_NN.items() if hasattr(jax.nn, n)]


@pytest.mark.parametrize("jax_name, fn, name", MAPPED, ids=[m[0] for m in MAPPED])
def test_mapped_functions_equal_rnncore(jax_name, fn, name, x64):
    assert A.rnncore_name(fn) == name
    ours = activations.get(name, elementwise=False)
    x = jnp.concatenate([jnp.linspace(-7.0, 7.0, 141), jnp.array([-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0, 6.0])])
    x = x.reshape(1, -1).astype(jnp.float64)
    np.testing.assert_allclose(ours(x), fn(x), rtol=1e-14, atol=1e-15)
    if name not in ("softmax", "log_softmax"):
        d_ours = jax.vmap(jax.grad(ours))(x[0])
        d_theirs = jax.vmap(jax.grad(fn))(x[0])
        np.testing.assert_allclose(d_ours, d_theirs, rtol=1e-14, atol=1e-15)


def test_rnncore_functions_map_to_their_names():
    assert A.rnncore_name(activations.gelu) == "gelu" and A.rnncore_name(activations.linear) == "linear"
    assert A.flax_function("gelu", "layers[0]", "activation") is activations.gelu  # no jax.nn twin (exact GELU)


@pytest.mark.parametrize("fn", [jax.nn.gelu, jax.nn.leaky_relu, jax.nn.glu, lambda a: a, jnp.sin])
def test_other_functions_are_refused(fn):
    with pytest.raises(ValueError, match=r"layer: gate_fn=.* has no rnncore equivalent; expected an elementwise"):
        A.activation_name(fn, "layer", "gate_fn")


def test_softmax_only_after_dense():
    assert A.activation_name(jax.nn.softmax, "layer", "function", elementwise=False) == "softmax"
    with pytest.raises(ValueError, match=r"activation_fn=softmax has no rnncore equivalent"):
        A.activation_name(jax.nn.softmax, "layer", "activation_fn")
