"""Which language is a text in? A Unicode-script rule first, then seeded langdetect.

Scripts that one language owns among those the project meets (Thai, Bengali, Telugu,
Tamil, Hangul, kana, Han, Greek, ...) decide at once: this is exact, fast, and works on
short strings such as single tokens (logit-lens language identification). Shared scripts
(Latin, Cyrillic, Arabic, Devanagari) go to ``langdetect``, seeded
(``DetectorFactory.seed = 0``) so the same text always gets the same answer. Codes are
canonical (:func:`interp_steer.data.canonical`); ``"und"`` means undetermined (too few
letters, or langdetect found no features).

Example:
    >>> detect_language("Mchwa walivamia nyumba na kula mbao zote.")
    'sw'
    >>> detect_language("คำตอบคือ"), detect_language("42!"), script_of("Привет, мир")
    ('th', 'und', 'Cyrl')
"""

import functools
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from langdetect import DetectorFactory, detector_factory
from langdetect.lang_detect_exception import LangDetectException

from interp_steer.data.languages import canonical

UND = "und"
"""The code for an undetermined language."""

COMMON = "Zyyy"
"""ISO 15924 code returned by :func:`script_of` for text without letters."""

_SCRIPT_PREFIXES: tuple[tuple[str, str], ...] = (
    ("LATIN", "Latn"), ("CYRILLIC", "Cyrl"), ("GREEK", "Grek"), ("ARABIC", "Arab"),
    ("HEBREW", "Hebr"), ("DEVANAGARI", "Deva"), ("BENGALI", "Beng"), ("GURMUKHI", "Guru"),
    ("GUJARATI", "Gujr"), ("ORIYA", "Orya"), ("TAMIL", "Taml"), ("TELUGU", "Telu"),
    ("KANNADA", "Knda"), ("MALAYALAM", "Mlym"), ("SINHALA", "Sinh"), ("THAI", "Thai"),
    ("LAO", "Laoo"), ("TIBETAN", "Tibt"), ("MYANMAR", "Mymr"), ("GEORGIAN", "Geor"),
    ("HANGUL", "Hang"), ("HIRAGANA", "Hira"), ("KATAKANA", "Kana"),
    ("HALFWIDTH KATAKANA", "Kana"), ("CJK UNIFIED IDEOGRAPH", "Hani"),
    ("CJK COMPATIBILITY IDEOGRAPH", "Hani"), ("ETHIOPIC", "Ethi"), ("KHMER", "Khmr"),
    ("ARMENIAN", "Armn"), ("FULLWIDTH LATIN", "Latn"),
)  # fmt: skip

SCRIPT_LANGUAGE: Mapping[str, str] = MappingProxyType(
    {
        "Thai": "th", "Beng": "bn", "Telu": "te", "Taml": "ta", "Hang": "ko", "Jpan": "ja",
        "Hira": "ja", "Kana": "ja", "Hani": "zh", "Grek": "el", "Hebr": "he", "Geor": "ka",
        "Armn": "hy", "Khmr": "km", "Mlym": "ml", "Ethi": "am", "Gujr": "gu", "Knda": "kn",
        "Guru": "pa", "Sinh": "si", "Laoo": "lo", "Mymr": "my", "Orya": "or", "Tibt": "bo",
    }
)  # fmt: skip
"""Scripts that decide the language on their own (the rule applied before langdetect)."""

_LANGDETECT_CODES = {"zh-cn": "zh", "zh-tw": "zh", "no": "nb"}


@functools.lru_cache(maxsize=4096)
def _char_script(ch: str) -> str | None:
    name = unicodedata.name(ch, "")
    for prefix, script in _SCRIPT_PREFIXES:
        if name.startswith(prefix):
            return script
    return None


def script_of(text: str) -> str:
    """Return the ISO 15924 code of the script most letters of ``text`` are written in.

    Japanese (any kana among Han characters) is ``"Jpan"``; Han alone is ``"Hani"``; text
    without letters is ``"Zyyy"`` (common); letters of unlisted scripts are ignored.

    Example:
        >>> script_of("Hello"), script_of("日本語のテキスト"), script_of("中文"), script_of("12 %")
        ('Latn', 'Jpan', 'Hani', 'Zyyy')
    """
    counts = Counter(s for ch in text if ch.isalpha() and (s := _char_script(ch)) is not None)
    if not counts:
        return COMMON
    kana = counts["Hira"] + counts["Kana"]
    if kana and kana + counts["Hani"] >= max(counts.values()):
        return "Jpan"
    return counts.most_common(1)[0][0]


def _to_canonical(code: str) -> str:
    code = _LANGDETECT_CODES.get(code, code)
    try:
        return canonical(code)
    except ValueError:
        return code  # a langdetect code the language table lacks (gu, kn, ne, pa, so)


@functools.cache
def _detector_factory() -> object:
    DetectorFactory.seed = 0
    detector_factory.init_factory()
    return detector_factory._factory


def detect_language(text: str, *, min_letters: int = 3) -> str:
    """Return the canonical code of ``text``'s language, or ``"und"``.

    Args:
        text: Any text (a model output, a token, a sentence).
        min_letters: Texts with fewer letters are undetermined (langdetect guesses wildly
            on two letters); script-owned languages need only one.

    Example:
        >>> detect_language("Dies ist ein deutscher Satz über das Wetter.")
        'de'
        >>> detect_language("ok"), detect_language("ก")
        ('und', 'th')
    """
    letters = sum(1 for ch in text if ch.isalpha())
    if letters == 0:
        return UND
    script = script_of(text)
    if script in SCRIPT_LANGUAGE:
        return SCRIPT_LANGUAGE[script]
    if letters < min_letters:
        return UND
    factory = _detector_factory()
    DetectorFactory.seed = 0  # someone else may have changed it
    try:
        detector = factory.create()  # type: ignore[attr-defined]
        detector.append(text)
        return _to_canonical(str(detector.detect()))
    except LangDetectException:
        return UND


def detect_languages(texts: Iterable[str], *, min_letters: int = 3) -> list[str]:
    """Return :func:`detect_language` of each text.

    Example:
        >>> detect_languages(["This is plainly English text.", "", "这是中文"])
        ['en', 'und', 'zh']
    """
    return [detect_language(t, min_letters=min_letters) for t in texts]


def language_shares(codes: Iterable[str]) -> dict[str, float]:
    """Return the share of each language code among ``codes`` (largest first).

    Example:
        >>> language_shares(["en", "sw", "en", "und"])
        {'en': 0.5, 'sw': 0.25, 'und': 0.25}
    """
    counts = Counter(codes)
    total = sum(counts.values())
    return {code: n / total for code, n in counts.most_common()} if total else {}


__all__ = [
    "COMMON",
    "SCRIPT_LANGUAGE",
    "UND",
    "detect_language",
    "detect_languages",
    "language_shares",
    "script_of",
]
