r"""Device meshes as ``mesh=`` arguments take them: ``None`` (one device), a
``jax.sharding.Mesh`` (used as is), or a sequence of devices, which becomes a one-axis mesh.

Two kinds of work are spread over devices: training shards each batch along its sample axis
(:func:`batch_mesh`, axis ``"batch"``; see :func:`rnncore.fit`), and sweeps shard their network axis
(:func:`network_mesh`, axis ``"networks"``; see :mod:`rnncore.sweeps`). In both, what is not split
is replicated (:func:`replicated`), and an array split along its leading axis uses every axis of the
mesh, ``NamedSharding(mesh, PartitionSpec(mesh.axis_names))`` (:func:`leading_axis_sharding`).

Example:
    >>> import jax
    >>> from rnncore import meshes
    >>> meshes.batch_mesh(None) is None
    True
    >>> mesh = meshes.batch_mesh(jax.devices())
    >>> mesh.axis_names, mesh.size == len(jax.devices())
    (('batch',), True)
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = ["mesh_over", "batch_mesh", "network_mesh", "replicated", "leading_axis_sharding"]


def mesh_over(mesh: Any, axis: str) -> Optional[Mesh]:
    """``None``, a ``jax.sharding.Mesh`` (returned as is), or a sequence of devices, which becomes
    a one-axis ``Mesh(devices, (axis,))``."""
    if mesh is None or isinstance(mesh, Mesh):
        return mesh
    try:
        devices = np.asarray(list(mesh), dtype=object)
    except TypeError:
        raise ValueError(
            f"mesh must be a jax.sharding.Mesh or a sequence of devices; got {type(mesh).__name__}."
        ) from None
    if devices.size == 0 or not all(isinstance(d, jax.Device) for d in devices):
        raise ValueError("mesh: a sequence of devices must be non-empty and hold jax devices (e.g. jax.devices()).")
    return Mesh(devices, (axis,))


def batch_mesh(mesh: Any) -> Optional[Mesh]:
    """``None``, a ``jax.sharding.Mesh`` (as is), or a sequence of devices as ``Mesh(devices, ("batch",))``."""
    return mesh_over(mesh, "batch")


def network_mesh(mesh: Any) -> Optional[Mesh]:
    """``None``, a ``jax.sharding.Mesh`` (returned as is), or a sequence of devices, which becomes
    ``Mesh(devices, ("networks",))``."""
    return mesh_over(mesh, "networks")


def replicated(tree: Any, mesh: Optional[Mesh]) -> Any:
    """``tree`` with every leaf placed whole on every device of ``mesh`` (as is when ``mesh`` is None)."""
    return tree if mesh is None else jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def leading_axis_sharding(mesh: Mesh) -> NamedSharding:
    """The sharding that splits an array's leading axis over every axis of ``mesh``."""
    return NamedSharding(mesh, PartitionSpec(mesh.axis_names))
