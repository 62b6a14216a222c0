"""Run folders are not followed out of, and two runs never write one at the same time.

Issue 16, defect 7: a symlinked folder inside a run folder is not written through, and
concurrent writers of one run folder take a lock (``storage.run_lock``): a second run
fails at once with a message naming the holder's pid.
"""

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from interp_steer.analysis import CellStore, Score, layer_sweep
from interp_steer.evaluation import evaluate
from interp_steer.steering import SteeringVector
from interp_steer.storage import (
    LOCK_NAME,
    RunLockedError,
    atomic_write_json,
    check_inside,
    run_lock,
)

REPO = Path(__file__).resolve().parents[2]


# -- symlinks ----------------------------------------------------------------------


@pytest.fixture
def linked_run(tmp_path):
    """A run folder whose ``cells/`` and ``vectors/`` are symlinks to a folder outside it."""
    run, outside = tmp_path / "run", tmp_path / "outside"
    run.mkdir()
    outside.mkdir()
    (run / "cells").symlink_to(outside, target_is_directory=True)
    (run / "vectors").symlink_to(outside, target_is_directory=True)
    return run, outside


def test_a_cell_is_not_written_through_a_symlinked_cells_folder(linked_run):
    run, outside = linked_run
    store = CellStore(run)
    with pytest.raises(ValueError, match=r"refusing to write .*outside the run folder"):
        store.put("de/baseline-select", {"value": 0.5})
    assert not list(outside.rglob("*"))
    store.check_config({"model": "tiny"})  # the run folder itself is fine
    assert json.loads((run / "config.json").read_text()) == {"model": "tiny"}


def test_a_vector_is_not_written_through_a_symlinked_vectors_folder(linked_run):
    run, outside = linked_run
    vector = SteeringVector(torch.ones(4), layer=1)
    with pytest.raises(ValueError, match="outside the run folder"):
        vector.save(CellStore(run).vector_path("de", 1), root=run)
    assert not list(outside.rglob("*"))
    vector.save(outside / "free")  # without a run folder, symlinks are followed as before


def test_a_symlinked_run_folder_and_a_symlinked_file_inside_are_fine(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    store = CellStore(tmp_path / "link")
    store.put("de/x", {"value": 1.0})
    assert json.loads((real / "cells" / "de" / "x.json").read_text()) == {"value": 1.0}
    # a file symlink is replaced by the write, never written through
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text("{}")
    (real / "cells" / "de" / "y.json").symlink_to(elsewhere)
    store.put("de/y", {"value": 2.0})
    assert elsewhere.read_text() == "{}"


def test_check_inside_refuses_paths_outside_the_root(tmp_path):
    check_inside(tmp_path / "a" / "b.json", tmp_path)
    check_inside(tmp_path / "x.json", None)
    with pytest.raises(ValueError, match="outside the run folder"):
        check_inside(tmp_path / ".." / "escape.json", tmp_path)
    with pytest.raises(ValueError, match="outside the run folder"):
        atomic_write_json(tmp_path.parent / "escape.json", {}, root=tmp_path)
    assert not (tmp_path.parent / "escape.json").exists()


# -- locks -------------------------------------------------------------------------


def _start(script: str, ready: Path) -> subprocess.Popen:
    """Run ``script`` in another process and wait until it has created ``ready``."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], env=env, cwd=REPO)
    deadline = time.monotonic() + 120
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"helper process did not get ready (exit {proc.returncode})")
        time.sleep(0.05)
    return proc


HOLD = """
    import time
    from pathlib import Path
    from interp_steer.storage import run_lock
    folder, name, ready, release = {args}
    with run_lock(folder, name=name):
        Path(ready).touch()
        while not Path(release).exists():
            time.sleep(0.02)
"""


def _hold(folder: Path, tmp_path: Path, name: str = LOCK_NAME):
    ready, release = tmp_path / "held", tmp_path / "release"
    args = ", ".join(repr(str(x)) for x in (folder, name, ready, release))
    return _start(HOLD.format(args=args), ready), release


def test_a_held_run_folder_fails_fast_naming_the_holder_and_frees_on_exit(tmp_path):
    run = tmp_path / "run"
    proc, release = _hold(run, tmp_path)
    try:
        held = rf"in use by another run \(pid {proc.pid}"
        with pytest.raises(RunLockedError, match=held), run_lock(run):
            pass
        start = time.monotonic()
        with pytest.raises(RunLockedError, match=r"waited 0\.3 s"), run_lock(run, timeout=0.3):
            pass
        assert time.monotonic() - start >= 0.3
    finally:
        release.touch()
        proc.wait(timeout=60)
    with run_lock(run) as lock:  # released: taken at once
        assert lock.read_text().strip() == str(os.getpid())
    assert not (run / LOCK_NAME).exists()


def test_a_waiting_run_gets_the_lock_when_the_holder_finishes(tmp_path):
    run = tmp_path / "run"
    proc, release = _hold(run, tmp_path)
    release.touch()
    with run_lock(run, timeout=60):
        assert proc.wait(timeout=60) == 0


def test_a_killed_holder_leaves_the_folder_free(tmp_path):
    run = tmp_path / "run"
    proc, _ = _hold(run, tmp_path)
    proc.kill()
    proc.wait(timeout=60)
    with run_lock(run):  # the kernel dropped the flock; the stale file is taken over
        pass


def test_a_symlinked_lock_file_is_refused(tmp_path):
    run, target = tmp_path / "run", tmp_path / "victim"
    run.mkdir()
    target.write_text("keep")
    (run / LOCK_NAME).symlink_to(target)
    with pytest.raises(ValueError, match="is a symlink"), run_lock(run):
        pass
    assert target.read_text() == "keep"


def test_an_invalid_run_leaves_no_folder_behind(tmp_path, tiny):
    run = tmp_path / "run"
    with pytest.raises(ValueError, match="exactly one of ratios"):
        layer_sweep(tiny, ["de"], task="xcopa", layers=[1], ratios=None, run_dir=run)
    assert not run.exists()


SWEEP = """
    import time
    from pathlib import Path
    from interp_steer.analysis import Score, layer_sweep
    from interp_steer.models import load_model
    run, ready, release = {args}

    def slow(model, lang, vector, alpha, stage):
        Path(ready).touch()
        while not Path(release).exists():
            time.sleep(0.02)
        return Score(0.5, 0.4, 0.6, 10)

    slow.name, slow.selection = "fake accuracy", "fake val split"
    layer_sweep(load_model("tiny"), ["de"], task=slow, layers=[1], ratios=(0.1,), n_fit=4,
                test=False, run_dir=run)
"""


def slow(model, lang, vector, alpha, stage):
    """The helper's evaluator, without the wait (a run records the evaluator's name)."""
    return Score(0.5, 0.4, 0.6, 10)


slow.name, slow.selection = "fake accuracy", "fake val split"  # type: ignore[attr-defined]


def test_two_different_sweeps_never_write_one_folder_at_once(tmp_path, tiny):
    run, ready, release = tmp_path / "run", tmp_path / "ready", tmp_path / "release"
    args = ", ".join(repr(str(x)) for x in (run, ready, release))
    proc = _start(SWEEP.format(args=args), ready)
    try:
        with pytest.raises(RunLockedError, match=rf"{run}.*in use.*pid {proc.pid}"):
            layer_sweep(tiny, ["de"], task=slow, layers=[2], ratios=(0.5,), n_fit=8,
                        test=False, run_dir=run)  # fmt: skip
        config = json.loads((run / "config.json").read_text())
    finally:
        release.touch()
        assert proc.wait(timeout=300) == 0
    assert config["fit"]["n"] == 4  # the holder's settings only
    assert json.loads((run / "config.json").read_text()) == config
    assert sorted(p.name for p in (run / "cells" / "de").iterdir()) == [
        "L1-s0.1.json",
        "baseline-select.json",
    ]
    # the same sweep again, sequentially: fine, every cell resumed
    again = layer_sweep(tiny, ["de"], task=slow, layers=[1], ratios=(0.1,), n_fit=4,
                        test=False, run_dir=run)  # fmt: skip
    assert again.score.tolist() == [[[0.5]]]
    assert not (run / LOCK_NAME).exists()


def test_evaluate_locks_its_output_file_only(tmp_path, tiny):
    out = tmp_path / "eval" / "it.json"
    proc, release = _hold(out.parent, tmp_path, name=".it.json.lock")
    try:
        with pytest.raises(RunLockedError, match=f"pid {proc.pid}"):
            evaluate(tiny, "xcopa", "it", n=1, output=out, progress=False)
        assert not out.exists()
        other = evaluate(tiny, "xcopa", "it", n=1, output=out.with_name("sw.json"),
                         progress=False)  # fmt: skip
        assert other.n == 1 and out.with_name("sw.json").exists()
    finally:
        release.touch()
        proc.wait(timeout=60)
    assert evaluate(tiny, "xcopa", "it", n=1, output=out, progress=False).n == 1
