"""State_dict files: .pt/.pth read with weights_only=True (a pickle's payload never runs) and
.safetensors; from a file and a description, the model equals the one from the live module."""

import os
import pickle

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch_oracles import Head, errors, head_arch, randomize  # noqa: E402

import rnncore as rc  # noqa: E402
from rnncore.interop.torch import files  # noqa: E402


def _module():
    return randomize(Head(nn.GRU(3, 4, batch_first=True, bidirectional=True), nn.Linear(8, 2), "final"), 5)


def _same(a, b):
    (ma, pa), (mb, pb) = a, b
    assert ma == mb
    for x, y in zip(jax.tree_util.tree_leaves(pa), jax.tree_util.tree_leaves(pb)):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".safetensors"])
def test_a_file_and_its_description_give_the_live_modules_model(tmp_path, suffix):
    module = _module()
    arch = head_arch(module)
    path = str(tmp_path / ("m" + suffix))
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(module.state_dict(), path)
    else:
        torch.save(module.state_dict(), path)
    arch_path = tmp_path / "arch.json"
    arch_path.write_text(__import__("json").dumps(arch))
    live = rc.from_torch(module, arch=arch)
    _same(rc.from_torch(path, arch=arch), live)
    _same(rc.from_torch(path, arch=str(arch_path)), live)
    _same(rc.from_torch(module.state_dict(), arch=arch), live)
    x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype("float32")
    errs = errors(module, x, arch=arch)
    assert errs["outputs"] < 1e-6 and max(errs.values()) < 1e-5, errs


class _Payload:
    """A pickle whose loading would create a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("how", ["torch.save", "pickle.dump"])
def test_a_malicious_pickle_is_refused_and_its_payload_never_runs(tmp_path, how):
    marker = str(tmp_path / "payload_ran")
    path = str(tmp_path / "evil.pt")
    obj = {"rnn.weight_ih_l0": torch.zeros(12, 3), "evil": _Payload(marker)}
    if how == "torch.save":
        torch.save(obj, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(obj, f)
    assert not os.path.exists(marker)
    with pytest.raises(ValueError, match="holds objects other than tensors, which are not loaded"):
        rc.from_torch(path, arch=[{"type": "GRU", "name": "rnn"}])
    assert not os.path.exists(marker), "the pickle's payload ran"


def test_a_checkpoint_dict_with_other_entries_is_refused(tmp_path):
    path = str(tmp_path / "ckpt.pt")
    torch.save({"epoch": 3, "model_state_dict": nn.Linear(2, 2).state_dict()}, path)
    with pytest.raises(ValueError, match="entry 'epoch' is a int, not a tensor; expected a state_dict alone"):
        rc.from_torch(path, arch=[{"type": "Linear"}])
    torch.save([torch.zeros(2)], path)
    with pytest.raises(ValueError, match="holds a list; expected a state_dict"):
        rc.from_torch(path, arch=[{"type": "Linear"}])


def test_bad_files_are_refused_naming_the_file(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        rc.from_torch(str(tmp_path / "missing.pt"), arch=[{"type": "Linear"}])
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a pickle at all")
    with pytest.raises(ValueError, match="broken.pt"):
        rc.from_torch(str(broken), arch=[{"type": "Linear"}])
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(ValueError, match="bad.safetensors': is not a readable .safetensors file"):
        rc.from_torch(str(bad), arch=[{"type": "Linear"}])
    with pytest.raises(ValueError, match="a state_dict file holds weights, not what they compute; pass arch="):
        rc.from_torch(str(broken))
    other = tmp_path / "arch.json"
    other.write_text("[]")
    with pytest.raises(ValueError, match="unknown file type; expected a state_dict saved as .pt, .pth or .safetensors"):
        files.read_state_dict(str(other))


def test_half_precision_weights_are_refused(tmp_path):
    path = str(tmp_path / "half.pt")
    torch.save(nn.Linear(2, 2).half().state_dict(), path)
    with pytest.raises(ValueError, match="weight 'weight' has dtype float16; expected float32 or float64"):
        rc.from_torch(path, arch=[{"type": "Linear", "name": ""}])
