"""Transfer matrix: a vector fitted on language A, applied to prompts in language B (§5.3, Fig. 3).

Cell ``(A, B)`` is the gain on B's task over B's unsteered baseline when B's prompts are
steered with A's vector (same layer, same relative strength). The diagonal is ordinary
steering; off-diagonal cells show how language-specific a vector is. An extra column,
English damage, is the change in English accuracy when A's vector is applied to English
prompts (negative: the vector hurts English).

Example:
    >>> from interp_steer import load_model
    >>> from interp_steer.analysis import Score
    >>> def fake(model, lang, vector, alpha, stage):  # a stand-in for a task
    ...     hit = vector is not None and vector.source_lang == lang
    ...     return Score(0.7 if hit else 0.5, 0.4, 0.8, 10)
    >>> res = transfer_matrix(load_model("tiny"), ["de", "sw"], task=fake, layer=1, n_fit=4)
    >>> res.gain.round(2).tolist(), res.english_damage.tolist()
    ([[0.2, 0.0], [0.0, 0.2]], [0.0, 0.0])
"""

import functools
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from interp_steer.analysis.cells import (
    CellStore,
    Score,
    Stage,
    TaskEvaluator,
    evaluate_cell,
    evaluator_settings,
    fitted_vectors,
    model_settings,
    open_run,
)
from interp_steer.constants import Positions
from interp_steer.data.languages import ENGLISH, canonical
from interp_steer.evaluation.harness import english_damage
from interp_steer.models.backend import Model
from interp_steer.models.layers import check_layers
from interp_steer.models.loading import model_name
from interp_steer.progress import progress_bar
from interp_steer.steering.intervention import NonFiniteError
from interp_steer.steering.vectors import SteeringVector, alpha_for_ratio
from interp_steer.storage import SavedResult, locks_run, nan_as_null

FORMAT = "interp_steer.TransferResult"
DEFAULT_RATIO = 0.25
"""Default strength: ``‖alpha v‖ / ‖h‖ = 0.25``."""

Damage = Callable[[Model, SteeringVector, float], float]
"""``(model, vector, alpha) -> steered minus unsteered English accuracy``."""


@dataclass(frozen=True, eq=False)
class TransferResult(SavedResult):
    """Steered scores of every (source vector, target language) pair, and English damage.

    Attributes:
        model: Model name.
        metric: What was measured.
        method: Fitting method.
        sources: Languages the vectors were fitted on (rows).
        targets: Languages evaluated (columns).
        layer: The layer every vector is added at.
        strength: ``‖alpha v‖ / ‖h‖`` if ``relative``, else the absolute alpha.
        relative: Whether ``strength`` is a ratio.
        alphas: ``[n_sources]`` the absolute alpha of each source's vector.
        score: ``[n_sources, n_targets]`` steered values.
        low: Lower 95% bounds, same shape.
        high: Upper 95% bounds, same shape.
        baseline: ``[n_targets, 3]`` unsteered (value, low, high).
        english_damage: ``[n_sources]`` steered minus unsteered English (NaN if not run).
        stage: What was evaluated (e.g. ``"xcopa test split"``).
        meta: Provenance.

    Raises:
        ValueError: On any shape or label mismatch.
    """

    model: str
    metric: str
    method: str
    sources: tuple[str, ...]
    targets: tuple[str, ...]
    layer: int
    strength: float
    relative: bool
    alphas: np.ndarray
    score: np.ndarray
    low: np.ndarray
    high: np.ndarray
    baseline: np.ndarray
    english_damage: np.ndarray
    stage: str
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        set_ = functools.partial(object.__setattr__, self)
        set_("sources", tuple(self.sources))
        set_("targets", tuple(self.targets))
        for name in ("alphas", "score", "low", "high", "baseline", "english_damage"):
            set_(name, np.asarray(getattr(self, name), dtype=np.float64))
        set_("meta", dict(self.meta))
        for name in ("sources", "targets"):
            labels = getattr(self, name)
            if not labels or len(set(labels)) != len(labels):
                raise ValueError(f"{name} must be unique and non-empty, got {labels}")
        s, t = len(self.sources), len(self.targets)
        expected = {"alphas": (s,), "score": (s, t), "low": (s, t), "high": (s, t),
                    "baseline": (t, 3), "english_damage": (s,)}  # fmt: skip
        for name, shape in expected.items():
            if getattr(self, name).shape != shape:
                raise ValueError(f"{name} has shape {getattr(self, name).shape}, expected {shape}")

    @property
    def gain(self) -> np.ndarray:
        """``[n_sources, n_targets]``: steered minus the target's unsteered baseline."""
        return self.score - self.baseline[None, :, 0]

    def to_frame(self) -> pd.DataFrame:
        """One row per (source, target) with score, interval, baseline and gain."""
        si, ti = np.indices(self.score.shape).reshape(2, -1)
        return pd.DataFrame(
            {
                "source": np.asarray(self.sources)[si],
                "target": np.asarray(self.targets)[ti],
                "score": self.score.reshape(-1),
                "low": self.low.reshape(-1),
                "high": self.high.reshape(-1),
                "baseline": self.baseline[ti, 0],
                "gain": self.gain.reshape(-1),
                "english_damage": self.english_damage[si],
            }
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (NaN as null)."""
        out: dict[str, Any] = {"format": FORMAT, "version": 1}
        for name in ("model", "metric", "method", "layer", "strength", "relative", "stage"):
            out[name] = getattr(self, name)
        out["sources"], out["targets"] = list(self.sources), list(self.targets)
        for name in ("alphas", "score", "low", "high", "baseline", "english_damage"):
            out[name] = nan_as_null(getattr(self, name))
        out["meta"] = dict(self.meta)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TransferResult":
        """Rebuild from :meth:`to_dict`'s output."""
        if data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} (format={data.get('format')!r})")
        arrays = {
            k: np.asarray(data[k], dtype=np.float64)
            for k in ("alphas", "score", "low", "high", "baseline", "english_damage")
        }
        return cls(
            model=str(data["model"]),
            metric=str(data["metric"]),
            method=str(data["method"]),
            sources=tuple(data["sources"]),
            targets=tuple(data["targets"]),
            layer=int(data["layer"]),
            strength=float(data["strength"]),
            relative=bool(data["relative"]),
            stage=str(data["stage"]),
            meta=dict(data["meta"]),
            **arrays,
        )


@locks_run("run_dir")  # one run at a time writes a run folder
def transfer_matrix(
    model: Model,
    langs: Sequence[str],
    *,
    task: str | Callable[..., Score],
    layer: int,
    method: str = "mean_diff",
    ratio: float | None = None,
    alpha: float | None = None,
    targets: Sequence[str] | None = None,
    stage: Stage = "test",
    english: bool | Damage = True,
    fit_dataset: str = "flores",
    n_fit: int = 200,
    fit_split: str | None = None,
    n: int | None = None,
    positions: Positions = "all",
    baseline: str = "basic",
    select_split: str = "val",
    select_items: int | None = None,
    run_dir: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
    **fit_hyper: Any,
) -> TransferResult:
    """Apply each language's vector to every language's prompts; measure the gains.

    Choose ``layer`` and the strength beforehand, e.g. from a
    :func:`~interp_steer.analysis.layer_sweep` selected on validation data, then run the matrix
    on the test stage.

    Args:
        model: The model (a bridge, or a HookedTransformer on TransformerLens 3.x).
        langs: Source languages: a vector is fitted on each (any spelling).
        task: A task name (see :class:`~interp_steer.analysis.TaskEvaluator`) or an evaluator
            ``(model, lang, vector, alpha, stage) -> Score``.
        layer: The layer of every vector.
        method: Fitting method.
        ratio: Relative strength ``‖alpha v‖ / ‖h‖`` (per source vector); default
            :data:`DEFAULT_RATIO` unless ``alpha`` is given.
        alpha: Absolute strength instead of ``ratio``.
        targets: Languages to evaluate on; the sources by default.
        stage: ``"test"`` (default) or ``"select"``.
        english: Measure English damage: True (with the task's English data through
            :func:`~interp_steer.evaluation.english_damage`, or the evaluator on ``"en"``),
            False, or a :data:`Damage` callable.
        fit_dataset: Parallel dataset to fit on.
        n_fit: Pairs to fit on.
        fit_split: Its split.
        n: Items per evaluation (task names only).
        positions: Where vectors are added (task names only).
        baseline: Prompting baseline (task names only).
        select_split: Passed to :class:`~interp_steer.analysis.TaskEvaluator`.
        select_items: Passed to :class:`~interp_steer.analysis.TaskEvaluator`.
        run_dir: Folder for resumable cells and fitted vectors. Its ``config.json`` holds
            every setting that changes a cell (as for
            :func:`~interp_steer.analysis.layer_sweep`, and the layer, strength and English
            damage); a run with other settings is refused naming them.
        progress: A bar over the matrix's cells (resumed ones count as done at once) and
            the fitting's bars; None follows :func:`~interp_steer.progress.set_progress`.
        **fit_hyper: Passed on to ``fit_vectors``.

    Returns:
        A :class:`TransferResult`.

    Raises:
        ValueError: A bad setting (checked before any work and before ``run_dir`` is
            written), or :class:`~interp_steer.storage.SettingsError`: ``run_dir`` holds a
            run with other settings.

    >>> from interp_steer import load_model
    >>> res = transfer_matrix(load_model("tiny"), ["it", "sw"], task="xcopa", layer=2, n=2,
    ...                       n_fit=4, english=False)
    >>> res.gain.shape, res.stage
    ((2, 2), 'xcopa test split')
    """
    if ratio is not None and alpha is not None:
        raise ValueError("give exactly one of ratio (relative strength) or alpha")
    if ratio is None and alpha is None:
        ratio = DEFAULT_RATIO
    strength = float(ratio if ratio is not None else alpha)  # type: ignore[arg-type]
    if not math.isfinite(strength):
        raise ValueError(f"strength must be finite, got {strength}")
    (layer,) = check_layers(model, [layer])
    if isinstance(task, str):
        evaluator: Callable[..., Score] = TaskEvaluator(
            task, select_split=select_split, select_items=select_items, n=n,
            baseline=baseline, positions=positions,
        )  # fmt: skip
    else:
        evaluator = task
    metric = str(getattr(evaluator, "name", getattr(evaluator, "__name__", "metric")))
    attribute = "selection" if stage == "select" else "testing"
    described = str(getattr(evaluator, attribute, f"the evaluator's {stage} stage"))
    if stage not in ("select", "test"):
        raise ValueError(f"stage must be 'select' or 'test', got {stage!r}")
    sources = list(dict.fromkeys(canonical(x) for x in langs))
    target_list = list(dict.fromkeys(canonical(x) for x in (targets or sources)))
    if not sources:
        raise ValueError("give at least one language")
    fit = {"dataset": fit_dataset, "n": n_fit, "split": fit_split, "method": method,
           "hyper": fit_hyper}  # fmt: skip
    config = {
        **model_settings(model),
        "metric": metric,
        "stage": described,
        "evaluator": evaluator_settings(evaluator),
        "layer": layer,
        "strength": strength,
        "relative": ratio is not None,
        "english": english if isinstance(english, bool) else {"damage": english},
    }
    store = open_run(run_dir, config, evaluator, target_list, sources, fit, (stage,))

    s_n, t_n = len(sources), len(target_list)
    score, low, high = (np.full((s_n, t_n), np.nan) for _ in range(3))
    base = np.full((t_n, 3), np.nan)
    damage = np.full(s_n, np.nan)
    alphas = np.full(s_n, np.nan)
    vectors = [
        fitted_vectors(model, src, [layer], store, fit, progress=progress)[layer] for src in sources
    ]
    alphas[:] = [alpha_for_ratio(v, strength) if ratio is not None else strength for v in vectors]
    # targets outer: whatever an evaluator keeps per target language (EnglishKL's English
    # reference) serves the baseline and every source in a row
    failed: dict[str, str] = {}  # cell key -> why it could not be scored (a NaN cell)
    cells = t_n * (s_n + 1) + (s_n if english is not False else 0)
    with progress_bar(total=cells, desc="transfer cells", unit="cell", progress=progress) as bar:
        for ti, tgt in enumerate(target_list):
            b = evaluate_cell(store, f"baseline-{tgt}", evaluator, model, tgt, None, 0.0, stage,
                              failed=failed)  # fmt: skip
            bar.update()
            base[ti] = (b["value"], b["low"], b["high"])
            for si, (src, vector) in enumerate(zip(sources, vectors, strict=True)):
                cell = evaluate_cell(store, f"{src}-to-{tgt}", evaluator, model, tgt, vector,
                                     float(alphas[si]), stage, failed=failed,
                                     source=src)  # fmt: skip
                bar.update()
                score[si, ti], low[si, ti], high[si, ti] = cell["value"], cell["low"], cell["high"]
        if english is not False:
            for si, (src, vector) in enumerate(zip(sources, vectors, strict=True)):
                damage[si] = _damage_cell(store, failed, english, evaluator, task, model, vector,
                                          float(alphas[si]), stage, n, positions, src)  # fmt: skip
                bar.update()
    return TransferResult(
        model=model_name(model),
        metric=metric,
        method=method,
        sources=tuple(sources),
        targets=tuple(target_list),
        layer=layer,
        strength=strength,
        relative=ratio is not None,
        alphas=alphas,
        score=score,
        low=low,
        high=high,
        baseline=base,
        english_damage=damage,
        stage=described,
        meta={
            "fit": json.loads(json.dumps(fit, default=str)),
            "run_dir": None if run_dir is None else str(run_dir),
            "failed": failed,
        },  # fmt: skip
    )


def _damage_cell(
    store: CellStore,
    failed: dict[str, str],
    english: bool | Damage,
    evaluator: Callable[..., Score],
    task: str | Callable[..., Score],
    model: Model,
    vector: SteeringVector,
    alpha: float,
    stage: Stage,
    n: int | None,
    positions: Positions,
    src: str,
) -> float:
    """One source vector's English damage, from the run folder or measured and stored."""
    key = f"english-damage-{src}"
    done = store.get(key)
    if done is None:
        # a task evaluator names its task: tasks without English data (XCOPA) are then
        # measured through their English versions
        name = task if isinstance(task, str) else getattr(evaluator, "task", None)
        try:
            if callable(english):
                delta = float(english(model, vector, alpha))
            elif isinstance(name, str):
                delta = float(english_damage(
                    model, name, vector, alpha=alpha, n=getattr(evaluator, "n", n),
                    positions=getattr(evaluator, "positions", positions), progress=False,
                ).delta)  # fmt: skip
            else:
                steered = evaluator(model, ENGLISH, vector, alpha, stage).value
                delta = float(steered - evaluator(model, ENGLISH, None, 0.0, stage).value)
            if not math.isfinite(delta):
                raise NonFiniteError(f"the English damage is {delta} (alpha={alpha:g})")
            done = store.put(key, {"delta": delta, "alpha": alpha})
        except Exception as err:
            cause = NonFiniteError.found_in(err)
            if cause is None:
                raise
            done = store.put(key, {"delta": None, "alpha": alpha, "failed": str(cause)})
    if "failed" in done:
        failed[key] = str(done["failed"])
    return math.nan if done["delta"] is None else float(done["delta"])  # a failed one is NaN


__all__ = [
    "FORMAT",
    "TransferResult",
    "transfer_matrix",
]
