"""The command line never reuses a run folder under other settings (issue 16, defect 1)."""

from cli_run import TINY, run

from interp_steer.analysis import SimilarityResult

SWEEP = ["sweep", *TINY, "--langs", "sw", "--task", "xcopa", "--layers", "1-2", "--ratios",
         "0.5", "--n-fit", "4", "--no-test"]  # fmt: skip


def errors(err):
    return [line for line in err.splitlines() if ": error: " in line]


def test_a_sweep_rerun_with_another_n_and_positions_is_refused(capsys, tmp_path):
    code, _, err = run(capsys, *SWEEP, "--n", "4", "--out", tmp_path)
    assert code == 0, err
    cells = {p: p.stat().st_mtime_ns for p in (tmp_path / "cells").rglob("*.json")}
    code, out, err = run(capsys, *SWEEP, "--n", "40", "--positions", "last", "--out", tmp_path)
    assert code == 2 and out == ""
    (line,) = errors(err)
    assert "evaluator.n: 4 → 40" in line and "evaluator.positions: 'all' → 'last'" in line
    assert line.endswith("use another --out")
    assert cells == {p: p.stat().st_mtime_ns for p in (tmp_path / "cells").rglob("*.json")}


def test_an_invalid_sweep_writes_no_config_and_the_corrected_one_runs(capsys, tmp_path):
    code, _, err = run(capsys, *SWEEP, "--n", "2", "--select-items", "1000", "--out", tmp_path)
    assert code == 2
    (line,) = errors(err)
    assert "select_items=1000 leaves no test items" in line
    assert not (tmp_path / "config.json").exists() and not (tmp_path / "cells").exists()
    code, _, err = run(capsys, *SWEEP, "--n", "2", "--select-items", "2", "--out", tmp_path)
    assert code == 0, err


def test_similarity_caches_its_activations_under_out(capsys, tmp_path):
    argv = ["similarity", *TINY, "--langs", "de", "--n", "4", "--out", tmp_path]
    assert run(capsys, *argv)[0] == 0
    cached = sorted((tmp_path / "activations").glob("activations-*.safetensors"))
    assert len(cached) == 2  # English and German
    first = SimilarityResult.load(tmp_path / "similarity.json")
    assert run(capsys, *argv)[0] == 0  # read back from the cache: the same result
    assert sorted((tmp_path / "activations").glob("*.safetensors")) == cached
    again = SimilarityResult.load(tmp_path / "similarity.json")
    assert again.to_dict()["values"] == first.to_dict()["values"]
    assert run(capsys, *argv[:-4], "--n", "5", "--out", tmp_path)[0] == 0  # new entries
    assert len(list((tmp_path / "activations").glob("*.safetensors"))) == 4
    assert SimilarityResult.load(tmp_path / "similarity.json").n == 5
