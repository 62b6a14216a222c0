"""Language labels for logit-lens tokens, and the four buckets they fall into.

The top-``k`` tokens of one logit-lens cell (a layer and read-out position) are labelled
by :func:`label_tokens`:

* tokens without letters (digits, punctuation, whitespace), special tokens
  (``<eos>``, ``<unused3>``) and lone letters of shared scripts (``"W"``) are
  **undetermined** (``"und"``);
* tokens in a script that one language owns (Thai, Hangul, kana, Han, Bengali, ...) get
  that language from the Unicode-script rule: exact, and it works on single tokens;
* the remaining tokens of the cell (Latin, Cyrillic, Arabic, ...) are joined per script
  and each join gets one label from seeded ``langdetect``: a single subword token is too
  short for it (``"water"`` alone comes out Afrikaans), the ``k`` tokens together much
  less so. Fewer than ``min_letters`` letters in the join stays undetermined.

Each label falls into one of four :data:`BUCKETS` (:func:`bucket_of`): English, the
prompt language, other, and undetermined.

Example:
    >>> labels = label_tokens([" water", " Wasser", "水"])
    >>> [BUCKETS[bucket_of(c, "de")] for c in labels][2]
    'other'
"""

import functools
import re
from collections.abc import Sequence

from interp_steer.data.language_id import SCRIPT_LANGUAGE, UND, detect_language, script_of
from interp_steer.data.languages import ENGLISH, get_language

BUCKETS: tuple[str, ...] = ("english", "prompt", "other", "undetermined")
"""The four language buckets, in plotting order (their shares sum to 1)."""

_SPECIAL = re.compile(r"^<[^<>\s]+>$")


@functools.lru_cache(maxsize=65536)
def _detect(text: str, min_letters: int) -> str:
    return detect_language(text, min_letters=min_letters)


def label_tokens(tokens: Sequence[str], *, min_letters: int = 3) -> list[str]:
    """Give each of one cell's decoded top-k tokens a language code (or ``"und"``).

    Letterless and special tokens are undetermined; script-owned tokens get their
    language from the script; the rest are joined per script and each join is labelled
    by seeded langdetect (see the module docstring).

    Args:
        tokens: The decoded tokens of one (layer, position) cell.
        min_letters: The join needs at least this many letters to be labelled.

    Returns:
        One canonical code (or ``"und"``) per token.

    >>> label_tokens([" Haus", " Wohnung", "ไทย", "42", "<eos>", " Gebäude"])
    ['de', 'de', 'th', 'und', 'und', 'de']
    """
    labels = [UND] * len(tokens)
    groups: dict[str, list[int]] = {}
    for i, token in enumerate(tokens):
        text = token.replace("\u2581", " ").strip()
        letters = sum(ch.isalpha() for ch in text)
        if not letters or _SPECIAL.match(text):
            continue
        script = script_of(text)
        if script in SCRIPT_LANGUAGE:
            labels[i] = SCRIPT_LANGUAGE[script]
        elif letters >= 2:  # a lone letter ("W", "a") says nothing about a language
            groups.setdefault(script, []).append(i)
    for members in groups.values():
        joined = " ".join(tokens[i].replace("\u2581", " ").strip() for i in members)
        code = _detect(joined, min_letters)
        for i in members:
            labels[i] = code
    return labels


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
]
