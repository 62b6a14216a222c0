"""The number parser: last number of a model output, in every script the tasks use."""

import pytest

from interp_steer.evaluation.answers import (
    answers_match,
    extract_numbers,
    last_number,
    normalize_digits,
)

LAST_NUMBER_TABLE = [
    # (text, lang, expected)
    ("The answer is 18.", None, "18"),
    ("So she makes 9 * 2 = $18 every day.", "en", "18"),
    ("Total: $1,234,567.", None, "1234567"),
    ("It costs $1,234.50 in total", None, "1234.5"),
    ("Er zahlt 1.234,50 €", "de", "1234.5"),
    ("Il reste 3,5 kg", "fr", "3.5"),
    ("Das macht 1.250 Dollar", "de", "1250"),
    ("That is 1.250 dollars", "en", "1.25"),
    ("Le total est 1\u202f234 euros", "fr", "1234"),
    ("Le total est 1\u00a0234,5 euros", "fr", "1234.5"),
    ("Es kostet 1'000 Franken", "de", "1000"),
    ("It is 0,125", None, "0.125"),
    ("5 100 kids", None, "100"),  # a plain space never joins digits
    ("The temperature fell to -7 degrees", None, "-7"),
    ("The temperature fell to \u22127 degrees", None, "-7"),
    ("Pages 3-5", None, "5"),
    ("COVID-19", None, "19"),
    ("On 12.05.2023 he paid", "de", "2023"),
    ("Answer: 8.0", None, "8"),
    ("50%", None, "50"),
    # Bengali digits
    ("উত্তর হল ১৮।", "bn", "18"),
    ("তিনি ১,২৫০ টাকা পান", "bn", "1250"),
    # Devanagari digits
    ("उत्तर ४२ है", "hi", "42"),
    # Thai digits
    ("คำตอบคือ ๑๒๕", "th", "125"),
    # Telugu digits
    ("సమాధానం ౩౦", "te", "30"),
    # Arabic-Indic digits with the Arabic decimal and thousands separators
    ("الجواب ١٢٣", "ar", "123"),
    ("الجواب ٣٫٥", "ar", "3.5"),
    ("الجواب ١٬٢٣٤", "ar", "1234"),
    # Persian (extended Arabic-Indic) digits
    ("پاسخ ۴۵ است", "fa", "45"),
    # full-width digits and separators
    ("答案是１８。", "zh", "18"),
    ("答案是１，２３４。", "zh", "1234"),
    ("答案は３．５です", "ja", "3.5"),
    # digits glued to words, as Bengali and Chinese write counters
    ("মোট 16টি ডিম", "bn", "16"),
    ("一共18个鸡蛋", "zh", "18"),
    ("no number at all", None, None),
    ("", None, None),
]


@pytest.mark.parametrize(("text", "lang", "expected"), LAST_NUMBER_TABLE)
def test_last_number_table(text, lang, expected):
    assert last_number(text, lang=lang) == expected


def test_extract_numbers_order_and_parts():
    assert extract_numbers("3 apples and 4.5 pears, 1,000 total") == ["3", "4.5", "1000"]
    assert extract_numbers("12.05.2023") == ["12", "5", "2023"]


def test_normalize_digits_maps_every_script():
    assert normalize_digits("০১২৩৪৫৬৭৮৯") == "0123456789"  # Bengali
    assert normalize_digits("०१२३४५६७८९") == "0123456789"  # Devanagari
    assert normalize_digits("๐๑๒๓๔๕๖๗๘๙") == "0123456789"  # Thai
    assert normalize_digits("౦౧౨౩౪౫౬౭౮౯") == "0123456789"  # Telugu
    assert normalize_digits("٠١٢٣٤٥٦٧٨٩") == "0123456789"  # Arabic-Indic
    assert normalize_digits("０１２３４５６７８９") == "0123456789"  # full width


def test_answers_match():
    assert answers_match("18", "18")
    assert answers_match("18.00", "18")
    assert answers_match("1234.5", "1,234.5")
    assert not answers_match("17", "18")
    assert not answers_match(None, "18")
