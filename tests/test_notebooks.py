"""Every teaching notebook in ``notebooks/`` runs top to bottom in FAST mode (tiny model)."""

import importlib.util
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
    "06_saelens.ipynb",
    "07_latent_language.ipynb",
    "08_forcing_benchmark.ipynb",
]
# SAELens pins transformer-lens<4: notebook 06 runs where it is installed (make test-tl39).
NEEDS_SAE_LENS = {"06_saelens.ipynb"}
HAS_SAE_LENS = importlib.util.find_spec("sae_lens") is not None
PLOTLY = "application/vnd.plotly.v1+json"
WIDGET = "application/vnd.jupyter.widget-view+json"
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # colours in kernel tracebacks


def test_the_notebooks_are_there():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == EXPECTED


@pytest.mark.parametrize("name", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
def test_committed_with_outputs_of_a_real_model_run(name):
    """GitHub shows what a reader gets without running: notebooks/execute.py on gemma-3-270m."""
    path = NOTEBOOKS / name
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and "INTERP_STEER_FAST" in code[0].source, "the first code cell is the FAST switch"
    run = nb.metadata.get("interp_steer", {})
    assert run.get("model") == "gemma-3-270m" and run.get("fast") is False, (
        f"{name}: run `python notebooks/execute.py` to commit it with real-model outputs"
    )
    counts = [c.execution_count for c in code]
    assert None not in counts and counts == sorted(counts), f"{name}: not run top to bottom"
    outputs = [out for c in code for out in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"], f"{name}: a cell failed"
    kinds = {kind for out in outputs for kind in out.get("data", {})}
    assert WIDGET not in kinds, f"{name}: progress widgets saved (run with progress off)"
    for cell in code:
        if cell.source.rstrip().endswith("\nfig"):
            shown = {kind for out in cell.outputs for kind in out.get("data", {})}
            assert "image/png" in shown, f"{name}: no PNG (what GitHub shows) for\n{cell.source}"
    assert path.stat().st_size < 3_000_000, f"{name}: {path.stat().st_size} bytes"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
def test_notebook_runs_fast(name):
    if name in NEEDS_SAE_LENS and not HAS_SAE_LENS:
        pytest.skip(f"{name} needs sae_lens (TransformerLens 3.9: make test-tl39)")
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
