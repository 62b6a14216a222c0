"""Layer sweep: which layer and strength steer best (paper §6.1, Fig. 7)?

For each language, one vector per layer is fitted from one activation pass
(:func:`~interp_steer.fitting.fit_vectors`), and a task is evaluated for every layer and
strength on a **selection** set. The best (layer, strength) is chosen there and only then
evaluated on the **test** set, with the unsteered baseline beside it. Selection never sees
test items: it uses the task's validation split, or a held-out head of the test items
that is then excluded from the test evaluation (recorded in ``SweepResult.selection``).

Strengths are relative by default: ``alpha`` is set per layer so that
``‖alpha v‖ / ‖h‖`` takes the values of ``ratios``, where ``‖h‖`` is the mean per-token
residual norm at that layer on the fitting texts (``v.meta["metrics"]["resid_norm"]``).
Residual norms grow with depth, so one absolute alpha means very different things at
layer 2 and layer 16; the ratio does not.

With ``run_dir``, every finished cell (baseline, each (layer, strength), each test run) is
written there atomically as JSON, and fitted vectors are saved, so an interrupted sweep
picks up where it stopped: a re-run evaluates only the missing cells. The folder's
``config.json`` holds every setting that changes a cell (model and its weights, the
scoring code's version, the evaluator's settings: task, ``n``, ``positions``,
``baseline``, the selection; the fit settings), and ``data/`` a fingerprint of each
language's items and fitting pairs; a run with other settings or data is refused naming
them, and one that fails validation writes nothing. Other languages, layers and
strengths are new cells of the same run.

Example:
    >>> from interp_steer import load_model
    >>> model = load_model("tiny")
    >>> def fake(model, lang, vector, alpha, stage):  # a stand-in for a task
    ...     return Score(0.5 if vector is None else 0.6 - 0.1 * vector.layer, 0.4, 0.7, 10)
    >>> res = layer_sweep(model, ["de"], task=fake, layers=[1, 2], ratios=(0.1, 0.5), n_fit=4)
    >>> res.score.shape, res.best("de")["layer"]
    ((1, 2, 2), 1)
"""

import functools
import hashlib
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from transformer_lens.model_bridge import TransformerBridge

from interp_steer.analysis.cells import (
    Evaluator,
    Score,
    Stage,
    TaskEvaluator,
    evaluate_cell,
    evaluator_settings,
    fitted_vectors,
    model_settings,
    open_run,
)
from interp_steer.constants import DEFAULT_RATIOS, Positions
from interp_steer.data.languages import canonical
from interp_steer.models.layers import check_layers
from interp_steer.models.loading import model_name
from interp_steer.steering.vectors import alpha_for_ratio
from interp_steer.storage import SavedResult, locks_run

FORMAT = "interp_steer.SweepResult"


# ----------------------------------------------------------------- the result


@dataclass(frozen=True, eq=False)
class SweepResult(SavedResult):
    """Scores of every language, layer and strength, the selection, and the test run.

    Attributes:
        model: Model name.
        metric: What was measured (``"xcopa accuracy"``).
        method: Fitting method.
        langs: Languages (canonical codes).
        layers: Layers, ascending.
        strengths: The strength grid: ratios ``‖alpha v‖ / ‖h‖`` if ``relative`` else alphas.
        relative: Whether ``strengths`` are ratios.
        alphas: ``[n_langs, n_layers, n_strengths]`` the absolute alphas used.
        score: ``[n_langs, n_layers, n_strengths]`` selection-stage values.
        low: Lower 95% bounds, same shape.
        high: Upper 95% bounds, same shape.
        baseline: ``[n_langs, 3]`` unsteered (value, low, high) on the selection set.
        test: ``[n_langs, 3]`` the selected cell on the test set (NaN if not run).
        test_baseline: ``[n_langs, 3]`` unsteered on the test set (NaN if not run).
        selection: What selection was done on (never test items).
        meta: Provenance (fitting data, vector norms, ...).

    Raises:
        ValueError: On any shape or label mismatch.
    """

    model: str
    metric: str
    method: str
    langs: tuple[str, ...]
    layers: tuple[int, ...]
    strengths: tuple[float, ...]
    relative: bool
    alphas: np.ndarray
    score: np.ndarray
    low: np.ndarray
    high: np.ndarray
    baseline: np.ndarray
    test: np.ndarray
    test_baseline: np.ndarray
    selection: str
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        set_ = functools.partial(object.__setattr__, self)
        set_("langs", tuple(self.langs))
        set_("layers", tuple(int(x) for x in self.layers))
        set_("strengths", tuple(float(x) for x in self.strengths))
        for name in ("alphas", "score", "low", "high", "baseline", "test", "test_baseline"):
            set_(name, np.asarray(getattr(self, name), dtype=np.float64))
        set_("meta", dict(self.meta))
        for name, labels in (("langs", self.langs), ("layers", self.layers),
                             ("strengths", self.strengths)):  # fmt: skip
            if not labels or len(set(labels)) != len(labels):
                raise ValueError(f"{name} must be unique and non-empty, got {labels}")
        grid = (len(self.langs), len(self.layers), len(self.strengths))
        for name in ("alphas", "score", "low", "high"):
            if getattr(self, name).shape != grid:
                raise ValueError(f"{name} has shape {getattr(self, name).shape}, expected {grid}")
        for name in ("baseline", "test", "test_baseline"):
            if getattr(self, name).shape != (len(self.langs), 3):
                raise ValueError(
                    f"{name} has shape {getattr(self, name).shape}, expected ({len(self.langs)}, 3)"
                )

    def best(self, lang: str) -> dict[str, Any]:
        """The selected cell of ``lang``: highest selection score (ties: earlier layer, weaker).

        A failed cell (NaN score, see ``meta["failed"]``) is never selected.

        Returns:
            ``{"layer", "strength", "alpha", "score", "low", "high", "gain"}``, ``gain``
            over the unsteered baseline on the selection set.

        Raises:
            ValueError: Every cell of ``lang`` failed.
        """
        cell = self.selected(lang)
        if cell is None:
            raise ValueError(
                f"no cell of {canonical(lang)} could be scored: every one failed "
                "(see meta['failed'])"
            )
        return cell

    def selected(self, lang: str) -> dict[str, Any] | None:
        """:meth:`best`, or None when every cell of ``lang`` failed (figures skip it)."""
        li = self.langs.index(canonical(lang))
        picked = _argbest(self.score[li])
        if picked is None:
            return None
        y, s = picked
        return {
            "layer": self.layers[y],
            "strength": self.strengths[s],
            "alpha": float(self.alphas[li, y, s]),
            "score": float(self.score[li, y, s]),
            "low": float(self.low[li, y, s]),
            "high": float(self.high[li, y, s]),
            "gain": float(self.score[li, y, s] - self.baseline[li, 0]),
        }

    def best_per_layer(self) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(index [n_langs, n_layers], values [n_langs, n_layers, 3])``.

        For each language and layer the strength with the highest selection score, and
        its (value, low, high); NaN where every strength of the layer failed.
        """
        idx = np.argmax(np.nan_to_num(self.score, nan=-np.inf), axis=-1)
        take = np.take_along_axis
        vals = np.stack([take(a, idx[..., None], -1)[..., 0]
                         for a in (self.score, self.low, self.high)], -1)  # fmt: skip
        return idx, vals

    def to_frame(self) -> pd.DataFrame:
        """One row per (lang, layer, strength)."""
        li, yi, si = np.indices(self.score.shape).reshape(3, -1)
        return pd.DataFrame(
            {
                "lang": np.asarray(self.langs)[li],
                "layer": np.asarray(self.layers)[yi],
                "strength": np.asarray(self.strengths)[si],
                "alpha": self.alphas.reshape(-1),
                "score": self.score.reshape(-1),
                "low": self.low.reshape(-1),
                "high": self.high.reshape(-1),
                "baseline": self.baseline[li, 0],
            }
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (NaN as null)."""
        out: dict[str, Any] = {"format": FORMAT, "version": 1}
        for name in ("model", "metric", "method", "relative", "selection"):
            out[name] = getattr(self, name)
        for name in ("langs", "layers", "strengths"):
            out[name] = list(getattr(self, name))
        for name in ("alphas", "score", "low", "high", "baseline", "test", "test_baseline"):
            out[name] = _nan_to_none(getattr(self, name))
        out["meta"] = dict(self.meta)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SweepResult":
        """Rebuild from :meth:`to_dict`'s output."""
        if data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} (format={data.get('format')!r})")
        arrays = {
            k: np.asarray(data[k], dtype=np.float64)
            for k in ("alphas", "score", "low", "high", "baseline", "test", "test_baseline")
        }
        return cls(
            model=str(data["model"]),
            metric=str(data["metric"]),
            method=str(data["method"]),
            langs=tuple(data["langs"]),
            layers=tuple(data["layers"]),
            strengths=tuple(data["strengths"]),
            relative=bool(data["relative"]),
            selection=str(data["selection"]),
            meta=dict(data["meta"]),
            **arrays,
        )


def _nan_to_none(arr: np.ndarray) -> Any:
    out = np.asarray(arr, dtype=object)
    out[np.isnan(arr)] = None
    return out.tolist()


@locks_run("run_dir")  # one run at a time writes a run folder
def layer_sweep(
    model: TransformerBridge,
    langs: Sequence[str],
    *,
    task: str | Evaluator,
    layers: Sequence[int] | None = None,
    method: str = "mean_diff",
    ratios: Sequence[float] | None = DEFAULT_RATIOS,
    alphas: Sequence[float] | None = None,
    fit_dataset: str = "flores",
    n_fit: int = 200,
    fit_split: str | None = None,
    select_split: str = "val",
    select_items: int | None = None,
    test: bool = True,
    n: int | None = None,
    positions: Positions = "all",
    baseline: str = "basic",
    run_dir: str | os.PathLike[str] | None = None,
    **fit_hyper: Any,
) -> SweepResult:
    """Fit a vector per layer and evaluate every (layer, strength); pick the best.

    Args:
        model: The bridge.
        langs: Languages to sweep (any spelling).
        task: A task name (evaluated by :class:`TaskEvaluator` with ``select_split`` /
            ``select_items``, ``n``, ``positions`` and ``baseline``) or any
            :class:`Evaluator`.
        layers: Layers to sweep; all by default.
        method: Fitting method for :func:`~interp_steer.fitting.fit_vectors`.
        ratios: Relative strengths ``‖alpha v‖ / ‖h‖`` (default grid), or None.
        alphas: Absolute strengths instead of ``ratios``.
        fit_dataset: Parallel dataset to fit on.
        n_fit: Pairs to fit on.
        fit_split: Its split (default: the dataset's).
        select_split: Selection split for a task name (see :class:`TaskEvaluator`).
        select_items: Hold out this many test items for selection instead.
        test: Evaluate the selected cell and the baseline on the test stage.
        n: Items per evaluation (task names only).
        positions: Where vectors are added (task names only).
        baseline: Prompting baseline (task names only).
        run_dir: Folder for resumable cells and fitted vectors.
        **fit_hyper: Passed on to ``fit_vectors`` (e.g. ``pooling="last"``).

    Returns:
        A :class:`SweepResult`.

    Raises:
        ValueError: A bad setting (checked before any work and before ``run_dir`` is
            written), or :class:`~interp_steer.storage.SettingsError`: ``run_dir`` holds a
            run with other settings.

    >>> from interp_steer import load_model
    >>> res = layer_sweep(load_model("tiny"), ["sw"], task="xcopa", layers=[2], ratios=(0.1,),
    ...                   n=2, n_fit=4, test=False)
    >>> res.selection, res.score.shape
    ('xcopa val split', (1, 1, 1))
    """
    if (ratios is None) == (alphas is None):
        raise ValueError("give exactly one of ratios (relative strengths) or alphas")
    strengths = tuple(float(x) for x in (ratios if ratios is not None else alphas or ()))
    if not strengths or not all(math.isfinite(x) for x in strengths):
        raise ValueError(f"strengths must be finite numbers, got {strengths}")
    evaluator: Callable[..., Score]
    if isinstance(task, str):
        evaluator = TaskEvaluator(task, select_split=select_split, select_items=select_items,
                                  n=n, baseline=baseline, positions=positions)  # fmt: skip
    else:
        evaluator = task
    metric = str(getattr(evaluator, "name", getattr(evaluator, "__name__", "metric")))
    selection = str(getattr(evaluator, "selection", "the evaluator's select stage"))
    codes = list(dict.fromkeys(canonical(x) for x in langs))
    if not codes:
        raise ValueError("give at least one language")
    layer_tuple = check_layers(model, range(int(model.cfg.n_layers)) if layers is None else layers)
    fit = {"dataset": fit_dataset, "n": n_fit, "split": fit_split, "method": method,
           "hyper": fit_hyper}  # fmt: skip
    config = {
        **model_settings(model),
        "metric": metric,
        "selection": selection,
        "evaluator": evaluator_settings(evaluator),
        "relative": ratios is not None,
    }
    stages: tuple[Stage, ...] = ("select", "test") if test else ("select",)
    store = open_run(run_dir, config, evaluator, codes, codes, fit, stages)

    grid = (len(codes), len(layer_tuple), len(strengths))
    arrays = {k: np.full(grid, np.nan) for k in ("alphas", "score", "low", "high")}
    base, test_arr, test_base = (np.full((len(codes), 3), np.nan) for _ in range(3))
    norms: dict[str, dict[str, float]] = {}
    failed: dict[str, str] = {}  # cell key -> why it could not be scored
    for li, lang in enumerate(codes):
        b = evaluate_cell(store, f"{lang}/baseline-select", evaluator, model, lang, None,
                             0.0, "select", failed=failed)  # fmt: skip
        base[li] = (b["value"], b["low"], b["high"])
        keys = {
            (y, s): f"{lang}/L{layer}-s{_tag(strength)}"
            for y, layer in enumerate(layer_tuple)
            for s, strength in enumerate(strengths)
        }
        todo = sorted({layer_tuple[y] for (y, s), key in keys.items() if store.get(key) is None})
        vectors = fitted_vectors(model, lang, todo, store, fit) if todo else {}
        norms[lang] = {}
        for (y, s), key in keys.items():
            layer, strength = layer_tuple[y], strengths[s]
            cell = store.get(key)
            if cell is None:
                vector = vectors[layer]
                alpha = alpha_for_ratio(vector, strength) if ratios is not None else strength
                cell = evaluate_cell(store, key, evaluator, model, lang, vector, alpha, "select",
                                        layer=layer, strength=strength,
                                        vector_norm=vector.norm)  # fmt: skip
            if "failed" in cell:
                failed[key] = cell["failed"]
            if "vector_norm" in cell:
                norms[lang][str(layer)] = cell["vector_norm"]
            arrays["alphas"][li, y, s] = cell["alpha"]
            arrays["score"][li, y, s] = cell["value"]
            arrays["low"][li, y, s] = cell["low"]
            arrays["high"][li, y, s] = cell["high"]
        picked = _argbest(arrays["score"][li])  # selected on the select stage only
        if test and picked is not None:  # no test run when every cell failed
            y, s = picked
            layer = layer_tuple[y]
            alpha = float(arrays["alphas"][li, y, s])
            key = f"{lang}/test-L{layer}-s{_tag(strengths[s])}"
            chosen = None
            if store.get(key) is None:  # reuse the vector fitted above, else load or fit it
                chosen = (
                    vectors.get(layer) or fitted_vectors(model, lang, [layer], store, fit)[layer]
                )
            t = evaluate_cell(store, key, evaluator, model, lang, chosen, alpha, "test",
                                 failed=failed, layer=layer, strength=strengths[s])  # fmt: skip
            tb = evaluate_cell(store, f"{lang}/baseline-test", evaluator, model, lang, None,
                                  0.0, "test", failed=failed)  # fmt: skip
            test_arr[li] = (t["value"], t["low"], t["high"])
            test_base[li] = (tb["value"], tb["low"], tb["high"])

    return SweepResult(
        model=model_name(model),
        metric=metric,
        method=method,
        langs=tuple(codes),
        layers=layer_tuple,
        strengths=strengths,
        relative=ratios is not None,
        baseline=base,
        test=test_arr,
        test_baseline=test_base,
        selection=selection,
        meta={
            "fit": json.loads(json.dumps(fit, default=str)),
            "vector_norms": norms,
            "run_dir": None if run_dir is None else str(run_dir),
            "failed": failed,
        },  # fmt: skip
        **arrays,
    )


def _tag(x: float) -> str:
    """A file-name-safe, exact tag for a strength: ``0.25`` -> ``0.25``."""
    text = repr(float(x))
    if all(ch.isalnum() or ch in ".-" for ch in text):
        return text
    return hashlib.sha1(text.encode()).hexdigest()[:10]  # pragma: no cover


def _argbest(score: np.ndarray) -> tuple[int, int] | None:
    """Index of the highest score; the first maximum (earlier layer, weaker) wins ties.

    NaN (a failed cell) is never the highest; None when every score is NaN.
    """
    if np.isnan(score).all():
        return None
    scores = np.nan_to_num(score, nan=-np.inf)
    y, s = np.unravel_index(int(np.argmax(scores)), scores.shape)
    return int(y), int(s)


__all__ = [
    "FORMAT",
    "SweepResult",
    "layer_sweep",
]
