"""rnncore.layers.Embedding against keras.layers.Embedding (JAX backend) and a NumPy gather/scatter."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import max_rel_err
from covering import diagonal
from keras_oracle import keras_run, projection, rc_run

from rnncore import layers

V, D = 7, 3


def keras_embedding(keras, table, **kw):
    layer = keras.layers.Embedding(V, D, **kw)
    layer.build()
    layer.set_weights([table])
    return layer


def random_table(rng, dtype="float32"):
    return (rng.normal(size=(V, D)) * 0.7 + np.arange(V * D).reshape(V, D) * 0.01).astype(dtype)


@pytest.mark.parametrize("mask_zero, shape", diagonal([False, True], [(3, 5), (4,), (2, 3, 2)]))
def test_matches_keras_outputs_mask_and_gradient(keras, shape, mask_zero):
    rng = np.random.default_rng(1)
    table = random_table(rng)
    ids = rng.integers(0, V, size=shape).astype("int32")
    ids.flat[0] = 0  # padding present
    k = keras_embedding(keras, table, mask_zero=mask_zero)
    ky, _, (kg,), _ = keras_run(k, ids, wrt_x=False)
    r = layers.Embedding(V, D, mask_zero=mask_zero)
    ry, _, rg = rc_run(r, layers.EmbeddingParams(jnp.asarray(table)), ids, wrt_x=False)
    assert ry.shape == shape + (D,) == r.compute_output_shape(shape)
    assert max_rel_err(ry, ky) == 0.0
    assert max_rel_err(rg.embeddings, kg) <= 1e-6
    k_mask = k.compute_mask(ids)
    r_mask = r.compute_mask(ids, None)
    if mask_zero:
        np.testing.assert_array_equal(np.asarray(r_mask), np.asarray(k_mask))
    else:
        assert k_mask is None and r_mask is None
    assert r.supports_masking == k.supports_masking == mask_zero


def test_incoming_mask_stops_without_mask_zero_as_in_keras(keras):
    ids = np.array([[1, 2, 0]], "int32")
    incoming = np.array([[True, False, True]])
    k = keras_embedding(keras, random_table(np.random.default_rng(2)))
    assert k.compute_mask(ids, incoming) is None
    assert layers.Embedding(V, D).compute_mask(ids, incoming) is None
    masked = layers.Embedding(V, D, mask_zero=True).compute_mask(ids, incoming)
    np.testing.assert_array_equal(
        np.asarray(masked),
        np.asarray(keras_embedding(keras, np.zeros((V, D)), mask_zero=True).compute_mask(ids, incoming)),
    )


def test_float_ids_cast_as_keras(keras):
    table = random_table(np.random.default_rng(3))
    ids = np.array([[1.7, 2.2, 0.0, 6.9]], "float32")
    ky = keras_embedding(keras, table)(ids)
    ry = layers.Embedding(V, D).apply(layers.EmbeddingParams(jnp.asarray(table)), ids)
    assert max_rel_err(ry, ky) == 0.0


def test_out_of_range_ids_under_jit_as_keras(keras):
    """Under jit values cannot be checked: Keras's gather on JAX (negatives wrap, the rest NaN)."""
    table = random_table(np.random.default_rng(4))
    ids = np.array([[0, V - 1, V, -1, -V, -V - 1, 100]], "int32")
    ky = keras_embedding(keras, table)(ids)
    layer = layers.Embedding(V, D)
    ry = jax.jit(layer.apply)(layers.EmbeddingParams(jnp.asarray(table)), ids)
    assert max_rel_err(ry, ky) == 0.0
    assert np.isnan(np.asarray(ry)[0, 2]).all() and np.isnan(np.asarray(ry)[0, 5]).all()


@pytest.mark.parametrize("bad", [V, -1, 100])
def test_out_of_range_concrete_ids_raise(bad):
    layer = layers.Embedding(V, D)
    p = layer.init(jax.random.PRNGKey(0), (3,))
    with pytest.raises(ValueError, match=rf"Embedding inputs hold the id {bad}; expected ids in \[0, {V - 1}\]"):
        layer.apply(p, jnp.array([[0, bad, 1]]))


def test_float64_gather_and_scatter_gradient_against_numpy(x64):
    rng = np.random.default_rng(5)
    table = rng.normal(size=(V, D))
    ids = rng.integers(0, V, size=(4, 6))
    for padding_idx in (None, 2, -1):
        layer = layers.Embedding(V, D, padding_idx=padding_idx)
        y, _, g = rc_run(layer, layers.EmbeddingParams(jnp.asarray(table)), jnp.asarray(ids), wrt_x=False)
        assert y.dtype == jnp.float64
        want_y = table[ids]
        cot = np.asarray(projection(want_y.shape, dtype="float64"))
        want_g = np.zeros_like(table)
        np.add.at(want_g, ids, cot)
        if padding_idx is not None:
            want_g[padding_idx % V] = 0.0
        assert max_rel_err(y, want_y) == 0.0
        assert max_rel_err(g.embeddings, want_g) <= 1e-12


def test_padding_idx_freezes_its_row_only():
    layer = layers.Embedding(V, D, padding_idx=-2)
    assert layer.padding_idx == V - 2
    p = layer.init(jax.random.PRNGKey(1), (4,))
    assert np.all(np.asarray(p.embeddings)[V - 2] == 0.0)
    assert np.all(np.asarray(p.embeddings)[: V - 2] != 0.0)
    table = jnp.asarray(random_table(np.random.default_rng(6)))
    ids = jnp.array([[V - 2, 1, V - 2, 3]])
    y_pad = layer.apply(layers.EmbeddingParams(table), ids)
    y_plain = layers.Embedding(V, D).apply(layers.EmbeddingParams(table), ids)
    np.testing.assert_array_equal(np.asarray(y_pad), np.asarray(y_plain))  # the forward is unchanged
    g = jax.grad(lambda t: jnp.sum(layer.apply(layers.EmbeddingParams(t), ids) ** 2))(table)
    assert np.all(np.asarray(g)[V - 2] == 0.0) and np.any(np.asarray(g)[1] != 0.0)


def test_default_initializer_is_keras_uniform():
    p = layers.Embedding(50, 40).init(jax.random.PRNGKey(2), (5,))
    e = np.asarray(p.embeddings)
    assert e.shape == (50, 40) and e.dtype == np.float32
    assert -0.05 <= e.min() < -0.045 and 0.045 < e.max() < 0.05
    assert abs(e.mean()) < 0.003


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"input_dim": 0, "output_dim": 2}, r"Embedding input_dim=0; expected a positive integer"),
        ({"input_dim": 3, "output_dim": 2.5}, r"Embedding output_dim=2.5; expected a positive integer"),
        ({"input_dim": 3, "output_dim": 2, "mask_zero": "yes"}, r"Embedding mask_zero='yes'; expected True or False"),
        (
            {"input_dim": 3, "output_dim": 2, "padding_idx": 3},
            r"Embedding padding_idx=3; expected an integer in \[-3, 2\]",
        ),
        ({"input_dim": 3, "output_dim": 2, "embeddings_initializer": "nope"}, r"embeddings_initializer='nope'"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        layers.Embedding(**kwargs)


def test_bad_inputs_and_params():
    layer = layers.Embedding(V, D)
    p = layer.init(jax.random.PRNGKey(0), (2,))
    with pytest.raises(ValueError, match="Embedding inputs have dtype bool; expected integer token ids"):
        layer.apply(p, jnp.array([[True, False]]))
    with pytest.raises(ValueError, match=rf"Embedding params.embeddings=\(3, 3\); expected shape \({V}, {D}\)"):
        layer.apply(layers.EmbeddingParams(jnp.zeros((3, 3))), jnp.array([[1]]))
