"""rnncore.interop.flax.embedding and .normalization: nn.Embed and nn.LayerNorm in a stack, against
flax's own apply and jax.grad of it, both ways, and their refusals."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import max_rel_err
from flax_oracles import TOL, inputs, parity, random_variables

import rnncore as rc
from rnncore import layers as L


def _ids(seed=0, vocabulary=11):
    return jnp.asarray(np.random.default_rng(seed).integers(0, vocabulary, size=(3, 7)), jnp.int32)


def test_embed_layernorm_stack():
    module = nn.Sequential(
        [
            nn.Embed(11, 4),
            nn.LayerNorm(),
            nn.RNN(nn.GRUCell(5)),
            nn.LayerNorm(epsilon=1e-3, use_bias=False, use_fast_variance=False),
            nn.Dense(2),
        ]
    )
    ids = _ids()
    variables = random_variables(module, ids)
    out_err, grad_err = parity(module, variables, ids)
    assert out_err < TOL["float32"] and grad_err < TOL["float32"], (out_err, grad_err)
    model, params = rc.from_flax(module, variables)
    assert model.layers[0] == L.Embedding(11, 4)
    assert model.layers[1] == L.LayerNormalization(epsilon=1e-6)
    assert model.layers[3] == L.LayerNormalization(epsilon=1e-3, center=False)
    assert params[3].beta is None and jnp.array_equal(params[3].gamma, variables["params"]["layers_3"]["scale"])
    module2, variables2 = rc.to_flax(model, params)
    leaves = jax.tree_util.tree_leaves_with_path
    assert [(k, np.asarray(a).tolist()) for k, a in leaves(variables2)] == [
        (k, np.asarray(a).tolist()) for k, a in leaves(variables)
    ]
    assert max_rel_err(module2.apply(variables2, ids), module.apply(variables, ids)) < 1e-6


def test_layernorm_float64(x64):
    module = nn.Sequential(
        [nn.LayerNorm(use_scale=False, param_dtype=jnp.float64), nn.Dense(3, param_dtype=jnp.float64)]
    )
    x = inputs(dtype="float64") * 3 + 1
    variables = random_variables(module, x, dtype="float64")
    out_err, grad_err = parity(module, variables, x)
    assert out_err < TOL["float64"] and grad_err < TOL["float64"], (out_err, grad_err)


@pytest.mark.parametrize(
    "layer, message",
    [
        (L.Embedding(5, 2, mask_zero=True), r"mask_zero=True has no flax counterpart"),
        (L.Embedding(5, 2, padding_idx=0), r"padding_idx=0 has no flax counterpart"),
        (L.LayerNormalization(axis=1), r"axis=1 is not exported; expected -1"),
        (L.LayerNormalization(rms_scaling=True), r"rms_scaling=True has no flax nn.LayerNorm counterpart"),
    ],
)
def test_to_flax_refusals(layer, message):
    model = rc.Sequential([layer])
    shape = (4,) if isinstance(layer, L.Embedding) else (4, 3)
    params = model.init(jax.random.PRNGKey(0), shape)
    with pytest.raises(ValueError, match=message):
        rc.to_flax(model, params)


def test_from_flax_refusals():
    x = inputs()
    module = nn.LayerNorm(reduction_axes=(1, 2))
    with pytest.raises(
        ValueError, match=r"\(LayerNorm\): reduction_axes=\(1, 2\) is not supported; expected its default -1"
    ):
        rc.from_flax(module, random_variables(module, x))
    embed = nn.Embed(5, 2, dtype=jnp.bfloat16)
    with pytest.raises(ValueError, match=r"\(Embed\): dtype=bfloat16 differs from its params' dtype float32"):
        rc.from_flax(embed, random_variables(embed, _ids(vocabulary=5)))
