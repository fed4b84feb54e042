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
