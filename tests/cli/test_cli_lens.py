"""``interp-steer lens`` on the tiny model: where it reads, what it writes, what it names."""

import pytest
import torch
from cli_run import TINY, run

from interp_steer.analysis import LogitLensResult
from interp_steer.data import load_parallel
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
