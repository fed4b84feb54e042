"""The Conv1D and pooling layer kinds: Sequential models using them load from Keras 3 (live and from
a ``.keras`` file saved on the JAX backend) and reproduce it, export back equal, and refuse what
rnncore does not represent."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import max_rel_err, random_like

import rnncore as rc

B, T, F = 3, 12, 4


def _inputs(seed=0):
    x = np.random.default_rng(seed).normal(size=(B, T, F)).astype("float32")
    x[0, :3] = 0.0  # pre-padded
    x[1, -4:] = 0.0  # post-padded
    return x


def _randomized(km, seed=1):
    km.set_weights(random_like(np.random.default_rng(seed), km.get_weights()))
    return km


def _check_loads(keras, km, tmp_path, x):
    """Live and file loads equal each other and reproduce Keras; returns the largest error."""
    model, params = rc.from_keras(km)
    path = tmp_path / "m.keras"
    km.save(path)
    fmodel, fparams = rc.from_keras(path)
    assert fmodel == model
    for a, b in zip(jax.tree_util.tree_leaves(fparams), jax.tree_util.tree_leaves(params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    err = max_rel_err(jax.jit(model.apply)(params, x), km.predict_on_batch(x))
    assert err < 2e-6, err
    return model, params


def _conv_front_end(keras):
    L = keras.layers
    return keras.Sequential(
        [
            keras.Input((T, F)),
            L.Conv1D(6, 3, padding="causal", dilation_rate=2, activation="relu"),
            L.MaxPooling1D(),
            L.LSTM(5, use_cudnn=False),
            L.Dense(2),
        ]
    )


def _masked_average(keras):
    L = keras.layers
    return keras.Sequential(
        [
            keras.Input((T, F)),
            L.Masking(),
            L.LSTM(5, return_sequences=True, use_cudnn=False),
            L.GlobalAveragePooling1D(),
            L.Dense(2, activation="tanh"),
        ]
    )


def _every_pooling(keras):
    L = keras.layers
    return keras.Sequential(
        [
            keras.Input((T, F)),
            L.Conv1D(4, 4, strides=2, padding="same", groups=2, use_bias=False),
            L.AveragePooling1D(2, strides=1, padding="same"),
            L.MaxPooling1D(3, strides=1, padding="same"),
            L.GRU(3, return_sequences=True, use_cudnn=False),
            L.GlobalMaxPooling1D(keepdims=True),
            L.Conv1D(2, 1),
            L.GlobalAveragePooling1D(),
        ]
    )


MODELS = {"conv_front_end": _conv_front_end, "masked_average": _masked_average, "every_pooling": _every_pooling}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_sequential_loads_and_reproduces_keras(keras, tmp_path, name):
    km = _randomized(MODELS[name](keras))
    model, params = _check_loads(keras, km, tmp_path, _inputs())
    # gradients with respect to the weights, in get_weights() order, equal Keras's
    x = _inputs(5)
    proj = np.random.default_rng(6).normal(size=km.output_shape[1:]).astype("float32")

    def keras_loss(weights):
        y, _ = km.stateless_call(weights, [v.value for v in km.non_trainable_variables], x)
        return jnp.sum(y * proj)

    g_keras = jax.jit(jax.grad(keras_loss))([jnp.asarray(w) for w in km.get_weights()])
    g_ours = jax.jit(jax.grad(lambda p: jnp.sum(model.apply(p, x) * proj)))(params)
    for a, b in zip(rc.keras_weights(model, g_ours), g_keras):
        assert max_rel_err(a, b) < 2e-5


def test_global_average_after_a_masked_lstm_averages_the_real_steps(keras, tmp_path):
    """The mask from Masking reaches GlobalAveragePooling1D through LSTM(return_sequences): a row
    whose padding changes changes nothing."""
    km = _randomized(_masked_average(keras))
    model, params = rc.from_keras(km)
    x = _inputs()
    y = model.apply(params, x)
    x2 = x.copy()
    x2[1, -4:] = 0.0  # already padding: unchanged
    x3 = x.copy()
    x3[1, -4:-3] = 0.5  # a real step where padding was: row 1 changes
    np.testing.assert_array_equal(np.asarray(model.apply(params, x2)), np.asarray(y))
    assert not np.allclose(np.asarray(model.apply(params, x3))[1], np.asarray(y)[1])
    assert max_rel_err(model.apply(params, x3), km(x3)) < 2e-6


def test_conv_and_pooling_round_trip_through_to_keras(keras):
    model = rc.Sequential(
        [
            rc.layers.Conv1D(6, 3, padding="causal", activation="tanh", kernel_initializer="he_uniform"),
            rc.layers.AveragePooling1D(3, strides=2, padding="same"),
            rc.layers.Conv1D(4, 2, dilation_rate=2, groups=2, use_bias=False),
            rc.layers.MaxPooling1D(2, padding="valid"),
            rc.layers.SimpleRNN(3, return_sequences=True),
            rc.layers.GlobalMaxPooling1D(),
            rc.layers.Dense(1),
        ]
    )
    params = model.init(jax.random.PRNGKey(0), (T, F))
    leaves, tree = jax.tree_util.tree_flatten(params)
    params = jax.tree_util.tree_unflatten(tree, [jnp.asarray(a) for a in random_like(np.random.default_rng(2), leaves)])
    km = rc.to_keras(model, params)
    x = _inputs()
    assert max_rel_err(model.apply(params, x), km(x)) < 2e-6
    for a, b in zip(rc.keras_weights(model, params), km.get_weights()):
        np.testing.assert_array_equal(np.asarray(a), b)
    model2, params2 = rc.from_keras(km)
    assert model2 == model
    for a, b in zip(jax.tree_util.tree_leaves(params2), jax.tree_util.tree_leaves(params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_first_conv_kernel_tells_the_input_shape(keras):
    """A model without a declared input shape: the first Conv1D kernel (k, C/groups, filters) tells C."""
    model = rc.Sequential([rc.layers.Conv1D(4, 3, groups=2), rc.layers.LSTM(2)])
    params = model.init(jax.random.PRNGKey(0), (T, 6))
    km = rc.to_keras(model, params)
    assert tuple(km.input_shape) == (None, None, 6)
    x = np.random.default_rng(0).normal(size=(2, T, 6)).astype("float32")
    assert max_rel_err(model.apply(params, x), km(x)) < 2e-6


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda L: L.Conv1D(2, 3, data_format="channels_first"), r"layer 'bad' \(Conv1D\): Conv1D data_format="),
        (lambda L: L.Conv1D(2, 3, kernel_regularizer="l2"), r"kernel_regularizer=.* is not supported"),
        (lambda L: L.Conv1D(2, 3, activity_regularizer="l2"), r"activity_regularizer=.* is not supported"),
        (lambda L: L.MaxPooling1D(2, data_format="channels_first"), "data_format='channels_first' is not supported"),
        (lambda L: L.GlobalAveragePooling1D(data_format="channels_first"), "data_format='channels_first'"),
    ],
)
def test_refuses_what_rnncore_does_not_represent(keras, make, match):
    layer = make(keras.layers)
    layer.name = "bad"
    km = keras.Sequential([keras.Input((T, F)) if "channels_first" not in match else keras.Input((F, T)), layer])
    with pytest.raises(ValueError, match=match):
        rc.from_keras(km)
