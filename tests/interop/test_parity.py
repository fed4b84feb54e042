"""The parity table of ``rnncore check-keras``: its random stacks are ones Keras accepts, and a
table computed against the installed Keras stays within 1e-5."""

import numpy as np
import pytest

from rnncore.interop.keras import parity


def test_random_bidirectional_stacks_are_ones_keras_accepts():
    """Keras refuses Bidirectional around a go_backwards layer; the generator must never draw one."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        _, layers = parity._random_case("Bidirectional", rng)
        assert not layers[0].forward_layer.go_backwards and layers[0].backward_layer.go_backwards


@pytest.mark.slow
def test_parity_table_rows(keras, monkeypatch):
    """Slow: tests/test_cli.py's check-keras test computes the same table in the default run."""
    monkeypatch.setattr(parity, "_fixed_cases", lambda: [])
    rows = parity.parity_table(seed=3, trials=1, kinds=["LSTM"])
    assert [r[0] for r in rows] == ["LSTM"]
    assert rows[0][2] <= 1e-5 and rows[0][3] <= 1e-5
