"""The study's language-forcing stage and its page section, on the tiny model."""

import json

import numpy as np
import pandas as pd
import pytest

from interp_steer.analysis import ForcingBenchmark
from interp_steer.evaluation import RelevanceCheck
from interp_steer.storage import SettingsError
from repro import run as study
from repro.config import QUICK
from repro.forcing import PARTS, VALIDATION, forcing_parts, relevance_checks
from repro.page_forcing import (
    REFERENCE,
    SECTION,
    diffmean_finding,
    forcing_section,
    language_table,
    lowrank_finding,
    method_table,
    selection_finding,
    validation_finding,
    validation_table,
)


def _img(name):
    return f"![{name}](figures/{name}.png)"


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory, tiny):
    root = tmp_path_factory.mktemp("forcing") / "run"
    study.run_study(root, QUICK, model=tiny, stages=("forcing",))
    return root


def test_stage_runs_every_part_and_resumes(run_folder, tiny):
    folder = run_folder / "forcing"
    f = QUICK.forcing
    parts = {p: ForcingBenchmark.load(folder / f"{p}.json") for p in PARTS}
    methods = parts["methods"]
    assert methods.langs == f.langs and methods.methods == f.methods
    assert methods.directions == ("to_english", "from_english")
    assert methods.layers == f.layers and methods.strengths == {"add": f.ratios}
    assert parts["layers"].layers == f.curve_layers
    assert parts["operators"].operators == ("add", "rotate", "clamp")
    assert parts["operators"].strengths["rotate"] == f.angles
    assert parts["control"].langs == f.control_langs
    assert parts["control"].layers == f.control_layers
    for bench in parts.values():
        settings = bench.meta["settings"]
        assert (settings["n_select"], settings["n_test"], settings["n_fit"], settings["k"]) == (
            f.n_select, f.n_test, f.n_fit, f.k)  # fmt: skip
        assert settings["source"] == "flores"
    # the study model's parts share one run folder; a cell both need is run once
    shared = set(forcing_parts(QUICK)["layers"]["layers"]) & set(f.layers)
    assert shared
    assert {m.meta["run_dir"] for m in (methods, parts["layers"], parts["operators"])} == {
        str(folder / "study")
    }
    frame = parts["layers"].to_frame()
    mine = methods.to_frame()
    key = ["lang", "direction", "method", "operator", "layer", "strength", "split"]
    both = frame.merge(mine, on=key, suffixes=("_a", "_b"))
    assert len(both) and np.array_equal(both["score_a"], both["score_b"], equal_nan=True)
    compute = json.loads((folder / "compute.json").read_text(encoding="utf-8"))
    assert set(compute) == {*PARTS, VALIDATION} and all(s > 0 for s in compute.values())
    # the relevance checks: each model's scorer in each of its languages, both directions
    checks = {p.relative_to(folder / VALIDATION).as_posix(): RelevanceCheck.load(p)
              for p in (folder / VALIDATION).rglob("*.json")}  # fmt: skip
    assert set(checks) == {f"{m}/{lang}-{d}.json" for m, langs in (("study", f.langs),
                           ("control", f.control_langs)) for lang in langs
                           for d in ("to_english", "from_english")}  # fmt: skip
    assert checks["study/de-to_english.json"].model == methods.model
    assert checks["control/sw-from_english.json"].model == parts["control"].model
    assert all(len(c.ids) == f.n_select + f.n_test and c.settings["k"] == f.k
               for c in checks.values())  # fmt: skip

    # resumed: every cell and check is read back, the results are identical, compute grows
    stamps = {p: p.stat().st_mtime_ns for p in (folder / "study" / "cells").rglob("*.json")}
    stamps |= {p: p.stat().st_mtime_ns for p in (folder / VALIDATION).rglob("*.json")}
    study.run_study(run_folder, QUICK, model=tiny, stages=("forcing",))
    assert stamps == {p: p.stat().st_mtime_ns for p in stamps}
    again = ForcingBenchmark.load(folder / "methods.json")
    pd.testing.assert_frame_equal(again.to_frame(), methods.to_frame())
    later = json.loads((folder / "compute.json").read_text(encoding="utf-8"))
    assert all(later[p] > compute[p] for p in (*PARTS, VALIDATION))


def test_a_saved_relevance_check_with_other_settings_is_an_error(run_folder, tiny):
    from dataclasses import replace

    folder = run_folder / "forcing" / VALIDATION / "study"
    f = QUICK.forcing
    again = relevance_checks(tiny, f.langs, f, folder)  # read back, nothing new
    assert [c.to_dict() for c in again] == [
        RelevanceCheck.load(folder / f"{c.lang}-{c.direction}.json").to_dict() for c in again
    ]
    with pytest.raises(SettingsError, match=r"k: 1 → 2"):
        relevance_checks(tiny, f.langs, replace(f, k=2), folder)
    with pytest.raises(SettingsError, match=r"fingerprint: .*; delete it to check again"):
        relevance_checks(tiny, f.langs, replace(f, n_test=3), folder)


def test_no_control_model_no_control_part():
    from dataclasses import replace

    assert "control" not in forcing_parts(replace(QUICK, control_model=None))


def _bench(scores: dict[str, list[float]], select: dict | None = None) -> ForcingBenchmark:
    """Two languages, one direction, methods with the given test (and selection) scores."""
    methods = tuple(scores)
    select = scores if select is None else select
    rows = []
    for li in range(2):
        rows.append((li, -1, False, 0.1))
        rows.append((li, -1, True, 0.1))
        for mi, m in enumerate(methods):
            rows.append((li, mi, False, select[m][li]))
            rows.append((li, mi, True, scores[m][li]))
    n = len(rows)
    a = np.array
    score = a([[s, max(s - 0.1, 0), min(s + 0.1, 1)] for *_, s in rows])
    return ForcingBenchmark(
        "m", ("de", "sw"), ("to_english",), methods, ("add",), (1,), {"add": (0.5,)},
        lang_idx=a([r[0] for r in rows]), direction_idx=np.zeros(n, int),
        method_idx=a([r[1] for r in rows]), operator_idx=a([0 if r[1] >= 0 else -1 for r in rows]),
        layer=a([1 if r[1] >= 0 else -1 for r in rows]),
        strength=a([0.5 if r[1] >= 0 else np.nan for r in rows]), test=a([r[2] for r in rows]),
        applied=np.zeros(n), control=score, relevance=score, score=score, n=np.full(n, 4),
        selected=a([r[1] >= 0 for r in rows]),
    )  # fmt: skip


def test_method_table_and_finding_are_computed_from_the_scores():
    bench = _bench({"mean_diff": [0.6, 0.4], "pca": [0.2, 0.3]})
    table = method_table(bench).set_index("method")
    assert table.loc["mean_diff", "score to English"] == pytest.approx(0.5)
    assert table.loc["pca", "score to English"] == pytest.approx(0.25)
    assert table.loc["mean_diff", "best in"] == "2/2" and table.loc["pca", "best in"] == "0/2"
    assert table.loc["pca", "lower/higher"] == "2/0"
    assert table.loc["pca", "gain"] == pytest.approx(0.15)
    text = diffmean_finding(bench)
    assert "DiffMean wins here" in text and "scores 0.500" in text
    flipped = diffmean_finding(_bench({"mean_diff": [0.2, 0.3], "pca": [0.6, 0.4]}))
    assert "DiffMean does not win here" in flipped and "`pca` has the highest mean" in flipped
    langs = language_table(bench, "to_english")
    assert langs["lang"].tolist() == ["de", "sw"] and langs[REFERENCE].tolist() == [0.6, 0.4]
    assert langs["unsteered"].tolist() == [0.1, 0.1]


def test_selection_finding_measures_the_fall_from_selection_to_test():
    scores = {"mean_diff": [0.6, 0.4], "pca": [0.2, 0.3]}
    bench = _bench(scores, select={"mean_diff": [0.9, 0.4], "pca": [0.2, 0.5]})
    assert method_table(bench).set_index("method")["select"].tolist() == pytest.approx([0.65, 0.35])
    text = selection_finding(bench)
    assert "over the 4 selected cells the test score is 0.125 below" in text
    assert "lower in 2;" in text and "`mean_diff` de to English (0.90 → 0.60)" in text
    same = selection_finding(_bench(scores))  # select = test: no fall
    assert "is 0.000 above" in same and "no cell scores lower on test" in same
    assert "optimistic:" not in same


def test_lowrank_finding_reads_the_saved_vectors(tmp_path):
    from dataclasses import replace

    import torch

    from interp_steer.steering import SteeringVector

    bench = _bench({"mean_diff": [0.6, 0.4], "lowrank": [0.6, 0.4]})
    assert lowrank_finding(bench) == ""  # no run folder
    bench = replace(bench, meta={"run_dir": str(tmp_path)})
    assert lowrank_finding(bench) == ""  # no saved vectors
    for lang, captured in (("de", 0.9999), ("sw", 0.995)):
        meta = {"hyper": {"k": 4}, "metrics": {"mean_captured": captured}}
        v = SteeringVector(torch.ones(8), layer=1, method="lowrank", source_lang=lang, meta=meta)
        v.save(tmp_path / "vectors" / "lowrank" / lang / "L1")
    text = lowrank_finding(bench)
    assert "Each of the 2 `lowrank` vectors (k = 4) keeps at least 99.50%" in text
    assert "≥ 0.9975)" in text and "in all but name" in text
    low = SteeringVector(torch.ones(8), layer=2, method="lowrank", source_lang="sw",
                         meta={"hyper": {"k": 4}, "metrics": {"mean_captured": 0.5}})  # fmt: skip
    low.save(tmp_path / "vectors" / "lowrank" / "sw" / "L2")
    text = lowrank_finding(bench)
    assert "at least 50.00%" in text and "in all but name" not in text
    without = replace(_bench({"mean_diff": [0.6, 0.4]}), meta={"run_dir": str(tmp_path)})
    assert lowrank_finding(without) == ""  # the benchmark has no lowrank method


def _check(model: str, lang: str, direction: str, good: list[float]) -> RelevanceCheck:
    """A check on len(good) items whose off-topic scores are all 0 (a share of good > 0)."""
    n = len(good)
    ids = tuple(str(i) for i in range(n))
    partners = tuple((i + 1) % n for i in range(n))
    a = np.asarray
    return RelevanceCheck(model, lang, direction, ids, partners, a(good), np.zeros(n),
                          a(good) - 0.5, a([-1.0] + [1.0] * (n - 1)), {"k": 4})  # fmt: skip


def test_validation_table_and_finding_are_computed_from_the_checks():
    checks = [
        _check("m", "de", "to_english", [1.0] * 10),
        _check("m", "de", "from_english", [1.0] * 9 + [-1.0]),
        _check("m", "te", "to_english", [1.0] * 8 + [-1.0] * 2),
        _check("m", "te", "from_english", [1.0] * 10),
        _check("c", "sw", "to_english", [-1.0] * 10),
        _check("c", "sw", "from_english", [1.0] * 10),
    ]
    table = validation_table(checks)
    assert table.columns.tolist() == ["model", "lang", "share to English",
                                      "share from English", "off-topic relevant"]  # fmt: skip
    assert table[["model", "lang"]].values.tolist() == [["m", "de"], ["m", "te"], ["c", "sw"]]
    assert table["share to English"].tolist() == [1.0, 0.8, 0.0]
    assert table["share from English"].tolist() == [0.9, 1.0, 1.0]
    assert table["off-topic relevant"].tolist() == pytest.approx([0.9] * 3)
    text = validation_finding(checks)
    assert "`m` passes in 3 of 4 cases and fails in te to English (0.80)" in text
    assert "`c` passes in 1 of 2 cases and fails in sw to English (0.00)" in text
    assert "k = 4, on the 10 selection and test lines" in text


def test_section_names_every_part_with_figures(run_folder):
    text, figs = forcing_section(run_folder, _img)
    assert text.startswith(SECTION)
    for needle in ("**Methods**", "**Layers**", "**Operators**", "**Control model**",
                   "Compute (minutes", _img("results_forcing_methods"), "DiffMean",
                   "**Is the relevance measure valid here?**", "| model | lang | share to",
                   f"{VALIDATION} "):  # fmt: skip
        assert needle in text, needle
    assert "checks)" in text.split("Compute (minutes")[1]
    assert set(figs) == {"results_forcing_methods", "results_forcing_layers"}
    assert len(figs["results_forcing_methods"].data) > 0


def test_section_without_the_stage_says_so(tmp_path):
    text, figs = forcing_section(tmp_path, _img)
    assert "has not run" in text and figs == {}


def test_a_partial_run_folder_gives_a_partial_page_that_says_so(run_folder, tmp_path):
    page, figures = tmp_path / "docs" / "results.md", tmp_path / "figures"
    assert study.main(["--out", str(run_folder), "--page", str(page), "--figures",
                       str(figures), "--page-only"]) == 0  # fmt: skip
    text = page.read_text(encoding="utf-8")
    banner = text.split("Generated by")[0]
    assert "**Partial page.**" in banner
    for part in ("XCOPA", "Generation tasks", "Latent language"):
        assert part in banner
    for part in ("XCOPA", "Generation tasks"):
        assert f"## {part}\n\nNot in this run folder yet" in text
    assert "The `trajectory` stage has not run" in text  # the section's own note
    assert "Language forcing" not in banner  # it ran: its section is on the page
    assert "git history" in banner
    (page.parent / "results-previous.md").write_text("# an earlier run\n", encoding="utf-8")
    study.main(["--out", str(run_folder), "--page", str(page), "--figures", str(figures),
                "--page-only"])  # fmt: skip
    banner = page.read_text(encoding="utf-8").split("Generated by")[0]
    assert "[results-previous.md](results-previous.md)" in banner
    assert "| method | score to English | score from English |" in text
    assert "results_forcing_methods.png" in text
