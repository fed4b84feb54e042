"""Training a model with moving statistics (``BatchNormalization``): ``rc.fit`` against Keras 3's
``Model.fit`` (per-epoch logs and final weights, moving statistics included, float32) and against a
hand-written float64 loop (``jax.grad`` + optax + the momentum update written as a formula)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rnncore as rc
from rnncore import steps

TOL = 1e-5


def _scaled_err(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30))


def _compare(keras_model, keras_history, model, params, history) -> float:
    """The largest relative error over the logs and the weights (asserted <= TOL)."""
    worst = 0.0
    assert set(history.history) == set(keras_history.history)
    for key, theirs in keras_history.history.items():
        err = float(np.max(np.abs(np.subtract(history.history[key], theirs)) / np.abs(theirs)))
        assert err <= TOL, (key, history.history[key], theirs)
        worst = max(worst, err)
    ours_w, theirs_w = rc.keras_weights(model, params), keras_model.get_weights()
    assert len(ours_w) == len(theirs_w)
    for i, (ours, theirs) in enumerate(zip(ours_w, theirs_w)):
        err = _scaled_err(ours, theirs)
        assert err <= TOL, (i, err)
        worst = max(worst, err)
    return worst


def _randomize(keras_model, seed):
    """Random, asymmetric weights everywhere; a positive random moving variance."""
    rng = np.random.default_rng(seed)
    for layer in keras_model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        new = [(rng.normal(size=w.shape) * 0.4).astype("float32") for w in weights]
        if "BatchNormalization" in type(getattr(layer, "layer", layer)).__name__:
            new[0] = (1.0 + new[0]).astype("float32")
            new[3] = rng.uniform(0.5, 2.0, size=weights[3].shape).astype("float32")
        layer.set_weights(new)


def _lstm_bn_lstm(keras, masking):
    layers = [keras.Input((7, 3))]
    if masking:
        layers.append(keras.layers.Masking(0.0))
    layers += [
        keras.layers.LSTM(6, return_sequences=True, use_cudnn=False),
        keras.layers.BatchNormalization(momentum=0.8),
        keras.layers.LSTM(5, use_cudnn=False),
        keras.layers.Dense(2),
    ]
    return keras.Sequential(layers)


def _conv_bn_lstm(keras, masking):
    return keras.Sequential(
        [
            keras.Input((7, 3)),
            keras.layers.Conv1D(4, 3, padding="causal", use_bias=False),  # a bias before BN has no gradient
            keras.layers.BatchNormalization(momentum=0.7, epsilon=1e-2),
            keras.layers.LSTM(5, use_cudnn=False),
            keras.layers.Dense(2),
        ]
    )


def _time_distributed_bn(keras, masking):
    return keras.Sequential(
        [
            keras.Input((7, 3)),
            keras.layers.Masking(0.0),
            keras.layers.LSTM(6, return_sequences=True, use_cudnn=False),
            keras.layers.TimeDistributed(keras.layers.BatchNormalization(momentum=0.9)),
            keras.layers.LSTM(5, use_cudnn=False),
            keras.layers.Dense(2),
        ]
    )


def _graph_bn(keras, masking):
    inp = keras.Input((7, 3), name="x")
    h = keras.layers.GRU(6, return_sequences=True, use_cudnn=False)(inp)
    h = keras.layers.BatchNormalization(momentum=0.85)(h)
    h = keras.layers.LSTM(5, use_cudnn=False)(h)
    return keras.Model(inp, keras.layers.Dense(2)(h))


_MODELS = {
    "lstm_bn_lstm": _lstm_bn_lstm,
    "conv_bn_lstm": _conv_bn_lstm,
    "time_distributed_bn": _time_distributed_bn,
    "graph_bn": _graph_bn,
}
_OPTIMIZERS = {
    "sgd": (lambda k: k.optimizers.SGD(0.05, momentum=0.5), lambda: rc.optimizers.sgd(0.05, momentum=0.5)),
    "adam": (lambda k: k.optimizers.Adam(0.02), lambda: rc.optimizers.adam(0.02)),
    "adamw": (
        lambda k: k.optimizers.AdamW(0.02, weight_decay=0.3),
        lambda: rc.optimizers.adamw(0.02, weight_decay=0.3),
    ),
}
_SLOW = pytest.mark.slow
_CASES = [
    ("lstm_bn_lstm", "adamw", True),
    ("conv_bn_lstm", "adamw", False),
    pytest.param("lstm_bn_lstm", "sgd", False, marks=_SLOW),
    pytest.param("conv_bn_lstm", "adam", False, marks=_SLOW),
    pytest.param("time_distributed_bn", "adam", True, marks=_SLOW),
    pytest.param("graph_bn", "adamw", False, marks=_SLOW),
]


def _data(masking, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(44, 7, 3)).astype("float32")  # 3 batches of 12 and one of 4 after the split
    if masking:
        lengths = rng.integers(2, 8, size=44)
        x[np.arange(7)[None, :] >= lengths[:, None]] = 0.0
    return x, rng.normal(size=(44, 2)).astype("float32")


@pytest.mark.parametrize("name, opt, masking", _CASES)
def test_fit_with_batch_normalization_matches_keras(keras, name, opt, masking):
    x, y = _data(masking)
    keras.utils.set_random_seed(0)
    keras_model = _MODELS[name](keras, masking)
    _randomize(keras_model, 3)
    model, params = rc.from_keras(keras_model)
    make_keras, make_ours = _OPTIMIZERS[opt]
    keras_model.compile(optimizer=make_keras(keras), loss="mse", metrics=["mae"])
    theirs = keras_model.fit(x, y, batch_size=12, epochs=3, shuffle=False, verbose=0, validation_split=0.1)
    params, history = rc.fit(
        model,
        params,
        x,
        y,
        loss="mse",
        optimizer=make_ours(),
        metrics=["mae"],
        batch_size=12,
        epochs=3,
        shuffle=False,
        verbose=0,
        validation_split=0.1,
    )
    assert history.diverged is None
    err = _compare(keras_model, theirs, model, params, history)
    print(f"{name}/{opt}/masking={masking}: largest relative error {err:.2e}")


@pytest.mark.slow
def test_fit_with_masked_embedding_and_batch_normalization_matches_keras(keras):
    """Embedding(mask_zero=True) -> BatchNormalization -> LSTM: the statistics over the real tokens only."""
    rng = np.random.default_rng(6)
    x = rng.integers(1, 15, size=(24, 8)).astype("int32")
    for row, length in enumerate(rng.integers(2, 9, size=24)):
        x[row, length:] = 0
    y = rng.normal(size=(24, 1)).astype("float32")
    keras.utils.set_random_seed(7)
    keras_model = keras.Sequential(
        [
            keras.Input((8,), dtype="int32"),
            keras.layers.Embedding(15, 4, mask_zero=True),
            keras.layers.BatchNormalization(momentum=0.6),
            keras.layers.LSTM(5, use_cudnn=False),
            keras.layers.Dense(1),
        ]
    )
    _randomize(keras_model, 8)
    model, params = rc.from_keras(keras_model)
    keras_model.compile(optimizer=keras.optimizers.AdamW(0.02, weight_decay=0.2), loss="mse")
    theirs = keras_model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0, validation_data=(x[:10], y[:10]))
    params, history = rc.fit(
        model,
        params,
        x,
        y,
        loss="mse",
        optimizer=rc.optimizers.adamw(0.02, weight_decay=0.2),
        batch_size=8,
        epochs=3,
        shuffle=False,
        verbose=0,
        validation_data=(x[:10], y[:10]),
    )
    err = _compare(keras_model, theirs, model, params, history)
    print(f"embedding_bn/adamw/mask_zero: largest relative error {err:.2e}")


# --- float64: a written-out loop --------------------------------------------------------------------

EPS, MOMENTUM = 1e-3, 0.8


def _bn_model():
    return rc.Sequential(
        [
            rc.layers.LSTM(4, return_sequences=True),
            rc.layers.BatchNormalization(momentum=MOMENTUM, epsilon=EPS),
            rc.layers.GRU(3, return_sequences=True),
            rc.layers.Dense(1),
        ]
    )


def _bn_problem(dtype="float64"):
    rng = np.random.default_rng(11)
    n, t = 10, 6  # two batches of 5, two chunks of 3: one compiled step each
    x = rng.normal(size=(n, t, 2)).astype(dtype)
    lengths = rng.integers(2, t + 1, size=n)
    mask = np.arange(t)[None, :] < lengths[:, None]
    y = rng.normal(size=(n, t, 1)).astype(dtype)
    model = _bn_model()
    params = list(model.init(jax.random.PRNGKey(3), input_shape=(t, 2), dtype=jnp.dtype(dtype)))
    keys = jax.random.split(jax.random.PRNGKey(4), 4)
    c = 4
    params[1] = params[1]._replace(
        gamma=1.0 + 0.3 * jax.random.normal(keys[0], (c,), dtype),
        beta=0.3 * jax.random.normal(keys[1], (c,), dtype),
        moving_mean=0.5 * jax.random.normal(keys[2], (c,), dtype),
        moving_variance=jax.random.uniform(keys[3], (c,), dtype, 0.5, 2.0),
    )
    return model, tuple(params), x, y, mask


def _written_out_fit(model, params, x, y, mask, opt, batch_size, epochs, chunk=None):
    """The run by hand: the BatchNormalization's training forward and its momentum update written as
    formulas, the gradient by jax.grad over the trainable leaves only, the optimizer on those only."""
    lstm, bn, gru, dense = model.layers
    mse = rc.losses.get("mse")

    def forward(trained, xb, mb, s0):
        p0, (gamma, beta), p2, p3 = trained
        h1, f1, _ = lstm.run(p0, xb, mb, True, None, s0[0])
        keep = mb[..., None].astype(xb.dtype)
        count = jnp.sum(keep, axis=(0, 1)) + 1e-7
        mean = jnp.sum(h1 * keep, axis=(0, 1)) / count
        var = jnp.sum(jnp.square((h1 - mean) * keep), axis=(0, 1)) / count
        z = gamma * (h1 - mean) / jnp.sqrt(var + EPS) + beta
        h2, f2, _ = gru.run(p2, z, mb, True, None, s0[1])
        return h2 @ p3.kernel + p3.bias, (f1, f2), (mean, var)

    @jax.jit
    def value_and_grad(trained, xb, yb, mb, s0):
        def loss(q):
            y_pred, finals, moments = forward(q, xb, mb, s0)
            return mse(yb, y_pred, None, mb), (finals, moments)

        return jax.value_and_grad(loss, has_aux=True)(trained)

    update = jax.jit(lambda g, st, q: (lambda u, n: (optax.apply_updates(q, u), n))(*opt.update(g, st, q)))
    trained = (params[0], (params[1].gamma, params[1].beta), params[2], params[3])
    moving = (params[1].moving_mean, params[1].moving_variance)
    state, losses = opt.init(trained), []
    t = x.shape[1]
    chunks = [(0, t)] if chunk is None else [(t0, min(chunk, t - t0)) for t0 in range(0, t, chunk)]
    for _ in range(epochs):
        total, count = 0.0, 0
        for i in range(0, len(x), batch_size):
            xb, yb, mb = x[i : i + batch_size], y[i : i + batch_size], mask[i : i + batch_size]
            s0 = (None, None)
            for t0, length in chunks:
                cut = slice(t0, t0 + length)
                (value, (finals, (mean, var))), g = value_and_grad(trained, xb[:, cut], yb[:, cut], mb[:, cut], s0)
                trained, state = update(g, state, trained)
                moving = (moving[0] * MOMENTUM + mean * (1 - MOMENTUM), moving[1] * MOMENTUM + var * (1 - MOMENTUM))
                s0 = finals if chunk is not None else (None, None)
                total, count = total + float(value) * len(xb), count + len(xb)
        losses.append(total / count)
    bn_params = params[1]._replace(
        gamma=trained[1][0], beta=trained[1][1], moving_mean=moving[0], moving_variance=moving[1]
    )
    return (trained[0], bn_params, trained[2], trained[3]), losses


def _max_rel(a, b) -> float:
    return max(_scaled_err(u, v) for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


@pytest.mark.parametrize("chunk", [None, pytest.param(3, marks=pytest.mark.slow)])
def test_fit_with_batch_normalization_equals_a_written_out_loop_in_float64(x64, chunk):
    """Each step's statistics are those of its own training forward (with ``chunk_length``, of its
    chunk: one assignment per optimizer step), over the unmasked steps; AdamW decays only gamma,
    beta and the other trained weights."""
    model, params, x, y, mask = _bn_problem()
    opt = rc.optimizers.adamw(0.01, weight_decay=0.2)
    ours, history = rc.fit(
        model,
        params,
        x,
        y,
        optimizer=opt,
        mask=mask,
        batch_size=5,
        epochs=2,
        shuffle=False,
        verbose=0,
        chunk_length=chunk,
    )
    theirs, losses = _written_out_fit(model, params, x, y, mask, opt, 5, 2, chunk)
    err = max(_max_rel(ours, theirs), float(np.max(np.abs(np.subtract(history.history["loss"], losses)) / losses)))
    print(f"float64 written-out loop (chunk={chunk}): largest relative error {err:.2e}")
    assert err <= 1e-12
    assert _scaled_err(ours[1].moving_mean, params[1].moving_mean) > 1e-3  # the statistics did move


# --- the statistics through the rest of fit ----------------------------------------------------------


def _small(momentum=0.7):
    model = rc.Sequential(
        [
            rc.layers.Conv1D(3, 2),
            rc.layers.BatchNormalization(momentum=momentum),
            rc.layers.GlobalAveragePooling1D(),
            rc.layers.Dense(1),
        ]
    )
    params = list(model.init(jax.random.PRNGKey(0), input_shape=(5, 2)))
    params[1] = params[1]._replace(moving_mean=jnp.array([0.3, -0.2, 0.1]), moving_variance=jnp.array([1.5, 0.7, 1.1]))
    rng = np.random.default_rng(5)
    x = rng.normal(size=(20, 5, 2)).astype("float32")
    return model, tuple(params), x, rng.normal(size=(20, 1)).astype("float32")


def test_the_optimizer_never_sees_the_statistics():
    """No gradient, no slot, no weight decay on them: with momentum 1 (each assignment keeps them) a
    heavily decaying AdamW leaves them bit for bit; with training=False they are used, not assigned."""
    model, params, x, y = _small(momentum=1.0)
    assert steps.trainable(model, params)[1].moving_mean is None
    assert steps.trainable(model, params)[0] is params[0]
    opt = rc.optimizers.adamw(0.1, weight_decay=0.5)
    # batches of 10 of the 20 samples: one batch shape, so each run compiles one program
    ours, _ = rc.fit(model, params, x, y, optimizer=opt, epochs=2, batch_size=10, verbose=0)
    np.testing.assert_array_equal(ours[1].moving_mean, params[1].moving_mean)
    np.testing.assert_array_equal(ours[1].moving_variance, params[1].moving_variance)
    assert _scaled_err(ours[1].gamma, params[1].gamma) > 1e-2
    model, params, x, y = _small()
    frozen, _ = rc.fit(model, params, x, y, optimizer=opt, epochs=1, batch_size=10, verbose=0, training=False)
    np.testing.assert_array_equal(frozen[1].moving_variance, params[1].moving_variance)
    moved, history = rc.fit(model, params, x, y, optimizer=opt, epochs=1, batch_size=10, verbose=0, gradient_norms=True)
    assert _scaled_err(moved[1].moving_variance, params[1].moving_variance) > 1e-3
    assert history.gradient_norms.shape == (2, 4) and np.all(history.gradient_norms[:, [0, 1, 3]] > 0)


def test_resume_carries_the_statistics(tmp_path):
    model, params, x, y = _small()
    opt, path = rc.optimizers.adam(0.05), tmp_path / "run.npz"
    whole, _ = rc.fit(model, params, x, y, optimizer=opt, epochs=4, batch_size=8, verbose=0)
    rc.fit(model, params, x, y, optimizer=opt, epochs=2, batch_size=8, verbose=0, checkpoint=path)
    resumed, history = rc.fit(
        model, params, x, y, optimizer=opt, epochs=4, batch_size=8, verbose=0, checkpoint=path, resume=True
    )
    assert len(history.history["loss"]) == 4
    assert _max_rel(resumed, whole) == 0.0


def test_a_diverging_run_keeps_the_last_good_statistics():
    """The step that turns non-finite assigns nothing: the returned params, statistics included, are
    those at which the latest finite loss was measured (the written-out run below)."""
    model, params, x, y = _small()
    x = x * 30.0
    opt = rc.optimizers.sgd(40.0)
    with pytest.warns(RuntimeWarning, match="non-finite"):
        good, history = rc.fit(model, params, x, y, optimizer=opt, batch_size=4, epochs=30, shuffle=False, verbose=0)
    d = history.diverged
    assert d is not None
    bn = model.layers[1]

    @jax.jit
    def one_step(p, state, xb, yb):
        def loss(trained):
            full = steps.with_non_trainable(model, trained, p)
            h = model.layers[0].apply(full[0], xb)
            z, new_bn = bn.apply_and_update(full[1], h)
            out = model.layers[3].apply(full[3], model.layers[2].apply(full[2], z))
            return jnp.mean((out - yb) ** 2), new_bn

        trained = steps.trainable(model, p)
        (value, new_bn), g = jax.value_and_grad(loss, has_aux=True)(trained)
        updates, state = opt.update(g, state, trained)
        new_p = steps.with_non_trainable(model, optax.apply_updates(trained, updates), (None, new_bn, None, None))
        return value, g, new_p, state

    p, state, finite_loss_at = params, opt.init(steps.trainable(model, params)), params
    for epoch in range(30):
        for i in range(0, 20, 4):
            value, g, new_p, new_state = one_step(p, state, x[i : i + 4], y[i : i + 4])
            if np.isfinite(float(value)):
                finite_loss_at = p
            leaves = jax.tree_util.tree_leaves((value, g, new_p))
            if not all(bool(np.isfinite(np.asarray(a)).all()) for a in leaves):
                assert (epoch, i // 4) == (d.epoch, d.step)
                assert _max_rel(good, finite_loss_at) <= 1e-5
                assert all(np.isfinite(np.asarray(a)).all() for a in jax.tree_util.tree_leaves(good))
                return
            p, state = new_p, new_state
    pytest.fail("the written-out run did not diverge")


def test_a_shared_batch_normalization_in_a_graph_is_assigned_once_per_call():
    """Keras assigns a layer's statistics at each of its calls, in call order."""
    bn = rc.layers.BatchNormalization(momentum=0.6)
    model = rc.Model(
        {"x": (4, 3)},
        [rc.Call("bn", bn, "x", "a"), rc.Call("dense", rc.layers.Dense(3), "a", "b"), rc.Call("bn", None, "b", "c")],
        "c",
    )
    params = model.init(jax.random.PRNGKey(0))
    x = jax.random.normal(jax.random.PRNGKey(1), (5, 4, 3))
    y, _, _, after = model.apply_and_update(params, x)
    first = bn.moving_statistics(params[0], x)
    second = bn.moving_statistics(first, model.layers[1].apply(params[1], bn.apply(params[0], x, training=True)))
    assert _max_rel(after[0], second) == 0.0 and after[1] is params[1]
    assert _max_rel(y, model.apply(params, x, training=True)) == 0.0
