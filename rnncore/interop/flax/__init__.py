"""The flax (linen) converter, split by idea: :func:`from_flax`, :func:`to_flax`, :func:`flax_call`.

=================  ===================================================================================
module             what it knows
=================  ===================================================================================
``fields``         a flax module's fields and variables: what is ignored, what is refused, arrays by path
``activations``    flax-side activation functions <-> rnncore activation names
``cells``          the cell table: one entry per flax cell (``SimpleCell``, ``LSTMCell``, ...), params both ways
``module_kind``    what one module entry holds (:class:`~rnncore.interop.flax.module_kind.ModuleKind`)
``recurrent``      ``nn.RNN`` and ``nn.Bidirectional`` entries (flags, merge functions, ``last_step``)
``normalization``  the ``nn.LayerNorm`` entry
``embedding``      the ``nn.Embed`` entry
``module_kinds``   the table: one entry per flax module kind (and the ``Dense``, ``Dropout`` entries)
``loading``        :func:`from_flax`: a module and its variables -> ``(model, params)``
``export``         :func:`to_flax`: an rnncore model -> ``(nn.Sequential, variables)``
``calling``        :func:`flax_call`: an rnncore model called with flax's layout and output structure
``parity``         the parity table of ``rnncore check-flax`` (rnncore against flax per cell type)
=================  ===================================================================================

Each module imports only the ones above it in this table; none imports ``flax`` at module level.
Supported: flax linen ``nn.RNN`` over ``nn.SimpleCell``, ``nn.LSTMCell``, ``nn.OptimizedLSTMCell``,
``nn.GRUCell`` (with ``reverse``, ``return_carry``, ``time_major``; ``keep_order`` inside
``nn.Bidirectional``), ``nn.Bidirectional``, ``nn.Dense`` (and an activation function after it),
``nn.Dropout``, ``nn.LayerNorm``, ``nn.Embed``, and an ``nn.Sequential`` of those. flax nnx modules are not converted.
"""

from .calling import flax_call, flax_carry
from .export import to_flax
from .loading import from_flax
from .recurrent import last_step, merge_average, merge_multiply, merge_sum

__all__ = [
    "from_flax",
    "to_flax",
    "flax_call",
    "flax_carry",
    "last_step",
    "merge_sum",
    "merge_average",
    "merge_multiply",
]
