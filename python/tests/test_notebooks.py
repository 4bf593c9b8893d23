"""The three notebooks, executed headless on the installed package (small sizes)."""
import os
import pathlib

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("matplotlib")
pytest.importorskip("pandas")

NOTEBOOKS = pathlib.Path(__file__).resolve().parents[2] / "notebooks"


@pytest.mark.parametrize("name", sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")))
def test_notebook_runs(name, tmp_path, monkeypatch):
    monkeypatch.setenv("NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("NOTEBOOK_WORK", str(tmp_path))
    book = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    client = nbclient.NotebookClient(book, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()
    # Every code cell ran, and none left an error output.
    for cell in book.cells:
        if cell.cell_type == "code":
            assert cell.get("execution_count") is not None
            assert not [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
