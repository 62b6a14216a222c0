"""Evaluation tasks in one item schema: math (MGSM, MSVAMP) and multiple choice (XCOPA, ...).

Every task is loaded as a :class:`TaskSet` of :class:`TaskItem`. Math items carry the gold
number as a string (``"18"``); choice items carry the choice texts and the index of the
correct one as a string (``"1"``), readable as an int through :attr:`TaskItem.label`.
MGSM, MSVAMP and XCOPA are read from the data directory; XNLI, MMLU and M3Exam come from
the Hugging Face hub (see :mod:`interp_steer.hub_tasks`).

Example:
    >>> mgsm = load_task("mgsm", "de", n=2)
    >>> mgsm.items[0].id, mgsm.items[0].answer, len(mgsm.exemplars)
    ('mgsm-de-0', '18', 8)
    >>> load_task("xcopa", "it", n=1).items[0].label
    0
"""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from interp_steer.languages import ENGLISH, canonical
from interp_steer.readers import (
    MSVAMP_SPLITS,
    read_mgsm_aligned,
    read_mgsm_exemplars,
    read_msvamp,
    read_xcopa,
    xcopa_relation_majority,
)
from interp_steer.sources import DATASETS

MATH_TASKS = ("mgsm", "msvamp")
"""Tasks whose gold answer is a number."""

CHOICE_TASKS = ("xcopa", "xnli", "mmlu", "m3exam")
"""Tasks whose gold answer is the index of the correct choice."""

TASKS = MATH_TASKS + CHOICE_TASKS
"""Every task :func:`load_task` knows."""


@dataclass(frozen=True)
class TaskItem:
    """One evaluation item, in the language of its prompt.

    Attributes:
        id: Unique id, e.g. ``"mgsm-de-17"``.
        task: One of :data:`TASKS`.
        lang: Canonical code of the prompt's language (any spelling is normalised).
        question: The prompt text in ``lang`` (math problem, XCOPA premise, XNLI premise,
            MMLU question).
        answer: Gold: a numeric string for math (``"18"``); for choice tasks the index of
            the correct choice as a string (``"1"``).
        choices: Choice texts in ``lang`` (empty for math and XNLI).
        english: English version of ``question`` (human translation for MGSM/MSVAMP,
            Google MT for XCOPA), or None.
        english_choices: English versions of the choices (XCOPA ``data-gmt``).
        meta: Task-specific extras, e.g. ``{"relation": "cause"}`` for XCOPA,
            ``{"hypothesis": ...}`` for XNLI, ``{"solution": ...}`` for MGSM exemplars.

    Raises:
        ValueError: On an unknown task, an empty question or answer, a choice answer that is
            not a valid index, or English choices that do not match the choices.

    Example:
        >>> TaskItem("x-1", "xcopa", "Italian", "Piove.", "0", ("a", "b")).lang
        'it'
    """

    id: str
    task: str
    lang: str
    question: str
    answer: str
    choices: tuple[str, ...] = ()
    english: str | None = None
    english_choices: tuple[str, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Check the item and normalise its language code."""
        if self.task not in TASKS:
            raise ValueError(f"{self.id}: unknown task {self.task!r}; expected one of {TASKS}")
        object.__setattr__(self, "lang", canonical(self.lang))
        if not self.question.strip() or not self.answer.strip():
            raise ValueError(f"{self.id}: question and answer must be non-empty")
        if self.task in CHOICE_TASKS:
            if not self.answer.isdigit():
                raise ValueError(
                    f"{self.id}: expected a choice index as answer, got {self.answer!r}"
                )
            if self.choices and int(self.answer) >= len(self.choices):
                raise ValueError(
                    f"{self.id}: answer {self.answer} is no index into {len(self.choices)} choices"
                )
        if self.english_choices and len(self.english_choices) != len(self.choices):
            raise ValueError(
                f"{self.id}: {len(self.english_choices)} English choices for "
                f"{len(self.choices)} choices"
            )

    @property
    def label(self) -> int | None:
        """The gold choice index for choice tasks; None for math tasks.

        Example:
            >>> load_task("mgsm", "fr", n=1).items[0].label is None
            True
        """
        return int(self.answer) if self.task in CHOICE_TASKS else None


@dataclass(frozen=True)
class TaskSet:
    """The items of one task, language and split, plus few-shot exemplars.

    Attributes:
        name: Task name (``"mgsm"``).
        lang: Canonical language code.
        split: Split the items come from.
        items: The evaluation items, in dataset order.
        exemplars: Items for k-shot prompts (MGSM's 8 translated exemplars; XCOPA's val
            items for the test split; M3Exam's dev items); empty where there are none.
        meta: Provenance: ``license``, ``source``, ``n_available``.

    Example:
        >>> ts = load_task("xcopa", "zh", split="val")
        >>> len(ts), len(ts.head(5)), ts.exemplars
        (100, 5, ())
    """

    name: str
    lang: str
    split: str
    items: tuple[TaskItem, ...]
    exemplars: tuple[TaskItem, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        """Return the number of items."""
        return len(self.items)

    def __iter__(self) -> Iterator[TaskItem]:
        """Iterate over the items (not the exemplars)."""
        return iter(self.items)

    def head(self, n: int) -> "TaskSet":
        """Return the first ``n`` items (all of them if ``n`` is larger); exemplars are kept.

        Raises:
            ValueError: If ``n`` is not positive.

        Example:
            >>> len(load_task("msvamp", "th").head(3))
            3
        """
        if n <= 0:
            raise ValueError(f"n must be a positive number of items, got {n}")
        return replace(self, items=self.items[:n])


def _mgsm(code: str, split: str) -> tuple[list[TaskItem], list[TaskItem]]:
    """Build MGSM items (English = mgsm_en line i) and the 8 translated exemplars."""
    items = [
        TaskItem(f"mgsm-{code}-{i}", "mgsm", code, question, answer, english=en_question)
        for i, (question, en_question, answer) in enumerate(read_mgsm_aligned(code))
    ]
    exemplars = []
    en_exemplars = read_mgsm_exemplars(ENGLISH)
    for k, (ex, en_ex) in enumerate(zip(read_mgsm_exemplars(code), en_exemplars, strict=True)):
        meta = {
            key: ex[key]
            for key in ("solution", "solution_raw", "question_prefix", "answer_prefix", "equation")
        }
        meta["english_solution"] = en_ex["solution"]
        exemplars.append(
            TaskItem(
                f"mgsm-{code}-exemplar-{k}", "mgsm", code, ex["question"], ex["answer"],
                english=en_ex["question"], meta=meta,
            )
        )  # fmt: skip
    return items, exemplars


def _msvamp(code: str, split: str) -> tuple[list[TaskItem], list[TaskItem]]:
    """Build MSVAMP items; MSVAMP has no exemplars."""
    items = [
        TaskItem(
            f"msvamp-{code}-{i}", "msvamp", code, row["question"], row["answer"],
            english=row["english"], meta={"equation": row["equation"]},
        )
        for i, row in enumerate(read_msvamp(code))
    ]  # fmt: skip
    keep = MSVAMP_SPLITS[split]
    return items[keep.start : keep.stop], []


def _xcopa_items(code: str, split: str) -> list[TaskItem]:
    """Build XCOPA items of one split with their Google-MT English (None for Quechua)."""
    majority = xcopa_relation_majority(split)
    items = []
    for native, english in read_xcopa(code, split):
        idx = int(native["idx"])
        meta = {
            "relation": native["question"],
            "relation_majority": majority[idx],
            "idx": idx,
            "changed": bool(native.get("changed", False)),
        }
        items.append(
            TaskItem(
                f"xcopa-{code}-{split}-{idx}", "xcopa", code, native["premise"].strip(),
                str(native["label"]), (native["choice1"].strip(), native["choice2"].strip()),
                None if english is None else english["premise"].strip(),
                () if english is None else (english["choice1"].strip(), english["choice2"].strip()),
                meta,
            )
        )  # fmt: skip
    return items


def _xcopa(code: str, split: str) -> tuple[list[TaskItem], list[TaskItem]]:
    """Build XCOPA items; the val items are the exemplars of the test split."""
    return _xcopa_items(code, split), (_xcopa_items(code, "val") if split == "test" else [])


_LOCAL = {"mgsm": _mgsm, "msvamp": _msvamp, "xcopa": _xcopa}


def load_task(name: str, lang: str, *, split: str = "test", n: int | None = None) -> TaskSet:
    """Load one task for one language as a :class:`TaskSet`.

    * ``"mgsm"``: 250 problems per language (split ``"test"``); gold numbers without
      thousands commas; ``english`` is ``mgsm_en.tsv`` line i; exemplars: the 8 translated
      few-shot exemplars (``answer`` the number; ``meta["solution"]`` the full worked
      solution; question and solution without their ``Frage:`` /
      ``Schritt-für-Schritt-Antwort:`` prefixes, which are in ``meta["question_prefix"]``
      and ``meta["answer_prefix"]``; ``meta["solution_raw"]`` as released).
    * ``"msvamp"``: 1000 problems (``"test"``, as released); ``"train"`` is items 500–999
      and ``"eval"`` items 0–499 (see :data:`~interp_steer.readers.MSVAMP_SPLITS`; ids keep
      the item's index); ``english`` is the English ``query``; answers from ``response``
      (``"8.0"`` becomes ``"8"``).
    * ``"xcopa"``: 500 test / 100 val items with two choices; ``english`` and
      ``english_choices`` from ``data-gmt`` (None / empty for Quechua);
      ``meta["relation"]`` is the file's cause/effect, ``meta["relation_majority"]`` the
      value most languages agree on (they differ for Thai, see the docs).
    * ``"xnli"``, ``"mmlu"``, ``"m3exam"``: read from the Hugging Face hub; they need network
      access or a filled hub cache and raise :class:`~interp_steer.sources.DataUnavailableError`
      otherwise.

    Args:
        name: One of :data:`TASKS`.
        lang: Language of the prompts, any spelling.
        split: Dataset split.
        n: Keep the first ``n`` items; all of them if ``n`` exceeds what there is.

    Returns:
        The task set.

    Raises:
        ValueError: On an unknown task, language or split (the message lists valid ones),
            misaligned files, or ``n <= 0``.
        FileNotFoundError: If a local dataset folder is missing.

    Example:
        >>> [len(load_task(t, "sw")) for t in ("mgsm", "msvamp", "xcopa")]
        [250, 1000, 500]
        >>> load_task("msvamp", "German").items[0].answer
        '8'
    """
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; expected one of {', '.join(TASKS)}")
    if n is not None and n <= 0:
        raise ValueError(f"n must be a positive number of items or None, got {n}")
    src = DATASETS[name]
    if split not in src.splits:
        raise ValueError(f"{name} has no split {split!r}; expected one of {', '.join(src.splits)}")
    code = canonical(lang)
    if name in _LOCAL:
        items, exemplars = _LOCAL[name](code, split)
    else:
        from interp_steer.hub_tasks import load_hub_task

        items, exemplars = load_hub_task(name, code, split)
    meta = {"license": src.license, "source": src.url or src.hub_id, "n_available": len(items)}
    task_set = TaskSet(name, code, split, tuple(items), tuple(exemplars), meta)
    return task_set if n is None else task_set.head(n)


__all__ = ["CHOICE_TASKS", "MATH_TASKS", "TASKS", "TaskItem", "TaskSet", "load_task"]
