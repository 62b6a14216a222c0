"""Language labels for logit-lens tokens, and the four buckets they fall into.

A token's language is decided **once per token** and cached (:func:`token_language`):
the same token gets the same label in every cell of a result, whatever else that cell
holds. The rules, in order:

* tokens without letters (digits, punctuation, whitespace), special tokens
  (``<eos>``, ``<unused3>``) and lone letters of shared scripts (``"W"``) are
  **undetermined** (``"und"``);
* tokens in a script that one language owns (Thai, Hangul, kana, Han, Bengali, ...) get
  that language from the Unicode-script rule: exact;
* a whole word of a shared script (Latin, Cyrillic, ...) is English or the prompt
  language when it is at least :data:`MIN_RATIO` times more frequent in that language's
  sentences of the shared data (:func:`word_frequencies`: FLORES-200 and Tatoeba) than in
  the other's (``" water"``, ``" the"`` are English beside Chinese prompts; ``" Wasser"``,
  ``" die"`` German beside German ones): langdetect alone cannot tell a single English word
  from Afrikaans or Danish. A word common in both (``" in"``) is undetermined;
* the rest (subword pieces, words in neither's sentences) get seeded
  ``langdetect``'s label of the token on its own; fewer than ``min_letters`` letters stay
  undetermined. Read those labels as rough; the figures' hover shows every token's code.

A cell's labels follow from its tokens' labels: its colour in the token table is its
top-1 token's bucket, and its shares count each top-k token's bucket (once, or by
probability). Each label falls into one of four :data:`BUCKETS` (:func:`bucket_of`):
English, the prompt language, other, and undetermined.

Example:
    >>> labels = label_tokens([" Wasser", "水", "42"])
    >>> [BUCKETS[bucket_of(c, "de")] for c in labels]
    ['prompt', 'other', 'undetermined']
"""

import functools
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from types import MappingProxyType

from interp_steer.data.language_id import SCRIPT_LANGUAGE, UND, detect_language, script_of
from interp_steer.data.languages import ENGLISH, canonical, get_language
from interp_steer.data.parallel import load_parallel
from interp_steer.data.sources import DataUnavailableError, available_languages

BUCKETS: tuple[str, ...] = ("english", "prompt", "other", "undetermined")
"""The four language buckets, in plotting order (their shares sum to 1)."""

_SPECIAL = re.compile(r"^<[^<>\s]+>$")
_WORD = re.compile(r"[^\W\d_]+")


MIN_RATIO = 10.0
"""How many times more frequent a word must be in one language's sentences than in the
other's for :func:`token_language` to call it that language's."""


@functools.lru_cache(maxsize=32)
def word_frequencies(lang: str) -> Mapping[str, float]:
    """Relative frequency of each lower-cased word in the shared data's sentences in ``lang``.

    FLORES-200 and Tatoeba texts in ``lang``; English is the English side of every
    Tatoeba language's pairs (everyday sentences: colours, food, family) and of FLORES.
    Empty without the data.

    >>> en, de = word_frequencies("en"), word_frequencies("de")
    >>> en["the"] > 0.03, en["green"] > 0, de["wasser"] > 0
    (True, True, True)
    """
    code = canonical(lang)
    texts: list[str] = []
    for dataset in ("flores", "tatoeba"):
        try:
            langs = available_languages(dataset) if code == ENGLISH else (code,)
        except (DataUnavailableError, OSError):
            continue
        for other in langs:
            try:
                pairs = load_parallel(dataset, other)
            except (DataUnavailableError, ValueError, OSError):
                continue
            texts += pairs.english if code == ENGLISH else pairs.target
            if code == ENGLISH and dataset == "flores":
                break  # every FLORES language has the same English side
    counts = Counter(w for text in texts for w in _WORD.findall(text.lower()))
    total = sum(counts.values()) or 1
    return MappingProxyType({w: n / total for w, n in counts.items()})


def token_language(token: str, *, lang: str | None = None, min_letters: int = 3) -> str:
    """Return the language code (or ``"und"``) of one decoded token.

    The answer depends on ``token``, the prompt language ``lang`` and ``min_letters``
    only (see the module docstring for the rules), and is cached: a token is labelled
    once, the same wherever it occurs.

    Args:
        token: One decoded token (a leading ``"▁"`` or space is ignored).
        lang: The prompts' language, whose word frequencies are weighed against English's
            (None: English's only).
        min_letters: Fewest letters langdetect is asked to label; shorter tokens of a
            shared script are undetermined.

    Returns:
        A canonical language code, or ``"und"``.

    >>> token_language(" Wasser", lang="de"), token_language("ไทย"), token_language("<eos>")
    ('de', 'th', 'und')
    >>> token_language(" water", lang="zh"), token_language(" green", lang="zh")
    ('en', 'en')
    """
    if isinstance(min_letters, bool) or not isinstance(min_letters, int) or min_letters < 1:
        raise ValueError(f"min_letters must be a positive int, got {min_letters!r}")
    return _token_language(str(token), None if lang is None else canonical(lang), min_letters)


@functools.lru_cache(maxsize=1 << 17)
def _token_language(token: str, lang: str | None, min_letters: int) -> str:
    text = token.replace("\u2581", " ").strip()
    letters = sum(ch.isalpha() for ch in text)
    if not letters or _SPECIAL.match(text):
        return UND
    script = script_of(text)
    if script in SCRIPT_LANGUAGE:
        return SCRIPT_LANGUAGE[script]
    if letters < 2:  # a lone letter ("W", "a") says nothing about a language
        return UND
    word = text.lower()
    if _WORD.fullmatch(word):  # a whole word: which language's sentences use it?
        english = word_frequencies(ENGLISH).get(word, 0.0)
        prompt = word_frequencies(lang).get(word, 0.0) if lang not in (None, ENGLISH) else 0.0
        if english > MIN_RATIO * prompt:
            return ENGLISH
        if prompt > MIN_RATIO * english:
            return str(lang)
        if english and prompt:  # " in", " also": common in both, so neither wins
            return UND
    return detect_language(text, min_letters=min_letters)


def label_tokens(
    tokens: Sequence[str], *, lang: str | None = None, min_letters: int = 3
) -> list[str]:
    """Return :func:`token_language` of each token (e.g. one cell's decoded top-k tokens).

    Each token is labelled on its own: a token's label does not depend on its neighbours.

    Args:
        tokens: Decoded tokens.
        lang: The prompts' language (see :func:`token_language`).
        min_letters: See :func:`token_language`.

    Returns:
        One canonical code (or ``"und"``) per token.

    >>> label_tokens([" Haus", "ไทย", "42", "<eos>", " Gebäude"], lang="de")
    ['de', 'th', 'und', 'und', 'de']
    """
    return [token_language(t, lang=lang, min_letters=min_letters) for t in tokens]


def bucket_of(code: str, lang: str) -> int:
    """Return the index into :data:`BUCKETS` of a language code, for prompts in ``lang``.

    English wins over the prompt language when both are English.

    >>> [BUCKETS[bucket_of(c, "de")] for c in ("en", "de", "fr", "und")]
    ['english', 'prompt', 'other', 'undetermined']
    """
    if code == ENGLISH:
        return 0
    if code == lang:
        return 1
    if code == UND:
        return 3
    return 2


def language_name(code: str) -> str:
    """The English name of a language code, or the code itself if it is not known.

    >>> language_name("de"), language_name("xx")
    ('German', 'xx')
    """
    try:
        return get_language(code).name
    except ValueError:
        return code


__all__ = [
    "BUCKETS",
    "bucket_of",
    "label_tokens",
    "MIN_RATIO",
    "word_frequencies",
    "token_language",
]
