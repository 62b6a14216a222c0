"""Task items: the one schema every evaluation task is read into.

A :class:`TaskItem` is one question in the language of its prompt, with its gold answer
(a number for :data:`MATH_TASKS`, a choice index for :data:`CHOICE_TASKS`); a
:class:`TaskSet` holds a task's test items and its few-shot exemplars.

Example:
    >>> item = TaskItem("x-0", "xcopa", "it", "Piove.", "1", ("Sole.", "Ombrello."))
    >>> item.label, item.lang
    (1, 'it')
"""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from interp_steer.constants import CHOICE_TASKS, TASKS, check_count
from interp_steer.data.languages import canonical


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
            >>> from interp_steer.data import load_task
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
        >>> from interp_steer.data import load_task
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
            ValueError: If ``n`` is not a positive int.

        Example:
            >>> from interp_steer.data import load_task
            >>> len(load_task("msvamp", "th").head(3))
            3
        """
        return replace(self, items=self.items[: check_count("n", n)])


__all__ = [
    "TaskItem",
    "TaskSet",
]
