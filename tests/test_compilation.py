"""``rc.jit`` and the compile options rnncore's own programs use.

The options change how XLA generates code, never what it computes: a layer's forward and
forward+backward compiled by ``rc.jit`` equal plain ``jax.jit``'s to float32 rounding, for every
cell. The options reach XLA (an unknown one is refused by XLA's own compiler, from ``rc.jit``, from
the training step of ``rc.fit`` and from the analyses of ``rc.bptt``), a width set in ``XLA_FLAGS``
is left alone, and accelerators get none.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from covering import diagonal

import rnncore as rc
from rnncore import compilation

KINDS = ("SimpleRNN", "LSTM", "GRU")
SIZES = {"small": (3, 7, 5, 24), "wide": (32, 20, 8, 128)}  # (batch, time, features, units)
UNKNOWN = {"xla_no_such_option_in_any_xla": 1}


def _model(kind, units=24, **kw):
    return rc.Sequential([getattr(rc.layers, kind)(units, return_sequences=True, **kw)])


@pytest.mark.parametrize("size, kind", diagonal(list(SIZES), KINDS))
def test_rc_jit_equals_jax_jit(size, kind):
    b, t, f, h = SIZES[size]
    model = _model(kind, h)
    params = model.init(jax.random.PRNGKey(1), (t, f))
    x = jax.random.normal(jax.random.PRNGKey(2), (b, t, f))
    w = jax.random.normal(jax.random.PRNGKey(3), (b, t, h))

    def loss(p, x):
        return jnp.sum(w * model.apply(p, x))

    grad = jax.grad(loss, argnums=(0, 1))
    np.testing.assert_allclose(rc.jit(model.apply)(params, x), jax.jit(model.apply)(params, x), rtol=1e-6, atol=1e-6)
    for ours, plain in zip(
        jax.tree_util.tree_leaves(rc.jit(grad)(params, x)), jax.tree_util.tree_leaves(jax.jit(grad)(params, x))
    ):
        scale = float(jnp.max(jnp.abs(plain)))
        np.testing.assert_allclose(ours, plain, rtol=0, atol=1e-6 * max(scale, 1.0))


def test_rc_jit_passes_options_to_xla():
    with pytest.raises(Exception, match="xla_no_such_option_in_any_xla"):
        rc.jit(jnp.sin, compiler_options=UNKNOWN)(jnp.ones(3))


def test_rc_jit_keeps_jax_jit_arguments():
    f = rc.jit(lambda x, n: x * n, static_argnames=("n",))
    assert float(f(jnp.ones(()), n=3)) == 3.0


def test_callers_options_win(monkeypatch):
    calls = []

    def fake_jit(fn, **kw):
        calls.append(kw)
        return fn

    monkeypatch.setattr(compilation, "_cpu_has_avx512", lambda: True)
    monkeypatch.setattr(compilation.jax, "default_backend", lambda: "cpu")
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    monkeypatch.setattr(compilation.jax, "jit", fake_jit)
    compilation.jit(jnp.sin, compiler_options={compilation.VECTOR_WIDTH_OPTION: 256}, donate_argnums=(0,))(1.0)
    assert {"compiler_options": {compilation.VECTOR_WIDTH_OPTION: 256}, "donate_argnums": (0,)} in calls
    calls.clear()
    compilation.jit(jnp.sin)(1.0)
    assert {"compiler_options": {compilation.VECTOR_WIDTH_OPTION: 512}} in calls


def test_options_are_chosen_at_the_first_call(monkeypatch):
    """Wrapping a function does not start JAX's backend: the options are chosen when it first runs."""
    asked = []
    monkeypatch.setattr(compilation, "compiler_options", lambda backend=None: asked.append(1) or {})
    f = compilation.jit(jnp.cos)
    assert not asked
    assert float(f(0.0)) == 1.0 and len(asked) == 1
    f(0.0)
    assert len(asked) == 1


def test_rc_jit_inside_other_transformations():
    """Compile options belong to the outermost program: nested, ``rc.jit`` is plain ``jax.jit``."""
    model = _model("LSTM", 6)
    params = model.init(jax.random.PRNGKey(0), (5, 3))
    x = jax.random.normal(jax.random.PRNGKey(1), (4, 5, 3))
    f = rc.jit(model.apply)
    want = model.apply(params, x)
    np.testing.assert_allclose(jax.jit(lambda p, x: f(p, x))(params, x), want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(jax.vmap(f, in_axes=(None, 0))(params, x[:, None])[:, 0], want, rtol=1e-6, atol=1e-6)
    g = jax.grad(lambda x: jnp.sum(f(params, x) ** 2))(x)
    np.testing.assert_allclose(g, jax.grad(lambda x: jnp.sum(model.apply(params, x) ** 2))(x), rtol=1e-5, atol=1e-6)
    with pytest.raises(Exception, match="xla_no_such_option_in_any_xla"):
        rc.jit(model.apply, compiler_options=UNKNOWN).lower(params, x).compile()


@pytest.mark.parametrize("avx512", [True, False])
def test_cpu_options_follow_the_host(monkeypatch, avx512):
    monkeypatch.setattr(compilation, "_cpu_has_avx512", lambda: avx512)
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false")
    assert compilation.compiler_options("cpu") == ({compilation.VECTOR_WIDTH_OPTION: 512} if avx512 else {})


def test_a_width_set_in_xla_flags_is_left_alone(monkeypatch):
    monkeypatch.setattr(compilation, "_cpu_has_avx512", lambda: True)
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2 --xla_cpu_prefer_vector_width=256")
    assert compilation.compiler_options("cpu") == {}


@pytest.mark.parametrize("backend", ["gpu", "cuda", "rocm", "tpu"])
def test_accelerators_get_no_options(monkeypatch, backend):
    monkeypatch.setattr(compilation, "_cpu_has_avx512", lambda: True)
    assert compilation.compiler_options(backend) == {}


def test_fit_compiles_its_steps_with_rnncores_options(monkeypatch):
    monkeypatch.setattr(compilation, "compiler_options", lambda backend=None: dict(UNKNOWN))
    model = rc.Sequential([rc.layers.SimpleRNN(3), rc.layers.Dense(1)])
    params = model.init(jax.random.PRNGKey(0), (4, 2))
    x, y = np.ones((8, 4, 2), np.float32), np.ones((8, 1), np.float32)
    with pytest.raises(Exception, match="xla_no_such_option_in_any_xla"):
        rc.fit(model, params, x, y, loss="mse", optimizer="sgd", epochs=1, batch_size=4, verbose=0)


def test_bptt_analyses_compile_with_rnncores_options(monkeypatch):
    from rnncore import depth

    monkeypatch.setattr(compilation, "compiler_options", lambda backend=None: dict(UNKNOWN))
    compilation._jitted.cache_clear()
    try:
        model = rc.Sequential([rc.layers.GRU(3)])
        params = model.init(jax.random.PRNGKey(0), (4, 2))
        with pytest.raises(Exception, match="xla_no_such_option_in_any_xla"):
            depth.model_state_gradients(model, params, jnp.ones((2, 4, 2)), jnp.ones((2, 3)))
    finally:
        compilation._jitted.cache_clear()
