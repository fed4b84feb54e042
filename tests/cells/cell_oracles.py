"""Oracles shared by the cell tests; the oracles never call rnncore's own Jacobian code.

* :func:`jacfwd_jacobian`: ``jax.jacfwd`` of the *batched* ``cell.step`` with respect to the whole
  ``(B, S)`` state, written here (not ``cell.jacobian_fallback``). The per-row blocks are the
  per-step Jacobians; the cross-row blocks must vanish.
* :func:`keras_step`: one step of the Keras cell (``keras.layers.LSTMCell`` etc.) on the same
  weights, optionally with given dropout masks injected into Keras's mask cache.
"""

import jax
import jax.numpy as jnp
import numpy as np
from conftest import max_rel_err


def random_params(cell, input_dim, rng, scale=0.7, dtype=np.float64):
    """The cell's params NamedTuple with every array replaced by random asymmetric values."""
    p = jax.eval_shape(lambda k: cell.init(k, input_dim), jax.random.PRNGKey(0))
    return type(p)(*(None if a is None else jnp.asarray((rng.normal(size=a.shape) * scale).astype(dtype)) for a in p))


def random_state(cell, batch, rng, scale=0.8, dtype=np.float64):
    fields = cell.state_type._fields
    return cell.state_type(*(jnp.asarray((rng.normal(size=(batch, cell.units)) * scale).astype(dtype)) for _ in fields))


def _jacfwd(cell, params, state, x, masks):
    n = len(type(state)._fields)

    def step_vec(s):
        new, _ = cell.step(params, type(state)(*jnp.split(s, n, axis=-1)), x, masks)
        return jnp.concatenate(list(new), axis=-1)

    s = jnp.concatenate(list(state), axis=-1)
    full = jax.jacfwd(step_vec)(s)  # (B, S, B, S)
    b = s.shape[0]
    rows = jnp.arange(b)
    per_row = full[rows, :, rows, :]  # (B, S, S)
    off = full * (1.0 - jnp.eye(b, dtype=full.dtype))[:, None, :, None]
    return per_row, off


def jacfwd_jacobian(cell, params, state, x, masks=None):
    """``(J, cross)``: ``J (B, S, S)`` the per-row ∂s_t/∂s_{t-1} with ``s = concat(state fields)``,
    and ``cross`` the largest |entry| coupling two different rows (must be 0)."""
    per_row, off = jax.jit(_jacfwd, static_argnums=0)(cell, params, state, x, masks)
    return per_row, float(jnp.max(jnp.abs(off)))


def _both(cell, params, state, x, masks):
    # one compiled program per configuration: cheaper than op-by-op dispatch of a jacfwd
    ref, off = _jacfwd(cell, params, state, x, masks)
    unmasked = None if masks is None else cell.jacobian(params, state, x)
    return cell.jacobian(params, state, x, masks), ref, off, unmasked


def check_jacobian(cell, params, state, x, masks=None, tol=1e-12):
    """Closed form vs jacfwd; returns the error (asserted below ``tol``)."""
    closed, ref, off, unmasked = jax.jit(_both, static_argnums=0)(cell, params, state, x, masks)
    cross = float(jnp.max(jnp.abs(off)))
    assert cross == 0.0
    assert closed.shape == ref.shape == (x.shape[0], cell.state_size, cell.state_size)
    assert closed.dtype == ref.dtype
    err = max_rel_err(closed, ref)
    assert err < tol, err
    # not vacuous: the Jacobian is far from zero, and dropout masks change it
    assert float(jnp.max(jnp.abs(ref))) > 0.05
    if masks is not None:
        assert max_rel_err(closed, unmasked) > 1e-3
    return err


KERAS_FAST_INIT = dict(kernel_initializer="zeros", recurrent_initializer="zeros")
"""For Keras cells whose weights are replaced or only shaped: skips drawing an orthogonal matrix."""


def keras_step(kcell, weights, x, state, masks=None):
    """One Keras cell step in float32: ``(output, [states])`` as NumPy arrays.

    ``masks`` (rnncore ``DropoutMasks``) are written into Keras's dropout-mask cache and the cell
    is called with ``training=True``; Keras holds one array (``implementation=2``) or a list, one
    per gate (``implementation=1``).
    """
    kcell.build((x.shape[0], x.shape[1]))
    kcell.set_weights([np.asarray(w) for w in weights])
    training = False
    if masks is not None:
        per_gate = getattr(kcell, "dropout_mask_count", None) is not None

        def as_keras(m):
            if m is None:
                return None
            m = np.asarray(m)
            return [jnp.asarray(g) for g in m] if per_gate else jnp.asarray(m[0])

        kcell._dropout_mask = as_keras(masks.inputs)
        kcell._recurrent_dropout_mask = as_keras(masks.recurrent)
        training = True
    out, new = kcell(jnp.asarray(x), [jnp.asarray(s) for s in state], training=training)
    return np.asarray(out), [np.asarray(s) for s in new]
