"""The package's source compiles without warnings (an invalid escape such as ``\\o`` in a
non-raw docstring silently mangles its LaTeX), and no string holds the control character a valid
escape such as ``\\v`` in ``\\varphi`` turns into."""

import pathlib
import warnings

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "rnncore"


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_compiles_without_warnings(path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compile(path.read_text(), str(path), "exec")


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_string_holds_a_control_character_from_a_lost_backslash(path):
    r"""``\varphi``, ``\beta``, ``\frac`` in a non-raw string are valid escapes (vertical tab,
    backspace, form feed) and compile silently into a mangled formula."""
    import ast

    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            bad = sorted({repr(c) for c in node.value if c in "\a\b\v\f"})
            assert not bad, f"{path.name}:{node.lineno}: {', '.join(bad)} in {node.value[:60]!r}"
