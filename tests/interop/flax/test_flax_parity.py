"""rnncore.interop.flax.parity: the table behind `rnncore check-flax` (its fixed stacks are the
default run's; the random sweeps are slow)."""

import pytest

from rnncore.interop.flax.parity import CELL_TYPES, parity_table


@pytest.mark.slow
def test_one_fixed_stack():
    rows = parity_table(kinds=["LSTMCell"])
    assert [(kind, desc) for kind, desc, _, _ in rows] == [("LSTMCell", "LSTMCell(6) + LSTMCell(5, reverse)")]
    assert max(rows[0][2:]) < 5e-6


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"kinds=\['LSTM'\]; expected a subset of SimpleCell"):
        parity_table(kinds=["LSTM"])
    with pytest.raises(ValueError, match=r"dtype='float16'; expected 'float32' or 'float64'"):
        parity_table(dtype="float16")


@pytest.mark.slow
@pytest.mark.parametrize("dtype, tol", [("float32", 1e-5), ("float64", 1e-12)])
def test_sweep(dtype, tol):
    rows = parity_table(seed=1, trials=3, dtype=dtype)
    assert {r[0] for r in rows} == set(CELL_TYPES)
    worst = max(max(r[2], r[3]) for r in rows)
    assert worst < tol, [r for r in rows if max(r[2], r[3]) >= tol]
