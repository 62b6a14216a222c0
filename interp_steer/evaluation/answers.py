"""Numeric answers in any script: read the last number of a model's output.

Math tasks (MGSM, MSVAMP) are scored by the last number a model writes. Models answer in
the prompt's script, so digits are first mapped to ASCII: every Unicode decimal digit is
(Bengali ``০-৯``, Devanagari ``०-९``, Thai ``๐-๙``, Telugu ``౦-౯``, Arabic-Indic ``٠-٩``,
Persian ``۰-۹``, full-width ``０-９`` ...), as are the Arabic decimal and thousands
separators (``٫`` ``٬``), full-width ``，`` ``．`` and the minus signs ``−`` ``－``.

Separators are then read as a person would:

* ``1,234,567`` / ``1.234.567`` / ``1 234`` (no-break or thin space; a plain space never
  joins digits) / ``1'234``: thousands.
* ``1,234.5`` / ``1.234,5``: the last of ``.`` and ``,`` is the decimal separator.
* ``3,5`` / ``3.25`` / ``0,125`` (not three digits after a lone separator, or a leading 0):
  decimal.
* ``1,234`` (a lone comma before three digits) is 1234 and ``1.234`` is 1.234, unless
  ``lang`` is a decimal-comma language (``de``, ``fr``, ``ru``, ...): then ``1.234`` is 1234
  and ``1,234`` is 1.234.
* Anything else (``12.05.2023``) is read as separate numbers.

A ``-`` is a sign only where it does not follow a letter or digit (``3-5`` is 3 and 5).
Results are canonical strings as the task loaders write gold answers: no thousands
separators, no trailing zeros (``"1234"``, ``"-3.5"``).

Example:
    >>> last_number("জেনেট প্রতিদিন ১,২৫০ টাকা পায়। উত্তর: ১৮।")
    '18'
    >>> extract_numbers("Er zahlt 1.250,50 € und 3,5 kg.", lang="de")
    ['1250.5', '3.5']
"""

import re
import unicodedata
from decimal import Decimal, InvalidOperation

DECIMAL_COMMA_LANGS: frozenset[str] = frozenset(
    [
        "de",
        "fr",
        "es",
        "it",
        "pt",
        "ru",
        "id",
        "tr",
        "vi",
        "et",
        "nl",
        "pl",
        "cs",
        "sk",
        "sl",
        "hr",
        "sr",
        "bs",
        "mk",
        "bg",
        "uk",
        "be",
        "el",
        "ro",
        "hu",
        "fi",
        "sv",
        "da",
        "nb",
        "nn",
        "is",
        "lt",
        "lv",
        "ca",
        "gl",
        "eu",
        "az",
        "kk",
        "uz",
        "sq",
    ]
)
"""Languages whose usual decimal separator is a comma (``3,5``) and thousands a dot."""

_SEPARATORS = str.maketrans(
    {
        "\u066b": ".",  # ARABIC DECIMAL SEPARATOR
        "\u066c": ",",  # ARABIC THOUSANDS SEPARATOR
        "\uff0c": ",",  # FULLWIDTH COMMA
        "\uff0e": ".",  # FULLWIDTH FULL STOP
        "\u2212": "-",  # MINUS SIGN
        "\uff0d": "-",  # FULLWIDTH HYPHEN-MINUS
        "\u2013": "-",  # EN DASH (often typed as a minus)
        "\u2019": "'",  # RIGHT SINGLE QUOTATION MARK (Swiss 1’000)
        "\u202f": "\u00a0",  # NARROW NO-BREAK SPACE -> NO-BREAK SPACE
        "\u2009": "\u00a0",  # THIN SPACE -> NO-BREAK SPACE
    }
)
_ANY_DIGIT = re.compile(r"\d")  # str patterns match every Unicode decimal digit
# A number: optional sign (not after a word character), digits, then digit groups joined by
# one separator each. Plain spaces never join digits ("5 100 kids" is two numbers).
_NUMBER = re.compile(r"(?:(?<![\w)\]])(-))?([0-9]+(?:[.,'\u00a0][0-9]+)*)")


def normalize_digits(text: str) -> str:
    """Map every Unicode decimal digit to ASCII and number punctuation to ``. , - '``.

    No-break, narrow and thin spaces all become U+00A0 (a possible thousands separator).

    Example:
        >>> normalize_digits("১৮ ० ๙ ౩ ٤٫٥ ７")
        '18 0 9 3 4.5 7'
    """
    text = _ANY_DIGIT.sub(lambda m: str(unicodedata.decimal(m.group(), 0)), text)
    return text.translate(_SEPARATORS)


def _canonical(text: str) -> str:
    value = Decimal(text)
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def _read(body: str, decimal_comma: bool) -> list[str]:
    """Interpret one digit run with separators; return one number or its separate parts."""
    parts = re.split(r"([.,'\u00a0])", body)
    digits, seps = parts[0::2], parts[1::2]
    if not seps:
        return [body]
    last = seps[-1]
    marks = {s for s in seps if s in ".,"}
    lone_last_mark = last in ".," and seps.count(last) == 1
    if len(marks) == 2:  # both '.' and ',': the last one must be the decimal separator
        if not lone_last_mark:
            return digits
        decimal = True
    elif lone_last_mark and len(seps) == 1:  # "3,5", "1,234", "1.234": the ambiguous case
        head, tail = digits
        decimal = len(tail) != 3 or head == "0" or (last == ",") == decimal_comma
    else:  # "1 234,5" / "1'234.5": a lone final mark after thousands groups is decimal
        decimal = lone_last_mark
    groups = digits[1:-1] if decimal else digits[1:]
    if any(len(group) != 3 for group in groups):
        return digits
    if decimal:
        return ["".join(digits[:-1]) + "." + digits[-1]]
    return ["".join(digits)]


def extract_numbers(text: str, *, lang: str | None = None) -> list[str]:
    """Return every number in ``text``, in order, as canonical strings.

    Args:
        text: Any text, in any script.
        lang: Canonical code of the text's language; decides whether a lone ``1.234`` /
            ``1,234`` is a thousands group (see :data:`DECIMAL_COMMA_LANGS`).

    Returns:
        Canonical numbers (``"1234"``, ``"-3.5"``); empty when there are none.

    Example:
        >>> extract_numbers("She had $1,234.50, gave -3 away, and 12.05.2023 came.")
        ['1234.5', '-3', '12', '5', '2023']
    """
    decimal_comma = lang in DECIMAL_COMMA_LANGS
    found: list[str] = []
    for match in _NUMBER.finditer(normalize_digits(text)):
        sign, body = match.group(1) or "", match.group(2)
        values = _read(body, decimal_comma)
        for i, value in enumerate(values):
            if value:
                found.append(_canonical((sign if i == 0 else "") + value))
    return found


def last_number(text: str, *, lang: str | None = None) -> str | None:
    """Return the last number in ``text`` (canonical), or None when there is none.

    Example:
        >>> last_number("Janet verdient 9 $ pro Tag. Die Antwort ist 18.")
        '18'
        >>> last_number("no digits here") is None
        True
    """
    numbers = extract_numbers(text, lang=lang)
    return numbers[-1] if numbers else None


def answers_match(predicted: str | None, gold: str) -> bool:
    """Return whether a predicted number equals the gold one numerically.

    Example:
        >>> answers_match("18.0", "18"), answers_match("1,5", "1.5"), answers_match(None, "3")
        (True, False, False)
    """
    if predicted is None:
        return False
    try:
        return Decimal(predicted) == Decimal(gold.replace(",", ""))
    except InvalidOperation:
        return predicted.strip() == gold.strip()


__all__ = [
    "DECIMAL_COMMA_LANGS",
    "answers_match",
    "extract_numbers",
    "last_number",
    "normalize_digits",
]
