"""Layer sweep: which layer and strength steer best (paper §6.1, Fig. 7)?

For each language, one vector per layer is fitted from one activation pass
(:func:`~interp_steer.fitting.fit_vectors`), and a task is evaluated for every layer and
strength on a **selection** set. The best (layer, strength) is chosen there and only then
evaluated on the **test** set, with the unsteered baseline beside it. Selection never sees
test items: it uses the task's validation split, or a held-out head of the test items
that is then excluded from the test evaluation (recorded in ``SweepResult.selection``).

The selected cell's selection score is the best of the whole grid on the items it was
chosen on, so it overstates what steering does. The result to read is the **test** one:
:meth:`SweepResult.summary` gives, per language, the gain over unsteered on the test items
with its paired 95% interval (bootstrap over items) and McNemar p-value, the selection gain
only after it, and one sentence saying what the numbers mean (:attr:`SweepSummary.verdict`).

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
    >>> summary = res.summary("de")  # the held-out test result first
    >>> summary.test_gain, summary.select_gain, summary.n_test
    (0.0, 0.0, 10)
    >>> summary.verdict  # the fake task gives no per-item results to pair
    'No reliable change on held-out items (no interval: per-item results were not recorded).'
"""

import dataclasses
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
from interp_steer.evaluation.results import EvalResult
from interp_steer.evaluation.statistics import mcnemar_exact, paired_bootstrap
from interp_steer.models.backend import Model
from interp_steer.models.layers import check_layers
from interp_steer.models.loading import model_name
from interp_steer.progress import progress_bar
from interp_steer.steering.vectors import alpha_for_ratio
from interp_steer.storage import SavedResult, locks_run, nan_as_null

FORMAT = "interp_steer.SweepResult"

BOOTSTRAP_RESAMPLES = 2000
"""Resamples of the paired bootstrap interval of a sweep's test gain (seed 0)."""


# ----------------------------------------------------------------- the summary


def _nan(x: Any) -> float:
    return math.nan if x is None else float(x)


def _ci(low: float, high: float) -> str:
    return f"95% CI {low:+.3f} to {high:+.3f}"


@dataclass(frozen=True)
class SweepSummary:
    """What a sweep found for one language: the held-out test result, then the selection.

    The test numbers are the result: the selected (layer, strength) and the unsteered
    model on test items the selection never saw, their difference with a paired 95%
    interval (bootstrap over items) and McNemar's exact p-value. The selection numbers come
    second: the selected cell is the best of the whole grid on its selection items, so its
    gain there is optimistic. NaN where a number is unknown (no test stage, a failed test
    cell, or no per-item results to pair).

    Attributes:
        lang: Canonical language code.
        metric: What was measured (``"xcopa accuracy"``).
        layer: The selected layer.
        strength: The selected strength (a ratio if ``relative``, else an alpha).
        alpha: The absolute alpha used.
        relative: Whether ``strength`` is a ratio ``‖alpha v‖ / ‖h‖``.
        testing: What the test stage evaluated on (``"xcopa test split"``), ``""`` if not
            recorded, or None when the sweep had no held-out test stage.
        n_test: Test items (None when unknown).
        test_steered: The selected cell's value on the test items.
        test_unsteered: The unsteered value on the same items.
        test_gain: ``test_steered - test_unsteered``.
        test_low: Lower bound of the paired 95% interval of ``test_gain``.
        test_high: Upper bound of it.
        p_value: McNemar's exact p-value of "no difference" on the test items.
        selection: What the selection stage evaluated on.
        select_score: The selected cell's value on the selection items.
        select_unsteered: The unsteered value on the selection items.

    >>> s = SweepSummary("sw", "xcopa accuracy", 6, 0.5, 4.0, True, "xcopa test split", 64,
    ...                  0.5, 0.58, -0.08, -0.16, -0.01, 0.04, "xcopa val split", 0.7, 0.6)
    >>> print(s.line())
    layer 6, ratio 0.5 (alpha 4): -0.080 (95% CI -0.160 to -0.010, p=0.04) over unsteered \
on 64 held-out items (xcopa test split); selected on xcopa val split: +0.100
    >>> s.verdict
    'Steering lowered accuracy here: -0.080 on 64 held-out items (95% CI -0.160 to -0.010).'
    """

    lang: str
    metric: str
    layer: int
    strength: float
    alpha: float
    relative: bool
    testing: str | None
    n_test: int | None
    test_steered: float
    test_unsteered: float
    test_gain: float
    test_low: float
    test_high: float
    p_value: float
    selection: str
    select_score: float
    select_unsteered: float

    @property
    def select_gain(self) -> float:
        """The selected cell's gain over unsteered on the selection items (optimistic)."""
        return self.select_score - self.select_unsteered

    @property
    def has_test(self) -> bool:
        """Whether the sweep had a held-out test stage for this language."""
        return self.testing is not None

    @property
    def has_interval(self) -> bool:
        """Whether the test gain has a paired interval (per-item results were recorded)."""
        return math.isfinite(self.test_low) and math.isfinite(self.test_high)

    def _what(self) -> str:
        return "accuracy" if self.metric.endswith("accuracy") else self.metric

    def _items(self) -> str:
        return "held-out items" if self.n_test is None else f"{self.n_test} held-out items"

    def _cell(self) -> str:
        if self.relative:
            return f"layer {self.layer}, ratio {self.strength:g} (alpha {self.alpha:.3g})"
        return f"layer {self.layer}, alpha {self.strength:g}"

    @property
    def verdict(self) -> str:
        """One plain sentence saying what the numbers mean, from the test result.

        Raised (the interval lies above 0), lowered (a negative gain: "steering lowered
        accuracy here"), no reliable change (the interval includes 0, or there is none);
        without a test stage it says so and that the selection gain is optimistic.
        """
        what = self._what()
        if not self.has_test:
            return (
                f"No held-out test split: the selection gain ({self.select_gain:+.3f}) is the "
                "best cell of the grid on the items it was chosen on, so it overstates what "
                "steering does."
            )
        if not math.isfinite(self.test_gain):
            return "The held-out test run could not be scored (see meta['failed'])."
        ci = _ci(self.test_low, self.test_high)
        if self.has_interval and self.test_low > 0:
            return f"Steering raised {what} on held-out items: {self.test_gain:+.3f} ({ci})."
        if self.test_gain < 0:
            said = f"Steering lowered {what} here: {self.test_gain:+.3f} on {self._items()}"
            if not self.has_interval:
                return f"{said} (no interval: per-item results were not recorded)."
            return f"{said} ({ci}{'' if self.test_high < 0 else ', which includes 0'})."
        if not self.has_interval:
            return (
                "No reliable change on held-out items (no interval: per-item results were "
                "not recorded)."
            )
        return (
            f"No reliable change on held-out items (the interval includes 0): "
            f"{self.test_gain:+.3f}, {ci}."
        )

    def line(self) -> str:
        """The result on one line: the test gain, its interval and p-value, then the selection.

        Without a test stage the line says ``no held-out test split`` and calls the
        selection gain what it is.
        """
        select = f"selected on {self.selection}: {self.select_gain:+.3f}"
        if not self.has_test:
            return (
                f"{self._cell()}: no held-out test split; {select} over unsteered "
                "(a selection score, not a result)"
            )
        if not math.isfinite(self.test_gain):
            return f"{self._cell()}: the held-out test run could not be scored; {select}"
        if self.has_interval:
            p = "" if math.isnan(self.p_value) else f", p={self.p_value:.2g}"
            stats = f"({_ci(self.test_low, self.test_high)}{p})"
        else:
            stats = "(no paired interval: per-item results not recorded)"
        where = f" ({self.testing})" if self.testing else ""
        return (
            f"{self._cell()}: {self.test_gain:+.3f} {stats} over unsteered on "
            f"{self._items()}{where}; {select}"
        )

    def to_row(self) -> dict[str, Any]:
        """A table row: the cell, then the test columns (``test_*``), then ``select_*``."""
        return {
            "lang": self.lang,
            "layer": self.layer,
            "strength": self.strength,
            "alpha": self.alpha,
            "test_gain": self.test_gain,
            "test_ci_low": self.test_low,
            "test_ci_high": self.test_high,
            "test_p_value": self.p_value,
            "test_n": math.nan if self.n_test is None else self.n_test,
            "test_steered": self.test_steered,
            "test_unsteered": self.test_unsteered,
            "select_gain": self.select_gain,
            "select_score": self.select_score,
            "select_unsteered": self.select_unsteered,
        }


def paired_gain(
    unsteered: Sequence[bool], steered: Sequence[bool]
) -> tuple[float, float, float, float]:
    """Gain of ``steered`` over ``unsteered`` on the same items, with its interval and p-value.

    Returns:
        ``(gain, low, high, p_value)``: the accuracy difference, its 95% paired-bootstrap
        interval (:data:`BOOTSTRAP_RESAMPLES` resamples of items, seed 0) and McNemar's
        exact p-value.

    Raises:
        ValueError: The two runs do not have the same number of items, or none.

    >>> paired_gain([True, False, False, False], [True, True, True, False])
    (0.5, 0.0, 1.0, 0.5)
    """
    if len(unsteered) != len(steered) or not len(steered):
        raise ValueError(
            f"a paired gain needs the same items in both runs, got {len(unsteered)} unsteered "
            f"and {len(steered)} steered results"
        )
    boot = paired_bootstrap(unsteered, steered, n_resamples=BOOTSTRAP_RESAMPLES, seed=0)
    assert boot.ci is not None
    p = mcnemar_exact(unsteered, steered).p_value
    return boot.diff, float(boot.ci[0]), float(boot.ci[1]), p


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
        test_gain: ``[n_langs, 3]`` the selected cell's gain over unsteered on the test
            items, with its paired 95% interval (NaN where per-item results were not
            recorded; by default the gain of ``test`` over ``test_baseline``).
        test_p: ``[n_langs]`` McNemar's exact p-value of that gain (NaN if unknown).
        test_n: ``[n_langs]`` test items (NaN if unknown).
        testing: What the test stage evaluated on; ``""`` when there was none (or, in a
            result saved before it was recorded, when it is not known).

    Use :meth:`summary` (or :meth:`summary_frame`) to read the result: the test numbers
    first, the selection numbers second.

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
    test_gain: np.ndarray = field(default_factory=lambda: np.empty(0))
    test_p: np.ndarray = field(default_factory=lambda: np.empty(0))
    test_n: np.ndarray = field(default_factory=lambda: np.empty(0))
    testing: str = ""

    def __post_init__(self) -> None:
        set_ = functools.partial(object.__setattr__, self)
        set_("langs", tuple(self.langs))
        set_("layers", tuple(int(x) for x in self.layers))
        set_("strengths", tuple(float(x) for x in self.strengths))
        for name in ("alphas", "score", "low", "high", "baseline", "test", "test_baseline",
                     "test_gain", "test_p", "test_n"):  # fmt: skip
            set_(name, np.asarray(getattr(self, name), dtype=np.float64))
        set_("meta", dict(self.meta))
        set_("testing", str(self.testing))
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
        n_langs = len(self.langs)
        if self.test_gain.size == 0:  # not recorded: the gain, without an interval
            gain = self.test[:, 0] - self.test_baseline[:, 0]
            set_("test_gain", np.stack([gain, np.full(n_langs, np.nan),
                                        np.full(n_langs, np.nan)], -1))  # fmt: skip
        for name in ("test_p", "test_n"):
            if getattr(self, name).size == 0:
                set_(name, np.full(n_langs, np.nan))
        for name, shape in (("test_gain", (n_langs, 3)), ("test_p", (n_langs,)),
                            ("test_n", (n_langs,))):  # fmt: skip
            if getattr(self, name).shape != shape:
                raise ValueError(f"{name} has shape {getattr(self, name).shape}, expected {shape}")

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

    def has_test(self, lang: str) -> bool:
        """Whether ``lang`` had a held-out test stage (its value may still have failed)."""
        li = self.langs.index(canonical(lang))
        return bool(self.testing) or bool(np.isfinite(self.test[li]).any())

    def summary(self, lang: str) -> SweepSummary | None:
        """The result for ``lang``: the held-out test numbers first, then the selection.

        Returns:
            A :class:`SweepSummary`, or None when every cell of ``lang`` failed (nothing
            was selected).
        """
        cell = self.selected(lang)
        if cell is None:
            return None
        li = self.langs.index(canonical(lang))
        n = self.test_n[li]
        return SweepSummary(
            lang=self.langs[li],
            metric=self.metric,
            layer=cell["layer"],
            strength=cell["strength"],
            alpha=cell["alpha"],
            relative=self.relative,
            testing=self.testing if self.has_test(lang) else None,
            n_test=int(n) if math.isfinite(n) else None,
            test_steered=float(self.test[li, 0]),
            test_unsteered=float(self.test_baseline[li, 0]),
            test_gain=float(self.test_gain[li, 0]),
            test_low=float(self.test_gain[li, 1]),
            test_high=float(self.test_gain[li, 2]),
            p_value=float(self.test_p[li]),
            selection=self.selection,
            select_score=cell["score"],
            select_unsteered=float(self.baseline[li, 0]),
        )

    def summary_frame(self) -> pd.DataFrame:
        """One row per language (:meth:`SweepSummary.to_row`): test columns, then selection.

        A language whose every cell failed is left out.
        """
        rows = [s.to_row() for s in map(self.summary, self.langs) if s is not None]
        return pd.DataFrame(rows, columns=_SUMMARY_COLUMNS)

    def with_test(
        self, lang: str, steered: EvalResult, unsteered: EvalResult, *, testing: str
    ) -> "SweepResult":
        """This sweep with ``lang``'s test stage from two evaluations run on their own.

        For a sweep run with ``test=False`` whose selected cell was then evaluated
        separately on held-out items (the demo): ``steered`` is the selected vector at its
        layer and alpha, ``unsteered`` the same items without a vector. Items are paired
        by id (:func:`paired_gain`).

        Args:
            lang: The language.
            steered: The selected cell's evaluation.
            unsteered: The unsteered evaluation of the same items.
            testing: What the items are (``"xcopa test items 0..59"``); recorded for every
                language.

        Raises:
            ValueError: Nothing was selected for ``lang``, ``steered`` is not the selected
                cell, ``unsteered`` is steered, or the two runs are not of the same items.
        """
        code = canonical(lang)
        cell = self.best(code)
        vector = steered.vector or {}
        alpha = steered.settings.get("alpha")
        if (vector.get("layer") != cell["layer"] or alpha is None
                or not math.isclose(float(alpha), cell["alpha"], rel_tol=1e-6)):  # fmt: skip
            raise ValueError(
                f"steered must be the selected cell of {code} (layer {cell['layer']}, alpha "
                f"{cell['alpha']:.6g}), got layer {vector.get('layer')}, alpha {alpha}"
            )
        if unsteered.steered:
            raise ValueError("unsteered must be a run without a vector")
        if steered.lang != code or unsteered.lang != code:
            raise ValueError(
                f"both runs must be of {code}, got {steered.lang} and {unsteered.lang}"
            )
        mine = {item.id: item.correct for item in steered.items}
        theirs = {item.id: item.correct for item in unsteered.items}
        if set(mine) != set(theirs):
            raise ValueError(
                f"steered and unsteered must answer the same items, got {len(mine)} and "
                f"{len(theirs)} items, {len(set(mine) ^ set(theirs))} not in both"
            )
        ids = [item.id for item in unsteered.items]
        gain, low, high, p = paired_gain([theirs[i] for i in ids], [mine[i] for i in ids])
        li = self.langs.index(code)
        arrays = {k: getattr(self, k).copy() for k in
                  ("test", "test_baseline", "test_gain", "test_p", "test_n")}  # fmt: skip
        arrays["test"][li] = (steered.accuracy, *steered.ci)
        arrays["test_baseline"][li] = (unsteered.accuracy, *unsteered.ci)
        arrays["test_gain"][li] = (gain, low, high)
        arrays["test_p"][li] = p
        arrays["test_n"][li] = len(ids)
        return dataclasses.replace(self, testing=testing, **arrays)

    def to_frame(self) -> pd.DataFrame:
        """One row per (lang, layer, strength); each language's selected cell first.

        Columns: the cell (``lang``, ``layer``, ``strength``, ``alpha``, ``selected``),
        then the held-out test result of the selected cell (``test_gain``, ``test_ci_low``,
        ``test_ci_high``, ``test_p_value``, ``test_n``, ``test_steered``,
        ``test_unsteered``; NaN on other rows and without a test stage), then the
        selection scores (``select_score``, ``select_ci_low``, ``select_ci_high``,
        ``select_unsteered``, ``select_gain``).
        """
        li, yi, si = np.indices(self.score.shape).reshape(3, -1)
        selected = np.zeros(li.shape, dtype=bool)
        test = {k: np.full(li.shape, np.nan) for k in _TEST_COLUMNS}
        for i, lang in enumerate(self.langs):
            cell = self.selected(lang)
            if cell is None:
                continue
            row = i * len(self.layers) * len(self.strengths)
            row += self.layers.index(cell["layer"]) * len(self.strengths)
            row += self.strengths.index(cell["strength"])
            selected[row] = True
            values = (*self.test_gain[i], self.test_p[i], self.test_n[i], self.test[i, 0],
                      self.test_baseline[i, 0])  # fmt: skip
            for k, v in zip(_TEST_COLUMNS, values, strict=True):
                test[k][row] = v
        frame = pd.DataFrame(
            {
                "lang": np.asarray(self.langs)[li],
                "layer": np.asarray(self.layers)[yi],
                "strength": np.asarray(self.strengths)[si],
                "alpha": self.alphas.reshape(-1),
                "selected": selected,
                **test,
                "select_score": self.score.reshape(-1),
                "select_ci_low": self.low.reshape(-1),
                "select_ci_high": self.high.reshape(-1),
                "select_unsteered": self.baseline[li, 0],
                "select_gain": self.score.reshape(-1) - self.baseline[li, 0],
            }
        )
        order = np.lexsort((np.arange(len(li)), ~selected, li))  # by language, selected first
        return frame.iloc[order].reset_index(drop=True)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (NaN as null)."""
        out: dict[str, Any] = {"format": FORMAT, "version": 2}
        for name in ("model", "metric", "method", "relative", "selection", "testing"):
            out[name] = getattr(self, name)
        for name in ("langs", "layers", "strengths"):
            out[name] = list(getattr(self, name))
        for name in _ARRAYS:
            out[name] = nan_as_null(getattr(self, name))
        out["meta"] = dict(self.meta)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SweepResult":
        """Rebuild from :meth:`to_dict`'s output (version 1, before ``test_gain``, too)."""
        if data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} (format={data.get('format')!r})")
        arrays = {k: np.asarray(data[k], dtype=np.float64) for k in _ARRAYS if k in data}
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
            testing=str(data.get("testing") or ""),
            **arrays,
        )


_ARRAYS = ("alphas", "score", "low", "high", "baseline", "test", "test_baseline",
           "test_gain", "test_p", "test_n")  # fmt: skip
_TEST_COLUMNS = ("test_gain", "test_ci_low", "test_ci_high", "test_p_value", "test_n",
                 "test_steered", "test_unsteered")  # fmt: skip
_SUMMARY_COLUMNS = ["lang", "layer", "strength", "alpha", *_TEST_COLUMNS, "select_gain",
                    "select_score", "select_unsteered"]  # fmt: skip


@locks_run("run_dir")  # one run at a time writes a run folder
def layer_sweep(
    model: Model,
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
    progress: bool | None = None,
    **fit_hyper: Any,
) -> SweepResult:
    """Fit a vector per layer and evaluate every (layer, strength); pick the best.

    Args:
        model: The model (a bridge, or a HookedTransformer on TransformerLens 3.x).
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
        progress: A bar over the sweep's cells (resumed ones count as done at once) and
            the fitting's bars; None follows :func:`~interp_steer.progress.set_progress`.
        **fit_hyper: Passed on to ``fit_vectors`` (e.g. ``pooling="last"``).

    Returns:
        A :class:`SweepResult`; read it with :meth:`SweepResult.summary` (the test result
        of each language, then its selection score).

    Raises:
        ValueError: A bad setting (checked before any work and before ``run_dir`` is
            written), or :class:`~interp_steer.storage.SettingsError`: ``run_dir`` holds a
            run with other settings.

    >>> from interp_steer import load_model
    >>> res = layer_sweep(load_model("tiny"), ["sw"], task="xcopa", layers=[2], ratios=(0.1,),
    ...                   n=2, n_fit=4, test=False)
    >>> res.selection, res.score.shape
    ('xcopa val split', (1, 1, 1))
    >>> res.summary("sw").line().startswith("layer 2, ratio 0.1 (alpha")
    True
    >>> res.summary("sw").line().split(": ", 1)[1].split(";")[0]
    'no held-out test split'
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
    testing = str(getattr(evaluator, "testing", "the evaluator's test stage")) if test else ""
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
    base, test_arr, test_base, test_gain = (np.full((len(codes), 3), np.nan) for _ in range(4))
    test_p, test_n = np.full(len(codes), np.nan), np.full(len(codes), np.nan)
    norms: dict[str, dict[str, float]] = {}
    failed: dict[str, str] = {}  # cell key -> why it could not be scored
    per_lang = 1 + len(layer_tuple) * len(strengths) + (2 if test else 0)
    with progress_bar(total=len(codes) * per_lang, desc="sweep cells", unit="cell",
                      progress=progress) as bar:  # fmt: skip
        for li, lang in enumerate(codes):
            b = evaluate_cell(store, f"{lang}/baseline-select", evaluator, model, lang, None,
                              0.0, "select", failed=failed)  # fmt: skip
            bar.update()
            base[li] = (b["value"], b["low"], b["high"])
            keys = {
                (y, s): f"{lang}/L{layer}-s{_tag(strength)}"
                for y, layer in enumerate(layer_tuple)
                for s, strength in enumerate(strengths)
            }
            todo = sorted({layer_tuple[y] for (y, s), key in keys.items()
                           if store.get(key) is None})  # fmt: skip
            vectors = (
                fitted_vectors(model, lang, todo, store, fit, progress=progress) if todo else {}
            )
            norms[lang] = {}
            for (y, s), key in keys.items():
                layer, strength = layer_tuple[y], strengths[s]
                cell = store.get(key)
                if cell is None:
                    vector = vectors[layer]
                    alpha = alpha_for_ratio(vector, strength) if ratios is not None else strength
                    cell = evaluate_cell(store, key, evaluator, model, lang, vector, alpha,
                                         "select", layer=layer, strength=strength,
                                         vector_norm=vector.norm)  # fmt: skip
                bar.update()
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
                        vectors.get(layer)
                        or fitted_vectors(model, lang, [layer], store, fit, progress=progress)[
                            layer
                        ]
                    )
                t = evaluate_cell(store, key, evaluator, model, lang, chosen, alpha, "test",
                                  failed=failed, layer=layer, strength=strengths[s])  # fmt: skip
                bar.update()
                tb = evaluate_cell(store, f"{lang}/baseline-test", evaluator, model, lang, None,
                                   0.0, "test", failed=failed)  # fmt: skip
                bar.update()
                test_arr[li] = (t["value"], t["low"], t["high"])
                test_base[li] = (tb["value"], tb["low"], tb["high"])
                test_gain[li], test_p[li] = _paired_cells(tb, t)
                test_n[li] = _nan(t["n"])

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
        test_gain=test_gain,
        test_p=test_p,
        test_n=test_n,
        testing=testing,
        **arrays,
    )


def _paired_cells(
    unsteered: Mapping[str, Any], steered: Mapping[str, Any]
) -> tuple[tuple[float, float, float], float]:
    """``((gain, low, high), p_value)`` of two test cells; NaN where they cannot say.

    Paired item by item when both cells recorded ``correct`` for the same number of items
    (:func:`paired_gain`); else only the gain, without interval or p-value (a cell saved
    before per-item results were kept, or an evaluator that gives none).
    """
    value, ref = _nan(steered.get("value")), _nan(unsteered.get("value"))
    a, b = unsteered.get("correct"), steered.get("correct")
    if not (math.isfinite(value) and math.isfinite(ref)):
        return (math.nan, math.nan, math.nan), math.nan
    if not isinstance(a, list) or not isinstance(b, list) or len(a) != len(b) or not a:
        return (value - ref, math.nan, math.nan), math.nan
    gain, low, high, p = paired_gain([bool(x) for x in a], [bool(x) for x in b])
    return (gain, low, high), p


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
    "BOOTSTRAP_RESAMPLES",
    "FORMAT",
    "SweepResult",
    "SweepSummary",
    "layer_sweep",
    "paired_gain",
]
