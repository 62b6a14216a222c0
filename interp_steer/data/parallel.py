"""Parallel corpora: English texts paired with their translations, for fitting steering vectors.

Naming convention. Steering moves activations *from* the language a prompt is written in
*to* English. So ``source_lang`` is the non-English language (the language of the prompts)
and ``target_lang`` is English. The non-English texts sit in the ``target`` column, named
after the datasets' "target-language translation" (MSVAMP's ``m_query``): ``english[i]`` and
``target[i]`` say the same thing, and ``target[i]`` is written in ``source_lang``.

Where the files come from (the data-directory setting, the registry, downloads) lives in
:mod:`interp_steer.data.sources` and is re-exported here.

Your own pairs go through :meth:`ParallelCorpus.coerce`, the one place that reads every
form the library accepts (pairs, two lists, a dict, a DataFrame, a ``datasets.Dataset``);
:func:`~interp_steer.fitting.fit_vector` and the other functions that take pairs call it.

Example:
    >>> corpus = load_parallel("mgsm", "de", n=3)
    >>> len(corpus), corpus.source_lang, corpus.target_lang
    (3, 'de', 'en')
    >>> corpus.english[0][:12], corpus.target[0][:12]
    ('Janet’s duck', 'Janets Enten')
"""

import csv
import hashlib
import json
import random
from collections.abc import Iterable, Mapping, Sequence, Sized
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NoReturn, Protocol, TypeAlias, cast, runtime_checkable

import datasets
import pandas as pd

from interp_steer.constants import LOCAL_DATASETS, check_count
from interp_steer.data.language_id import UND
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
        english: English texts (a list is accepted and stored as a tuple).
        target: The same texts in ``source_lang`` (the language the prompts are in).
        source_lang: Canonical code of the non-English language; any spelling is accepted
            and normalised (``"deu"`` becomes ``"de"``). ``"und"`` (undetermined) where it
            is not known: what :meth:`coerce` gives pairs that name no language.
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
        >>> ParallelCorpus(english=["Hello."], target=["Hallo."], source_lang="de").english
        ('Hello.',)
        >>> ParallelCorpus(("Hello.", " "), ("Hallo.", "Danke."), "de")
        Traceback (most recent call last):
        ...
        ValueError: english[1] is empty or whitespace-only
    """

    english: tuple[str, ...] | list[str]
    target: tuple[str, ...] | list[str]
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
            if isinstance(texts, list):
                texts = tuple(texts)
                object.__setattr__(self, side, texts)
            if not isinstance(texts, tuple):
                raise TypeError(
                    f"{side} must be a tuple or list of str, got {type(texts).__name__}"
                )
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
            raise ValueError("the corpus is empty: a parallel corpus needs at least one pair")
        if self.source_lang != UND:
            object.__setattr__(self, "source_lang", canonical(self.source_lang))
        object.__setattr__(self, "target_lang", canonical(self.target_lang))
        if self.source_lang == self.target_lang:
            raise ValueError(f"source_lang and target_lang are both {self.source_lang!r}")

    def __len__(self) -> int:
        """Return the number of pairs."""
        return len(self.english)

    @property
    def fingerprint(self) -> str:
        """A short SHA-256 of the content: ids, English texts and targets (not the name).

        The same pairs give the same fingerprint wherever they were read from; a fitted
        vector records it (``meta["data"]["fingerprint"]``).

        >>> a = ParallelCorpus.coerce([("Hello", "Hallo")])
        >>> a.fingerprint == ParallelCorpus(("Hello",), ("Hallo",), "de").fingerprint
        True
        >>> a.fingerprint == ParallelCorpus.coerce([("Hello", "Hallo!")]).fingerprint
        False
        """
        text = json.dumps([list(self.ids), list(self.english), list(self.target)],
                          ensure_ascii=False)  # fmt: skip
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]

    @classmethod
    def from_pairs(
        cls,
        pairs: Iterable[Sequence[str]],
        *,
        lang: str | None = None,
        name: str | None = None,
        ids: Sequence[str] = (),
        meta: Mapping[str, Any] | None = None,
    ) -> "ParallelCorpus":
        """Build a corpus from ``(english, target)`` pairs.

        Args:
            pairs: ``(english, target)`` tuples (or two-item lists, as JSON gives them).
            lang: Language of the targets, any spelling; None: undetermined (``"und"``).
            name: Corpus name; default ``"user-<lang>"``.
            ids: One id per pair, or none.
            meta: Extra provenance; ``dataset="user"`` and ``form="pairs"`` are recorded.

        Raises:
            TypeError: An item is not a pair of two str; the message lists the forms
                :meth:`coerce` accepts.
            ValueError: No pairs, an empty text, an unknown language.

        Example:
            >>> c = ParallelCorpus.from_pairs([("Hello", "Hallo"), ("Thanks", "Danke")], lang="de")
            >>> c.target, c.source_lang, c.name, c.meta["dataset"]
            (('Hallo', 'Danke'), 'de', 'user-de', 'user')
        """
        if isinstance(pairs, str | bytes | Mapping) or not isinstance(pairs, Iterable):
            _refuse(TypeError, f"from_pairs takes (english, target) pairs, got {_kind(pairs)}")
        rows = list(pairs)
        for i, row in enumerate(rows):
            if not _is_pair(row):
                _refuse(TypeError, f"item {i} is not an (english, target) pair of str: {row!r:.80}")
        english, target = [r[0] for r in rows], [r[1] for r in rows]
        return cls._user(english, target, lang, name, ids, {**(meta or {}), "form": "pairs"})

    @classmethod
    def coerce(
        cls,
        data: "CorpusLike",
        *,
        lang: str | None = None,
        name: str | None = None,
        ids: Sequence[str] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> "ParallelCorpus":
        """Read pairs in any accepted form; the one place the library normalises them.

        Accepted, in this order:

        * a :class:`ParallelCorpus`: returned as is;
        * a pandas ``DataFrame``, a ``datasets.Dataset`` (anything with ``column_names``
          and columns by ``data[name]``) or a dict of columns: the columns ``english`` and
          ``target`` (others are ignored), or exactly two columns: the one named English
          (``"en"``, ``"English"``, ...) and the other, whose name, when it is a language,
          gives ``lang``; with no column named English, the first is English;
        * an object with ``english`` and ``target`` attributes (:class:`PairedTexts`);
          its ``source_lang``, ``target_lang``, ``name``, ``meta`` and ``ids`` are kept;
        * ``(english, target)`` pairs: ``[("Hello", "Hallo"), ...]`` or ``zip(en, de)``;
        * two columns: ``(["Hello", ...], ["Hallo", ...])``. Two items of two texts each
          read both ways: tuples (not in a tuple) are pairs, lists in a tuple are the two
          sides, and a list of lists or a tuple of tuples is refused as ambiguous.

        Args:
            data: The pairs.
            lang: Language of the targets, any spelling. None: the data's own (a corpus's
                ``source_lang``, a column named by its language), else undetermined
                (``"und"``; a vector fitted on it then has ``source_lang`` None). Given
                together with data that names another language, it is an error.
            name: Corpus name (data that has one keeps it); default ``"user-<lang>"``.
            ids: One id per pair (data that has ids keeps them).
            meta: Extra provenance, merged into ``meta``; user data records
                ``dataset="user"``, its ``form`` and ``n_available``.

        Returns:
            The corpus; its :attr:`fingerprint` identifies the content.

        Raises:
            TypeError: A form not listed above, or texts that are not str; the message
                lists the accepted forms.
            ValueError: No pairs, sides of different lengths, an empty text, an unknown
                or conflicting language; the message lists the accepted forms.

        Example:
            >>> ParallelCorpus.coerce({"english": ["Hello"], "target": ["Hallo"]}).target
            ('Hallo',)
            >>> ParallelCorpus.coerce((["Hello", "Thanks"], ["Hallo", "Danke"]), lang="de").english
            ('Hello', 'Thanks')
            >>> import pandas as pd
            >>> ParallelCorpus.coerce(pd.DataFrame({"de": ["Hallo"], "en": ["Hello"]})).source_lang
            'de'
            >>> ParallelCorpus.coerce("Hello")
            Traceback (most recent call last):
            ...
            TypeError: cannot read pairs from a str. Give a ParallelCorpus; ...
        """
        if isinstance(data, ParallelCorpus):
            if lang is not None and _code(lang) != data.source_lang:
                raise ValueError(
                    f"the corpus {data.name!r} is in {data.source_lang!r}, but lang={lang!r}"
                )
            return data
        extra = dict(meta or {})
        columns = _column_names(data)
        if columns is not None:
            english, target, named = _pick_columns(data, columns)
            if named is not None:
                if lang is not None and _code(lang) != named:
                    _refuse(ValueError, f"the target column names {named!r}, but lang={lang!r}")
                lang = named
            return cls._user(english, target, lang, name, ids or (), {**extra, "form": "columns"})
        if _is_paired_texts(data):
            texts = cast("PairedTexts", data)
            own = getattr(data, "source_lang", None)
            if own is not None and own != UND and lang is not None and _code(lang) != _code(own):
                raise ValueError(f"the data is in {own!r}, but lang={lang!r}")
            corpus_meta = {**dict(getattr(data, "meta", None) or {}), **extra}
            return cls._build(
                texts.english,
                texts.target,
                lang if lang is not None else own,
                getattr(data, "name", None) or name,
                tuple(getattr(data, "ids", None) or ids or ()),
                corpus_meta,
                getattr(data, "target_lang", None) or ENGLISH,
            )
        if isinstance(data, str | bytes) or not isinstance(data, Iterable):
            _refuse(TypeError, f"cannot read pairs from {_kind(data)}")
        rows = list(data)
        as_pairs = bool(rows) and all(_is_pair(r) for r in rows)
        as_columns = len(rows) == 2 and all(_is_texts(r) for r in rows)
        if as_pairs and as_columns:  # two items of two texts each
            if not isinstance(data, tuple) and all(isinstance(r, tuple) for r in rows):
                as_columns = False
            elif isinstance(data, tuple) and all(isinstance(r, list) for r in rows):
                as_pairs = False
            else:
                _refuse(ValueError, "two items of two texts are ambiguous: pass pairs as a "
                        "list of tuples, or the two sides as a tuple of two lists")  # fmt: skip
        if as_columns:
            english, target = list(rows[0]), list(rows[1])
            return cls._user(english, target, lang, name, ids or (), {**extra, "form": "lists"})
        if as_pairs:
            return cls.from_pairs(rows, lang=lang, name=name, ids=ids or (), meta=extra)
        if not rows:
            _refuse(ValueError, "the corpus is empty: no pairs were given")
        bad = next(i for i, r in enumerate(rows) if not _is_pair(r))
        _refuse(TypeError, f"item {bad} is neither an (english, target) pair of str nor, "
                f"with one other, a list of texts: {rows[bad]!r:.80}")  # fmt: skip

    @classmethod
    def _user(
        cls,
        english: Sequence[Any],
        target: Sequence[Any],
        lang: str | None,
        name: str | None,
        ids: Sequence[str],
        meta: Mapping[str, Any],
    ) -> "ParallelCorpus":
        """A corpus of the user's own texts: ``dataset="user"`` and the count recorded."""
        info = {"dataset": "user", "n_available": len(english), **meta}
        return cls._build(english, target, lang, name, tuple(ids), info)

    @classmethod
    def _build(
        cls,
        english: Sequence[Any],
        target: Sequence[Any],
        lang: str | None,
        name: str | None,
        ids: tuple[str, ...],
        meta: Mapping[str, Any],
        target_lang: str = ENGLISH,
    ) -> "ParallelCorpus":
        """Construct (name ``user-<lang>`` by default), listing the forms on a bad text."""
        code = UND if lang is None else _code(lang)  # a language error stays as it is
        sides = {}
        for side, texts in (("english", english), ("target", target)):
            if isinstance(texts, str | bytes) or not isinstance(texts, Iterable):
                _refuse(TypeError, f"{side} is {_kind(texts)}, not a list of texts")
            sides[side] = tuple(texts)
            bad = next((i for i, t in enumerate(sides[side]) if not isinstance(t, str)), None)
            if bad is not None:
                got = type(sides[side][bad]).__name__
                _refuse(TypeError, f"{side}[{bad}] must be str, got {got}")
            sides[side] = tuple(str(t) for t in sides[side])  # numpy's str_ as plain str
        label = str(name) if name else f"user-{code}"
        try:
            return cls(sides["english"], sides["target"], code, target_lang, label, meta, ids)
        except (TypeError, ValueError) as err:
            _refuse(type(err), str(err))

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


ACCEPTED_FORMS = (
    "Give a ParallelCorpus; (english, target) pairs [('Hello', 'Hallo'), ...]; two lists "
    "(['Hello', ...], ['Hallo', ...]); a dict {'english': [...], 'target': [...]}; a pandas "
    "DataFrame or datasets.Dataset with columns english and target, or with two columns "
    "(the one named en/English is English, else the first); or an object with english and "
    "target attributes"
)
"""What the error of :meth:`ParallelCorpus.coerce` lists."""


def _refuse(kind: type[Exception], problem: str) -> NoReturn:
    """Raise ``kind`` saying the problem, then the forms :meth:`ParallelCorpus.coerce` takes."""
    raise kind(f"{problem.rstrip('.')}. {ACCEPTED_FORMS}") from None


def _kind(obj: Any) -> str:
    name = type(obj).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def _code(lang: str) -> str:
    """``canonical(lang)``, with ``"und"`` (undetermined) kept as it is."""
    return UND if isinstance(lang, str) and lang.strip().lower() == UND else canonical(lang)


def _is_pair(row: Any) -> bool:
    return isinstance(row, tuple | list) and len(row) == 2 and all(isinstance(t, str) for t in row)


def _is_texts(col: Any) -> bool:
    """Texts with a length (a list, a Series; not one str): a side of the two-lists form."""
    if isinstance(col, str | bytes | Mapping):
        return False
    return (
        isinstance(col, Sized)
        and isinstance(col, Iterable)
        and all(isinstance(t, str) for t in col)
    )


def _column_names(data: Any) -> list[str] | None:
    """The column names of a DataFrame, a Dataset-like object or a dict; None otherwise."""
    if isinstance(data, pd.DataFrame):
        return [str(c) for c in data.columns]
    if isinstance(data, Mapping):
        if any(hasattr(v, "column_names") for v in data.values()):  # a DatasetDict
            _refuse(TypeError, f"{_kind(data)} holds splits {list(data)}; pick one, "
                    f"e.g. data[{next(iter(data))!r}]")  # fmt: skip
        return [str(c) for c in data]
    names = getattr(data, "column_names", None)
    if names is None or not hasattr(data, "__getitem__"):
        return None
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
        _refuse(TypeError, f"{_kind(data)} has column_names {names!r:.80}, not a list of str")
    return list(names)


def _language_of(column: str) -> str | None:
    try:
        return canonical(column)
    except ValueError:
        return None


def _pick_columns(data: Any, columns: list[str]) -> tuple[list[Any], list[Any], str | None]:
    """English texts, target texts and the target column's language (if its name is one)."""
    if "english" in columns and "target" in columns:
        en_col, tgt_col = "english", "target"
    elif len(columns) == 2:
        langs = [_language_of(c) for c in columns]
        if langs == [ENGLISH, ENGLISH]:
            _refuse(ValueError, f"both columns {columns} name English")
        en_col, tgt_col = columns[::-1] if langs[1] == ENGLISH else columns
    else:
        _refuse(ValueError, f"{_kind(data)} with columns {columns} has no columns english "
                "and target, and not exactly two")  # fmt: skip
    named = _language_of(tgt_col) if _language_of(en_col) == ENGLISH else None
    values = []
    for col in (en_col, tgt_col):
        value = data[col]
        if isinstance(value, str | bytes) or not isinstance(value, Iterable):
            _refuse(TypeError, f"column {col!r} is {_kind(value)}, not a list of texts")
        values.append(list(value))
    return values[0], values[1], named


def _is_paired_texts(data: Any) -> bool:
    return hasattr(data, "english") and hasattr(data, "target")


CorpusLike: TypeAlias = (
    "ParallelCorpus | PairedTexts | Iterable[tuple[str, str]] | tuple[Sequence[str], Sequence[str]]"
    " | Mapping[str, Sequence[str]] | pd.DataFrame | datasets.Dataset"
)
"""Every form of pairs :meth:`ParallelCorpus.coerce` reads."""


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


def check_pairs(corpus: CorpusLike) -> tuple[list[str], list[str]]:
    """Return the two sides of :meth:`ParallelCorpus.coerce` ``(corpus)`` as lists.

    Raises:
        TypeError, ValueError: As :meth:`ParallelCorpus.coerce` (empty, misaligned, ...).

    >>> check_pairs([("Hello", "Hallo")])
    (['Hello'], ['Hallo'])
    """
    pairs = ParallelCorpus.coerce(corpus)
    return list(pairs.english), list(pairs.target)


__all__ = [
    "ACCEPTED_FORMS",
    "CorpusLike",
    "PairedTexts",
    "ParallelCorpus",
    "check_pairs",
    "default_split",
    "load_parallel",
]
