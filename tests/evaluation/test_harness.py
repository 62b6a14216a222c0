"""The evaluation harness on the tiny model (and one real-model run, marked `real`)."""

import json

import pytest
import torch

import interp_steer.evaluation.batches as eval_batches
import interp_steer.evaluation.harness as evaluation
from interp_steer.data import TaskItem, TaskSet, load_task
from interp_steer.evaluation import EvalResult, EvaluationError, compare, english_damage, evaluate
from interp_steer.models import score_continuations
from interp_steer.steering import SteeringVector


@pytest.fixture(scope="module")
def unit_vector():
    gen = torch.Generator().manual_seed(0)
    d = torch.randn(64, generator=gen)
    d = d / d.norm()
    return SteeringVector(d, layer=1, method="random", source_lang="sw", model_name="tiny")


def _fixed_outputs(monkeypatch, outputs):
    """Make generation return fixed strings (one per prompt, cycling)."""

    def fake(model, prompts, *, max_new_tokens, stop=(), progress=None):
        return [outputs[i % len(outputs)] for i in range(len(prompts))]

    monkeypatch.setattr(eval_batches, "generate_texts", fake)


# ----------------------------------------------------------------- steering


def test_steering_changes_choice_scores_and_alpha_zero_does_not(tiny, unit_vector):
    ts = load_task("xcopa", "sw", n=6)
    base = evaluate(tiny, ts, progress=False)
    zero = evaluate(tiny, ts, vector=unit_vector, alpha=0.0, progress=False)
    strong = evaluate(tiny, ts, vector=unit_vector, alpha=50.0, progress=False)
    assert [i.scores for i in zero.items] == [i.scores for i in base.items]
    assert all(a.scores != b.scores for a, b in zip(strong.items, base.items, strict=True))
    assert strong.steered and strong.vector["layer"] == 1 and strong.settings["alpha"] == 50.0
    assert strong.method == "basic+random@L1 a=50"


def test_steering_changes_generation(tiny, unit_vector):
    ts = load_task("mgsm", "de", n=2)
    base = evaluate(tiny, ts, max_new_tokens=6, progress=False)
    zero = evaluate(tiny, ts, max_new_tokens=6, vector=unit_vector, alpha=0.0, progress=False)
    strong = evaluate(tiny, ts, max_new_tokens=6, vector=unit_vector, alpha=50.0, progress=False)
    assert [i.output for i in zero.items] == [i.output for i in base.items]
    assert [i.output for i in strong.items] != [i.output for i in base.items]


# ----------------------------------------------------------------- log-likelihood scoring


def test_batched_scores_equal_unbatched(tiny):
    contexts = ["Es regnet", "Die Katze schläft auf dem Sofa", "Hi"]
    conts = [[" heute", " nie mehr"], [" ruhig.", " nicht"], [" there", " you are"]]
    batched = score_continuations(tiny, contexts, conts)
    for i, (ctx, cs) in enumerate(zip(contexts, conts, strict=True)):
        alone = score_continuations(tiny, [ctx], [cs])[0]
        for (s_b, t_b, _), (s_a, t_a, _) in zip(batched[i], alone, strict=True):
            assert t_b == t_a
            assert s_b == pytest.approx(s_a, abs=1e-4)
    ts = load_task("xcopa", "sw", n=5)
    one = evaluate(tiny, ts, batch_size=1, progress=False)
    five = evaluate(tiny, ts, batch_size=5, progress=False)
    for a, b in zip(one.items, five.items, strict=True):
        assert a.scores == pytest.approx(b.scores, abs=1e-4)


def test_all_choices_of_a_batch_in_one_forward(tiny):
    calls = []
    handle = tiny.original_model.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        evaluate(tiny, load_task("xcopa", "sw", n=4), batch_size=4, progress=False)
        assert len(calls) == 1
        calls.clear()
        evaluate(tiny, load_task("xcopa", "sw", n=4), batch_size=2, progress=False)
        assert len(calls) == 2
    finally:
        handle.remove()


def test_length_norm_options(tiny):
    ts = load_task("xcopa", "sw", n=2)
    tokens = evaluate(tiny, ts, progress=False)
    plain = evaluate(tiny, ts, length_norm="none", progress=False)
    for a, b in zip(tokens.items, plain.items, strict=True):
        assert b.scores == pytest.approx(a.meta["logprob_sums"])
        assert a.scores == pytest.approx(
            [s / n for s, n in zip(b.scores, a.meta["n_tokens"], strict=True)]
        )


# ----------------------------------------------------------------- baselines


def test_translate_test_uses_exactly_the_english_text(tiny):
    ts = load_task("mgsm", "de", n=2)
    r = evaluate(tiny, ts, baseline="translate_test", max_new_tokens=2, progress=False)
    for item, res in zip(ts.items, r.items, strict=True):
        assert res.prompt == f"Question: {item.english}\nAnswer: Let's think step by step."
    xc = load_task("xcopa", "sw", n=3)
    r = evaluate(tiny, xc, baseline="translate_test", progress=False)
    for item, res in zip(xc.items, r.items, strict=True):
        assert res.prompt.startswith(item.english.rstrip("."))
        assert all(
            en[1:] in c
            for en, c in zip(item.english_choices, res.meta["continuations"], strict=True)
        )


def test_math_scoring_reads_the_last_number(tiny, monkeypatch):
    _fixed_outputs(monkeypatch, ["16 - 3 - 4 = 9, 9 * 2 = 18. Die Antwort ist 18.\n\nQuestion: 5"])
    r = evaluate(tiny, load_task("mgsm", "de", n=1), progress=False)
    (item,) = r.items
    assert item.gold == "18" and item.parsed == "18" and item.correct
    assert item.output.endswith("Die Antwort ist 18.\n\n")  # cut at the stop string


def test_k_shot_prompts_hold_k_target_language_exemplars(tiny):
    ts = load_task("mgsm", "sw", n=1)
    r = evaluate(tiny, ts, baseline="k_shot", k=3, max_new_tokens=2, progress=False)
    prompt = r.items[0].prompt
    prefix = ts.exemplars[0].meta["question_prefix"]
    assert prompt.count(prefix) == 4  # 3 exemplars + the item
    for ex in ts.exemplars[:3]:
        assert ex.question in prompt and ex.meta["solution"] in prompt
    assert ts.exemplars[3].question not in prompt
    xc = load_task("xcopa", "sw", n=1)
    r = evaluate(tiny, xc, baseline="k_shot", k=5, progress=False)
    assert r.items[0].prompt.count("\n\n") == 5
    for ex in xc.exemplars[:5]:
        assert ex.question.rstrip(".") in r.items[0].prompt


def test_msvamp_k_shot_borrows_mgsm_exemplars(tiny):
    r = evaluate(
        tiny, "msvamp", "de", n=1, baseline="k_shot", k=2, max_new_tokens=2, progress=False
    )
    assert r.items[0].prompt.count("Frage:") == 3


def test_translator_callable_and_xlt(tiny):
    seen = []

    def fake(text):
        seen.append(text)
        return f"EN {len(seen)}."

    xc = load_task("xcopa", "sw", n=2)
    r = evaluate(tiny, xc, baseline="translator", translator=fake, progress=False)
    assert seen == [t for item in xc.items for t in (item.question, *item.choices)]
    assert r.items[0].prompt == "EN 1 because" or r.items[0].prompt == "EN 1 therefore"
    assert r.settings["translator"] == "fake"
    x = evaluate(tiny, "mgsm", "sw", n=1, baseline="xlt", max_new_tokens=2, progress=False)
    assert x.items[0].prompt.startswith("I want you to act as an arithmetic reasoning expert")


def test_self_translate_runs(tiny):
    r = evaluate(
        tiny, "xcopa", "sw", n=1, baseline="self_translate", max_new_tokens=4, progress=False
    )
    assert r.n == 1 and isinstance(r.items[0].meta["english"], str)
    assert r.timings["translate_s"] > 0


# ----------------------------------------------------------------- language forcing


def test_forcing_on_fixed_strings(tiny, monkeypatch):
    _fixed_outputs(
        monkeypatch,
        [
            "and then the committee decided to meet again next week.",
            "na kamati iliamua kukutana tena wiki ijayo.",
            "and then they all went home together after the meeting.",
            "1234",
        ],
    )
    r = evaluate(tiny, "forcing", "sw", source=["Kamati itakutana tena."] * 4, progress=False)
    assert [i.parsed for i in r.items] == ["en", "sw", "en", "und"]
    assert r.metrics["share_en"] == 0.5 and r.metrics["share_lang"] == 0.25
    assert r.metrics["share_und"] == 0.25 and r.accuracy == 0.5


def test_forcing_reads_flores(tiny):
    r = evaluate(tiny, "forcing", "sw", n=2, max_new_tokens=3, progress=False)
    assert r.n == 2 and r.settings["source"] == "flores"


# ----------------------------------------------------------------- results, errors, resume


def test_result_roundtrip_and_table(tiny, tmp_path):
    r = evaluate(tiny, "xcopa", "sw", n=3, progress=False, output=tmp_path / "r.json")
    back = EvalResult.load(tmp_path / "r.json")
    assert back == r and back.complete
    assert json.loads(r.to_json())["format"] == "interp_steer.EvalResult"
    frame = r.to_pandas()
    assert list(frame["id"]) == [i.id for i in r.items] and set(frame["method"]) == {"basic"}
    low, high = r.ci
    assert low <= r.accuracy <= high
    assert {"total_s", "model_s"} <= set(r.timings)


def test_a_done_output_is_returned_as_saved_and_other_settings_are_named(
    tiny, tmp_path, monkeypatch
):
    out = tmp_path / "r.json"
    first = evaluate(tiny, "xcopa", "sw", n=3, progress=False, output=out)
    stamp = out.stat().st_mtime_ns

    def no_forward(*args, **kwargs):
        raise AssertionError("a done result ran the model")

    with monkeypatch.context() as patch:
        patch.setattr(tiny, "forward", no_forward)
        again = evaluate(tiny, "xcopa", "sw", n=3, progress=False, output=out)
    assert again == first and out.stat().st_mtime_ns == stamp  # timings kept, file untouched
    with pytest.raises(ValueError, match="other settings \\(k 5 → 2\\); .* delete the file"):
        evaluate(tiny, "xcopa", "sw", n=3, k=2, progress=False, output=out)
    with pytest.raises(ValueError, match=r"holds 3 items \(complete, n=3\) and n=2 would drop"):
        evaluate(tiny, "xcopa", "sw", n=2, progress=False, output=out)
    scored = []

    def counting(run, batch, timings):
        scored.extend(u.id for u in batch)
        return eval_batches.run_batch(run, batch, timings)

    monkeypatch.setattr(evaluation, "run_batch", counting)
    more = evaluate(tiny, "xcopa", "sw", n=4, progress=False, output=out)  # extends the file
    assert more.complete and more.settings["n"] == 4 and more.items[:3] == first.items
    assert scored == [more.items[3].id] and EvalResult.load(out) == more


def test_translator_failure_names_item_and_keeps_partial(tiny, tmp_path):
    xc = load_task("xcopa", "sw", n=4)
    bad_id = xc.items[2].id

    def flaky(text):
        if text == xc.items[2].question:
            raise RuntimeError("translation service down")
        return "Something happened."

    out = tmp_path / "partial.json"
    with pytest.raises(EvaluationError, match=bad_id) as info:
        evaluate(
            tiny,
            xc,
            baseline="translator",
            translator=flaky,
            batch_size=1,
            output=out,
            progress=False,
        )
    partial = info.value.partial
    assert info.value.item_id == bad_id and not partial.complete
    assert [i.id for i in partial.items] == [i.id for i in xc.items[:2]]
    assert EvalResult.load(out) == partial
    calls = []

    def fixed(text):
        calls.append(text)
        return "Something happened."

    fixed.__name__ = "flaky"  # same settings: resume from the partial file
    done = evaluate(
        tiny, xc, baseline="translator", translator=fixed, batch_size=1, output=out, progress=False
    )
    assert done.complete and done.n == 4
    assert len(calls) == 2 * 3  # only items 2 and 3 were translated
    with pytest.raises(ValueError, match="other settings"):
        evaluate(tiny, xc, output=out, progress=False)


def test_bad_input(tiny):
    with pytest.raises(ValueError, match="unknown task"):
        evaluate(tiny, "gsm8k", "de", progress=False)
    with pytest.raises(ValueError, match="unknown baseline"):
        evaluate(tiny, "mgsm", "de", baseline="cot", progress=False)
    with pytest.raises(ValueError, match="unknown language"):
        evaluate(tiny, "mgsm", "klingon", progress=False)
    with pytest.raises(ValueError, match="no"):
        evaluate(tiny, "mgsm", "et", progress=False)  # a known language MGSM lacks
    for bad in (0, -3):
        with pytest.raises(ValueError, match="n must be"):
            evaluate(tiny, "mgsm", "de", n=bad, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        evaluate(tiny, "mgsm", "de", batch_size=0, progress=False)
    with pytest.raises(ValueError, match="d_model"):
        evaluate(tiny, "xcopa", "sw", vector=SteeringVector(torch.ones(640), layer=1))
    with pytest.raises(ValueError, match="translator"):
        evaluate(tiny, "xcopa", "sw", baseline="translator", progress=False)
    with pytest.raises(ValueError, match="k_shot needs 9"):
        evaluate(tiny, "mgsm", "de", baseline="k_shot", k=9, progress=False)
    with pytest.raises(ValueError, match="forcing"):
        evaluate(tiny, "forcing", "sw", baseline="xlt", progress=False)
    with pytest.raises(ValueError, match="no English version"):
        evaluate(tiny, "xcopa", "qu", n=1, baseline="translate_test", progress=False)


def test_vector_from_another_model_name_warns(tiny):
    v = SteeringVector(torch.zeros(64), layer=1, model_name="gemma-3-270m")
    with pytest.warns(UserWarning, match="gemma-3-270m"):
        r = evaluate(tiny, "xcopa", "sw", n=1, vector=v, progress=False)
    assert r.vector["model_name"] == "gemma-3-270m"


def test_taskset_input_and_english_damage(tiny, unit_vector):
    item = TaskItem("t-0", "mgsm", "en", "What is 2 + 2?", "4", english="What is 2 + 2?")
    ts = TaskSet("mgsm", "en", "test", (item,))
    damage = english_damage(tiny, ts, unit_vector, alpha=50.0, max_new_tokens=3, progress=False)
    assert damage.unsteered.baseline == damage.steered.baseline == "basic"
    assert damage.steered.steered and not damage.unsteered.steered
    assert len(damage.table()) == 2
    assert damage.delta == damage.steered.accuracy - damage.unsteered.accuracy


def test_english_damage_table_pairs_translate_test_runs(tiny, unit_vector):
    damage = english_damage(
        tiny, "xcopa", unit_vector, alpha=50.0, n=3, source_lang="sw", progress=False
    )
    assert damage.unsteered.baseline == "translate_test"
    table = damage.table()
    assert table["reference"].tolist() == ["translate_test", "translate_test"]
    assert table["gain"].iloc[1] == damage.delta


# ----------------------------------------------------------------- the real model


@pytest.mark.real
def test_xcopa_swahili_basic_vs_steered_on_gemma(gemma):
    from interp_steer.data import load_parallel

    pairs = load_parallel("msvamp", "sw", n=32)
    try:
        from interp_steer.fitting import fit_vector

        vector = fit_vector(gemma, pairs, layer=6, method="mean_diff", pooling="last")
    except ImportError:  # fitting not there: the mean difference of last-token activations
        hook = "blocks.6.hook_resid_post"

        def last_tokens(texts):
            acts = []
            for text in texts:
                _, cache = gemma.run_with_cache(text, names_filter=hook)
                acts.append(cache[hook][0, -1])
            return torch.stack(acts)

        direction = (last_tokens(pairs.english) - last_tokens(pairs.target)).mean(0)
        vector = SteeringVector(direction, layer=6, method="mean_diff", source_lang="sw")
    ts = load_task("xcopa", "sw", n=40)
    basic = evaluate(gemma, ts, batch_size=8, progress=False)
    steered = evaluate(gemma, ts, vector=vector, batch_size=8, progress=False)
    table = compare(basic, steered)
    assert basic.n == steered.n == 40
    assert list(table["method"]) == [basic.method, steered.method]
    assert table["steered"].tolist() == [False, True]


def test_hub_only_tasks_from_fixtures(tiny):
    nli = [
        TaskItem(
            f"xnli-de-{i}",
            "xnli",
            "de",
            "Der Hund schläft.",
            str(i % 3),
            meta={"hypothesis": "Ein Tier ruht."},
        )
        for i in range(3)
    ]
    r = evaluate(tiny, TaskSet("xnli", "de", "test", tuple(nli)), progress=False)
    assert r.n == 3 and all(len(i.scores) == 3 for i in r.items)
    assert r.items[0].prompt == "Der Hund schläft, richtig?"
    mc = TaskItem("mmlu-sw-0", "mmlu", "sw", "2+2 ni ngapi?", "1", ("3", "4", "5", "6"))
    r = evaluate(tiny, TaskSet("mmlu", "sw", "test", (mc,)), lang="Swahili", progress=False)
    assert r.items[0].meta["continuations"] == [" A", " B", " C", " D"]
    assert r.items[0].parsed in {"0", "1", "2", "3"}


def test_interrupt_keeps_what_was_done(tiny, tmp_path):
    class Stop(BaseException):
        pass

    xc = load_task("xcopa", "sw", n=3)

    def stopping(text):
        if text == xc.items[1].question:
            raise Stop
        return "Fine."

    out = tmp_path / "interrupted.json"
    with pytest.raises(Stop):
        evaluate(
            tiny,
            xc,
            baseline="translator",
            translator=stopping,
            batch_size=1,
            output=out,
            progress=False,
        )
    saved = EvalResult.load(out)
    assert not saved.complete and saved.error == "interrupted" and saved.n == 1
