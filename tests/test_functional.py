"""rc.Model, a graph of layer calls: against the same layers applied by hand (float64), its mask
flow, shared params, wired initial states, and the errors a badly built graph raises."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnncore as rc
from rnncore import layers as L

B = 2


def _encoder_decoder():
    return rc.Model(
        inputs={"source": (None, 3), "target": (None, 2)},
        calls=[
            rc.Call("pad", L.Masking(0.0), "source", outputs="masked"),
            rc.Call("encoder", L.GRU(4, return_state=True), "masked", outputs=("_", "h")),
            rc.Call("decoder", L.GRU(4, return_sequences=True), "target", initial_state=("h",), outputs="seq"),
            rc.Call("head", L.Dense(2), "seq", outputs="y"),
            rc.Call("head", None, "h", outputs="y_h"),  # the same Dense, shared
        ],
        outputs=["y", "y_h"],
    )


def _xs(seed=0):
    rng = np.random.default_rng(seed)
    src = rng.normal(size=(B, 6, 3))
    src[1, 4:] = 0.0
    return jnp.asarray(src), jnp.asarray(rng.normal(size=(B, 5, 2)))


def test_a_graph_equals_its_layers_applied_by_hand(x64):
    model = _encoder_decoder()
    assert model.names == ("pad", "encoder", "decoder", "head")
    params = model.init(jax.random.PRNGKey(0), jnp.float64)
    src, tgt = _xs()
    y, y_h = model.apply(params, (src, tgt))
    pad, enc, dec, head = model.layers
    mask = pad.compute_mask(src, None)
    _, h = enc.apply(params[1], pad.apply((), src), mask=mask)
    seq = dec.apply(params[2], tgt, initial_state=(h,))
    np.testing.assert_allclose(y, head.apply(params[3], seq), rtol=1e-13)
    np.testing.assert_allclose(y_h, head.apply(params[3], h), rtol=1e-13)
    # the shared Dense gets the gradient of both of its calls
    g = jax.grad(lambda p: sum(jnp.sum(o) for o in model.apply(p, (src, tgt))))(params)
    g_by_hand = jax.grad(lambda ph: jnp.sum(head.apply(ph, seq)) + jnp.sum(head.apply(ph, h)))(params[3])
    np.testing.assert_allclose(g[3].kernel, g_by_hand.kernel, rtol=1e-12)


def test_masks_flow_along_the_graph_and_states_carry_none(x64):
    model = _encoder_decoder()
    params = model.init(jax.random.PRNGKey(0), jnp.float64)
    run = model.run(params, _xs())
    assert run.input_masks[1].tolist() == [[True] * 6, [True] * 4 + [False] * 2]  # encoder: Masking's mask
    assert run.input_masks[2] is None and run.output_mask == (None, None)


def test_initial_states_given_replace_the_wired_ones(x64):
    model = _encoder_decoder()
    params = model.init(jax.random.PRNGKey(0), jnp.float64)
    src, tgt = _xs()
    zeros = (None, None, (jnp.zeros((B, 4)),), None)
    y, _ = model.apply(params, (src, tgt), initial_states=zeros)
    seq = model.layers[2].apply(params[2], tgt)
    np.testing.assert_allclose(y, model.layers[3].apply(params[3], seq), rtol=1e-13)


def test_a_badly_built_graph_is_refused_by_name():
    dense = L.Dense(2)
    with pytest.raises(ValueError, match=r"calls\[0\] \('d'\) uses the tensor 'nowhere', which no input"):
        rc.Model({"x": (3,)}, [rc.Call("d", dense, "nowhere", outputs="y")], outputs="y")
    with pytest.raises(ValueError, match=r"calls\[0\] \('d'\) names its output 'x', a name already taken"):
        rc.Model({"x": (3,)}, [rc.Call("d", dense, "x", outputs="x")], outputs="x")
    with pytest.raises(ValueError, match=r"calls\[0\] \('r', LSTM\) returns 3 arrays; it names 1"):
        rc.Model({"x": (4, 3)}, [rc.Call("r", L.LSTM(2, return_state=True), "x", outputs="y")], outputs="y")
    with pytest.raises(ValueError, match=r"calls\[0\] \('d', Dense\) takes no initial_state"):
        rc.Model({"x": (3,)}, [rc.Call("d", dense, "x", outputs="y", initial_state=("x",))], outputs="y")
    with pytest.raises(ValueError, match=r"calls\[1\] \('e'\) gives no layer"):
        rc.Model(
            {"x": (3,)}, [rc.Call("d", dense, "x", outputs="y"), rc.Call("e", None, "y", outputs="z")], outputs="z"
        )
    with pytest.raises(ValueError, match=r"outputs names 'z', which no input or call makes"):
        rc.Model({"x": (3,)}, [rc.Call("d", dense, "x", outputs="y")], outputs="z")
    with pytest.raises(ValueError, match=r"inputs\['x'\] has shape \(0,\)"):
        rc.Model({"x": (0,)}, [rc.Call("d", dense, "x", outputs="y")], outputs="y")
    with pytest.raises(ValueError, match=r"Op name='sin'; expected one of not_equal"):
        rc.functional.Op("sin")


def test_bad_params_and_inputs_are_refused_by_name():
    model = _encoder_decoder()
    params = model.init(jax.random.PRNGKey(0))
    src, tgt = _xs()
    with pytest.raises(ValueError, match=r"one entry per layer \(4: pad, encoder, decoder, head\); got 3"):
        model.apply(params[:3], (src, tgt))
    with pytest.raises(ValueError, match=r"x\['target'\] must have shape \(batch, \.\.\.\) of rank 2 or more"):
        model.apply(params, (src, tgt[0, 0]))
