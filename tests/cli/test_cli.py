"""The interp-steer command line: every subcommand end to end on the tiny model."""

import json
import re

import numpy as np
import pytest
from cli_run import TINY, run

from interp_steer.analysis import LogitLensResult, SimilarityResult, SweepResult, TransferResult
from interp_steer.cli import build_parser
from interp_steer.cli import options as cli_options
from interp_steer.constants import METHOD_NAMES
from interp_steer.evaluation import EvalResult
from interp_steer.fitting import REGISTRY
from interp_steer.steering import SteeringVector


def test_built_in_methods_are_the_cli_choices():
    # one list of names (constants.METHOD_NAMES) for --help; the registry serves each
    assert all(name in REGISTRY for name in METHOD_NAMES)


def test_every_option_of_every_command_has_help(capsys):
    sub = build_parser()._subparsers._group_actions[0]
    expected = {"fit", "eval", "sweep", "lens", "similarity", "transfer", "forcing", "demo"}
    assert set(sub.choices) == expected
    for name, parser in sub.choices.items():
        for action in parser._actions:
            assert action.help, f"{name} {action.option_strings} has no help"
        code, out, _ = run(capsys, name, "--help")
        assert code == 0 and "--out" in out and "--model" in out


def test_option_types():
    assert cli_options.ints("2-4,8,3") == (2, 3, 4, 8)
    assert cli_options.languages("deu_Latn,German,zh") == ("de", "zh")
    with pytest.raises(Exception, match="expected layers"):
        cli_options.ints("a-b")
    with pytest.raises(Exception, match="expected numbers"):
        cli_options.floats("0.1,inf")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["eval", "--task", "xcopa", "--lang", "Klingon"], "unknown language 'Klingon'"),
        (["fit", "--lang", "de"], "required: --layer"),
        (["sweep", "--langs", "sw", "--layers", "x"], "expected layers"),
        (["fit", *TINY, "--lang", "de", "--layer", "9", "--n", "4"], "layer"),
        (["eval", *TINY, "--task", "xcopa", "--lang", "sw", "--vector", "nope"], "no steering"),
        (["eval", *TINY, "--task", "xcopa", "--lang", "sw", "--alpha", "1"], "--vector"),
        (["fit", *TINY, "--lang", "de", "--layer", "1", "--n", "4", "--beta", "1"], "beta"),
        (["lens", *TINY, "--lang", "de", "--dataset", "flores", "--n", "0"], "n"),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, tmp_path, argv, expected):
    code, out, err = run(capsys, *argv, *([] if "--out" in argv else []), "--out", tmp_path)
    lines = [line for line in err.splitlines() if line.strip() and "it/s" not in line]
    assert code == 2
    errors = [line for line in lines if ": error: " in line]
    assert len(errors) == 1, err
    assert expected in errors[0]
    assert out == ""


def test_fit_then_eval_then_lens_read_back(capsys, tmp_path):
    code, out, _ = run(
        capsys,
        "fit",
        *TINY,
        "--lang",
        "sw",
        "--layer",
        "2",
        "--n",
        "6",
        "--dataset",
        "xcopa",
        "--out",
        tmp_path,
    )
    assert code == 0
    vector = SteeringVector.load(tmp_path / "vectors" / "sw-L2-mean_diff")
    assert vector.layer == 2 and vector.meta["data"]["n_pairs"] == 6
    assert out.strip().endswith("sw-L2-mean_diff.safetensors")

    args = ["eval", *TINY, "--task", "xcopa", "--lang", "sw", "--n", "3", "--out", tmp_path]
    assert run(capsys, *args)[0] == 0
    code, out, err = run(
        capsys, *args, "--vector", tmp_path / "vectors" / "sw-L2-mean_diff", "--ratio", "0.5"
    )
    assert code == 0, err
    runs = sorted((tmp_path / "eval").glob("*.json"))
    assert len(runs) == 2
    results = [EvalResult.load(p) for p in runs]
    assert sorted(r.steered for r in results) == [False, True]
    table = (tmp_path / "eval.csv").read_text().splitlines()
    assert len(table) == 3 and table[0].startswith("model,task,lang,method")

    code, _, err = run(
        capsys,
        "lens",
        *TINY,
        "--lang",
        "sw",
        "--n",
        "2",
        "--vector",
        tmp_path / "vectors" / "sw-L2-mean_diff.safetensors",
        "--out",
        tmp_path,
    )
    assert code == 0, err
    lens = LogitLensResult.load(tmp_path / "lens.json")
    assert lens.variants == ("base", "steered") and len(lens.prompts) == 2
    assert (tmp_path / "figures" / "lens_shares.html").is_file()
    header = (tmp_path / "lens.csv").read_text().splitlines()[0]
    assert header.startswith("variant,layer,")


def test_sweep_writes_a_resumable_run(capsys, tmp_path):
    args = [
        "sweep",
        *TINY,
        "--langs",
        "sw",
        "--layers",
        "1-2",
        "--ratios",
        "0.25,0.5",
        "--n",
        "2",
        "--n-fit",
        "4",
        "--no-test",
        "--out",
        tmp_path,
    ]
    code, out, err = run(capsys, *args)
    assert code == 0, err
    result = SweepResult.load(tmp_path / "sweep.json")
    assert result.layers == (1, 2) and result.strengths == (0.25, 0.5)
    assert result.score.shape == (1, 2, 2)
    assert (tmp_path / "figures" / "sweep.html").is_file()
    assert (tmp_path / "figures" / "sweep_heatmap_sw.html").is_file()
    cells = sorted(p.name for p in (tmp_path / "cells" / "sw").glob("*.json"))
    assert len(cells) == 1 + 4
    # a re-run evaluates nothing and gives the same result
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "cells").rglob("*.json")}
    assert run(capsys, *args)[0] == 0
    assert before == {p: p.stat().st_mtime_ns for p in (tmp_path / "cells").rglob("*.json")}
    assert SweepResult.load(tmp_path / "sweep.json").to_dict() == result.to_dict()


def test_similarity_and_transfer(capsys, tmp_path):
    code, _, err = run(
        capsys, "similarity", *TINY, "--langs", "de,sw", "--n", "4", "--out", tmp_path
    )
    assert code == 0, err
    sim = SimilarityResult.load(tmp_path / "similarity.json")
    assert sim.langs == ("en", "de", "sw") and sim.n == 4
    assert {p.stem for p in (tmp_path / "figures").glob("*.html")} >= {
        "similarity",
        "similarity_cka",
    }

    code, _, err = run(
        capsys,
        "transfer",
        *TINY,
        "--langs",
        "it,sw",
        "--layer",
        "2",
        "--n",
        "2",
        "--n-fit",
        "4",
        "--out",
        tmp_path,
    )
    assert code == 0, err
    res = TransferResult.load(tmp_path / "transfer.json")
    assert res.gain.shape == (2, 2)
    # XCOPA has no English data: the damage runs on the items' English versions
    assert res.english_damage.shape == (2,) and np.isfinite(res.english_damage).all()
    assert (tmp_path / "figures" / "transfer.html").is_file()


def test_fast_demo_report_embeds_every_figure(capsys, tmp_path):
    code, _, err = run(capsys, "demo", "--fast", "--out", tmp_path)
    assert code == 0, err
    assert "elapsed:" in err
    report = (tmp_path / "report.html").read_text(encoding="utf-8")
    figures = sorted((tmp_path / "figures").glob("*.html"))
    assert len(figures) >= 6
    embedded = len(re.findall(r'<div id="[0-9a-f-]{36}" class="plotly-graph-div"', report))
    assert embedded == len(figures)
    assert report.count("plotly.js v") <= 2 and "<script src=" not in report
    for title in ("Layer sweep", "Logit lens", "basic vs translate-test vs steered"):
        assert title in report
    config = json.loads((tmp_path / "sweep" / "config.json").read_text())
    assert config["model"] == "tiny"
