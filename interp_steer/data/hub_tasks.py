"""Tasks read from the Hugging Face hub: XNLI, multilingual MMLU and M3Exam.

No public copy of these sets exists outside the hub, so they are not in the shared data
folder. Loading is split in two: :func:`load_hub_rows` fetches raw rows with
``datasets.load_dataset`` (network or a filled hub cache), or reads a local copy of them
(:func:`hub_copy_path`: ``<data dir>/<task>/<config>/<split>.jsonl``, one row a line), and
the pure functions :func:`parse_xnli`, :func:`parse_mmlu` and :func:`parse_m3exam` turn rows
into :class:`~interp_steer.data.TaskItem` (testable on small fixtures).

An unreachable hub fails at once, in one line: with ``HF_HUB_OFFLINE=1`` only the hub
cache is read, and otherwise :func:`hub_reachable` (one connection, :data:`HUB_TIMEOUT_S`)
is asked before ``datasets`` would retry for half a minute.

Example:
    >>> rows = [{"premise": "Er schläft.", "hypothesis": "Er ist wach.", "label": 2}]
    >>> item = parse_xnli(rows, "de", "test")[0]
    >>> item.id, item.label, item.meta["hypothesis"]
    ('xnli-de-test-0', 2, 'Er ist wach.')
"""

import json
import os
import re
import socket
import threading
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import datasets

from interp_steer.data.items import TaskItem
from interp_steer.data.languages import ENGLISH, get_language
from interp_steer.data.sources import DATASETS, ENV_VAR, DataUnavailableError, data_dir

HUB_TIMEOUT_S = 1.0
"""Seconds :func:`hub_reachable` waits for a connection to the hub (or its proxy)."""

_OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
_TRUE = ("1", "ON", "YES", "TRUE")

XNLI_LANGUAGES = (
    "ar",
    "bg",
    "de",
    "el",
    "en",
    "es",
    "fr",
    "hi",
    "ru",
    "sw",
    "th",
    "tr",
    "ur",
    "vi",
    "zh",
)
"""Languages of XNLI (hub configs are these codes)."""

XNLI_LABELS = ("entailment", "neutral", "contradiction")
"""XNLI's label names, by label index."""

MMLU_CONFIGS = {
    "ar": "AR_XY", "bn": "BN_BD", "de": "DE_DE", "es": "ES_LA", "fr": "FR_FR", "hi": "HI_IN",
    "id": "ID_ID", "it": "IT_IT", "ja": "JA_JP", "ko": "KO_KR", "pt": "PT_BR", "sw": "SW_KE",
    "yo": "YO_NG", "zh": "ZH_CN",
}  # fmt: skip
"""Canonical code -> ``openai/MMMLU`` config; English is read from ``cais/mmlu`` (``all``)."""

M3EXAM_CONFIGS = {
    "af": "afrikaans", "zh": "chinese", "en": "english", "it": "italian", "jv": "javanese",
    "pt": "portuguese", "sw": "swahili", "th": "thai", "vi": "vietnamese",
}  # fmt: skip
"""Canonical code -> ``chiayewken/m3exam`` config."""

_ENGLISH_MMLU = ("cais/mmlu", "all")
_MARKER = re.compile(r"^\s*[(（]?\s*([0-9]{1,2}|[A-Za-z]|[ก-ฮ])\s*[).．、:：]\s*")
_SEQUENCES = ("123456789", "ABCDEFGHI", "abcdefghi", "กขคงจฉชซฌ")


def _field(row: Mapping[str, Any], key: str, where: str) -> Any:
    """Return ``row[key]`` or raise ValueError naming the missing field."""
    if key not in row:
        raise ValueError(f"{where}: missing field {key!r}; the row has {sorted(row)}")
    return row[key]


def parse_xnli(rows: Iterable[Mapping[str, Any]], lang: str, split: str) -> tuple[TaskItem, ...]:
    """Turn XNLI rows (``premise``, ``hypothesis``, ``label``) into task items.

    The question is the premise, the hypothesis goes to ``meta["hypothesis"]`` and the label
    names to ``meta["label_names"]``; ``choices`` stays empty (the labels are not texts in
    ``lang``). The answer is the label index (0 entailment, 1 neutral, 2 contradiction).

    Raises:
        ValueError: On a missing field or a label outside 0..2.

    Example:
        >>> parse_xnli([{"premise": "A", "hypothesis": "B", "label": 0}], "fr", "test")[0].answer
        '0'
    """
    code = get_language(lang).code
    items = []
    for i, row in enumerate(rows):
        where = f"xnli {code} {split} row {i}"
        label = _field(row, "label", where)
        if label not in (0, 1, 2):
            raise ValueError(f"{where}: expected label 0, 1 or 2, got {label!r}")
        meta = {"hypothesis": str(_field(row, "hypothesis", where)), "label_names": XNLI_LABELS}
        premise = str(_field(row, "premise", where))
        items.append(
            TaskItem(f"xnli-{code}-{split}-{i}", "xnli", code, premise, str(label), meta=meta)
        )
    return tuple(items)


def _letter_index(answer: Any, n_choices: int, where: str) -> int:
    """Read an answer given as a letter (``"B"``), a 0-based int or a ClassLabel index."""
    if isinstance(answer, int) and not isinstance(answer, bool):
        index = answer
    elif isinstance(answer, str) and len(answer.strip()) == 1 and answer.strip().isalpha():
        index = ord(answer.strip().upper()) - ord("A")
    else:
        raise ValueError(f"{where}: expected an answer letter A-D or an index, got {answer!r}")
    if not 0 <= index < n_choices:
        raise ValueError(f"{where}: answer {answer!r} is outside the {n_choices} choices")
    return index


def parse_mmlu(rows: Iterable[Mapping[str, Any]], lang: str, split: str) -> tuple[TaskItem, ...]:
    """Turn multilingual MMLU rows into task items (four choices, answer index).

    Accepts OpenAI's MMMLU layout (``Question``, ``A``-``D``, ``Answer`` letter, ``Subject``)
    and the ``cais/mmlu`` layout (``question``, ``choices`` list, ``answer`` index,
    ``subject``). The subject goes to ``meta["subject"]``.

    Raises:
        ValueError: On missing fields or an answer that is not one of the choices.

    Example:
        >>> row = {"Question": "2+2?", "A": "3", "B": "4", "C": "5", "D": "6", "Answer": "B",
        ...        "Subject": "math"}
        >>> item = parse_mmlu([row], "de", "test")[0]
        >>> item.choices, item.label, item.meta["subject"]
        (('3', '4', '5', '6'), 1, 'math')
    """
    code = get_language(lang).code
    items = []
    for i, row in enumerate(rows):
        where = f"mmlu {code} {split} row {i}"
        if "Question" in row:
            question = _field(row, "Question", where)
            choices = tuple(str(_field(row, letter, where)) for letter in "ABCD")
            answer, subject = _field(row, "Answer", where), row.get("Subject", "")
        else:
            question = _field(row, "question", where)
            choices = tuple(str(c) for c in _field(row, "choices", where))
            answer, subject = _field(row, "answer", where), row.get("subject", "")
        label = _letter_index(answer, len(choices), where)
        items.append(
            TaskItem(f"mmlu-{code}-{split}-{i}", "mmlu", code, str(question), str(label), choices,
                     meta={"subject": str(subject)})
        )  # fmt: skip
    return tuple(items)


def _strip_markers(options: list[str]) -> list[str]:
    """Drop option markers ("(1) ", "A. ", "ก. ") when the options carry one full sequence."""
    matches = [_MARKER.match(o) for o in options]
    if all(matches):
        markers = "".join(m.group(1) for m in matches if m)
        if any(seq.startswith(markers) for seq in _SEQUENCES):
            return [o[m.end() :].strip() for o, m in zip(options, matches, strict=True) if m]
    return [o.strip() for o in options]


def parse_m3exam(rows: Iterable[Mapping[str, Any]], lang: str, split: str) -> tuple[TaskItem, ...]:
    """Turn M3Exam rows (``question_text``, ``options``, ``answer_text``) into task items.

    Option markers (``"(1) "``, ``"A. "``, ``"ก. "``) are stripped when the options carry a
    full marker sequence; the raw options stay in ``meta["options"]``. A non-empty
    ``background`` (reading passage) is put before the question, separated by a newline,
    and kept in ``meta["background"]``. Rows flagged ``need_image`` are left out (the items
    are text-only), and ``meta["level"]``/``meta["subject"]`` are kept.

    Raises:
        ValueError: On missing fields or an answer that names no option.

    Example:
        >>> row = {"question_text": "1+1=?", "options": ["(1) 1", "(2) 2"], "answer_text": "2",
        ...        "background": ""}
        >>> item = parse_m3exam([row], "sw", "test")[0]
        >>> item.choices, item.answer
        (('1', '2'), '1')
    """
    code = get_language(lang).code
    items = []
    for i, row in enumerate(rows):
        where = f"m3exam {code} {split} row {i}"
        if str(row.get("need_image", "")).lower() in ("true", "yes", "1"):
            continue
        options = [str(o) for o in _field(row, "options", where)]
        choices = _strip_markers(options)
        answer = str(_field(row, "answer_text", where)).strip()
        markers = [m.group(1) if (m := _MARKER.match(o)) else None for o in options]
        in_sequence = [seq.index(answer) for seq in _SEQUENCES if answer in seq[: len(options)]]
        if answer in markers:
            label = markers.index(answer)
        elif len(answer) == 1 and in_sequence:
            label = in_sequence[0]
        else:
            raise ValueError(f"{where}: answer {answer!r} names none of the options {options}")
        background = str(row.get("background") or "").strip()
        question = str(_field(row, "question_text", where)).strip()
        meta = {
            "options": tuple(options), "background": background,
            "level": str(row.get("level", "")), "subject": str(row.get("subject", "")),
        }  # fmt: skip
        text = f"{background}\n{question}" if background else question
        items.append(
            TaskItem(
                f"m3exam-{code}-{split}-{i}",
                "m3exam",
                code,
                text,
                str(label),
                tuple(choices),
                meta=meta,
            )
        )
    return tuple(items)


def hub_config(name: str, lang: str) -> tuple[str, str]:
    """Return the ``(hub_id, config)`` that holds task ``name`` in language ``lang``.

    Raises:
        ValueError: If the task has no such language; the message lists the valid ones.

    Example:
        >>> hub_config("mmlu", "German"), hub_config("m3exam", "th")
        (('openai/MMMLU', 'DE_DE'), ('chiayewken/m3exam', 'thai'))
    """
    code = get_language(lang).code
    hub_id = DATASETS[name].hub_id if name in DATASETS else None
    if name == "xnli":
        configs: Mapping[str, str] = {c: c for c in XNLI_LANGUAGES}
    elif name == "mmlu":
        if code == ENGLISH:
            return _ENGLISH_MMLU
        configs = {**MMLU_CONFIGS, ENGLISH: _ENGLISH_MMLU[1]}
    elif name == "m3exam":
        configs = M3EXAM_CONFIGS
    else:
        raise ValueError(f"unknown hub task {name!r}; expected xnli, mmlu or m3exam")
    if code not in configs or hub_id is None:
        raise ValueError(
            f"{name} has no language {code!r}; expected one of {', '.join(sorted(configs))}"
        )
    return hub_id, configs[code]


def hub_offline() -> bool:
    """Whether the Hugging Face hub is switched off (``HF_HUB_OFFLINE=1`` or its aliases).

    Read at each call: ``HF_HUB_OFFLINE``, ``HF_DATASETS_OFFLINE``, ``TRANSFORMERS_OFFLINE``,
    and ``datasets``' own setting (taken from them when it was imported).

    >>> import os, unittest.mock
    >>> with unittest.mock.patch.dict(os.environ, {"HF_HUB_OFFLINE": "1"}):
    ...     hub_offline(), hub_reachable()
    (True, False)
    """
    from_env = any(os.environ.get(v, "").strip().upper() in _TRUE for v in _OFFLINE_VARS)
    return from_env or bool(getattr(datasets.config, "HF_HUB_OFFLINE", False))


def hub_reachable(timeout: float = HUB_TIMEOUT_S) -> bool:
    """Whether a connection to the Hugging Face hub opens within ``timeout`` seconds.

    Asks the hub's host (``HF_ENDPOINT``, default ``https://huggingface.co``) or the HTTPS
    proxy the environment names, with one connection and no retry, so a machine without
    network is told so at once (the hub client retries for about 25 s). False when
    :func:`hub_offline`.
    """
    if hub_offline():
        return False
    url = urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    proxy = urllib.request.getproxies().get(url.scheme)
    if proxy and not urllib.request.proxy_bypass(url.hostname or ""):
        url = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    if url.hostname is None:
        return False
    address = (url.hostname, url.port or (443 if url.scheme == "https" else 80))
    opened: list[bool] = []

    def connect() -> None:  # in a thread: a name lookup is not bound by the socket timeout
        try:
            socket.create_connection(address, timeout=timeout).close()
            opened.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(opened)


def hub_copy_path(name: str, config: str, split: str) -> Path:
    """Where a local copy of a hub task's rows is read from, before the hub is asked.

    ``<data dir>/<task>/<config>/<split>.jsonl``, one row (a JSON object with the hub's
    fields) a line; the data directory is :func:`~interp_steer.data.data_dir`
    (``INTERP_STEER_DATA``).

    >>> hub_copy_path("xnli", "de", "test").relative_to(data_dir()).as_posix()
    'xnli/de/test.jsonl'
    """
    return data_dir() / name / config / f"{split}.jsonl"


def _read_copy(path: Path) -> list[dict[str, Any]]:
    """The rows of a local copy; a line that is not a JSON object is an error naming it."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            row, problem = None, f"not JSON ({err.msg})"
        else:
            problem = "not a JSON object"
        if not isinstance(row, dict):
            raise ValueError(f"{path} line {number}: {problem}; expected one row object a line")
        rows.append(row)
    return rows


def check_hub_task(name: str, lang: str) -> None:
    """Fail at once, in one line, when a hub task's rows can be neither read nor fetched.

    Passes when a local copy of any split of ``lang`` is in the data directory
    (:func:`hub_copy_path`), when ``HF_HUB_OFFLINE`` is set (the hub cache is then read, with
    no network), or when the hub answers (:func:`hub_reachable`, about a second at most).
    The command line calls it before it imports torch, so a machine without network is
    told so in a second, not after loading a model.

    Raises:
        ValueError: ``name`` is not a hub task or has no language ``lang``.
        DataUnavailableError: Nothing local and the hub cannot be reached.

    >>> import os, unittest.mock
    >>> with unittest.mock.patch.dict(os.environ, {"HF_HUB_OFFLINE": "1"}):
    ...     check_hub_task("xnli", "de")  # offline: the cache decides later, no network now
    """
    code = get_language(lang).code
    hub_id, config = hub_config(name, code)
    copy = hub_copy_path(name, config, "test")
    if any(copy.parent.glob("*.jsonl")) or hub_offline():
        return
    if not hub_reachable():
        _unavailable(hub_id, config, "any", copy, "the hub cannot be reached from here")


def load_hub_rows(
    hub_id: str, config: str, split: str, *, copy: Path | None = None
) -> list[dict[str, Any]]:
    """Load raw rows of one hub dataset config and split with ``datasets.load_dataset``.

    Args:
        hub_id: The dataset's hub id.
        config: Its config.
        split: Its split.
        copy: A local copy of the rows (JSON lines), read instead of the hub when it
            exists and named in the error when the hub cannot be reached.

    Raises:
        DataUnavailableError: If the hub cannot be reached and nothing is cached, in one
            line that says how to proceed. With ``HF_HUB_OFFLINE=1`` only the hub cache is
            read; otherwise an unreachable hub (:func:`hub_reachable`) fails at once,
            before the hub client's retries.
    """
    if copy is not None and copy.is_file():
        return _read_copy(copy)
    offline = hub_offline()
    if not offline and not hub_reachable():
        _unavailable(hub_id, config, split, copy, "the hub cannot be reached from here")
    try:
        ds = datasets.load_dataset(hub_id, config, split=split)
    except Exception as err:  # the hub client raises many types; report them as one
        first = (str(err).strip().splitlines() or [""])[0]
        reason = f"{type(err).__name__}: {first}"
        if offline:
            reason = f"HF_HUB_OFFLINE is set and the hub cache does not hold it ({reason})"
        _unavailable(hub_id, config, split, copy, reason, err)
    return [dict(row) for row in ds]


def _unavailable(
    hub_id: str,
    config: str,
    split: str,
    copy: Path | None,
    reason: str,
    cause: BaseException | None = None,
) -> NoReturn:
    """Raise the one-line :class:`DataUnavailableError` of a hub set that cannot be loaded."""
    cache = "" if hub_offline() else ", or set HF_HUB_OFFLINE=1 if the hub cache holds it"
    local = (
        f", or put a copy of its rows (one JSON object a line) at {copy}"
        if copy is not None
        else ""
    )
    raise DataUnavailableError(
        f"could not load {hub_id} (config {config!r}, split {split!r}) from the Hugging Face "
        f"hub: {reason}. This set is not in the shared data folder: it needs network access"
        f"{cache}{local} (the data directory is set by {ENV_VAR}). The local tasks (mgsm, "
        "msvamp, xcopa) work offline."
    ) from cause


_PARSERS = {"xnli": parse_xnli, "mmlu": parse_mmlu, "m3exam": parse_m3exam}


def load_hub_task(name: str, lang: str, split: str) -> tuple[list[TaskItem], list[TaskItem]]:
    """Load items (and exemplars: M3Exam's dev items for its test split) of a hub task.

    Rows are read from a local copy (:func:`hub_copy_path`) where there is one, else from
    the hub (:func:`load_hub_rows`).

    Example:
        >>> load_hub_task("m3exam", "de", "test")
        Traceback (most recent call last):
        ...
        ValueError: m3exam has no language 'de'; expected one of af, en, it, jv, pt, sw, th, vi, zh
    """
    code = get_language(lang).code
    hub_id, config = hub_config(name, code)
    rows = load_hub_rows(hub_id, config, split, copy=hub_copy_path(name, config, split))
    items = list(_PARSERS[name](rows, code, split))
    exemplars: list[TaskItem] = []
    if name == "m3exam" and split == "test":
        dev = load_hub_rows(hub_id, config, "dev", copy=hub_copy_path(name, config, "dev"))
        exemplars = list(parse_m3exam(dev, code, "dev"))
    return items, exemplars


__all__ = [
    "HUB_TIMEOUT_S",
    "M3EXAM_CONFIGS",
    "MMLU_CONFIGS",
    "XNLI_LABELS",
    "XNLI_LANGUAGES",
    "check_hub_task",
    "hub_config",
    "hub_copy_path",
    "hub_offline",
    "hub_reachable",
    "load_hub_rows",
    "load_hub_task",
    "parse_m3exam",
    "parse_mmlu",
    "parse_xnli",
]
