"""Checks that need several devices, run by the tests in a fresh process started with
``XLA_FLAGS=--xla_force_host_platform_device_count=4`` (the device count is fixed when JAX
initializes). ``python tests/multidevice_check.py sweeps|fit|fit-small`` asserts and exits non-zero on failure."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # the checkout this file is in, not an install

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

jax.config.update("jax_enable_x64", True)

from jax.sharding import Mesh  # noqa: E402

import rnncore as rc  # noqa: E402
from rnncore import steps  # noqa: E402


def check_sweeps():
    assert len(jax.devices()) == 4, jax.devices()
    mesh = Mesh(np.array(jax.devices()), ("networks",))
    cell = rc.cells.LSTM(3)
    stacked = jax.vmap(lambda k: cell.init(k, 2, jnp.float64))(jax.random.split(jax.random.PRNGKey(0), 6))
    xs = jax.random.normal(jax.random.PRNGKey(1), (6, 2, 15, 2), jnp.float64)  # per network; N=6: padded to 8
    one = rc.sweeps.lyapunov_spectra(cell, stacked, xs, warmup=3)
    many = rc.sweeps.lyapunov_spectra(cell, stacked, xs, warmup=3, mesh=mesh)
    err = float(jnp.max(jnp.abs(one - many)))
    assert err <= 1e-12, err
    lags = rc.sweeps.singular_values_by_lag(cell, stacked, xs[0], k=2, mesh=jax.devices())
    lag_err = float(jnp.max(jnp.abs(lags - rc.sweeps.singular_values_by_lag(cell, stacked, xs[0], k=2))))
    assert lag_err <= 1e-12, lag_err
    print(f"sweeps ok: max |sharded - one device| = {err:.3g} (Lyapunov), {lag_err:.3g} (by lag)")


def _fit(mesh, dtype, **kw):
    x, y = rc.data.adding_problem(40, 6, seed=0)
    x, y = np.asarray(x, dtype), np.asarray(y, dtype)
    model = rc.Sequential([rc.layers.LSTM(4, dropout=0.1), rc.layers.Dense(1)])
    params = jax.tree_util.tree_map(lambda a: a.astype(dtype), model.init(jax.random.PRNGKey(1), input_shape=(6, 2)))
    return rc.fit(
        model,
        params,
        x,
        y,
        loss="mse",
        optimizer=rc.optimizers.adam(1e-2),
        metrics=["mae"],
        epochs=2,
        batch_size=8,
        shuffle=True,
        validation_split=0.1,
        verbose=0,
        mesh=mesh,
        **kw,
    )


def check_fit_small():
    """The default suite's check: one float64 run on 4 devices, its uneven last batch sharded too,
    equals the run on one device (params to 1e-12, logs to float32 metric rounding)."""
    assert len(jax.devices()) == 4, jax.devices()
    mesh = Mesh(np.array(jax.devices()), ("batch",))
    x, y = rc.data.adding_problem(20, 5, seed=0)  # batches of 8, 8 and 4
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    model = rc.Sequential([rc.layers.GRU(3), rc.layers.Dense(1)])
    params = jax.tree_util.tree_map(
        lambda a: a.astype(np.float64), model.init(jax.random.PRNGKey(1), input_shape=(5, 2))
    )
    runs = [
        rc.fit(model, params, x, y, optimizer="adam", metrics=["mae"], epochs=2, batch_size=8, verbose=0, mesh=m)
        for m in (None, mesh)
    ]
    (p1, h1), (p4, h4) = runs
    assert p4[0].kernel.sharding.is_fully_replicated and len(p4[0].kernel.sharding.device_set) == 4
    perr = max(
        float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
        for a, b in zip(jax.tree_util.tree_leaves(p1), jax.tree_util.tree_leaves(p4))
    )
    herr = {k: max(abs(u - v) / max(1.0, abs(u)) for u, v in zip(h1.history[k], h4.history[k])) for k in h1.history}
    # metric states accumulate in float32 whatever the params' dtype, as Keras's do
    assert perr <= 1e-12 and all(e <= (1e-12 if "loss" in k else 1e-6) for k, e in herr.items()), (perr, herr)
    print(f"fit-small ok: max |params 4 devices - 1 device| = {perr:.3g}, history {max(herr.values()):.3g}")


def check_fit():
    assert len(jax.devices()) == 4, jax.devices()
    mesh = Mesh(np.array(jax.devices()), ("batch",))
    for dtype, tol in ((np.float64, 1e-12), (np.float32, 2e-5)):
        p1, h1 = _fit(None, dtype)
        p4, h4 = _fit(mesh, dtype)  # 36 training samples: batches of 8 and a last one of 4 (sharded too)
        assert p4[0].kernel.sharding.is_fully_replicated and len(p4[0].kernel.sharding.device_set) == 4
        perr = max(
            float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
            for a, b in zip(jax.tree_util.tree_leaves(p1), jax.tree_util.tree_leaves(p4))
        )
        herr = {k: max(abs(u - v) / max(1.0, abs(u)) for u, v in zip(h1.history[k], h4.history[k])) for k in h1.history}
        # metric states accumulate in float32 whatever the params' dtype, as Keras's do
        assert perr <= tol and all(e <= (tol if "loss" in k else max(tol, 1e-6)) for k, e in herr.items()), (
            dtype,
            perr,
            herr,
        )
        herr = max(herr.values())
        print(f"fit ok {np.dtype(dtype).name}: max |params 4 devices - 1 device| = {perr:.3g}, history {herr:.3g}")
    # a last batch of 6 samples (not a multiple of 4) runs replicated: results unchanged
    x = np.random.default_rng(0).normal(size=(22, 5, 2))
    model = rc.Sequential([rc.layers.GRU(3), rc.layers.Dense(1)])
    params = jax.tree_util.tree_map(
        lambda a: a.astype(np.float64), model.init(jax.random.PRNGKey(2), input_shape=(5, 2))
    )
    runs = [
        rc.fit(model, params, x, x[:, -1, :1], optimizer="sgd", epochs=2, batch_size=8, verbose=0, mesh=m)
        for m in (None, jax.devices())
    ]
    err = max(
        float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
        for a, b in zip(*(jax.tree_util.tree_leaves(r[0]) for r in runs))
    )
    assert err <= 1e-12, err
    try:
        rc.fit(model, params, x, x[:, -1, :1], batch_size=6, verbose=0, mesh=mesh)
    except ValueError as e:
        assert "batch_size=6 must be a multiple of the 4 devices" in str(e), e
    else:
        raise AssertionError("batch_size=6 on 4 devices did not raise")
    # one compiled step: its first call sees the training state laid out as the step returns it
    x, y = rc.data.adding_problem(64, 6, seed=0)
    model = rc.Sequential([rc.layers.LSTM(4), rc.layers.Dense(1)])
    rc.fit(
        model,
        model.init(jax.random.PRNGKey(3), input_shape=(6, 2)),
        x,
        y,
        optimizer="adam",
        epochs=2,
        batch_size=16,
        verbose=0,
        mesh=mesh,
    )
    compiled = next(reversed(steps.COMPILED.values()))._cache_size()
    assert compiled == 1, compiled
    # BatchNormalization: the batch statistics are those of the whole (global) batch, as on one device
    x = np.random.default_rng(1).normal(size=(24, 5, 2))
    model = rc.Sequential(
        [rc.layers.GRU(3, return_sequences=True), rc.layers.BatchNormalization(momentum=0.7), rc.layers.Dense(1)]
    )
    params = jax.tree_util.tree_map(
        lambda a: a.astype(np.float64), model.init(jax.random.PRNGKey(4), input_shape=(5, 2))
    )
    runs = [
        rc.fit(model, params, x, x[:, :, :1], optimizer="adamw", epochs=2, batch_size=8, verbose=0, mesh=m)
        for m in (None, mesh)
    ]
    bn_err = max(
        float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
        for a, b in zip(*(jax.tree_util.tree_leaves(r[0]) for r in runs))
    )
    assert bn_err <= 1e-12 and runs[0][0][1].moving_mean[0] != params[1].moving_mean[0], bn_err
    print(f"fit ok: BatchNormalization over 4 devices {bn_err:.3g}")
    print(f"fit ok: uneven last batch {err:.3g}; indivisible batch_size raises; the step compiled once")


if __name__ == "__main__":
    {"sweeps": check_sweeps, "fit": check_fit, "fit-small": check_fit_small}[sys.argv[1]]()
