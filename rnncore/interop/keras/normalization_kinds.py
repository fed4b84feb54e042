"""The Keras layer kinds of ``LayerNormalization`` (weights ``gamma, beta``) and ``BatchNormalization``
(weights ``gamma, beta, moving_mean, moving_variance``), each weight left out where Keras has none.

Keras's batch renormalization (``renorm=True``) and ``synchronized`` statistics are refused.

>>> from rnncore import layers
>>> LAYER_NORMALIZATION.weight_shapes(layers.LayerNormalization(axis=[1, 2], center=False), (5, 3))
[('gamma', (5, 3)), ('beta', None)]
>>> BATCH_NORMALIZATION.weight_shapes(layers.BatchNormalization(scale=False), (None, 3))
[('gamma', None), ('beta', (3,)), ('moving_mean', (3,)), ('moving_variance', (3,))]
"""

from __future__ import annotations

from typing import Any

from ... import layers as L
from .config import construct, keras_initializer
from .context import Context
from .kind_args import keras_args
from .layer_kind import LayerKind, fields_of

__all__ = ["LAYER_NORMALIZATION", "BATCH_NORMALIZATION"]

_LN_INITIALIZERS = ("beta_initializer", "gamma_initializer")
_BN_INITIALIZERS = _LN_INITIALIZERS + ("moving_mean_initializer", "moving_variance_initializer")


def _initializers(keras: Any, layer: Any, names: tuple, at: str) -> dict:
    kwargs = {}
    for arg in names:
        init = keras_initializer(keras, getattr(layer, arg), at, arg)
        if init is not None:
            kwargs[arg] = init
    return kwargs


def _present(arrays: list, flags: tuple) -> list:
    it = iter(arrays)
    return [next(it) if flag else None for flag in flags]


# --- LayerNormalization -------------------------------------------------------------------------------


def _ln_from_config(ctx: Context, entry: dict, at: str) -> L.LayerNormalization:
    kwargs = keras_args(ctx, entry, at, ("axis", "epsilon"), ("center", "scale", "rms_scaling") + _LN_INITIALIZERS)
    return construct(ctx, at, L.LayerNormalization, **kwargs)


def _ln_shapes(layer: L.LayerNormalization, input_shape: tuple) -> list:
    shape = layer.weight_shape(input_shape)
    return [("gamma", shape if layer.has_gamma else None), ("beta", shape if layer.has_beta else None)]


def _ln_to_keras(keras: Any, layer: L.LayerNormalization, dtype: str, at: str) -> Any:
    import warnings

    axis = list(layer.axis) if isinstance(layer.axis, tuple) else layer.axis
    kwargs = _initializers(keras, layer, _LN_INITIALIZERS, at)
    if layer.rms_scaling:
        kwargs["rms_scaling"] = True
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*rms_scaling.*")  # Keras's deprecation of its own argument
        return keras.layers.LayerNormalization(
            axis=axis, epsilon=layer.epsilon, center=layer.center, scale=layer.scale, dtype=dtype, **kwargs
        )


LAYER_NORMALIZATION = LayerKind(
    keras_class="LayerNormalization",
    rnncore_types=(L.LayerNormalization,),
    h5_group="layer_normalization",
    from_config=_ln_from_config,
    weight_shapes=_ln_shapes,
    params=lambda layer, arrays: L.LayerNormalizationParams(*_present(arrays, (layer.has_gamma, layer.has_beta))),
    arrays=fields_of(("gamma", "beta")),
    to_keras=_ln_to_keras,
)


# --- BatchNormalization -------------------------------------------------------------------------------


def _bn_from_config(ctx: Context, entry: dict, at: str) -> L.BatchNormalization:
    config = entry.get("config") if isinstance(entry, dict) else None
    if isinstance(config, dict):
        if config.get("renorm", False) is not False:
            raise ctx.error(
                f"{at}: renorm={config['renorm']!r} (batch renormalization) is not supported; expected False."
            )
        if config.get("synchronized", False) is not False:
            raise ctx.error(f"{at}: synchronized={config['synchronized']!r} is not supported; expected False.")
        if config.get("renorm_clipping") is not None:
            raise ctx.error(f"{at}: renorm_clipping={config['renorm_clipping']!r} is not supported; expected None.")
    kwargs = keras_args(
        ctx,
        entry,
        at,
        ("axis", "momentum", "epsilon"),
        ("center", "scale") + _BN_INITIALIZERS,
        ignored=(
            "renorm",
            "synchronized",
            "renorm_clipping",
            "renorm_momentum",
        ),  # checked above; unused without renorm
    )
    return construct(ctx, at, L.BatchNormalization, **kwargs)


def _bn_shapes(layer: L.BatchNormalization, input_shape: tuple) -> list:
    shape = (layer.channels(input_shape),)
    return [
        ("gamma", shape if layer.scale else None),
        ("beta", shape if layer.center else None),
        ("moving_mean", shape),
        ("moving_variance", shape),
    ]


def _bn_to_keras(keras: Any, layer: L.BatchNormalization, dtype: str, at: str) -> Any:
    return keras.layers.BatchNormalization(
        axis=layer.axis,
        momentum=layer.momentum,
        epsilon=layer.epsilon,
        center=layer.center,
        scale=layer.scale,
        dtype=dtype,
        **_initializers(keras, layer, _BN_INITIALIZERS, at),
    )


BATCH_NORMALIZATION = LayerKind(
    keras_class="BatchNormalization",
    rnncore_types=(L.BatchNormalization,),
    h5_group="batch_normalization",
    from_config=_bn_from_config,
    weight_shapes=_bn_shapes,
    params=lambda layer, arrays: L.BatchNormalizationParams(*_present(arrays, (layer.scale, layer.center, True, True))),
    arrays=fields_of(("gamma", "beta", "moving_mean", "moving_variance")),
    to_keras=_bn_to_keras,
)
