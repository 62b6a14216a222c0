"""Tuned lens: identity at init, lower held-out KL after training, the last layer is the
model's output, save/load bit-exact, lookup by fingerprint, and the lens= option of the
lens analyses."""

import json

import numpy as np
import pytest
import torch
from jaxtyping import TypeCheckError

from interp_steer import load_model
from interp_steer.activations import model_fingerprint
from interp_steer.analysis import (
    TrajectoryResult,
    TunedLens,
    fit_tuned_lens,
    language_trajectory,
    lens_kl,
    lens_texts,
    load_tuned_lens,
    logit_lens,
    project_to_vocab,
    tuned_lens_path,
)
from interp_steer.analysis.vocab_projection import readout_residuals
from interp_steer.data import load_concepts, translation_prompts
from interp_steer.models.backend import hf_model

LANGS = ["en", "de", "zh", "sw"]
KEYS = ["dog", "cat", "bread", "water", "sun", "moon"]


@pytest.fixture(scope="module")
def train_texts():
    return lens_texts(LANGS, n_per_lang=6)[0]


@pytest.fixture(scope="module")
def heldout_texts():
    return lens_texts(LANGS, n_per_lang=3, part="heldout")[0]


@pytest.fixture(scope="module")
def trained(tiny, train_texts):
    return fit_tuned_lens(tiny, train_texts, epochs=3, lr=1e-3, save=False)


@pytest.fixture
def cache(monkeypatch, tmp_path):
    monkeypatch.setenv("INTERP_STEER_CACHE", str(tmp_path))
    return tmp_path


@pytest.fixture(scope="module")
def prompts(tiny):
    few = load_concepts(["de", "zh"]).subset(KEYS)
    return translation_prompts(tiny.tokenizer, few, "de", "zh", shots=2)


def _identity(model):
    return TunedLens.identity(
        model="tiny", fingerprint=model_fingerprint(model), n_layers=4, d_model=64
    )


def test_identity_lens_reads_exactly_as_the_logit_lens(tiny, prompts):
    text = ["Der Hund schläft auf dem", "Hallo Welt"]
    logit = logit_lens(tiny, text, lang="de", k=4, positions="all")
    same = logit_lens(tiny, text, lang="de", k=4, positions="all", lens=_identity(tiny))
    assert np.array_equal(same.probs, logit.probs)
    assert np.array_equal(same.tokens, logit.tokens)
    assert (logit.meta["lens"], logit.meta["tuned_lens"]) == ("logit", None)
    assert same.meta["lens"] == "tuned"
    assert same.meta["tuned_lens"]["fingerprint"] == model_fingerprint(tiny)
    t_logit = language_trajectory(tiny, prompts, n_boot=20)
    t_same = language_trajectory(tiny, prompts, lens=_identity(tiny), n_boot=20)
    for name in ("target_prob", "english_prob", "entropy"):
        assert np.array_equal(getattr(t_same, name), getattr(t_logit, name)), name
    assert (t_logit.lens, t_same.lens) == ("logit", "tuned")


def test_training_lowers_heldout_kl_at_every_layer_but_the_last(tiny, trained, heldout_texts):
    logit = lens_kl(tiny, heldout_texts, "logit", max_tokens=32)
    tuned = lens_kl(tiny, heldout_texts, trained, max_tokens=32)
    print("held-out KL, logit:", logit.round(4), "tuned:", tuned.round(4))
    assert logit.shape == tuned.shape == (4,)
    assert (tuned[:-1] < logit[:-1]).all()
    assert tuned[-1] == logit[-1] == 0.0
    # the training loss fell too, at every trained layer
    loss = np.asarray(trained.meta["train_kl"])
    assert loss.shape == (trained.meta["steps"], 3)
    assert (loss[-1] < loss[0]).all()
    assert trained.meta["n_tokens"] > 0 and trained.meta["texts"]["part"] == "user"
    frame = trained.to_frame()
    assert list(frame.columns) == ["step", "layer", "kl"] and len(frame) == loss.size


def test_default_mix_is_recorded(tiny):
    lens = fit_tuned_lens(tiny, langs=["en", "uk"], n_per_lang=2, epochs=1, save=False)
    mix = lens.meta["texts"]
    assert mix["langs"] == ["en", "uk"] and mix["part"] == "train"
    assert mix["sources"] == {
        "en": {"dataset": "flores", "lines": [0, 2]},
        "uk": {"dataset": "tatoeba", "lines": [0, 2]},  # FLORES has no Ukrainian here
    }
    assert lens.meta["n_texts"] == 4


def test_auto_precision_is_the_native_one_and_recorded(tiny, monkeypatch):
    """``"auto"`` trains exactly as the precision it resolves to, and records that one:
    float32 on a CPU without native bfloat16 (emulated, ~75x slower), bfloat16 with it."""
    texts = ["Hallo Welt", "Hello world"]
    for native, want in ((False, "float32"), (True, "bfloat16")):
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda n=native: n)
        auto = fit_tuned_lens(tiny, texts, epochs=2, save=False)
        explicit = fit_tuned_lens(tiny, texts, epochs=2, precision=want, save=False)
        assert auto.meta["precision"] == explicit.meta["precision"] == want
        assert np.array_equal(auto.weight, explicit.weight)
        assert np.array_equal(auto.bias, explicit.bias)
    other = fit_tuned_lens(tiny, texts, epochs=2, precision="float32", save=False)
    assert not np.array_equal(other.weight, explicit.weight)  # the precision does matter


def test_last_layer_is_the_models_output(tiny, trained):
    logits, cache = tiny.run_with_cache("Hallo Welt, wie geht es dir?")
    resid = cache["blocks.3.hook_resid_post"]
    assert trained.translate(resid, 3) is resid  # identity: not even a copy
    assert trained.bias[-1].any() == trained.weight[-1].any() == False  # noqa: E712
    assert torch.allclose(project_to_vocab(tiny, trained.translate(resid, 3)), logits, atol=1e-4)
    assert trained.bias[:-1].any()  # the other layers did train
    with pytest.raises(ValueError, match="last layer's translator must be the identity"):
        TunedLens("tiny", "x", trained.weight + 1.0, trained.bias)


def test_save_load_is_bit_exact(trained, tmp_path):
    path = trained.save(tmp_path / "lens")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lens.json", "lens.safetensors"]
    back = TunedLens.load(path)
    assert back.weight.dtype == np.float32 and back.bias.dtype == np.float32
    assert np.array_equal(back.weight, trained.weight) and np.array_equal(back.bias, trained.bias)
    assert (back.model, back.fingerprint, back.meta) == (
        trained.model, trained.fingerprint, trained.meta,
    )  # fmt: skip
    assert TunedLens.load(tmp_path / "lens.safetensors").checksum == trained.checksum
    # a JSON beside other tensors (a half-replaced lens) is refused
    info = json.loads(path.read_text())
    info["checksum"] = "sha256:" + "0" * 64
    path.write_text(json.dumps(info))
    with pytest.raises(ValueError, match="do not match the checksum"):
        TunedLens.load(path)
    with pytest.raises(FileNotFoundError, match="no tuned lens file"):
        TunedLens.load(tmp_path / "other")


def test_saved_lens_is_found_by_the_checkpoints_fingerprint(tiny, train_texts, cache):
    with pytest.raises(FileNotFoundError, match=r"fit_tuned_lens\(model\)"):
        load_tuned_lens(tiny)
    lens = fit_tuned_lens(tiny, train_texts[:4], epochs=1)  # save=True: in the cache
    stem = tuned_lens_path(tiny)
    assert stem.parent == cache / "tuned_lens" / f"tiny-{model_fingerprint(tiny)}"
    assert stem.with_suffix(".safetensors").is_file() and stem.with_suffix(".json").is_file()
    assert load_tuned_lens(tiny).checksum == TunedLens.for_model(tiny).checksum == lens.checksum

    other = load_model("tiny")  # another checkpoint: one weight changed
    with torch.no_grad():
        hf_model(other).model.norm.weight[0] += 1.0
    assert model_fingerprint(other) != model_fingerprint(tiny)
    with pytest.raises(FileNotFoundError, match="no tuned lens for tiny with these weights"):
        load_tuned_lens(other)
    with pytest.raises(FileNotFoundError, match="fit_tuned_lens"):
        logit_lens(other, "Hallo", lang="de", lens="tuned")
    with pytest.raises(ValueError, match="fingerprint"):
        lens_kl(other, ["Hallo Welt"], lens)  # a lens of other weights, passed by hand


def test_lens_analyses_read_through_the_saved_tuned_lens(tiny, trained, prompts, cache):
    trained.save(tuned_lens_path(tiny))
    text = ["Der Hund schläft auf dem", "Guten Morgen, wie geht"]
    logit = logit_lens(tiny, text, lang="de", k=5)
    tuned = logit_lens(tiny, text, lang="de", k=5, lens="tuned")
    by_hand = logit_lens(tiny, text, lang="de", k=5, lens=trained)
    assert np.array_equal(tuned.probs, by_hand.probs)
    assert np.array_equal(tuned.probs[:, -1], logit.probs[:, -1])  # last layer: the same
    assert np.array_equal(tuned.tokens[:, -1], logit.tokens[:, -1])
    assert not np.allclose(tuned.probs[:, 0], logit.probs[:, 0])  # layer 0: translated
    assert tuned.meta["tuned_lens"]["checksum"] == trained.checksum

    res = language_trajectory(tiny, prompts, lens="tuned", n_boot=20)
    base = language_trajectory(tiny, prompts, n_boot=20)
    assert res.lens == "tuned" and res.meta["tuned_lens"]["fingerprint"] == trained.fingerprint
    assert np.array_equal(res.target_prob[:, -1], base.target_prob[:, -1])
    assert np.array_equal(res.entropy[:, -1], base.entropy[:, -1])
    # layer 0 by hand: translate, final norm + unembedding, softmax, mass on the answer set
    tokens = [tiny.to_tokens(t, move_to_device=False)[0] for t in prompts.texts]
    rows = readout_residuals(tiny, tokens, (0,), "last", batch_size=8)[0]
    probs = project_to_vocab(tiny, trained.translate(rows, 0)).detach().double().softmax(-1)
    want = [float(probs[i, list(ids)].sum()) for i, ids in enumerate(prompts.target_ids)]
    # float32 residuals batched and padded otherwise: equal to float32 rounding, not bitwise
    np.testing.assert_allclose(res.target_prob[0, 0], want, rtol=1e-5, atol=1e-12)
    assert not np.allclose(res.entropy[0, 0], base.entropy[0, 0])
    back = TrajectoryResult.from_dict(json.loads(json.dumps(res.to_dict())))
    assert back.lens == "tuned" and np.array_equal(back.target_prob, res.target_prob)


def test_bad_lens_options_say_what_was_expected(tiny, prompts, heldout_texts):
    # under pytest jaxtyping's checker refuses an option outside the Literal first
    with pytest.raises((ValueError, TypeCheckError), match="lens"):
        logit_lens(tiny, "Hallo", lang="de", lens="tunned")  # type: ignore[arg-type]
    with pytest.raises((ValueError, TypeCheckError), match="lens"):
        language_trajectory(tiny, prompts, lens="bogus")  # type: ignore[arg-type]
    with pytest.raises((ValueError, TypeCheckError), match="part"):
        lens_texts(["de"], 2, part="test")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at most 100 for the held-out part"):
        lens_texts(["de"], 101, part="heldout")
    with pytest.raises((ValueError, TypeCheckError), match="precision"):
        fit_tuned_lens(tiny, ["Hallo"], precision="float16", save=False)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lr must be a positive number"):
        fit_tuned_lens(tiny, ["Hallo"], lr=0.0, save=False)
    wide = TunedLens.identity(model="tiny", fingerprint="f", n_layers=4, d_model=32)
    with pytest.raises(ValueError, match="4 layers of width 32"):
        lens_kl(tiny, heldout_texts[:1], wide)


@pytest.mark.real
def test_tuned_lens_on_gemma(gemma):
    """A small multilingual lens on Gemma-3-270M: identity at the last layer, and a held-out
    KL below the logit lens's at every earlier layer (both curves printed)."""
    langs = ["en", "de", "zh", "sw", "ru", "ja"]
    lens = fit_tuned_lens(gemma, langs=langs, n_per_lang=2, max_tokens=24, save=False)
    heldout = lens_texts(langs, n_per_lang=1, part="heldout")[0]
    logit = lens_kl(gemma, heldout, "logit", max_tokens=24)
    tuned = lens_kl(gemma, heldout, lens, max_tokens=24)
    print(f"\ntrained on {lens.meta['n_tokens']} tokens in {lens.meta['seconds']:.0f} s")
    print("layer  logit KL  tuned KL")
    for layer, (a, b) in enumerate(zip(logit, tuned, strict=True)):
        print(f"{layer:5d}  {a:8.3f}  {b:8.3f}")
    assert tuned[-1] == logit[-1] == 0.0
    assert (tuned[:-1] < logit[:-1]).all()
    logits, cache = gemma.run_with_cache("Der Hund schläft auf dem")
    last = cache[f"blocks.{gemma.cfg.n_layers - 1}.hook_resid_post"]
    assert lens.translate(last, gemma.cfg.n_layers - 1) is last
    assert torch.allclose(project_to_vocab(gemma, last), logits.float(), atol=1e-3)
