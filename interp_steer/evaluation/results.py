"""Evaluation results and their comparison: per-item records, JSON round trips, tidy tables.

:class:`EvalResult` keeps every item of a run (prompt, output or choice scores, parsed
answer, gold, correctness) with the run's settings and timings. :func:`compare` turns
several results into one tidy table (one row per run) with the Wilson interval, the gain
over the unsteered ``basic`` run of the same model, task and language, and a paired test on
the items both runs answered; :func:`pivot` lays it out as methods × languages or tasks.

Example:
    >>> items = lambda marks: tuple(ItemResult(f"i{j}", "p", "1", "1" if m else "0", bool(m))
    ...                             for j, m in enumerate(marks))
    >>> base = EvalResult("xcopa", "sw", "tiny", "basic", items([1, 0, 0, 0, 1, 0]))
    >>> tt = EvalResult("xcopa", "sw", "tiny", "translate_test", items([1, 1, 1, 1, 1, 0]))
    >>> row = compare(base, tt).iloc[1]
    >>> print(row["method"], round(row["accuracy"], 3), row["gain"], row["b"], row["c"])
    translate_test 0.833 0.5 0 3
    >>> print(row["p_value"])  # McNemar exact: 3 discordant items, all one way
    0.25
"""

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from interp_steer.constants import EVAL_TASKS, FORCING
from interp_steer.data.language_id import UND
from interp_steer.data.languages import ENGLISH
from interp_steer.evaluation.statistics import (
    PairedTest,
    mcnemar_exact,
    paired_bootstrap,
    wilson_interval,
)
from interp_steer.storage import read_result, write_result

FORMAT = "interp_steer.EvalResult"
"""The ``format`` header of a saved result."""


@dataclass(frozen=True)
class ItemResult:
    """One item's outcome.

    Attributes:
        id: The task item's id.
        prompt: The text the model saw (for choice tasks the context before the choices).
        gold: The gold answer (number, choice index, or ``"en"`` for forcing).
        parsed: The parsed answer (last number, best choice, detected language) or None.
        correct: Whether ``parsed`` matches ``gold``.
        output: The generated text (math, forcing), cut at the stop strings.
        scores: Choice tasks: the length-normalised log-likelihood of each choice.
        meta: Extras: continuations, log-likelihood sums and token counts, translations.
    """

    id: str
    prompt: str
    gold: str
    parsed: str | None
    correct: bool
    output: str | None = None
    scores: tuple[float, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("an item result needs an id")
        object.__setattr__(self, "scores", tuple(float(s) for s in self.scores))
        object.__setattr__(self, "correct", bool(self.correct))
        object.__setattr__(self, "meta", dict(self.meta))


@dataclass(frozen=True)
class EvalResult:
    """Every item of one run plus its settings, accuracy and timings.

    Attributes:
        task: Task name (``"xcopa"``, ..., ``"forcing"``).
        lang: Canonical code of the prompts' language.
        model: The model's name.
        baseline: The baseline (see :data:`interp_steer.evaluation.BASELINES`).
        items: Per-item results, in task order.
        settings: Run settings: split, n, seed, alpha, positions, batch_size,
            max_new_tokens, k, length_norm, translator, source.
        vector: Summary of the steering vector (method, layer, hook_name, norm,
            source_lang, target_lang, model_name, sha1), or None when unsteered.
        timings: Seconds: ``total_s``, ``model_s``, ``translate_s``.
        complete: False for a partial result (an error or interruption stopped the run).
        error: What stopped a partial run.
    """

    task: str
    lang: str
    model: str
    baseline: str
    items: tuple[ItemResult, ...]
    settings: Mapping[str, Any] = field(default_factory=dict)
    vector: Mapping[str, Any] | None = None
    timings: Mapping[str, float] = field(default_factory=dict)
    complete: bool = True
    error: str | None = None

    def __post_init__(self) -> None:
        if self.task not in EVAL_TASKS:
            raise ValueError(f"unknown task {self.task!r}")
        object.__setattr__(self, "items", tuple(self.items))
        ids = [item.id for item in self.items]
        if len(set(ids)) != len(ids):
            raise ValueError("item ids of a result must be unique")
        object.__setattr__(self, "settings", dict(self.settings))
        object.__setattr__(self, "timings", dict(self.timings))
        if self.vector is not None:
            object.__setattr__(self, "vector", dict(self.vector))

    @property
    def n(self) -> int:
        """Number of items scored."""
        return len(self.items)

    @property
    def n_correct(self) -> int:
        """Number of items answered correctly."""
        return sum(item.correct for item in self.items)

    @property
    def accuracy(self) -> float:
        """Share of correct items (NaN when there are none)."""
        return self.n_correct / self.n if self.n else math.nan

    @property
    def ci(self) -> tuple[float, float]:
        """95% Wilson interval of the accuracy."""
        return wilson_interval(self.n_correct, self.n)

    @property
    def steered(self) -> bool:
        """Whether a steering vector was applied."""
        return self.vector is not None

    @property
    def method(self) -> str:
        """A label for tables: the baseline, plus the vector and strength when steered.

        >>> vector = {"method": "pca", "layer": 4}
        >>> settings = {"alpha": 0.41, "positions": "last"}
        >>> EvalResult("xcopa", "it", "m", "basic", (), settings, vector).method
        'basic+pca@L4 a=0.41 pos=last'
        """
        if self.vector is None:
            return self.baseline
        strength = f"@L{self.vector['layer']} a={self.settings.get('alpha', 1.0):g}"
        return self._label(strength)

    @property
    def row(self) -> str:
        """:attr:`method` without the layer and strength: ``basic+mean_diff`` (or the baseline).

        Languages select their own layer and strength, so this label puts one method's
        steered runs in one row; a position mode other than ``all`` is kept.

        >>> vector = {"method": "pca", "layer": 4}
        >>> settings = {"alpha": 0.41, "positions": "last"}
        >>> EvalResult("xcopa", "it", "m", "basic", (), settings, vector).row
        'basic+pca pos=last'
        """
        return self.baseline if self.vector is None else self._label("")

    def _label(self, strength: str) -> str:
        assert self.vector is not None
        label = f"{self.baseline}+{self.vector['method']}{strength}"
        positions = self.settings.get("positions", "all")
        return label if positions == "all" else f"{label} pos={positions}"

    @property
    def metrics(self) -> dict[str, float]:
        """Accuracy and its interval.

        For forcing also the shares of English, the prompt's language and undetermined outputs.
        """
        low, high = self.ci
        out = {"accuracy": self.accuracy, "ci_low": low, "ci_high": high}
        if self.task == FORCING and self.n:
            langs = [item.parsed for item in self.items]
            for key, code in (("share_en", ENGLISH), ("share_lang", self.lang), ("share_und", UND)):
                out[key] = langs.count(code) / self.n
        return out

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (``format``/``version`` header included)."""
        data = asdict(self)
        data["items"] = [asdict(item) for item in self.items]
        return {"format": FORMAT, "version": 1, **data}

    def to_json(self) -> str:
        """Return the result as JSON text (NaN refused, UTF-8 kept)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, allow_nan=False, indent=1)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the result atomically, as JSON or (``.parquet``) its :meth:`to_frame` table.

        A parquet file carries the JSON in its metadata, so :meth:`load` reads either back
        whole, as every other result's ``save`` does. Returns the path.
        """
        return write_result(path, self.to_dict(), self.to_frame())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "EvalResult":
        """Rebuild a result from :meth:`to_dict` output.

        Raises:
            ValueError: Not an interp_steer evaluation result.
        """
        if data.get("format") != FORMAT:
            found = data.get("format")
            raise ValueError(f"not an interp_steer evaluation result (format={found!r})")
        fields = {k: v for k, v in data.items() if k not in ("format", "version")}
        try:
            items = []
            for row in fields.pop("items"):
                row = dict(row)
                row["scores"] = tuple(row.get("scores", ()))
                items.append(ItemResult(**row))
            return cls(items=tuple(items), **fields)
        except (KeyError, TypeError) as err:
            raise ValueError(f"damaged evaluation result: {err}") from None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "EvalResult":
        """Read a result written by :meth:`save` (JSON or parquet).

        Raises:
            FileNotFoundError: No such file.
            ValueError: The file is not valid JSON or not an evaluation result.
        """
        try:
            data = read_result(path)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON: {err}") from None
        return cls.from_dict(data)

    def to_frame(self) -> pd.DataFrame:
        """Return one row per item, with the run's task, language, model, method and alpha.

        Columns: ``id, prompt, gold, parsed, correct, output, scores, task, lang, model,
        baseline, method, alpha`` (an item's ``meta`` is left out). ``to_pandas`` is the
        same method under its old name.

        >>> items = (ItemResult("i0", "2+2?", "4", "4", True),
        ...          ItemResult("i1", "1+2?", "3", None, False))
        >>> frame = EvalResult("mgsm", "de", "tiny", "basic", items).to_frame()
        >>> frame[["id", "correct", "lang", "method"]].values.tolist()
        [['i0', True, 'de', 'basic'], ['i1', False, 'de', 'basic']]
        """
        rows = []
        for item in self.items:
            row = asdict(item)
            row["scores"] = list(item.scores)
            row.pop("meta")
            rows.append(row)
        frame = pd.DataFrame(rows, columns=list(ItemResult.__dataclass_fields__)[:-1])
        for key, value in (
            ("task", self.task),
            ("lang", self.lang),
            ("model", self.model),
            ("baseline", self.baseline),
            ("method", self.method),
            ("alpha", self.settings.get("alpha")),
        ):
            frame.insert(len(frame.columns), key, value)
        return frame

    to_pandas = to_frame
    """The old name of :meth:`to_frame`, kept as an alias."""


class EvaluationError(RuntimeError):
    """An evaluation failed; ``partial`` holds the items done so far, ``item_id`` the culprit."""

    def __init__(self, message: str, *, partial: EvalResult, item_id: str | None = None):
        super().__init__(message)
        self.partial = partial
        self.item_id = item_id


def _flatten(results: tuple[Any, ...]) -> list[EvalResult]:
    flat: list[EvalResult] = []
    for r in results:
        if isinstance(r, EvalResult):
            flat.append(r)
        elif isinstance(r, Iterable) and not isinstance(r, str | bytes):
            flat.extend(_flatten(tuple(r)))
        else:
            raise TypeError(f"compare() takes EvalResults, got {type(r).__name__}")
    return flat


def paired_test(
    first: EvalResult,
    second: EvalResult,
    *,
    test: Literal["mcnemar", "bootstrap"] = "mcnemar",
    n_resamples: int = 2000,
    seed: int = 0,
) -> PairedTest:
    """Test ``second`` against ``first`` on the items both answered (matched by id).

    Raises:
        ValueError: Unknown test, or the runs share no item.
    """
    if test not in ("mcnemar", "bootstrap"):
        raise ValueError(f"test must be 'mcnemar' or 'bootstrap', got {test!r}")
    theirs = {item.id: item for item in second.items}
    pairs = [(item.correct, theirs[item.id].correct) for item in first.items if item.id in theirs]
    if not pairs:
        raise ValueError(f"{first.method} and {second.method} share no item to pair")
    a, b = [p[0] for p in pairs], [p[1] for p in pairs]
    if test == "mcnemar":
        return mcnemar_exact(a, b)
    return paired_bootstrap(a, b, n_resamples=n_resamples, seed=seed)


def compare(
    *results: EvalResult | Iterable[EvalResult],
    test: Literal["mcnemar", "bootstrap"] = "mcnemar",
    reference: str = "basic",
    n_resamples: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Tidy table of runs: accuracy with Wilson interval, gain over ``basic``, paired test.

    Each run is paired with the unsteered ``reference`` run of the same model, task and
    language (the first one given); ``gain`` is the accuracy difference on the items both
    answered, ``b``/``c`` the items only the reference / only this run got right, and
    ``p_value`` the paired test's (McNemar exact, or a paired bootstrap). Runs without a
    reference get NaN there.

    Args:
        *results: Results, or iterables of results.
        test: ``"mcnemar"`` or ``"bootstrap"``.
        reference: The baseline that unsteered reference runs use.
        n_resamples: Bootstrap resamples.
        seed: Bootstrap seed.

    Returns:
        One row per result: ``model, task, lang, method, row`` (:attr:`EvalResult.row`),
        ``baseline, steered, vector_method, layer, alpha, positions, n, n_correct,
        accuracy, ci_low, ci_high, reference, ref_accuracy, gain, n_paired, b, c, p_value,
        test, complete`` (plus ``share_en``, ``share_lang``, ``share_und`` for forcing runs).
    """
    flat = _flatten(results)
    if not flat:
        raise ValueError("compare() needs at least one result")
    refs: dict[tuple[str, str, str], EvalResult] = {}
    for r in flat:
        if not r.steered and r.baseline == reference:
            refs.setdefault((r.model, r.task, r.lang), r)
    rows = []
    for r in flat:
        vec = r.vector or {}
        low, high = r.ci
        row: dict[str, Any] = {
            "model": r.model,
            "task": r.task,
            "lang": r.lang,
            "method": r.method,
            "row": r.row,
            "baseline": r.baseline,
            "steered": r.steered,
            "vector_method": vec.get("method"),
            "layer": vec.get("layer"),
            "alpha": r.settings.get("alpha") if r.steered else None,
            "positions": r.settings.get("positions") if r.steered else None,
            "n": r.n,
            "n_correct": r.n_correct,
            "accuracy": r.accuracy,
            "ci_low": low,
            "ci_high": high,
        }
        ref = refs.get((r.model, r.task, r.lang))
        paired: dict[str, Any] = {
            "reference": None,
            "ref_accuracy": math.nan,
            "gain": math.nan,
            "n_paired": 0,
            "b": 0,
            "c": 0,
            "p_value": math.nan,
        }
        if ref is not None:
            paired.update(reference=ref.method, ref_accuracy=ref.accuracy)
            if ref is r:
                paired.update(gain=0.0, n_paired=r.n)
            else:
                try:
                    t = paired_test(ref, r, test=test, n_resamples=n_resamples, seed=seed)
                    paired.update(gain=t.diff, n_paired=t.n, b=t.b, c=t.c, p_value=t.p_value)
                except ValueError:  # no shared items: unpaired difference only
                    paired.update(gain=r.accuracy - ref.accuracy)
        row.update(paired, test=test, complete=r.complete)
        if r.task == FORCING:
            row.update({k: v for k, v in r.metrics.items() if k.startswith("share_")})
        rows.append(row)
    return pd.DataFrame(rows)


def pivot(
    table: pd.DataFrame,
    columns: Literal["lang", "task", "model"] = "lang",
    values: str = "accuracy",
    rows: Literal["method", "row"] = "method",
) -> pd.DataFrame:
    """Lay a :func:`compare` table out wide: methods × languages (or × tasks, × models).

    The index holds ``rows`` plus whichever of model/task/lang varies and is not
    ``columns``; a ``mean`` column averages the others when there are several.
    ``rows="method"`` keeps each steered run's layer and strength in its label;
    ``rows="row"`` drops them (:attr:`EvalResult.row`), so runs steered at each language's own
    layer and strength share one row.

    Raises:
        ValueError: Two runs fall into one cell (e.g. two strengths with ``rows="row"``).

    Example:
        >>> t = pd.DataFrame({"model": "m", "task": "xcopa", "lang": ["sw", "sw", "th", "th"],
        ...                   "method": ["basic", "basic+pca@L2 a=1", "basic", "basic+pca@L5 a=2"],
        ...                   "row": ["basic", "basic+pca", "basic", "basic+pca"],
        ...                   "accuracy": [.5, .6, .7, .9]})
        >>> wide = pivot(t, rows="row")
        >>> wide.index.tolist(), wide.columns.tolist(), float(wide.loc["basic+pca", "mean"])
        (['basic', 'basic+pca'], ['sw', 'th', 'mean'], 0.75)
        >>> pivot(t).shape  # the full labels: one row per layer and strength
        (3, 3)
    """
    if columns not in ("lang", "task", "model"):
        raise ValueError(f"columns must be 'lang', 'task' or 'model', got {columns!r}")
    if rows not in ("method", "row"):
        raise ValueError(f"rows must be 'method' or 'row', got {rows!r}")
    keys = [c for c in ("model", "task", "lang") if c != columns and table[c].nunique() > 1]
    cells = table.groupby([*keys, rows, columns], sort=False).size()
    if (cells > 1).any():
        (*_, label, col), count = next((k, v) for k, v in cells.items() if v > 1)
        raise ValueError(
            f"{count} runs share the cell ({label!r}, {col!r}); pivot needs one run per cell"
            + (" (rows='method' keeps layer and strength apart)" if rows == "row" else "")
        )
    wide = table.pivot_table(
        index=[*keys, rows], columns=columns, values=values, aggfunc="first", sort=False
    )
    wide.columns.name = None
    if wide.shape[1] > 1:
        wide["mean"] = wide.mean(axis=1)
    return wide


__all__ = [
    "EvalResult",
    "EvaluationError",
    "FORMAT",
    "ItemResult",
    "compare",
    "paired_test",
    "pivot",
]
