"""One check for a Keras model rnncore can represent: ``rc.from_keras`` of it live and from a
``.keras`` file reproduces Keras's outputs, and ``rc.to_keras`` exports it back equal."""

import jax
import numpy as np
from conftest import max_rel_err

import rnncore as rc


def randomize(km, seed=1):
    """Random asymmetric weights; a weight named ``moving_variance`` is made positive."""
    rng = np.random.default_rng(seed)
    weights = []
    for w in km.weights:
        a = (rng.normal(size=tuple(w.shape)) * 0.5 + 0.1).astype(w.dtype)
        if w.name == "moving_variance":
            a = np.abs(a) + 0.3
        weights.append(a)
    km.set_weights(weights)
    return km


def check_keras_model(km, x, tmp_path, input_shape=None, tol=1e-5):
    """Live, file and round trip (exported for Keras's own input shape unless ``input_shape``);
    returns the largest relative output error against Keras. The model read from the file must be
    the live one with bit-equal params, and the exported Keras model must hold bit-equal weights."""
    want = km(x, training=False)
    model, params = rc.from_keras(km)
    ours = model.apply(params, x)
    assert np.shape(ours) == np.shape(want), (np.shape(ours), np.shape(want))
    errs = [max_rel_err(ours, want)]
    path = tmp_path / "m.keras"
    km.save(path)
    file_model, file_params = rc.from_keras(path)
    assert file_model == model
    for a, b in zip(jax.tree_util.tree_leaves(file_params), jax.tree_util.tree_leaves(params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    back = rc.to_keras(model, params, input_shape=input_shape or tuple(km.input_shape[1:]))
    assert [type(lay).__name__ for lay in back.layers] == [type(lay).__name__ for lay in km.layers]
    assert len(back.get_weights()) == len(km.get_weights())
    for a, b in zip(back.get_weights(), km.get_weights()):
        np.testing.assert_array_equal(a, b)
    errs.append(max_rel_err(back(x, training=False), want))
    again, _ = rc.from_keras(back)
    assert again == model
    assert max(errs) <= tol, errs
    return max(errs)


def gradient_errors(km, model, params, x, wrt_x=True, seed=7):
    """Largest relative errors (``rnncore.interop.errors.relative_error``) of the rnncore model against
    the Keras one for ``L = sum(y * v)`` with a fixed random ``v``: ``{"output", "inputs", "weights"}``
    (the gradient with respect to the inputs, and the worst of the gradients with respect to every
    weight, compared in ``get_weights()`` order through ``rc.keras_weights``). Both sides are jitted."""
    import jax.numpy as jnp

    from rnncore.interop.errors import relative_error

    trainable = [v.value for v in km.trainable_variables]
    frozen = [v.value for v in km.non_trainable_variables]
    assert len(trainable) == len(km.get_weights()), "a model with non-trainable weights needs another order"
    y = km(x, training=False)
    v = jnp.asarray(np.random.default_rng(seed).normal(size=np.shape(y)).astype(np.asarray(y).dtype))
    argnums = (0, 1) if wrt_x else 0

    def keras_loss(tv, x):
        return jnp.sum(km.stateless_call(tv, frozen, x, training=False)[0] * v)

    def rc_loss(p, x):
        return jnp.sum(model.apply(p, x) * v)

    kg = jax.jit(jax.grad(keras_loss, argnums=argnums))(trainable, x)
    rg = jax.jit(jax.grad(rc_loss, argnums=argnums))(params, jnp.asarray(x))
    kw, rw = (kg[0], rg[0]) if wrt_x else (kg, rg)
    ours = rc.keras_weights(model, rw)
    assert len(ours) == len(kw)
    errors = {
        "output": relative_error(jax.jit(model.apply)(params, jnp.asarray(x)), y),
        "weights": max(relative_error(a, b) for a, b in zip(ours, kw)),
    }
    if wrt_x:
        errors["inputs"] = relative_error(rg[1], kg[1])
    return errors
