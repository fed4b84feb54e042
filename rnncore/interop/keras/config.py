"""Keras config values <-> rnncore arguments: origins, dtypes, activations, initializers, arguments.

A Keras layer config is a dict of its constructor arguments. :func:`parse_args` turns the ones a
layer kind wants into rnncore keyword arguments and refuses everything that would change the
numbers and that rnncore does not represent: regularizers and constraints (they change training),
quantization and LoRA, unknown activations, dtype policies other than float32/float64, and any
object that is not Keras's own (nothing named by a model is ever imported or run). Arguments that
do not change the numbers (``name``, ``seed``, ``use_cudnn``, ``lora_alpha``) are accepted and
ignored; initializers rnncore does not know fall back to its defaults with a warning.
:func:`keras_activation` and :func:`keras_initializer` go the other way, for :func:`~rnncore.keras.to_keras`.

>>> from rnncore.interop.keras.context import Context
>>> ctx = Context("'m.keras'")
>>> parse_args(ctx, {"units": 3, "activation": "tanh", "seed": 7}, "layer 'r' (SimpleRNN)", ("units", "activation"))
{'units': 3, 'activation': 'tanh'}
>>> parse_args(ctx, {"units": 0}, "layer 'r' (SimpleRNN)", ("units",))
Traceback (most recent call last):
...
ValueError: 'm.keras': layer 'r' (SimpleRNN): units=0; expected a positive integer.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Optional

from ... import activations, checks, initializers
from .context import Context, checked, short, where

__all__ = [
    "check_origin",
    "check_dtype",
    "check_trainable",
    "activation",
    "initializer",
    "parse_args",
    "entry_name",
    "construct",
    "keras_activation",
    "keras_initializer",
    "PARAM_INITIALIZERS",
    "MUST_BE_NONE",
    "IGNORED",
    "input_shape",
]

# Arguments that must be None: they change training (regularizers, constraints) or the numbers
# (quantization, LoRA), and rnncore would ignore them.
MUST_BE_NONE = (
    "kernel_regularizer",
    "recurrent_regularizer",
    "bias_regularizer",
    "activity_regularizer",
    "kernel_constraint",
    "recurrent_constraint",
    "bias_constraint",
    "quantization_config",
    "lora_rank",
)
# Arguments that do not change the numbers.
IGNORED = ("name", "seed", "use_cudnn", "lora_alpha")

_CUSTOM = "custom objects are refused (rnncore never imports or runs code named by a model)."


def entry_name(entry: Any) -> str:
    """The layer name of a serialized Keras layer (``'?'`` if it has none)."""
    config = entry.get("config") if isinstance(entry, dict) else None
    name = config.get("name") if isinstance(config, dict) else None
    return name if isinstance(name, str) else (entry.get("name") if isinstance(entry, dict) else None) or "?"


def construct(ctx: Context, at: str, factory: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``factory(*args, **kwargs)`` (an rnncore layer or cell), its errors prefixed with where."""
    try:
        return factory(*args, **kwargs)
    except (ValueError, TypeError) as e:
        raise ctx.error(f"{at}: {e}") from None


def check_origin(ctx: Context, entry: Any, what: str) -> str:
    """The class name of a serialized Keras object, refusing anything that is not Keras's own."""
    if not isinstance(entry, dict) or not isinstance(entry.get("class_name"), str):
        raise ctx.error(f"{what}: malformed config entry {str(entry)[:120]!r} (no class_name).")
    cls, module, registered = entry["class_name"], entry.get("module"), entry.get("registered_name")
    if module is not None and (not isinstance(module, str) or module.split(".")[0] != "keras"):
        raise ctx.error(f"{what}: class {cls!r} comes from module {module!r}, outside keras; {_CUSTOM}")
    if registered is not None and registered != cls:
        raise ctx.error(f"{what}: {cls!r} is a registered custom object ({registered!r}); {_CUSTOM}")
    return cls


INTEGER_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32")


def check_dtype(ctx: Context, value: Any, at: str, integers: bool = False) -> None:
    """Refuses a dtype (or dtype policy) other than float32/float64 (or, with ``integers``, an
    integer dtype: an input of token ids); None is the default."""
    if value is None:
        return
    name = value
    if isinstance(value, dict):
        cls = check_origin(ctx, value, f"{at}, dtype")
        name = (value.get("config") or {}).get("name")
        if cls not in ("DTypePolicy", "FloatDTypePolicy"):
            raise ctx.error(f"{at}: dtype policy {cls}({name!r}) is not supported; expected 'float32' or 'float64'.")
    if integers and name in INTEGER_DTYPES:
        return
    if name not in ("float32", "float64"):
        raise ctx.error(
            f"{at}: dtype={name!r} is not supported; expected 'float32' or 'float64' (mixed-precision and "
            "quantized policies change the numbers)."
        )


def check_trainable(ctx: Context, value: Any, at: str) -> None:
    """Warns for ``trainable=False``, which rnncore does not represent."""
    if value is False:
        ctx.warn(f"{at}: trainable=False is not represented in rnncore; training with rnncore updates this layer.")


def activation(ctx: Context, value: Any, at: str, arg: str, elementwise: bool = True) -> str:
    """The rnncore activation name of a Keras activation (a name, or a serialized Keras function)."""
    name = value
    if isinstance(value, dict):
        module = value.get("module")
        name = value.get("config")
        keras_function = (
            value.get("class_name") == "function"
            and isinstance(name, str)
            and isinstance(module, str)
            and module.split(".")[0] == "keras"
            and value.get("registered_name") in (None, name)
        )
        if not keras_function:
            raise ctx.error(f"{at}: {arg}={short(value)} is a custom activation (module {module!r}); {_CUSTOM}")
    if name is None:
        name = "linear"
    if not isinstance(name, str):
        raise ctx.error(f"{at}: {arg}={value!r} is not an activation name.")
    try:
        activations.get(name, elementwise=elementwise)
    except ValueError:
        known = ", ".join(activations.NAMES + (() if elementwise else ("softmax", "log_softmax")))
        raise ctx.error(f"{at}: {arg}={name!r} is not an activation rnncore knows; expected one of {known}.") from None
    return name


SIMPLE_INITIALIZERS = {
    "Zeros": "zeros",
    "Ones": "ones",
    "GlorotUniform": "glorot_uniform",
    "GlorotNormal": "glorot_normal",
    "HeUniform": "he_uniform",
    "HeNormal": "he_normal",
    "LecunUniform": "lecun_uniform",
    "LecunNormal": "lecun_normal",
}
# class -> (rnncore class, argument names with Keras defaults, snake name used when all are default)
PARAM_INITIALIZERS: dict[str, tuple[Any, dict, str]] = {
    "Orthogonal": (initializers.Orthogonal, {"gain": 1.0}, "orthogonal"),
    "Identity": (initializers.Identity, {"gain": 1.0}, "identity"),
    "IdentityInitializer": (initializers.Identity, {"gain": 1.0}, "identity"),
    "Constant": (initializers.Constant, {"value": 0.0}, "constant"),
    "RandomNormal": (initializers.RandomNormal, {"mean": 0.0, "stddev": 0.05}, "random_normal"),
    "RandomUniform": (initializers.RandomUniform, {"minval": -0.05, "maxval": 0.05}, "random_uniform"),
    "TruncatedNormal": (initializers.TruncatedNormal, {"mean": 0.0, "stddev": 0.05}, "truncated_normal"),
    "VarianceScaling": (
        initializers.VarianceScaling,
        {"scale": 1.0, "mode": "fan_in", "distribution": "truncated_normal"},
        "variance_scaling",
    ),
}


def _param_initializer(cls: str, config: dict, extra: dict) -> Optional[Any]:
    """The rnncore initializer for a parametrized Keras one, or None when it has no equivalent."""
    rc_cls, defaults, name = PARAM_INITIALIZERS[cls]
    args = {k: config.get(k, d) for k, d in defaults.items()}
    numeric_ok = all(
        isinstance(v, (int, float)) and not isinstance(v, bool)
        for k, v in args.items()
        if k not in ("mode", "distribution")
    )
    if not (set(extra) <= set(defaults) and numeric_ok):
        return None
    if args == defaults:
        return name
    try:
        return rc_cls(**args)
    except ValueError:
        return None


def initializer(ctx: Context, value: Any, at: str, arg: str) -> Optional[Any]:
    """The rnncore initializer for a Keras one, or None (keep rnncore's default) with a warning."""
    if isinstance(value, str):
        if value in initializers.NAMES:
            return value
        ctx.warn(f"{at}: {arg}={value!r} is not an initializer rnncore knows; using the default.")
        return None
    cls = check_origin(ctx, value, f"{at}, {arg}")
    config = value.get("config") or {}
    # seed does not change the distribution; input_axes/output_axes=None are the plain fans.
    extra = {k: v for k, v in config.items() if k != "seed" and not (k in ("input_axes", "output_axes") and v is None)}
    if cls in SIMPLE_INITIALIZERS and not extra:
        return SIMPLE_INITIALIZERS[cls]
    found = _param_initializer(cls, config, extra) if cls in PARAM_INITIALIZERS else None
    if found is not None:
        return found
    ctx.warn(
        f"{at}: {arg}={cls}({extra}) has no rnncore equivalent; using rnncore's default "
        "(this only matters when the model is re-initialized)."
    )
    return None


# --- arguments --------------------------------------------------------------------------------------

_OMIT = object()  # a converter's answer for "keep rnncore's default"


def _implementation(ctx: Context, value: Any, at: str, key: str) -> None:
    if value not in (1, 2):
        raise ctx.error(f"{at}: implementation={value!r}; expected 1 or 2.")


def _must_be_none(ctx: Context, value: Any, at: str, key: str) -> None:
    if value is not None:
        raise ctx.error(
            f"{at}: {key}={short(value)} is not supported (rnncore has no {key.split('_')[-1]}s and would "
            f"silently ignore it); expected None."
        )


# Arguments checked but never passed on: key -> check(ctx, value, at, key).
_CHECKED_ONLY: dict = {
    "dtype": lambda ctx, value, at, key: check_dtype(ctx, value, at),
    "trainable": lambda ctx, value, at, key: check_trainable(ctx, value, at),
    "implementation": _implementation,
    **{key: _must_be_none for key in MUST_BE_NONE},
}


def _mask_value(ctx: Context, value: Any, at: str, key: str, elementwise: bool) -> float:
    if not checks.is_real(value):
        raise ctx.error(f"{at}: mask_value={value!r}; expected a number.")
    return float(value)


def _noise_shape(ctx: Context, value: Any, at: str, key: str, elementwise: bool) -> Optional[tuple]:
    if value is not None and not (
        isinstance(value, (list, tuple)) and all(v is None or isinstance(v, int) for v in value)
    ):
        raise ctx.error(f"{at}: noise_shape={value!r}; expected None or a tuple of ints/None.")
    return None if value is None else tuple(value)


def _initializer_arg(ctx: Context, value: Any, at: str, key: str, elementwise: bool) -> Any:
    found = initializer(ctx, value, at, key)
    return _OMIT if found is None else found


_RATE_KEYS = ("dropout", "recurrent_dropout", "rate")
# Arguments passed on: key -> convert(ctx, value, at, key, elementwise); anything else is a flag.
_CONVERTERS: dict = {
    "units": lambda ctx, value, at, key, elementwise: checked(ctx, at, checks.positive_int, key, value),
    "activation": lambda ctx, value, at, key, elementwise: activation(ctx, value, at, key, elementwise),
    "recurrent_activation": lambda ctx, value, at, key, elementwise: activation(ctx, value, at, key, elementwise),
    **{
        key: (lambda ctx, value, at, key, elementwise: checked(ctx, at, checks.real, key, value, 0, 1))
        for key in _RATE_KEYS
    },
    "mask_value": _mask_value,
    "noise_shape": _noise_shape,
}


def _converter(key: str) -> Callable[..., Any]:
    if key in _CONVERTERS:
        return _CONVERTERS[key]
    if key.endswith("_initializer"):
        return _initializer_arg
    return lambda ctx, value, at, key, elementwise: checked(ctx, at, checks.boolean, key, value)


def parse_args(ctx: Context, config: Any, at: str, wanted: tuple, elementwise: bool = True) -> dict:
    """Keras constructor arguments -> rnncore keyword arguments; refuses anything unknown.

    ``wanted`` are the arguments the layer kind passes on; ``elementwise=False`` also allows
    ``softmax``/``log_softmax`` activations (a Dense layer)."""
    if not isinstance(config, dict):
        raise ctx.error(f"{at}: malformed config {str(config)[:120]!r}.")
    out = {}
    for key, value in config.items():
        if key in IGNORED:
            continue
        if key in _CHECKED_ONLY:
            _CHECKED_ONLY[key](ctx, value, at, key)
            continue
        if key not in wanted:
            raise ctx.error(f"{at}: argument {key}={short(value)} is not supported by rnncore.from_keras.")
        converted = _converter(key)(ctx, value, at, key, elementwise)
        if converted is not _OMIT:
            out[key] = converted
    return out


# --- rnncore -> Keras --------------------------------------------------------------------------------


def keras_activation(fn: Any, at: str, arg: str) -> Optional[str]:
    """The Keras name of an rnncore activation (a name, or one of :mod:`rnncore.activations`)."""
    if fn is None or isinstance(fn, str):
        return fn
    name = activations.name_of(fn)
    if name is None:
        raise ValueError(f"{at}: {arg}={fn!r} is a custom callable; Keras can only be given a named activation.")
    return name


def keras_initializer(keras: Any, init: Any, at: str, arg: str) -> Any:
    """The Keras initializer for an rnncore one, or None (Keras's default) with a warning."""
    if isinstance(init, str):
        try:
            return keras.initializers.get(init)
        except ValueError:
            pass
    else:
        simple = {initializers.Zeros: "Zeros", initializers.Ones: "Ones"}
        if type(init) in simple:
            return getattr(keras.initializers, simple[type(init)])()
        for cls_name, (rc_cls, defaults, _) in PARAM_INITIALIZERS.items():
            if type(init) is rc_cls and cls_name != "IdentityInitializer":
                return getattr(keras.initializers, cls_name)(**{k: getattr(init, k) for k in defaults})
    warnings.warn(
        f"to_keras: {at}: {arg}={init!r} has no Keras equivalent; the Keras layer uses Keras's default "
        "(the weights are set, so the numbers are unaffected).",
        UserWarning,
        stacklevel=4,
    )
    return None


def input_shape(ctx: Context, entry: dict) -> Optional[tuple]:
    """The input shape without the batch that an InputLayer declares (None if it does not),
    checking what matters."""
    config = entry.get("config") or {}
    at = where(entry_name(entry), "InputLayer")
    for flag in ("sparse", "ragged"):
        if config.get(flag):
            raise ctx.error(f"{at}: {flag}=True inputs are not supported.")
    check_dtype(ctx, config.get("dtype"), at, integers=True)
    shape = config.get("batch_shape", config.get("batch_input_shape"))
    if isinstance(shape, (list, tuple)):
        if len(shape) < 2 or not all(d is None or (isinstance(d, int) and d > 0) for d in shape[1:]):
            raise ctx.error(f"{at}: batch_shape={shape!r}; expected (batch, ...) with positive or None sizes.")
        return tuple(shape[1:])
    return None
