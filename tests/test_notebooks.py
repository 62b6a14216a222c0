"""Every teaching notebook in ``notebooks/`` runs top to bottom in FAST mode (tiny model)."""

import os
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
EXPECTED = [
    "01_quickstart.ipynb",
    "02_layer_sensitivity.ipynb",
    "03_logit_lens_languages.ipynb",
    "04_similarity_and_transfer.ipynb",
    "05_reproduce_paper.ipynb",
]
PLOTLY = "application/vnd.plotly.v1+json"
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # colours in kernel tracebacks


def test_the_five_notebooks_are_there():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == EXPECTED


@pytest.mark.parametrize("name", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
def test_committed_without_outputs(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and "INTERP_STEER_FAST" in code[0].source, "the first code cell is the FAST switch"
    assert all(not c.outputs and c.execution_count is None for c in code), "clear the outputs"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
def test_notebook_runs_fast(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    env = {**os.environ, "INTERP_STEER_FAST": "1", "OMP_NUM_THREADS": "1"}
    try:
        client.execute(env=env)
    except CellExecutionError as err:
        pytest.fail(f"{name}: a cell failed\n{ANSI.sub('', str(err))}", pytrace=False)
    # A cell ending in ``fig`` displays the figure (no ``.show()``): a Plotly output.
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source.rstrip().endswith("\nfig"):
            kinds = {kind for out in cell.outputs for kind in out.get("data", {})}
            assert PLOTLY in kinds, f"{name}: no figure shown by\n{cell.source}"
