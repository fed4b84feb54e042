"""Functional Keras graphs (several inputs and outputs, shared layers, returned states wired into
``initial_state``, recorded masks) as ``rc.Model``, against Keras 3 on JAX as the oracle: outputs,
weight order and gradients with respect to every weight and input, live and from files, and back
through ``rc.to_keras``."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import max_rel_err, random_like
from covering import only

import rnncore as rc

TOL = 1e-5
B = 3


def _as_list(y):
    return [np.asarray(a) for a in (y if isinstance(y, (list, tuple)) else [y])]


def _randomize(km, seed=1):
    km.set_weights(random_like(np.random.default_rng(seed), km.get_weights()))
    return km


def _encoder_decoder(keras):
    """Masking -> LSTM(return_state) whose (h, c) start the decoder LSTM; outputs y and the encoder's h."""
    L = keras.layers
    src, tgt = keras.Input((None, 5), name="source"), keras.Input((None, 4), name="target")
    _, h, c = L.LSTM(6, return_state=True, use_cudnn=False, name="encoder")(L.Masking(name="pad")(src))
    decoded = L.LSTM(6, return_sequences=True, use_cudnn=False, name="decoder")(tgt, initial_state=[h, c])
    y = L.Dense(4, name="head")(decoded)
    return _randomize(keras.Model([src, tgt], [y, h]))


def _shared(keras):
    """One Dense shared by two GRU branches of one input, two outputs; a GRU given an explicit mask of ops."""
    L = keras.layers
    x = keras.Input((7, 3), name="x")
    head = L.Dense(2, name="head")
    a = L.GRU(4, use_cudnn=False, name="a")(x)
    other_mask = keras.ops.any(keras.ops.not_equal(x, 1.0), axis=-1)
    b = L.GRU(4, use_cudnn=False, name="b", go_backwards=True)(x, mask=other_mask)
    return _randomize(keras.Model(x, [head(a), head(b)]), seed=2)


def _masked_concatenate(keras):
    """Two masked inputs concatenated along the features: Keras records the joined mask as a chain
    of operations (expand_dims, zeros_like, logical_or, concatenate, any) the LSTM then receives."""
    L = keras.layers
    a, b = keras.Input((6, 3), name="a"), keras.Input((6, 2), name="b")
    joined = L.Concatenate(name="join")([L.Masking(name="mask_a")(a), L.Masking(name="mask_b")(b)])
    y = L.LSTM(4, use_cudnn=False, name="lstm")(joined)
    return _randomize(keras.Model([a, b], L.Dense(2, name="head")(y)), seed=3)


def _siamese(keras, bidirectional=True):
    """One LSTM and one Bidirectional(GRU) each applied to both (masked) inputs, params shared; the
    two encodings subtracted, joined with the first, then a Dense (without the Bidirectional: the
    LSTM's two final h subtracted, then the Dense)."""
    L = keras.layers
    a, b = keras.Input((None, 3), name="left"), keras.Input((None, 3), name="right")
    pad = L.Masking(name="pad")
    lstm = L.LSTM(5, return_sequences=bidirectional, use_cudnn=False, name="siamese_lstm")
    za, zb = lstm(pad(a)), lstm(pad(b))
    if bidirectional:
        bigru = L.Bidirectional(L.GRU(3, use_cudnn=False), name="siamese_bigru")
        za, zb = bigru(za), bigru(zb)
    joined = L.Subtract(name="diff")([za, zb])
    if bidirectional:
        joined = L.Concatenate(name="join")([joined, za])
    return _randomize(keras.Model([a, b], L.Dense(2, name="head")(joined)), seed=4)


GRAPHS = {
    "encoder_decoder": _encoder_decoder,
    "shared_and_masked": _shared,
    "masked_concatenate": _masked_concatenate,
    "siamese": _siamese,
}
# the siamese graph's parity runs with the slow checks (its outputs are checked by default, below)
CASES = [pytest.param(n, marks=pytest.mark.slow) if n == "siamese" else n for n in sorted(GRAPHS)]
# outputs and gradients: the encoder-decoder by default (its masks, two inputs and a graph joined by a
# merge); the masked and shared graphs' outputs are checked by default from their files, their
# gradients with the slow checks
GRADIENT_CASES = only(sorted(GRAPHS), keep=("encoder_decoder",))


def _inputs(km, seed=0):
    rng = np.random.default_rng(seed)
    xs = []
    for t in km.inputs:
        shape = [B] + [d if d is not None else 8 - 2 * len(xs) for d in t.shape[1:]]
        x = rng.normal(size=shape).astype("float32")
        x[1, -3:] = 0.0  # post-padding, masked where a Masking layer looks
        x[2, -2:] = 1.0  # steps the explicit not_equal(x, 1) mask drops
        x[0, len(xs)] = 0.0  # a step masked in one input only
        xs.append(x)
    return xs


@pytest.mark.parametrize("name", GRADIENT_CASES)
def test_graph_outputs_and_gradients_equal_keras(keras, name):
    km = GRAPHS[name](keras)
    model, params = rc.from_keras(km)
    assert isinstance(model, rc.Model)
    xs = _inputs(km)
    x = xs if len(xs) > 1 else xs[0]
    ours, theirs = _as_list(model.apply(params, x)), _as_list(km(x, training=False))
    assert [a.shape for a in ours] == [b.shape for b in theirs]
    assert max(max_rel_err(a, b) for a, b in zip(ours, theirs)) < TOL
    for a, b in zip(rc.keras_weights(model, params), km.get_weights()):
        assert np.array_equal(np.asarray(a), b)

    probes = [np.random.default_rng(7 + i).normal(size=y.shape).astype("float32") for i, y in enumerate(theirs)]

    def contract(ys):
        return sum(jnp.sum(y * w) for y, w in zip(ys if isinstance(ys, (list, tuple)) else [ys], probes))

    d_params, d_x = jax.grad(lambda p, xx: contract(model.apply(p, xx)), argnums=(0, 1))(params, x)
    non_trainable = [v.value for v in km.non_trainable_variables]

    def keras_loss(trainable, xx):
        ys, _ = km.stateless_call(trainable, non_trainable, xx, training=False)
        return contract(ys)

    k_params, k_x = jax.grad(keras_loss, argnums=(0, 1))([v.value for v in km.trainable_variables], x)
    for a, b in zip(rc.keras_weights(model, d_params), k_params):
        assert np.max(np.abs(np.asarray(b))) > 0
        assert max_rel_err(a, b) < TOL
    for a, b in zip(_as_list(d_x), _as_list(k_x)):
        assert max_rel_err(a, b) < TOL


@pytest.mark.parametrize("name", CASES)
def test_graph_from_file_and_back_through_to_keras(keras, tmp_path, name):
    km = GRAPHS[name](keras)
    path = tmp_path / f"{name}.keras"
    km.save(path)
    model, params = rc.from_keras(str(path))
    xs = _inputs(km)
    x = xs if len(xs) > 1 else xs[0]
    theirs = _as_list(km(x, training=False))
    assert max(max_rel_err(a, b) for a, b in zip(_as_list(model.apply(params, x)), theirs)) < TOL
    back = rc.to_keras(model, params)
    assert max(max_rel_err(a, b) for a, b in zip(_as_list(back(x, training=False)), theirs)) < TOL
    again, again_params = rc.from_keras(back)

    def layers_of(m):  # Keras numbers its operations anew in each model
        return [(n, lay) for n, lay in zip(m.names, m.layers) if not isinstance(lay, rc.functional.Op)]

    assert layers_of(again) == layers_of(model) and again.input_names == model.input_names
    for a, b in zip(jax.tree_util.tree_leaves(again_params), jax.tree_util.tree_leaves(params)):
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_inputs_by_name_and_the_mask_keras_attaches_to_each_output(keras):
    km = _encoder_decoder(keras)
    model, params = rc.from_keras(km)
    src, tgt = _inputs(km)
    assert model.input_names == ("source", "target")
    by_name = model.apply(params, {"target": tgt, "source": src})
    by_order = model.apply(params, (src, tgt))
    assert all(np.array_equal(a, b) for a, b in zip(by_name, by_order))
    run = model.run(params, (src, tgt))
    assert run.output_mask == (None, None)  # the decoder takes no mask; a returned state carries none
    with pytest.raises(ValueError, match=r"x is missing the inputs \['source'\]"):
        model.apply(params, {"target": tgt})
    with pytest.raises(ValueError, match=r"one array per input \(\['source', 'target'\]\); got 1"):
        model.apply(params, [src])


def test_refuses_what_a_graph_cannot_be_read_as(keras):
    L = keras.layers
    x = keras.Input((7, 3))
    y = L.GRU(2, use_cudnn=False, name="g")(keras.ops.sin(x))
    with pytest.raises(ValueError, match=r"operation Sin is not supported in a graph; supported: not_equal"):
        rc.from_keras(keras.Model(x, y))
    y = L.Dropout(0.5, name="always")(L.GRU(2, use_cudnn=False, return_sequences=True)(x), training=True)
    with pytest.raises(ValueError, match=r"layer 'always' \(Dropout\) is called with training=True"):
        rc.from_keras(keras.Model(x, [y, y]))


@pytest.mark.slow
def test_gradient_flow_on_a_graph_against_a_loop_of_cell_steps(keras, x64):
    """||dL/ds_t|| of the encoder and decoder of a graph, against a float64 loop of cell steps with a
    perturbation added to each state (no rnncore scan, mask or graph code in the oracle). With the
    slow checks: gradient_flow on graphs (rows per call, unequal lengths) is checked by default in
    tests/test_functional_analysis.py, and this graph's gradients against Keras's above."""
    km = _encoder_decoder(keras)
    model, params = rc.from_keras(km)
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params)
    src, tgt = (jnp.asarray(a, jnp.float64) for a in _inputs(km))
    names = dict(zip(model.names, range(len(model.names))))
    enc, dec, head = (model.layers[names[n]] for n in ("encoder", "decoder", "head"))
    pe, pd, ph = (params[names[n]] for n in ("encoder", "decoder", "head"))
    y_target = jnp.asarray(np.random.default_rng(5).normal(size=(B, tgt.shape[1], 4)))
    h_target = jnp.asarray(np.random.default_rng(6).normal(size=(B, 6)))

    def loss_from(deltas_enc, deltas_dec):
        keep = jnp.any(src != 0.0, axis=-1)
        s = enc.cell.initial_state(B, jnp.float64)
        for t in range(src.shape[1]):
            new, _ = enc.cell.step(pe, s, src[:, t])
            new = jax.tree_util.tree_map(lambda a, b: jnp.where(keep[:, t, None], a, b), new, s)
            v = enc.cell.state_to_vector(new) + deltas_enc[:, t]
            s = enc.cell.vector_to_state(v)
        h_enc = s.h
        ys = []
        for t in range(tgt.shape[1]):
            s, _ = dec.cell.step(pd, s, tgt[:, t])
            s = dec.cell.vector_to_state(dec.cell.state_to_vector(s) + deltas_dec[:, t])
            ys.append(s.h @ ph.kernel + ph.bias)
        y = jnp.stack(ys, axis=1)
        return jnp.mean((y - y_target) ** 2) + jnp.mean((h_enc - h_target) ** 2)

    de = jnp.zeros((B, src.shape[1], 12))
    dd = jnp.zeros((B, tgt.shape[1], 12))
    g_enc, g_dec = jax.grad(loss_from, argnums=(0, 1))(de, dd)

    def loss(y_pred, y, mask=None):
        return jnp.mean((y_pred[0] - y[0]) ** 2) + jnp.mean((y_pred[1] - y[1]) ** 2)

    flow = rc.analysis.gradient_flow(model, params, (src, tgt), (y_target, h_target), loss=loss)
    assert flow.layer_names == ("encoder", "decoder")
    assert flow.layer_indices == (names["encoder"], names["decoder"])
    assert flow.steps == (src.shape[1], tgt.shape[1])
    np.testing.assert_allclose(flow.state_norms[0], np.linalg.norm(g_enc, axis=-1), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(
        flow.state_norms[1, :, : tgt.shape[1]], np.linalg.norm(g_dec, axis=-1), rtol=1e-10, atol=1e-14
    )
    assert np.isnan(flow.state_norms[1, :, tgt.shape[1] :]).all()


@pytest.mark.parametrize("bidirectional", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_rnncore_diagnose_measures_each_call_of_a_siamese_keras_model(keras, tmp_path, capsys, bidirectional):
    """A .keras graph whose LSTM (and Bidirectional(GRU)) is called on two inputs: the command prints
    one row per call (and direction), named by the Keras layer and the call, and draws them."""
    from rnncore import cli

    km = _siamese(keras, bidirectional)
    path = str(tmp_path / "siamese.keras")
    km.save(path)
    left, right = _inputs(km)
    right = np.concatenate([right, left[:, :2]], axis=1)  # both of 8 steps: the calls share compiled kernels
    model, params = rc.from_keras(path)
    assert max_rel_err(model.apply(params, (left, right)), km([left, right], training=False)) < TOL
    np.savez(tmp_path / "pair.npz", left=left, right=right)
    picture = tmp_path / "siamese.png"
    argv = ["diagnose", "--model", path, "--data", str(tmp_path / "pair.npz"), "--out", str(picture)]
    assert cli.main(argv + ["--lags", "1", "8"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("siamese.keras ")]
    names = ["siamese_lstm (call 1)", "siamese_lstm (call 2)"]
    if bidirectional:
        names += [f"siamese_bigru (call {k}).{d}" for k in (1, 2) for d in ("forward", "backward")]
    assert [r[len("siamese.keras ") :].strip().split("  ")[0] for r in rows] == names
    assert all(r.split()[-1] in ("vanishing", "exploding", "healthy") for r in rows)
    assert all(r.split()[-5] != "—" for r in rows)  # lag 8: the gradient reaching s_0
    assert picture.stat().st_size > 10_000
