"""Parallel corpora: English texts paired with their translations, for fitting steering vectors.

Naming convention. Steering moves activations *from* the language a prompt is written in
*to* English. So ``source_lang`` is the non-English language (the language of the prompts)
and ``target_lang`` is English. The non-English texts sit in the ``target`` column, named
after the datasets' "target-language translation" (MSVAMP's ``m_query``): ``english[i]`` and
``target[i]`` say the same thing, and ``target[i]`` is written in ``source_lang``.

Where the files come from (the data-directory setting, the registry, downloads) lives in
:mod:`interp_steer.data.sources` and is re-exported here.

Example:
    >>> corpus = load_parallel("mgsm", "de", n=3)
    >>> len(corpus), corpus.source_lang, corpus.target_lang
    (3, 'de', 'en')
    >>> corpus.english[0][:12], corpus.target[0][:12]
    ('Janet’s duck', 'Janets Enten')
"""

import csv
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import datasets

from interp_steer.constants import LOCAL_DATASETS, check_count
from interp_steer.data.languages import ENGLISH, canonical
from interp_steer.data.readers import (
    MSVAMP_SPLITS,
    read_flores,
    read_jsonl,
    read_mgsm_aligned,
    read_msvamp,
    read_tatoeba,
    read_xcopa,
)
from interp_steer.data.sources import DATASETS, available_languages, dataset_dir, dataset_files


@dataclass(frozen=True)
class ParallelCorpus:
    """English texts and their translations in one other language, aligned by index.

    Attributes:
        english: English texts.
        target: The same texts in ``source_lang`` (the language the prompts are in).
        source_lang: Canonical code of the non-English language; any spelling is accepted
            and normalised (``"deu"`` becomes ``"de"``).
        target_lang: The language steering moves towards: English (``"en"``).
        name: Short name, e.g. ``"mgsm-de"``.
        meta: Provenance: ``dataset``, ``split``, ``license``, ``path`` and more.
        ids: For each pair, the item it comes from, or ``()`` when unknown. Where a dataset
            is parallel across languages the id leaves the language out (``"msvamp-512"``
            is MSVAMP item 512 in every language; an XCOPA item's three pairs share its
            id), so a vector's fit items can be compared with the items it is evaluated on
            (see :func:`~interp_steer.data.tasks.item_key`).

    Raises:
        ValueError: If the sides differ in length, are empty, or hold an empty text (the
            message names the index), if both languages are the same, or if ``ids`` is
            given with another length.

    Example:
        >>> ParallelCorpus(("Hello.", "Thanks."), ("Hallo.", "Danke."), "German").source_lang
        'de'
        >>> ParallelCorpus(("Hello.", " "), ("Hallo.", "Danke."), "de")
        Traceback (most recent call last):
        ...
        ValueError: english[1] is empty or whitespace-only
    """

    english: tuple[str, ...]
    target: tuple[str, ...]
    source_lang: str
    target_lang: str = ENGLISH
    name: str = "parallel"
    meta: Mapping[str, Any] = field(default_factory=dict)
    ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """Validate the pairs and normalise the language codes."""
        object.__setattr__(self, "ids", tuple(self.ids))
        if self.ids and (
            len(self.ids) != len(self.english) or not all(isinstance(i, str) for i in self.ids)
        ):
            raise ValueError(
                f"ids must hold one str per pair ({len(self.english)}), got {len(self.ids)}"
            )
        for side in ("english", "target"):
            texts = getattr(self, side)
            if not isinstance(texts, tuple):
                raise TypeError(f"{side} must be a tuple of str, got {type(texts).__name__}")
            for i, text in enumerate(texts):
                if not isinstance(text, str):
                    raise TypeError(f"{side}[{i}] must be str, got {type(text).__name__}")
                if not text.strip():
                    raise ValueError(f"{side}[{i}] is empty or whitespace-only")
        if len(self.english) != len(self.target):
            raise ValueError(
                f"english has {len(self.english)} texts but target has {len(self.target)}; "
                "they must be aligned one to one"
            )
        if not self.english:
            raise ValueError("a parallel corpus needs at least one pair, got none")
        object.__setattr__(self, "source_lang", canonical(self.source_lang))
        object.__setattr__(self, "target_lang", canonical(self.target_lang))
        if self.source_lang == self.target_lang:
            raise ValueError(f"source_lang and target_lang are both {self.source_lang!r}")

    def __len__(self) -> int:
        """Return the number of pairs."""
        return len(self.english)

    def _subset(self, indices: list[int], **meta: Any) -> "ParallelCorpus":
        """Return the pairs at ``indices`` (in that order) with extra meta entries."""
        return replace(
            self,
            english=tuple(self.english[i] for i in indices),
            target=tuple(self.target[i] for i in indices),
            meta={**self.meta, **meta},
            ids=tuple(self.ids[i] for i in indices) if self.ids else (),
        )

    def head(self, n: int) -> "ParallelCorpus":
        """Return the first ``n`` pairs; all of them if ``n`` is larger than the corpus.

        Raises:
            ValueError: If ``n`` is not a positive int.

        Example:
            >>> len(load_parallel("flores", "fr").head(10))
            10
        """
        n = check_count("n", n)
        return self if n >= len(self) else self._subset(list(range(n)))

    def split(
        self, test_size: float | int = 0.2, seed: int = 0
    ) -> tuple["ParallelCorpus", "ParallelCorpus"]:
        """Split into ``(train, test)`` deterministically: same seed, same split.

        Pairs are drawn with ``random.Random(seed)``; each part keeps the corpus order.

        Args:
            test_size: Fraction of pairs in ``(0, 1)`` or a count ``>= 1`` for the test part;
                a fraction is rounded to the nearest count.
            seed: Seed of the shuffle.

        Returns:
            The train and test parts; both non-empty.

        Raises:
            ValueError: If either part would be empty.

        Example:
            >>> train, test = load_parallel("mgsm", "fr").split(0.2, seed=1)
            >>> len(train), len(test)
            (200, 50)
        """
        n = len(self)
        if isinstance(test_size, bool) or test_size <= 0:
            raise ValueError(
                f"test_size must be a fraction in (0, 1) or a count >= 1, got {test_size}"
            )
        if isinstance(test_size, float):
            if test_size >= 1:
                raise ValueError(f"a fractional test_size must be below 1, got {test_size}")
            k = round(test_size * n)
        else:
            k = test_size
        if not 1 <= k <= n - 1:
            raise ValueError(
                f"test_size={test_size} puts {k} of {n} pairs in the test part; "
                "both parts must be non-empty"
            )
        order = list(range(n))
        random.Random(seed).shuffle(order)
        test_idx, train_idx = sorted(order[:k]), sorted(order[k:])
        return (
            self._subset(train_idx, part="train", seed=seed),
            self._subset(test_idx, part="test", seed=seed),
        )

    def to_dataset(self) -> datasets.Dataset:
        """Return a Hugging Face ``Dataset`` with columns ``english`` and ``target``.

        Example:
            >>> load_parallel("tatoeba", "deu", n=5).to_dataset().column_names
            ['english', 'target']
        """
        return datasets.Dataset.from_dict(
            {"english": list(self.english), "target": list(self.target)}
        )

    @classmethod
    def from_dataset(
        cls,
        ds: datasets.Dataset,
        *,
        source_lang: str,
        target_lang: str = ENGLISH,
        name: str = "parallel",
        english_col: str = "english",
        target_col: str = "target",
        meta: Mapping[str, Any] | None = None,
    ) -> "ParallelCorpus":
        """Build a corpus from a Hugging Face ``Dataset`` (inverse of :meth:`to_dataset`).

        Raises:
            ValueError: If a column is missing (the message names it) or a text is invalid.

        Example:
            >>> c = load_parallel("mgsm", "ja", n=4)
            >>> ParallelCorpus.from_dataset(c.to_dataset(), source_lang="ja").target == c.target
            True
        """
        missing = [c for c in (english_col, target_col) if c not in ds.column_names]
        if missing:
            raise ValueError(f"dataset lacks column(s) {missing}; it has {ds.column_names}")
        return cls(
            tuple(ds[english_col]), tuple(ds[target_col]), source_lang, target_lang, name,
            dict(meta or {}),
        )  # fmt: skip

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        *,
        english_col: str,
        target_col: str,
        source_lang: str,
        target_lang: str = ENGLISH,
        name: str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> "ParallelCorpus":
        r"""Read pairs from a JSONL, CSV or TSV file (CSV/TSV with a header row).

        Args:
            path: File ending in ``.jsonl``, ``.csv`` or ``.tsv``.
            english_col: Column (or JSON key) of the English texts.
            target_col: Column of the texts in ``source_lang``.
            source_lang: Language of ``target_col``, any spelling.
            target_lang: Language of ``english_col`` (English).
            name: Corpus name; default: the file stem.
            meta: Extra provenance, merged into ``meta``.

        Raises:
            ValueError: On an unsupported extension, missing columns (named), a row without
                a value, or an invalid text.

        Example:
            >>> import tempfile, pathlib
            >>> p = pathlib.Path(tempfile.mkdtemp()) / "pairs.tsv"
            >>> _ = p.write_text("en\tde\nHello.\tHallo.\n", encoding="utf-8")
            >>> c = ParallelCorpus.from_file(p, english_col="en", target_col="de", source_lang="de")
            >>> c.target, c.name
            (('Hallo.',), 'pairs')
        """
        path = Path(path)
        suffix = path.suffix.lower()
        if path.is_dir():
            raise ValueError(f"{path} is a folder; expected a .jsonl, .csv or .tsv file")
        if suffix == ".jsonl":
            rows = read_jsonl(path)
            columns = sorted({key for row in rows for key in row})
        elif suffix in (".csv", ".tsv"):
            with path.open(encoding="utf-8", newline="") as handle:
                reader = csv.DictReader(handle, delimiter="," if suffix == ".csv" else "\t")
                rows = list(reader)
                columns = list(reader.fieldnames or [])
        else:
            raise ValueError(f"{path}: expected a .jsonl, .csv or .tsv file, got {suffix!r}")
        missing = [c for c in (english_col, target_col) if c not in columns]
        if missing:
            raise ValueError(f"{path} lacks column(s) {missing}; it has {columns}")
        pairs = []
        for i, row in enumerate(rows):
            values = (row.get(english_col), row.get(target_col))
            if not all(isinstance(v, str) for v in values):
                raise ValueError(f"{path}: row {i} has no text in {english_col!r}/{target_col!r}")
            pairs.append(values)
        english = tuple(str(e) for e, _ in pairs)
        target = tuple(str(t) for _, t in pairs)
        info = {"dataset": "file", "path": str(path), **(meta or {})}
        return cls(english, target, source_lang, target_lang, name or path.stem, info)


Pairs = tuple[list[str], list[str], list[str], dict[str, Any]]  # english, target, ids, meta


def _pairs(name: str, lang: str, split: str) -> Pairs:
    """Read all ``(english, target)`` pairs of a local dataset, with their ids and provenance."""
    folder = dataset_dir(name)
    if name == "mgsm":
        rows_m = read_mgsm_aligned(lang)
        ids = [f"mgsm-{i}" for i in range(len(rows_m))]
        return [r[1] for r in rows_m], [r[0] for r in rows_m], ids, {}
    if name == "msvamp":
        keep = MSVAMP_SPLITS[split]
        rows = read_msvamp(lang)[keep.start : keep.stop]
        ids = [f"msvamp-{keep.start + i}" for i in range(len(rows))]
        return [r["english"] for r in rows], [r["question"] for r in rows], ids, {}
    if name == "tatoeba":  # each language's file holds other sentences: ids keep the language
        native_t, english_t = read_tatoeba(lang)
        return english_t, native_t, [f"tatoeba-{lang}-{i}" for i in range(len(native_t))], {}
    if name == "flores":
        (native_f, n_fixed), (english_f, _) = read_flores(lang), read_flores(ENGLISH)
        if len(native_f) != len(english_f):
            raise ValueError(
                f"flores {lang} has {len(native_f)} lines but English {len(english_f)}"
            )
        ids = [f"flores-{i}" for i in range(len(native_f))]
        return english_f, native_f, ids, {"csv_unquoted": n_fixed}
    pairs = read_xcopa(lang, split)
    if pairs[0][1] is None:
        with_english = [
            c for c in available_languages("xcopa") if (folder / "data-gmt" / c).is_dir()
        ]
        raise ValueError(
            f"xcopa has no English version (data-gmt) for {lang}; "
            f"languages with one: {', '.join(with_english)}"
        )
    en_texts, native_texts, ids = [], [], []
    for native_row, english_row in pairs:
        assert english_row is not None
        for key in ("premise", "choice1", "choice2"):
            en_texts.append(str(english_row[key]).strip())
            native_texts.append(str(native_row[key]).strip())
            ids.append(f"xcopa-{split}-{int(native_row['idx'])}")
    return en_texts, native_texts, ids, {"pairs_per_item": ("premise", "choice1", "choice2")}


def default_split(name: str) -> str:
    """The split :func:`load_parallel` reads when none is given: never one that is scored.

    ``"train"`` for MSVAMP (items 500–999; ``"eval"``, items 0–499, is for testing),
    ``"val"`` for XCOPA, the only split elsewhere.

    >>> default_split("msvamp"), default_split("xcopa"), default_split("flores")
    ('train', 'val', 'devtest')
    """
    if name not in LOCAL_DATASETS:
        raise ValueError(
            f"unknown parallel dataset {name!r}; expected one of {', '.join(LOCAL_DATASETS)}"
        )
    return {"msvamp": "train", "xcopa": "val"}.get(name, DATASETS[name].splits[0])


def load_parallel(
    name: str, lang: str, *, n: int | None = None, split: str | None = None
) -> ParallelCorpus:
    """Load English/translation pairs of one language from a local dataset.

    Pairs, in file order:

    * ``"msvamp"``: English ``query`` (SVAMP's lower-cased, tokenised text) with ``m_query``;
      split ``"train"`` (items 500–999) by default, which keeps fitting pairs apart from the
      ``"eval"`` items (0–499) a vector is tested on; ``"test"`` is all 1000 items.
    * ``"mgsm"``: ``mgsm_<lang>.tsv`` question i with ``mgsm_en.tsv`` question i (gold
      answers must agree line by line).
    * ``"tatoeba"``: the line-aligned Tatoeba sentences.
    * ``"flores"``: devtest line i with ``eng_Latn`` line i (CSV quoting undone).
    * ``"xcopa"``: each item's premise, choice1 and choice2 (three pairs per item) with the
      Google-MT English of the same idx; split ``"val"`` by default, to keep fitting data
      apart from the test items.

    Args:
        name: ``"msvamp"``, ``"mgsm"``, ``"tatoeba"``, ``"flores"`` or ``"xcopa"``.
        lang: The non-English language, any spelling.
        n: Keep the first ``n`` pairs; all of them if ``n`` exceeds what there is
            (``meta["n_available"]`` says how many there were).
        split: Dataset split; None means :func:`default_split` (MSVAMP: ``"train"``,
            XCOPA: ``"val"``).

    Returns:
        The corpus, with ``source_lang`` = the language and ``target_lang`` = ``"en"``,
        and the id of each pair's item in ``ids``.

    Raises:
        ValueError: On an unknown dataset, language or split (the message lists valid
            ones), English as ``lang``, misaligned files, or ``n`` not a positive int.
        FileNotFoundError: If the dataset folder is missing (see :func:`data_dir`).

    Example:
        >>> [len(load_parallel(d, "sw")) for d in ("mgsm", "msvamp", "flores", "tatoeba")]
        [250, 500, 1012, 390]
        >>> len(load_parallel("msvamp", "sw", split="test")), load_parallel("msvamp", "sw").ids[0]
        (1000, 'msvamp-500')
        >>> len(load_parallel("xcopa", "et"))
        300
    """
    split = default_split(name) if split is None else split  # also checks the name
    if n is not None:
        n = check_count("n", n)
    code = canonical(lang)
    if code == ENGLISH:
        raise ValueError(
            f"{lang!r} is English, the target side of every pair; pass the other language, "
            f"one of: {', '.join(c for c in available_languages(name) if c != ENGLISH)}"
        )
    src = DATASETS[name]
    if split not in src.splits:
        raise ValueError(f"{name} has no split {split!r}; expected one of {', '.join(src.splits)}")
    english, target, ids, extra = _pairs(name, code, split)
    files = [str(dataset_dir(name) / f) for f in dataset_files(name, code, split)]
    meta = {
        "dataset": name, "split": split, "license": src.license, "source": src.url,
        "path": files[0], "english_path": files[1] if len(files) > 1 else files[0],
        "n_available": len(english), **extra,
    }  # fmt: skip
    corpus = ParallelCorpus(
        tuple(english), tuple(target), code, ENGLISH, f"{name}-{code}", meta, tuple(ids)
    )
    return corpus if n is None else corpus.head(n)


@runtime_checkable
class PairedTexts(Protocol):
    """Aligned texts to fit on, e.g. an :class:`interp_steer.data.ParallelCorpus`.

    Only ``english`` and ``target`` are required (read-only, so frozen dataclasses fit);
    ``name``, ``source_lang``, ``target_lang``, ``meta`` and ``ids`` are recorded as
    provenance when present.
    """

    @property
    def english(self) -> Sequence[str]:
        """English texts."""
        ...

    @property
    def target(self) -> Sequence[str]:
        """The same texts in the language to steer from."""
        ...


def check_pairs(corpus: PairedTexts) -> tuple[list[str], list[str]]:
    """Return the corpus' sides as lists, or raise ``ValueError`` (empty, misaligned)."""
    english, target = list(corpus.english), list(corpus.target)
    if len(english) != len(target):
        raise ValueError(
            f"english has {len(english)} texts but target has {len(target)}: pairs must align"
        )
    if not english:
        raise ValueError("the corpus is empty: fitting needs at least one pair")
    for i, (en, tgt) in enumerate(zip(english, target, strict=True)):
        if not (isinstance(en, str) and isinstance(tgt, str) and en.strip() and tgt.strip()):
            raise ValueError(f"pair {i} must hold two non-empty strings")
    return english, target


__all__ = [
    "PairedTexts",
    "ParallelCorpus",
    "check_pairs",
    "default_split",
    "load_parallel",
]
