"""The house's rules, read from the source: floors never point up, no module uses another module's
private names, and the optional frameworks are imported only where DESIGN says and only lazily.

The floor of every module is listed here once; a new module must be given one (the test fails
until it is), which is where a newcomer learns where a new file goes.
"""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "rnncore"

# floor -> modules (dotted, relative to rnncore; a package stands for every module in it)
FLOORS = {
    0: ["checks", "compilation"],
    1: ["activations", "initializers", "losses", "metrics"],
    2: ["cells"],
    3: ["bptt"],
    4: ["layers", "models", "functional"],
    5: [
        "depth",
        "analysis",
        "lyapunov",
        "diagnosis",
        "sweeps",
        "meshes",
        "history",
        "optimizers",
        "progress",
        "steps",
        "train",
        "callbacks",
        "checkpoints",
        "data",
        "interop",
        "keras",
    ],
    6: ["plot", "cli", "__main__", "__init__"],
}

# Deprecated aliases of moved names may import upward, lazily, inside a module-level __getattr__.
DEPRECATION_HOOK = "__getattr__"


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        yield ".".join(parts), path


def _floor(name: str):
    for floor, names in FLOORS.items():
        for n in names:
            if name == n or name.startswith(n + "."):
                return floor
    return None


def _package(name: str) -> str:
    """The top-level unit a module belongs to ("cells" for "cells.lstm", "bptt" for "bptt")."""
    return name.split(".")[0]


def _resolve(module: str, node: ast.ImportFrom, path: pathlib.Path) -> list:
    """The rnncore modules an import statement names (dotted, relative to rnncore)."""
    is_pkg = path.name == "__init__.py"
    here = module.split(".") if is_pkg else module.split(".")[:-1]
    if module == "__init__":
        here = []
    if node.level == 0:
        if not (node.module or "").startswith("rnncore"):
            return []
        base = node.module.split(".")[1:]
    else:
        up = node.level - 1
        base = (here[: len(here) - up] if up else here) + (node.module.split(".") if node.module else [])
    if node.module is None or node.level and not node.module:
        # `from . import a, b`: each name is a module
        return [".".join(base + [a.name]) for a in node.names]
    return [".".join(base)] + [".".join(base + [a.name]) for a in node.names]


def _imports(module: str, path: pathlib.Path):
    """(target module, lineno, in_function, in_deprecation_hook) for every rnncore import."""
    tree = ast.parse(path.read_text())
    out = []

    def visit(node, in_function=False, in_hook=False):
        for child in ast.iter_child_nodes(node):
            fn = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            hook = in_hook or (fn and child.name == DEPRECATION_HOOK and node is tree)
            if isinstance(child, ast.ImportFrom):
                for target in _resolve(module, child, path):
                    out.append((target, child.lineno, in_function, in_hook))
            elif isinstance(child, ast.Import):
                for a in child.names:
                    if a.name.startswith("rnncore."):
                        out.append((a.name[len("rnncore.") :], child.lineno, in_function, in_hook))
            visit(child, in_function or fn, hook)

    visit(tree)
    return out


MODULES = dict(_modules())
KNOWN = set(MODULES)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_has_a_floor(module):
    assert _floor(module) is not None, f"rnncore.{module} has no floor: give it one in FLOORS (and in DESIGN)"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_floors_never_point_up(module):
    mine = _floor(module)
    for target, line, _, in_hook in _imports(module, MODULES[module]):
        if target not in KNOWN or in_hook:
            continue  # a name imported from a module, not a module; or a deprecated alias
        theirs = _floor(target)
        assert theirs is not None and theirs <= mine, (
            f"rnncore/{MODULES[module].relative_to(PACKAGE)}:{line} imports rnncore.{target} "
            f"(floor {theirs}) from floor {mine}"
        )


def _private_uses(module: str, path: pathlib.Path):
    """Underscore names of another top-level unit that ``module`` uses: ``from .x import _y`` and
    ``x._y`` where ``x`` is a name bound to an imported rnncore module."""
    tree = ast.parse(path.read_text())
    bound = {}  # local name -> rnncore module
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            targets = _resolve(module, node, path)
            for a in node.names:
                local = a.asname or a.name
                full = [t for t in targets if t.endswith("." + a.name) or t == a.name]
                if full and full[0] in KNOWN:
                    bound[local] = full[0]
                src = targets[0] if targets else None
                if a.name.startswith("_") and not a.name.startswith("__") and src is not None:
                    if _package(src) != _package(module):
                        uses.append((node.lineno, f"{src}.{a.name}"))
            if targets and any(
                part.startswith("_") and part != "__init__" for t in targets[:1] for part in t.split(".")
            ):
                if _package(targets[0]) != _package(module):
                    uses.append((node.lineno, targets[0]))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound:
            target = bound[node.value.id]
            if node.attr.startswith("_") and not node.attr.startswith("__") and _package(target) != _package(module):
                uses.append((node.lineno, f"{target}.{node.attr}"))
    return uses


NAMEDTUPLE_API = {"_replace", "_fields", "_asdict", "_make", "_field_defaults"}


def _defined_private_names(package: str) -> set:
    """Underscore names a top-level unit defines (functions, methods, classes, assigned attributes)."""
    names = set()
    for module, path in MODULES.items():
        if _package(module) != package:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
    return {n for n in names if n.startswith("_")}


def _private_attribute_uses(module: str, path: pathlib.Path):
    """``obj._name`` on an object that is not ``self``/``cls``, where ``_name`` is not defined in
    ``module``'s own unit (a private member of a class from elsewhere), NamedTuple's API aside."""
    own = _defined_private_names(_package(module))
    uses = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_") or node.attr.startswith("__"):
            continue
        if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
            continue
        if node.attr in NAMEDTUPLE_API or node.attr in own:
            continue
        if isinstance(node.value, ast.Name) and node.value.id in ("jax", "np", "jnp", "os", "sys"):
            continue
        uses.append((node.lineno, ast.unparse(node)))
    return uses


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_private_members_of_classes_from_elsewhere(module):
    uses = _private_attribute_uses(module, MODULES[module])
    assert not uses, f"rnncore.{module} uses private members defined in other modules: {uses}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_private_names_across_packages(module):
    uses = _private_uses(module, MODULES[module])
    assert not uses, f"rnncore.{module} uses private names of other modules: {uses}"


def _top_level_imports(path: pathlib.Path) -> set:
    tree = ast.parse(path.read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _all_imports(path: pathlib.Path) -> set:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", sorted(MODULES))
def test_optional_frameworks_only_lazily_and_only_in_interop(module):
    path = MODULES[module]
    eager = _top_level_imports(path)
    assert not eager & {"keras", "torch", "flax", "tensorflow", "matplotlib"}, (
        f"rnncore.{module} imports {sorted(eager & {'keras', 'torch', 'flax', 'tensorflow', 'matplotlib'})} "
        "at import time"
    )
    used = _all_imports(path)
    if "keras" in used or "torch" in used or "flax" in used:
        assert _package(module) == "interop", f"rnncore.{module} imports a foreign framework outside rnncore.interop"
    if "matplotlib" in used:
        assert _floor(module) == 6, f"rnncore.{module} imports matplotlib below floor 6"
