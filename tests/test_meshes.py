"""rnncore.meshes: the mesh= arguments of fit and the sweeps, in one place."""

import warnings

import jax
import numpy as np
import pytest
from jax.sharding import Mesh

from rnncore import meshes, sweeps, train


@pytest.mark.parametrize("make, axis", [(meshes.batch_mesh, "batch"), (meshes.network_mesh, "networks")])
def test_a_sequence_of_devices_becomes_a_one_axis_mesh(make, axis):
    assert make(None) is None
    mesh = make(jax.devices())
    assert isinstance(mesh, Mesh) and mesh.axis_names == (axis,) and mesh.size == len(jax.devices())
    assert make(mesh) is mesh
    assert meshes.mesh_over(jax.devices()[:1], "x").axis_names == ("x",)


@pytest.mark.parametrize(
    "bad, match", [(3, "mesh must be a jax.sharding.Mesh"), ([], "non-empty"), (["cpu"], "hold jax devices")]
)
def test_what_is_not_a_mesh_is_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        meshes.mesh_over(bad, "batch")


def test_replicated_and_leading_axis_sharding():
    tree = (np.ones(3), np.zeros((2, 2)))
    assert meshes.replicated(tree, None) is tree
    mesh = meshes.batch_mesh(jax.devices())
    placed = meshes.replicated(tree, mesh)
    assert all(a.sharding.is_fully_replicated for a in placed)
    assert meshes.leading_axis_sharding(mesh).spec == jax.sharding.PartitionSpec(("batch",))


def test_sweeps_keeps_its_names_as_plain_re_exports():
    assert sweeps.mesh_over is meshes.mesh_over and sweeps.network_mesh is meshes.network_mesh


def test_train_batch_mesh_is_a_deprecated_alias():
    with pytest.warns(DeprecationWarning, match=r"rnncore\.train\.batch_mesh is deprecated; use rnncore\.meshes"):
        alias = train.batch_mesh
    assert alias is meshes.batch_mesh
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert train.fit is not None  # the names that stayed do not warn
