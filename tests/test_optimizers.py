"""rnncore.optimizers equals Keras 3's optimizers step for step, clipping and schedules included."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rnncore import optimizers

SHAPES = {"kernel": (3, 4), "bias": (4,), "recurrent": (4, 4, 2)}
N_STEPS = 10
RTOL = 1e-6


def _problem(scale=1.0, seed=0):
    rng = np.random.default_rng(seed)
    params = {k: rng.normal(size=s).astype(np.float32) for k, s in SHAPES.items()}
    grads = [{k: (scale * rng.normal(size=s)).astype(np.float32) for k, s in SHAPES.items()} for _ in range(N_STEPS)]
    return params, grads


def _run_ours(opt, params, grads):
    p = jax.tree_util.tree_map(jnp.asarray, params)
    state = opt.init(p)
    update = jax.jit(opt.update)
    for g in grads:
        u, state = update(g, state, p)
        p = optax.apply_updates(p, u)
    return p


def _run_keras(keras, opt, params, grads):
    names = sorted(params)
    variables = [keras.Variable(params[k], name=k) for k in names]
    for g in grads:
        opt.apply_gradients(zip([g[k] for k in names], variables))
    return {k: np.asarray(v.value) for k, v in zip(names, variables)}


def _max_rel(ours, theirs):
    """Largest |ours - theirs| relative to each variable's scale (max |theirs| over the array). Elementwise
    relative error is not used: an element the updates carry across zero keeps the absolute rounding of the
    O(1) values it passed through (an ulp or so, from XLA fusing the jitted step differently from Keras's
    eager ops), which an elementwise measure would blow up without bound."""
    return max(float(np.max(np.abs(np.asarray(ours[k]) - theirs[k])) / np.max(np.abs(theirs[k]))) for k in theirs)


def _compare(keras, ours, theirs, scale=1.0):
    params, grads = _problem(scale)
    got = _run_ours(ours, params, grads)
    want = _run_keras(keras, theirs, params, grads)
    err = _max_rel(got, want)
    assert err <= RTOL, err
    return params, grads, want


CASES = {
    "adam": (dict(), "Adam"),
    "adam_args": (dict(learning_rate=0.01, beta_1=0.8, beta_2=0.95, epsilon=1e-4), "Adam"),
    "adam_amsgrad": (dict(learning_rate=0.02, amsgrad=True), "Adam"),
    "adam_wd": (dict(learning_rate=0.02, weight_decay=0.1), "Adam"),
    "adamw": (dict(), "AdamW"),
    "adamw_args": (dict(learning_rate=0.03, weight_decay=0.2, beta_1=0.7, amsgrad=True, epsilon=1e-3), "AdamW"),
    "rmsprop": (dict(), "RMSprop"),
    "rmsprop_args": (dict(learning_rate=0.01, rho=0.8, epsilon=1e-3), "RMSprop"),
    "rmsprop_momentum": (dict(learning_rate=0.01, momentum=0.7), "RMSprop"),
    "rmsprop_centered": (dict(learning_rate=0.01, centered=True), "RMSprop"),
    "rmsprop_centered_momentum": (dict(learning_rate=0.01, centered=True, momentum=0.5, rho=0.95), "RMSprop"),
    "sgd": (dict(), "SGD"),
    "sgd_momentum": (dict(learning_rate=0.05, momentum=0.9), "SGD"),
    "sgd_nesterov": (dict(learning_rate=0.05, momentum=0.8, nesterov=True), "SGD"),
    "adagrad": (dict(), "Adagrad"),
    "adagrad_args": (dict(learning_rate=0.1, initial_accumulator_value=0.5, epsilon=1e-3), "Adagrad"),
}
OURS = {
    "Adam": optimizers.adam,
    "AdamW": optimizers.adamw,
    "RMSprop": optimizers.rmsprop,
    "SGD": optimizers.sgd,
    "Adagrad": optimizers.adagrad,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_keras(keras, case):
    kwargs, cls = CASES[case]
    _compare(keras, OURS[cls](**kwargs), getattr(keras.optimizers, cls)(**kwargs))


@pytest.mark.parametrize("cls", ["Adam", "RMSprop", "SGD", "Adagrad", "AdamW"])
@pytest.mark.parametrize("mode, value", [("clipnorm", 0.5), ("global_clipnorm", 1.0), ("clipvalue", 0.3)])
def test_clipping_matches_keras(keras, cls, mode, value):
    kwargs = {mode: value, "learning_rate": 0.05}
    if cls == "SGD":
        kwargs["momentum"] = 0.5
    params, grads, want = _compare(keras, OURS[cls](**kwargs), getattr(keras.optimizers, cls)(**kwargs), scale=3.0)
    # the clipping acted: every gradient exceeds the clip, and without it the result differs
    if mode == "clipnorm":
        assert all(np.linalg.norm(g[k]) > value for g in grads for k in g)
    elif mode == "global_clipnorm":
        assert all(np.sqrt(sum(np.sum(x**2) for x in g.values())) > value for g in grads)
    else:
        assert all(np.max(np.abs(g[k])) > value for g in grads for k in g)
    del kwargs[mode]
    unclipped = _run_ours(OURS[cls](**kwargs), params, grads)
    assert _max_rel(unclipped, want) > 1e-3


def test_clipnorm_is_per_variable_not_global():
    g = {"a": jnp.array([3.0, 4.0]), "b": jnp.array([0.3, 0.4])}
    p = jax.tree_util.tree_map(jnp.zeros_like, g)
    each = optimizers.sgd(learning_rate=1.0, clipnorm=1.0)
    glob = optimizers.sgd(learning_rate=1.0, global_clipnorm=1.0)
    u_each, _ = each.update(g, each.init(p))
    u_glob, _ = glob.update(g, glob.init(p))
    np.testing.assert_allclose(u_each["a"], [-0.6, -0.8], rtol=1e-6)
    np.testing.assert_allclose(u_each["b"], [-0.3, -0.4], rtol=1e-6)  # already under the clip: untouched
    total = np.sqrt(25.0 + 0.25)
    np.testing.assert_allclose(u_glob["b"], [-0.3 / total, -0.4 / total], rtol=1e-6)


def _keras_schedule(keras, fn):
    class Schedule(keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            return fn(keras.ops.convert_to_tensor(step))

    return Schedule()


def _step_schedule(count):
    # very different first step, so an off-by-one in the count shows
    return jnp.where(count == 0, 0.2, 0.01 * 0.7 ** (jnp.asarray(count, jnp.float32) / 3.0))


@pytest.mark.parametrize(
    "cls, extra",
    [
        ("Adam", {}),
        ("SGD", {"momentum": 0.9}),
        ("RMSprop", {"centered": True}),
        ("Adagrad", {}),
        ("AdamW", {"weight_decay": 0.3}),
    ],
)
def test_schedule_matches_keras(keras, cls, extra):
    _compare(
        keras,
        OURS[cls](learning_rate=_step_schedule, **extra),
        getattr(keras.optimizers, cls)(learning_rate=_keras_schedule(keras, _step_schedule), **extra),
    )


def test_schedule_count_starts_at_zero():
    seen = []
    opt = optimizers.sgd(learning_rate=lambda c: (seen.append(int(c)), 1.0)[1])
    p = jnp.zeros(2)
    s = opt.init(p)
    for _ in range(3):
        _, s = opt.update(jnp.ones(2), s, p)
    assert seen == [0, 1, 2]


def test_optax_schedule_works():
    opt = optimizers.adam(learning_rate=optax.linear_schedule(0.1, 0.0, 5))
    p = jnp.ones(3)
    s = opt.init(p)
    u, s = opt.update(jnp.ones(3), s, p)
    assert np.all(np.isfinite(u)) and int(s.count) == 1


@pytest.mark.parametrize(
    "factory, kwargs, name",
    [
        (optimizers.adam, dict(learning_rate=-0.1), "learning_rate"),
        (optimizers.sgd, dict(learning_rate="fast"), "learning_rate"),
        (optimizers.adam, dict(beta_1=1.0), "beta_1"),
        (optimizers.adam, dict(beta_2=-0.1), "beta_2"),
        (optimizers.adam, dict(epsilon=-1e-7), "epsilon"),
        (optimizers.adam, dict(amsgrad="yes"), "amsgrad"),
        (optimizers.rmsprop, dict(rho=1.5), "rho"),
        (optimizers.rmsprop, dict(momentum=-0.1), "momentum"),
        (optimizers.rmsprop, dict(centered=1), "centered"),
        (optimizers.sgd, dict(momentum=1.5), "momentum"),
        (optimizers.sgd, dict(nesterov=True), "nesterov"),
        (optimizers.adagrad, dict(initial_accumulator_value=-1.0), "initial_accumulator_value"),
        (optimizers.adamw, dict(weight_decay=None), "weight_decay"),
        (optimizers.adamw, dict(weight_decay=-0.1), "weight_decay"),
        (optimizers.adam, dict(clipnorm=0.0), "clipnorm"),
        (optimizers.sgd, dict(clipvalue=-1.0), "clipvalue"),
        (optimizers.adagrad, dict(global_clipnorm=0.0), "global_clipnorm"),
        (optimizers.adam, dict(clipnorm=1.0, clipvalue=1.0), "clipvalue"),
        (optimizers.rmsprop, dict(clipnorm=1.0, global_clipnorm=1.0), "global_clipnorm"),
    ],
)
def test_bad_arguments(factory, kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        factory(**kwargs)


def test_weight_decay_needs_params():
    opt = optimizers.adamw()
    p = jnp.ones(2)
    with pytest.raises(ValueError, match="params"):
        opt.update(jnp.ones(2), opt.init(p))


def test_equal_arguments_give_equal_transformations():
    """Equality by construction arguments lets rc.fit reuse a compiled step; anything else differs."""
    a = optimizers.adam(0.01, clipnorm=1.0)
    assert a == optimizers.adam(learning_rate=0.01, clipnorm=1.0) and hash(a) == hash(
        optimizers.adam(0.01, clipnorm=1.0)
    )
    assert a != optimizers.adam(0.01, clipnorm=2.0) and a != optimizers.adamw(0.01, clipnorm=1.0)
    assert optimizers.sgd() != optimizers.rmsprop() and isinstance(a, optax.GradientTransformation)


# --- by name ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["adam", "AdamW", "rmsprop", "sgd", "adagrad"])
def test_get_builds_keras_defaults_by_name(name):
    assert optimizers.get(name) == optimizers.OPTIMIZERS[name.lower()]()


def test_get_passes_a_transformation_through_and_refuses_the_rest():
    opt = optax.sgd(0.1)
    assert optimizers.get(opt) is opt
    with pytest.raises(ValueError, match=r"optimizer='adamm'; expected an optax GradientTransformation or one of"):
        optimizers.get("adamm")
    with pytest.raises(ValueError, match="optimizer must be an optax GradientTransformation or a name; got int"):
        optimizers.get(3)


@pytest.mark.parametrize("old, new", [("get_optimizer", "get"), ("OPTIMIZERS", "OPTIMIZERS")])
def test_the_old_train_names_are_deprecated_aliases(old, new):
    from rnncore import train

    with pytest.warns(
        DeprecationWarning, match=rf"rnncore\.train\.{old} is deprecated; use rnncore\.optimizers\.{new}"
    ):
        alias = getattr(train, old)
    assert alias is getattr(optimizers, new)
