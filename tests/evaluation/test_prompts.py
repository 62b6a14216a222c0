"""Prompt templates and the baseline registry (no model needed)."""

import pytest

from interp_steer.data import TaskItem, load_task
from interp_steer.evaluation.prompts import (
    BASELINES,
    CONNECTIVES,
    COT_TRIGGER,
    Baseline,
    Prompt,
    build_prompt,
    english,
    forcing_prompt,
    get_baseline,
    k_shot,
    xlt,
)
from interp_steer.evaluation.translation import (
    self_translation_prompt,
    translation_texts,
    with_translation,
)


def _xcopa(lang, relation="cause", **kw):
    return TaskItem(
        f"xcopa-{lang}-0",
        "xcopa",
        lang,
        "The man fell.",
        "0",
        ("He slipped.", "He laughed."),
        meta={"relation": relation},
        **kw,
    )


def test_registry():
    assert set(BASELINES) == {
        "basic",
        "translate_test",
        "translator",
        "self_translate",
        "xlt",
        "k_shot",
    }
    assert get_baseline("translator").translate == "callable"
    assert get_baseline("self_translate").translate == "model"
    with pytest.raises(ValueError, match="unknown baseline 'cot'"):
        get_baseline("cot")
    with pytest.raises(ValueError, match="translate"):
        Baseline("x", english, translate="nllb")


def test_math_prompt_has_cot_trigger():
    item = TaskItem("m-0", "msvamp", "fr", "Combien font 2+2 ?", "4", english="what is 2+2 ?")
    p = build_prompt(item)
    assert p.text == f"Question: Combien font 2+2 ?\nAnswer: {COT_TRIGGER}"
    assert "Question:" in p.stop and p.lang == "fr"
    assert english(item).text.startswith("Question: what is 2+2 ?") and english(item).lang == "en"


@pytest.mark.parametrize(
    ("lang", "relation", "connective"),
    [
        ("sw", "cause", "kwa sababu"),
        ("sw", "effect", "kwa hiyo"),
        ("th", "cause", "เพราะ"),
        ("en", "effect", "therefore"),
        ("de", "cause", "denn"),
        ("ta", "effect", "எனவே"),
    ],
)
def test_xcopa_connectives_per_language(lang, relation, connective):
    p = build_prompt(_xcopa(lang, relation))
    assert p.text == f"The man fell {connective}"
    assert p.continuations == (" he slipped.", " he laughed.")


def test_xcopa_unknown_language_falls_back_to_english_and_majority_relation_wins():
    assert "ja" in CONNECTIVES and "fi" not in CONNECTIVES
    p = build_prompt(_xcopa("fi"))
    assert p.text.endswith("because")
    item = TaskItem(
        "x",
        "xcopa",
        "th",
        "ฝนตก",
        "0",
        ("a", "b"),
        meta={"relation": "effect", "relation_majority": "cause"},
    )
    assert build_prompt(item).text == "ฝนตก เพราะ"
    with pytest.raises(ValueError, match="cause/effect"):
        build_prompt(TaskItem("x", "xcopa", "th", "ฝนตก", "0", ("a", "b")))


def test_xnli_and_mmlu_templates():
    nli = TaskItem("n", "xnli", "de", "Er schläft.", "2", meta={"hypothesis": "Er ist wach."})
    p = build_prompt(nli)
    assert p.text == "Er schläft, richtig?"
    assert p.continuations == (" Ja, Er ist wach.", " Auch, Er ist wach.", " Nein, Er ist wach.")
    en = with_translation(nli, ["He sleeps.", "He is awake."])
    assert english(en).continuations[2] == " No, He is awake."
    mc = TaskItem("q", "mmlu", "sw", "2+2?", "1", ("3", "4", "5", "6"))
    p = build_prompt(mc)
    assert p.text == "2+2?\nA. 3\nB. 4\nC. 5\nD. 6\nAnswer:"
    assert p.continuations == (" A", " B", " C", " D")


def test_translate_test_needs_english():
    ts = load_task("xcopa", "sw", n=1)
    item = ts.items[0]
    p = build_prompt(item, "translate_test")
    assert p.text.startswith(item.english.rstrip(".")) and p.lang == "en"
    with pytest.raises(ValueError, match="no English version"):
        english(load_task("xcopa", "qu", n=1).items[0])


def test_k_shot_uses_native_prefixes_and_k_exemplars():
    ts = load_task("mgsm", "de", n=1)
    p = k_shot(ts.items[0], ts.exemplars, k=4)
    assert p.text.count("Frage:") == 5
    assert p.text.endswith(f"{ts.exemplars[0].meta['answer_prefix']}")
    assert all(ex.meta["solution"] in p.text for ex in ts.exemplars[:4])
    with pytest.raises(ValueError, match="needs 9 exemplars"):
        k_shot(ts.items[0], ts.exemplars, k=9)
    with pytest.raises(ValueError, match="at least 1"):
        k_shot(ts.items[0], ts.exemplars, k=0)
    xc = load_task("xcopa", "it", n=1)
    p = k_shot(xc.items[0], xc.exemplars, k=2)
    assert p.continuations == build_prompt(xc.items[0]).continuations
    assert p.text.count("\n\n") == 2


def test_xlt_template():
    item = TaskItem("m", "mgsm", "bn", "২ + ২ কত?", "4")
    text = xlt(item).text
    assert text.startswith("I want you to act as an arithmetic reasoning expert for Bengali.")
    assert "Request: ২ + ২ কত?" in text and "retell the request in English" in text
    choice = xlt(_xcopa("sw"))
    assert "commonsense reasoning expert for Swahili" in choice.text
    assert choice.text.endswith("The man fell kwa sababu")


def test_translation_helpers():
    item = _xcopa("sw")
    assert translation_texts(item) == ["The man fell.", "He slipped.", "He laughed."]
    done = with_translation(item, ["A.", "B.", "C."])
    assert (done.english, done.english_choices) == ("A.", ("B.", "C."))
    with pytest.raises(ValueError, match="expected 3 translations"):
        with_translation(item, ["A."])
    assert self_translation_prompt("Habari.", "sw") == "Swahili: Habari.\nEnglish:"
    assert forcing_prompt("  Habari za asubuhi. ", "sw") == Prompt("Habari za asubuhi.", lang="sw")
    with pytest.raises(ValueError, match="non-empty"):
        Prompt("  ")
