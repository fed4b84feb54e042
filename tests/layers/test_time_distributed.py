"""rnncore.layers.TimeDistributed against keras.layers.TimeDistributed (JAX backend)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import max_rel_err
from keras_masks import keras_output_mask
from keras_oracle import keras_run, projection, rc_run

from rnncore import layers

B, T = 3, 4
CASES = [  # (rnncore inner layer, keras inner factory, input shape with batch, masked, training)
    pytest.param(
        layers.Dense(5, activation="tanh"),
        lambda k: k.layers.Dense(5, activation="tanh"),
        (B, T, 3),
        False,
        False,
        marks=pytest.mark.slow,
    ),
    (layers.Dense(2, use_bias=False), lambda k: k.layers.Dense(2, use_bias=False), (B, T, 3), True, False),
    (layers.Dense(2), lambda k: k.layers.Dense(2), (B, T, 2, 3), False, False),
    pytest.param(  # a normalization inside with a mask by default: batchnorm_masked
        layers.LayerNormalization(),
        lambda k: k.layers.LayerNormalization(),
        (B, T, 3),
        True,
        False,
        marks=pytest.mark.slow,
    ),
    pytest.param(
        layers.BatchNormalization(),
        lambda k: k.layers.BatchNormalization(),
        (B, T, 3),
        False,
        True,
        marks=pytest.mark.slow,
    ),
    (
        layers.BatchNormalization(momentum=0.8),
        lambda k: k.layers.BatchNormalization(momentum=0.8),
        (B, T, 3),
        True,
        True,
    ),
    (layers.BatchNormalization(), lambda k: k.layers.BatchNormalization(), (B, T, 3), True, False),
    (layers.Flatten(), lambda k: k.layers.Flatten(), (B, T, 2, 3), False, False),
    pytest.param(
        layers.Activation("softmax"),
        lambda k: k.layers.Activation("softmax"),
        (B, T, 3),
        False,
        False,
        marks=pytest.mark.slow,
    ),
]
IDS = [
    "dense_tanh",
    "dense_no_bias_masked",
    "dense_rank4",
    "layernorm_masked",
    "batchnorm_train",
    "batchnorm_train_masked",
    "batchnorm_masked",
    "flatten",
    "softmax",
]


def randomized(keras_layer, rng):
    weights = [(rng.normal(size=w.shape) * 0.7 + 0.2).astype("float32") for w in keras_layer.get_weights()]
    if type(keras_layer.layer).__name__ == "BatchNormalization":
        weights[-1] = np.abs(weights[-1]) + 0.3
    keras_layer.set_weights(weights)
    return weights


def rc_params(inner, weights):
    if isinstance(inner, layers.Dense):
        return layers.DenseParams(*(jnp.asarray(w) for w in weights), *([None] * (2 - len(weights))))
    if isinstance(inner, layers.LayerNormalization):
        return layers.LayerNormalizationParams(*(jnp.asarray(w) for w in weights))
    if isinstance(inner, layers.BatchNormalization):
        return layers.BatchNormalizationParams(*(jnp.asarray(w) for w in weights))
    return ()


@pytest.mark.parametrize("inner,keras_inner,shape,masked,training", CASES, ids=IDS)
def test_matches_keras(keras, inner, keras_inner, shape, masked, training):
    rng = np.random.default_rng(51)
    k = keras.layers.TimeDistributed(keras_inner(keras))
    k.build(shape)
    weights = randomized(k, rng)
    x = (rng.normal(size=shape) * 1.3 + 0.4).astype("float32")
    mask = (rng.random(shape[:2]) < 0.7) if masked else None
    call = {"training": training} if mask is None else {"training": training, "mask": mask}
    ky, kgx, kgw, k_frozen = keras_run(k, x, **call)
    r = layers.TimeDistributed(inner)
    p = rc_params(inner, weights)
    ry, rgx, rgp = rc_run(r, p, jnp.asarray(x), **call)
    assert ry.shape == ky.shape and r.compute_output_shape(shape[1:]) == tuple(k.compute_output_shape(shape)[1:])
    assert max_rel_err(ry, ky) <= 1e-6
    assert max_rel_err(rgx, kgx) <= 1e-5
    got = [g for g in jax.tree_util.tree_leaves(rgp)][: len(kgw)]
    assert len(kgw) == len([w for w in k.trainable_weights])
    for a, b in zip(got, kgw):
        assert max_rel_err(a, b) <= 1e-5
    if training and k_frozen:
        updated = r.moving_statistics(p, x, mask)
        assert max_rel_err(updated.moving_mean, k_frozen[0]) <= 1e-6
        assert max_rel_err(updated.moving_variance, k_frozen[1]) <= 1e-6
    if masked:
        np.testing.assert_array_equal(np.asarray(r.compute_mask(x, mask)), keras_output_mask(k, x, mask))


def test_init_is_the_inner_layers_params_for_one_step(keras):
    r = layers.TimeDistributed(layers.Dense(4))
    p = r.init(jax.random.PRNGKey(0), (None, 3))
    assert isinstance(p, layers.DenseParams) and p.kernel.shape == (3, 4)
    assert r.compute_output_shape((None, 3)) == (None, 4)


def test_float64_equals_a_loop_over_steps(x64):
    rng = np.random.default_rng(52)
    inner = layers.Dense(3, activation="tanh")
    p = layers.DenseParams(jnp.asarray(rng.normal(size=(2, 3))), jnp.asarray(rng.normal(size=3)))
    x = rng.normal(size=(2, 5, 2))
    y = layers.TimeDistributed(inner).apply(p, jnp.asarray(x))
    want = np.stack([np.tanh(x[:, t] @ np.asarray(p.kernel) + np.asarray(p.bias)) for t in range(5)], axis=1)
    assert max_rel_err(y, want) <= 1e-14


def test_noise_inside_differs_per_step():
    r = layers.TimeDistributed(layers.GaussianNoise(0.5))
    y = r.apply((), jnp.zeros((2, 3, 4)), training=True, rng=jax.random.PRNGKey(0))
    assert not np.allclose(np.asarray(y[:, 0]), np.asarray(y[:, 1]))


def test_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match=r"TimeDistributed layer=3; expected an rnncore layer"):
        layers.TimeDistributed(3)
    r = layers.TimeDistributed(layers.Dense(2))
    with pytest.raises(
        ValueError, match=r"TimeDistributed inputs must have shape \(batch, time, ...\); got shape \(2, 3\)"
    ):
        r.apply(layers.DenseParams(jnp.ones((3, 2))), jnp.ones((2, 3)))
    with pytest.raises(ValueError, match=r"TimeDistributed mask has shape \(2, 4\); expected"):
        r.apply(layers.DenseParams(jnp.ones((3, 2))), jnp.ones((2, 3, 3)), mask=jnp.ones((2, 4), bool))
    with pytest.raises(ValueError, match=r"TimeDistributed input_shape=\(3,\); expected \(time, ...\)"):
        r.init(jax.random.PRNGKey(0), (3,))
    with pytest.raises(ValueError, match=r"TimeDistributed\(Dense\) has no moving statistics"):
        r.moving_statistics(None, jnp.ones((2, 3, 3)))


# --- recurrent layers inside: (batch, outer, inner, features) -------------------------------------------

OUTER, INNER, F = 3, 5, 4  # outer steps, inner steps, features


def _nested_inputs(shape, rng, dtype="float32"):
    """Inputs and a mask over every axis but the features: some inner steps masked, the whole of one
    outer step of batch row 1 masked, and one batch row unmasked."""
    x = (rng.normal(size=shape) * 1.1 + 0.2).astype(dtype)
    mask = rng.random(shape[:-1]) < 0.7
    mask[0] = True
    mask[1, 0] = False
    return x, mask


RECURRENT_CASES = {
    "lstm_last": (
        lambda: layers.TimeDistributed(layers.LSTM(3)),
        lambda k: k.layers.TimeDistributed(k.layers.LSTM(3, use_cudnn=False)),
        (B, OUTER, INNER, F),
    ),
    "gru_sequences_backwards": (
        lambda: layers.TimeDistributed(
            layers.GRU(2, return_sequences=True, go_backwards=True, reset_after=False, activation="relu")
        ),
        lambda k: k.layers.TimeDistributed(
            k.layers.GRU(
                2, return_sequences=True, go_backwards=True, reset_after=False, activation="relu", use_cudnn=False
            )
        ),
        (B, OUTER, INNER, F),
    ),
    "bidirectional": (
        lambda: layers.TimeDistributed(layers.Bidirectional(layers.SimpleRNN(2, return_sequences=True), "ave")),
        lambda k: k.layers.TimeDistributed(k.layers.Bidirectional(k.layers.SimpleRNN(2, return_sequences=True), "ave")),
        (B, OUTER, INNER, F),
    ),
    "nested": (
        lambda: layers.TimeDistributed(layers.TimeDistributed(layers.LSTM(2, unroll=True))),
        lambda k: k.layers.TimeDistributed(k.layers.TimeDistributed(k.layers.LSTM(2, unroll=True, use_cudnn=False))),
        (B, 2, OUTER, INNER, F),
    ),
}


def _inner_recurrent_params(r, weights):
    """rnncore params of a TimeDistributed (of a TimeDistributed ...) of a recurrent layer or a
    Bidirectional one, from the Keras weights in get_weights() order."""
    inner = r.layer
    while isinstance(inner, layers.TimeDistributed):
        inner = inner.layer
    w = [jnp.asarray(a) for a in weights]
    if isinstance(inner, layers.Bidirectional):
        typ = inner.forward_layer.cell.params_type
        return layers.BidirectionalParams(typ(*w[:3]), typ(*w[3:]))
    return inner.cell.params_type(*w)


# slow checks all: the default run compares a Bidirectional(GRU) inside with Keras's, with gradients, in
# tests/interop/test_wrapper_kinds.py, and a GRU inside there too
SLOW = set(RECURRENT_CASES)


@pytest.mark.parametrize(
    "case", [pytest.param(c, marks=[pytest.mark.slow] if c in SLOW else []) for c in RECURRENT_CASES]
)
def test_recurrent_layers_inside_match_keras(keras, case):
    make, keras_make, shape = RECURRENT_CASES[case]
    rng = np.random.default_rng(53)
    k = keras_make(keras)
    k.build(shape)
    weights = randomized(k, rng)
    x, mask = _nested_inputs(shape, rng)
    ky, kgx, kgw, _ = keras_run(k, x, mask=mask)
    r = make()
    ry, rgx, rgp = _jit_run(r, _inner_recurrent_params(r, weights), jnp.asarray(x), mask)
    assert ry.shape == ky.shape and r.compute_output_shape(shape[1:]) == tuple(k.compute_output_shape(shape)[1:])
    errors = [max_rel_err(ry, ky), max_rel_err(rgx, kgx)]
    leaves = jax.tree_util.tree_leaves(rgp)
    assert len(leaves) == len(kgw)
    errors += [max_rel_err(a, b) for a, b in zip(leaves, kgw)]
    assert errors[0] <= 1e-6 and max(errors[1:]) <= 1e-5, errors
    # Keras passes the mask on unchanged, (batch, outer, inner) even where one vector per outer step comes out
    np.testing.assert_array_equal(np.asarray(r.compute_mask(x, mask)), keras_output_mask(k, x, mask))


def _jit_run(r, params, x, mask):
    """keras_oracle.rc_run (the same projection), jitted: ``(y, dL/dx, dL/dparams)``."""
    y = jax.jit(lambda p, x: r.apply(p, x, mask=mask))(params, x)
    cot = projection(y.shape, dtype=y.dtype)
    grads = jax.jit(jax.grad(lambda p, x: jnp.sum(r.apply(p, x, mask=mask) * cot), argnums=(0, 1)))(params, x)
    return y, grads[1], grads[0]


def _loop_oracle(r, p, x, mask):
    """TimeDistributed as a Python loop over the outer steps (and, nested, over the next axis too)."""
    if not isinstance(r, layers.TimeDistributed):
        return r.apply(p, x, mask=mask)
    return jnp.stack([_loop_oracle(r.layer, p, x[:, t], mask[:, t]) for t in range(x.shape[1])], axis=1)


# slow checks all: TimeDistributed's float64 oracle by default is test_float64_equals_a_loop_over_steps, and
# recurrent layers inside it (masks over both axes, gradients) meet Keras by default in
# tests/interop/test_wrapper_kinds.py
@pytest.mark.slow
@pytest.mark.parametrize("case", list(RECURRENT_CASES))
def test_recurrent_layers_inside_float64_equal_a_loop_over_outer_steps(x64, case):
    make, _, shape = RECURRENT_CASES[case]
    rng = np.random.default_rng(54)
    r = make()
    p = jax.tree_util.tree_map(
        lambda a: jnp.asarray(rng.normal(size=a.shape) * 0.6 + 0.1),
        r.init(jax.random.PRNGKey(0), shape[1:], jnp.float64),
    )
    x, mask = _nested_inputs(shape, rng, "float64")
    x = jnp.asarray(x)
    cot = jnp.asarray(rng.normal(size=(B,) + r.compute_output_shape(shape[1:])))

    def value_and_grads(f):
        return jax.jit(jax.value_and_grad(lambda p, x: jnp.sum(f(p, x) * cot), argnums=(0, 1)))(p, x)

    y = jax.jit(lambda p, x: r.apply(p, x, mask=mask))(p, x)
    assert y.dtype == jnp.float64
    assert max_rel_err(y, jax.jit(lambda p, x: _loop_oracle(r, p, x, mask))(p, x)) <= 1e-12
    ours = value_and_grads(lambda p, x: r.apply(p, x, mask=mask))
    want = value_and_grads(lambda p, x: _loop_oracle(r, p, x, mask))
    for a, b in zip(jax.tree_util.tree_leaves(ours), jax.tree_util.tree_leaves(want)):
        assert max_rel_err(a, b) <= 1e-12


def test_layers_with_several_outputs_or_state_are_refused_inside():
    for inner, what in (
        (layers.LSTM(2, return_state=True), r"LSTM\(return_state=True\)"),
        (layers.Bidirectional(layers.GRU(2), merge_mode=None), r"Bidirectional\(merge_mode=None\)"),
        (layers.SimpleRNN(2, stateful=True), r"SimpleRNN\(stateful=True\)"),
    ):
        with pytest.raises(ValueError, match=r"TimeDistributed layer=" + what + r"; expected a layer that returns one"):
            layers.TimeDistributed(inner)
