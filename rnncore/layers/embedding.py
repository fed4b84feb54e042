"""``Embedding``: integer token ids to rows of a learned table, Keras 3's layer.

.. math::
    y_{b,t,:} = E_{x_{b,t},\\,:}, \\qquad E \\in \\mathbb R^{\\text{input\\_dim} \\times \\text{output\\_dim}}

Inputs are integer arrays of any shape, e.g. ``(B, T)`` token ids; the output appends
``output_dim``: ``(B, T, output_dim)``. Floating inputs are cast to ``int32`` first (truncated), as
Keras casts them.

Indices out of range: concrete inputs must lie in ``[0, input_dim)`` (a ``ValueError`` otherwise).
Under ``jit`` the values cannot be checked and Keras's gather on JAX is reproduced exactly: an index in
``[-input_dim, 0)`` wraps around (``-1`` is the last row) and any other index gives a row of NaN.

Masks: with ``mask_zero=True`` the mask passed on is ``x != 0`` (id 0 is padding); otherwise
Keras's Embedding passes no mask on (an incoming mask stops here), and neither does this layer.

``padding_idx=k`` is PyTorch's ``nn.Embedding(padding_idx=k)`` (an rnncore extension, not a Keras
argument, refused on export to Keras): row ``k`` gets no gradient, so training never changes it,
and ``init`` draws it as zeros. The forward is unchanged: id ``k`` still looks up row ``k``.
A negative ``k`` counts from the end, as in PyTorch, and is stored as ``k + input_dim``.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from rnncore import layers
    >>> emb = layers.Embedding(10, 4, mask_zero=True)
    >>> p = emb.init(jax.random.PRNGKey(0), (5,))
    >>> ids = jnp.array([[3, 1, 4, 0, 0]])
    >>> emb.apply(p, ids).shape
    (1, 5, 4)
    >>> emb.compute_mask(ids, None).tolist()
    [[True, True, True, False, False]]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from .. import checks, initializers
from .inputs import shape_str


class EmbeddingParams(NamedTuple):
    """Keras weight order: ``embeddings (input_dim, output_dim)``."""

    embeddings: jax.Array


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


@dataclass(frozen=True)
class Embedding:
    """Keras ``Embedding(input_dim, output_dim, embeddings_initializer="uniform", mask_zero=False)``,
    plus PyTorch's ``padding_idx`` (see the module's docstring for the semantics)."""

    input_dim: int
    output_dim: int
    embeddings_initializer: Any = "uniform"
    mask_zero: bool = False
    padding_idx: Optional[int] = None

    def __post_init__(self):
        object.__setattr__(self, "input_dim", checks.positive_int("Embedding input_dim", self.input_dim))
        object.__setattr__(self, "output_dim", checks.positive_int("Embedding output_dim", self.output_dim))
        object.__setattr__(self, "mask_zero", checks.boolean("Embedding mask_zero", self.mask_zero))
        initializers.get(self.embeddings_initializer, name="embeddings_initializer")
        if self.padding_idx is not None:
            k = checks.integer(
                "Embedding padding_idx",
                self.padding_idx,
                -self.input_dim,
                self.input_dim - 1,
                what=f"a row of the {self.input_dim}-row table, or None",
            )
            object.__setattr__(self, "padding_idx", k % self.input_dim)

    @property
    def supports_masking(self) -> bool:
        """As in Keras: only an Embedding with ``mask_zero=True`` makes (and so supports) masks."""
        return self.mask_zero

    def init(self, key, input_shape=None, dtype=jnp.float32) -> EmbeddingParams:
        """The table, drawn by ``embeddings_initializer`` (row ``padding_idx`` zero); ``input_shape`` is unused."""
        table = initializers.get(self.embeddings_initializer)(key, (self.input_dim, self.output_dim), dtype)
        if self.padding_idx is not None:
            table = table.at[self.padding_idx].set(0)
        return EmbeddingParams(table)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def compute_mask(self, x, mask):
        if not self.mask_zero:
            return None
        return jnp.asarray(x) != 0

    def _check_params(self, params) -> jax.Array:
        table = params.embeddings if isinstance(params, EmbeddingParams) else None
        if table is None and isinstance(params, (tuple, list)) and len(params) == 1:
            table = params[0]
        if table is None or getattr(table, "shape", None) != (self.input_dim, self.output_dim):
            got = shape_str(table) if table is not None else type(params).__name__
            raise ValueError(
                f"Embedding params.embeddings={got}; expected shape ({self.input_dim}, {self.output_dim}) "
                "(input_dim, output_dim)."
            )
        return jnp.asarray(table)

    def _check_ids(self, x) -> jax.Array:
        if not hasattr(x, "dtype"):
            x = np.asarray(x)
        if x.dtype == bool or not (jnp.issubdtype(x.dtype, jnp.integer) or jnp.issubdtype(x.dtype, jnp.floating)):
            raise ValueError(f"Embedding inputs have dtype {x.dtype}; expected integer token ids.")
        if not jnp.issubdtype(x.dtype, jnp.integer):
            x = jnp.asarray(x).astype(jnp.int32)
        if _is_concrete(x) and np.size(x):
            ids = np.asarray(x)
            low, high = int(ids.min()), int(ids.max())
            if low < 0 or high >= self.input_dim:
                bad = low if low < 0 else high
                raise ValueError(
                    f"Embedding inputs hold the id {bad}; expected ids in [0, {self.input_dim - 1}] "
                    f"(input_dim={self.input_dim})."
                )
        return jnp.asarray(x)

    def apply(self, params: EmbeddingParams, x, mask=None, training=False, rng=None):
        """Rows of the table for the ids ``x`` (any shape): shape ``x.shape + (output_dim,)``."""
        table = self._check_params(params)
        ids = self._check_ids(x)
        if self.padding_idx is not None:
            table = table.at[self.padding_idx].set(jax.lax.stop_gradient(table[self.padding_idx]))
        return jnp.take(table, ids, axis=0)
