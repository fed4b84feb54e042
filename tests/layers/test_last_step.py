"""layers.LastStep: x[:, -1] in a Sequential, what it passes on, and what it refuses."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnncore as rc
from rnncore import layers


def test_after_a_bidirectional_layer_it_takes_the_last_position_of_both_halves():
    bi = layers.Bidirectional(layers.GRU(3, return_sequences=True))
    model = rc.Sequential([bi, layers.LastStep()])
    params = model.init(jax.random.PRNGKey(0), (5, 2))
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 5, 2))
    seq = bi.apply(params[0], x)
    np.testing.assert_array_equal(model.apply(params, x), seq[:, -1])
    final = layers.Bidirectional(layers.GRU(3)).apply(params[0], x)  # the backward half differs
    np.testing.assert_array_equal(model.apply(params, x)[:, :3], final[:, :3])
    assert not np.allclose(model.apply(params, x)[:, 3:], final[:, 3:])


def test_it_passes_no_mask_on_and_refuses_a_rank_two_input():
    step = layers.LastStep()
    assert step.compute_mask(jnp.ones((2, 4, 3)), jnp.ones((2, 4), bool)) is None
    assert step.compute_output_shape((None, 3)) == (3,)
    with pytest.raises(ValueError, match=r"LastStep inputs must have shape \(batch, time, ...\) .*got \(2, 3\)"):
        step.apply((), jnp.ones((2, 3)))
