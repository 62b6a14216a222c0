"""Readers for the raw files of each local dataset, shared by parallel corpora and tasks.

Each reader takes a language in any spelling, finds its files in the data directory
(:func:`interp_steer.data.sources.dataset_dir`), checks their alignment and returns plain Python
rows. Texts are stripped of surrounding whitespace; nothing is dropped or reordered.

Example:
    >>> question, answer = read_mgsm("de")[0]
    >>> answer
    '18'
"""

import functools
import json
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from interp_steer.data.languages import ENGLISH, get_language
from interp_steer.data.sources import available_languages, dataset_dir, dataset_files


def normalize_number(text: str) -> str:
    """Write a numeric answer in one canonical form: no thousands commas, no trailing ``.0``.

    Args:
        text: A number as the datasets write it (``"2,125"``, ``"8.0"``, ``"-3.50"``).

    Returns:
        The canonical string (``"2125"``, ``"8"``, ``"-3.5"``).

    Raises:
        ValueError: If the text is not a number.

    Example:
        >>> [normalize_number(t) for t in ("2,125", "8.0", "-3.50", "7")]
        ['2125', '8', '-3.5', '7']
    """
    try:
        value = Decimal(text.strip().replace(",", ""))
    except InvalidOperation:
        raise ValueError(f"expected a numeric answer, got {text!r}") from None
    if not value.is_finite():
        raise ValueError(f"expected a finite numeric answer, got {text!r}")
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def read_lines(path: Path) -> list[str]:
    r"""Read a UTF-8 text file as one stripped text per ``\n``-separated line.

    Only ``\n`` separates lines (never the Unicode line separators that ``splitlines``
    honours), a byte-order mark is dropped, and empty lines are kept so that alignment
    checks can name them.

    Example:
        >>> from interp_steer.data.sources import dataset_dir
        >>> len(read_lines(dataset_dir("flores") / "eng_Latn.devtest"))
        1012
    """
    text = path.read_text(encoding="utf-8").removeprefix("\ufeff")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.strip() for line in lines]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read a JSON-lines file (one object a line; blank lines skipped).

    Raises:
        ValueError: If a line is not a JSON object; the message names file and line.

    Example:
        >>> from interp_steer.data.sources import dataset_dir
        >>> read_jsonl(dataset_dir("xcopa") / "data" / "it" / "val.it.jsonl")[0]["idx"]
        0
    """
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number}: expected a JSON object ({err})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
        rows.append(row)
    return rows


def _paths(name: str, lang: str, split: str | None = None) -> list[Path]:
    """Return a language's file paths, or raise ValueError listing the languages there are."""
    code = get_language(lang).code
    folder = dataset_dir(name)
    paths = [folder / rel for rel in dataset_files(name, code, split)]
    if not paths[0].exists():
        raise ValueError(
            f"{name} has no {code} data (expected {paths[0]}); "
            f"available languages: {', '.join(available_languages(name))}"
        )
    return paths


def _check_same_length(a: list[Any], b: list[Any], path_a: Path, path_b: Path) -> None:
    """Raise ValueError when two files that must be parallel differ in length."""
    if len(a) != len(b):
        raise ValueError(
            f"{path_a} has {len(a)} items but {path_b} has {len(b)}; they must be parallel"
        )


def read_mgsm(lang: str) -> list[tuple[str, str]]:
    """Read MGSM's ``(question, answer)`` rows for one language; answers normalised.

    Example:
        >>> len(read_mgsm("sw"))
        250
    """
    path = _paths("mgsm", lang)[0]
    rows = []
    for number, line in enumerate(read_lines(path), start=1):
        fields = line.split("\t")
        if len(fields) != 2:
            raise ValueError(f"{path}:{number}: expected 'question<TAB>answer', got {line!r}")
        rows.append((fields[0].strip(), normalize_number(fields[1])))
    return rows


def read_mgsm_aligned(lang: str) -> list[tuple[str, str, str]]:
    """Read MGSM ``(question, english_question, answer)`` rows, checked against ``mgsm_en``.

    Raises:
        ValueError: If the files differ in length or line i has a different gold answer.

    Example:
        >>> read_mgsm_aligned("fr")[1][1][:14], read_mgsm_aligned("fr")[1][2]
        ('A robe takes 2', '3')
    """
    native, english = read_mgsm(lang), read_mgsm(ENGLISH)
    code = get_language(lang).code
    if len(native) != len(english):
        raise ValueError(f"mgsm {code} has {len(native)} problems but English {len(english)}")
    rows = []
    for i, ((question, answer), (en_question, en_answer)) in enumerate(
        zip(native, english, strict=True)
    ):
        if answer != en_answer:
            raise ValueError(f"mgsm {code} line {i + 1} answers {answer}, English {en_answer}")
        rows.append((question, en_question, answer))
    return rows


_PREFIX = re.compile(r"^(.*?[:：])\s*")


def read_mgsm_exemplars(lang: str) -> list[dict[str, str]]:
    """Read MGSM's 8 translated few-shot exemplars for one language.

    Each row holds the ``question`` and the full worked ``solution`` without their
    ``Frage:`` / ``Schritt-für-Schritt-Antwort:`` prefixes, both prefixes
    (``question_prefix``, ``answer_prefix``), the solution as released with its prefix
    (``solution_raw``), the final ``answer`` and the ``equation``.

    Example:
        >>> ex = read_mgsm_exemplars("de")
        >>> len(ex), ex[0]["answer"], ex[0]["question_prefix"]
        (8, '11', 'Frage:')
    """
    code = get_language(lang).code
    path = _paths("mgsm", code)[2]
    data = json.loads(path.read_text(encoding="utf-8"))
    if code not in data["exemplars"]:
        raise ValueError(f"{path} has no exemplars for {code}")
    rows = []
    for k, (number, equation) in enumerate(
        zip(data["number_answers"], data["equation_solutions"], strict=True), start=1
    ):
        item = data["exemplars"][code][str(k)]
        q_prefix = _PREFIX.match(item["q"])
        a_prefix = _PREFIX.match(item["a"])
        if q_prefix is None or a_prefix is None:
            raise ValueError(f"{path}: exemplar {k} of {code} lacks its 'Question:' prefixes")
        rows.append(
            {
                "question": item["q"][q_prefix.end() :].strip(),
                "question_prefix": q_prefix.group(1),
                "solution": item["a"][a_prefix.end() :].strip(),
                "solution_raw": item["a"].strip(),
                "answer_prefix": a_prefix.group(1),
                "answer": normalize_number(str(number)),
                "equation": equation,
            }
        )
    return rows


MSVAMP_SPLITS: dict[str, range] = {"test": range(0, 1000), "train": range(500, 1000),
                                    "eval": range(0, 500)}  # fmt: skip
"""Items of each MSVAMP split. MSVAMP is released as one 1000-item test set (``"test"``);
the paper fits its vectors on MSVAMP pairs and tests on others, so ``"train"`` (items
500–999) is for fitting and selection and ``"eval"`` (items 0–499) for testing, disjoint."""


def read_msvamp(lang: str) -> list[dict[str, str]]:
    """Read MSVAMP rows: ``question``, ``english``, ``answer`` and ``equation``.

    ``question`` is ``m_query`` and ``english`` is ``query``.

    The English ``query`` is SVAMP's lower-cased, tokenised text; the English file itself has
    no ``query``, so its ``english`` is its ``m_query``.

    Example:
        >>> row = read_msvamp("German")[0]
        >>> row["answer"], row["english"][:21]
        ('8', 'julia played tag with')
    """
    path = _paths("msvamp", lang)[0]
    rows = []
    for number, row in enumerate(read_jsonl(path), start=1):
        missing = {"m_query", "response"} - row.keys()
        if missing:
            raise ValueError(f"{path}:{number}: missing field(s) {sorted(missing)}")
        question = str(row["m_query"]).strip()
        english = str(row.get("query", row["m_query"])).strip()
        answer = normalize_number(str(row["response"]))
        rows.append(
            {"question": question, "english": english, "answer": answer,
             "equation": str(row.get("equation", ""))}
        )  # fmt: skip
    return rows


def read_xcopa(lang: str, split: str) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """Read XCOPA items paired with their Google-MT English version from ``data-gmt``.

    Pairs are matched by ``idx``; their ``label`` and ``question`` must agree. The English
    side is None for languages without ``data-gmt`` files (Quechua).

    Raises:
        ValueError: If the two files are not aligned item by item.

    Example:
        >>> native, english = read_xcopa("it", "val")[0]
        >>> native["idx"] == english["idx"], english["premise"]
        (True, 'The man turned on the tap.')
    """
    native_path, gmt_path = _paths("xcopa", lang, split)
    native = read_jsonl(native_path)
    if not gmt_path.exists():
        return [(row, None) for row in native]
    english = read_jsonl(gmt_path)
    _check_same_length(native, english, native_path, gmt_path)
    for a, b in zip(native, english, strict=True):
        if (a["idx"], a["label"], a["question"]) != (b["idx"], b["label"], b["question"]):
            raise ValueError(f"{native_path} and {gmt_path} disagree at idx {a['idx']}")
    return list(zip(native, english, strict=True))


@functools.lru_cache(maxsize=8)
def _relation_votes(folder: Path, split: str) -> dict[int, str]:
    """Return the majority ``question`` per idx over every XCOPA language of a split."""
    votes: dict[int, dict[str, int]] = {}
    for path in sorted((folder / "data").glob(f"*/{split}.*.jsonl")):
        for row in read_jsonl(path):
            counts = votes.setdefault(int(row["idx"]), {})
            counts[row["question"]] = counts.get(row["question"], 0) + 1
    return {idx: max(counts, key=lambda k: counts[k]) for idx, counts in votes.items()}


def xcopa_relation_majority(split: str) -> dict[int, str]:
    """Return, per XCOPA idx, the relation (cause/effect) most languages give it.

    The released files disagree on the ``question`` field of some items (Thai says
    ``effect`` for every item; Turkish, Swahili, Indonesian and Italian differ on a few);
    the items are translations of the same COPA items, so the majority is the reliable value.

    Example:
        >>> xcopa_relation_majority("test")[0]
        'cause'
    """
    return dict(_relation_votes(dataset_dir("xcopa"), split))


def read_tatoeba(lang: str) -> tuple[list[str], list[str]]:
    """Read Tatoeba's ``(native, english)`` line-aligned sentences for one language.

    Example:
        >>> native, english = read_tatoeba("swh")
        >>> len(native), len(english)
        (390, 390)
    """
    native_path, english_path = _paths("tatoeba", lang)
    native, english = read_lines(native_path), read_lines(english_path)
    _check_same_length(native, english, native_path, english_path)
    return native, english


def _csv_unquote(line: str) -> str | None:
    """Undo CSV quoting (``"a ""b"" c"`` -> ``a "b" c``); None if the line is not CSV-quoted."""
    if len(line) >= 2 and line[0] == line[-1] == '"':
        inner = line[1:-1]
        if '""' in inner and '"' not in inner.replace('""', ""):
            return inner.replace('""', '"')
    return None


def read_flores(lang: str) -> tuple[list[str], int]:
    """Read one FLORES-200 devtest file, undoing the CSV quoting some lines carry.

    In several languages of this copy (ben, kor, tam, tel, deu, est, ...) a line holding
    quotation marks was written CSV-style: wrapped in ``"`` with inner quotes doubled (some
    Telugu lines twice over). Such lines are unquoted; others are returned as they are.

    Returns:
        The 1012 sentences and how many of them were unquoted.

    Example:
        >>> lines, n_unquoted = read_flores("est")
        >>> len(lines), n_unquoted, lines[0][:5]
        (1012, 17, '"Meil')
    """
    path = _paths("flores", lang)[0]
    lines, unquoted = [], 0
    for line in read_lines(path):
        original = line
        while (fixed := _csv_unquote(line)) is not None:  # some lines were quoted twice
            line = fixed
        unquoted += line != original
        lines.append(line)
    return lines, unquoted


__all__ = [
    "MSVAMP_SPLITS",
    "normalize_number",
    "read_flores",
    "read_jsonl",
    "read_lines",
    "read_mgsm",
    "read_mgsm_aligned",
    "read_mgsm_exemplars",
    "read_msvamp",
    "read_tatoeba",
    "read_xcopa",
    "xcopa_relation_majority",
]
