"""Keras 3 (JAX backend) as the oracle of a layer: its outputs and the gradients of a random
projection of them with respect to its inputs and its weights, through ``stateless_call``."""

import jax
import jax.numpy as jnp
import numpy as np


def projection(shape, seed: int = 7, dtype="float32"):
    """A fixed random cotangent: the loss is ``sum(y * projection)``."""
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape).astype(dtype))


def keras_run(layer, x, *, wrt_x: bool = True, seed: int = 7, **call_kwargs):
    """``(y, dL/dx or None, [dL/dw for each trainable weight], new non-trainable values)`` of a built
    Keras layer for ``L = sum(y * projection(y.shape))`` (a weightless layer unbuilt yet is built by
    a call), in one jitted forward and backward."""
    if not layer.built:
        layer(x)
    trainable = [v.value for v in layer.trainable_variables]
    frozen = [v.value for v in layer.non_trainable_variables]
    out = jax.eval_shape(lambda tv, x: layer.stateless_call(tv, frozen, x, **call_kwargs)[0], trainable, x)
    cot = projection(out.shape, seed, out.dtype)

    def loss(tv, x):
        y, new_frozen = layer.stateless_call(tv, frozen, x, **call_kwargs)
        return jnp.sum(y * cot), (y, new_frozen)

    argnums = (0, 1) if wrt_x else 0
    (_, (y, new_frozen)), grads = jax.jit(jax.value_and_grad(loss, argnums=argnums, has_aux=True))(trainable, x)
    gw, gx = (grads[0], grads[1]) if wrt_x else (grads, None)
    return y, gx, list(gw), new_frozen


def rc_run(layer, params, x, *, wrt_x: bool = True, seed: int = 7, **apply_kwargs):
    """The same for an rnncore layer: ``(y, dL/dx or None, grads of params)`` (grads a params-shaped
    tree), eagerly, so that the layer's own checks run on concrete values."""
    y = layer.apply(params, x, **apply_kwargs)
    cot = projection(np.shape(y), seed, np.asarray(y).dtype)

    def loss(p, x):
        return jnp.sum(layer.apply(p, x, **apply_kwargs) * cot)

    argnums = (0, 1) if wrt_x else 0
    grads = jax.grad(loss, argnums=argnums)(params, x)
    gp, gx = (grads[0], grads[1]) if wrt_x else (grads, None)
    return y, gx, gp
