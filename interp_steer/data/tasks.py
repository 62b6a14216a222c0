"""Evaluation tasks in one item schema: math (MGSM, MSVAMP) and multiple choice (XCOPA, ...).

Every task is loaded as a :class:`TaskSet` of :class:`TaskItem`. Math items carry the gold
number as a string (``"18"``); choice items carry the choice texts and the index of the
correct one as a string (``"1"``), readable as an int through :attr:`TaskItem.label`.
MGSM, MSVAMP and XCOPA are read from the data directory; XNLI, MMLU and M3Exam come from
the Hugging Face hub (see :mod:`interp_steer.data.hub_tasks`).

Example:
    >>> mgsm = load_task("mgsm", "de", n=2)
    >>> mgsm.items[0].id, mgsm.items[0].answer, len(mgsm.exemplars)
    ('mgsm-de-0', '18', 8)
    >>> load_task("xcopa", "it", n=1).items[0].label
    0
"""

from interp_steer.constants import TASKS, check_count
from interp_steer.data.hub_tasks import load_hub_task
from interp_steer.data.items import TaskItem, TaskSet
from interp_steer.data.languages import ENGLISH, canonical
from interp_steer.data.readers import (
    MSVAMP_SPLITS,
    read_mgsm_aligned,
    read_mgsm_exemplars,
    read_msvamp,
    read_xcopa,
    xcopa_relation_majority,
)
from interp_steer.data.sources import DATASETS


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
      and ``"eval"`` items 0–499 (see :data:`~interp_steer.data.readers.MSVAMP_SPLITS`; ids keep
      the item's index); ``english`` is the English ``query``; answers from ``response``
      (``"8.0"`` becomes ``"8"``).
    * ``"xcopa"``: 500 test / 100 val items with two choices; ``english`` and
      ``english_choices`` from ``data-gmt`` (None / empty for Quechua);
      ``meta["relation"]`` is the file's cause/effect, ``meta["relation_majority"]`` the
      value most languages agree on (they differ for Thai, see the docs).
    * ``"xnli"``, ``"mmlu"``, ``"m3exam"``: read from a local copy of their rows in the data
      directory (:func:`~interp_steer.data.hub_tasks.hub_copy_path`) or from the Hugging
      Face hub; without either (no network, or ``HF_HUB_OFFLINE=1`` and nothing in the hub
      cache) they raise :class:`~interp_steer.data.DataUnavailableError` at once, in one
      line.

    Args:
        name: One of :data:`TASKS`.
        lang: Language of the prompts, any spelling.
        split: Dataset split.
        n: Keep the first ``n`` items; all of them if ``n`` exceeds what there is.

    Returns:
        The task set.

    Raises:
        ValueError: On an unknown task, language or split (the message lists valid ones),
            misaligned files, or ``n`` not a positive int.
        FileNotFoundError: If a local dataset folder is missing.
        DataUnavailableError: A hub task with no local copy and no reachable hub.

    Example:
        >>> [len(load_task(t, "sw")) for t in ("mgsm", "msvamp", "xcopa")]
        [250, 1000, 500]
        >>> load_task("msvamp", "German").items[0].answer
        '8'
    """
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; expected one of {', '.join(TASKS)}")
    if n is not None:
        n = check_count("n", n)
    src = DATASETS[name]
    if split not in src.splits:
        raise ValueError(f"{name} has no split {split!r}; expected one of {', '.join(src.splits)}")
    code = canonical(lang)
    if name in _LOCAL:
        items, exemplars = _LOCAL[name](code, split)
    else:
        items, exemplars = load_hub_task(name, code, split)
    meta = {"license": src.license, "source": src.url or src.hub_id, "n_available": len(items)}
    task_set = TaskSet(name, code, split, tuple(items), tuple(exemplars), meta)
    return task_set if n is None else task_set.head(n)


def item_key(item: TaskItem) -> str:
    """The item's id without its language: one key for the same item in every language.

    :attr:`ParallelCorpus.ids <interp_steer.data.ParallelCorpus>` uses the same keys, so
    the items a vector was fitted on can be matched with the items it is evaluated on,
    across languages (the English versions of MSVAMP items are the English side of their
    pairs).

    >>> item_key(load_task("msvamp", "de", split="eval").items[3])
    'msvamp-3'
    >>> item_key(load_task("xcopa", "sw", split="val").items[0])
    'xcopa-val-0'
    """
    prefix = f"{item.task}-{item.lang}-"
    if item.id.startswith(prefix):
        return f"{item.task}-{item.id[len(prefix) :]}"
    return item.id


__all__ = [
    "item_key",
    "load_task",
]
