"""``rc.fit`` against oracles that do not share its code: hand-written training loops over
``model.apply`` + ``jax.grad`` + optax, Keras's own ``EarlyStopping`` fed the same logs, and
explicit checks of divergence, checkpoints, truncated BPTT and bad input."""

import io
import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rnncore as rc
from rnncore import steps, train


def _problem(n=24, t=6, f=3, seed=0, out=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, t, f)).astype("float32"), rng.normal(size=(n, out)).astype("float32")


def _model(cell="LSTM", units=5, out=1, seq=False):
    layer = getattr(rc.layers, cell)(units, return_sequences=seq)
    return rc.Sequential([layer, rc.layers.Dense(out)])


def _mse(y_pred, y):
    return jnp.mean((y_pred - y) ** 2)


def _manual_fit(model, params, x, y, opt, batch_size, epochs):
    """The training loop written out: consecutive batches, L = mean squared error, one optax
    update per batch, epoch loss = batch-size weighted mean of the batch losses before each update."""
    state, losses = opt.init(params), []
    value_and_grad = jax.jit(jax.value_and_grad(lambda p, xb, yb: _mse(model.apply(p, xb), yb)))
    update = jax.jit(lambda g, st, q: (lambda u, n: (optax.apply_updates(q, u), n))(*opt.update(g, st, q)))
    for _ in range(epochs):
        total, count = 0.0, 0
        for i in range(0, len(x), batch_size):
            xb, yb = x[i : i + batch_size], y[i : i + batch_size]
            value, grads = value_and_grad(params, xb, yb)
            params, state = update(grads, state, params)
            total, count = total + float(value) * len(xb), count + len(xb)
        losses.append(total / count)
    return params, losses


def _close(a, b, tol=1e-6):
    for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=tol, atol=tol)


@pytest.mark.parametrize("opt", [lambda: rc.optimizers.sgd(0.1), lambda: rc.optimizers.adam(0.01, clipnorm=0.5)])
def test_fit_equals_a_written_out_loop(opt):
    x, y = _problem(n=22)  # 22 = 2 batches of 8 + one of 6
    model = _model()
    params = model.init(jax.random.PRNGKey(0), input_shape=(6, 3))
    ours, history = rc.fit(model, params, x, y, optimizer=opt(), batch_size=8, epochs=3, shuffle=False, verbose=0)
    theirs, losses = _manual_fit(model, params, jnp.asarray(x), jnp.asarray(y), opt(), 8, 3)
    _close(ours, theirs)
    np.testing.assert_allclose(history.history["loss"], losses, rtol=1e-6)
    assert history.epoch == [0, 1, 2] and history.params["steps"] == 3


def test_fit_does_not_touch_the_callers_params():
    x, y = _problem()
    model = _model("GRU")
    params = model.init(jax.random.PRNGKey(0), input_shape=(6, 3))
    before = [np.array(a) for a in jax.tree_util.tree_leaves(params)]
    rc.fit(model, params, x, y, optimizer="sgd", epochs=2, verbose=0)
    for a, b in zip(jax.tree_util.tree_leaves(params), before):  # still alive (not donated) and unchanged
        np.testing.assert_array_equal(np.asarray(a), b)


def test_shuffle_is_a_permutation_per_epoch_and_deterministic():
    x, y = _problem(n=16)
    model = _model("SimpleRNN")
    params = model.init(jax.random.PRNGKey(0), input_shape=(6, 3))
    opt = rc.optimizers.sgd(0.1)
    a, _ = rc.fit(model, params, x, y, optimizer=opt, batch_size=4, epochs=2, seed=3, verbose=0)
    b, _ = rc.fit(model, params, x, y, optimizer=opt, batch_size=4, epochs=2, seed=3, verbose=0)
    c, _ = rc.fit(model, params, x, y, optimizer=opt, batch_size=4, epochs=2, seed=4, verbose=0)
    _close(a, b, 0)
    assert not np.allclose(a[0].kernel, c[0].kernel)
    # the oracle: the same permutations applied by hand, then an unshuffled run
    perms = [np.asarray(jax.random.permutation(jax.random.fold_in(jax.random.PRNGKey(3), e), 16)) for e in range(2)]
    p = params
    for e in range(2):
        p, _ = rc.fit(
            model, p, x[perms[e]], y[perms[e]], optimizer=opt, batch_size=4, epochs=1, shuffle=False, verbose=0
        )
    _close(a, p, 1e-6)


def test_validation_split_takes_the_last_samples_like_keras():
    x, y = _problem(n=10)
    model = _model()
    params = model.init(jax.random.PRNGKey(0), input_shape=(6, 3))
    opt = rc.optimizers.sgd(0.05)
    trained, history = rc.fit(
        model, params, x, y, optimizer=opt, batch_size=7, epochs=1, shuffle=False, validation_split=0.25, verbose=0
    )  # floor(10 * 0.75) = 7 for training, in one batch
    manual, _ = _manual_fit(model, params, jnp.asarray(x[:7]), jnp.asarray(y[:7]), opt, 7, 1)
    _close(trained, manual)
    val = float(_mse(model.apply(trained, x[7:]), y[7:]))
    np.testing.assert_allclose(history.history["val_loss"], [val], rtol=1e-6)


def test_gradient_norms_are_the_per_layer_norms_of_each_steps_gradient():
    x, y = _problem(n=8)
    model = rc.Sequential(
        [rc.layers.LSTM(4, return_sequences=True), rc.layers.Dropout(0.0), rc.layers.GRU(3), rc.layers.Dense(1)]
    )
    params = model.init(jax.random.PRNGKey(1), input_shape=(6, 3))
    opt = rc.optimizers.sgd(0.1)
    _, history = rc.fit(
        model, params, x, y, optimizer=opt, batch_size=4, epochs=2, shuffle=False, verbose=0, gradient_norms=True
    )
    assert history.gradient_norms.shape == (4, 4)
    p, state, expected = params, opt.init(params), []
    grad = jax.jit(jax.grad(lambda q, xb, yb: _mse(model.apply(q, xb), yb)))
    update = jax.jit(lambda g, st, q: (lambda u, n: (optax.apply_updates(q, u), n))(*opt.update(g, st, q)))
    for _ in range(2):
        for i in (0, 4):
            g = grad(p, x[i : i + 4], y[i : i + 4])
            expected.append([float(optax.tree.norm(gl)) for gl in g])
            p, state = update(g, state, p)
    np.testing.assert_allclose(history.gradient_norms, expected, rtol=1e-5, atol=1e-12)
    assert history.gradient_norms[0, 1] == 0.0  # Dropout has no params
    assert history.layer_names == ("0:LSTM", "1:Dropout", "2:GRU", "3:Dense")


# --- divergence --------------------------------------------------------------------------------


def _diverging_run(**kwargs):
    x, y = _problem(n=40, seed=5)
    model = _model("SimpleRNN", units=8)
    params = model.init(jax.random.PRNGKey(2), input_shape=(6, 3))
    params = (params[0]._replace(recurrent_kernel=params[0].recurrent_kernel * 3.0), params[1])
    return model, params, x * 50.0, y * 1e3, kwargs


def test_a_diverging_run_keeps_the_last_good_params_and_says_where():
    model, params, x, y, _ = _diverging_run()
    opt = rc.optimizers.sgd(5.0)
    with pytest.warns(RuntimeWarning, match=r"non-finite .* at epoch \d+, step \d+"):
        good, history = rc.fit(model, params, x, y, optimizer=opt, batch_size=4, epochs=20, shuffle=False, verbose=0)
    d = history.diverged
    assert d is not None and d.what in ("loss", "gradient", "updated params")
    assert all(np.isfinite(np.asarray(a)).all() for a in jax.tree_util.tree_leaves(good))
    # the oracle: the same steps written out, stopping at the first non-finite one and returning
    # the params at which the latest finite loss was measured. Each step is compiled, as fit's is:
    # the run is chaotic just before it overflows, and op-by-op rounding would grow to percents.
    grad_step = jax.jit(jax.value_and_grad(lambda q, xb, yb: _mse(model.apply(q, xb), yb)))
    update = jax.jit(lambda g, s, q: (lambda u, n: (optax.apply_updates(q, u), n))(*opt.update(g, s, q)))
    p, state, finite_loss_at = params, opt.init(params), params
    for epoch in range(20):
        for i in range(0, 40, 4):
            value, g = grad_step(p, x[i : i + 4], y[i : i + 4])
            if np.isfinite(float(value)):
                finite_loss_at = p
            new_p, new_state = update(g, state, p)
            finite = [bool(np.isfinite(np.asarray(a)).all()) for a in jax.tree_util.tree_leaves((value, g, new_p))]
            if not all(finite):
                assert (epoch, i // 4) == (d.epoch, d.step)
                _close(good, finite_loss_at, 1e-5)
                return
            p, state = new_p, new_state
    pytest.fail("the written-out run did not diverge")


def test_nonfinite_gradient_names_the_layer():
    """sqrt(mse) at an exact fit: a finite loss (0) whose gradient is 0/0 = NaN in every layer; the
    first layer is named."""
    x, _ = _problem(n=4)
    model = _model("GRU")
    params = model.init(jax.random.PRNGKey(0), input_shape=(6, 3))
    y = np.asarray(model.apply(params, x))

    def root_mse(y_true, y_pred):
        return jnp.sqrt(jnp.mean((y_true - y_pred) ** 2, axis=-1))

    with pytest.warns(RuntimeWarning, match=r"gradient of layer 0 \(0:GRU\)"):
        out, history = rc.fit(model, params, x, y, loss=root_mse, optimizer="sgd", epochs=3, verbose=0)
    assert history.diverged == train.Divergence(0, 0, "gradient", 0, "0:GRU")
    _close(out, params, 0)
    assert np.isnan(history.history["loss"]).all()  # no good step in the epoch


def test_on_nonfinite_raise_carries_the_params_and_history():
    model, params, x, y, _ = _diverging_run()
    with pytest.raises(train.TrainingDiverged, match="non-finite") as info:
        rc.fit(
            model,
            params,
            x,
            y,
            optimizer=rc.optimizers.sgd(5.0),
            batch_size=4,
            epochs=20,
            shuffle=False,
            verbose=0,
            on_nonfinite="raise",
        )
    assert info.value.divergence == info.value.history.diverged
    assert all(np.isfinite(np.asarray(a)).all() for a in jax.tree_util.tree_leaves(info.value.params))


def test_clipping_prevents_the_divergence():
    model, params, x, y, _ = _diverging_run()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, history = rc.fit(
            model,
            params,
            x,
            y,
            optimizer=rc.optimizers.sgd(5.0, global_clipnorm=1.0),
            batch_size=4,
            epochs=3,
            shuffle=False,
            verbose=0,
        )
    assert history.diverged is None and np.isfinite(history.history["loss"]).all()


# --- EarlyStopping against Keras's own ---------------------------------------------------------


class _FakeKerasModel:
    def __init__(self):
        self.stop_training, self.metrics, self.weights = False, [], 0

    def get_weights(self):
        return self.weights

    def set_weights(self, w):
        self.weights = w


class _Scripted(rc.callbacks.Callback):
    """Feeds fit's epochs a scripted monitor value, and records the params at each epoch end."""

    def __init__(self, values):
        self.values, self.seen = values, []

    def on_epoch_end(self, epoch, logs, run):
        logs["score"] = self.values[epoch]
        self.seen.append(jax.tree_util.tree_leaves(run.params)[0].copy())


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(patience=0),
        dict(patience=2),
        dict(patience=1, min_delta=0.3),
        dict(patience=2, mode="max"),
        dict(patience=1, baseline=0.5),
        dict(patience=1, start_from_epoch=3),
        dict(patience=2, restore_best_weights=True),
        dict(patience=0, restore_best_weights=True, mode="max"),
    ],
)
def test_early_stopping_matches_keras(keras, kwargs):
    kwargs = {"mode": "min", **kwargs}  # "score" has no known direction
    values = [1.0, 0.8, 0.9, 0.75, 0.76, 0.6, 0.61, 0.62, 0.63, 0.64]
    theirs = keras.callbacks.EarlyStopping(monitor="score", **kwargs)
    fake = _FakeKerasModel()
    theirs.set_model(fake)
    theirs.on_train_begin()
    stopped_at = len(values) - 1
    for epoch, v in enumerate(values):
        fake.weights = epoch
        theirs.on_epoch_end(epoch, {"score": v})
        if fake.stop_training:
            stopped_at = epoch
            break
    theirs.on_train_end()

    x, y = _problem(n=4)
    model = _model("SimpleRNN")
    params = model.init(jax.random.PRNGKey(0), input_shape=(6, 3))
    ours = rc.callbacks.EarlyStopping(monitor="score", **kwargs)
    scripted = _Scripted(values)
    trained, history = rc.fit(
        model, params, x, y, optimizer="sgd", epochs=len(values), verbose=0, callbacks=[scripted, ours]
    )
    assert history.epoch[-1] == stopped_at
    assert (ours.stopped_epoch, ours.best, ours.best_epoch, ours.wait) == (
        theirs.stopped_epoch,
        theirs.best,
        theirs.best_epoch,
        theirs.wait,
    )
    final = scripted.seen[fake.weights]  # Keras restored the weights of epoch fake.weights (or kept the last)
    np.testing.assert_array_equal(np.asarray(jax.tree_util.tree_leaves(trained)[0]), np.asarray(final))


def test_early_stopping_needs_a_direction_for_unknown_metrics():
    x, y = _problem(n=4)
    model = _model("SimpleRNN")
    params = model.init(jax.random.PRNGKey(0), input_shape=(6, 3))
    with pytest.raises(ValueError, match="mode='min' or mode='max'"):
        rc.fit(
            model,
            params,
            x,
            y,
            epochs=2,
            verbose=0,
            callbacks=[_Scripted([1.0, 2.0]), rc.callbacks.EarlyStopping(monitor="score")],
        )
    with pytest.raises(ValueError, match="logs hold only"):
        rc.fit(model, params, x, y, epochs=2, verbose=0, callbacks=[rc.callbacks.EarlyStopping()])
    ours = rc.callbacks.EarlyStopping(monitor="val_mae", patience=0)
    _, history = rc.fit(
        model, params, x, y, metrics=["mae"], validation_data=(x, y), epochs=3, verbose=0, callbacks=[ours]
    )  # mae: minimized, known from the metric
    assert len(history.epoch) >= 1


# --- checkpoints ----------------------------------------------------------------------------------


def test_resume_equals_an_uninterrupted_run(tmp_path):
    x, y = _problem(n=16)  # two batches of 8 per epoch
    model = _model("LSTM")
    params = model.init(jax.random.PRNGKey(0), input_shape=(6, 3))
    opt = rc.optimizers.adam(0.01)
    full, full_history = rc.fit(model, params, x, y, optimizer=opt, epochs=4, batch_size=8, verbose=0)
    path = tmp_path / "run.npz"
    rc.fit(model, params, x, y, optimizer=opt, epochs=2, batch_size=8, verbose=0, checkpoint=path)
    resumed, history = rc.fit(
        model, params, x, y, optimizer=opt, epochs=4, batch_size=8, verbose=0, checkpoint=path, resume=True
    )
    _close(resumed, full, 0)
    assert history.history == full_history.history and history.epoch == [0, 1, 2, 3]
    ckpt = rc.checkpoints.load_checkpoint(path, model, params)
    assert ckpt.epoch == 4 and ckpt.step == 8
    _close(ckpt.params, full, 0)


def test_checkpoint_from_another_model_is_refused(tmp_path):
    x, y = _problem(n=8)
    model = _model("LSTM")
    params = model.init(jax.random.PRNGKey(0), input_shape=(6, 3))
    path = tmp_path / "run.npz"
    rc.fit(model, params, x, y, epochs=1, verbose=0, checkpoint=path)
    other = _model("GRU")
    other_params = other.init(jax.random.PRNGKey(0), input_shape=(6, 3))
    with pytest.raises(ValueError, match="written for another model"):
        rc.fit(other, other_params, x, y, epochs=2, verbose=0, checkpoint=path, resume=True)
    with pytest.raises(ValueError, match=r"params\[0\]\.kernel is float32\[3, 20\] but this model's"):
        rc.checkpoints.load_checkpoint(path, model, model.init(jax.random.PRNGKey(0), input_shape=(6, 4)))
    (tmp_path / "junk.npz").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable .npz"):
        rc.checkpoints.load_checkpoint(tmp_path / "junk.npz", model, params)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    model = _model("GRU")
    params = model.init(jax.random.PRNGKey(0), input_shape=(6, 3))
    path = tmp_path / "run.npz"
    rc.checkpoints.save_checkpoint(path, model, params, epoch=1)
    before = path.read_bytes()

    def failing_savez(f, **arrays):
        f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(OSError, match="disk full"):
        rc.checkpoints.save_checkpoint(path, model, params, epoch=2)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["run.npz"]


# --- truncated BPTT -------------------------------------------------------------------------------


def _sequence_problem(n=6, t=12):
    rng = np.random.default_rng(7)
    return rng.normal(size=(n, t, 2)).astype("float32"), rng.normal(size=(n, t, 1)).astype("float32")


def test_chunked_training_carries_the_state_like_a_written_out_stateful_loop():
    x, y = _sequence_problem(n=8)  # two whole batches of 4: one batch shape, so few programs to compile
    model = rc.Sequential(
        [rc.layers.LSTM(4, return_sequences=True), rc.layers.GRU(3, return_sequences=True), rc.layers.Dense(1)]
    )
    params = model.init(jax.random.PRNGKey(0), input_shape=(None, 2))
    opt = rc.optimizers.sgd(0.1, momentum=0.5)
    ours, history = rc.fit(
        model, params, x, y, optimizer=opt, batch_size=4, epochs=2, shuffle=False, verbose=0, chunk_length=5
    )  # chunks of 5, 5, 2 steps

    @jax.jit  # one compiled oracle step per chunk shape, instead of 12 op-by-op runs of two scans
    def chunk_value_and_grad(q, xc, yc, s):
        def loss(q):
            out, finals = model.apply(q, xc, initial_states=s, return_states=True)
            return _mse(out, yc), finals

        return jax.value_and_grad(loss, has_aux=True)(q)

    update = jax.jit(lambda g, st, q: (lambda u, n: (optax.apply_updates(q, u), n))(*opt.update(g, st, q)))
    p, state, losses = params, opt.init(params), []
    for _ in range(2):
        total, count = 0.0, 0
        for i in (0, 4):
            xb, yb, s = x[i : i + 4], y[i : i + 4], None
            for t0 in (0, 5, 10):
                xc, yc = xb[:, t0 : t0 + 5], yb[:, t0 : t0 + 5]
                (value, finals), g = chunk_value_and_grad(p, xc, yc, s)
                p, state = update(g, state, p)
                s = finals
                total, count = total + float(value) * len(xb), count + len(xb)
        losses.append(total / count)
    _close(ours, p, 1e-5)
    np.testing.assert_allclose(history.history["loss"], losses, rtol=1e-5)
    assert history.params["steps"] == 6


def test_truncate_gradient_reaches_the_layers():
    x, y = _sequence_problem(n=4, t=10)
    model = rc.Sequential([rc.layers.SimpleRNN(4, return_sequences=True), rc.layers.Dense(1)])
    params = model.init(jax.random.PRNGKey(0), input_shape=(None, 2))
    opt = rc.optimizers.sgd(0.1)
    ours, _ = rc.fit(
        model, params, x, y, optimizer=opt, batch_size=4, epochs=1, shuffle=False, verbose=0, truncate_gradient=3
    )
    # oracle: the gradient of a loop of cell steps whose state is stop_gradient-ed every 3 steps
    cell = model.layers[0].cell

    def loss(q):
        s, ys = cell.initial_state(4), []
        for t in range(10):
            if t % 3 == 0:
                s = jax.tree_util.tree_map(jax.lax.stop_gradient, s)
            s, h = cell.step(q[0], s, x[:, t])
            ys.append(h)
        out = rc.layers.Dense(1).apply(q[1], jnp.stack(ys, 1))
        return _mse(out, y)

    g = jax.grad(loss)(params)
    expected = optax.apply_updates(params, opt.update(g, opt.init(params), params)[0])
    _close(ours, expected, 1e-6)
    full, _ = rc.fit(model, params, x, y, optimizer=opt, batch_size=4, epochs=1, shuffle=False, verbose=0)
    assert not np.allclose(full[0].recurrent_kernel, ours[0].recurrent_kernel)


def test_chunk_length_needs_sequence_targets():
    x, y = _problem()
    model = _model()
    params = model.init(jax.random.PRNGKey(0), input_shape=(6, 3))
    with pytest.raises(ValueError, match="chunk_length needs a model that outputs a sequence"):
        rc.fit(model, params, x, y, chunk_length=2, verbose=0)
    bi = rc.Sequential([rc.layers.Bidirectional(rc.layers.GRU(2, return_sequences=True)), rc.layers.Dense(1)])
    xs, ys = _sequence_problem()
    with pytest.raises(ValueError, match="Bidirectional layer cannot carry"):
        rc.fit(bi, bi.init(jax.random.PRNGKey(0), input_shape=(12, 2)), xs, ys, chunk_length=4, verbose=0)


# --- progress -------------------------------------------------------------------------------------


def test_progress_lines_and_bar(monkeypatch):
    x, y = _problem(n=8)
    model = _model("SimpleRNN")
    params = model.init(jax.random.PRNGKey(0), input_shape=(6, 3))
    lines = io.StringIO()
    monkeypatch.setattr("sys.stdout", lines)
    # one batch size and metric throughout, so all three runs share one compiled step; not a terminal: a line per epoch
    rc.fit(model, params, x, y, epochs=2, batch_size=2, metrics=["mae"], verbose="auto")
    out = lines.getvalue().splitlines()
    assert len(out) == 2 and out[0].startswith("Epoch 1/2 - ") and " - loss: " in out[0] and " - mae: " in out[0]

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    term = Terminal()
    monkeypatch.setattr("sys.stdout", term)
    rc.fit(model, params, x, y, epochs=1, batch_size=2, metrics=["mae"], verbose="auto")
    text = term.getvalue()
    assert text.startswith("Epoch 1/1\n") and "\r4/4 [==============================]" in text
    silent = io.StringIO()
    monkeypatch.setattr("sys.stdout", silent)
    rc.fit(model, params, x, y, epochs=1, batch_size=2, metrics=["mae"], verbose=0)
    assert silent.getvalue() == ""


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(y=np.zeros((5, 1))), r"same number of samples; got x \(8, 6, 3\) \(8 samples\) and y \(5, 1\)"),
        (dict(x=np.zeros((0, 6, 3)), y=np.zeros((0, 1))), "x is empty"),
        (
            dict(x=np.zeros((8, 3))),
            r"x must be \(samples, time, features\), or integer token ids \(samples, time\); got shape \(8, 3\)",
        ),
        (dict(batch_size=0), "batch_size=0; expected a positive integer"),
        (dict(batch_size=2.5), r"batch_size=2\.5; expected a positive integer"),
        (dict(epochs=-1), "epochs=-1; expected an integer >= 0"),
        (dict(y=np.full((8, 1), np.nan)), r"y holds NaN or inf \(first at index \(0, 0\)\)"),
        (dict(loss="mean_squared_errr"), "loss="),
        (dict(optimizer="adamm"), r"optimizer='adamm'; expected an optax GradientTransformation or one of"),
        (dict(optimizer=3), "optimizer must be an optax GradientTransformation or a name; got int"),
        (dict(metrics=["acurracy"]), "metrics="),
        (dict(validation_split=1.0), r"validation_split=1\.0; expected a float in \[0, 1\)"),
        (dict(validation_split=0.9), "leaves 0 training and 8 validation"),
        (dict(validation_data=(np.zeros((2, 6, 3)),)), "validation_data must be"),
        (dict(validation_data=(np.zeros((2, 6, 3)), np.zeros((3, 1)))), "validation_data x and validation_data y"),
        (dict(sample_weight=np.ones(3)), r"sample_weight must be \(samples,\) or \(samples, time\) with 8 samples"),
        (dict(mask=np.ones((8, 5))), r"mask must be \(samples, time\) = \(8, 6\)"),
        (dict(on_nonfinite="ignore"), "on_nonfinite='ignore'"),
        (dict(resume=True), "resume=True needs checkpoint=path"),
        (dict(verbose=3), "verbose=3"),
        (dict(chunk_length=0), "chunk_length=0; expected a positive integer"),
    ],
)
def test_bad_input_is_refused_clearly(change, match):
    x, y = _problem(n=8)
    model = _model()
    params = model.init(jax.random.PRNGKey(0), input_shape=(6, 3))
    kwargs = dict(x=x, y=y, verbose=0)
    kwargs.update(change)
    with pytest.raises(ValueError, match=match):
        rc.fit(model, params, **kwargs)


def test_bad_x_values_and_params_are_refused():
    x, y = _problem(n=8)
    x[3, 2, 1] = np.inf
    model = _model()
    params = model.init(jax.random.PRNGKey(0), input_shape=(6, 3))
    with pytest.raises(ValueError, match=r"x holds NaN or inf \(first at index \(3, 2, 1\)\)"):
        rc.fit(model, params, x, y, verbose=0)
    with pytest.raises(ValueError, match="params must be a tuple with one entry per layer"):
        rc.fit(model, params[:1], x, y, verbose=0)
    with pytest.raises(ValueError, match="model must be an rnncore.Sequential"):
        rc.fit(model.layers[0], params, x, y, verbose=0)


def test_a_second_fit_with_equal_settings_reuses_the_compiled_step():
    x, y = _problem(n=8)
    model = _model("GRU")
    params = model.init(jax.random.PRNGKey(0), input_shape=(6, 3))
    a, _ = rc.fit(model, params, x, y, optimizer=rc.optimizers.adam(0.01, clipnorm=1.0), epochs=1, verbose=0)
    n = len(steps.COMPILED)
    b, _ = rc.fit(
        model, params, x, y, optimizer=rc.optimizers.adam(learning_rate=0.01, clipnorm=1.0), epochs=1, verbose=0
    )
    assert len(steps.COMPILED) == n
    _close(a, b, 0)
    rc.fit(model, params, x, y, optimizer=rc.optimizers.adam(0.02, clipnorm=1.0), epochs=1, verbose=0)
    assert len(steps.COMPILED) == min(n + 1, 16)


def _two_inputs():
    model = rc.Model(
        {"a": (4, 2), "b": (3, 1)},
        [
            rc.Call("enc", rc.layers.GRU(3, return_state=True), "a", ["_", "h"]),
            rc.Call("dec", rc.layers.GRU(3), "b", "d", initial_state=["h"]),
            rc.Call("out", rc.layers.Dense(1), "d", "y"),
        ],
        "y",
    )
    rng = np.random.default_rng(0)
    xa, xb = rng.normal(size=(10, 4, 2)).astype("float32"), rng.normal(size=(10, 3, 1)).astype("float32")
    return model, model.init(jax.random.PRNGKey(0)), xa, xb, rng.normal(size=(10, 1)).astype("float32")


def test_fit_of_several_inputs_slices_them_together_and_shuffles_them_alike():
    """A dict by name and a list in the model's order give the same run; with shuffling, each epoch
    equals the unshuffled run on the inputs permuted by the same permutation."""
    model, params, xa, xb, y = _two_inputs()
    opt = rc.optimizers.sgd(0.1)
    by_name, h1 = rc.fit(model, params, {"b": xb, "a": xa}, y, optimizer=opt, batch_size=5, seed=3, verbose=0)
    in_order, h2 = rc.fit(model, params, [xa, xb], y, optimizer=opt, batch_size=5, seed=3, verbose=0)
    assert h1.history == h2.history
    perm = np.asarray(jax.random.permutation(jax.random.fold_in(jax.random.PRNGKey(3), 0), 10))
    permuted, h3 = rc.fit(
        model, params, (xa[perm], xb[perm]), y[perm], optimizer=opt, batch_size=5, shuffle=False, verbose=0
    )
    _close(by_name, in_order, 0.0)
    _close(by_name, permuted, 1e-6)
    np.testing.assert_allclose(h1.history["loss"], h3.history["loss"], rtol=1e-6)


@pytest.mark.parametrize(
    "x, match",
    [
        (lambda xa, xb: {"a": xa}, r"x has the inputs \['a'\]; expected \['a', 'b'\] \(missing \['b'\]"),
        (lambda xa, xb: [xa], r"x must hold one array per input of the model, \['a', 'b'\].*got 1 arrays"),
        (lambda xa, xb: xa, r"x must hold one array per input.*got ndarray"),
        (lambda xa, xb: [xa, xb[:7]], r"x's inputs have different sample counts \{'a': 10, 'b': 7\}"),
        (lambda xa, xb: [xa, xb[..., 0]], r"x\['b'\] must be \(samples, time, features\)"),
    ],
)
def test_several_inputs_are_checked_by_name(x, match):
    model, params, xa, xb, y = _two_inputs()
    with pytest.raises(ValueError, match=match):
        rc.fit(model, params, x(xa, xb), y, verbose=0)


def test_several_inputs_refuse_what_they_cannot_do():
    model, params, xa, xb, y = _two_inputs()
    with pytest.raises(ValueError, match="mask= is for a model of one input"):
        rc.fit(model, params, [xa, xb], y, mask=np.ones((10, 4), bool), verbose=0)
    with pytest.raises(ValueError, match="validation_data x must hold one array per input"):
        rc.fit(model, params, [xa, xb], y, validation_data=(xa, y), verbose=0)
    with pytest.raises(ValueError, match=r"x and y must have the same number of samples; got x \(10, 4, 2\)"):
        rc.fit(model, params, [xa, xb], y[:9], verbose=0)
