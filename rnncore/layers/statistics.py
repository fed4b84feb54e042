"""Moving statistics: params that a training forward updates and no gradient trains.

Keras keeps a layer's moving statistics (``BatchNormalization``'s ``moving_mean`` and
``moving_variance``) as *non-trainable* variables: the optimizer never sees them (no gradient, no
weight decay, no optimizer slots) and each training call assigns them anew from the batch
statistics of that call. rnncore states the same thing as a small protocol that a layer opts into:

* ``layer.non_trainable``: the names of the fields of its params NamedTuple that are not trained
  (empty, or absent, for a layer without statistics);
* ``layer.apply_and_update(params, x, mask=None) -> (y, params')``: the training forward and, from
  the same batch statistics, the params with the statistics Keras assigns after it.

:meth:`rnncore.Sequential.apply_and_update` and :meth:`rnncore.Model.apply_and_update` collect the
updates of every such layer in one forward; :func:`rnncore.fit` trains only
:func:`trainable_part` of each layer's params and writes the updated statistics back each step.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from rnncore import layers
    >>> bn = layers.BatchNormalization()
    >>> p = bn.init(jax.random.PRNGKey(0), (3,))
    >>> layers.has_moving_statistics(bn), layers.has_moving_statistics(layers.Dense(2))
    (True, False)
    >>> t = layers.trainable_part(bn, p)
    >>> t.moving_mean is None and t.gamma is not None
    True
    >>> layers.with_non_trainable(bn, t, p).moving_variance.shape
    (3,)
"""

from __future__ import annotations

from typing import Any

__all__ = ["non_trainable_fields", "has_moving_statistics", "trainable_part", "with_non_trainable"]


def non_trainable_fields(layer: Any) -> tuple:
    """The names of ``layer``'s params fields that no gradient trains (``()`` for most layers)."""
    return tuple(getattr(layer, "non_trainable", ()) or ())


def has_moving_statistics(layer: Any) -> bool:
    """Whether ``layer`` has non-trainable params that its training forward updates."""
    return bool(non_trainable_fields(layer)) and callable(getattr(layer, "apply_and_update", None))


def trainable_part(layer: Any, params: Any) -> Any:
    """``params`` with every non-trainable field set to None (``params`` itself when there is none):
    the tree an optimizer sees."""
    fields = non_trainable_fields(layer)
    if not fields:
        return params
    return params._replace(**{f: None for f in fields})


def with_non_trainable(layer: Any, trainable: Any, source: Any) -> Any:
    """``trainable`` with the non-trainable fields taken from ``source`` (the inverse of
    :func:`trainable_part`)."""
    fields = non_trainable_fields(layer)
    if not fields:
        return trainable
    return trainable._replace(**{f: getattr(source, f) for f in fields})
