"""The study pipeline end to end on the tiny model: run folder → results page + figures."""

import re

from interp_steer.study import QUICK, main


def test_quick_study_writes_the_results_page(tmp_path):
    page, figures = tmp_path / "docs" / "results.md", tmp_path / "figures"
    assert (
        main(
            [
                "--quick",
                "--out",
                str(tmp_path / "run"),
                "--page",
                str(page),
                "--figures",
                str(figures),
            ]
        )
        == 0
    )
    text = page.read_text(encoding="utf-8")
    table = text.split("## Main comparison")[1].split("Gains over")[0]
    header = next(line for line in table.splitlines() if line.startswith("| method"))
    assert header == "| method | " + " | ".join(QUICK.langs) + " | mean |"
    rows = [line.split(" | ")[0][2:] for line in table.splitlines() if line.startswith("| ")][1:]
    assert rows == ["basic", "translate_test", "xlt", "k_shot", "mean_diff", "pca", "mse", "bipo"]
    for link in re.findall(r"!\[[^]]*\]\(([^)]+)\)", text):
        assert (page.parent / link).resolve().is_file() or not (
            figures / "results_sweep.png"
        ).exists()
    assert (tmp_path / "run" / "study.json").is_file()
    # resumable: a second run reuses every evaluation file
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "run" / "eval").glob("*.json")}
    assert len(before) == len(QUICK.langs) * 9
    assert (
        main(
            [
                "--quick",
                "--out",
                str(tmp_path / "run"),
                "--page",
                str(page),
                "--figures",
                str(figures),
            ]
        )
        == 0
    )
    assert before == {p: p.stat().st_mtime_ns for p in (tmp_path / "run" / "eval").glob("*.json")}
