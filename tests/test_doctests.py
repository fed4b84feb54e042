"""Every docstring example in the package runs and prints what it says."""

import doctest
import importlib
import pkgutil

import pytest

import rnncore

MODULES = sorted(
    m.name for m in pkgutil.walk_packages(rnncore.__path__, prefix="rnncore.") if not m.name.endswith("__main__")
)


@pytest.mark.parametrize("name", ["rnncore", *MODULES])
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
