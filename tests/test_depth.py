"""The chain through depth (:mod:`rnncore.depth`) runs the model's own forward.

The oracles for :func:`rnncore.depth.model_state_gradients` and
:func:`rnncore.depth.cross_layer_jacobians` (a stacked loop written out, differentiated by
``jax.grad`` and ``jax.jacfwd``) are in ``tests/test_analysis.py``. Here: what the depth module
relies on (``Sequential.run`` is ``apply`` plus a record of what each recurrent layer consumed, zero
taps change nothing and their gradient is the gradient with respect to each layer's outputs), and
that the names which moved out of :mod:`rnncore.bptt` still resolve there, with a warning.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnncore as rc
from rnncore import bptt, compilation, depth, layers, models

B, T, F = 2, 5, 3
MASK = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 1, 0]], bool)


def bidi_model():
    return rc.Sequential(
        [
            layers.Masking(0.0),
            layers.Bidirectional(layers.LSTM(3, return_sequences=True)),
            layers.Dense(4),
            layers.GRU(2, return_sequences=True, return_state=True),
        ]
    )


@pytest.fixture(scope="module")
def model_and_inputs():
    model = bidi_model()
    params = model.init(jax.random.PRNGKey(0), (T, F))
    x = jax.random.normal(jax.random.PRNGKey(1), (B, T, F))
    return model, params, x


def test_run_output_is_apply_and_records_every_recurrent_layer(model_and_inputs):
    model, params, x = model_and_inputs
    run = model.run(params, x, jnp.asarray(MASK))
    want, finals, out_mask = model.apply_with_mask(params, x, jnp.asarray(MASK))
    for got, ref in zip(jax.tree_util.tree_leaves(run.output), jax.tree_util.tree_leaves(want)):
        np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(run.output_mask, out_mask)
    assert isinstance(run, models.ModelRun) and len(run.consumed) == len(model.layers)
    assert run.consumed[0] is None and run.consumed[2] is None
    assert isinstance(run.consumed[1], layers.Directions)
    assert isinstance(run.consumed[1].forward, layers.Consumed)
    assert run.consumed[1].forward.outputs.shape == (B, T, 3)
    assert run.consumed[3].xs.shape == (B, T, 4)
    np.testing.assert_array_equal(run.input_masks[0], MASK)
    assert bool(jnp.all(run.input_masks[1]))  # Masking's own mask: no step of x is all zeros
    for got, ref in zip(jax.tree_util.tree_leaves(run.final_states), jax.tree_util.tree_leaves(finals)):
        np.testing.assert_array_equal(got, ref)
    # the GRU's final state, as the model returns it with return_state
    np.testing.assert_array_equal(run.output[1], run.consumed[3].final_state.h)


def test_zero_taps_change_nothing_and_their_gradient_is_the_outputs_gradient(model_and_inputs):
    model, params, x = model_and_inputs
    run = model.run(params, x)

    def zero(c):
        return (jnp.zeros_like(c.outputs), jax.tree_util.tree_map(jnp.zeros_like, c.final_state))

    taps = (
        None,
        layers.Directions(zero(run.consumed[1].forward), zero(run.consumed[1].backward)),
        None,
        zero(run.consumed[3]),
    )
    tapped = model.run(params, x, taps=taps)
    for got, ref in zip(jax.tree_util.tree_leaves(tapped.output), jax.tree_util.tree_leaves(run.output)):
        np.testing.assert_array_equal(got, ref)

    d_y = jax.random.normal(jax.random.PRNGKey(2), run.output[0].shape)

    def loss(taps):
        return jnp.sum(model.run(params, x, taps=taps).output[0] * d_y)

    d_taps = jax.grad(loss)(taps)
    # the last layer returns its sequence: the gradient with respect to its tap is d_y itself
    np.testing.assert_allclose(d_taps[3][0], d_y, rtol=1e-6)
    assert float(jnp.max(jnp.abs(d_taps[1].backward[0]))) > 0


def test_taps_of_the_wrong_length_are_named(model_and_inputs):
    model, params, x = model_and_inputs
    with pytest.raises(ValueError, match=r"taps must have one entry per layer \(4\); got 1"):
        model.run(params, x, taps=(None,))


def test_is_recurrent_and_is_bidirectional():
    bi = layers.Bidirectional(layers.GRU(2))
    assert layers.is_recurrent(bi) and layers.is_bidirectional(bi)
    assert layers.is_recurrent(layers.SimpleRNN(2)) and not layers.is_bidirectional(layers.SimpleRNN(2))
    assert not layers.is_recurrent(layers.Dense(2)) and not layers.is_recurrent(layers.Masking())


def test_jit_static_compiles_once_per_static_value():
    def scale(x, factor):
        return x * factor

    compiled = compilation.jit_static(scale, factor=2.0)
    assert compiled.func is compilation.jit_static(scale, factor=3.0).func  # one cached jit per (fn, names)
    np.testing.assert_array_equal(compiled(x=jnp.ones(2)), [2.0, 2.0])
    unhashable = compilation.jit_static(scale, factor=[2.0])  # op by op
    assert unhashable.func is scale


@pytest.mark.parametrize(
    "name, new",
    [
        ("model_state_gradients", depth.model_state_gradients),
        ("cross_layer_jacobians", depth.cross_layer_jacobians),
        ("CrossLayerJacobian", depth.CrossLayerJacobian),
        ("Directions", depth.Directions),
        ("merge_directions", layers.merge_directions),
        ("split_bidirectional_state", layers.split_bidirectional_state),
        ("_is_recurrent", layers.is_recurrent),
        ("_is_bidirectional", layers.is_bidirectional),
        ("_jit_static", compilation.jit_static),
        ("_kahan_add", bptt.kahan_add),
    ],
)
def test_moved_names_warn_and_are_the_same_object(name, new):
    with pytest.warns(DeprecationWarning, match=rf"rnncore.bptt.{name} is deprecated; use rnncore\."):
        old = getattr(bptt, name)
    assert old is new
    assert depth.Directions is layers.Directions


def test_the_old_model_forward_is_sequential_run(model_and_inputs):
    model, params, x = model_and_inputs
    with pytest.warns(DeprecationWarning, match=r"use rnncore.models.Sequential.run"):
        old = bptt._model_forward
    got = old(model, params, x, MASK.astype(np.float32), False, None, None, None)
    want = model.run(params, x, jnp.asarray(MASK))
    assert len(got) == 4
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
        np.testing.assert_array_equal(a, b)


def test_unknown_attributes_still_raise():
    with pytest.raises(AttributeError, match="no_such_name"):
        bptt.no_such_name  # noqa: B018
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert callable(bptt.backward)  # the names that stayed do not warn
