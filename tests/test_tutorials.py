"""Every tutorial notebook runs from top to bottom in its smoke mode (REDGE_TUTORIAL_SMOKE=1
shrinks the budgets; the committed outputs come from a full run, tutorials/build_notebooks.py)."""

import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

TUTORIALS = pathlib.Path(__file__).parent.parent / "tutorials"


@pytest.mark.parametrize("name", sorted(path.name for path in TUTORIALS.glob("*.ipynb")))
def test_notebook_runs_in_smoke_mode(name, monkeypatch):
    monkeypatch.setenv("REDGE_TUTORIAL_SMOKE", "1")
    notebook = nbformat.read(TUTORIALS / name, as_version=4)
    assert any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), (
        "committed with the outputs of a full run"
    )
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(TUTORIALS)}}
    ).execute()
