"""``python -m rnncore``: a Keras-parity summary for the three Keras cells.

For SimpleRNN, LSTM and GRU (both reset modes) it builds a small stacked model with random,
asymmetric weights, converts it with :func:`rnncore.to_keras`, runs both on the same padded,
masked batch, and prints the largest relative difference of the outputs and of the gradients of a
scalar loss with respect to every weight and the inputs (Keras through ``stateless_call`` and
``jax.grad``). Needs Keras 3 on the JAX backend (``pip install rnncore[test]``).
"""

from __future__ import annotations

import os
import sys
import time


def _rel(a, b) -> float:
    import numpy as np

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))


def _cases():
    from . import layers as L

    return [
        ("SimpleRNN", lambda: [L.SimpleRNN(6, return_sequences=True), L.SimpleRNN(5, go_backwards=True)]),
        ("LSTM", lambda: [L.LSTM(6, return_sequences=True), L.LSTM(5, go_backwards=True)]),
        ("GRU reset_after=True", lambda: [L.GRU(6, return_sequences=True), L.GRU(5, go_backwards=True)]),
        ("GRU reset_after=False", lambda: [L.GRU(6, return_sequences=True, reset_after=False),
                                           L.GRU(5, reset_after=False, go_backwards=True)]),
        ("Bidirectional LSTM", lambda: [L.Bidirectional(L.LSTM(4, return_sequences=True), merge_mode="concat"),
                                        L.LSTM(5)]),
    ]


def parity_table(seed: int = 0, batch: int = 4, steps: int = 12, features: int = 3):
    """Rows ``(name, output_error, gradient_error)`` against Keras, float32, random weights."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from . import layers as L
    from .keras import keras_weights, to_keras
    from .models import Sequential

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, steps, features)).astype("float32")
    lengths = rng.integers(1, steps + 1, size=batch)
    for b, n in enumerate(lengths):  # post-padding with zeros, masked by a Masking layer
        x[b, n:] = 0.0
    rows = []
    for name, make in _cases():
        model = Sequential([L.Masking(0.0), *make(), L.Dense(2)])
        params = model.init(jax.random.PRNGKey(seed), (steps, features))
        params = jax.tree_util.tree_map(lambda a: jnp.asarray(rng.normal(size=a.shape) * 0.5, a.dtype), params)
        kmodel = to_keras(model, params)

        def loss(p, xx):
            return jnp.sum(jnp.sin(model.apply(p, xx)))

        def kloss(tv, xx):
            y, _ = kmodel.stateless_call(tv, [v.value for v in kmodel.non_trainable_variables], xx)
            return jnp.sum(jnp.sin(y))

        out_err = _rel(model.apply(params, x), kmodel(x))
        gp, gx = jax.grad(loss, argnums=(0, 1))(params, x)
        tv = [v.value for v in kmodel.trainable_variables]
        kgp, kgx = jax.grad(kloss, argnums=(0, 1))(tv, x)
        grad_err = max([_rel(a, b) for a, b in zip(keras_weights(model, gp), kgp)] + [_rel(gx, kgx)])
        rows.append((name, out_err, grad_err))
    return rows


def main(argv=None) -> int:
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import importlib.util

    if importlib.util.find_spec("keras") is None:
        print("python -m rnncore compares rnncore with Keras 3; install it with: pip install 'rnncore[test]'",
              file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    rows = parity_table()
    print("rnncore vs Keras 3 (JAX backend), float32, random weights, masked batch, 2-layer stacks + Dense")
    print(f"{'model':<24} {'max rel. error, outputs':>24} {'max rel. error, gradients':>26}")
    for name, out_err, grad_err in rows:
        print(f"{name:<24} {out_err:>24.2e} {grad_err:>26.2e}")
    worst = max(max(r[1], r[2]) for r in rows)
    print(f"largest error {worst:.2e} ({'within' if worst <= 1e-5 else 'ABOVE'} 1e-5) "
          f"in {time.perf_counter() - t0:.1f} s")
    return 0 if worst <= 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
