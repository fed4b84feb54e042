"""Every notebook in ``notebooks/`` executes, in fast mode, from its jupytext source.

A notebook states its headline comparison as ``assert`` statements on numbers it computed with
rnncore, so a notebook whose answer no longer holds fails here; each must also show at least one
figure and end by printing its answer.
"""

import os
import pathlib

import pytest

NOTEBOOKS = sorted(pathlib.Path(__file__).resolve().parent.parent.glob("notebooks/[0-9][0-9]_*.py"))


def _execute(path: pathlib.Path):
    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    notebook = jupytext.read(path)
    env = {
        "RNNCORE_FAST": "1",
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "KERAS_BACKEND": "jax",
        "OPENBLAS_NUM_THREADS": "1",
        "PYTHONWARNINGS": "ignore::DeprecationWarning",
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        client = nbclient.NotebookClient(
            notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
        )
        client.execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return notebook


def _outputs(notebook):
    for cell in notebook.cells:
        if cell.cell_type == "code":
            yield from cell.get("outputs", [])


def _text(output) -> str:
    if output.get("output_type") == "stream":
        return output.get("text", "")
    return output.get("data", {}).get("text/plain", "")


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 1


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes_and_answers(path):
    notebook = _execute(path)
    first = notebook.cells[0]
    assert first.cell_type == "markdown" and "?" in first.source, "a notebook opens with its question"
    images = [o for o in _outputs(notebook) if "image/png" in o.get("data", {})]
    assert images, "a notebook shows at least one figure"
    last = [c for c in notebook.cells if c.cell_type == "code"][-1]
    printed = "".join(_text(o) for o in last.get("outputs", []))
    assert printed.startswith("Answer:"), f"the last code cell prints the measured answer; got {printed[:200]!r}"
