"""Cells of a sweep: one evaluation each, computed once and kept in a run folder.

A cell is one evaluation of one language with one vector (or none) at one strength. An
:data:`Evaluator` computes its :class:`Score` (:class:`TaskEvaluator` for tasks), and a
:class:`CellStore` keeps finished cells as JSON files so that an interrupted run
(:func:`~interp_steer.analysis.layer_sweep`, :func:`~interp_steer.analysis.transfer_matrix`)
picks up where it stopped. Fitted vectors are kept beside the cells.

A run folder is reused only with the settings it was made with: ``config.json`` records
every setting that changes a cell (:func:`model_settings`, :func:`evaluator_settings`, the
fit settings), and a run with other settings is refused naming each one
(:func:`~interp_steer.storage.check_settings`); ``data/`` records a fingerprint of every
language's evaluation items and fitting pairs (:func:`data_fingerprint`), so changed data
files are refused too. A saved vector is used only if it was fitted with the settings
asked for (:func:`check_fitted`).

Example:
    >>> TaskEvaluator("mgsm", select_items=50).selection
    'mgsm test items 0..49 (held out)'
"""

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from interp_steer.activations.cache import model_fingerprint
from interp_steer.constants import POSITION_MODES, Positions, check_choice
from interp_steer.data.items import TaskSet
from interp_steer.data.parallel import ParallelCorpus, load_parallel
from interp_steer.data.tasks import load_task
from interp_steer.evaluation.harness import evaluate
from interp_steer.evaluation.prompts import get_baseline
from interp_steer.fitting.fit import REGISTRY, check_hyper, fit_vectors, resolve_method
from interp_steer.models.adapters import active_adapters
from interp_steer.models.backend import BASIS_FLAGS, Model, weight_basis
from interp_steer.models.loading import model_name
from interp_steer.steering.intervention import NonFiniteError
from interp_steer.steering.vectors import SteeringVector
from interp_steer.storage import (
    atomic_write_json,
    check_settings,
    package_version,
    plain_settings,
    require_settings,
)

Stage = Literal["select", "test"]


@dataclass(frozen=True)
class Score:
    """One evaluation: a value (accuracy or another metric) with its 95% interval.

    ``correct`` holds each item's correctness, in the stage's item order, when the metric
    is an accuracy (:class:`TaskEvaluator` gives it): a sweep pairs its test cells item by
    item with it (a paired interval and p-value of the gain over unsteered).

    >>> Score(0.5, 0.3, 0.7, 20).value
    0.5
    >>> Score(0.5, 0.0, 1.0, 2, correct=[True, False]).correct
    (True, False)
    """

    value: float
    low: float
    high: float
    n: int
    correct: Sequence[bool] | None = None

    def __post_init__(self) -> None:
        if self.correct is not None:
            object.__setattr__(self, "correct", tuple(bool(x) for x in self.correct))


Evaluator = Callable[[Model, str, SteeringVector | None, float, Stage], Score]
"""``(model, lang, vector or None, alpha, stage) -> Score``, stage ``"select"`` or ``"test"``.

Optional attributes: ``name`` (the metric's name), ``selection`` / ``testing`` (what each
stage evaluates on, for the record), ``settings`` (a mapping of everything else that
changes its scores), ``check(lang)`` (raise ``ValueError`` before any work when ``lang``
cannot be evaluated) and ``items(lang, stage)`` / ``pairs(lang, stage)`` (the data of a
stage, fingerprinted by :func:`data_fingerprint`). A run folder records
:func:`evaluator_settings`: a dataclass's fields, else only the type's name and those
attributes, so **a custom evaluator must name itself** (and expose ``settings``): two
evaluators that look the same would share saved cells.
:class:`TaskEvaluator` is the one for tasks.
"""


@dataclass(frozen=True)
class TaskEvaluator:
    """Evaluate a task with :func:`~interp_steer.evaluation.evaluate` (accuracy, Wilson CI).

    The select stage runs on ``select_split``; if the task has no such split, pass
    ``select_items=k``: the first ``k`` test items are used for selection and left out of
    the test stage.

    Attributes:
        task: Task name (``"xcopa"``, ``"mgsm"``, ...).
        select_split: Split for selection (``"val"`` for XCOPA).
        test_split: Split for the final evaluation.
        select_items: Hold out this many test items for selection instead of a split.
        n: Items per evaluation (all when None).
        baseline: Prompting baseline (``"basic"``).
        positions: Where vectors are added.
        batch_size: Evaluation batch size.
    """

    task: str
    select_split: str = "val"
    test_split: str = "test"
    select_items: int | None = None
    n: int | None = None
    baseline: str = "basic"
    positions: Positions = "all"
    batch_size: int = 8

    def __post_init__(self) -> None:
        if self.select_items is None and self.select_split == self.test_split:
            raise ValueError(
                "selecting on the test split would leak test items into the choice of "
                "layer and strength; use a validation split or select_items=k"
            )
        for name in ("select_items", "n", "batch_size"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        check_choice("positions", self.positions, POSITION_MODES)
        get_baseline(self.baseline)

    @property
    def name(self) -> str:
        """The metric's name."""
        return f"{self.task} accuracy"

    @property
    def selection(self) -> str:
        """What the select stage evaluates on."""
        if self.select_items is not None:
            return f"{self.task} {self.test_split} items 0..{self.select_items - 1} (held out)"
        return f"{self.task} {self.select_split} split"

    @property
    def testing(self) -> str:
        """What the test stage evaluates on."""
        if self.select_items is not None:
            return f"{self.task} {self.test_split} items from {self.select_items} on"
        return f"{self.task} {self.test_split} split"

    def items(self, lang: str, stage: Stage) -> Any:
        """The :class:`~interp_steer.data.TaskSet` of a stage."""
        if self.select_items is None:
            split = self.select_split if stage == "select" else self.test_split
            return load_task(self.task, lang, split=split, n=self.n)
        full = load_task(self.task, lang, split=self.test_split)
        k = self.select_items
        if k >= len(full.items):
            raise ValueError(
                f"select_items={k} leaves no test items: {self.task}-{full.lang} "
                f"{self.test_split} has {len(full.items)} items"
            )
        items = full.items[:k] if stage == "select" else full.items[k:]
        if self.n is not None:
            items = items[: self.n]
        return replace(full, items=tuple(items))

    def check(self, lang: str) -> None:
        """Raise ``ValueError`` unless both stages of ``lang`` have items (reads the task).

        Called by sweeps and transfer matrices before any work.

        >>> TaskEvaluator("xcopa", select_items=1000).check("it")
        Traceback (most recent call last):
        ...
        ValueError: select_items=1000 leaves no test items: xcopa-it test has 500 items
        """
        for stage in ("select", "test"):
            if not self.items(lang, stage).items:
                raise ValueError(f"{self.task}-{lang} has no {stage} items")  # pragma: no cover

    def __call__(
        self,
        model: Model,
        lang: str,
        vector: SteeringVector | None,
        alpha: float,
        stage: Stage,
    ) -> Score:
        """Evaluate one cell."""
        res = evaluate(
            model,
            self.items(lang, stage),
            lang,
            vector=vector,
            alpha=alpha,
            positions=self.positions,  # type: ignore[arg-type]
            baseline=self.baseline,
            batch_size=self.batch_size,
            progress=False,
        )
        low, high = res.ci
        correct = tuple(item.correct for item in res.items)
        return Score(float(res.accuracy), float(low), float(high), int(res.n), correct)


_RESULT_FIELDS = frozenset({"value", "delta", "failed"})  # a score, a damage, or why not


class CellStore:
    """Finished cells of a run as one JSON file each, written atomically.

    ``CellStore(None)`` keeps nothing (every cell is computed).

    >>> import tempfile
    >>> store = CellStore(tempfile.mkdtemp())
    >>> store.get("de/baseline") is None
    True
    >>> _ = store.put("de/baseline", {"value": 0.5})
    >>> store.get("de/baseline")
    {'value': 0.5}
    """

    def __init__(self, run_dir: str | os.PathLike[str] | None) -> None:
        self.root = Path(run_dir) if run_dir is not None else None

    def _path(self, key: str) -> Path:
        assert self.root is not None
        return self.root / "cells" / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored cell, or None."""
        if self.root is None:
            return None
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            cell = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None  # unreadable (a write never finished): compute again
        if not isinstance(cell, dict) or not (_RESULT_FIELDS & set(cell)):
            raise ValueError(
                f"{path} is not a cell of this run (a JSON object with one of the fields "
                f"{', '.join(sorted(_RESULT_FIELDS))}): delete it to compute the cell again"
            )
        return cell

    def put(self, key: str, cell: Mapping[str, Any]) -> dict[str, Any]:
        """Store a cell (atomically) and return it."""
        if self.root is not None:
            atomic_write_json(self._path(key), dict(cell), root=self.root)
        return dict(cell)

    def check_config(self, config: Mapping[str, Any]) -> None:
        """Record the run's settings in ``config.json``; refuse a folder with other ones.

        Call it after validating the run and before any work: an invalid run writes
        nothing, a run with other settings raises
        :class:`~interp_steer.storage.SettingsError` naming each changed one.

        >>> import tempfile
        >>> store = CellStore(tempfile.mkdtemp())
        >>> store.check_config({"n": 4})
        >>> store.check_config({"n": 40})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        interp_steer.storage.SettingsError: ... different settings (n: 4 → 40); use another run_dir
        """
        if self.root is None:
            return
        check_settings(
            self.root / "config.json", config, hint="use another run_dir", root=self.root
        )

    def check_data(self, fingerprints: Mapping[str, str]) -> None:
        """Record each fingerprint of :func:`check_run` in ``data/``; refuse other data.

        One record per language and stage (or fit), so a new language or stage is a
        new record, while a changed data file under a recorded one raises
        :class:`~interp_steer.storage.SettingsError` naming it.
        """
        self.check_records("data", {k: {"data": {k: fp}} for k, fp in fingerprints.items()})

    def check_records(self, folder: str, records: Mapping[str, Mapping[str, Any]]) -> None:
        """Keep each of ``records`` as ``<folder>/<key>.json``; refuse one that changed.

        A new key is a new record; a key recorded with other settings raises
        :class:`~interp_steer.storage.SettingsError` naming each change.
        """
        if self.root is None:
            return
        for key, settings in records.items():
            check_settings(self.root / folder / f"{key}.json", settings,
                           hint="use another run_dir", root=self.root)  # fmt: skip

    def vector_path(self, lang: str, layer: int) -> Path | None:
        """Where the vector of ``lang`` at ``layer`` is kept (None without a run folder)."""
        return None if self.root is None else self.root / "vectors" / lang / f"L{layer}"


def _score_cell(score: Score, **extra: Any) -> dict[str, Any]:
    cell: dict[str, Any] = {"value": score.value, "low": score.low, "high": score.high,
                            "n": score.n}  # fmt: skip
    if score.correct is not None:  # per item, 0/1, for paired tests of test cells
        cell["correct"] = [int(x) for x in score.correct]
    return {**cell, **extra}


def evaluate_cell(
    store: CellStore,
    key: str,
    evaluator: Callable[..., Score],
    model: Model,
    lang: str,
    vector: SteeringVector | None,
    alpha: float,
    stage: Stage,
    *,
    failed: dict[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Return the cell under ``key``: from ``store`` if finished, else evaluated and stored.

    A cell cannot be scored when its ``alpha`` is not finite, when steering or the scores
    turn NaN or infinite (a :class:`~interp_steer.steering.NonFiniteError`, also as the
    cause of an :class:`~interp_steer.evaluation.EvaluationError`), or when the evaluator
    returns a non-finite value. Such a cell is stored like any other, with ``"failed"``
    (the reason) and null value, bounds and ``n``, so a resumed run keeps it; it reads as
    NaN and is never selected. Any other error propagates.

    Args:
        store: The run's cells.
        key: The cell's key.
        evaluator: ``(model, lang, vector, alpha, stage) -> Score``.
        model: The model (a bridge, or a HookedTransformer on TransformerLens 3.x).
        lang: The language evaluated.
        vector: The vector, or None for a baseline.
        alpha: Its strength.
        stage: ``"select"`` or ``"test"``.
        failed: Collects ``key -> reason`` of a failed cell.
        **extra: Stored with the cell (layer, strength, source, ...), with the score
            (value, low, high, n; ``correct`` as 0/1 per item when the score has it),
            alpha and stage.

    Example:
        >>> from interp_steer import load_model
        >>> def broken(model, lang, vector, alpha, stage):
        ...     return Score(float("nan"), 0.0, 1.0, 4)
        >>> cell = evaluate_cell(CellStore(None), "de/L1", broken, load_model("tiny"), "de",
        ...                      None, 2.0, "select", layer=1)
        >>> cell["failed"], cell["value"], cell["layer"]
        ('the evaluator returned nan (alpha=2)', None, 1)
    """

    def finite(*args: Any) -> Score:
        score = evaluator(*args)
        if not math.isfinite(score.value):
            raise NonFiniteError(f"the evaluator returned {score.value} (alpha={alpha:g})")
        return score

    try:
        if not math.isfinite(alpha):
            raise NonFiniteError(f"alpha={alpha} is not finite")
        cell = store.get(key)
        if cell is None:
            score = finite(model, lang, vector, alpha, stage)
            cell = store.put(key, _score_cell(score, alpha=alpha, stage=stage, **extra))
    except Exception as err:
        cause = NonFiniteError.found_in(err)
        if cause is None:
            raise
        fields = {"value": None, "low": None, "high": None, "n": None}
        kept = alpha if math.isfinite(alpha) else None
        cell = store.put(key, {**fields, "alpha": kept, "stage": stage, **extra,
                               "failed": str(cause)})  # fmt: skip
    if "failed" in cell and failed is not None:
        failed[key] = str(cell["failed"])
    return cell


def model_settings(model: Model) -> dict[str, Any]:
    """The model and scoring code a run's cells come from, as its ``config.json`` records.

    Name, dtype, :func:`~interp_steer.activations.model_fingerprint` of the weights, and
    the version of ``interp_steer`` (the scoring code); ``adapters`` too while one is
    applied (:func:`~interp_steer.models.active_adapters`), and ``weight_basis`` (model
    class and TransformerLens's weight processing, :func:`~interp_steer.models.weight_basis`)
    for any model but an unprocessed bridge. The device is not recorded.

    >>> from interp_steer import load_model
    >>> sorted(model_settings(load_model("tiny")))
    ['dtype', 'interp_steer', 'model', 'weights']
    """
    settings: dict[str, Any] = {
        "model": model_name(model),
        "dtype": str(model.cfg.dtype),
        "weights": model_fingerprint(model),
        "interp_steer": package_version(),
    }
    if active_adapters(model):  # only then: run folders made without one still resume
        settings["adapters"] = list(active_adapters(model))
    basis = weight_basis(model)
    if basis["model_class"] != "TransformerBridge" or any(basis[k] for k in BASIS_FLAGS):
        settings["weight_basis"] = {k: basis[k] for k in ("model_class", *BASIS_FLAGS)}
    return settings


def evaluator_settings(evaluator: Callable[..., Any]) -> dict[str, Any]:
    """What a run folder records of an evaluator: everything that changes its scores.

    A dataclass (:class:`TaskEvaluator`,
    :class:`~interp_steer.analysis.EnglishKL`) gives all its fields; every evaluator gives
    its type's (or function's) name and its ``name``, ``selection``, ``testing`` and
    ``settings`` attributes where it has them (see :data:`Evaluator`).

    >>> got = evaluator_settings(TaskEvaluator("xcopa", n=4, positions="last"))
    >>> got["class"], got["n"], got["positions"], got["baseline"]
    ('TaskEvaluator', 4, 'last', 'basic')
    """
    kind = getattr(evaluator, "__qualname__", type(evaluator).__qualname__)
    out: dict[str, Any] = {"class": kind}
    if dataclasses.is_dataclass(evaluator) and not isinstance(evaluator, type):
        fields = dataclasses.fields(evaluator)
        out.update({f.name: getattr(evaluator, f.name) for f in fields if f.init})
    for attr in ("name", "selection", "testing", "settings"):
        value = getattr(evaluator, attr, None)
        if value is not None and not callable(value):
            out[attr] = value
    return plain_settings(out)


def fit_settings(
    dataset: str, n: int | None, split: str | None, method: Any, hyper: Mapping[str, Any]
) -> dict[str, Any]:
    """The fit settings a sweep or transfer run records and checks its saved vectors by.

    ``method`` is recorded by name; ``hyper`` holds what is passed on to
    :func:`~interp_steer.fitting.fit_vectors` (``pooling``, a method's hyper-parameters),
    with every hyper-parameter of the method not given at its current default
    (:func:`~interp_steer.fitting.fit.check_hyper`): a run made under another default is
    refused, naming it, rather than resumed.

    >>> fit_settings("flores", 4, None, "pca", {"pooling": "mean"})["hyper"]
    {'center': False, 'pooling': 'mean'}
    """
    full = check_hyper(method, hyper)  # an unknown hyper-parameter fails before any work
    return {
        "dataset": dataset,
        "n": n,
        "split": split,
        "method": resolve_method(method).name,
        "hyper": plain_settings({**hyper, **full}),
    }


def vector_settings(vector: SteeringVector) -> dict[str, Any]:
    """What a fitted vector was made from, as :func:`~interp_steer.fitting.fit_vectors` records.

    Keys: ``lang``, ``layer``, ``method``, ``model``, ``dataset``, ``split``, ``n`` (pairs),
    ``n_available`` (pairs the dataset held), ``pooling``, ``exclude_bos`` and ``hyper``
    (every hyper-parameter, defaults included); None where the vector does not say.

    >>> import torch
    >>> v = SteeringVector(torch.ones(4), layer=2, method="pca", source_lang="de")
    >>> vector_settings(v)["layer"], vector_settings(v)["n"]
    (2, None)
    """
    meta = vector.meta
    data = meta.get("data") or {}
    corpus = data.get("corpus_meta") or {}
    return {
        "lang": vector.source_lang,
        "layer": vector.layer,
        "method": vector.method,
        "model": vector.model_name,
        "dataset": corpus.get("dataset"),
        "split": corpus.get("split"),
        "n": data.get("n_pairs"),
        "n_available": corpus.get("n_available"),
        "pooling": meta.get("pooling"),
        "exclude_bos": meta.get("exclude_bos"),
        "hyper": dict(meta.get("hyper") or {}),
    }


def check_fitted(
    vector: SteeringVector, expected: Mapping[str, Any], where: str | os.PathLike[str]
) -> SteeringVector:
    """Return ``vector`` if it was fitted with every setting ``expected`` names.

    Keys as in :func:`vector_settings`; only those given are compared, ``hyper`` entries
    one by one. For a registered ``method`` every hyper-parameter is compared: those not
    given at their current defaults (:func:`~interp_steer.fitting.fit.check_hyper`), so a
    vector fitted under another default is refused too. ``n`` also matches a vector fitted
    on every pair of a dataset that holds fewer than ``n``.

    Raises:
        SettingsError: Naming each setting the vector was fitted with otherwise.

    >>> import torch
    >>> v = SteeringVector(torch.ones(4), layer=2, method="pca", source_lang="de")
    >>> check_fitted(v, {"layer": 2, "lang": "de"}, "v").layer
    2
    >>> from interp_steer.storage import SettingsError
    >>> try:  # pca's default center=False is compared too
    ...     check_fitted(v, {"layer": 3, "method": "pca"}, "vectors/de/L3")
    ... except SettingsError as err:
    ...     print(err.changes)
    ('hyper.center: (none) → False', 'layer: 2 → 3')
    """
    actual = vector_settings(vector)
    now = {k: v for k, v in expected.items() if k != "hyper"}
    saved = {k: actual.get(k) for k in now}
    hyper = dict(expected.get("hyper") or {})
    if expected.get("method") in REGISTRY:
        hyper = check_hyper(expected["method"], hyper)
    if hyper:
        now["hyper"] = hyper
        saved["hyper"] = {k: v for k, v in actual["hyper"].items() if k in hyper}
    available, wanted = actual["n_available"], now.get("n")
    smaller = isinstance(available, int) and isinstance(wanted, int) and available < wanted
    if smaller and saved.get("n") == available:  # all of a smaller dataset: what n gives
        saved["n"] = wanted
    require_settings(where, saved, now, what="a vector",
                     hint="delete it to fit it again, or use another folder")  # fmt: skip
    return vector


def _fit_expected(model: Model, lang: str, layer: int, fit: Mapping[str, Any]) -> dict[str, Any]:
    """What :func:`check_fitted` asks of a saved vector of a sweep or transfer folder."""
    hyper = dict(fit["hyper"])
    expected = {
        "model": model_name(model),
        "lang": lang,
        "layer": layer,
        "method": resolve_method(fit["method"]).name,
        "dataset": fit["dataset"],
        "n": fit["n"],
        "pooling": hyper.pop("pooling", "mean"),
        "exclude_bos": hyper.pop("exclude_bos", True),
    }
    if fit["split"] is not None:
        expected["split"] = fit["split"]
    for name in ("collect_batch_size", "cache_dir", "progress"):  # do not change the vector
        hyper.pop(name, None)
    return {**expected, "hyper": hyper}


def data_fingerprint(data: Any) -> str | None:
    """A short SHA-256 of what a task set or a parallel corpus holds; None for other data.

    Only the content counts (ids, texts, choices, answers, exemplars), not where it was
    read from, so a run folder moves between machines.

    >>> from interp_steer.data import load_parallel
    >>> pairs = load_parallel("flores", "de", n=4)
    >>> data_fingerprint(pairs) == data_fingerprint(load_parallel("flores", "de", n=5))
    False
    """
    if isinstance(data, ParallelCorpus):
        return data.fingerprint
    if not isinstance(data, TaskSet):
        return None
    rows = [
        [i.id, i.question, i.answer, list(i.choices), i.english, list(i.english_choices)]
        for i in (*data.items, *data.exemplars)
    ]
    text = json.dumps(rows, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def check_run(
    evaluator: Callable[..., Any],
    langs: Sequence[str],
    fit_langs: Sequence[str],
    fit: Mapping[str, Any],
    stages: Sequence[Stage] = ("select", "test"),
) -> dict[str, str]:
    """Check, before any work, that ``langs`` can be evaluated and ``fit_langs`` fitted on.

    Calls the evaluator's ``check(lang)`` where it has one (:class:`TaskEvaluator` reads
    the task: a ``select_items`` that leaves no test items fails here, not after the
    select stage) and reads the fitting pairs of each of ``fit_langs`` (``fit`` as for
    :func:`fitted_vectors`).

    Returns:
        :func:`data_fingerprint` of what is evaluated and fitted on, by
        ``"<lang>-<stage>"`` and ``"<lang>-fit"`` (for :meth:`CellStore.check_data`); an
        evaluator's data of ``stages`` is read through its ``items(lang, stage)``
        (:class:`TaskEvaluator`) or ``pairs(lang, stage)``
        (:class:`~interp_steer.analysis.EnglishKL`) where it has one.

    >>> check_run(TaskEvaluator("xcopa"), ["it"], ["it"], {"dataset": "flores", "n": 0})
    Traceback (most recent call last):
    ...
    ValueError: n_fit must be a positive integer, got 0
    """
    n_fit = fit["n"]
    if isinstance(n_fit, bool) or not isinstance(n_fit, int) or n_fit < 1:
        raise ValueError(f"n_fit must be a positive integer, got {n_fit!r}")
    check = getattr(evaluator, "check", None)
    read = getattr(evaluator, "items", None) or getattr(evaluator, "pairs", None)
    fingerprints: dict[str, str] = {}
    for lang in langs:
        if callable(check):
            check(lang)
        for stage in stages:
            fingerprint = data_fingerprint(read(lang, stage)) if callable(read) else None
            if fingerprint is not None:
                fingerprints[f"{lang}-{stage}"] = fingerprint
    for lang in fit_langs:
        corpus = load_parallel(fit["dataset"], lang, n=n_fit, split=fit.get("split"))
        fingerprints[f"{lang}-fit"] = str(data_fingerprint(corpus))
    return fingerprints


def fitted_vectors(
    model: Model,
    lang: str,
    layers: Sequence[int],
    store: CellStore,
    fit: Mapping[str, Any],
    *,
    progress: bool | None = None,
) -> dict[int, SteeringVector]:
    """Load saved vectors of ``lang``; fit the missing layers in one activation pass.

    ``fit`` holds ``dataset``, ``n``, ``split``, ``method`` and ``hyper`` (see
    :func:`fit_settings`). A saved vector is used only if its language, layer, model and
    fit settings are these (:func:`check_fitted`); otherwise the run stops naming them.
    ``progress`` is passed on to :func:`~interp_steer.fitting.fit_vectors` (unless
    ``hyper`` names it).
    """
    vectors: dict[int, SteeringVector] = {}
    for layer in layers:
        path = store.vector_path(lang, layer)
        if path is not None and path.with_name(path.name + ".safetensors").is_file():
            saved = SteeringVector.load(path)
            vectors[layer] = check_fitted(saved, _fit_expected(model, lang, layer, fit), path)
    missing = [layer for layer in layers if layer not in vectors]
    if missing:
        corpus = load_parallel(fit["dataset"], lang, n=fit["n"], split=fit["split"])
        hyper = {"progress": progress, **fit["hyper"]}
        fitted = fit_vectors(model, corpus, layers=missing, method=fit["method"], **hyper)
        for layer, vector in fitted.items():
            path = store.vector_path(lang, layer)
            if path is not None:
                vector.save(path, root=store.root)
            vectors[layer] = vector
    return vectors


def open_run(
    run_dir: str | os.PathLike[str] | None,
    config: Mapping[str, Any],
    evaluator: Callable[..., Any],
    langs: Sequence[str],
    fit_langs: Sequence[str],
    fit: Mapping[str, Any],
    stages: Sequence[Stage],
) -> CellStore:
    """Check a sweep's or transfer's settings and data before any work; return its cells.

    ``config`` gains ``"fit"`` (:func:`fit_settings` of ``fit``, which holds ``dataset``,
    ``n``, ``split``, ``method`` and ``hyper``); :func:`check_run` reads the data of
    ``langs`` and ``fit_langs``; only then is the run folder's ``config.json`` written or
    compared (:meth:`CellStore.check_config`), so an invalid run writes nothing.

    >>> store = open_run(None, {"metric": "m"}, TaskEvaluator("xcopa", n=2), ["it"], ["it"],
    ...                  {"dataset": "flores", "n": 2, "split": None, "method": "mean_diff",
    ...                   "hyper": {}}, ("select",))
    >>> store.root is None
    True
    """
    settings = {**config, "fit": fit_settings(fit["dataset"], fit["n"], fit["split"],
                                              fit["method"], fit["hyper"])}  # fmt: skip
    data = check_run(evaluator, langs, fit_langs, fit, stages)
    store = CellStore(run_dir)
    store.check_config(settings)
    store.check_data(data)
    return store


__all__ = [
    "CellStore",
    "Evaluator",
    "Score",
    "Stage",
    "TaskEvaluator",
    "check_fitted",
    "check_run",
    "open_run",
    "data_fingerprint",
    "evaluate_cell",
    "evaluator_settings",
    "fit_settings",
    "fitted_vectors",
    "model_settings",
    "vector_settings",
]
