"""Logit lens: exactness at the final layer, language shares, result validation and I/O."""

import dataclasses

import numpy as np
import pytest
import torch

from interp_steer.analysis import LogitLensResult, logit_lens, project_to_vocab
from interp_steer.analysis import lens as lens_module
from interp_steer.analysis.lens import cloze_prompts
from interp_steer.analysis.token_languages import BUCKETS, bucket_of, label_tokens, token_language
from interp_steer.steering import SteeringVector

PROMPTS = ["Hallo Welt, wie geht es dir heute?", "Der Hund schläft."]


@pytest.fixture(scope="module")
def lens(tiny):
    v = SteeringVector(torch.randn(64, generator=torch.Generator().manual_seed(0)), layer=1)
    return logit_lens(tiny, PROMPTS, vector=v, alpha=3.0, positions="all", k=4, lang="de")


def test_projection_of_final_layer_equals_logits(tiny):
    ids = tiny.to_tokens(PROMPTS[0])
    logits, cache = tiny.run_with_cache(ids)
    lens_logits = project_to_vocab(tiny, cache["blocks.3.hook_resid_post"])
    assert lens_logits.shape == logits.shape
    assert torch.allclose(lens_logits, logits.float(), atol=1e-4)


def test_final_layer_topk_equals_model(tiny, lens):
    # Batched (left-padded, masked) read-out must agree with one unpadded forward per prompt.
    last = lens.layers.index(3)
    for p, prompt in enumerate(PROMPTS):
        with torch.inference_mode():
            probs = torch.softmax(tiny(prompt)[0].float(), -1)  # [pos, vocab]
        top = probs.topk(lens.k, dim=-1)
        rows = np.flatnonzero(lens.item_prompt == p)
        assert lens.item_position[rows].tolist() == list(range(probs.shape[0]))
        np.testing.assert_allclose(lens.probs[0, last, rows], top.values.numpy(), atol=1e-4)
        decoded = [[tiny.tokenizer.decode([int(t)]) for t in r] for r in top.indices]
        assert lens.tokens[0, last, rows].tolist() == decoded


def test_shares_sum_to_one(lens):
    for weighting in ("uniform", "prob"):
        shares = lens.shares(weighting)
        assert shares.shape == (2, 4, len(BUCKETS))
        np.testing.assert_allclose(shares.sum(-1), 1.0)
        assert (shares >= 0).all()
    assert lens.bucket_names == ("English", "German", "other", "undetermined")


def test_steering_changes_readout_from_its_layer_on(lens):
    # the vector is added at blocks.1.hook_resid_post: layer 0 is untouched, 1.. are not
    assert lens.variants == ("base", "steered")
    np.testing.assert_array_equal(lens.probs[0, 0], lens.probs[1, 0])
    for layer in (1, 2, 3):
        assert not np.allclose(lens.probs[0, layer], lens.probs[1, layer])


def test_validation_rejects_mismatches(lens):
    with pytest.raises(ValueError, match="tokens has shape"):
        dataclasses.replace(lens, tokens=lens.tokens[:, :2])
    with pytest.raises(ValueError, match="item_prompt"):
        dataclasses.replace(lens, item_prompt=lens.item_prompt[:-1])
    with pytest.raises(ValueError, match="not a prompt"):
        dataclasses.replace(lens, item_prompt=lens.item_prompt + 5)
    with pytest.raises(ValueError, match="variants"):
        dataclasses.replace(lens, variants=("base", "base"))


def test_save_load_roundtrip(lens, tmp_path):
    path = lens.save(tmp_path / "lens.json")
    back = LogitLensResult.load(path)
    assert back.tokens.tolist() == lens.tokens.tolist()
    np.testing.assert_allclose(back.shares(), lens.shares())
    assert back.meta == lens.meta and back.layers == lens.layers
    table = LogitLensResult.load(lens.save(tmp_path / "lens.parquet"))  # parquet too
    assert table.tokens.tolist() == lens.tokens.tolist() and table.meta == lens.meta
    frame = lens.to_frame()
    assert len(frame) == lens.tokens.size
    assert set(frame["bucket"]) <= set(BUCKETS)


def test_labels_and_buckets():
    assert label_tokens(["", " ", "12", "<eos>"]) == ["und"] * 4
    assert label_tokens(["คน", "한국"]) == ["th", "ko"]
    assert [bucket_of(c, "sw") for c in ("en", "sw", "de", "und")] == [0, 1, 2, 3]


def test_a_token_is_labelled_on_its_own_not_by_its_cell():
    # per cell, " Kindly" was labelled with its neighbours: English beside " the", German
    # beside " Hund"; per token it gets one label wherever it is
    english_cell = label_tokens([" Kindly", " the", " and"])
    german_cell = label_tokens([" Kindly", " Hund", " und"])
    assert english_cell[0] == german_cell[0] == token_language(" Kindly")
    assert english_cell[1:] == ["en", "en"] and german_cell[1:] == ["de", "de"]
    assert token_language("\u2581Kindly") == token_language(" Kindly")
    with pytest.raises(ValueError, match="min_letters"):
        token_language(" Kindly", min_letters=0)


WORDS = (" Kindly", " the", " and", " Hund", " und")


def test_english_words_are_english_beside_any_prompt_language():
    # langdetect alone reads lone English words as Afrikaans, Dutch or Danish
    words = [" water", " green", " yellow", " brown", " food", " tea", " thousand"]
    assert label_tokens(words, lang="zh") == ["en"] * len(words)
    assert label_tokens([" Wasser", " die", " water"], lang="de") == ["de", "de", "en"]
    assert token_language(" the", lang="zh") == "en"  # though Chinese sentences quote it
    assert token_language(" in", lang="de") == "und"  # common in both: neither wins


def test_lens_gives_a_token_one_language_in_every_cell(tiny, monkeypatch):
    # a constructed read-out: cell rows alternate between " Kindly the and" and
    # " Kindly Hund und" (the per-cell rule labelled " Kindly" en in one, de in the other)
    ids = [t for t in range(10, 260) if t not in tiny.tokenizer.all_special_ids][: len(WORDS)]
    word = dict(zip(ids, WORDS, strict=True))
    cells = torch.tensor([[ids[0], ids[1], ids[2]], [ids[0], ids[3], ids[4]]])

    def fake_top(model, rows, k):
        picked = cells[torch.arange(rows.shape[0]) % 2]
        return torch.full(picked.shape, 1 / 3), picked

    monkeypatch.setattr(lens_module, "top_tokens", fake_top)
    monkeypatch.setattr(lens_module, "_decode", lambda tok, t: word.get(t) or tok.decode([t]))
    res = logit_lens(tiny, PROMPTS, positions="all", k=3, lang="de")
    kindly = res.langs[res.tokens == " Kindly"]
    assert kindly.size == res.tokens[..., 0].size  # it is every cell's top-1 token
    assert set(kindly.tolist()) == {token_language(" Kindly", lang="de")}
    for text in WORDS:
        assert set(res.langs[res.tokens == text].tolist()) == {token_language(text, lang="de")}
    # so its colour (the top-1 bucket) is the same in every cell
    assert len(set(res.buckets()[..., 0].ravel().tolist())) == 1


def test_progress_bars_follow_the_argument(tiny, capsys):
    logit_lens(tiny, PROMPTS, k=2, lang="de", batch_size=1, progress=True)
    err = capsys.readouterr().err
    assert "logit lens" in err and "0/2" in err and "token languages" in err
    logit_lens(tiny, PROMPTS, k=2, lang="de", progress=False)
    assert capsys.readouterr().err == ""


def test_cloze_prompts_cut_before_the_last_word():
    texts = ["Der Hund schläft auf dem Sofa.", "Kamati itakutana tena wiki ijayo!", "我哭了。"]
    assert cloze_prompts(texts) == [
        "Der Hund schläft auf dem",
        "Kamati itakutana tena wiki",
        "我哭",
    ]
    assert cloze_prompts("Hallo Welt") == ["Hallo"]
    with pytest.raises(ValueError, match="'x.'"):
        cloze_prompts(["Ein Satz.", "x."])


def test_steering_label_names_vector_layer_and_strength(tiny):
    v = SteeringVector(torch.ones(64), layer=2, method="pca", source_lang="sw")
    res = logit_lens(tiny, "Habari", vector=v, alpha=0.5, lang="sw", k=1, vector_name="sw-L2")
    assert res.meta["vector"]["name"] == "sw-L2"
    assert res.steering_label() == "vector sw-L2 at layer 2, α = 0.5"
    unnamed = logit_lens(
        tiny, "Habari", vector=v, alpha=3.0, lang="sw", k=1, steer_positions="last"
    )
    assert unnamed.steering_label() == "vector pca sw→en at layer 2, α = 3 (last positions)"
    assert logit_lens(tiny, "Habari", lang="sw", k=1).steering_label() is None


def test_bad_options(tiny):
    with pytest.raises((ValueError, TypeError)):  # TypeError: beartype under pytest
        logit_lens(tiny, PROMPTS, positions="first", lang="de")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="prompts"):
        logit_lens(tiny, [], lang="de")


@pytest.mark.real
def test_gemma_german_prompts(gemma):
    res = logit_lens(gemma, ["Der Hund läuft schnell nach", "Die Katze schläft auf dem"])
    assert res.lang == "de" and res.tokens.shape == (1, 18, 2, 5)
    np.testing.assert_allclose(res.shares().sum(-1), 1.0)
    # the final layer predicts German continuations for German prompts
    assert res.shares()[0, -1, 1] > res.shares()[0, -1, 0]
