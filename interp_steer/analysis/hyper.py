"""Choose a fitting hyper-parameter (BiPO's ``lr``, ``pairing``, ...) on held-out pairs.

:func:`select_hyper` runs one :func:`~interp_steer.analysis.layer_sweep` per point of a
grid of fitting hyper-parameters, for one language at one layer, and picks the point
with the best **select-stage** score (ties: the first point). The held-out test result of
every point, when the evaluator has a test stage, is recorded beside it and never used
for the choice. Each point is a sweep of its own in its own subfolder of ``run_dir``
(``run_dir / "lr=0.0001"``), so every point is resumable and its cells record their
settings (the fitting's hyper-parameters included) the way a sweep's do.

BiPO is reported **as trained**: by default every point is evaluated at the absolute
strength ``alpha = 1`` (``alphas=(1.0,)``), the vector the optimiser produced.

Example:
    >>> from interp_steer import load_model
    >>> from interp_steer.analysis import Score
    >>> def by_norm(model, lang, vector, alpha, stage):  # a stand-in: bigger vectors win
    ...     return Score(0.0 if vector is None else vector.norm, 0.0, 1.0, 4)
    >>> sel = select_hyper(load_model("tiny"), "sw", task=by_norm, layer=1,
    ...                    grid={"lr": (1e-4, 1e-3)}, n_fit=4, test=False)
    >>> sel.best, sel.names
    ({'lr': 0.001}, ('lr',))
    >>> sel.meta["points"][1]["fit_metrics"]["lr"]
    0.001
"""

import functools
import inspect
import itertools
import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from transformer_lens.model_bridge import TransformerBridge

from interp_steer.analysis.cells import CellStore, Evaluator, TaskEvaluator
from interp_steer.analysis.sweep import SweepResult, layer_sweep
from interp_steer.data.languages import canonical
from interp_steer.fitting.fit import check_hyper
from interp_steer.models.layers import check_layers
from interp_steer.models.loading import model_name
from interp_steer.progress import progress_bar
from interp_steer.steering.vectors import SteeringVector
from interp_steer.storage import SavedResult, locks_run, nan_as_null

FORMAT = "interp_steer.HyperSelection"

FIT_METRICS = ("norm", "lr", "lr_scale", "lr_resid_norm", "lr_effective", "steps", "final_loss",
               "pairing", "resid_norm")  # fmt: skip
"""What :func:`select_hyper` copies from each point's fitted vector (``meta["metrics"]``)."""

_SCALARS = (str, int, float, bool, type(None))


def _point_name(point: Mapping[str, Any]) -> str:
    """The subfolder of one grid point: ``lr=0.0001``, ``lr=3e-05,pairing=copy``."""
    parts = [f"{k}={repr(v) if isinstance(v, float) else v}" for k, v in point.items()]
    return ",".join(parts)


def _safe(name: str) -> bool:
    return bool(name) and all(ch.isalnum() or ch in "._-+=," for ch in name)


def _first_best(values: np.ndarray) -> int | None:
    """Index of the highest value, the first on ties; NaN never wins; None if all NaN."""
    if values.size == 0 or np.isnan(values).all():
        return None
    return int(np.argmax(np.nan_to_num(values, nan=-np.inf)))


@dataclass(frozen=True, eq=False)
class HyperSelection(SavedResult):
    """One sweep per grid point of fitting hyper-parameters; the point chosen on selection.

    Attributes:
        model: Model name.
        method: Fitting method.
        lang: Canonical language code.
        layer: The layer every point was fitted and evaluated at.
        metric: What was measured (``"-KL to English (nats)"``).
        names: The grid's hyper-parameter names, in order.
        points: One dict ``{name: value}`` per grid point (JSON scalars), in grid order.
        relative: Whether ``strength`` values are ratios ``‖alpha v‖ / ‖h‖``.
        strength: ``[n_points]`` each point's selected strength (its sweep's best).
        alpha: ``[n_points]`` the absolute alpha of it.
        select: ``[n_points, 3]`` select-stage (value, low, high) of each point.
        test: ``[n_points, 3]`` held-out test (value, low, high); NaN without a test stage.
        baseline: ``[3]`` unsteered on the select stage.
        test_baseline: ``[3]`` unsteered on the test stage (NaN without one).
        chosen: Index of the chosen point: the highest select value, the first on ties
            (None when every point failed).
        selection: What selection was done on (never test items).
        testing: What the test stage evaluated on; ``""`` without one.
        meta: Provenance: ``points`` (per point: ``run_dir``, ``vector_norm``,
            ``fit_metrics`` from the fitted vector, e.g. BiPO's ``lr_effective``, and
            ``failed`` cells), ``fit`` (the shared fit settings), ``run_dir``.

    Raises:
        ValueError: On any shape or label mismatch, or a ``chosen`` that is not the first
            best select value.
    """

    model: str
    method: str
    lang: str
    layer: int
    metric: str
    names: tuple[str, ...]
    points: tuple[dict[str, Any], ...]
    relative: bool
    strength: np.ndarray
    alpha: np.ndarray
    select: np.ndarray
    test: np.ndarray
    baseline: np.ndarray
    test_baseline: np.ndarray
    chosen: int | None
    selection: str
    testing: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        set_ = functools.partial(object.__setattr__, self)
        set_("layer", int(self.layer))
        set_("names", tuple(str(x) for x in self.names))
        set_("points", tuple(dict(p) for p in self.points))
        for name in ("strength", "alpha", "select", "test", "baseline", "test_baseline"):
            set_(name, np.asarray(getattr(self, name), dtype=np.float64))
        set_("meta", dict(self.meta))
        set_("testing", str(self.testing))
        if not self.names or len(set(self.names)) != len(self.names):
            raise ValueError(f"names must be unique and non-empty, got {self.names}")
        if not self.points:
            raise ValueError("a selection needs at least one point")
        for point in self.points:
            if tuple(point) != self.names:
                raise ValueError(f"every point must set {self.names} in order, got {point}")
            if not all(isinstance(v, _SCALARS) for v in point.values()):
                raise ValueError(f"point values must be str, int, float, bool or None: {point}")
        if len({_point_name(p) for p in self.points}) != len(self.points):
            raise ValueError(f"points must be distinct, got {self.points}")
        n = len(self.points)
        shapes = {"strength": (n,), "alpha": (n,), "select": (n, 3), "test": (n, 3),
                  "baseline": (3,), "test_baseline": (3,)}  # fmt: skip
        for name, shape in shapes.items():
            if getattr(self, name).shape != shape:
                raise ValueError(f"{name} has shape {getattr(self, name).shape}, expected {shape}")
        if self.chosen is not None:
            set_("chosen", int(self.chosen))
        best = _first_best(self.select[:, 0])
        if self.chosen != best:
            raise ValueError(
                f"chosen must be the first point with the best select value ({best}), "
                f"got {self.chosen}"
            )

    @property
    def best(self) -> dict[str, Any]:
        """The chosen point, ``{name: value}``.

        Raises:
            ValueError: Every point failed (nothing was chosen).
        """
        if self.chosen is None:
            raise ValueError("no point could be scored: every one failed (see meta['points'])")
        return dict(self.points[self.chosen])

    def to_frame(self) -> pd.DataFrame:
        """One row per point, in grid order.

        Columns: the grid's names, ``chosen``, ``strength``, ``alpha``, the held-out test
        result (``test_score``, ``test_ci_low``, ``test_ci_high``, ``test_unsteered``; NaN
        without a test stage), the selection (``select_score``, ``select_ci_low``,
        ``select_ci_high``, ``select_unsteered``), then ``vector_norm`` and
        ``lr_effective`` (NaN where not recorded).
        """
        extra = list(self.meta.get("points") or [{} for _ in self.points])
        fit = [dict(x.get("fit_metrics") or {}) for x in extra]
        frame = pd.DataFrame({name: [p[name] for p in self.points] for name in self.names})
        frame["chosen"] = np.arange(len(self.points)) == (-1 if self.chosen is None
                                                          else self.chosen)  # fmt: skip
        frame["strength"] = self.strength
        frame["alpha"] = self.alpha
        for prefix, arr, ref in (("test", self.test, self.test_baseline),
                                 ("select", self.select, self.baseline)):  # fmt: skip
            frame[f"{prefix}_score"] = arr[:, 0]
            frame[f"{prefix}_ci_low"] = arr[:, 1]
            frame[f"{prefix}_ci_high"] = arr[:, 2]
            frame[f"{prefix}_unsteered"] = ref[0]
        frame["vector_norm"] = [_float(x.get("vector_norm")) for x in extra]
        frame["lr_effective"] = [_float(f.get("lr_effective")) for f in fit]
        return frame

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (NaN as null)."""
        out: dict[str, Any] = {"format": FORMAT, "version": 1}
        for name in ("model", "method", "lang", "layer", "metric", "relative", "chosen",
                     "selection", "testing"):  # fmt: skip
            out[name] = getattr(self, name)
        out["names"] = list(self.names)
        out["points"] = [dict(p) for p in self.points]
        for name in _ARRAYS:
            out[name] = nan_as_null(getattr(self, name))
        out["meta"] = dict(self.meta)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "HyperSelection":
        """Rebuild from :meth:`to_dict`'s output."""
        if data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} (format={data.get('format')!r})")
        arrays = {k: np.asarray(data[k], dtype=np.float64) for k in _ARRAYS}
        chosen = data.get("chosen")
        return cls(
            model=str(data["model"]),
            method=str(data["method"]),
            lang=str(data["lang"]),
            layer=int(data["layer"]),
            metric=str(data["metric"]),
            names=tuple(data["names"]),
            points=tuple(dict(p) for p in data["points"]),
            relative=bool(data["relative"]),
            chosen=None if chosen is None else int(chosen),
            selection=str(data["selection"]),
            testing=str(data.get("testing") or ""),
            meta=dict(data["meta"]),
            **arrays,
        )


_ARRAYS = ("strength", "alpha", "select", "test", "baseline", "test_baseline")


def _float(x: Any) -> float:
    return math.nan if x is None else float(x)


_SWEEP_SETTINGS = frozenset(inspect.signature(layer_sweep).parameters) - {"fit_hyper"}


def grid_points(grid: Mapping[str, Sequence[Any]]) -> tuple[dict[str, Any], ...]:
    """Every point of ``grid`` (the product of its values, the last name varying fastest).

    Raises:
        ValueError: An empty grid, a name with no values or repeated values, or a value
            that is not a str, int, float, bool or None (or a non-finite float).

    >>> grid_points({"lr": (1e-4, 3e-4), "pairing": ("copy",)})
    ({'lr': 0.0001, 'pairing': 'copy'}, {'lr': 0.0003, 'pairing': 'copy'})
    >>> grid_points({"lr": ()})
    Traceback (most recent call last):
    ...
    ValueError: grid['lr'] must be a non-empty sequence of values, got ()
    """
    if not isinstance(grid, Mapping) or not grid:
        raise ValueError(
            f"grid must be a non-empty mapping of hyper-parameter names to values, got {grid!r}"
        )
    values: list[tuple[Any, ...]] = []
    for name, options in grid.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"grid names must be hyper-parameter names, got {name!r}")
        if isinstance(options, (str, bytes)) or not isinstance(options, Sequence) or not options:
            raise ValueError(
                f"grid[{name!r}] must be a non-empty sequence of values, got {options!r}"
            )
        for v in options:
            if not isinstance(v, _SCALARS) or (isinstance(v, float) and not math.isfinite(v)):
                raise ValueError(
                    f"grid[{name!r}] values must be str, int, finite float, bool or None, got {v!r}"
                )
        tags = [_point_name({name: v}) for v in options]
        if len(set(tags)) != len(tags):
            raise ValueError(f"grid[{name!r}] repeats a value: {tuple(options)!r}")
        values.append(tuple(options))
    return tuple(dict(zip(grid, combo, strict=True)) for combo in itertools.product(*values))


@locks_run("run_dir")  # one run at a time writes a run folder
def select_hyper(
    model: TransformerBridge,
    lang: str,
    *,
    task: str | Evaluator,
    layer: int,
    grid: Mapping[str, Sequence[Any]],
    method: str = "bipo",
    alphas: Sequence[float] | None = None,
    ratios: Sequence[float] | None = None,
    fit_dataset: str = "flores",
    n_fit: int = 200,
    fit_split: str | None = None,
    test: bool = True,
    n: int | None = None,
    run_dir: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
    **fit_hyper: Any,
) -> HyperSelection:
    """Fit at each point of ``grid`` and pick the point with the best select-stage score.

    Each point is one :func:`~interp_steer.analysis.layer_sweep` of ``lang`` at ``layer``
    with the point's values added to ``fit_hyper``. A point's select score is its sweep's
    selected cell (with one strength, that strength); the chosen point is the first with
    the highest select score. The test stage of each point's selected cell is recorded
    (``HyperSelection.test``) and never used for the choice.

    Args:
        model: The bridge.
        lang: The language (any spelling).
        task: A task name (a :class:`TaskEvaluator` with its defaults and ``n``) or any
            :class:`Evaluator` (e.g. :class:`~interp_steer.analysis.EnglishKL`).
        layer: The layer to fit and steer at.
        grid: Hyper-parameter name → values, e.g. ``{"lr": (3e-5, 1e-4, 3e-4)}`` or
            ``{"pairing": ("copy", "continuation")}``; every combination is a point.
        method: Fitting method (BiPO by default).
        alphas: Absolute strengths; ``(1.0,)`` (BiPO **as trained**) unless ``ratios``
            is given.
        ratios: Relative strengths ``‖alpha v‖ / ‖h‖`` instead.
        fit_dataset: Parallel dataset to fit on.
        n_fit: Pairs to fit on.
        fit_split: Its split (default: the dataset's).
        test: Evaluate each point's selected cell and the baseline on the test stage
            (``False`` for an evaluator without one, e.g. an ``EnglishKL`` with no
            ``test_split``).
        n: Items per evaluation (task names only).
        run_dir: Folder for resumable work: one sweep folder per point,
            ``run_dir / "lr=0.0001"``.
        progress: One bar over the grid's points (the sweeps inside draw none); None
            follows :func:`~interp_steer.progress.set_progress`.
        **fit_hyper: Hyper-parameters shared by every point (``epochs=2``).

    Returns:
        A :class:`HyperSelection`; :attr:`HyperSelection.best` is the chosen point.

    Raises:
        ValueError: A bad grid (empty, repeated values, a name that ``fit_hyper`` also
            sets or that is a setting of the sweep), a hyper-parameter the method does
            not take (the fitting's own message), or both ``alphas`` and ``ratios``; all
            checked before any work.
    """
    points = grid_points(grid)
    names = tuple(grid)
    clash = sorted(set(names) & set(fit_hyper))
    if clash:
        raise ValueError(
            f"grid and fit_hyper both set {', '.join(clash)}; give each value in one place"
        )
    own = sorted(set(names) & _SWEEP_SETTINGS)
    if own:
        raise ValueError(
            f"{', '.join(own)} is a setting of the sweep, not a fitting hyper-parameter; "
            "it cannot be a grid name"
        )
    if alphas is not None and ratios is not None:
        raise ValueError("give at most one of alphas (absolute) or ratios (relative)")
    if ratios is None and alphas is None:
        alphas = (1.0,)  # BiPO as trained
    for point in points:
        check_hyper(method, {**fit_hyper, **point})  # an unknown name fails before any work
    (layer,) = check_layers(model, [layer])
    code = canonical(lang)
    folders = [_point_name(p) for p in points]
    folders = [f if _safe(f) else f"point-{i}" for i, f in enumerate(folders)]
    evaluator: Evaluator = TaskEvaluator(task, n=n) if isinstance(task, str) else task

    sweeps: list[SweepResult] = []
    extra: list[dict[str, Any]] = []
    desc = f"{method} grid ({code}, L{layer})"
    with (
        tempfile.TemporaryDirectory() as scratch,  # without run_dir: the vectors, for meta
        progress_bar(total=len(points), desc=desc, unit="point", progress=progress) as bar,
    ):
        root = Path(scratch) if run_dir is None else Path(run_dir)
        for point, folder in zip(points, folders, strict=True):
            sweep = layer_sweep(model, [code], task=evaluator, layers=[layer], method=method,
                                ratios=ratios, alphas=alphas, fit_dataset=fit_dataset,
                                n_fit=n_fit, fit_split=fit_split, test=test,
                                run_dir=root / folder, progress=False,
                                **fit_hyper, **point)  # fmt: skip
            sweeps.append(sweep)
            extra.append(_point_meta(sweep, code, layer, root / folder, run_dir is not None))
            bar.update()

    first = sweeps[0]
    shared = json.loads(json.dumps(fit_hyper, default=str))
    selected = [s.selected(code) for s in sweeps]
    select = np.full((len(points), 3), np.nan)
    test_arr = np.full((len(points), 3), np.nan)
    strength, alpha = np.full(len(points), np.nan), np.full(len(points), np.nan)
    for i, (sweep, cell) in enumerate(zip(sweeps, selected, strict=True)):
        if cell is not None:
            select[i] = (cell["score"], cell["low"], cell["high"])
            strength[i], alpha[i] = cell["strength"], cell["alpha"]
        test_arr[i] = sweep.test[0]
    return HyperSelection(
        model=model_name(model),
        method=first.method,
        lang=code,
        layer=layer,
        metric=first.metric,
        names=names,
        points=points,
        relative=first.relative,
        strength=strength,
        alpha=alpha,
        select=select,
        test=test_arr,
        baseline=first.baseline[0],
        test_baseline=first.test_baseline[0],
        chosen=_first_best(select[:, 0]),
        selection=first.selection,
        testing=first.testing,
        meta={
            "fit": {**first.meta["fit"], "hyper": shared},  # the same for every point
            "points": extra,
            "run_dir": None if run_dir is None else str(run_dir),
        },
    )


def _point_meta(
    sweep: SweepResult, lang: str, layer: int, folder: Path, kept: bool
) -> dict[str, Any]:
    """What one point recorded: its folder, vector norm, fit metrics and failed cells."""
    norm = (sweep.meta.get("vector_norms") or {}).get(lang, {}).get(str(layer))
    path = CellStore(folder).vector_path(lang, layer)
    metrics: dict[str, Any] = {}
    if path is not None and path.with_name(path.name + ".safetensors").is_file():
        vector = SteeringVector.load(path)
        saved = vector.meta.get("metrics") or {}
        metrics = {k: saved[k] for k in FIT_METRICS if k in saved}
        norm = float(vector.norm) if norm is None else norm
    return {
        "run_dir": str(folder) if kept else None,
        "vector_norm": norm,
        "fit_metrics": metrics,
        "failed": dict(sweep.meta.get("failed") or {}),
    }


__all__ = ["FIT_METRICS", "FORMAT", "HyperSelection", "grid_points", "select_hyper"]
