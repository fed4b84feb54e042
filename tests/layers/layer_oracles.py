"""What the layer tests share: a Keras layer's output and gradients through JAX, and the same for an
rnncore layer, for the loss :math:`\\langle P, y \\rangle` with a random projection ``P``."""

import jax
import jax.numpy as jnp


def keras_grads(klayer, weights, inputs, proj, **call_kwargs):
    """``(y, d_inputs, d_weights)`` of the Keras layer (JAX backend, ``stateless_call``) on ``weights``
    in its ``trainable_variables`` order."""
    if not klayer.built:
        klayer(inputs, **call_kwargs)
    tv = [jnp.asarray(w) for w in weights]

    def loss(tv, inputs):
        y, _ = klayer.stateless_call(tv, [], inputs, **call_kwargs)
        return jnp.sum(y * proj), y

    (_, y), (d_w, d_x) = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(tv, inputs)
    return y, d_x, d_w


def rnncore_grads(layer, params, inputs, proj, mask=None):
    """``(y, d_inputs, d_params)`` of the rnncore layer under ``jax.jit``."""

    @jax.jit
    def run(params, inputs):
        def loss(params, inputs):
            y = layer.apply(params, inputs, mask)
            return jnp.sum(y * proj), y

        (_, y), (d_p, d_x) = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(params, inputs)
        return y, d_x, d_p

    return run(params, inputs)


def projection(rng, shape, dtype="float32"):
    return jnp.asarray(rng.normal(size=shape).astype(dtype))
