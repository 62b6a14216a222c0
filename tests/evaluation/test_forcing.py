"""Language forcing in both directions: prompts, relevance margins, runs, the validation."""

import json
import math

import numpy as np
import pytest
import torch

from interp_steer.constants import DIRECTIONS, FORCING_LANGS
from interp_steer.data import detect_language, load_parallel
from interp_steer.data.languages import get_language
from interp_steer.evaluation import (
    ForcingPrompts,
    ForcingResult,
    RelevanceCheck,
    forcing_prompts,
    forcing_run,
    harmonic_mean,
    relevance_margins,
    validate_relevance,
    wilson_interval,
)
from interp_steer.evaluation.forcing import MAX_REPETITION, RELEVANCE_RULE, repetition
from interp_steer.models import generate_texts
from interp_steer.models.batching import token_ids
from interp_steer.steering import SteeringVector, steer


@pytest.fixture(scope="module")
def unit_vector():
    gen = torch.Generator().manual_seed(0)
    d = torch.randn(64, generator=gen)
    return SteeringVector(d / d.norm(), layer=1, method="random", model_name="tiny")


# ----------------------------------------------------------------- languages and prompts


def test_forcing_langs_are_the_generation_languages_plus_five_detectable_ones():
    assert FORCING_LANGS[:9] == ("bn", "de", "es", "fr", "ja", "ru", "sw", "th", "zh")
    extra = FORCING_LANGS[9:]
    assert len(extra) == 5 and len(set(FORCING_LANGS)) == 14
    assert {get_language(c).resource for c in extra} == {"high", "mid", "low"}
    for code in FORCING_LANGS:  # FLORES has them, and the detector can name them
        texts = load_parallel("flores", code, n=10).target
        assert sum(detect_language(t) == code for t in texts) >= 9, code
    assert DIRECTIONS == ("to_english", "from_english")


def test_forcing_prompts_swap_sides_between_directions():
    to_en = forcing_prompts("German", "to_english", start=3, n=5)
    from_en = forcing_prompts("de", "from_english", start=3, n=5)
    corpus = load_parallel("flores", "de")
    assert to_en.lang == from_en.lang == "de"
    assert to_en.ids == from_en.ids == corpus.ids[3:8]
    assert to_en.prompts == from_en.references == corpus.target[3:8]
    assert to_en.references == from_en.prompts == corpus.english[3:8]
    assert (to_en.intended, from_en.intended) == ("en", "de")
    assert [detect_language(p) for p in to_en.prompts] == ["de"] * 5
    assert [detect_language(p) for p in from_en.prompts] == ["en"] * 5
    assert (to_en.source, to_en.start, len(to_en)) == ("flores", 3, 5)
    assert to_en.fingerprint != from_en.fingerprint


def test_forcing_prompt_slices_are_disjoint_and_tile_the_corpus():
    fit = forcing_prompts("sw", "from_english", start=0, n=8)
    test = forcing_prompts("sw", "from_english", start=8, n=8)
    whole = forcing_prompts("sw", "from_english", start=0, n=16)
    assert not set(fit.ids) & set(test.ids)
    assert fit.ids + test.ids == whole.ids
    assert fit.prompts + test.prompts == whole.prompts
    tatoeba = forcing_prompts("sw", "to_english", n=4, source="tatoeba")
    assert tatoeba.source == "tatoeba" and tatoeba.ids[0].startswith("tatoeba")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lang": "xx"}, "xx"),
        ({"lang": "en"}, "non-English"),
        ({"direction": "to_german"}, r"direction(.|\n)*'to_german'"),
        ({"n": 0}, "n must be a positive int"),
        ({"n": 2.5}, r"n(.|\n)*2\.5"),
        ({"start": -1}, "start must be a non-negative int"),
        ({"start": 1010, "n": 4}, "flores-de has 1012 pairs; start=1010 with n=4 needs 1014"),
        ({"source": "nope"}, "nope"),
    ],
)
def test_forcing_prompts_refuse_bad_input_with_one_clear_error(kwargs, message):
    # a TypeError where pytest's runtime type checker reads the annotation first
    args = {"lang": "de", "direction": "to_english", **kwargs}
    with pytest.raises((ValueError, TypeError), match=message):
        forcing_prompts(args.pop("lang"), args.pop("direction"), **args)


def test_forcing_prompts_validate_their_fields():
    with pytest.raises(ValueError, match="aligned one to one"):
        ForcingPrompts("de", "to_english", ("a", "b"), ("x", "y"), ("z",))
    with pytest.raises(ValueError, match="unique"):
        ForcingPrompts("de", "to_english", ("a", "a"), ("x", "y"), ("z", "w"))
    with pytest.raises(ValueError, match=r"prompts\[1\] is empty"):
        ForcingPrompts("de", "to_english", ("a", "b"), ("x", " "), ("z", "w"))
    with pytest.raises(ValueError, match="at least one prompt"):
        ForcingPrompts("de", "to_english", (), (), ())


# ----------------------------------------------------------------- relevance margins


def _logp(model, prompt, continuation):
    """log p(continuation | prompt) through one plain forward pass."""
    ctx = model.to_tokens(prompt)[0].tolist()
    cont = model.tokenizer(continuation, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([ctx + cont])
    with torch.no_grad():
        logprobs = model(ids)[0].float().log_softmax(-1)
    return sum(float(logprobs[len(ctx) - 1 + t, tok]) for t, tok in enumerate(cont))


def test_relevance_margin_is_the_log_probability_difference_of_a_plain_forward(tiny):
    prompts = ["Hallo Welt, wie geht es dir?", "Guten Morgen"]
    conts = [" und noch mehr Text", " zusammen"]
    margins = relevance_margins(tiny, prompts, conts, k=1, progress=False)
    expected = [
        _logp(tiny, prompts[0], conts[0]) - _logp(tiny, prompts[1], conts[0]),
        _logp(tiny, prompts[1], conts[1]) - _logp(tiny, prompts[0], conts[1]),
    ]
    assert margins.dtype == np.float64
    np.testing.assert_allclose(margins, expected, atol=1e-4, rtol=0)


def test_relevance_margin_takes_the_best_distractor(tiny):
    prompts = ["Es regnet", "Die Katze", "Ein Hund", "Der Baum"]
    conts = [" heute", " schläft", " bellt", " wächst"]
    margins = relevance_margins(tiny, prompts, conts, k=3, progress=False)  # every other prompt
    for i in range(4):
        others = [_logp(tiny, prompts[d], conts[i]) for d in range(4) if d != i]
        own = _logp(tiny, prompts[i], conts[i])
        assert margins[i] == pytest.approx(own - max(others), abs=1e-4)


def test_relevance_margins_are_deterministic_batched_or_not_and_empty_is_minus_inf(tiny):
    prompts = ["Es regnet", "Die Katze schläft auf dem Sofa", "Hi", "Ein langer Satz hier", "Ja"]
    conts = [" heute", "", " there", "   ", " bitte sehr"]
    one = relevance_margins(tiny, prompts, conts, k=2, seed=3, batch_size=1, progress=False)
    again = relevance_margins(tiny, prompts, conts, k=2, seed=3, batch_size=1, progress=False)
    eight = relevance_margins(tiny, prompts, conts, k=2, seed=3, batch_size=8, progress=False)
    assert np.array_equal(one, again)
    np.testing.assert_allclose(one, eight, atol=1e-4, rtol=0)
    assert one[1] == -math.inf and one[3] == -math.inf
    assert np.isfinite(one[[0, 2, 4]]).all()


def test_relevance_margins_refuse_bad_input(tiny):
    with pytest.raises(ValueError, match="one continuation per prompt"):
        relevance_margins(tiny, ["a", "b", "c"], ["x"], k=1)
    with pytest.raises(ValueError, match="at least 5 prompts"):
        relevance_margins(tiny, ["a", "b", "c"], ["x", "y", "z"], k=4)
    with pytest.raises(ValueError, match="k must be a positive int"):
        relevance_margins(tiny, ["a", "b"], ["x", "y"], k=0)


# ----------------------------------------------------------------- runs


def test_alpha_zero_is_the_unsteered_run_and_a_strong_vector_is_not(tiny, unit_vector):
    prompts = forcing_prompts("sw", "to_english", n=4, source="tatoeba")
    base = forcing_run(tiny, prompts, k=2, max_new_tokens=6, progress=False)
    zero = forcing_run(tiny, prompts, vector=unit_vector, alpha=0.0, k=2, max_new_tokens=6,
                       progress=False)  # fmt: skip
    strong = forcing_run(tiny, prompts, vector=unit_vector, alpha=50.0, k=2, max_new_tokens=6,
                         progress=False)  # fmt: skip
    assert zero.outputs == base.outputs
    assert np.array_equal(zero.margin, base.margin)
    assert strong.outputs != base.outputs


def test_the_run_uses_the_operator(tiny, unit_vector):
    prompts = forcing_prompts("sw", "to_english", n=3, source="tatoeba")
    outputs = set()
    for options in (
        {"alpha": 50.0},
        {"alpha": 1.0, "operator": "clamp", "value": -30.0},
        {"alpha": 1.0, "operator": "rotate", "angle": 90.0},
    ):
        r = forcing_run(tiny, prompts, vector=unit_vector, k=2, max_new_tokens=6,
                        progress=False, **options)  # fmt: skip
        with steer(tiny, unit_vector, **options):
            direct = generate_texts(tiny, list(prompts.prompts), max_new_tokens=6)
        assert list(r.outputs) == direct
        assert {key: r.settings[key] for key in options} == options
        outputs.add(r.outputs)
    assert len(outputs) == 3  # each operator continues differently


def test_relevance_is_scored_by_the_unsteered_model(tiny, unit_vector):
    prompts = forcing_prompts("sw", "from_english", n=4, source="tatoeba")
    steered = forcing_run(tiny, prompts, vector=unit_vector, alpha=50.0, k=3, seed=5,
                          max_new_tokens=5, progress=False)  # fmt: skip
    unsteered = relevance_margins(tiny, prompts.prompts, steered.outputs, k=3, seed=5,
                                  progress=False)  # fmt: skip
    np.testing.assert_allclose(steered.margin, unsteered, atol=1e-4, rtol=0)
    assert np.array_equal(steered.relevance, steered.margin > 0)
    assert np.array_equal(steered.control, np.array(steered.detected) == "sw")


def test_settings_record_every_option(tiny, unit_vector):
    prompts = forcing_prompts("sw", "from_english", start=5, n=3, source="tatoeba")
    r = forcing_run(tiny, prompts, vector=unit_vector, alpha=2.5, positions="last", k=2,
                    max_new_tokens=3, batch_size=2, seed=7, progress=False)  # fmt: skip
    vector = r.settings.pop("vector")
    assert vector["layer"] == 1 and vector["method"] == "random" and len(vector["sha1"]) == 16
    assert r.settings == {
        "operator": "add",
        "alpha": 2.5,
        "angle": None,
        "value": None,
        "positions": "last",
        "k": 2,
        "seed": 7,
        "max_new_tokens": 3,
        "n": 3,
        "start": 5,
        "source": "tatoeba",
        "fingerprint": prompts.fingerprint,
        "relevance": RELEVANCE_RULE,
    }
    assert (r.model, r.lang, r.direction, r.ids) == ("tiny", "sw", "from_english", prompts.ids)
    assert (
        forcing_run(tiny, prompts, k=2, max_new_tokens=3, progress=False).settings["vector"] is None
    )


def test_forcing_run_refuses_bad_options(tiny, unit_vector):
    prompts = forcing_prompts("sw", "to_english", n=3, source="tatoeba")
    with pytest.raises(ValueError, match="pass vector="):
        forcing_run(tiny, prompts, operator="ablate")
    with pytest.raises(ValueError, match="at least 5 prompts"):
        forcing_run(tiny, prompts, k=4)
    with pytest.raises((ValueError, TypeError), match=r"operator(.|\n)*'scale'"):
        forcing_run(tiny, prompts, vector=unit_vector, operator="scale", k=2)
    with pytest.raises(ValueError, match="alpha must be finite"):
        forcing_run(tiny, prompts, vector=unit_vector, alpha=math.nan, k=2)
    with pytest.raises(ValueError, match="angle"):
        forcing_run(tiny, prompts, vector=unit_vector, operator="rotate", k=2)


# ----------------------------------------------------------------- results and scores


def _planted():
    prompts = ForcingPrompts(
        "de", "from_english", ("a", "b", "c", "d"),
        ("Hello.", "Thanks.", "Good night.", "Yes."), ("Hallo.", "Danke.", "Gute Nacht.", "Ja."),
    )  # fmt: skip
    outputs = (
        "Dies ist ein deutscher Satz über das Wetter.",
        "This is plainly an English sentence.",
        "",
        "Wir haben jetzt vier Monate alte Mäuse im Labor.",
    )
    return ForcingResult.from_outputs("tiny", prompts, outputs, [0.25, 3.0, -math.inf, -0.5],
                                      {"k": 4})  # fmt: skip


def test_control_is_computed_from_the_detected_language():
    r = _planted()
    assert r.detected == ("de", "en", "und", "de") and r.intended == "de"
    assert r.control.tolist() == [True, False, False, True]
    assert r.relevance.tolist() == [True, True, False, False]
    to_english = ForcingResult.from_outputs(
        "tiny", ForcingPrompts("de", "to_english", ("a", "b"), ("Hallo.", "Ja."), ("Hi.", "Yes.")),
        r.outputs[:2], [1.0, 1.0],
    )  # fmt: skip
    assert to_english.control.tolist() == [False, True]
    one = ("m", "de", "from_english", ("a",), ("x",), ("de",))
    yes, no = np.array([True]), np.array([False])
    with pytest.raises(ValueError, match="control must be detected == 'de'"):
        ForcingResult(*one, no, yes, np.array([1.0]))
    with pytest.raises(ValueError, match="relevance must be margin > 0"):
        ForcingResult(*one, yes, yes, np.array([0.0]))
    with pytest.raises(ValueError, match="margin has shape"):
        ForcingResult(*one, yes, yes, np.array([1.0, 2.0]))


def test_shares_have_wilson_intervals_and_the_score_is_their_harmonic_mean():
    r = _planted()
    assert r.control_share() == (0.5, *wilson_interval(2, 4))
    assert r.relevance_share(0.9) == (0.5, *wilson_interval(2, 4, 0.9))
    value, low, high = r.score(n_boot=500, seed=1)
    assert value == harmonic_mean(0.5, 0.5) == 0.5
    assert 0.0 <= low <= value <= high <= 1.0 and low < high
    assert r.score(n_boot=500, seed=1) == (value, low, high)
    assert harmonic_mean(1.0, 0.2) == pytest.approx(1 / 3) and harmonic_mean(0.0, 0.0) == 0.0
    with pytest.raises(ValueError, match="control must be a share"):
        harmonic_mean(1.5, 0.2)


def test_the_bootstrap_resamples_items_jointly():
    # control and relevance never hold together on one item: resampled jointly, each
    # resample's two shares add up to 1, so the score 2c(1 - c) never exceeds 0.5 (shares
    # resampled independently would give an interval of about (0.375, 0.6))
    n = 40
    control = np.arange(n) % 2 == 0
    margin = np.where(control, -1.0, 1.0)
    detected = tuple(str(code) for code in np.where(control, "en", "de"))
    ids = tuple(str(i) for i in range(n))
    r = ForcingResult("m", "de", "to_english", ids, ("",) * n, detected, control, ~control, margin)
    value, low, high = r.score(n_boot=2000, seed=0)
    assert value == 0.5 and 0.4 < low < 0.5 and high == 0.5


@pytest.mark.parametrize("suffix", [".json", ".parquet"])
def test_save_load_is_bit_exact(tmp_path, tiny, suffix):
    prompts = forcing_prompts("sw", "from_english", n=3, source="tatoeba")
    ran = forcing_run(tiny, prompts, k=2, max_new_tokens=4, progress=False)
    for r in (ran, _planted()):  # the planted one holds an empty continuation (-inf)
        back = ForcingResult.load(r.save(tmp_path / f"r{suffix}"))
        for name in ("model", "lang", "direction", "ids", "outputs", "detected", "settings"):
            assert getattr(back, name) == getattr(r, name)
        for name in ("control", "relevance", "margin"):
            assert getattr(back, name).dtype == getattr(r, name).dtype
            assert getattr(back, name).tobytes() == getattr(r, name).tobytes()
    data = json.loads((tmp_path / "r.json").read_text() if suffix == ".json" else "{}")
    assert suffix != ".json" or (data["format"], data["margin"][2]) == (
        "interp_steer.ForcingResult",
        None,
    )
    frame = _planted().to_frame()
    assert list(frame.columns) == ["id", "output", "detected", "control", "relevance", "margin",
                                   "model", "lang", "direction", "intended"]  # fmt: skip
    assert frame["control"].tolist() == [True, False, False, True]
    with pytest.raises(ValueError, match="not a interp_steer.ForcingResult"):
        ForcingResult.from_dict({"format": "something else"})


# ----------------------------------------------------------------- the validation


def test_validate_relevance_on_tiny(tiny):
    prompts = forcing_prompts("sw", "to_english", n=6, source="tatoeba")
    check = validate_relevance(tiny, prompts, k=3, seed=2, progress=False)
    assert isinstance(check, RelevanceCheck)
    assert 0.0 <= check.share <= 1.0 and check.share == np.mean(check.good > check.off)
    assert check.ids == prompts.ids
    assert sorted(check.partners) == list(range(6))  # a permutation ...
    assert all(p != i for i, p in enumerate(check.partners))  # ... without fixed points
    again = validate_relevance(tiny, prompts, k=3, seed=2, batch_size=3, progress=False)
    assert again.partners == check.partners
    np.testing.assert_allclose(again.good, check.good, atol=1e-3, rtol=0)  # long sums, float32
    frame = check.to_frame()
    assert frame["right"].tolist() == (check.good > check.off).tolist()
    assert check.settings["k"] == 3 and check.settings["fingerprint"] == prompts.fingerprint
    with pytest.raises(ValueError, match="at least 6 prompts"):
        validate_relevance(tiny, forcing_prompts("sw", "to_english", n=5, source="tatoeba"), k=4)


@pytest.mark.parametrize("suffix", [".json", ".parquet"])
def test_relevance_check_save_load_is_bit_exact(tmp_path, tiny, suffix):
    prompts = forcing_prompts("sw", "to_english", n=5, source="tatoeba")
    check = validate_relevance(tiny, prompts, k=2, seed=1, progress=False)
    back = RelevanceCheck.load(check.save(tmp_path / f"c{suffix}"))
    for name in ("model", "lang", "direction", "ids", "partners", "settings"):
        assert getattr(back, name) == getattr(check, name)
    for name in ("good", "off", "good_margin", "off_margin"):
        assert getattr(back, name).dtype == np.float64
        assert getattr(back, name).tobytes() == getattr(check, name).tobytes()
    assert (back.share, back.relevant_good, back.relevant_off) == (
        check.share, check.relevant_good, check.relevant_off)  # fmt: skip
    with pytest.raises(ValueError, match="not a interp_steer.RelevanceCheck"):
        RelevanceCheck.from_dict(forcing_run(tiny, prompts, k=1, max_new_tokens=2,
                                             progress=False).to_dict())  # fmt: skip
    damaged = {k: v for k, v in check.to_dict().items() if k != "off"}
    with pytest.raises(ValueError, match="damaged relevance check"):
        RelevanceCheck.from_dict(damaged)


def test_validate_relevance_scores_are_pmi_against_shared_distractors(tiny):
    prompts = forcing_prompts("sw", "from_english", n=4, source="tatoeba")
    # k=2: the distractors are the two items besides i and its partner j
    check = validate_relevance(tiny, prompts, k=2, progress=False)
    for i, j in enumerate(check.partners):
        others = [d for d in range(4) if d not in (i, j)]
        for cand, score, margin in ((i, check.good, check.good_margin),
                                    (j, check.off, check.off_margin)):  # fmt: skip
            ref = " " + prompts.references[cand]
            own = _logp(tiny, prompts.prompts[i], ref)
            rest = [_logp(tiny, prompts.prompts[d], ref) for d in others]
            assert score[i] == pytest.approx(own - np.mean(rest), abs=1e-3)
            assert margin[i] == pytest.approx(own - max(rest), abs=1e-3)


@pytest.mark.real
@pytest.mark.slow
def test_relevance_ranks_the_reference_above_an_off_topic_one_on_gemma(gemma):
    shares = {}
    for lang in ("de", "sw"):
        for direction in DIRECTIONS:
            prompts = forcing_prompts(lang, direction, n=16)  # 4 x 160 rows: ~6.5 min on 2 cores
            shares[lang, direction] = validate_relevance(gemma, prompts, progress=False).share
    assert all(share >= 0.9 for share in shares.values()), shares


def test_a_degenerate_continuation_is_not_relevant(tiny):
    """A repeated fragment of the prompt ("nauli nauli ...") is explained best by its own
    prompt, but it is degenerate: margin -inf, never relevant (found on gemma-3-270m, where
    steered cells repeating a prompt word scored 8 of 10 relevant)."""
    prompts = ["Nauli ya basi ni ghali sana.", "Mvua ilinyesha jana.", "Ninapenda chai."]
    looped = " nauli" * 12
    assert repetition(token_ids(tiny, looped, bos=False)) > MAX_REPETITION
    fluent = " Ni kweli, nauli imepanda mwaka huu."
    assert repetition(token_ids(tiny, fluent, bos=False)) <= MAX_REPETITION
    margins = relevance_margins(tiny, prompts, [looped, fluent, " Ndiyo."], k=2, progress=False)
    assert margins[0] == -math.inf and math.isfinite(margins[1]) and math.isfinite(margins[2])


def test_the_relevance_rule_is_recorded(tiny):
    p = forcing_prompts("de", "to_english", n=3, source="tatoeba")
    run = forcing_run(tiny, p, k=1, max_new_tokens=2, progress=False)
    assert run.settings["relevance"] == RELEVANCE_RULE
