"""What the command line lacked: --max-new-tokens, --translator, an offline hub, errors that
come last and in CLI words, every language's data checked before any work."""

import gc
import json
import os
import re
import socket
import subprocess
import sys

import datasets
import pytest
from cli_run import TINY, one_error, run

from interp_steer.cli import commands, main
from interp_steer.evaluation import EvalResult, batches, harness


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if a command loads its model (the work starts there)."""

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the input was checked")

    monkeypatch.setattr(commands, "load_model", refuse)


@pytest.fixture
def hub_online(monkeypatch):
    """No offline switch set, whatever the machine's environment says."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)


def test_max_new_tokens_reaches_generation_and_is_recorded(monkeypatch, capsys, tmp_path):
    budgets = []
    generate = batches.generate_texts

    def recording(*args, **kwargs):
        budgets.append(kwargs["max_new_tokens"])
        return generate(*args, **kwargs)

    monkeypatch.setattr(batches, "generate_texts", recording)
    args = ["eval", *TINY, "--task", "mgsm", "--lang", "de", "--n", "2", "--out", tmp_path]
    code, _, err = run(capsys, *args, "--max-new-tokens", "3")
    assert code == 0, err
    assert budgets == [3]
    (path,) = (tmp_path / "eval").glob("*.json")
    assert EvalResult.load(path).settings["max_new_tokens"] == 3
    # another budget is another setting: the saved result is not continued under it, and the
    # advice is in command-line flags, not the library's resume=False
    line = one_error(*run(capsys, *args, "--max-new-tokens", "5")[::2])
    assert "max_new_tokens 3 → 5" in line
    assert "use another --out" in line and "--no-resume" in line
    assert "resume=False" not in line and "output path" not in line
    assert budgets == [3]
    code, _, err = run(capsys, *args, "--max-new-tokens", "5", "--no-resume")
    assert code == 0, err
    assert budgets == [3, 5] and EvalResult.load(path).settings["max_new_tokens"] == 5
    line = one_error(*run(capsys, *args, "--max-new-tokens", "0")[::2])
    assert "--max-new-tokens: expected a positive integer, got '0'" in line


def test_translator_baseline_from_the_command_line(monkeypatch, capsys, tmp_path, hub_online):
    asked = []

    def fake_loader(model_id, src_lang):  # stands in for an NLLB pipeline
        asked.append((model_id, src_lang))

        def translate(text):
            return f"EN[{text}]"

        translate.__name__ = model_id
        return translate

    monkeypatch.setattr(harness, "load_translator", fake_loader)
    folder = tmp_path / "nllb"
    folder.mkdir()
    args = ["eval", *TINY, "--task", "xcopa", "--lang", "sw", "--n", "2", "--out", tmp_path]
    code, _, err = run(capsys, *args, "--baseline", "translator", "--translator", folder)
    assert code == 0, err
    assert asked == [(str(folder), "sw")]
    result = EvalResult.load(tmp_path / "eval" / "xcopa-sw-test-translator.json")
    assert result.baseline == "translator" and result.n == 2
    assert result.settings["translator"] == str(folder)
    assert all(item.meta["english"].startswith("EN[") for item in result.items)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--baseline", "translator"], "--baseline translator needs --translator MODEL"),
        (["--translator", "facebook/nllb-200-distilled-600M"], "only with --baseline translator"),
        (["--baseline", "translator", "--translator", "./no/such/folder"], "not a folder"),
        (
            ["--baseline", "translator", "--translator", "facebook/nllb-200-distilled-600M"],
            "facebook/nllb-200-distilled-600M is read from the Hugging Face hub, which cannot "
            "be reached",
        ),
    ],
)
def test_translator_mistakes_fail_before_the_model(
    monkeypatch, capsys, tmp_path, hub_online, no_model, extra, expected
):
    monkeypatch.setattr(commands, "hub_reachable", lambda: False)
    args = ["eval", *TINY, "--task", "xcopa", "--lang", "sw", "--n", "2", "--out", tmp_path]
    assert expected in one_error(*run(capsys, *args, *extra)[::2])
    assert not (tmp_path / "eval").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["eval", "--task", "xnli", "--lang", "de"],
        ["sweep", "--task", "mmlu", "--langs", "de", "--layers", "1", "--select-items", "2"],
    ],
)
def test_a_hub_task_offline_fails_in_one_line_before_any_work(
    monkeypatch, capsys, tmp_path, no_model, argv
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    connections = []
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: connections.append(a))

    def cache_only(hub_id, config, split):  # what datasets does offline with an empty cache
        raise ConnectionError(f"Couldn't reach '{hub_id}' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(datasets, "load_dataset", cache_only)
    out = tmp_path / "run"
    line = one_error(*run(capsys, *argv, *TINY, "--out", out)[::2])
    config = "de" if argv[0] == "eval" else "DE_DE"
    assert "HF_HUB_OFFLINE is set and the hub cache does not hold it" in line
    assert f"{argv[2]}/{config}/test.jsonl" in line and "INTERP_STEER_DATA" in line
    assert connections == [] and not out.exists()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["sweep", "--langs", "it,de", "--layers", "1", "--n", "1"], "xcopa has no de data"),
        (["sweep", "--langs", "it,sw", "--layers", "1", "--fit-dataset", "mgsm"], "mgsm has no it"),
        (["transfer", "--langs", "it", "--targets", "it,de", "--layer", "1"], "xcopa has no de"),
        (["similarity", "--langs", "de,yo", "--n", "2"], "flores has no yo data"),
        (["eval", "--task", "forcing", "--lang", "yo"], "flores has no yo data"),
        (["eval", "--task", "xcopa", "--lang", "de"], "xcopa has no de data"),
    ],
)
def test_every_language_is_checked_before_any_work(capsys, tmp_path, no_model, argv, expected):
    out = tmp_path / "run"
    assert expected in one_error(*run(capsys, *argv, *TINY, "--out", out)[::2])
    assert not out.exists()


def _error_last(capfd, code, command):
    """The error line of a failed run, checked to be the last thing on stderr."""
    gc.collect()  # a bar left open would draw itself again when it is collected
    err = capfd.readouterr().err
    lines = [line.strip() for line in re.split(r"[\r\n]", err) if line.strip()]
    assert code == 2, err
    assert lines[-1].startswith(f"interp-steer {command}: error: "), err
    assert sum(": error: " in line for line in lines) == 1, err
    return lines


def test_an_error_after_a_bar_started_is_the_last_line(monkeypatch, capfd, tmp_path):
    monkeypatch.setenv("INTERP_STEER_PROGRESS", "1")  # bars drawn, as in a terminal
    args = ["sweep", *TINY, "--langs", "sw", "--layers", "1", "--ratios", "0.5",
            "--n-fit", "2", "--no-test", "--out", tmp_path]  # fmt: skip
    assert main([str(a) for a in [*args, "--n", "1"]]) == 0
    capfd.readouterr()
    # a damaged cell is read mid-run, once the sweep's bar is drawn
    (cell,) = (tmp_path / "cells" / "sw").glob("L1-*.json")
    cell.write_text(json.dumps({"alpha": 1.0}))
    lines = _error_last(capfd, main([str(a) for a in [*args, "--n", "1"]]), "sweep")
    assert any(line.startswith("sweep cells") for line in lines[:-1])  # a bar was drawn
    assert str(cell) in lines[-1]
    cell.unlink()
    # the same folder with another --n: the advice names the flag, not run_dir
    lines = _error_last(capfd, main([str(a) for a in [*args, "--n", "2"]]), "sweep")
    assert "n: 1 → 2" in lines[-1] and lines[-1].endswith("use another --out")


@pytest.mark.parametrize(
    "argv",
    [
        ["eval", "--task", "xnli", "--lang", "de"],
        ["sweep", "--task", "mmlu", "--langs", "de,fr"],
    ],
)
def test_a_hub_task_without_network_fails_before_torch_is_imported(argv, tmp_path):
    """In a fresh process: exit 2, one line naming the remedy, and torch never imported."""
    code = (
        "import sys\nfrom interp_steer.cli import main\n"
        f"rc = main({[*argv, '--model', 'tiny', '--out', str(tmp_path / 'out')]!r})\n"
        "print(rc, 'torch' in sys.modules)\n"
    )
    env = {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9", "INTERP_STEER_DATA": str(tmp_path)}
    env.pop("HF_HUB_OFFLINE", None)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.stdout.split() == ["2", "False"], done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot be reached" in lines[0] and "INTERP_STEER_DATA" in lines[0]
    assert not (tmp_path / "out").exists()
