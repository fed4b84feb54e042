"""Converters between rnncore and other frameworks, one subpackage per framework.

* :mod:`rnncore.interop.keras` — Keras 3 models (live, or ``.keras`` files) to rnncore and back
  (its public path is :mod:`rnncore.keras`).
* :mod:`rnncore.interop.flax` — flax linen modules to rnncore and back (``rc.from_flax``,
  ``rc.to_flax``).
* :mod:`rnncore.interop.torch` — PyTorch modules, state_dicts and ``.pt``/``.safetensors`` files to
  rnncore and back (``rc.from_torch``, ``rc.to_torch``).

A converter imports its framework only inside functions, so importing rnncore never imports it.
Each subpackage keeps what it knows about every foreign layer kind in one table (for Keras,
:mod:`rnncore.interop.keras.layer_kinds`): adding a layer kind is adding one entry there.
"""
