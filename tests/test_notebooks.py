"""The notebooks in ``notebooks/`` run from top to bottom, print no warning, and are committed
executed, with their plots.

Each one runs in a temporary copy (whatever it writes lands there) on the ``python3`` kernel,
which jupyter_client starts with the interpreter running this suite (the virtual
environment's, under ``make test``): ipykernel's kernelspec says ``python`` and jupyter_client
substitutes ``sys.executable``.
"""

import ast
import shutil
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT = 300  # seconds per cell; each notebook takes under two minutes in all
ALLOWED_IMPORTS = {
    *("gatedcells", "jax", "flax", "optax", "orbax", "numpy", "matplotlib"),
    *("time", "tempfile"),  # the standard library's clock and scratch directories
}


def code_cells(nb):
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def test_there_are_notebooks():
    assert [p.stem[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06", "07", "08"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_executed_with_its_plots(path):
    nb = nbformat.read(path, as_version=4)
    cells = code_cells(nb)
    assert all(cell.execution_count for cell in cells), "a code cell was never run"
    assert [cell.execution_count for cell in cells] == list(range(1, len(cells) + 1))
    outputs = [out for cell in cells for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    assert any("image/png" in out.get("data", {}) for out in outputs), "no plot"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_imports_only_the_library_and_its_stack(path):
    nb = nbformat.read(path, as_version=4)
    imported = set()
    for cell in code_cells(nb):
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                imported.add(node.module.split(".")[0])
    assert imported <= ALLOWED_IMPORTS, imported - ALLOWED_IMPORTS


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_without_warnings(path, tmp_path):
    copy = tmp_path / path.name
    shutil.copy(path, copy)
    nb = nbformat.read(copy, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",
        timeout=CELL_TIMEOUT,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError, with the traceback, if a cell fails
    stderr = [
        out.text
        for cell in code_cells(nb)
        for out in cell.outputs
        if out.output_type == "stream" and out.name == "stderr"
    ]
    assert not stderr, "".join(stderr)


def test_kernel_is_this_interpreter():
    """The ``python3`` kernel runs ``sys.executable`` (the venv's under ``make test``)."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    spec = KernelSpecManager().get_kernel_spec("python3")
    manager = KernelManager(kernel_name="python3")
    command = manager.format_kernel_cmd()
    assert spec.argv[0] in ("python", sys.executable) and command[0] == sys.executable
