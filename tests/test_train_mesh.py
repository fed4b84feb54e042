"""rc.fit(..., mesh=...): data-parallel training equals the single-device run."""

import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

import rnncore as rc

HERE = pathlib.Path(__file__).resolve().parent


def _setup():
    x, y = rc.data.adding_problem(20, 5, seed=0)
    model = rc.Sequential([rc.layers.GRU(3), rc.layers.Dense(1)])
    return model, model.init(jax.random.PRNGKey(0), input_shape=(5, 2)), x, y


def test_a_one_device_mesh_gives_the_same_run():
    model, params, x, y = _setup()
    runs = [
        rc.fit(model, params, x, y, optimizer="adam", epochs=2, batch_size=10, verbose=0, mesh=m)
        for m in (None, jax.devices())  # batches of 10: one batch shape, one program per run
    ]
    for a, b in zip(jax.tree_util.tree_leaves(runs[0][0]), jax.tree_util.tree_leaves(runs[1][0])):
        np.testing.assert_array_equal(a, b)
    assert runs[0][1].history == runs[1][1].history


def test_a_bad_mesh_raises():
    model, params, x, y = _setup()
    with pytest.raises(ValueError, match="mesh must be a jax.sharding.Mesh"):
        rc.fit(model, params, x, y, verbose=0, mesh=4)
    with pytest.raises(ValueError, match="non-empty"):
        rc.fit(model, params, x, y, verbose=0, mesh=[])


def _run_on_four_cpu_devices(check: str) -> str:
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


def test_a_small_fit_sharded_over_four_devices_equals_one_device():
    """A GRU trained in float64 on 4 virtual CPU devices, its uneven last batch (4 of 20) sharded too:
    params and loss equal to 1e-12, the mae (accumulated in float32) to 1e-6."""
    out = _run_on_four_cpu_devices("fit-small")
    assert "fit-small ok" in out, out


@pytest.mark.slow
def test_fit_sharded_over_four_devices_equals_one_device():
    """In a fresh process with 4 virtual CPU devices (fixed when JAX initializes): params equal to
    1e-12 in float64 and 2e-5 in float32 (the gradient's sum over the batch is split into per-shard
    sums and an all-reduce, which rounds differently); an uneven last batch; an indivisible batch_size;
    one compiled step; BatchNormalization's statistics over the global batch."""
    out = _run_on_four_cpu_devices("fit")
    assert "indivisible batch_size raises" in out, out
