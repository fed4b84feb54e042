"""The PyTorch converter, split by idea: ``from_torch``, ``to_torch`` and the parity table.

=====================  ===============================================================================
module                 what it knows
=====================  ===============================================================================
``recurrent``          PyTorch's recurrent weights in Keras's layout and back (transposes, gate orders,
                       the two biases)
``module_kind``        what one entry holds (``ModuleKind``), and how a spec is checked
``recurrent_kind``     the entries of ``nn.RNN``, ``nn.LSTM``, ``nn.GRU`` (layers per PyTorch layer, outputs)
``activation_kinds``   the entries of the activation modules (``nn.ReLU``, ``nn.GELU``, ...), each a Keras
                       activation
``module_kinds``       the table: one entry per PyTorch module kind
``arch``               the architecture description: a JSON-able list of layer specs
``weights``            a state_dict against a description (sizes read off, every name accounted for)
``forward_patterns``   a subclassed module's ``forward`` recognised from its source, never run
``stack_module``       the ``nn.Module`` :func:`to_torch` returns
``live``               a live module as a description and its weights
``files``              ``.pt``/``.pth`` (``weights_only=True``) and ``.safetensors`` state_dict files
``loading``            :func:`from_torch` (and :func:`~.loading.torch_gradients`)
``export``             :func:`to_torch`
``parity``             the parity table of ``rnncore check-torch``
=====================  ===============================================================================

Each module imports only the ones above it in this table; none imports ``torch`` at module level.
A new PyTorch module kind is one new entry in :data:`~rnncore.interop.torch.module_kinds.KINDS`.

Supported modules (mapped exactly; see :mod:`~rnncore.interop.torch.module_kinds`): ``nn.RNN`` (tanh, relu),
``nn.LSTM`` (``proj_size=0``), ``nn.GRU``, any ``num_layers``, ``bidirectional``, ``batch_first``,
``bias``, ``dropout`` between layers; ``nn.Linear``, ``nn.Dropout``, ``nn.Embedding``
(``padding_idx``), ``nn.LayerNorm`` (over the last axis); the activation modules of
:mod:`~rnncore.interop.torch.activation_kinds` (``nn.ReLU``, ``nn.Tanh``, ``nn.GELU``, ``nn.Softmax(dim=-1)``, ...).
"""

from .export import to_torch
from .loading import from_torch, torch_gradients

__all__ = ["from_torch", "to_torch", "torch_gradients"]
