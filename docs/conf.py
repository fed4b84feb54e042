"""Sphinx configuration of rnncore's documentation site (``make docs``).

The site has three parts, none of them a copy that could go stale:

- the guide: README.md split at its ``##`` headings, one page per section, regenerated from README.md
  on every build (into ``docs/guide/``, which git ignores);
- the notebooks: ``notebooks/NN_*.py`` (jupytext percent files, read through the ``docs/notebooks``
  link) executed by myst-nb with their figures, in the notebooks' fast mode (``RNNCORE_FAST=1``)
  unless ``RNNCORE_FAST=0`` is set;
- the API reference: autosummary walks the ``rnncore`` package recursively, so a new module appears
  without editing anything here.

Nothing is loaded from the internet when the site is built or viewed: MathJax is served from
``_static/mathjax``, copied from the npm package ``mathjax`` that ``make docs`` installs into
``docs/_build/vendor`` (never committed).
"""

import logging
import os
import pathlib
import re
import shutil
import sys

DOCS = pathlib.Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))

import rnncore  # noqa: E402  (after the path: the checkout's package, not an installed one)

project = "rnncore"
author = "the rnncore authors"
copyright = "the rnncore authors"
release = getattr(rnncore, "__version__", "")
version = release

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]

exclude_patterns = ["_build", "conf.py", "notebooks/README.md", "**/.ipynb_checkpoints", "**/__pycache__"]
templates_path = ["_templates"]

# The notebooks are jupytext percent files; myst-nb reads them through jupytext.
nb_custom_formats = {".py": ["jupytext.reads", {"fmt": "py:percent"}]}
# Executions are cached, keyed on each notebook's code (not on rnncore's): after changing the package,
# RNNCORE_DOCS_EXECUTION=force re-executes them (off: not at all). The fast and the full sizes keep
# separate caches, and switching between them rereads every page (rnncore_notebook_sizes, see setup).
os.environ.setdefault("RNNCORE_FAST", "1")
rnncore_notebook_sizes = "fast" if os.environ["RNNCORE_FAST"] == "1" else "full"
nb_execution_mode = os.environ.get("RNNCORE_DOCS_EXECUTION", "cache")
nb_execution_cache_path = str(DOCS / "_build" / "jupyter_cache" / rnncore_notebook_sizes)
nb_execution_timeout = 1200
nb_execution_raise_on_error = True  # a notebook whose assertion fails breaks the build
nb_execution_show_tb = True
nb_merge_streams = True

# The environment tests/test_notebooks.py runs the notebooks in; the kernels inherit it.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))  # this checkout
os.environ.update(
    {
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "KERAS_BACKEND": "jax",
        "OPENBLAS_NUM_THREADS": "1",
        "PYTHONWARNINGS": "ignore::DeprecationWarning",
    }
)

myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

# API reference: autosummary walks the package (see api.md and _templates/autosummary/module.rst).
autosummary_generate = True
autosummary_imported_members = False
autosummary_ignore_module_all = True
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
add_module_names = False
# Type hints name jax, numpy and optax types that are not documented here; links to them would be
# guesses, so unresolved references are not warnings.
nitpicky = False

html_theme = "furo"
html_title = "rnncore"
html_static_path = ["_static"]

# MathJax 3, served from the site itself (mathjax_path is relative to _static).
MATHJAX = DOCS / "_build" / "vendor" / "node_modules" / "mathjax" / "es5"
mathjax_path = "mathjax/tex-chtml.js"
mathjax3_config = {"options": {"enableMenu": False}}


def _copy_mathjax(app):
    if app.builder.format != "html":
        return
    if not (MATHJAX / "tex-chtml.js").is_file():
        raise RuntimeError(
            f"MathJax not found at {MATHJAX}: run `make docs` (it installs the npm package mathjax "
            "there); the site never loads it from a CDN"
        )
    target = pathlib.Path(app.outdir) / "_static" / "mathjax"
    if not (target / "tex-chtml.js").is_file():
        shutil.copytree(MATHJAX, target, dirs_exist_ok=True)


# --- the guide: README.md's sections as pages --------------------------------------------------------

GUIDE = DOCS / "guide"


def _slug(title: str) -> str:
    """The anchor GitHub and MyST give a heading: lowercase, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", title.strip().lower())
    return text.replace(" ", "-")


def _write_if_changed(path: pathlib.Path, text: str) -> None:
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def _guide_pages() -> None:
    r"""Split README.md at its ``##`` headings into ``guide/<slug>.md``, and write ``guide/_intro.md``
    (the text above the first heading) and ``guide/_toctree.md`` (the sections in README order).

    A link to a heading of another section, ``[...](#slug)``, becomes a link to that page's anchor."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines(keepends=True)
    sections, intro, fence = [], [], False
    for line in lines:
        if line.startswith("```"):
            fence = not fence
        if not fence and line.startswith("## "):
            sections.append([line])
        elif sections:
            sections[-1].append(line)
        elif not line.startswith("# "):
            intro.append(line)
    pages = {}  # heading slug (of every heading of a section) -> page name
    names = []
    for section in sections:
        name = _slug(section[0][3:].replace("`", ""))
        names.append(name)
        for line in section:
            if re.match(r"#{2,6} ", line):
                pages[_slug(line.lstrip("#").replace("`", ""))] = name
    GUIDE.mkdir(exist_ok=True)
    for name, section in zip(names, sections):
        text, fence = "", False
        for line in section:  # one level up: the section's heading is its page's title
            fence = fence != line.startswith("```")
            text += line[1:] if not fence and re.match(r"#{2,6} ", line) else line

        def link(match, here=name):
            target = pages.get(match.group(1))
            if target is None or target == here:
                return match.group(0)
            return f"]({target}.md#{match.group(1)})"

        text = re.sub(r"\]\(#([\w\-]+)\)", link, text)
        _write_if_changed(GUIDE / f"{name}.md", text)
    for stale in GUIDE.glob("*.md"):
        if not stale.name.startswith("_") and stale.stem not in names:
            stale.unlink()
    _write_if_changed(GUIDE / "_intro.md", "".join(intro).strip() + "\n")
    toctree = "```{toctree}\n:caption: Guide\n:maxdepth: 1\n\n" + "".join(f"guide/{n}\n" for n in names) + "```\n"
    _write_if_changed(GUIDE / "_toctree.md", toctree)


_guide_pages()
exclude_patterns += ["guide/_*.md"]


# --- docstrings known to render wrongly --------------------------------------------------------------
# Each entry is a docstring whose reST docutils reports as malformed; it is to be fixed in the module,
# and then removed from here. A warning from any docstring not listed still fails the build.
KNOWN_MALFORMED_DOCSTRINGS: tuple = ()


class _KnownDocstringWarnings(logging.Filter):
    """Drops docutils' warnings about the docstrings in :data:`KNOWN_MALFORMED_DOCSTRINGS` only."""

    def filter(self, record: logging.LogRecord) -> bool:
        where = str(getattr(record, "location", "") or "") + " " + record.getMessage()
        return not any(entry in where for entry in KNOWN_MALFORMED_DOCSTRINGS)


def setup(app):
    app.add_config_value("rnncore_notebook_sizes", "fast", "env")
    app.connect("builder-inited", _copy_mathjax)
    for handler in logging.getLogger("sphinx").handlers:
        handler.filters.insert(0, _KnownDocstringWarnings())
