"""Run every teaching notebook on the default real model and commit it with its outputs.

    python notebooks/execute.py            # all of them, gemma-3-270m (tens of minutes on 2 cores)
    python notebooks/execute.py 03         # the notebooks whose names start with 03
    .venv-tl39/bin/python notebooks/execute.py 06   # 06 needs SAELens: the TL 3.9 venv

The kernel is the Python running this script (Jupyter's ``python3`` kernel starts
``sys.executable``), so the interpreter you call it with decides the environment.

A reader on GitHub then sees real outputs without running anything: each figure is kept
as a PNG (which GitHub shows) beside Plotly's interactive JSON (which JupyterLab shows),
progress bars are off (no widget state in the file), and the run's model, date and time
are written to the notebook's metadata under ``interp_steer``. ``tests/test_notebooks.py``
checks all of that, and still runs every notebook in FAST mode on the tiny model.
"""

import argparse
import datetime as dt
import importlib.util
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
PLOTLY = "application/vnd.plotly.v1+json"
MAX_BYTES = 3_000_000  # per notebook: interactive JSON is dropped from figures beyond this
NEEDS = {"06_saelens.ipynb": "sae_lens"}  # SAELens pins transformer-lens<4: .venv-tl39 only


def execute(path: Path, timeout: int) -> None:
    """Execute one notebook in place on the real model (FAST off, no progress bars)."""
    nb = nbformat.read(path, as_version=4)
    env = {
        **os.environ,
        "INTERP_STEER_FAST": "0",
        "INTERP_STEER_PROGRESS": "0",
        "PLOTLY_RENDERER": "plotly_mimetype+png",  # interactive in Jupyter, a PNG on GitHub
    }
    start = time.perf_counter()
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}
    )
    client.execute(env=env)
    seconds = time.perf_counter() - start
    for cell in nb.cells:
        cell.get("metadata", {}).pop("execution", None)  # per-cell timestamps: noise in diffs
    nb.metadata["interp_steer"] = {
        "model": "gemma-3-270m",
        "fast": False,
        "executed": dt.date.today().isoformat(),
        "seconds": round(seconds),
    }
    if len(nbformat.writes(nb)) > MAX_BYTES:
        for cell in nb.cells:
            for out in cell.get("outputs", []):
                if "image/png" in out.get("data", {}):
                    out["data"].pop(PLOTLY, None)
    tmp = path.with_suffix(".ipynb.tmp")
    nbformat.write(nb, tmp)
    tmp.replace(path)
    print(f"{path.name}: {seconds:.0f} s, {path.stat().st_size / 1e3:.0f} kB")


def main(argv: list[str] | None = None) -> int:
    """Execute the notebooks named by prefix (all by default)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prefixes", nargs="*", help="run only notebooks starting with these")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    args = parser.parse_args(argv)
    paths = sorted(HERE.glob("*.ipynb"))
    if args.prefixes:
        paths = [p for p in paths if any(p.name.startswith(x) for x in args.prefixes)]
    if not paths:
        print("no notebook matches", args.prefixes, file=sys.stderr)
        return 2
    missing = [p for p in paths if p.name in NEEDS and not importlib.util.find_spec(NEEDS[p.name])]
    for path in missing:
        print(
            f"skipped {path.name}: needs {NEEDS[path.name]}; run it with "
            f".venv-tl39/bin/python notebooks/execute.py {path.name[:2]}",
            file=sys.stderr,
        )
    for path in paths:
        if path not in missing:
            execute(path, args.timeout)
    return 2 if missing and args.prefixes else 0


if __name__ == "__main__":
    sys.exit(main())
