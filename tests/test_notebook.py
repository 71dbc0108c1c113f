"""The example notebook runs from top to bottom (executed with nbclient, as a user would run it)."""

import os

import pytest
from conftest import REPO

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = REPO / "examples" / "decision_analysis.ipynb"


def test_decision_analysis_notebook_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = {i: cell.outputs for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"}
    assert all(o.output_type != "error" for cell in outputs.values() for o in cell)
    reach = next(cell for cell in notebook.cells if "analysis.reach(" in cell.source).outputs
    assert any("max fibre length" in o.get("text", "") for o in reach)
    figures = [o for cell in outputs.values() for o in cell if "image/png" in o.get("data", {})]
    assert len(figures) == 2
    assert list(tmp_path.iterdir()) == []  # the notebook leaves nothing in its working directory
