"""A multilingual concept set and the word-translation prompts of latent-language figures.

The concept set (``concepts.tsv``, shipped with the package) holds 157 common concrete
nouns (animals, food, body parts, household objects, places, nature, people, vehicles),
each with one common single-word surface form in English, German, French, Spanish,
Russian, Chinese, Japanese and Swahili. It was written for this project by its authors,
not copied from a dataset, and is under the project's own licence (Apache-2.0).

:func:`translation_prompts` turns it into the few-shot word-translation prompts of
Wendler et al. (2024), "Do Llamas Work in English?", with language names written in their
own language::

    Français: "fleur" - Deutsch: "Blume"
    ...
    Français: "chien" - Deutsch: "

Each prompt ends right after the target word's opening quote and carries two answer
token sets (:func:`answer_token_ids`): the first token of the target word's surface forms,
and the same for the English word. Prompts whose two sets share a token (German "Hand",
English "hand") say nothing about which language a layer leans to, and are excluded.

:func:`concept_cloze_prompts` builds Wendler's second task, the cloze, in one language:
a one-sentence definition per concept (``cloze.tsv``, shipped with the package: 136 of
the concepts, one definition in each of the eight languages, the word replaced by a
blank; written for this project, Apache-2.0 like the concept set) with its answer::

    A "___" is a small pet that purrs and hunts mice. Answer: "cat"
    ...
    A "___" is a pet that barks and guards the house. Answer: "

in the definitions' language (``Antwort``, ``答案``, ...), with the same answer sets and
exclusions as the translation prompts.

Example:
    >>> concepts = load_concepts(["de", "zh"])
    >>> len(concepts) >= 100, concepts.langs
    (True, ('en', 'de', 'zh'))
    >>> concepts.word("flower", "de"), concepts.word("flower", "zh")
    ('Blume', '花')
"""

import csv
import importlib.resources
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal, get_args

import pandas as pd

from interp_steer.data.languages import ENGLISH, canonical

CONCEPTS_FILE = "concepts.tsv"
"""The concept set's file inside ``interp_steer.data`` (package data)."""

CLOZE_FILE = "cloze.tsv"
"""The cloze definitions' file inside ``interp_steer.data`` (package data)."""

BLANK = '"___"'
"""The blank in a cloze definition, quotes included: where the concept's word goes."""

ENDONYMS: Mapping[str, str] = MappingProxyType(
    {
        "en": "English",
        "de": "Deutsch",
        "fr": "Français",
        "es": "Español",
        "ru": "Русский",
        "zh": "中文",
        "ja": "日本語",
        "sw": "Kiswahili",
    }
)
"""Each concept-set language's name in that language, as the prompts write it."""

ANSWER_WORDS: Mapping[str, str] = MappingProxyType(
    {
        "en": "Answer",
        "de": "Antwort",
        "fr": "Réponse",
        "es": "Respuesta",
        "ru": "Ответ",
        "zh": "答案",
        "ja": "答え",
        "sw": "Jibu",
    }
)
"""The word "Answer" in each concept-set language, as the cloze prompts write it."""

Task = Literal["translation", "cloze"]
"""The kind of prompt: few-shot word translation, or a few-shot cloze (a definition)."""


@dataclass(frozen=True)
class ConceptSet:
    """Concepts with one single-word surface form per language, keyed by the English word.

    Attributes:
        langs: Canonical language codes, English first.
        keys: The English word of each concept (unique).
        categories: Each concept's category (``"animal"``, ``"food"``, ...).
        words: ``[n_concepts][n_langs]`` the surface forms, in ``langs`` order.

    Raises:
        ValueError: English missing or not first, duplicate keys or languages, an empty
            cell, a cell with whitespace in it, or rows of the wrong length.

    >>> ConceptSet(("en", "de"), ("dog",), ("animal",), (("dog", "Hund"),)).word("dog", "de")
    'Hund'
    """

    langs: tuple[str, ...]
    keys: tuple[str, ...]
    categories: tuple[str, ...]
    words: tuple[tuple[str, ...], ...]

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "langs", tuple(self.langs))
        set_(self, "keys", tuple(self.keys))
        set_(self, "categories", tuple(self.categories))
        set_(self, "words", tuple(tuple(row) for row in self.words))
        if not self.langs or self.langs[0] != ENGLISH:
            raise ValueError(f"langs must start with English ('en'), got {self.langs}")
        if len(set(self.langs)) != len(self.langs):
            raise ValueError(f"langs must be unique, got {self.langs}")
        if not self.keys:
            raise ValueError("a concept set needs at least one concept")
        if len(set(self.keys)) != len(self.keys):
            dup = sorted({k for k in self.keys if self.keys.count(k) > 1})
            raise ValueError(f"English keys must be unique; repeated: {dup}")
        if len(self.categories) != len(self.keys) or len(self.words) != len(self.keys):
            raise ValueError(
                f"{len(self.keys)} keys need as many categories and word rows, got "
                f"{len(self.categories)} and {len(self.words)}"
            )
        for key, row in zip(self.keys, self.words, strict=True):
            if len(row) != len(self.langs):
                raise ValueError(f"{key!r} has {len(row)} words for {len(self.langs)} languages")
            for lang, word in zip(self.langs, row, strict=True):
                if not word or word != "".join(word.split()):
                    raise ValueError(
                        f"{key!r} in {lang!r} must be one non-empty word, got {word!r}"
                    )
            if row[0] != key:
                raise ValueError(f"the English word of {key!r} must be its key, got {row[0]!r}")

    def __len__(self) -> int:
        return len(self.keys)

    def word(self, key: str, lang: str) -> str:
        """The surface form of concept ``key`` in language ``lang`` (any spelling)."""
        if key not in self.keys:
            raise ValueError(f"no concept {key!r} in this set")
        return self.words[self.keys.index(key)][self._lang(lang)]

    def column(self, lang: str) -> tuple[str, ...]:
        """Every concept's surface form in ``lang``, in key order."""
        j = self._lang(lang)
        return tuple(row[j] for row in self.words)

    def subset(self, keys: Sequence[str]) -> "ConceptSet":
        """The concepts named by ``keys`` (English words), in that order.

        >>> load_concepts(["de"]).subset(["cat", "dog"]).column("de")
        ('Katze', 'Hund')
        """
        missing = [k for k in keys if k not in self.keys]
        if missing:
            raise ValueError(f"no concepts {missing} in this set")
        rows = [self.keys.index(k) for k in keys]
        return ConceptSet(
            langs=self.langs,
            keys=tuple(self.keys[i] for i in rows),
            categories=tuple(self.categories[i] for i in rows),
            words=tuple(self.words[i] for i in rows),
        )

    def to_frame(self) -> pd.DataFrame:
        """One row per concept: ``category`` and one column per language."""
        frame = pd.DataFrame(list(self.words), columns=list(self.langs))
        frame.insert(0, "category", list(self.categories))
        return frame

    def _lang(self, lang: str) -> int:
        code = canonical(lang)
        if code not in self.langs:
            raise ValueError(f"this concept set has no {code!r}; it has {self.langs}")
        return self.langs.index(code)


def load_concepts(langs: Sequence[str] | None = None) -> ConceptSet:
    """Load the package's concept set, optionally keeping only some languages.

    Args:
        langs: Languages to keep (any spelling: ``"de"``, ``"German"``, ``"deu"``);
            English is always kept, first. ``None`` keeps all eight.

    Returns:
        The :class:`ConceptSet`.

    Raises:
        ValueError: A language the set does not have (the message lists those it has).

    >>> load_concepts(["fr"]).word("dog", "French")
    'chien'
    """
    header, body = _read_tsv(CONCEPTS_FILE)
    if header[0] != "category" or header[1] != ENGLISH:
        raise ValueError(f"{CONCEPTS_FILE} must start with 'category', 'en'; got {header[:2]}")
    have = tuple(header[1:])
    if langs is None:
        keep = list(have)
    else:
        wanted = [canonical(lang) for lang in langs]
        missing = [code for code in wanted if code not in have]
        if missing:
            raise ValueError(f"the concept set has no {missing}; it has {have}")
        keep = [ENGLISH, *dict.fromkeys(c for c in wanted if c != ENGLISH)]
    cols = [have.index(code) + 1 for code in keep]
    return ConceptSet(
        langs=tuple(keep),
        keys=tuple(row[1] for row in body),
        categories=tuple(row[0] for row in body),
        words=tuple(tuple(row[c] for c in cols) for row in body),
    )


def _read_tsv(name: str) -> tuple[list[str], list[list[str]]]:
    """A package TSV's header and rows (``#`` lines are comments); rows of the wrong width fail."""
    text = importlib.resources.files("interp_steer.data").joinpath(name)
    with text.open(encoding="utf-8") as handle:
        lines = [line for line in handle if line.strip() and not line.startswith("#")]
    rows = list(csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE))
    header, body = rows[0], rows[1:]
    bad = [row[0] for row in body if len(row) != len(header)]
    if bad:
        raise ValueError(f"{name}: rows {bad} do not have {len(header)} columns")
    return header, body


# ----------------------------------------------------------------- prompts


def answer_token_ids(tokenizer: Any, word: str) -> tuple[int, ...]:
    """The first token of each surface form of ``word``: the answer set a lens sums over.

    The forms are the word as written, lower-cased and capitalised, each with and
    without a leading space. A first token that is only whitespace (a tokenizer that
    splits the space off, like a byte-level one) names no word and is left out.

    Args:
        tokenizer: A Hugging Face tokenizer (``model.tokenizer``).
        word: The word.

    Returns:
        The token ids, sorted, without repeats.

    Raises:
        ValueError: No form of ``word`` has a first token that is not whitespace.

    >>> from interp_steer import load_model
    >>> tok = load_model("tiny").tokenizer  # one token per byte
    >>> [tok.decode([i]) for i in answer_token_ids(tok, "Blume")]
    ['B', 'b']
    """
    forms = dict.fromkeys([word, word.lower(), word[:1].upper() + word[1:]])
    ids: set[int] = set()
    for form in forms:
        for text in (form, " " + form):
            tokens = list(tokenizer(text, add_special_tokens=False)["input_ids"])
            if tokens and str(tokenizer.decode([tokens[0]])).strip():
                ids.add(int(tokens[0]))
    if not ids:
        raise ValueError(f"no form of {word!r} starts with a token that is not whitespace")
    return tuple(sorted(ids))


@dataclass(frozen=True)
class ConceptPrompts:
    """Prompts for a latent-language trajectory, each with its two answer token sets.

    Built for one tokenizer (the token ids are that tokenizer's); the prompts whose
    target and English sets overlap are already dropped (``excluded`` names them).

    Attributes:
        texts: The prompts, each ending where the target-language answer begins.
        concepts: The English key of each prompt's concept.
        source: Canonical code of the language translated from (a cloze: the
            definitions' language, the same as ``target``).
        target: Canonical code of the language answered in (not English).
        target_ids: Per prompt, the first tokens of the target word's forms.
        english_ids: Per prompt, the first tokens of the English word's forms.
        excluded: The concepts dropped because their two answer sets share a token.
        vocab_size: Size of the tokenizer the ids come from (``len(tokenizer)``).
        task: ``"translation"`` or ``"cloze"``.
        shots: Solved examples before each query.
        seed: The seed that drew the examples.

    Raises:
        ValueError: Mismatched lengths, an empty or overlapping answer set, an id outside
            the vocabulary, or English as the target.
    """

    texts: tuple[str, ...]
    concepts: tuple[str, ...]
    source: str
    target: str
    target_ids: tuple[tuple[int, ...], ...]
    english_ids: tuple[tuple[int, ...], ...]
    excluded: tuple[str, ...]
    vocab_size: int
    task: Task = "translation"
    shots: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "texts", tuple(self.texts))
        set_(self, "concepts", tuple(self.concepts))
        set_(self, "excluded", tuple(self.excluded))
        set_(self, "target_ids", tuple(tuple(int(i) for i in s) for s in self.target_ids))
        set_(self, "english_ids", tuple(tuple(int(i) for i in s) for s in self.english_ids))
        if self.target == ENGLISH:
            raise ValueError(
                "the target language must not be English: its answers are the English ones"
            )
        if self.task not in get_args(Task):
            raise ValueError(f"task must be one of {get_args(Task)}, got {self.task!r}")
        n = len(self.texts)
        if not n:
            raise ValueError("no prompts (all excluded?)")
        if not (len(self.concepts) == len(self.target_ids) == len(self.english_ids) == n):
            raise ValueError("texts, concepts, target_ids and english_ids must have one entry each")
        for key, tgt, eng in zip(self.concepts, self.target_ids, self.english_ids, strict=True):
            if not tgt or not eng:
                raise ValueError(f"{key!r} has an empty answer token set")
            if set(tgt) & set(eng):
                raise ValueError(f"{key!r}: its target and English answer sets overlap")
            if max(*tgt, *eng) >= self.vocab_size or min(*tgt, *eng) < 0:
                raise ValueError(f"{key!r} has a token id outside 0..{self.vocab_size - 1}")

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def n_excluded(self) -> int:
        """How many concepts were dropped because their answer sets overlap."""
        return len(self.excluded)


def translation_prompts(
    tokenizer: Any,
    concepts: ConceptSet,
    source: str,
    target: str,
    *,
    shots: int = 5,
    seed: int = 0,
) -> ConceptPrompts:
    """Few-shot word-translation prompts, one per concept, with their answer token sets.

    Each prompt is ``shots`` solved lines, ``<Source>: "<word>" - <Target>: "<word>"``
    (language names in their own language, examples drawn from the other concepts with
    ``seed``), then the query line, which ends right after the target word's opening
    quote. Concepts whose target and English answer sets (:func:`answer_token_ids`)
    share a token are left out and counted.

    Args:
        tokenizer: The model's tokenizer (``model.tokenizer``).
        concepts: The concept set (:func:`load_concepts`); must hold both languages.
        source: Language translated from (may be English).
        target: Language translated into (not English).
        shots: Solved examples per prompt, ``0 <= shots < len(concepts)``.
        seed: Seed of the examples' draw.

    Returns:
        The :class:`ConceptPrompts`.

    Raises:
        ValueError: English as target, a language the set lacks, a bad ``shots``, or
            every prompt excluded.

    >>> from interp_steer import load_model
    >>> tok = load_model("tiny").tokenizer
    >>> prompts = translation_prompts(tok, load_concepts(), "fr", "de", shots=1)
    >>> print(prompts.texts[0])
    Français: "marteau" - Deutsch: "Hammer"
    Français: "chien" - Deutsch: "
    >>> prompts.concepts[0], len(prompts) + prompts.n_excluded == len(load_concepts())
    ('dog', True)
    """
    src, tgt = _prompt_lang(source), _prompt_lang(target)
    src_words, tgt_words = concepts.column(src), concepts.column(tgt)

    def line(i: int, answer: bool) -> str:
        end = f'{tgt_words[i]}"' if answer else ""
        return f'{ENDONYMS[src]}: "{src_words[i]}" - {ENDONYMS[tgt]}: "{end}'

    return _few_shot(tokenizer, concepts, src, tgt, line, "translation", shots, seed)


def cloze_definitions(lang: str) -> Mapping[str, str]:
    """The package's cloze definitions in ``lang``: English key → a sentence with a blank.

    Each definition is one short sentence in ``lang`` in which the concept's word (its
    surface form in :func:`load_concepts`) is replaced by :data:`BLANK`, e.g. ``'A "___"
    is a pet that barks and guards the house.'``. Not every concept has one: the keys
    are the concepts that do, in the concept set's order; every one of them has a
    definition in each of the eight languages.

    Args:
        lang: A concept-set language (any spelling).

    Returns:
        A read-only mapping from English key to definition.

    Raises:
        ValueError: A language the file does not have, or a definition without exactly
            one blank.

    >>> defs = cloze_definitions("de")
    >>> len(defs) >= 100, defs["dog"]
    (True, 'Ein "___" ist ein Haustier, das bellt und das Haus bewacht.')
    """
    code = canonical(lang)
    header, body = _read_tsv(CLOZE_FILE)
    if header[0] != "key" or code not in header[1:]:
        raise ValueError(f"{CLOZE_FILE} has no {code!r}; it has {tuple(header[1:])}")
    col = header.index(code)
    order = {key: i for i, key in enumerate(load_concepts().keys)}
    rows = sorted(body, key=lambda row: order.get(row[0], len(order)))
    for row in rows:
        if row[0] not in order:
            raise ValueError(f"{CLOZE_FILE}: {row[0]!r} is not a concept of {CONCEPTS_FILE}")
        if row[col].count(BLANK) != 1:
            raise ValueError(f"{CLOZE_FILE}: the {code} definition of {row[0]!r} needs one {BLANK}")
    return MappingProxyType({row[0]: row[col] for row in rows})


def concept_cloze_prompts(
    tokenizer: Any,
    concepts: ConceptSet,
    lang: str,
    *,
    shots: int = 3,
    seed: int = 0,
) -> ConceptPrompts:
    """Few-shot cloze prompts in ``lang``, one per concept with a definition (Wendler's cloze).

    Each prompt is ``shots`` solved lines, ``<definition with "___"> <Answer>: "<word>"``
    (definitions of other concepts drawn with ``seed``, the word "Answer" in ``lang``:
    :data:`ANSWER_WORDS`), then the query concept's definition and ``<Answer>: "``, ending
    right after the answer's opening quote. Only the concepts of ``concepts`` that have a
    definition (:func:`cloze_definitions`) are used; those whose ``lang`` and English
    answer sets (:func:`answer_token_ids`) share a token are left out and counted, as in
    :func:`translation_prompts`. Not the sentence cloze of
    :func:`~interp_steer.analysis.cloze_prompts` (a sentence cut before its last word).

    Args:
        tokenizer: The model's tokenizer (``model.tokenizer``).
        concepts: The concept set (:func:`load_concepts`); must hold ``lang``.
        lang: Language of the definitions and the answers (not English).
        shots: Solved examples per prompt, ``0 <= shots <`` the number of concepts with a
            definition.
        seed: Seed of the examples' draw.

    Returns:
        The :class:`ConceptPrompts` (``task="cloze"``, ``source == target == lang``).

    Raises:
        ValueError: English, a language the set lacks, no concept with a definition, a
            bad ``shots``, or every prompt excluded.

    >>> from interp_steer import load_model
    >>> tok = load_model("tiny").tokenizer
    >>> two = load_concepts(["de"]).subset(["cat", "dog"])
    >>> print(concept_cloze_prompts(tok, two, "de", shots=1).texts[1])
    Eine "___" ist ein kleines Haustier, das schnurrt und Mäuse fängt. Antwort: "Katze"
    Ein "___" ist ein Haustier, das bellt und das Haus bewacht. Antwort: "
    """
    code = _prompt_lang(lang)
    if code == ENGLISH:
        raise ValueError("lang must not be English: its answers are the English ones")
    concepts.column(code)  # the set must hold the language
    definitions = cloze_definitions(code)
    keys = [key for key in concepts.keys if key in definitions]
    if not keys:
        raise ValueError(f"none of these concepts has a cloze definition ({CLOZE_FILE})")
    kept = concepts.subset(keys)
    words, texts = kept.column(code), [definitions[key] for key in keys]
    answer = ANSWER_WORDS[code]

    def line(i: int, solved: bool) -> str:
        end = f'{words[i]}"' if solved else ""
        return f'{texts[i]} {answer}: "{end}'

    return _few_shot(tokenizer, kept, code, code, line, "cloze", shots, seed)


def _prompt_lang(lang: str) -> str:
    """``lang``'s canonical code, if the prompts can name it (:data:`ENDONYMS`)."""
    code = canonical(lang)
    if code not in ENDONYMS:
        raise ValueError(f"no prompt name for {code!r}; languages: {sorted(ENDONYMS)}")
    return code


def _few_shot(
    tokenizer: Any,
    concepts: ConceptSet,
    source: str,
    target: str,
    line: Callable[[int, bool], str],
    task: Task,
    shots: int,
    seed: int,
) -> ConceptPrompts:
    """One prompt per concept, overlapping answer sets excluded.

    A prompt is ``shots`` solved ``line(j, True)`` (``j`` drawn with ``seed`` from the other
    concepts), then the query ``line(i, False)``.
    """
    if target == ENGLISH:
        raise ValueError("target must not be English: its answers are the English ones")
    if isinstance(shots, bool) or not 0 <= shots < len(concepts):
        raise ValueError(f"shots must be in 0..{len(concepts) - 1}, got {shots!r}")
    tgt_words, eng_words = concepts.column(target), concepts.column(ENGLISH)
    rng = random.Random(seed)
    texts, keys, tgt_ids, eng_ids, excluded = [], [], [], [], []
    for i, key in enumerate(concepts.keys):
        examples = rng.sample([j for j in range(len(concepts)) if j != i], shots)
        t_ids = answer_token_ids(tokenizer, tgt_words[i])
        e_ids = answer_token_ids(tokenizer, eng_words[i])
        if set(t_ids) & set(e_ids):
            excluded.append(key)
            continue
        texts.append("\n".join([*(line(j, True) for j in examples), line(i, False)]))
        keys.append(key)
        tgt_ids.append(t_ids)
        eng_ids.append(e_ids)
    if not texts:
        pair = f"{target} cloze" if task == "cloze" else f"{source}→{target}"
        raise ValueError(
            f"every {pair} prompt was excluded: the target and English answers share "
            "their first token in all of them"
        )
    return ConceptPrompts(
        texts=tuple(texts),
        concepts=tuple(keys),
        source=source,
        target=target,
        target_ids=tuple(tgt_ids),
        english_ids=tuple(eng_ids),
        excluded=tuple(excluded),
        vocab_size=len(tokenizer),
        task=task,
        shots=shots,
        seed=seed,
    )


__all__ = [
    "ANSWER_WORDS",
    "BLANK",
    "CLOZE_FILE",
    "CONCEPTS_FILE",
    "ENDONYMS",
    "ConceptPrompts",
    "ConceptSet",
    "Task",
    "answer_token_ids",
    "cloze_definitions",
    "concept_cloze_prompts",
    "load_concepts",
    "translation_prompts",
]
