"""The parity table of ``rnncore check-torch``: its random configurations are ones PyTorch builds,
and a table computed against the installed PyTorch stays within 1e-5."""

import numpy as np
import pytest

pytest.importorskip("torch")
from rnncore.interop.torch import parity  # noqa: E402
from rnncore.interop.torch.arch import read_arch  # noqa: E402


def test_random_configurations_are_valid_descriptions():
    rng = np.random.default_rng(0)
    for _ in range(50):
        for kind in parity.LAYER_TYPES:
            _, spec = parity._random_case(kind, rng)
            read_arch([spec, {"type": "Linear", "name": "fc"}])


@pytest.mark.slow
def test_parity_table_rows():
    """Slow: tests/test_cli.py's check-torch test computes one row in the default run."""
    rows = parity.parity_table(seed=1, trials=2)
    assert [r[0] for r in rows][:6] == ["RNN", "RNN", "LSTM", "LSTM", "GRU", "GRU"]
    assert all(r[2] <= 1e-5 and r[3] <= 1e-5 for r in rows), rows
