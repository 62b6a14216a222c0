"""The concept set, its translation and cloze prompts: file invariants, format, answer sets."""

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from interp_steer.data import (
    ConceptPrompts,
    ConceptSet,
    answer_token_ids,
    cloze_definitions,
    concept_cloze_prompts,
    load_concepts,
    translation_prompts,
)
from interp_steer.data.concepts import ANSWER_WORDS, BLANK, ENDONYMS

LANGS = ("en", "de", "fr", "es", "ru", "zh", "ja", "sw")


def test_the_shipped_concept_set_holds_100_single_words_in_eight_languages():
    concepts = load_concepts()
    assert concepts.langs == LANGS
    assert len(concepts) >= 100
    assert len(set(concepts.keys)) == len(concepts)
    assert concepts.column("en") == concepts.keys
    for lang in LANGS:
        column = concepts.column(lang)
        assert all(w and w == "".join(w.split()) for w in column), lang
        assert len(set(column)) == len(column), f"{lang}: two concepts share a word"
    assert set(concepts.categories) >= {"animal", "food", "body", "object", "nature"}
    assert set(ENDONYMS) == set(LANGS)


def test_load_concepts_keeps_english_first_and_the_languages_asked_for():
    concepts = load_concepts(["German", "zho_Hans", "en"])
    assert concepts.langs == ("en", "de", "zh")
    assert concepts.word("flower", "de") == "Blume"
    assert concepts.word("dog", "Chinese") == "狗"
    assert load_concepts(["ja"]).word("dog", "ja") == "犬"
    with pytest.raises(ValueError, match="has no 'ja'"):
        concepts.word("dog", "ja")
    assert concepts.to_frame().columns.tolist() == ["category", "en", "de", "zh"]
    with pytest.raises(ValueError, match=r"no \['it'\]"):
        load_concepts(["it"])


def test_concept_set_validation():
    ok = {"langs": ("en", "de"), "categories": ("animal",)}
    with pytest.raises(ValueError, match="unique"):
        ConceptSet(keys=("dog", "dog"), words=(("dog", "Hund"),) * 2,
                   langs=("en", "de"), categories=("animal", "animal"))  # fmt: skip
    with pytest.raises(ValueError, match="one non-empty word"):
        ConceptSet(keys=("dog",), words=(("dog", ""),), **ok)
    with pytest.raises(ValueError, match="one non-empty word"):
        ConceptSet(keys=("dog",), words=(("dog", "der Hund"),), **ok)
    with pytest.raises(ValueError, match="start with English"):
        ConceptSet(keys=("dog",), words=(("Hund", "dog"),), langs=("de", "en"),
                   categories=("animal",))  # fmt: skip
    with pytest.raises(ValueError, match="no concepts"):
        load_concepts(["de"]).subset(["unicorn"])


def test_prompt_format_exact(tiny):
    two = load_concepts(["fr", "de"]).subset(["cat", "dog"])
    prompts = translation_prompts(tiny.tokenizer, two, "fr", "de", shots=1)
    assert prompts.texts == (
        'Français: "chien" - Deutsch: "Hund"\nFrançais: "chat" - Deutsch: "',
        'Français: "chat" - Deutsch: "Katze"\nFrançais: "chien" - Deutsch: "',
    )
    assert prompts.concepts == ("cat", "dog")
    assert (prompts.source, prompts.target, prompts.shots, prompts.n_excluded) == ("fr", "de", 1, 0)
    zh = translation_prompts(tiny.tokenizer, load_concepts(["zh", "ru"]), "ru", "zh", shots=0)
    assert zh.texts[zh.concepts.index("flower")] == 'Русский: "цветок" - 中文: "'


def test_few_shot_examples_are_other_concepts_and_seeded(tiny):
    concepts = load_concepts(["de", "ja"])
    prompts = translation_prompts(tiny.tokenizer, concepts, "de", "ja", shots=4, seed=3)
    for key, text in zip(prompts.concepts, prompts.texts, strict=True):
        lines = text.split("\n")
        assert len(lines) == 5
        assert lines[-1] == f'Deutsch: "{concepts.word(key, "de")}" - 日本語: "'
        shown = [line.split('"')[1] for line in lines[:-1]]
        assert concepts.word(key, "de") not in shown and len(set(shown)) == 4
        for line in lines[:-1]:
            de = line.split('"')[1]
            k = concepts.keys[concepts.column("de").index(de)]
            assert line == f'Deutsch: "{de}" - 日本語: "{concepts.word(k, "ja")}"'
    again = translation_prompts(tiny.tokenizer, concepts, "de", "ja", shots=4, seed=3)
    other = translation_prompts(tiny.tokenizer, concepts, "de", "ja", shots=4, seed=4)
    assert again.texts == prompts.texts and other.texts != prompts.texts


def test_answer_sets_are_first_tokens_of_each_form(tiny):
    tok = tiny.tokenizer  # byte level: a leading space is its own token, and is left out
    decode = [tok.decode([i]) for i in answer_token_ids(tok, "Blume")]
    assert decode == ["B", "b"]
    assert [tok.decode([i]) for i in answer_token_ids(tok, "dog")] == ["D", "d"]
    cyrillic = answer_token_ids(tok, "цветок")  # first byte of "ц" and of "Ц"
    assert cyrillic == tuple(sorted({tok("ц")["input_ids"][1], tok("Ц")["input_ids"][1]}))


class _WordTokenizer:
    """One token per whitespace-separated word, with the leading space kept (like Gemma's)."""

    def __init__(self):
        self.vocab = {}

    def __call__(self, text, add_special_tokens=False):
        words = text.replace(" ", "\0 ").split("\0")
        ids = [self.vocab.setdefault(w, len(self.vocab)) for w in words if w]
        return {"input_ids": ids}

    def decode(self, ids):
        inverse = {i: w for w, i in self.vocab.items()}
        return "".join(inverse[i] for i in ids)

    def __len__(self):
        return 1000


def test_answer_sets_cover_case_and_leading_space():
    tok = _WordTokenizer()
    ids = answer_token_ids(tok, "Blume")
    assert sorted(tok.decode([i]) for i in ids) == [" Blume", " blume", "Blume", "blume"]


def test_prompts_whose_answer_sets_overlap_are_excluded(tiny):
    # byte level: German "Hand" and English "hand" start with the same bytes (H, h);
    # "Fisch"/"fish" too; "Hund"/"dog" and "Katze"/"cat" do not
    four = load_concepts(["de"]).subset(["hand", "dog", "fish", "cat"])
    prompts = translation_prompts(tiny.tokenizer, four, "en", "de", shots=2)
    assert prompts.excluded == ("hand", "fish") and prompts.n_excluded == 2
    assert prompts.concepts == ("dog", "cat") and len(prompts) == 2
    for tgt, eng in zip(prompts.target_ids, prompts.english_ids, strict=True):
        assert not set(tgt) & set(eng)
    with pytest.raises(ValueError, match="every en→de prompt was excluded"):
        translation_prompts(tiny.tokenizer, four.subset(["hand", "fish"]), "en", "de", shots=1)


def test_prompt_checks(tiny):
    concepts = load_concepts(["de"])
    with pytest.raises(ValueError, match="target must not be English"):
        translation_prompts(tiny.tokenizer, concepts, "de", "en")
    with pytest.raises(ValueError, match="shots must be in"):
        translation_prompts(tiny.tokenizer, concepts.subset(["dog", "cat"]), "en", "de", shots=2)
    with pytest.raises(ValueError, match="has no 'fr'"):
        translation_prompts(tiny.tokenizer, concepts, "fr", "de")
    base = {"texts": ("x",), "concepts": ("dog",), "source": "de", "target": "zh",
            "excluded": (), "vocab_size": 260}  # fmt: skip
    with pytest.raises(ValueError, match="overlap"):
        ConceptPrompts(target_ids=((5, 6),), english_ids=((6,),), **base)
    with pytest.raises(ValueError, match="outside"):
        ConceptPrompts(target_ids=((5,),), english_ids=((260,),), **base)
    with pytest.raises(ValueError, match="empty answer"):
        ConceptPrompts(target_ids=((),), english_ids=((6,),), **base)


def test_every_cloze_concept_has_one_blank_and_no_answer_in_every_language():
    concepts = load_concepts()
    keys = tuple(cloze_definitions("en"))
    assert len(keys) >= 100 and len(set(keys)) == len(keys)
    assert keys == tuple(k for k in concepts.keys if k in keys)  # the concept set's order
    assert set(ANSWER_WORDS) == set(LANGS)
    for lang in LANGS:
        definitions = cloze_definitions(lang)
        assert tuple(definitions) == keys, lang
        for key, text in definitions.items():
            assert text.count(BLANK) == 1 and "___" not in text.replace(BLANK, ""), (lang, key)
            assert "\t" not in text and "\n" not in text and text == text.strip()
            # the blank's answer is not given away: the word itself is nowhere else in it
            word, rest = concepts.word(key, lang).lower(), text.replace(BLANK, " ").lower()
            if lang in ("zh", "ja"):
                assert word not in rest, (lang, key, text)
            else:
                assert not re.search(rf"(?<!\w){re.escape(word)}(?!\w)", rest), (lang, key, text)
    assert cloze_definitions("German")["dog"].startswith('Ein "___" ist ein Haustier')
    with pytest.raises(ValueError, match="has no 'it'"):
        cloze_definitions("it")


def test_cloze_prompt_format_exact(tiny):
    two = load_concepts(["zh"]).subset(["cat", "dog"])
    prompts = concept_cloze_prompts(tiny.tokenizer, two, "zh", shots=1)
    cat, dog = cloze_definitions("zh")["cat"], cloze_definitions("zh")["dog"]
    assert prompts.texts == (
        f'{dog} 答案: "狗"\n{cat} 答案: "',
        f'{cat} 答案: "猫"\n{dog} 答案: "',
    )
    assert (prompts.task, prompts.source, prompts.target, prompts.shots) == ("cloze", "zh", "zh", 1)
    assert prompts.concepts == ("cat", "dog") and prompts.n_excluded == 0
    assert prompts.target_ids[1] == answer_token_ids(tiny.tokenizer, "狗")
    assert prompts.english_ids[1] == answer_token_ids(tiny.tokenizer, "dog")


def test_cloze_prompts_are_seeded_few_shot_over_defined_concepts(tiny):
    concepts = load_concepts(["ru"])
    defined = cloze_definitions("ru")
    prompts = concept_cloze_prompts(tiny.tokenizer, concepts, "ru", shots=3, seed=5)
    # concepts without a definition are not used; the others are prompts or excluded
    assert set(prompts.concepts) | set(prompts.excluded) == set(defined)
    assert len(prompts) + prompts.n_excluded == len(defined) < len(concepts)
    solved = {
        f'{text} {ANSWER_WORDS["ru"]}: "{concepts.word(k, "ru")}"' for k, text in defined.items()
    }
    for key, text in zip(prompts.concepts, prompts.texts, strict=True):
        *shots, query = text.split("\n")
        assert query == f'{defined[key]} Ответ: "'
        assert len(shots) == 3 and len(set(shots)) == 3 and set(shots) <= solved
        assert not any(line.startswith(defined[key]) for line in shots)  # other concepts
    again = concept_cloze_prompts(tiny.tokenizer, concepts, "ru", shots=3, seed=5)
    other = concept_cloze_prompts(tiny.tokenizer, concepts, "ru", shots=3, seed=6)
    assert again == prompts and other.texts != prompts.texts


def test_cloze_prompts_exclude_overlapping_answers_and_check_their_input(tiny):
    # byte level: German "Hand" and English "hand" share their first bytes; "Hund"/"dog" not
    three = load_concepts(["de"]).subset(["hand", "dog", "cat"])
    prompts = concept_cloze_prompts(tiny.tokenizer, three, "de", shots=1)
    assert prompts.excluded == ("hand",) and prompts.concepts == ("dog", "cat")
    with pytest.raises(ValueError, match="every de cloze prompt was excluded"):
        concept_cloze_prompts(tiny.tokenizer, three.subset(["hand"]), "de", shots=0)
    with pytest.raises(ValueError, match="must not be English"):
        concept_cloze_prompts(tiny.tokenizer, three, "en")
    with pytest.raises(ValueError, match="has no 'fr'"):
        concept_cloze_prompts(tiny.tokenizer, three, "fr")
    with pytest.raises(ValueError, match="shots must be in 0..2"):
        concept_cloze_prompts(tiny.tokenizer, three, "de", shots=3)
    undefined = [k for k in load_concepts().keys if k not in cloze_definitions("de")]
    with pytest.raises(ValueError, match="none of these concepts has a cloze definition"):
        concept_cloze_prompts(tiny.tokenizer, load_concepts(["de"]).subset(undefined[:2]), "de")


@pytest.mark.slow
def test_the_wheel_ships_the_concept_file(tmp_path):
    root = Path(__file__).resolve().parents[2]
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(root), "--no-deps", "--no-build-isolation",
         "-q", "-w", str(tmp_path)],
        check=True, cwd=tmp_path,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("interp_steer-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {"interp_steer/data/concepts.tsv", "interp_steer/data/cloze.tsv"} <= set(names)
