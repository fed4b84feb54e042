"""rc.sweeps: N networks in one compiled program equal N calls of rc.analysis, one network each."""

import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnncore as rc
from rnncore import sweeps

HERE = pathlib.Path(__file__).resolve().parent


def _net(stacked, n):
    return jax.tree_util.tree_map(lambda a: a[n], stacked)


class _Compiles:
    """Counts XLA compilations (JAX's backend-compile monitoring event) inside a ``with``."""

    def __enter__(self):
        self.count = 0
        self._listener = lambda event, secs, **kw: setattr(
            self, "count", self.count + (event == "/jax/core/compile/backend_compile_duration")
        )
        jax.monitoring.register_event_duration_secs_listener(self._listener)
        return self

    def __exit__(self, *exc):
        jax.monitoring.unregister_event_duration_listener(self._listener)


def test_gain_sweep_of_64_simple_rnns_equals_64_calls_in_one_program(x64):
    cell = rc.cells.SimpleRNN(6)
    p = cell.init(jax.random.PRNGKey(0), 2, jnp.float64)
    gains = jnp.linspace(0.5, 3.0, 64)
    stacked = jax.vmap(lambda g: p._replace(recurrent_kernel=g * p.recurrent_kernel))(gains)
    xs = jax.random.normal(jax.random.PRNGKey(1), (3, 37, 2), jnp.float64)  # T=37: shapes no other test uses
    with _Compiles() as c:
        lam = sweeps.lyapunov_spectra(cell, stacked, xs, warmup=5)
    assert c.count == 1, c.count  # the whole sweep, frame and initial state included, is one program
    assert lam.shape == (64, 3, 6)
    loop = jnp.stack([rc.analysis.lyapunov_spectrum(cell, _net(stacked, n), xs, warmup=5) for n in range(64)])
    np.testing.assert_allclose(lam, loop, rtol=0, atol=1e-12)
    assert float(lam[0, :, 0].max()) <= np.log(0.5) + 1e-12  # orthogonal kernel at g=0.5: the Pascanu bound
    doubled = jax.tree_util.tree_map(lambda a: 2 * a, stacked)
    with _Compiles() as c:
        sweeps.lyapunov_spectra(cell, doubled, xs, warmup=5)
    assert c.count == 0  # new params, same shapes: no retrace, no recompile


def test_lstm_sweep_with_per_network_inputs_state_and_mask(x64):
    cell = rc.cells.LSTM(2)
    n, b, t, f = 2, 2, 8, 2
    stacked = jax.vmap(lambda k: cell.init(k, f, jnp.float64))(jax.random.split(jax.random.PRNGKey(2), n))
    xs = jax.random.normal(jax.random.PRNGKey(3), (n, b, t, f), jnp.float64)
    h0 = jax.random.normal(jax.random.PRNGKey(4), (n, b, 2), jnp.float64)
    s0 = (h0, 0.5 * h0)
    mask = np.ones((n, b, t), bool)
    mask[1, 0, 5:] = False
    lam = sweeps.lyapunov_spectra(cell, stacked, xs, s0, k=3, warmup=2, mask=mask)
    for i in range(n):
        ref = rc.analysis.lyapunov_spectrum(
            cell, _net(stacked, i), xs[i], (h0[i], 0.5 * h0[i]), k=3, warmup=2, mask=mask[i]
        )
        np.testing.assert_allclose(lam[i], ref, rtol=0, atol=1e-12)
    lags = sweeps.singular_values_by_lag(cell, stacked, xs[0], k=2)
    ends = sweeps.log_norms_to_end(cell, stacked, xs[0])
    js = sweeps.step_jacobians(cell, stacked, xs[0], go_backwards=True)
    for i in range(n):
        p = _net(stacked, i)
        np.testing.assert_allclose(lags[i], rc.analysis.singular_values_by_lag(cell, p, xs[0], k=2), atol=1e-12)
        J = rc.bptt.step_jacobians(cell, p, xs[0])
        np.testing.assert_allclose(ends[i], rc.bptt.log_norms_to_end(J), atol=1e-12)
        np.testing.assert_allclose(js[i], rc.bptt.step_jacobians(cell, p, xs[0], go_backwards=True), atol=1e-14)


def test_a_diverging_network_raises_after_the_run_naming_it_or_comes_back_as_nan():
    cell = rc.cells.SimpleRNN(2, activation="relu", use_bias=False)
    p = cell.init(jax.random.PRNGKey(0), 1)._replace(recurrent_kernel=jnp.eye(2), kernel=jnp.ones((1, 2)))
    stacked = jax.vmap(lambda g: p._replace(recurrent_kernel=g * p.recurrent_kernel))(jnp.array([0.5, 1e30, 1e30]))
    xs = jnp.ones((2, 9, 1))
    with pytest.raises(ValueError, match=r"network 1 \(of N=3.*step t=\d+.*batch row 0"):
        sweeps.lyapunov_spectra(cell, stacked, xs)
    with pytest.raises(ValueError, match=r"network 1 \(of N=3"):
        sweeps.singular_values_by_lag(cell, stacked, xs)
    lam = sweeps.lyapunov_spectra(cell, stacked, xs, on_nonfinite="nan")
    assert np.isnan(lam[1:]).all() and np.isfinite(lam[0]).all()
    np.testing.assert_allclose(lam[0], rc.analysis.lyapunov_spectrum(cell, _net(stacked, 0), xs), atol=1e-6)


def test_bad_arguments_raise_clear_errors():
    cell = rc.cells.GRU(2)
    stacked = sweeps.stack_params([cell.init(jax.random.PRNGKey(i), 3) for i in range(2)])
    xs = jnp.ones((1, 4, 3))
    with pytest.raises(ValueError, match=r"stacked_params.kernel has shape \(3, 6\); expected \(N,\) \+ \(3, 6\)"):
        sweeps.lyapunov_spectra(cell, cell.init(jax.random.PRNGKey(0), 3), xs)
    with pytest.raises(ValueError, match="xs has 3 networks"):
        sweeps.lyapunov_spectra(cell, stacked, jnp.ones((3, 1, 4, 3)))
    with pytest.raises(ValueError, match="xs must be shared"):
        sweeps.log_norms_to_end(cell, stacked, jnp.ones((4, 3)))
    with pytest.raises(ValueError, match="warmup=4"):
        sweeps.lyapunov_spectra(cell, stacked, xs, warmup=4)
    with pytest.raises(ValueError, match="on_nonfinite"):
        sweeps.lyapunov_spectra(cell, stacked, xs, on_nonfinite="ignore")
    with pytest.raises(ValueError, match="mask must have shape"):
        sweeps.lyapunov_spectra(cell, stacked, xs, mask=jnp.ones((2, 2, 4), bool))
    with pytest.raises(ValueError, match="mesh must be"):
        sweeps.lyapunov_spectra(cell, stacked, xs, mesh=3)
    with pytest.raises(ValueError, match="one type"):
        sweeps.stack_params([cell.init(jax.random.PRNGKey(0), 3), rc.cells.LSTM(2).init(jax.random.PRNGKey(0), 3)])


def test_a_one_device_mesh_changes_nothing():
    cell = rc.cells.SimpleRNN(3)
    stacked = sweeps.stack_params([cell.init(jax.random.PRNGKey(i), 2) for i in range(3)])
    xs = jnp.ones((2, 5, 2))
    np.testing.assert_array_equal(
        sweeps.lyapunov_spectra(cell, stacked, xs, mesh=jax.devices()), sweeps.lyapunov_spectra(cell, stacked, xs)
    )


def run_on_four_cpu_devices(check: str) -> None:
    """Run ``tests/multidevice_check.py check`` in a fresh process with 4 virtual CPU devices (the
    device count is fixed when JAX initializes); it asserts inside and exits non-zero on failure."""
    env = dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu", OPENBLAS_NUM_THREADS="1"
    )
    done = subprocess.run(
        [sys.executable, str(HERE / "multidevice_check.py"), check],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_sweeps_sharded_over_four_devices_equal_one_device():
    out = run_on_four_cpu_devices("sweeps")
    assert "sweeps ok" in out, out
