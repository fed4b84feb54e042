"""Reading Keras configs whose arguments :func:`~rnncore.interop.keras.config.parse_args` has no converter for: sizes,
shapes, axes and other values rnncore's own layer checks validate (``input_dim``, ``target_shape``,
``axis``, ...), and the regularizers/constraints of any weight (``gamma_regularizer``, ...).

:func:`keras_args` passes the ``raw`` arguments on as they are (lists as tuples; the rnncore layer's
``__post_init__`` checks them, and :func:`.config.construct` prefixes its message with where), refuses
a regularizer or constraint that is not None, and hands the rest to :func:`.config.parse_args`.
:func:`weightless_kind` is the :class:`~.layer_kind.LayerKind` of a Keras layer without weights.

>>> from rnncore.interop.keras.context import Context
>>> ctx = Context("'m.keras'")
>>> keras_args(ctx, {"config": {"name": "r", "target_shape": [3, -1], "trainable": True}}, "r", ("target_shape",))
{'target_shape': (3, -1)}
>>> keras_args(ctx, {"config": {"gamma_regularizer": {"class_name": "L2"}}}, "layer 'n'", ())
Traceback (most recent call last):
...
ValueError: 'm.keras': layer 'n': gamma_regularizer={'class_name': 'L2'} is not supported (rnncore has no ...
"""

from __future__ import annotations

from typing import Any, Callable

from .config import MUST_BE_NONE, construct, parse_args
from .context import Context, short
from .layer_kind import LayerKind, no_arrays

__all__ = ["keras_args", "weightless_kind"]


def keras_args(
    ctx: Context, entry: Any, at: str, raw: tuple, parsed: tuple = (), elementwise: bool = True, ignored: tuple = ()
) -> dict:
    """rnncore keyword arguments from a Keras layer entry's config: ``raw`` ones as they are (lists
    as tuples), ``parsed`` ones through :func:`.config.parse_args`, ``ignored`` ones dropped (they do
    not change the numbers); anything else refused."""
    config = entry.get("config") if isinstance(entry, dict) else None
    if not isinstance(config, dict):
        raise ctx.error(f"{at}: malformed config {str(config)[:120]!r}.")
    out, rest = {}, {}
    for key, value in config.items():
        if key in raw:
            out[key] = tuple(value) if isinstance(value, list) else value
        elif key in ignored:
            continue
        elif key.endswith(("_regularizer", "_constraint")) and key not in MUST_BE_NONE:
            if value is not None:
                kind = key.split("_")[-1]
                raise ctx.error(
                    f"{at}: {key}={short(value)} is not supported (rnncore has no {kind}s and would silently "
                    "ignore it); expected None."
                )
        else:
            rest[key] = value
    out.update(parse_args(ctx, rest, at, parsed, elementwise))
    return out


def weightless_kind(
    keras_class: str,
    rnncore_type: type,
    h5_group: str,
    raw: tuple,
    to_keras: Callable[[Any, Any, str, str], Any],
    parsed: tuple = (),
    elementwise: bool = True,
) -> LayerKind:
    """The kind of a Keras layer without weights whose config holds ``raw`` and ``parsed`` arguments."""
    return LayerKind(
        keras_class=keras_class,
        rnncore_types=(rnncore_type,),
        h5_group=h5_group,
        from_config=lambda ctx, entry, at: construct(
            ctx, at, rnncore_type, **keras_args(ctx, entry, at, raw, parsed, elementwise)
        ),
        weight_shapes=lambda layer, input_shape: [],
        params=lambda layer, arrays: (),
        arrays=no_arrays,
        to_keras=to_keras,
    )
