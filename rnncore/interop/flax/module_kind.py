"""What the converter knows about one flax module kind (:class:`ModuleKind`), and what one
conversion gives (:class:`Converted`). The entries and their table are in :mod:`~rnncore.interop.flax.module_kinds`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Optional

__all__ = ["ModuleKind", "Converted"]


class Converted(NamedTuple):
    """One flax module as rnncore sees it: the ``layer``, its ``params``, and ``time_major``
    (the module's time axis: True, False, or None for a module without one)."""

    layer: Any
    params: Any
    time_major: Optional[bool] = None


@dataclass(frozen=True)
class ModuleKind:
    """What the converter knows about one flax linen module class.

    * ``to_rnncore(module, params, at) -> Converted``: the rnncore layer equal to ``module`` (bound
      to its variables; ``params`` its ``"params"`` subtree, ``{}`` when it has none), refusing by
      name every field rnncore does not represent;
    * ``to_flax(nn, layer, params, at) -> (modules, params subtree or None)``: the flax modules
      (and plain functions, as ``nn.Sequential`` takes them) equal to an rnncore layer, in order;
      only the first one holds parameters;
    * ``rnncore_types``: the rnncore layer classes it exports.
    """

    flax_class: str
    rnncore_types: tuple
    to_rnncore: Callable[[Any, Any, str], Converted]
    to_flax: Callable[[Any, Any, Any, str], tuple]
