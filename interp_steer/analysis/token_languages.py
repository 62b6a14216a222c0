"""Language labels for logit-lens tokens, and the four buckets they fall into.

A token's language is decided **once per token**, from the token alone, and cached
(:func:`token_language`): the same token gets the same label in every cell, whatever
else that cell holds. The rules, in order:

* tokens without letters (digits, punctuation, whitespace), special tokens
  (``<eos>``, ``<unused3>``) and lone letters of shared scripts (``"W"``) are
  **undetermined** (``"und"``);
* tokens in a script that one language owns (Thai, Hangul, kana, Han, Bengali, ...) get
  that language from the Unicode-script rule: exact;
* the remaining tokens (Latin, Cyrillic, Arabic, ...) get seeded ``langdetect``'s label of
  the token on its own; fewer than ``min_letters`` letters stay undetermined. A lone
  subword is harder for langdetect than a sentence (``"water"`` comes out Afrikaans), so
  read the shares as rough; the figures' hover shows every token's code.

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
from collections.abc import Sequence

from interp_steer.data.language_id import SCRIPT_LANGUAGE, UND, detect_language, script_of
from interp_steer.data.languages import ENGLISH, get_language

BUCKETS: tuple[str, ...] = ("english", "prompt", "other", "undetermined")
"""The four language buckets, in plotting order (their shares sum to 1)."""

_SPECIAL = re.compile(r"^<[^<>\s]+>$")


def token_language(token: str, *, min_letters: int = 3) -> str:
    """Return the language code (or ``"und"``) of one decoded token, from the token alone.

    The answer depends on ``token`` and ``min_letters`` only (see the module docstring for
    the rules), and is cached: a token is labelled once, the same wherever it occurs.

    Args:
        token: One decoded token (a leading ``"▁"`` or space is ignored).
        min_letters: Fewest letters langdetect is asked to label; shorter tokens of a
            shared script are undetermined.

    Returns:
        A canonical language code, or ``"und"``.

    >>> token_language(" Wasser"), token_language("ไทย"), token_language("<eos>")
    ('de', 'th', 'und')
    """
    if isinstance(min_letters, bool) or not isinstance(min_letters, int) or min_letters < 1:
        raise ValueError(f"min_letters must be a positive int, got {min_letters!r}")
    return _token_language(str(token), min_letters)


@functools.lru_cache(maxsize=1 << 17)
def _token_language(token: str, min_letters: int) -> str:
    text = token.replace("\u2581", " ").strip()
    letters = sum(ch.isalpha() for ch in text)
    if not letters or _SPECIAL.match(text):
        return UND
    script = script_of(text)
    if script in SCRIPT_LANGUAGE:
        return SCRIPT_LANGUAGE[script]
    if letters < 2:  # a lone letter ("W", "a") says nothing about a language
        return UND
    return detect_language(text, min_letters=min_letters)


def label_tokens(tokens: Sequence[str], *, min_letters: int = 3) -> list[str]:
    """Return :func:`token_language` of each token (e.g. one cell's decoded top-k tokens).

    Each token is labelled on its own: a token's label does not depend on its neighbours.

    Args:
        tokens: Decoded tokens.
        min_letters: See :func:`token_language`.

    Returns:
        One canonical code (or ``"und"``) per token.

    >>> label_tokens([" Haus", "ไทย", "42", "<eos>", " Gebäude"])
    ['de', 'th', 'und', 'und', 'de']
    """
    return [token_language(t, min_letters=min_letters) for t in tokens]


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
    "token_language",
]
