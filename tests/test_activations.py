"""rnncore.activations against Keras 3's own activations (the oracle shares no code with rnncore)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnncore import activations

# Keras names that are not elementwise: refused for cells.
NOT_ELEMENTWISE = ("softmax", "log_softmax", "glu", "sparsemax", "threshold")


def _inputs(dtype) -> np.ndarray:
    """Negative, positive, small, large values and every kink of the piecewise activations, all
    exactly representable in float32 (so float32 and float64 runs see the same numbers)."""
    rng = np.random.default_rng(0)
    kinks = [0.0, -0.0, 0.5, -0.5, 1.0, -1.0, 3.0, -3.0, 6.0, -6.0, 1e-6, -1e-6, 1e-30, -1e-30]
    big = [15.0, -15.0, 20.0, -20.0, 40.0, -40.0, 80.0, -80.0, 1e4, -1e4]
    x = np.concatenate([rng.normal(size=300) * 3.0, rng.uniform(-60.0, 60.0, size=200), kinks, big])
    return x.astype(np.float32).astype(dtype)


def _same_nonfinite(a, b):
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_array_equal(np.isposinf(a), np.isposinf(b))
    np.testing.assert_array_equal(np.isneginf(a), np.isneginf(b))


def _rel_close(a, b, rtol):
    """Elementwise |a - b| <= rtol |b| (plus the smallest normal for exact zeros); inf/nan must match."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    _same_nonfinite(a, b)
    fin = np.isfinite(b)
    err = np.abs(a[fin] - b[fin])
    bound = rtol * np.abs(b[fin]) + 1e-37
    worst = int(np.argmax(err - bound)) if err.size else 0
    assert np.all(err <= bound), (a[fin][worst], b[fin][worst], err[worst] / max(abs(b[fin][worst]), 1e-37))


def _scale_close(a, b, tol, x=None):
    """Elementwise |a - b| <= tol max(1, |b|, |x|): absolute near zero, relative at the scale of
    the result or of the input (a float32 cancellation loses eps |x|, e.g. squareplus(-1e4))."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    _same_nonfinite(a, b)
    fin = np.isfinite(b)
    scale = np.maximum(1.0, np.abs(b[fin]))
    if x is not None:
        scale = np.maximum(scale, np.abs(np.asarray(x, np.float64))[fin])
    err = np.abs(a[fin] - b[fin]) / scale
    assert err.max(initial=0.0) <= tol, float(err.max())


def test_names_are_the_elementwise_keras_names(keras):
    from keras.src.activations import ALL_OBJECTS_DICT

    keras_names = {n for n, f in ALL_OBJECTS_DICT.items() if n == n.lower()}
    assert set(activations.NAMES) == keras_names - set(NOT_ELEMENTWISE)
    assert activations.NAMES == tuple(sorted(activations.NAMES))


@pytest.mark.parametrize("name", activations.NAMES)
def test_float32_equals_keras(keras, name):
    x = jnp.asarray(_inputs(np.float32))
    theirs = keras.activations.get(name)(x)
    # Compiled, as inside a cell's scan (and as Keras's jitted jax.nn functions run): elementwise
    # relative error, so the far tails count as much as values near 1.
    ours = jax.jit(activations.get(name))(x)
    assert ours.dtype == jnp.float32 and ours.shape == x.shape
    _rel_close(ours, theirs, 1e-6)
    # Eagerly, op by op, rounding may differ by an ulp inside a cancellation (squareplus at x << 0).
    eager = activations.get(name)(x)
    assert eager.dtype == jnp.float32 and eager.shape == x.shape
    _scale_close(eager, theirs, 1e-6)


@pytest.mark.parametrize("name", activations.NAMES)
def test_float64(keras, x64, name):
    x = jnp.asarray(_inputs(np.float64))
    ours = activations.get(name)(x)
    assert ours.dtype == jnp.float64, "float64 in must give float64 out"
    theirs = keras.activations.get(name)(x)
    if theirs.dtype == jnp.float64:
        _rel_close(ours, theirs, 1e-13)
    else:  # Keras's tanh returns float32 under x64; compare against NumPy's float64 instead
        assert name == "tanh", (name, theirs.dtype)
        _rel_close(ours, np.tanh(np.asarray(x)), 1e-13)
    # the same function as in float32, to float32 accuracy
    _scale_close(activations.get(name)(x.astype(jnp.float32)), ours, 1e-6, x)


@pytest.mark.parametrize("name", activations.NAMES)
def test_derivative_equals_keras_including_kinks(keras, name):
    """Gradients (what BPTT and the closed-form Jacobians use) equal Keras's, also at the kinks,
    where a derivative is a convention (relu'(0) = 0 in Keras on JAX)."""
    x = jnp.asarray(_inputs(np.float32)[-24:-10])  # the kinks
    x = jnp.concatenate([x, jnp.asarray(_inputs(np.float32)[:50])])
    ours = jax.vmap(jax.grad(activations.get(name)))(x)
    theirs = jax.vmap(jax.grad(keras.activations.get(name)))(x)
    np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=1e-6, atol=1e-7)


def test_float64_keeps_precision(x64):
    # A float32 computation could not resolve these; float64 must.
    x = jnp.asarray([1e-9, -30.0, 0.3], jnp.float64)
    np.testing.assert_allclose(activations.get("sigmoid")(x), 1.0 / (1.0 + np.exp(-np.asarray(x))), rtol=1e-15)
    np.testing.assert_allclose(activations.get("tanh")(x[:1]), np.tanh(1e-9), rtol=1e-15)
    np.testing.assert_allclose(activations.get("softplus")(x), np.log1p(np.exp(np.asarray(x))), rtol=1e-14)


def test_hard_sigmoid_is_the_keras3_slope():
    # Keras 3 uses relu6(x + 3) / 6 (slope 1/6), not Keras 2's 0.2x + 0.5.
    x = jnp.asarray([-4.0, -3.0, -1.5, 0.0, 1.5, 3.0, 4.0])
    np.testing.assert_allclose(activations.get("hard_sigmoid")(x), [0, 0, 0.25, 0.5, 0.75, 1, 1], atol=1e-7)


def test_none_is_linear():
    assert activations.get(None) is activations.linear
    x = jnp.asarray([-2.0, 0.0, 3.5])
    np.testing.assert_array_equal(activations.get(None)(x), x)


def test_callable_is_returned_as_is():
    def mine(x):
        return 2 * x

    assert activations.get(mine) is mine
    assert activations.get(jax.nn.relu) is jax.nn.relu
    assert activations.name_of(mine) is None
    assert activations.name_of(activations.get("swish")) in ("silu", "swish")
    assert activations.name_of(activations.get("tanh")) == "tanh"


@pytest.mark.parametrize("name", NOT_ELEMENTWISE)
def test_non_elementwise_refused_for_cells(name):
    with pytest.raises(ValueError, match=rf"activation='{name}' is not elementwise"):
        activations.get(name)


@pytest.mark.parametrize("name", ("glu", "sparsemax", "threshold"))
def test_other_non_elementwise_refused_even_for_dense(name):
    with pytest.raises(ValueError, match=rf"'{name}'"):
        activations.get(name, elementwise=False)


@pytest.mark.parametrize("name", ("softmax", "log_softmax"))
def test_last_axis_activations_for_dense(keras, name):
    rng = np.random.default_rng(1)
    x = jnp.asarray((rng.normal(size=(4, 3, 7)) * 5).astype(np.float32))
    ours = activations.get(name, elementwise=False)(x)
    theirs = keras.activations.get(name)(x)
    _rel_close(ours, theirs, 1e-6)
    # over the last axis only
    total = np.exp(np.asarray(ours, np.float64)).sum(-1) if name == "log_softmax" else np.asarray(ours).sum(-1)
    np.testing.assert_allclose(total, 1.0, rtol=1e-5)


def test_elementwise_names_still_work_for_dense():
    assert activations.get("relu", elementwise=False) is activations.get("relu")


@pytest.mark.parametrize("bad", ("tanhh", "Tanh", "", "softmax2"))
def test_unknown_name_is_a_value_error_naming_it(bad):
    with pytest.raises(ValueError, match=rf"activation='{bad}' is not a known activation"):
        activations.get(bad)
    with pytest.raises(ValueError, match=rf"recurrent_activation='{bad}'"):
        activations.get(bad, name="recurrent_activation")


@pytest.mark.parametrize("bad", (3, 1.5, ["tanh"]))
def test_non_string_non_callable_is_a_value_error(bad):
    with pytest.raises(ValueError, match="is not a known activation"):
        activations.get(bad)


@pytest.mark.parametrize("name", activations.NAMES)
def test_derivative_from_output_equals_jax_derivative_including_kinks(x64, name):
    """Where the derivative is a function of the output, that function equals jax.grad of the
    activation at every point, kinks included; every other activation says it has none."""
    fn = activations.get(name)
    from_output = activations.derivative_from_output(fn)
    if name not in ("tanh", "sigmoid", "relu", "linear"):
        assert from_output is None
        return
    a = jnp.concatenate([jnp.linspace(-8.0, 8.0, 401), jnp.array([0.0, -0.0, 1e-30, -1e-30])])
    want = jax.vmap(jax.grad(fn))(a)
    np.testing.assert_allclose(np.asarray(from_output(fn(a))), np.asarray(want), rtol=1e-14, atol=1e-15)
