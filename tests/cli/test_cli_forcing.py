"""``interp-steer forcing``: the forcing benchmark end to end on the tiny model, resumed in
its run folder, bad input as one line, and ``--help`` without torch."""

import inspect
import json
import subprocess
import sys

import pandas as pd
import pytest
from cli_run import TINY, one_error, run

import interp_steer.analysis.forcing as bench_module
import interp_steer.plotting.export as export_module
from interp_steer.analysis import ForcingBenchmark, forcing_benchmark
from interp_steer.cli import build_parser
from interp_steer.cli.parser import OPERATOR_CHOICES
from interp_steer.constants import FORCING_STRENGTHS
from interp_steer.steering.intervention import OPERATORS

SMALL = ["--source", "tatoeba", "--n-fit", "4", "--n-select", "2", "--n-test", "2", "--k", "1",
         "--max-new-tokens", "2"]  # fmt: skip


class Spy:
    """Counts the cells the benchmark runs (the real ``forcing_run`` does the work)."""

    def __init__(self, real):
        self.real, self.calls = real, []

    def __call__(self, model, prompts, **kwargs):
        vector = kwargs.get("vector")
        split = "select" if prompts.start == 0 else "test"
        self.calls.append((None if vector is None else vector.layer, split))
        return self.real(model, prompts, **kwargs)


@pytest.fixture
def spy(monkeypatch):
    spy = Spy(bench_module.forcing_run)
    monkeypatch.setattr(bench_module, "forcing_run", spy)
    # HTML only: PNG rendering (kaleido) is tested with the export helpers
    monkeypatch.setattr(export_module, "static_export_available", lambda: False)
    return spy


def _forcing(capsys, out, *extra):
    return run(capsys, "forcing", *TINY, "--langs", "German", "--directions", "to_english",
               "--operators", "add", "rotate", "--strengths", "add=0.5", "rotate=30", *SMALL,
               "--out", out, *extra)  # fmt: skip


def test_forcing_end_to_end_then_resumes(capsys, tmp_path, spy):
    out = tmp_path / "run"
    code, stdout, err = _forcing(capsys, out, "--layers", "1")
    assert code == 0, err
    # two unsteered cells, then per operator one selection cell and its test run
    expected = [(None, "select"), (None, "test")] + [(1, "select"), (1, "test")] * 2
    assert sorted(spy.calls, key=str) == sorted(expected, key=str)
    bench = ForcingBenchmark.load(out / "forcing.json")
    assert bench.langs == ("de",) and bench.operators == ("add", "rotate")
    assert bench.strengths == {"add": (0.5,), "rotate": (30.0,)}
    assert bench.meta["run_dir"] == str(out / "forcing")
    assert (out / "forcing" / "config.json").is_file()
    table = pd.read_csv(out / "forcing.csv")
    assert list(table.columns) == list(bench.table().columns)
    assert list(table["operator"]) == ["add", "rotate"] and list(table["layer"]) == [1, 1]
    figures = sorted(p.name for p in (out / "figures").glob("*.html"))
    assert figures == ["forcing.html", "forcing_layers_to_english_mean_diff_add.html",
                       "forcing_layers_to_english_mean_diff_rotate.html"]  # fmt: skip
    assert str(out / "forcing.json") in stdout.splitlines()
    assert "de to_english mean_diff·add: test score" in err
    saved = json.loads((out / "forcing.json").read_text())

    # the same command again: every cell read back, nothing run, the same result
    spy.calls.clear()
    code, _, err = _forcing(capsys, out, "--layers", "1")
    assert code == 0, err
    assert spy.calls == []
    assert json.loads((out / "forcing.json").read_text()) == saved

    # one more layer: only its cells run (and a test run if it is now the selected one)
    code, _, err = _forcing(capsys, out, "--layers", "1,2")
    assert code == 0, err
    assert {(1, "select"), (None, "select"), (None, "test")}.isdisjoint(spy.calls)
    assert spy.calls.count((2, "select")) == 2
    assert ForcingBenchmark.load(out / "forcing.json").layers == (1, 2)

    # --no-resume starts over
    spy.calls.clear()
    code, _, err = _forcing(capsys, out, "--layers", "1", "--no-resume")
    assert code == 0, err
    assert len(spy.calls) == 6


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--langs", "Klingon"], "unknown language 'Klingon'"),
        (["--langs", "de", "it"], "--langs: it is not a forcing language"),
        (["--langs", "de", "--operators", "turn"], "invalid choice: 'turn'"),
        (["--langs", "de", "--strengths", "add=-0.5"], "add strengths must be positive"),
        (["--langs", "de", "--strengths", "spin=1"], "expected OPERATOR=S1,S2"),
        (["--langs", "de", "--strengths", "rotate=30"], "--strengths names rotate, which is not"),
        (["--langs", "de", "--strengths", "add=1", "add=2"], "--strengths names add twice"),
        (["--langs", "sw", "--n-fit", "400", *SMALL[:2]], "exceeds the 390 pairs"),
        (["--langs", "de", "--layers", "9", *SMALL], "--layers"),
        (
            ["--langs", "de", "--operators", "rotate", "--strengths", "rotate=200"],
            "rotate strengths (degrees) must be in (0, 180]",
        ),
    ],
)
def test_forcing_bad_input_is_one_line(capsys, tmp_path, argv, expected):
    code, out, err = run(capsys, "forcing", *TINY, *argv, "--out", tmp_path / "run")
    assert expected in one_error(code, err)
    assert out == ""
    assert not (tmp_path / "run" / "forcing" / "cells").exists()


def test_forcing_help_needs_no_torch_and_shows_the_defaults():
    code = (
        "import sys\nfrom interp_steer.cli import main\n"
        "try:\n    main(['forcing', '--help'])\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"
    text = " ".join(done.stdout.split())
    for op, values in FORCING_STRENGTHS.items():
        assert f"{op}={','.join(f'{x:g}' for x in values)}" in text
    assert "--n-select" in text and "--strengths OP=S1,S2" in text


def test_forcing_options_are_the_librarys():
    assert OPERATOR_CHOICES == OPERATORS  # spelled in constants so --help needs no torch
    parser = build_parser()._subparsers._group_actions[0].choices["forcing"]
    defaults = vars(parser.parse_args(["--langs", "de"]))
    signature = inspect.signature(forcing_benchmark).parameters
    for name in ("n_fit", "n_select", "n_test", "source", "positions", "k", "max_new_tokens",
                 "batch_size", "seed", "resume"):  # fmt: skip
        assert defaults[name] == signature[name].default, name
    assert tuple(defaults["directions"]) == signature["directions"].default
    assert tuple(defaults["methods"]) == signature["methods"].default
    assert tuple(defaults["operators"]) == signature["operators"].default
