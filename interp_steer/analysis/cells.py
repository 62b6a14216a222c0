"""Cells of a sweep: one evaluation each, computed once and kept in a run folder.

A cell is one evaluation of one language with one vector (or none) at one strength. An
:data:`Evaluator` computes its :class:`Score` (:class:`TaskEvaluator` for tasks), and a
:class:`CellStore` keeps finished cells as JSON files so that an interrupted run
(:func:`~interp_steer.analysis.layer_sweep`, :func:`~interp_steer.analysis.transfer_matrix`)
picks up where it stopped. Fitted vectors are kept beside the cells.

Example:
    >>> TaskEvaluator("mgsm", select_items=50).selection
    'mgsm test items 0..49 (held out)'
"""

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from tqdm.auto import tqdm
from transformer_lens.model_bridge import TransformerBridge

from interp_steer.constants import Positions
from interp_steer.data.parallel import load_parallel
from interp_steer.data.tasks import load_task
from interp_steer.evaluation.harness import evaluate
from interp_steer.fitting.fit import fit_vectors
from interp_steer.steering.vectors import SteeringVector
from interp_steer.storage import atomic_write_json

Stage = Literal["select", "test"]


@dataclass(frozen=True)
class Score:
    """One evaluation: a value (accuracy or another metric) with its 95% interval.

    >>> Score(0.5, 0.3, 0.7, 20).value
    0.5
    """

    value: float
    low: float
    high: float
    n: int


Evaluator = Callable[[TransformerBridge, str, SteeringVector | None, float, Stage], Score]
"""``(model, lang, vector or None, alpha, stage) -> Score``, stage ``"select"`` or ``"test"``.

Optional attributes: ``name`` (the metric's name) and ``selection`` (what the select stage
evaluates on, for the record). :class:`TaskEvaluator` is the one for tasks.
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
        items = full.items[:k] if stage == "select" else full.items[k:]
        if stage == "select" and self.n is not None:
            items = items[: self.n]
        if stage == "test" and self.n is not None:
            items = items[: self.n]
        if not items:
            raise ValueError(f"no {stage} items left with select_items={k}")
        return replace(full, items=tuple(items))

    def __call__(
        self,
        model: TransformerBridge,
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
        return Score(float(res.accuracy), float(low), float(high), int(res.n))


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
            return dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError):
            return None  # unreadable: compute again

    def put(self, key: str, cell: Mapping[str, Any]) -> dict[str, Any]:
        """Store a cell (atomically) and return it."""
        if self.root is not None:
            atomic_write_json(self._path(key), dict(cell))
        return dict(cell)

    def check_config(self, config: Mapping[str, Any]) -> None:
        """Record the run's settings; refuse to mix cells of a different configuration."""
        if self.root is None:
            return
        path = self.root / "config.json"
        if path.is_file():
            old = json.loads(path.read_text(encoding="utf-8"))
            if old != json.loads(json.dumps(dict(config))):
                changed = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
                raise ValueError(
                    f"{self.root} holds a run with different settings ({', '.join(changed)}); "
                    "use another run_dir"
                )
        else:
            atomic_write_json(path, dict(config))

    def vector_path(self, lang: str, layer: int) -> Path | None:
        """Where the vector of ``lang`` at ``layer`` is kept (None without a run folder)."""
        return None if self.root is None else self.root / "vectors" / lang / f"L{layer}"


def _score_cell(score: Score, **extra: Any) -> dict[str, Any]:
    return {"value": score.value, "low": score.low, "high": score.high, "n": score.n, **extra}


def evaluate_cell(
    store: CellStore,
    key: str,
    evaluator: Callable[..., Score],
    model: TransformerBridge,
    lang: str,
    vector: SteeringVector | None,
    alpha: float,
    stage: Stage,
    **extra: Any,
) -> dict[str, Any]:
    """Return the cell under ``key``: from ``store`` if finished, else evaluated and stored.

    ``extra`` fields (layer, ratio, source, ...) are stored with the score, alpha and stage.
    """
    cell = store.get(key)
    if cell is None:
        score = evaluator(model, lang, vector, alpha, stage)
        cell = store.put(key, _score_cell(score, alpha=alpha, stage=stage, **extra))
    return cell


def fitted_vectors(
    model: TransformerBridge,
    lang: str,
    layers: Sequence[int],
    store: CellStore,
    fit: Mapping[str, Any],
) -> dict[int, SteeringVector]:
    """Load saved vectors of ``lang``; fit the missing layers in one activation pass."""
    vectors: dict[int, SteeringVector] = {}
    for layer in layers:
        path = store.vector_path(lang, layer)
        if path is not None and path.with_name(path.name + ".safetensors").is_file():
            vectors[layer] = SteeringVector.load(path)
    missing = [layer for layer in layers if layer not in vectors]
    if missing:
        corpus = load_parallel(fit["dataset"], lang, n=fit["n"], split=fit["split"])
        fitted = fit_vectors(model, corpus, layers=missing, method=fit["method"], **fit["hyper"])
        for layer, vector in fitted.items():
            path = store.vector_path(lang, layer)
            if path is not None:
                vector.save(path)
            vectors[layer] = vector
    return vectors


class Counted:
    """Wrap an evaluator ``(model, lang, vector, alpha, stage) -> Score`` with a progress bar.

    Attributes are forwarded, so ``name``/``selection`` still describe the wrapped one.
    Cells resumed from disk are not evaluated and do not advance the bar.
    """

    def __init__(self, evaluator: Callable[..., Any], total: int, desc: str) -> None:
        self._evaluator = evaluator
        self._bar = tqdm(total=total, desc=desc, unit="cell")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._evaluator, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Evaluate one cell with the wrapped evaluator, then advance the bar."""
        try:
            return self._evaluator(*args, **kwargs)
        finally:
            self._bar.update()


__all__ = [
    "CellStore",
    "Counted",
    "Evaluator",
    "Score",
    "Stage",
    "TaskEvaluator",
    "evaluate_cell",
    "fitted_vectors",
]
