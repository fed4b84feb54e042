"""The chain through depth (:mod:`rnncore.depth`) runs the model's own forward.

The oracles for :func:`rnncore.depth.model_state_gradients` and
:func:`rnncore.depth.cross_layer_jacobians` are stacked loops written out from the cell equations
(``tests/stacked_oracles.py``), differentiated by ``jax.grad`` and ``jax.jacfwd`` with respect to
perturbations of their states. Also: what the depth module relies on (``Sequential.run`` is
``apply`` plus a record of what each recurrent layer consumed, zero taps change nothing and their
gradient is the gradient with respect to each layer's outputs), and that the names which moved out
of :mod:`rnncore.bptt` still resolve there, with a warning.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import stacked_oracles as so

import rnncore as rc
from rnncore import bptt, cells, compilation, depth, layers, models

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


# --- against the stacked models written out as loops (tests/stacked_oracles.py) -------------------


def test_model_state_gradients_equal_grad_of_state_perturbations(stack):
    model, params, w, x, mask = stack
    d_out = jnp.asarray(np.random.default_rng(2).normal(size=(so.B, so.T, 2)))
    got = depth.model_state_gradients(model, params, x, d_out, mask)
    assert got[2] is None

    def objective(e1, e2):
        return jnp.sum(so.stack_oracle(w, x, mask, e1, e2)[0] * d_out)

    g1, g2 = jax.jit(jax.grad(objective, argnums=(0, 1)))(*so.zeros_e([4, 6]))  # one program, not op by op
    np.testing.assert_allclose(got[0], jnp.swapaxes(g1, 0, 1), rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(got[1], jnp.swapaxes(g2, 0, 1), rtol=1e-11, atol=1e-13)
    # not vacuous: a masked step passes gradient on through the carried state (row 2, steps 1 and
    # 4), while nothing after row 1's last real step depends on its states
    norms = np.linalg.norm(g1, axis=-1)
    assert norms[0, 2] > 1e-3 and norms[3, 2] > 1e-3 and np.all(norms[4:, 1] == 0.0)


def test_cross_layer_jacobians_equal_jacfwd_of_the_stacked_loop(stack):
    model, params, w, x, mask = stack
    (pair,) = depth.cross_layer_jacobians(model, params, x, mask)
    assert (pair.lower, pair.upper) == (0, 1)
    e1, e2 = so.zeros_e([4, 6])
    full = jax.jit(jax.jacfwd(lambda e: so.stack_oracle(w, x, mask, e, e2)[1]))(e1)  # (T, B, 6, T, B, 4): one program
    want = np.stack([[full[t, b, :, t, b, :] for t in range(so.T)] for b in range(so.B)])
    assert pair.jacobian.shape == (so.B, so.T, 6, 4)
    np.testing.assert_allclose(pair.jacobian, want, rtol=1e-11, atol=1e-14)
    assert np.all(np.asarray(pair.jacobian)[~so.MASK] == 0.0)  # masked positions
    assert float(np.min(np.abs(np.asarray(pair.jacobian)[so.MASK]).max(axis=(-1, -2)))) > 1e-2


def test_bidirectional_state_gradients_and_cross_layer(x64):
    rng = np.random.default_rng(5)
    w = (
        (so.rand(rng, so.F, 3), so.rand(rng, 3, 3), so.rand(rng, 3)),
        (so.rand(rng, so.F, 3), so.rand(rng, 3, 3), so.rand(rng, 3)),
        (so.rand(rng, 6, 2), so.rand(rng, 2, 2), so.rand(rng, 2)),
        (so.rand(rng, 2, 1), so.rand(rng, 1)),
    )
    model = rc.Sequential(
        [layers.Bidirectional(layers.SimpleRNN(3, return_sequences=True)), layers.SimpleRNN(2), layers.Dense(1)]
    )
    params = (
        layers.BidirectionalParams(cells.SimpleRNNParams(*w[0]), cells.SimpleRNNParams(*w[1])),
        cells.SimpleRNNParams(*w[2]),
        layers.DenseParams(*w[3]),
    )
    x, mask = so.rand(rng, so.B, so.T, so.F, scale=1.0), jnp.asarray(so.MASK)
    d_out = jnp.asarray([[0.7], [-1.3], [0.4]])
    got = depth.model_state_gradients(model, params, x, d_out, mask)
    e = so.zeros_e([3, 3, 2])
    # the oracles are compiled as one program each (the same loops, not run op by op)
    gf, gb, g2 = jax.jit(jax.grad(lambda *e: jnp.sum(so.bidi_oracle(w, x, mask, *e)[0] * d_out), argnums=(0, 1, 2)))(*e)
    assert isinstance(got[0], depth.Directions)
    np.testing.assert_allclose(got[0].forward, jnp.swapaxes(gf, 0, 1), rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(got[0].backward, jnp.swapaxes(gb, 0, 1), rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(got[1], jnp.swapaxes(g2, 0, 1), rtol=1e-11, atol=1e-14)
    assert float(jnp.max(jnp.abs(gb))) > 1e-2

    (pair,) = depth.cross_layer_jacobians(model, params, x, mask)
    jf = jax.jit(jax.jacfwd(lambda ef: so.bidi_oracle(w, x, mask, ef, e[1], e[2])[1]))(e[0])  # (T, B, 2, T, B, 3)
    # the direct coupling: the backward state at position t perturbs only the output it emits
    # there (its later steps would reach the upper layer at earlier positions, hence earlier upper
    # states, as well); position t is that direction's processing step T - t + 1 (0-based T - 1 - t)
    jb = jax.jit(jax.jacfwd(lambda eo: so.bidi_oracle(w, x, mask, e[0], e[1], e[2], eo)[1]))(e[1])
    want_f = np.stack([[jf[t, b, :, t, b, :] for t in range(so.T)] for b in range(so.B)])
    want_b = np.stack([[jb[t, b, :, so.T - 1 - t, b, :] for t in range(so.T)] for b in range(so.B)])
    np.testing.assert_allclose(pair.jacobian.forward, want_f, rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(pair.jacobian.backward, want_b, rtol=1e-11, atol=1e-14)
    assert float(np.max(np.abs(want_b))) > 1e-2
