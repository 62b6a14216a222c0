"""Language forcing in both directions, scored on two axes and one harmonic-mean score.

A forcing run continues parallel sentences under a steering vector and asks two things of
each greedy continuation, following CLaS-Bench (arXiv 2601.08331):

* **Language control**: is it written in the intended language? Seeded langdetect plus
  script rules (:func:`~interp_steer.data.detect_language`) read it; the share gets a
  Wilson interval.
* **Semantic relevance**: does it still continue *this* prompt? The scorer is the model
  itself, unsteered: the summed log-probability of the continuation after its own prompt
  against after ``k`` other prompts of the same list (:func:`relevance_margins`). A
  continuation counts as relevant when its own prompt beats every distractor, which an
  off-topic continuation (fluent or not, in the right language or not) does by chance
  only, ``1 / (k + 1)`` of the time. :func:`validate_relevance` checks the measure on
  known answers: the parallel reference must outrank another item's reference.

The two shares combine into one :meth:`ForcingResult.score`, their harmonic mean with a
bootstrap interval over items, so a vector that writes fluent English nonsense (control
1, relevance at chance) no longer scores as well as one that keeps the meaning. The
directions are ``"to_english"`` (native prompt, English wanted) and ``"from_english"``
(English prompt, the other language wanted: the CLaS-Bench direction). See
``docs/forcing.md`` for why the measure is built this way and what it does not measure.

Example:
    >>> from interp_steer import load_model
    >>> model = load_model("tiny")
    >>> prompts = forcing_prompts("sw", "from_english", n=4, source="tatoeba")
    >>> prompts.prompts[0], prompts.references[0], prompts.intended
    ('He brought me coffee.', 'Alinileta kahawa.', 'sw')
    >>> r = forcing_run(model, prompts, k=2, max_new_tokens=4, progress=False)
    >>> len(r.outputs), r.control.dtype, r.margin.shape
    (4, dtype('bool'), (4,))
    >>> value, low, high = r.score()
    >>> low <= value <= high
    True
"""

import contextlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pandas as pd

from interp_steer.constants import (
    DIRECTIONS,
    POSITION_MODES,
    Direction,
    Positions,
    check_choice,
    check_count,
)
from interp_steer.data.language_id import detect_languages
from interp_steer.data.languages import ENGLISH, canonical
from interp_steer.data.parallel import load_parallel
from interp_steer.evaluation.prompts import forcing_prompt
from interp_steer.evaluation.statistics import wilson_interval
from interp_steer.models.backend import Model
from interp_steer.models.batching import generate_texts, score_continuations, token_ids
from interp_steer.models.loading import model_name
from interp_steer.progress import progress_bar
from interp_steer.steering.intervention import (
    OPERATORS,
    NonFiniteError,
    Operator,
    check_vector,
    steer,
)
from interp_steer.steering.vectors import SteeringVector, vector_summary
from interp_steer.storage import SavedResult, plain_settings, texts_fingerprint

FORMAT = "interp_steer.ForcingResult"
"""The ``format`` header of a saved :class:`ForcingResult`."""

CHECK_FORMAT = "interp_steer.RelevanceCheck"
"""The ``format`` header of a saved :class:`RelevanceCheck`."""

_CHECK_ARRAYS = ("good", "off", "good_margin", "off_margin")

REFERENCE_SEPARATOR = " "
"""What :func:`validate_relevance` puts between a prompt and a reference it scores."""


def _intended(lang: str, direction: str) -> str:
    return ENGLISH if direction == "to_english" else lang


def _forcing_lang(lang: str) -> str:
    code = canonical(lang)
    if code == ENGLISH:
        raise ValueError(
            "lang is the non-English side of forcing (English is the other side of both "
            f"directions), got {lang!r}"
        )
    return code


# ----------------------------------------------------------------- prompts


@dataclass(frozen=True)
class ForcingPrompts:
    """Forcing prompts and, for each, its parallel text in the intended language.

    Attributes:
        lang: Canonical code of the non-English language.
        direction: ``"to_english"`` (prompts in ``lang``) or ``"from_english"`` (prompts
            in English).
        ids: One id per prompt (the corpus's, e.g. ``"flores-12"``), unique.
        prompts: The texts to continue, in the source language.
        references: The parallel text of each prompt in the intended language.
        source: Where the pairs come from (a :func:`~interp_steer.data.load_parallel`
            dataset name, or ``"user"``).
        start: Index of the first pair in ``source``.

    Raises:
        ValueError: Unknown or English ``lang``, unknown direction, no prompts, sides of
            different lengths, duplicate ids, or an empty text.

    Example:
        >>> p = ForcingPrompts("sw", "to_english", ("a", "b"), ("Habari.", "Asante."),
        ...                    ("Hello.", "Thanks."))
        >>> len(p), p.intended
        (2, 'en')
    """

    lang: str
    direction: Direction
    ids: tuple[str, ...]
    prompts: tuple[str, ...]
    references: tuple[str, ...]
    source: str = "user"
    start: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "lang", _forcing_lang(self.lang))
        check_choice("direction", self.direction, DIRECTIONS)
        check_count("start", self.start, minimum=0)
        for name in ("ids", "prompts", "references"):
            texts = tuple(getattr(self, name))
            object.__setattr__(self, name, texts)
            bad = next((i for i, t in enumerate(texts) if not str(t).strip()), None)
            if bad is not None:
                raise ValueError(f"{name}[{bad}] is empty or whitespace-only")
        sizes = {len(self.ids), len(self.prompts), len(self.references)}
        if len(sizes) != 1:
            raise ValueError(
                f"ids, prompts and references must be aligned one to one, got "
                f"{len(self.ids)}, {len(self.prompts)} and {len(self.references)}"
            )
        if not self.ids:
            raise ValueError("forcing needs at least one prompt")
        if len(set(self.ids)) != len(self.ids):
            raise ValueError("the ids of forcing prompts must be unique")

    @property
    def intended(self) -> str:
        """The language a continuation should be in: ``"en"``, or ``lang`` from English."""
        return _intended(self.lang, self.direction)

    @property
    def fingerprint(self) -> str:
        """A short SHA-256 of the ids, prompts and references (the content, not the name)."""
        return texts_fingerprint(self.ids, self.prompts, self.references)

    def __len__(self) -> int:
        """The number of prompts."""
        return len(self.ids)


def forcing_prompts(
    lang: str, direction: Direction, *, start: int = 0, n: int = 32, source: str = "flores"
) -> ForcingPrompts:
    """Pairs ``start .. start + n`` of a parallel corpus as forcing prompts.

    Explicit slices let a benchmark keep the pairs it fits, selects and tests on apart.

    Args:
        lang: The non-English language, any spelling.
        direction: ``"to_english"``: the ``lang`` side is the prompt and the English side
            the reference; ``"from_english"``: the other way round.
        start: Index of the first pair.
        n: Number of pairs.
        source: A :func:`~interp_steer.data.load_parallel` dataset (``"flores"``,
            ``"tatoeba"``, ...), read in its default split.

    Returns:
        The prompts, with the corpus's ids.

    Raises:
        ValueError: Unknown direction, dataset or language, English as ``lang``, ``n``
            not positive, ``start`` negative, or fewer than ``start + n`` pairs.

    Example:
        >>> to_en = forcing_prompts("sw", "to_english", start=2, n=2)
        >>> from_en = forcing_prompts("sw", "from_english", start=2, n=2)
        >>> to_en.ids, to_en.prompts == from_en.references, to_en.intended
        (('flores-2', 'flores-3'), True, 'en')
        >>> forcing_prompts("sw", "to_english", start=1010, n=4)
        Traceback (most recent call last):
        ...
        ValueError: flores-sw has 1012 pairs; start=1010 with n=4 needs 1014
    """
    check_choice("direction", direction, DIRECTIONS)
    n = check_count("n", n)
    start = check_count("start", start, minimum=0)
    corpus = load_parallel(source, _forcing_lang(lang))
    if start + n > len(corpus):
        raise ValueError(
            f"{corpus.name} has {len(corpus)} pairs; start={start} with n={n} needs {start + n}"
        )
    rows = slice(start, start + n)
    ids = corpus.ids[rows] or tuple(f"{source}-{i}" for i in range(start, start + n))
    native, english = corpus.target[rows], corpus.english[rows]
    prompts, references = (native, english) if direction == "to_english" else (english, native)
    return ForcingPrompts(
        corpus.source_lang, direction, tuple(ids), tuple(prompts), tuple(references),
        source, start,
    )  # fmt: skip


# ----------------------------------------------------------------- scores


def harmonic_mean(control: float, relevance: float) -> float:
    """The steering score: the harmonic mean ``2 c r / (c + r)`` of two shares.

    Low when either axis is low (unlike the arithmetic mean, a perfect control share
    cannot make up for relevance at chance); 0.0 when both are 0.

    Raises:
        ValueError: A share outside [0, 1] or not a number.

    Example:
        >>> harmonic_mean(1.0, 0.2), harmonic_mean(0.6, 0.6), harmonic_mean(0.0, 0.0)
        (0.33333333333333337, 0.6, 0.0)
    """
    for name, share in (("control", control), ("relevance", relevance)):
        if not 0.0 <= float(share) <= 1.0:
            raise ValueError(f"{name} must be a share in [0, 1], got {share!r}")
    total = float(control) + float(relevance)
    return 0.0 if total == 0.0 else 2.0 * float(control) * float(relevance) / total


def _harmonic_means(control: np.ndarray, relevance: np.ndarray) -> np.ndarray:
    total = control + relevance
    return np.where(total > 0, 2.0 * control * relevance / np.where(total > 0, total, 1.0), 0.0)


def _margins_json(margin: np.ndarray) -> list[float | None]:
    return [None if m == -math.inf else float(m) for m in margin.tolist()]


@dataclass(frozen=True)
class ForcingResult(SavedResult):
    """Every continuation of one forcing run and its two per-item verdicts.

    Attributes:
        model: The model's name.
        lang: Canonical code of the non-English language.
        direction: ``"to_english"`` or ``"from_english"``.
        ids: The prompts' ids.
        outputs: The greedy continuations.
        detected: The language detected in each output (``"und"`` when none).
        control: ``[n]`` bool: ``detected == intended``.
        relevance: ``[n]`` bool: ``margin > 0`` (the own prompt beats every distractor).
        margin: ``[n]`` float: ``log p(c | own prompt) - max`` over the distractor prompts;
            ``-inf`` for an empty continuation.
        settings: Every setting that changes the values (vector summary, operator,
            strength, positions, k, seed, max_new_tokens, n, start, source, fingerprint).

    Raises:
        ValueError: Unknown language or direction, no items, arrays of the wrong shape,
            duplicate ids, a NaN margin, or ``control``/``relevance`` that disagree with
            ``detected``/``margin``.
    """

    model: str
    lang: str
    direction: Direction
    ids: tuple[str, ...]
    outputs: tuple[str, ...]
    detected: tuple[str, ...]
    control: np.ndarray
    relevance: np.ndarray
    margin: np.ndarray
    settings: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "lang", _forcing_lang(self.lang))
        check_choice("direction", self.direction, DIRECTIONS)
        for name in ("ids", "outputs", "detected"):
            set_(self, name, tuple(str(x) for x in getattr(self, name)))
        set_(self, "control", np.asarray(self.control, dtype=bool))
        set_(self, "relevance", np.asarray(self.relevance, dtype=bool))
        set_(self, "margin", np.asarray(self.margin, dtype=np.float64))
        set_(self, "settings", plain_settings(self.settings))
        n = len(self.ids)
        if not n:
            raise ValueError("a forcing result needs at least one item")
        if len(set(self.ids)) != n:
            raise ValueError("the ids of a forcing result must be unique")
        for name in ("outputs", "detected", "control", "relevance", "margin"):
            value = getattr(self, name)
            shape = value.shape if isinstance(value, np.ndarray) else (len(value),)
            if shape != (n,):
                raise ValueError(f"{name} has shape {shape}, expected ({n},), one per id")
        if np.isnan(self.margin).any() or (self.margin == np.inf).any():
            raise ValueError("margin must be finite, or -inf for an empty continuation")
        if not np.array_equal(self.control, np.asarray(self.detected) == self.intended):
            raise ValueError(f"control must be detected == {self.intended!r}, item by item")
        if not np.array_equal(self.relevance, self.margin > 0):
            raise ValueError("relevance must be margin > 0, item by item")

    @classmethod
    def from_outputs(
        cls,
        model: str,
        prompts: ForcingPrompts,
        outputs: Sequence[str],
        margin: Sequence[float] | np.ndarray,
        settings: Mapping[str, Any] | None = None,
    ) -> "ForcingResult":
        """Score continuations already made: detect their language, threshold the margins.

        Example:
            >>> p = ForcingPrompts("de", "from_english", ("a", "b"), ("Hello.", "Thanks."),
            ...                    ("Hallo.", "Danke."))
            >>> out = ("Dies ist ein deutscher Satz über das Wetter.", "This is English.")
            >>> r = ForcingResult.from_outputs("m", p, out, [0.5, -1.0])
            >>> r.detected, r.control.tolist(), r.relevance.tolist()
            (('de', 'en'), [True, False], [True, False])
        """
        detected = detect_languages(outputs)
        margins = np.asarray(margin, dtype=np.float64)
        return cls(
            model, prompts.lang, prompts.direction, prompts.ids, tuple(outputs),
            tuple(detected), np.asarray(detected) == prompts.intended, margins > 0, margins,
            dict(settings or {}),
        )  # fmt: skip

    @property
    def intended(self) -> str:
        """The language a continuation should be in: ``"en"``, or ``lang`` from English."""
        return _intended(self.lang, self.direction)

    @property
    def n(self) -> int:
        """The number of items."""
        return len(self.ids)

    def control_share(self, confidence: float = 0.95) -> tuple[float, float, float]:
        """Share of continuations in the intended language, with its Wilson interval.

        Returns:
            ``(value, low, high)``.
        """
        hits = int(self.control.sum())
        low, high = wilson_interval(hits, self.n, confidence)
        return hits / self.n, low, high

    def relevance_share(self, confidence: float = 0.95) -> tuple[float, float, float]:
        """Share of continuations their own prompt explains best, with its Wilson interval.

        An off-topic continuation lands here by chance ``1 / (k + 1)`` of the time.

        Returns:
            ``(value, low, high)``.
        """
        hits = int(self.relevance.sum())
        low, high = wilson_interval(hits, self.n, confidence)
        return hits / self.n, low, high

    def score(
        self, *, n_boot: int = 1000, seed: int = 0, confidence: float = 0.95
    ) -> tuple[float, float, float]:
        """The steering score, :func:`harmonic_mean` of the two shares, with an interval.

        The interval is a percentile bootstrap over items: each resample draws items with
        replacement and keeps both verdicts of an item together (the axes are paired).

        Args:
            n_boot: Bootstrap resamples.
            seed: Seed of the resampling.
            confidence: Coverage of the interval.

        Returns:
            ``(value, low, high)``.

        Example:
            >>> p = ForcingPrompts("de", "to_english", ("a", "b"), ("Ja.", "Nein."), ("Yes", "No"))
            >>> out = ("This is an English sentence.", "Das ist ein deutscher Satz.")
            >>> r = ForcingResult.from_outputs("m", p, out, [1.0, 2.0])
            >>> r.control_share()[0], r.relevance_share()[0]
            (0.5, 1.0)
            >>> r.score()[0] == harmonic_mean(0.5, 1.0)
            True
        """
        n_boot = check_count("n_boot", n_boot)
        if not 0.0 < confidence < 1.0:
            raise ValueError(f"confidence must be in (0, 1), got {confidence}")
        value = harmonic_mean(self.control_share()[0], self.relevance_share()[0])
        rows = np.random.default_rng(seed).integers(0, self.n, size=(n_boot, self.n))
        boot = _harmonic_means(self.control[rows].mean(1), self.relevance[rows].mean(1))
        tail = (1.0 - confidence) / 2
        low, high = np.quantile(boot, [tail, 1.0 - tail])
        return value, float(low), float(high)

    def to_frame(self) -> pd.DataFrame:
        """One row per item.

        Columns: ``id, output, detected, control, relevance, margin, model, lang,
        direction, intended``.
        """
        frame = pd.DataFrame(
            {
                "id": list(self.ids),
                "output": list(self.outputs),
                "detected": list(self.detected),
                "control": self.control,
                "relevance": self.relevance,
                "margin": self.margin,
            }
        )
        for key, value in (
            ("model", self.model),
            ("lang", self.lang),
            ("direction", self.direction),
            ("intended", self.intended),
        ):
            frame[key] = value
        return frame

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with a ``format``/``version`` header (``-inf`` as ``null``)."""
        return {
            "format": FORMAT,
            "version": 1,
            "model": self.model,
            "lang": self.lang,
            "direction": self.direction,
            "ids": list(self.ids),
            "outputs": list(self.outputs),
            "detected": list(self.detected),
            "control": self.control.tolist(),
            "relevance": self.relevance.tolist(),
            "margin": _margins_json(self.margin),
            "settings": dict(self.settings),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ForcingResult":
        """Rebuild a result from :meth:`to_dict` output.

        Raises:
            ValueError: Not a forcing result, or a damaged one.
        """
        if data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} (format={data.get('format')!r})")
        try:
            margin = [-math.inf if m is None else float(m) for m in data["margin"]]
            return cls(
                model=str(data["model"]),
                lang=str(data["lang"]),
                direction=data["direction"],
                ids=tuple(data["ids"]),
                outputs=tuple(data["outputs"]),
                detected=tuple(data["detected"]),
                control=np.asarray(data["control"], dtype=bool),
                relevance=np.asarray(data["relevance"], dtype=bool),
                margin=np.asarray(margin, dtype=np.float64),
                settings=dict(data["settings"]),
            )
        except (KeyError, TypeError) as err:
            raise ValueError(f"damaged forcing result: {err!r}") from None


# ----------------------------------------------------------------- relevance


def _distractors(
    n: int, k: int, rng: np.random.Generator, partners: Sequence[int] | None = None
) -> list[list[int]]:
    """For each item, ``k`` other items (not itself, nor its partner), drawn without replacement."""
    out = []
    for i in range(n):
        banned = {i} if partners is None else {i, partners[i]}
        pool = np.array([j for j in range(n) if j not in banned])
        out.append([int(j) for j in rng.choice(pool, size=k, replace=False)])
    return out


def _logprobs(
    model: Model,
    rows: Sequence[tuple[str, str]],
    batch_size: int,
    progress: bool | None,
    desc: str,
) -> np.ndarray:
    """Summed log-probability of each ``(prompt, continuation)`` row, ``batch_size`` per forward.

    A prompt conditions several rows (its own continuation and the ones it is a distractor
    for), so rows are grouped by prompt and each prompt runs once, its continuations on its
    KV cache (:func:`~interp_steer.models.score_continuations` with ``share_context``; about
    half the tokens of running every row whole). Prompts go in order of their lengths in
    tokens, at most ``batch_size`` continuations per forward; the sums come back in the
    order of ``rows``.
    """
    by_prompt: dict[str, list[int]] = {}
    for r, (prompt, _) in enumerate(rows):
        by_prompt.setdefault(prompt, []).append(r)
    lengths = {p: len(token_ids(model, p, bos=True)) for p in by_prompt}
    parts = [  # (prompt, its rows), at most batch_size rows each
        (p, group[s : s + batch_size])
        for p, group in sorted(by_prompt.items(), key=lambda item: lengths[item[0]])
        for s in range(0, len(group), batch_size)
    ]
    chunks: list[list[tuple[str, list[int]]]] = []
    for part in parts:
        if not chunks or sum(len(g) for _, g in chunks[-1]) + len(part[1]) > batch_size:
            chunks.append([])
        chunks[-1].append(part)
    sums = [0.0] * len(rows)
    with progress_bar(total=len(rows), desc=desc, unit="row", progress=progress) as bar:
        for chunk in chunks:
            scored = score_continuations(
                model,
                [p for p, _ in chunk],
                [[rows[r][1] for r in group] for _, group in chunk],
                share_context=True,
            )
            for (_, group), per_prompt in zip(chunk, scored, strict=True):
                for r, s in zip(group, per_prompt, strict=True):
                    sums[r] = s[0]
            bar.update(sum(len(g) for _, g in chunk))
    out = np.asarray(sums, dtype=np.float64)
    if not np.isfinite(out).all():
        raise NonFiniteError(
            "relevance: the unsteered model gave a NaN or infinite log-probability "
            f"(model dtype {getattr(model.cfg, 'dtype', 'unknown')})"
        )
    return out


REPEAT_NGRAM: Final = 3
"""Token n-grams :func:`repetition` counts."""

MAX_REPETITION: Final = 0.5
"""A continuation more repetitive than this (:func:`repetition`) is degenerate: not relevant."""

RELEVANCE_RULE: Final = (
    f"margin > 0 and repetition <= {MAX_REPETITION} ({REPEAT_NGRAM}-grams of tokens)"
)
"""The relevance verdict, recorded in every result and run folder that it decides."""


def repetition(tokens: Sequence[int], n: int = REPEAT_NGRAM) -> float:
    """The share of a sequence's token ``n``-grams that repeat an earlier one (0 to 1).

    Degenerate steered output ("nauli nauli nauli", "herherher") repeats a fragment,
    often one taken from the prompt, and the prompt then explains it better than any other
    prompt: the margin alone would count it as relevant. Ordinary sentences of a few dozen
    tokens repeat almost no token 3-gram.

    >>> repetition([1, 2, 3, 4, 5, 6]), repetition([7, 8] * 6)
    (0.0, 0.8)
    >>> repetition([1, 2])  # no n-gram at all: nothing repeats
    0.0
    """
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def _check_scoring(n: int, k: int, batch_size: int, minimum: int, what: str) -> None:
    check_count("k", k)
    check_count("batch_size", batch_size)
    if n < minimum:
        raise ValueError(
            f"{what} compares each continuation with k={k} other prompts of the list, so it "
            f"needs at least {minimum} prompts; got {n} (pass a smaller k)"
        )


def relevance_margins(
    model: Model,
    prompts: Sequence[str],
    continuations: Sequence[str],
    *,
    k: int = 4,
    seed: int = 0,
    batch_size: int = 8,
    progress: bool | None = None,
) -> np.ndarray:
    """How much better its own prompt explains each continuation than ``k`` other prompts.

    ``margin_i = log p(c_i | prompt_i) - max over d in D_i of log p(c_i | prompt_d)``, with
    ``D_i`` ``k`` other prompts of the same list drawn by a seeded generator (the same
    draw for the same ``len(prompts)``, ``k`` and ``seed``). The continuation is tokenised
    once, without BOS, and appended to each prompt's tokens (with BOS), so the summed
    log-probabilities cover the same tokens under every prompt and differ only by the
    conditioning. ``margin > 0`` is the relevance verdict: for a continuation unrelated to
    every prompt, each of the ``k + 1`` prompts is equally likely to explain it best, so
    chance is ``1 / (k + 1)``.

    Run it unsteered (outside :func:`~interp_steer.steering.steer`): the scorer is the
    model as it is.

    Args:
        model: The model.
        prompts: The prompts, each the context of its continuation.
        continuations: One continuation per prompt; one with nothing but whitespace, or
            a degenerate one (:func:`repetition` above :data:`MAX_REPETITION`), gets
            ``-inf`` (not relevant) and is not scored.
        k: Distractor prompts per continuation.
        seed: Seed of the distractor draw.
        batch_size: ``(prompt, continuation)`` rows per forward pass.
        progress: A bar over the rows; ``None`` follows
            :func:`~interp_steer.progress.set_progress`.

    Returns:
        ``[n]`` float64 margins.

    Raises:
        ValueError: Prompts and continuations of different lengths, fewer than ``k + 1``
            prompts, ``k`` or ``batch_size`` not positive.
        NonFiniteError: The model gave a NaN or infinite log-probability.

    Example:
        >>> from interp_steer import load_model
        >>> model = load_model("tiny")
        >>> m = relevance_margins(model, ["Hallo", "Guten Tag", "Tschüss"], [" Welt", "", " x"],
        ...                       k=2, progress=False)
        >>> m.shape, float(m[1])
        ((3,), -inf)
    """
    prompts, continuations = [str(p) for p in prompts], [str(c) for c in continuations]
    if len(prompts) != len(continuations):
        raise ValueError(
            f"one continuation per prompt: got {len(prompts)} prompts and "
            f"{len(continuations)} continuations"
        )
    n = len(prompts)
    _check_scoring(n, k, batch_size, k + 1, "relevance")
    drawn = _distractors(n, k, np.random.default_rng(seed))
    scored = [
        i
        for i in range(n)
        if continuations[i].strip()
        and repetition(token_ids(model, continuations[i], bos=False)) <= MAX_REPETITION
    ]
    rows = [(prompts[c], continuations[i]) for i in scored for c in (i, *drawn[i])]
    logp = _logprobs(model, rows, batch_size, progress, "relevance").reshape(len(scored), k + 1)
    margins = np.full(n, -math.inf)
    margins[scored] = logp[:, 0] - logp[:, 1:].max(axis=1)
    return margins


@dataclass(frozen=True)
class RelevanceCheck(SavedResult):
    """The validation of the relevance measure on known answers.

    For item ``i`` the known-good continuation is its parallel reference and the off-topic
    one is the reference of item ``partners[i]`` (a seeded derangement): fluent text in the
    intended language about something else. Both are scored under item ``i``'s prompt
    against the same ``k`` distractor prompts (neither ``i`` nor its partner).

    Attributes:
        model: The model's name.
        lang: Canonical code of the non-English language.
        direction: ``"to_english"`` or ``"from_english"``.
        ids: The items' ids.
        partners: ``partners[i]``: the item whose reference is item ``i``'s off-topic one.
        good: ``[n]`` PMI-style score of the reference, ``log p(ref_i | prompt_i) - mean``
            over the distractors of ``log p(ref_i | prompt_d)``.
        off: ``[n]`` the same score of the off-topic reference ``ref_partners[i]``.
        good_margin: ``[n]`` the reference's :func:`relevance_margins`-style margin
            (own prompt minus the best distractor).
        off_margin: ``[n]`` the off-topic reference's margin.
        settings: ``k``, ``seed``, ``source``, ``start``, ``fingerprint``, ``separator``.

    Raises:
        ValueError: Unknown language or direction, fewer than two items, partners that
            are not another item each, or arrays of the wrong shape or not finite.
    """

    model: str
    lang: str
    direction: Direction
    ids: tuple[str, ...]
    partners: tuple[int, ...]
    good: np.ndarray
    off: np.ndarray
    good_margin: np.ndarray
    off_margin: np.ndarray
    settings: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "lang", _forcing_lang(self.lang))
        check_choice("direction", self.direction, DIRECTIONS)
        set_(self, "ids", tuple(self.ids))
        set_(self, "partners", tuple(int(p) for p in self.partners))
        set_(self, "settings", plain_settings(self.settings))
        n = len(self.ids)
        if n < 2:
            raise ValueError("a relevance check needs at least two items")
        if len(self.partners) != n or any(
            not 0 <= p < n or p == i for i, p in enumerate(self.partners)
        ):
            raise ValueError("partners must name another item for each item")
        for name in _CHECK_ARRAYS:
            values = np.asarray(getattr(self, name), dtype=np.float64)
            set_(self, name, values)
            if values.shape != (n,) or not np.isfinite(values).all():
                raise ValueError(f"{name} must hold {n} finite values, got shape {values.shape}")

    @property
    def share(self) -> float:
        """Share of items whose reference outscores the off-topic one (the check: >= 0.9)."""
        return float(np.mean(self.good > self.off))

    @property
    def relevant_good(self) -> float:
        """Share of references :func:`forcing_run` would count as relevant (margin > 0)."""
        return float(np.mean(self.good_margin > 0))

    @property
    def relevant_off(self) -> float:
        """Share of off-topic references counted as relevant (near ``1 / (k + 1)``)."""
        return float(np.mean(self.off_margin > 0))

    def to_frame(self) -> pd.DataFrame:
        """One row per item.

        Columns: ``id, partner, good, off, right, good_margin, off_margin, model, lang,
        direction``.
        """
        frame = pd.DataFrame(
            {
                "id": list(self.ids),
                "partner": [self.ids[p] for p in self.partners],
                "good": self.good,
                "off": self.off,
                "right": self.good > self.off,
                "good_margin": self.good_margin,
                "off_margin": self.off_margin,
            }
        )
        for key, value in (
            ("model", self.model),
            ("lang", self.lang),
            ("direction", self.direction),
        ):
            frame[key] = value
        return frame

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with a ``format``/``version`` header."""
        return {
            "format": CHECK_FORMAT,
            "version": 1,
            "model": self.model,
            "lang": self.lang,
            "direction": self.direction,
            "ids": list(self.ids),
            "partners": list(self.partners),
            **{name: getattr(self, name).tolist() for name in _CHECK_ARRAYS},
            "settings": dict(self.settings),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RelevanceCheck":
        """Rebuild a check from :meth:`to_dict` output.

        Raises:
            ValueError: Not a relevance check, or a damaged one.
        """
        if data.get("format") != CHECK_FORMAT:
            raise ValueError(f"not a {CHECK_FORMAT} (format={data.get('format')!r})")
        try:
            return cls(
                model=str(data["model"]),
                lang=str(data["lang"]),
                direction=data["direction"],
                ids=tuple(data["ids"]),
                partners=tuple(data["partners"]),
                **{name: np.asarray(data[name], dtype=np.float64) for name in _CHECK_ARRAYS},
                settings=dict(data["settings"]),
            )
        except (KeyError, TypeError) as err:
            raise ValueError(f"damaged relevance check: {err!r}") from None


def _derangement(n: int, rng: np.random.Generator) -> list[int]:
    """A permutation without fixed points: one random cycle through all ``n`` items."""
    order = [int(i) for i in rng.permutation(n)]
    partners = [0] * n
    for t, i in enumerate(order):
        partners[i] = order[(t + 1) % n]
    return partners


def validate_relevance(
    model: Model,
    prompts: ForcingPrompts,
    *,
    k: int = 4,
    seed: int = 0,
    batch_size: int = 8,
    progress: bool | None = None,
) -> RelevanceCheck:
    """Check that the relevance scorer ranks the right continuation above an off-topic one.

    For each item ``i`` the parallel reference ``ref_i`` (known good) and another item's
    reference ``ref_j`` (fluent, in the intended language, off-topic; ``j`` from a seeded
    derangement) are scored as continuations of prompt ``i`` (after
    :data:`REFERENCE_SEPARATOR`) with ``s(c, i) = log p(c | prompt_i) - mean_d log p(c |
    prompt_d)`` over ``k`` distractor prompts shared by both (neither ``i`` nor ``j``).
    Subtracting the mean removes what makes a text likely whatever the prompt (its length,
    its fluency), so ``s(ref_i, i) > s(ref_j, i)`` says the prompt is what makes the
    reference likely. The measure passes when :attr:`RelevanceCheck.share` is at least 0.9.

    Args:
        model: The model, unsteered.
        prompts: The items (their references are the candidates).
        k: Distractor prompts per item.
        seed: Seed of the derangement and the distractor draw.
        batch_size: ``(prompt, continuation)`` rows per forward pass.
        progress: A bar over the rows.

    Raises:
        ValueError: Fewer than ``k + 2`` items, ``k`` or ``batch_size`` not positive.

    Example:
        >>> from interp_steer import load_model
        >>> prompts = forcing_prompts("sw", "to_english", n=4, source="tatoeba")
        >>> check = validate_relevance(load_model("tiny"), prompts, k=2, progress=False)
        >>> 0.0 <= check.share <= 1.0, len(check.to_frame())
        (True, 4)
    """
    n = len(prompts)
    _check_scoring(n, k, batch_size, k + 2, "validate_relevance")
    rng = np.random.default_rng(seed)
    partners = _derangement(n, rng)
    drawn = _distractors(n, k, rng, partners)
    refs = [REFERENCE_SEPARATOR + r for r in prompts.references]
    rows = [
        (prompts.prompts[c], refs[cand])
        for i in range(n)
        for c in (i, *drawn[i])
        for cand in (i, partners[i])
    ]
    logp = _logprobs(model, rows, batch_size, progress, "relevance check").reshape(n, k + 1, 2)
    own, others = logp[:, 0, :], logp[:, 1:, :]
    pmi = own - others.mean(axis=1)
    margin = own - others.max(axis=1)
    settings = {
        "k": k,
        "seed": seed,
        "source": prompts.source,
        "start": prompts.start,
        "fingerprint": prompts.fingerprint,
        "separator": REFERENCE_SEPARATOR,
    }
    return RelevanceCheck(
        model_name(model), prompts.lang, prompts.direction, prompts.ids, tuple(partners),
        pmi[:, 0], pmi[:, 1], margin[:, 0], margin[:, 1], settings,
    )  # fmt: skip


# ----------------------------------------------------------------- the run


def forcing_run(
    model: Model,
    prompts: ForcingPrompts,
    *,
    vector: SteeringVector | None = None,
    alpha: float = 0.0,
    operator: Operator = "add",
    angle: float | None = None,
    value: float | None = None,
    positions: Positions = "all",
    k: int = 4,
    max_new_tokens: int = 32,
    batch_size: int = 8,
    seed: int = 0,
    progress: bool | None = None,
) -> ForcingResult:
    """Continue every prompt under a vector, then score control and relevance per item.

    Each prompt (:func:`~interp_steer.evaluation.prompts.forcing_prompt`: the text itself)
    gets a greedy continuation of at most ``max_new_tokens`` tokens inside
    :func:`~interp_steer.steering.steer` (unsteered without a vector; ``alpha=0`` is the
    unsteered model exactly). Its language is detected (control) and, with the model
    UNSTEERED, :func:`relevance_margins` compares it under its own prompt and ``k`` others.

    Args:
        model: The model.
        prompts: The prompts (:func:`forcing_prompts`).
        vector: The steering vector; None runs the model unsteered.
        alpha: Strength (see :func:`~interp_steer.steering.steer`).
        operator: ``"add"``, ``"ablate"``, ``"rotate"`` or ``"clamp"``.
        angle: ``"rotate"`` only: degrees towards the vector.
        value: ``"clamp"`` only: the component to set.
        positions: Where the operator acts.
        k: Distractor prompts per continuation (chance relevance is ``1 / (k + 1)``).
        max_new_tokens: Generation budget per prompt.
        batch_size: Prompts per generation batch, and rows per relevance forward pass.
        seed: Seed of the distractor draw (decoding is greedy).
        progress: Bars for generation and scoring; ``None`` follows
            :func:`~interp_steer.progress.set_progress`.

    Returns:
        The result; its ``settings`` hold every option that changes the values.

    Raises:
        ValueError: A vector that does not fit the model, a bad option (also an operator,
            ``angle`` or ``value`` without a vector), or fewer than ``k + 1`` prompts.
        NonFiniteError: Steering turned the model's values NaN or infinite.

    Example:
        >>> from interp_steer import load_model
        >>> prompts = forcing_prompts("sw", "to_english", n=3, source="tatoeba")
        >>> r = forcing_run(load_model("tiny"), prompts, k=2, max_new_tokens=3, progress=False)
        >>> r.intended, r.settings["vector"], r.settings["n"]
        ('en', None, 3)
    """
    check_count("k", k)
    check_count("max_new_tokens", max_new_tokens)
    check_count("batch_size", batch_size)
    check_choice("operator", operator, OPERATORS)
    check_choice("positions", positions, POSITION_MODES)
    if not math.isfinite(float(alpha)):
        raise ValueError(f"alpha must be finite, got {alpha!r}")
    if vector is None and (operator != "add" or angle is not None or value is not None):
        raise ValueError("operator, angle and value act along a vector; pass vector=...")
    if len(prompts) < k + 1:
        raise ValueError(
            f"relevance compares each continuation with k={k} other prompts, so forcing "
            f"needs at least {k + 1} prompts; got {len(prompts)} (pass a smaller k)"
        )
    if vector is not None:
        check_vector(model, vector)
    source_lang = prompts.lang if prompts.direction == "to_english" else ENGLISH
    texts = [forcing_prompt(p, source_lang).text for p in prompts.prompts]
    steering = (
        steer(model, vector, alpha=float(alpha), positions=positions, operator=operator,
              angle=angle, value=value)
        if vector is not None
        else contextlib.nullcontext()
    )  # fmt: skip
    outputs: list[str] = []
    bar = progress_bar(
        total=len(texts), desc=f"forcing {prompts.lang} {prompts.direction}", unit="prompt",
        progress=progress,
    )  # fmt: skip
    with bar, steering:
        for b in range(0, len(texts), batch_size):
            batch = texts[b : b + batch_size]
            outputs.extend(
                generate_texts(model, batch, max_new_tokens=max_new_tokens, progress=False)
            )
            bar.update(len(batch))
    margins = relevance_margins(
        model, texts, outputs, k=k, seed=seed, batch_size=batch_size, progress=progress
    )
    settings = {
        "vector": None if vector is None else vector_summary(vector),
        "operator": operator,
        "alpha": float(alpha),
        "angle": None if angle is None else float(angle),
        "value": None if value is None else float(value),
        "positions": positions,
        "k": k,
        "seed": seed,
        "max_new_tokens": max_new_tokens,
        "n": len(prompts),
        "start": prompts.start,
        "source": prompts.source,
        "fingerprint": prompts.fingerprint,
        "relevance": RELEVANCE_RULE,
    }
    return ForcingResult.from_outputs(model_name(model), prompts, outputs, margins, settings)


__all__ = [
    "CHECK_FORMAT",
    "FORMAT",
    "MAX_REPETITION",
    "REFERENCE_SEPARATOR",
    "RELEVANCE_RULE",
    "ForcingPrompts",
    "ForcingResult",
    "RelevanceCheck",
    "forcing_prompts",
    "forcing_run",
    "harmonic_mean",
    "relevance_margins",
    "repetition",
    "validate_relevance",
]
