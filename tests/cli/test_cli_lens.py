"""``interp-steer lens`` on the tiny model: where it reads, what it writes, what it names."""

from typing import get_args

import pytest
import torch
from cli_run import TINY, one_error, run

from interp_steer.analysis import (
    Lens,
    LogitLensResult,
    TunedLens,
    fit_tuned_lens,
    tuned_lens_path,
)
from interp_steer.cli.parser import LENS_CHOICES
from interp_steer.data import load_parallel
from interp_steer.models import load_model
from interp_steer.steering import SteeringVector


def test_dataset_sentences_are_read_before_their_last_word(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_STEER_PROGRESS", "1")
    code, _, err = run(capsys, "lens", *TINY, "--lang", "sw", "--n", "2", "--out", tmp_path)
    assert code == 0, err
    lens = LogitLensResult.load(tmp_path / "lens.json")
    sentences = list(load_parallel("flores", "sw", n=2).target)
    assert lens.readout == "last" and len(lens.prompts) == 2
    for prompt, sentence in zip(lens.prompts, sentences, strict=True):
        # the prompt is the sentence up to the space before its last word: the lens
        # reads where that word comes next, not the full stop after it
        rest = sentence.strip()[len(prompt) :]
        assert sentence.startswith(prompt) and rest.startswith(" ")
        assert len(rest.split()) == 1 and not prompt.endswith(".")
    assert not (tmp_path / "figures" / "lens_tokens_steered.html").exists()
    assert "logit lens:   0%" in err and "token languages" in err  # the bars, on stderr


def test_a_vector_writes_the_steered_table_and_names_itself(capsys, tmp_path):
    SteeringVector(torch.ones(64), layer=1, method="mean_diff", source_lang="de").save(
        tmp_path / "de-L1"
    )
    argv = ["lens", *TINY, "--lang", "de", "--prompt", "Der Hund schläft auf dem "]
    code, _, err = run(capsys, *argv, "--vector", tmp_path / "de-L1", "--alpha", "2",
                       "--out", tmp_path)  # fmt: skip
    assert code == 0, err
    lens = LogitLensResult.load(tmp_path / "lens.json")
    assert lens.prompts == ("Der Hund schläft auf dem",)  # trailing space: not a token read
    assert lens.meta["vector"]["name"] == "de-L1"
    assert lens.steering_label() == "vector de-L1 at layer 1, α = 2"
    for name in ("lens_tokens_steered", "lens_shares"):
        html = (tmp_path / "figures" / f"{name}.html").read_text()
        assert "vector de-L1 at layer 1" in html
    assert "vector de-L1" not in (tmp_path / "figures" / "lens_tokens.html").read_text()


@pytest.mark.parametrize("flag", ["--alpha", "--ratio"])
def test_a_strength_without_a_vector_is_an_error(capsys, tmp_path, flag):
    argv = ["lens", *TINY, "--lang", "de", "--prompt", "Hallo", flag, "1", "--out", tmp_path]
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert "--alpha/--ratio need --vector" in err


def test_the_lens_option_names_the_library_lenses_and_defaults_to_logit(capsys, tmp_path):
    assert get_args(Lens) == LENS_CHOICES  # spelled out in the parser so --help needs no torch
    argv = ["lens", *TINY, "--lang", "de", "--prompt", "Der Hund schläft auf dem"]
    code, _, err = run(capsys, *argv, "--out", tmp_path)
    assert code == 0, err
    lens = LogitLensResult.load(tmp_path / "lens.json")
    assert lens.meta["lens"] == "logit" and lens.meta["tuned_lens"] is None
    assert "lens: logit" in err


def test_lens_tuned_fits_saves_and_then_reuses_the_models_lens(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_STEER_CACHE", str(tmp_path / "cache"))
    argv = ["lens", *TINY, "--lang", "de", "--prompt", "Der Hund schläft auf dem", "--lens",
            "tuned"]  # fmt: skip
    code, _, err = run(capsys, *argv, "--out", tmp_path / "first")
    assert code == 0, err
    assert "no tuned lens saved for tiny with these weights: fitting one" in err
    first = LogitLensResult.load(tmp_path / "first" / "lens.json")
    saved = TunedLens.load(tuned_lens_path(load_model("tiny")))  # where load_tuned_lens looks
    assert first.meta["lens"] == "tuned"
    assert first.meta["tuned_lens"]["checksum"] == saved.checksum
    assert first.meta["tuned_lens"]["texts"]["part"] == "train"  # fit_tuned_lens's default mix
    code, _, err = run(capsys, *argv, "--out", tmp_path / "second")
    assert code == 0, err
    assert "fitting" not in err and "tuned lens: the one saved for tiny" in err
    second = LogitLensResult.load(tmp_path / "second" / "lens.json")
    assert second.meta["tuned_lens"] == first.meta["tuned_lens"]


def test_tuned_lens_path_is_read_and_recorded(capsys, tmp_path, tiny):
    lens = fit_tuned_lens(tiny, ["Hallo Welt", "Hello world"], epochs=2, save=False)
    lens.save(tmp_path / "mine")
    argv = ["lens", *TINY, "--lang", "de", "--prompt", "Der Hund schläft auf dem"]
    code, _, err = run(capsys, *argv, "--lens", "tuned", "--tuned-lens", tmp_path / "mine.json",
                       "--out", tmp_path)  # fmt: skip
    assert code == 0, err
    result = LogitLensResult.load(tmp_path / "lens.json")
    assert result.meta["lens"] == "tuned"
    assert result.meta["tuned_lens"]["checksum"] == lens.checksum
    assert result.meta["tuned_lens"]["texts"] == {"part": "user", "n_texts": 2}
    assert f"tuned lens: {tmp_path / 'mine.json'}" in err


def test_a_tuned_lens_path_without_lens_tuned_is_an_error(capsys, tmp_path):
    argv = ["lens", *TINY, "--lang", "de", "--prompt", "Hallo", "--tuned-lens", tmp_path / "x"]
    code, out, err = run(capsys, *argv, "--out", tmp_path)
    assert one_error(code, err).endswith("--tuned-lens is read only with --lens tuned")
    assert out == ""
    missing = ["--lens", "tuned", "--tuned-lens", tmp_path / "missing", "--out", tmp_path]
    code, _, err = run(capsys, *argv[:-2], *missing)
    assert "missing" in one_error(code, err)
