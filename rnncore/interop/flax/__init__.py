"""The flax converter (linen and nnx), split by idea: :func:`from_flax`, :func:`to_flax`, :func:`flax_call`.

====================  ============================================================================================
module                what it knows
====================  ============================================================================================
``fields``            a linen module's fields and variables: what is ignored, what is refused, arrays by path
``activations``       flax-side activation functions <-> rnncore activation names
``cells``             the linen cell table (``SimpleCell``, ``LSTMCell``, ...), params both ways
``exportable``        what a layer must be for flax to hold it (the export refusals linen and nnx share)
``module_kind``       what one module entry holds (:class:`~rnncore.interop.flax.module_kind.ModuleKind`)
``recurrent``         ``nn.RNN`` and ``nn.Bidirectional`` entries (flags, merge functions, ``last_step``)
``normalization``     the ``nn.LayerNorm`` entry
``embedding``         the ``nn.Embed`` entry
``module_kinds``      the linen table: one entry per module kind (and the ``Dense``, ``Dropout`` entries)
``assembly``          converted modules and the functions between them -> an rnncore ``Sequential``
``nnx_fields``        an nnx module's settings and params: what is ignored, what is refused
``nnx_cells``         the nnx cell table (``SimpleCell``, ``LSTMCell``, ...), params both ways
``nnx_recurrent``     ``nnx.RNN`` and ``nnx.Bidirectional`` entries (and what one nnx entry holds)
``nnx_module_kinds``  the nnx table (and the ``Linear``, ``Dropout``, ``LayerNorm``, ``Embed`` entries)
``nnx_loading``       an nnx module (it holds its params) -> ``(model, params)``
``loading``           :func:`from_flax`: a linen module and its variables, or an nnx module -> ``(model, params)``
``nnx_export``        an rnncore model -> an ``nnx.Sequential`` holding the params
``export``            :func:`to_flax`: -> ``(nn.Sequential, variables)``, or (``api="nnx"``) an ``nnx.Sequential``
``calling``           :func:`flax_call`: an rnncore model called with flax's layout and output structure
``parity``            the parity table of ``rnncore check-flax`` (rnncore against flax linen per cell type)
====================  ============================================================================================

Each module imports only the ones above it in this table; none imports ``flax`` at module level.
Supported: flax linen ``nn.RNN`` over ``nn.SimpleCell``, ``nn.LSTMCell``, ``nn.OptimizedLSTMCell``,
``nn.GRUCell`` (with ``reverse``, ``return_carry``, ``time_major``; ``keep_order`` inside
``nn.Bidirectional``), ``nn.Bidirectional``, ``nn.Dense`` (and an activation function after it),
``nn.Dropout``, ``nn.LayerNorm``, ``nn.Embed``, and an ``nn.Sequential`` of those; the same modules of
flax nnx (``nnx.Linear`` for ``nn.Dense``; ``nnx.GRUCell`` has no recurrent ``h`` bias, so a GRU
whose one is non-zero goes to linen only).
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
