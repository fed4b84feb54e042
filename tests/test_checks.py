"""rnncore.checks: one signature (name, value, ...) and one wording for every argument check."""

import numpy as np
import pytest

from rnncore import checks


@pytest.mark.parametrize("value", [1, 7, np.int32(3), np.int64(12)])
def test_positive_int_accepts_and_returns_python_int(value):
    out = checks.positive_int("units", value)
    assert out == int(value) and type(out) is int


@pytest.mark.parametrize("value", [0, -2, 1.0, True, "3", None, np.float32(2)])
def test_positive_int_refuses_with_name_and_value(value):
    with pytest.raises(
        ValueError, match=rf"^units={value!r}; expected a positive integer\.$".replace("(", r"\(").replace(")", r"\)")
    ):
        checks.positive_int("units", value)


def test_integer_bounds_and_context():
    assert checks.integer("k", 3, minimum=1, maximum=3) == 3
    assert checks.integer("start", 0, minimum=0) == 0
    with pytest.raises(ValueError, match=r"^k=4; expected an integer in \[1, 3\] \(the state size\)\.$"):
        checks.integer("k", 4, minimum=1, maximum=3, what="the state size")
    with pytest.raises(ValueError, match=r"^seed=-1; expected an integer >= 0\.$"):
        checks.integer("seed", -1, minimum=0)
    with pytest.raises(ValueError, match=r"^n=False; expected an integer\.$"):
        checks.integer("n", False)


def test_real_intervals():
    assert checks.real("lr", 1) == 1.0 and type(checks.real("lr", 1)) is float
    assert checks.rate("dropout", 0.0) == 0.0
    with pytest.raises(ValueError, match=r"^dropout=1\.0; expected a float in \[0, 1\)\.$"):
        checks.rate("dropout", 1.0)
    with pytest.raises(ValueError, match=r"^eps=0; expected a positive float\.$"):
        checks.real("eps", 0, 0, low_open=True)
    with pytest.raises(ValueError, match=r"^x=nan; expected a float\.$"):
        checks.real("x", float("nan"))
    with pytest.raises(ValueError, match=r"^x=nan; expected a float >= 0\.$"):
        checks.real("x", float("nan"), 0)
    with pytest.raises(ValueError, match=r"^x=True; expected a float <= 1\.$"):
        checks.real("x", True, maximum=1)


def test_boolean_and_one_of():
    assert checks.boolean("flag", np.bool_(True)) is True
    with pytest.raises(ValueError, match=r"^flag=1; expected True or False\.$"):
        checks.boolean("flag", 1)
    assert checks.one_of("mode", None, ("concat", None)) is None
    with pytest.raises(ValueError, match=r"^mode='avg'; expected one of 'concat', None\.$"):
        checks.one_of("mode", "avg", ("concat", None))
    with pytest.raises(ValueError, match=r"expected one of 1, 2"):
        checks.one_of("n", True, (1, 2))  # True == 1, but a bool is not an integer choice
