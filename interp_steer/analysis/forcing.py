"""The language-forcing benchmark: which method, operator, layer and strength force a language?

After CLaS-Bench (arXiv 2601.08331), every steering setting is scored on two axes:
**language control** (the continuation is in the intended language) and **semantic
relevance** (it still says what the prompt says), combined into their harmonic mean
(:meth:`~interp_steer.evaluation.ForcingResult.score`). :func:`forcing_benchmark` scores
every (language, direction, method, operator, layer, strength) on **selection** prompts,
picks the best (layer, strength) of each (language, direction, method, operator) there,
and only then runs it, and the unsteered model beside it, on **test** prompts the
selection never saw. Read the test rows (:meth:`ForcingBenchmark.table`); the selection
rows say where language structure emerges (:meth:`ForcingBenchmark.layer_curve`).

**Data, per language, disjoint and recorded** (``meta["splits"]``): the selection prompts
are lines ``[0, n_select)`` of the parallel corpus (FLORES devtest by default), the test
prompts lines ``[n_select, n_select + n_test)``, and the vectors are fitted on the **last**
``n_fit`` pairs of the same corpus; the three must fit in it without overlapping.

**Vectors**: one :func:`~interp_steer.fitting.fit_vectors` pass per (language, method)
gives a vector at every layer. Fitted vectors point from the language towards English
(``h_lang + v ≈ h_english``). ``"to_english"`` (prompts in the language, English wanted)
steers with ``+v``; ``"from_english"`` (English prompts, the language wanted) steers with
the **same vector with the opposite sign**: a negative ``alpha`` (add), a negative angle
(rotate, away from ``v``) or a negative value (clamp). See :func:`forcing_arguments`.

**Strengths**, per operator (:data:`~interp_steer.constants.FORCING_STRENGTHS`; positive
numbers, the sign comes from the direction):

* ``"add"``: ratios ``‖alpha v‖ / ‖h‖`` (:func:`~interp_steer.steering.alpha_for_ratio`,
  as the sweeps use), ``‖h‖`` the mean residual norm at the layer on the fitting texts;
* ``"rotate"``: angles in degrees, towards ``v`` (to English) or away from it;
* ``"ablate"``: ``alpha`` in ``(0, 1]``, the share of the component along ``v`` removed.
  It has no sign: it can only take a language's direction out, never put one in, so it is
  the same intervention in both directions;
* ``"clamp"``: the component along ``v / ‖v‖`` is set to ``strength × ‖h‖`` (the same
  residual norm), positive to English, negative from it.

**Resumable**: with ``run_dir``, every cell (a
:class:`~interp_steer.evaluation.ForcingResult`) is saved atomically as it finishes, and
fitted vectors beside them. ``config.json`` records every setting that changes a cell (the
model, its weights and the scoring code's version, the corpus, ``n_fit``, ``n_select``,
``n_test``, ``positions``, ``k``, ``max_new_tokens``, ``batch_size``, ``seed``, the fit
settings) and ``data/`` a fingerprint of each language's prompts and fitting pairs; a run
with other settings or data is refused naming them. Other languages, directions, methods,
operators, layers and strengths are new cells of the same run, and an interrupted run
resumes with results identical to an uninterrupted one.

Example:
    >>> from interp_steer import load_model
    >>> bench = forcing_benchmark(load_model("tiny"), ["de"], directions=("to_english",),
    ...                           layers=[2], strengths={"add": (0.5,)}, n_fit=4,
    ...                           n_select=2, n_test=2, k=1, max_new_tokens=4,
    ...                           source="tatoeba")  # short sentences: a quick example
    >>> row = bench.table().iloc[0]
    >>> row["lang"], row["method"], row["operator"], int(row["layer"]), float(row["strength"])
    ('de', 'mean_diff', 'add', 2, 0.5)
    >>> bench.meta["splits"]["de"]["select"], bench.meta["splits"]["de"]["test"]
    ([0, 2], [2, 4])
    >>> sorted(set(bench.to_frame()["split"]))
    ['select', 'test']
"""

import functools
import hashlib
import json
import math
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from interp_steer.analysis.cells import CellStore, check_fitted, model_settings
from interp_steer.constants import (
    DIRECTIONS,
    FORCING_LANGS,
    FORCING_STRENGTHS,
    POSITION_MODES,
    Direction,
    Positions,
    check_choice,
    check_count,
)
from interp_steer.data.languages import canonical
from interp_steer.data.parallel import ParallelCorpus, load_parallel
from interp_steer.evaluation.forcing import (
    RELEVANCE_RULE,
    ForcingPrompts,
    ForcingResult,
    forcing_prompts,
    forcing_run,
)
from interp_steer.fitting.fit import check_hyper, fit_vectors, resolve_method
from interp_steer.models.backend import Model
from interp_steer.models.layers import check_layers
from interp_steer.models.loading import model_name
from interp_steer.progress import progress_bar
from interp_steer.steering.intervention import OPERATORS, NonFiniteError, Operator
from interp_steer.steering.vectors import SteeringVector, alpha_for_ratio
from interp_steer.storage import (
    SavedResult,
    atomic_write_json,
    locks_run,
    nan_as_null,
    plain_settings,
    require_settings,
)

FORMAT = "interp_steer.ForcingBenchmark"

UNSTEERED: Final = "unsteered"
"""The ``method`` of the unsteered rows of :meth:`ForcingBenchmark.to_frame` (operator
``"none"``, layer ``-1``, strength NaN)."""

STRENGTH_UNITS: Mapping[Operator, str] = {
    "add": "ratio ‖alpha v‖/‖h‖",
    "ablate": "alpha (share of the component removed)",
    "rotate": "degrees",
    "clamp": "multiple of ‖h‖ along v/‖v‖",
}
"""What a strength of each operator is."""

_UNITS: dict[str, str] = {str(k): v for k, v in STRENGTH_UNITS.items()}

N_BOOT: Final = 1000
"""Bootstrap resamples of each cell's harmonic-mean interval (seeded with ``seed``)."""

_METRICS = ("control", "relevance", "score")


# ----------------------------------------------------------------- strengths


def forcing_arguments(
    vector: SteeringVector, operator: Operator, direction: Direction, strength: float
) -> dict[str, float | None]:
    """The ``alpha``, ``angle`` and ``value`` of one benchmark cell, signed by its direction.

    ``"to_english"`` steers along ``+v`` (fitted vectors point towards English),
    ``"from_english"`` along ``-v``: ``add`` gets ``±alpha_for_ratio(v, strength)``,
    ``rotate`` ``alpha=1`` and ``angle=±strength`` degrees, ``clamp`` ``alpha=1`` and
    ``value=±strength × resid_norm``; ``ablate`` gets ``alpha=strength`` in both directions
    (it has no sign).

    Raises:
        ValueError: An unknown operator or direction, a strength that is not a positive
            finite number (``ablate``: in ``(0, 1]``; ``rotate``: at most 180), or a vector
            without a recorded residual norm (``add``, ``clamp``).

    >>> import torch
    >>> v = SteeringVector(torch.ones(4), layer=0, meta={"metrics": {"resid_norm": 10.0}})
    >>> forcing_arguments(v, "add", "from_english", 0.5)
    {'alpha': -2.5, 'angle': None, 'value': None}
    >>> forcing_arguments(v, "clamp", "to_english", 0.5)
    {'alpha': 1.0, 'angle': None, 'value': 5.0}
    """
    check_choice("operator", operator, OPERATORS)
    check_choice("direction", direction, DIRECTIONS)
    _check_strength(operator, strength)
    sign = 1.0 if direction == "to_english" else -1.0
    if operator == "add":
        return {"alpha": sign * alpha_for_ratio(vector, strength), "angle": None, "value": None}
    if operator == "ablate":
        return {"alpha": float(strength), "angle": None, "value": None}
    if operator == "rotate":
        return {"alpha": 1.0, "angle": sign * float(strength), "value": None}
    resid = (vector.meta.get("metrics") or {}).get("resid_norm")
    if resid is None or not math.isfinite(float(resid)):
        raise ValueError(
            "operator 'clamp' sets the component to a multiple of the residual norm, but the "
            "vector records none (meta['metrics']['resid_norm']); fit it with fit_vectors"
        )
    return {"alpha": 1.0, "angle": None, "value": sign * float(strength) * float(resid)}


def _check_strength(operator: str, strength: Any) -> float:
    if isinstance(strength, bool) or not isinstance(strength, int | float | np.floating):
        raise ValueError(f"a {operator} strength must be a number, got {strength!r}")
    x = float(strength)
    top = {"ablate": 1.0, "rotate": 180.0}.get(operator, math.inf)
    if not (math.isfinite(x) and 0 < x <= top):
        where = f"in (0, {top:g}]" if math.isfinite(top) else "positive and finite"
        raise ValueError(
            f"{operator} strengths ({_UNITS[operator]}) must be {where}; the sign "
            f"comes from the direction; got {strength!r}"
        )
    return x


def _applied(operator: str, args: Mapping[str, float | None]) -> float:
    """The signed number a cell steered with: alpha (add, ablate), angle, or value."""
    key = {"rotate": "angle", "clamp": "value"}.get(operator, "alpha")
    return float(args[key] or 0.0)


# ----------------------------------------------------------------- the result


@dataclass(frozen=True, eq=False)
class ForcingBenchmark(SavedResult):
    """Every scored cell of a forcing benchmark: one row each, selection and test.

    Rows are cells: one (language, direction, method, operator, layer, strength) on the
    selection or the test prompts, or the unsteered model (``method_idx == -1``) on either.
    Index arrays point into the label tuples.

    Attributes:
        model: Model name.
        langs: Languages (canonical codes).
        directions: ``"to_english"`` and/or ``"from_english"``.
        methods: Fitting methods.
        operators: Steering operators.
        layers: Layers of the grid (sorted).
        strengths: Per operator, its strengths (sorted, positive; units in
            :data:`STRENGTH_UNITS`).
        lang_idx: ``[rows]`` index into ``langs``.
        direction_idx: ``[rows]`` index into ``directions``.
        method_idx: ``[rows]`` index into ``methods``; -1 for the unsteered model.
        operator_idx: ``[rows]`` index into ``operators``; -1 for the unsteered model.
        layer: ``[rows]`` the layer; -1 for the unsteered model.
        strength: ``[rows]`` the strength; NaN for the unsteered model.
        test: ``[rows]`` whether the row is on the test prompts (else selection).
        applied: ``[rows]`` the signed number steered with (:func:`forcing_arguments`:
            ``alpha`` for add and ablate, ``angle``, ``value``); 0 unsteered.
        control: ``[rows, 3]`` language-control share (value, low, high; Wilson 95%).
        relevance: ``[rows, 3]`` semantic-relevance share (value, low, high).
        score: ``[rows, 3]`` their harmonic mean (value, bootstrap low, high).
        n: ``[rows]`` prompts scored (0 for a failed cell, whose scores are NaN).
        selected: ``[rows]`` the chosen selection cell of each (language, direction,
            method, operator) and its test run.
        meta: Provenance: ``splits`` (per language, the corpus lines of each split),
            ``settings`` (what ``config.json`` records, less the model), ``failed`` (cell
            key -> why it could not be scored), ``run_dir``.

    Raises:
        ValueError: On a shape or label mismatch, a repeated cell, or a ``selected`` flag
            that is not the best selection cell (ties: earliest layer, then smallest
            strength) or its test run.
    """

    model: str
    langs: tuple[str, ...]
    directions: tuple[str, ...]
    methods: tuple[str, ...]
    operators: tuple[str, ...]
    layers: tuple[int, ...]
    strengths: Mapping[str, tuple[float, ...]]
    lang_idx: np.ndarray
    direction_idx: np.ndarray
    method_idx: np.ndarray
    operator_idx: np.ndarray
    layer: np.ndarray
    strength: np.ndarray
    test: np.ndarray
    applied: np.ndarray
    control: np.ndarray
    relevance: np.ndarray
    score: np.ndarray
    n: np.ndarray
    selected: np.ndarray
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        set_ = functools.partial(object.__setattr__, self)
        for name in ("langs", "directions", "methods", "operators"):
            labels = tuple(str(x) for x in getattr(self, name))
            if not labels or len(set(labels)) != len(labels):
                raise ValueError(f"{name} must be unique and non-empty, got {labels}")
            set_(name, labels)
        for d in self.directions:
            check_choice("direction", d, DIRECTIONS)
        for o in self.operators:
            check_choice("operator", o, OPERATORS)
        set_("layers", tuple(int(x) for x in self.layers))
        if not self.layers or list(self.layers) != sorted(set(self.layers)):
            raise ValueError(f"layers must be sorted, unique and non-empty, got {self.layers}")
        grid = {str(k): tuple(float(x) for x in v) for k, v in dict(self.strengths).items()}
        if set(grid) != set(self.operators):
            raise ValueError(
                f"strengths must name exactly the operators {self.operators}, got {tuple(grid)}"
            )
        for op, values in grid.items():
            if not values or list(values) != sorted(set(values)):
                raise ValueError(f"strengths[{op!r}] must be sorted, unique and non-empty")
        set_("strengths", {op: grid[op] for op in self.operators})
        for name in ("lang_idx", "direction_idx", "method_idx", "operator_idx", "layer", "n"):
            set_(name, np.asarray(getattr(self, name), dtype=np.int64).reshape(-1))
        for name in ("test", "selected"):
            set_(name, np.asarray(getattr(self, name), dtype=bool).reshape(-1))
        for name in ("strength", "applied"):
            set_(name, np.asarray(getattr(self, name), dtype=np.float64).reshape(-1))
        for name in _METRICS:
            set_(name, np.asarray(getattr(self, name), dtype=np.float64))
        set_("meta", dict(self.meta))
        self._check_rows()

    def _check_rows(self) -> None:
        rows = len(self.lang_idx)
        for name in (*_ROW_ARRAYS, *_METRICS):
            shape = (rows, 3) if name in _METRICS else (rows,)
            if getattr(self, name).shape != shape:
                raise ValueError(f"{name} has shape {getattr(self, name).shape}, expected {shape}")
        for name, labels in (("lang_idx", self.langs), ("direction_idx", self.directions)):
            arr = getattr(self, name)
            if rows and not ((arr >= 0) & (arr < len(labels))).all():
                raise ValueError(f"{name} must index into {labels}")
        for name, labels in (("method_idx", self.methods), ("operator_idx", self.operators)):
            arr = getattr(self, name)
            if rows and not ((arr >= -1) & (arr < len(labels))).all():
                raise ValueError(f"{name} must index into {labels}, or be -1 (unsteered)")
        plain = self.method_idx == -1
        alike = (self.operator_idx == -1, self.layer == -1, np.isnan(self.strength))
        if not all(np.array_equal(plain, x) for x in alike):
            raise ValueError(
                "an unsteered row has method_idx, operator_idx and layer -1 and strength NaN; "
                "a steered row has none of these"
            )
        if (self.selected & plain).any():
            raise ValueError("an unsteered row cannot be selected")
        keys = set()
        for i in range(rows):
            key = self._key(i)
            if key in keys:
                raise ValueError(f"cell {key} appears twice")
            keys.add(key)
            if plain[i]:
                continue
            op = self.operators[self.operator_idx[i]]
            if int(self.layer[i]) not in self.layers:
                raise ValueError(f"row {i}: layer {self.layer[i]} is not one of {self.layers}")
            if float(self.strength[i]) not in self.strengths[op]:
                raise ValueError(
                    f"row {i}: strength {self.strength[i]} is not one of {self.strengths[op]}"
                )
        for group in {k[:4] for k in keys if k[2] >= 0}:
            self._check_selected(group)

    def _key(self, i: int) -> tuple[int, int, int, int, int, float, bool]:
        strength = float(self.strength[i])
        return (int(self.lang_idx[i]), int(self.direction_idx[i]), int(self.method_idx[i]),
                int(self.operator_idx[i]), int(self.layer[i]),
                -1.0 if math.isnan(strength) else strength, bool(self.test[i]))  # fmt: skip

    def _group(self, group: tuple[int, int, int, int]) -> np.ndarray:
        lang, direction, method, operator = group
        return (
            (self.lang_idx == lang)
            & (self.direction_idx == direction)
            & (self.method_idx == method)
            & (self.operator_idx == operator)
        )

    def _check_selected(self, group: tuple[int, int, int, int]) -> None:
        rows = self._group(group)
        select = np.flatnonzero(rows & ~self.test)
        best = _first_best(self.score[select, 0], self.layer[select], self.strength[select])
        want = set() if best is None else {int(select[best])}
        got = set(np.flatnonzero(rows & ~self.test & self.selected).tolist())
        where = self._label(group)
        if got != want:
            raise ValueError(
                f"{where}: the selected cell must be the best selection cell (ties: earliest "
                f"layer, then smallest strength), row {sorted(want)}, got rows {sorted(got)}"
            )
        chosen = None if best is None else int(select[best])
        for i in np.flatnonzero(rows & self.test):
            cell = (int(self.layer[i]), float(self.strength[i]))
            if chosen is None or cell != (int(self.layer[chosen]), float(self.strength[chosen])):
                raise ValueError(f"{where}: test row {i} is not the selected cell's test run")
            if not self.selected[i]:
                raise ValueError(f"{where}: test row {i} of the selected cell must be selected")

    def _label(self, group: tuple[int, int, int, int]) -> str:
        lang, direction, method, operator = group
        return (f"{self.langs[lang]} {self.directions[direction]} {self.methods[method]} "
                f"{self.operators[operator]}")  # fmt: skip

    # ------------------------------------------------------------- reading

    def to_frame(self) -> pd.DataFrame:
        """One row per cell, long format (for plots: filter, then x/y by column).

        Columns: ``lang``, ``direction``, ``method`` (:data:`UNSTEERED` for the unsteered
        model), ``operator`` (``"none"`` unsteered), ``layer`` (-1 unsteered), ``strength``
        (NaN unsteered), ``split`` (``"select"`` or ``"test"``), ``selected``, ``applied``,
        then ``control``, ``control_low``, ``control_high``, ``relevance``,
        ``relevance_low``, ``relevance_high``, ``score``, ``score_low``, ``score_high``
        and ``n``.
        """
        plain = self.method_idx == -1
        methods = np.asarray([*self.methods, UNSTEERED], dtype=object)
        operators = np.asarray([*self.operators, "none"], dtype=object)
        frame = pd.DataFrame(
            {
                "lang": np.asarray(self.langs, dtype=object)[self.lang_idx],
                "direction": np.asarray(self.directions, dtype=object)[self.direction_idx],
                "method": methods[np.where(plain, len(self.methods), self.method_idx)],
                "operator": operators[np.where(plain, len(self.operators), self.operator_idx)],
                "layer": self.layer,
                "strength": self.strength,
                "split": np.where(self.test, "test", "select").astype(object),
                "selected": self.selected,
                "applied": self.applied,
            }
        )
        for name in _METRICS:
            for col, suffix in enumerate(("", "_low", "_high")):
                frame[f"{name}{suffix}"] = getattr(self, name)[:, col]
        frame["n"] = self.n
        return frame

    def table(self) -> pd.DataFrame:
        """The result: per language × direction × method × operator, the selected cell on test.

        Columns: ``lang``, ``direction``, ``method``, ``operator``, ``layer``,
        ``strength``, ``applied``, the test scores (``control``, ``relevance``, ``score``,
        ``score_low``, ``score_high``, ``n``), the unsteered model on the same test
        prompts (``unsteered_control``, ``unsteered_relevance``, ``unsteered_score``),
        ``gain`` (``score - unsteered_score``), then the selection score of the chosen
        cell and of the unsteered model (``select_score``, ``select_unsteered``; the
        former is optimistic: the best of the grid on the prompts it was chosen on).
        A group whose every selection cell failed has no row.
        """
        out = []
        for i in np.flatnonzero(self.selected & self.test):
            li, di = int(self.lang_idx[i]), int(self.direction_idx[i])
            pick = (
                self._group((li, di, int(self.method_idx[i]), int(self.operator_idx[i])))
                & ~self.test
                & self.selected
            )
            chosen = int(np.flatnonzero(pick)[0])
            base = self._baseline(li, di, test=True)
            base_select = self._baseline(li, di, test=False)
            out.append(
                {
                    "lang": self.langs[li],
                    "direction": self.directions[di],
                    "method": self.methods[self.method_idx[i]],
                    "operator": self.operators[self.operator_idx[i]],
                    "layer": int(self.layer[i]),
                    "strength": float(self.strength[i]),
                    "applied": float(self.applied[i]),
                    "control": self.control[i, 0],
                    "relevance": self.relevance[i, 0],
                    "score": self.score[i, 0],
                    "score_low": self.score[i, 1],
                    "score_high": self.score[i, 2],
                    "n": int(self.n[i]),
                    "unsteered_control": _at(self.control, base),
                    "unsteered_relevance": _at(self.relevance, base),
                    "unsteered_score": _at(self.score, base),
                    "gain": self.score[i, 0] - _at(self.score, base),
                    "select_score": self.score[chosen, 0],
                    "select_unsteered": _at(self.score, base_select),
                }
            )
        columns = ["lang", "direction", "method", "operator", "layer", "strength", "applied",
                   "control", "relevance", "score", "score_low", "score_high", "n",
                   "unsteered_control", "unsteered_relevance", "unsteered_score", "gain",
                   "select_score", "select_unsteered"]  # fmt: skip
        return pd.DataFrame(out, columns=columns)

    def _baseline(self, lang: int, direction: int, *, test: bool) -> int | None:
        rows = np.flatnonzero(
            (self.lang_idx == lang)
            & (self.direction_idx == direction)
            & (self.method_idx == -1)
            & (self.test == test)
        )
        return int(rows[0]) if len(rows) else None

    def layer_curve(
        self, lang: str, direction: Direction, method: str, operator: Operator
    ) -> pd.DataFrame:
        """The best selection score at each layer (CLaS-Bench: language structure emerges late).

        Returns:
            One row per layer, in order: ``layer``, ``strength`` (the best one there; ties:
            the smallest), ``score``, ``score_low``, ``score_high``, ``control``,
            ``relevance``, and ``unsteered`` (the unsteered selection score, the same on
            every row). NaN where every cell of a layer failed.

        Raises:
            ValueError: A label the benchmark does not hold.
        """
        code = canonical(lang)
        group = (
            self._index("langs", code),
            self._index("directions", direction),
            self._index("methods", method),
            self._index("operators", operator),
        )
        rows = self._group(group) & ~self.test
        base = self._baseline(group[0], group[1], test=False)
        out = []
        for layer in self.layers:
            at = np.flatnonzero(rows & (self.layer == layer))
            best = _first_best(self.score[at, 0], self.layer[at], self.strength[at])
            i = None if best is None else int(at[best])
            out.append(
                {
                    "layer": layer,
                    "strength": math.nan if i is None else float(self.strength[i]),
                    "score": _at(self.score, i),
                    "score_low": _at(self.score, i, 1),
                    "score_high": _at(self.score, i, 2),
                    "control": _at(self.control, i),
                    "relevance": _at(self.relevance, i),
                    "unsteered": _at(self.score, base),
                }
            )
        return pd.DataFrame(out)

    def _index(self, name: str, label: str) -> int:
        labels = getattr(self, name)
        if label not in labels:
            raise ValueError(f"{label!r} is not one of this benchmark's {name} {labels}")
        return int(labels.index(label))

    # ------------------------------------------------------------- saving

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (NaN as null)."""
        out: dict[str, Any] = {"format": FORMAT, "version": 1, "model": self.model}
        for name in ("langs", "directions", "methods", "operators", "layers"):
            out[name] = list(getattr(self, name))
        out["strengths"] = {op: list(v) for op, v in self.strengths.items()}
        for name in ("lang_idx", "direction_idx", "method_idx", "operator_idx", "layer", "n"):
            out[name] = [int(x) for x in getattr(self, name)]
        for name in ("test", "selected"):
            out[name] = [bool(x) for x in getattr(self, name)]
        for name in ("strength", "applied", *_METRICS):
            out[name] = nan_as_null(getattr(self, name))
        out["meta"] = dict(self.meta)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ForcingBenchmark":
        """Rebuild from :meth:`to_dict`'s output."""
        if data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} (format={data.get('format')!r})")
        rows = len(data["lang_idx"])
        floats = {
            name: np.asarray(data[name], dtype=np.float64).reshape(
                (rows, 3) if name in _METRICS else (rows,)
            )  # fmt: skip
            for name in ("strength", "applied", *_METRICS)
        }
        return cls(
            model=str(data["model"]),
            langs=tuple(data["langs"]),
            directions=tuple(data["directions"]),
            methods=tuple(data["methods"]),
            operators=tuple(data["operators"]),
            layers=tuple(data["layers"]),
            strengths={k: tuple(v) for k, v in data["strengths"].items()},
            **{name: np.asarray(data[name], dtype=np.int64) for name in
               ("lang_idx", "direction_idx", "method_idx", "operator_idx", "layer", "n")},
            test=np.asarray(data["test"], dtype=bool),
            selected=np.asarray(data["selected"], dtype=bool),
            meta=dict(data["meta"]),
            **floats,
        )  # fmt: skip


_ROW_ARRAYS = ("lang_idx", "direction_idx", "method_idx", "operator_idx", "layer", "strength",
               "test", "applied", "n", "selected")  # fmt: skip


def _at(arr: np.ndarray, row: int | None, col: int = 0) -> float:
    return math.nan if row is None else float(arr[row, col])


def _first_best(scores: np.ndarray, layers: np.ndarray, strengths: np.ndarray) -> int | None:
    """Position of the highest score; ties: the earliest layer, then the smallest strength.

    NaN (a failed cell) never wins; None when every score is NaN (or there is none).
    """
    if not len(scores) or np.isnan(scores).all():
        return None
    order = np.lexsort((strengths, layers))  # by layer, then strength
    ranked = np.nan_to_num(scores[order], nan=-np.inf)
    return int(order[int(np.argmax(ranked))])


# ----------------------------------------------------------------- the run


@dataclass(frozen=True)
class _Cell:
    """One finished cell: its scores and the signed number it steered with, or why it failed."""

    control: tuple[float, float, float]
    relevance: tuple[float, float, float]
    score: tuple[float, float, float]
    n: int
    applied: float
    failed: str | None = None

    @classmethod
    def of(cls, result: ForcingResult, applied: float, seed: int) -> "_Cell":
        c, r = result.control_share(), result.relevance_share()
        s = result.score(n_boot=N_BOOT, seed=seed)
        return cls(_triple(c), _triple(r), _triple(s), len(result.control), applied)

    @classmethod
    def failure(cls, why: str, applied: float) -> "_Cell":
        nan = (math.nan, math.nan, math.nan)
        return cls(nan, nan, nan, 0, applied, why)


def _triple(x: Sequence[float]) -> tuple[float, float, float]:
    a, b, c = (float(v) for v in x)
    return a, b, c


class _Cells:
    """A run folder's cells and vectors.

    A cell is one JSON file, written atomically: ``{"cell": what it steered with,
    "result": the ForcingResult's dict}``, or ``{"cell": ..., "failed": why}``.
    """

    def __init__(
        self,
        root: Path | None,
        model: Model,
        seed: int,
        resume: bool,
        hyper: Mapping[str, Mapping[str, Any]],
    ) -> None:
        self.root, self.model, self.seed, self.resume = root, model, seed, resume
        self.hyper = hyper
        self.failed: dict[str, str] = {}

    def _path(self, key: str) -> Path:
        assert self.root is not None
        return self.root / "cells" / f"{key}.json"

    def get(self, key: str, prompts: ForcingPrompts) -> _Cell | None:
        """The finished cell under ``key``, or None (also for a file that never finished)."""
        if not self.resume or self.root is None:
            return None
        path = self._path(key)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # missing, or a write that never finished: compute it again
        try:
            applied = float(data["cell"]["applied"])
            if "failed" in data:
                why = str(data["failed"])
                self.failed[key] = why
                return _Cell.failure(why, applied)
            result = ForcingResult.from_dict(data["result"])
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(
                f"{path} is not a forcing cell ({type(err).__name__}: {err}); delete it to "
                "compute the cell again"
            ) from None
        saved = {"lang": result.lang, "direction": result.direction, "ids": list(result.ids)}
        now = {"lang": prompts.lang, "direction": prompts.direction, "ids": list(prompts.ids)}
        require_settings(path, saved, now, what="a cell",
                         hint="delete it to compute it again, or use another run_dir")  # fmt: skip
        return _Cell.of(result, applied, self.seed)

    def compute(
        self, key: str, record: Mapping[str, Any], run: Callable[[], ForcingResult]
    ) -> _Cell:
        """Run a cell and save it atomically; a non-finite failure is saved as such."""
        applied = float(record["applied"])
        try:
            result = run()
        except Exception as err:
            cause = NonFiniteError.found_in(err)
            if cause is None:
                raise
            self.failed[key] = str(cause)
            self._put(key, {"cell": dict(record), "failed": str(cause)})
            return _Cell.failure(str(cause), applied)
        self._put(key, {"cell": dict(record), "result": result.to_dict()})
        return _Cell.of(result, applied, self.seed)

    def _put(self, key: str, data: Mapping[str, Any]) -> None:
        if self.root is not None:
            atomic_write_json(self._path(key), dict(data), root=self.root)

    def vectors(
        self,
        lang: str,
        method: str,
        layers: Sequence[int],
        corpus: ParallelCorpus,
        progress: bool | None,
    ) -> dict[int, SteeringVector]:
        """The vectors of ``lang`` and ``method``: saved ones, the rest fitted in one pass."""
        out: dict[int, SteeringVector] = {}
        for layer in layers:
            path = self._vector_path(method, lang, layer)
            if (
                self.resume
                and path is not None
                and path.with_name(path.name + ".safetensors").is_file()
            ):
                expected = _fit_expected(self.model, lang, layer, method, corpus,
                                         self.hyper.get(method, {}))  # fmt: skip
                saved = check_fitted(SteeringVector.load(path), expected, path)
                data = saved.meta.get("data") or {}
                require_settings(path, {"fingerprint": data.get("fingerprint")},
                                 {"fingerprint": corpus.fingerprint}, what="a vector",
                                 hint="delete it to fit it again")  # fmt: skip
                out[layer] = saved
        missing = [layer for layer in layers if layer not in out]
        if missing:  # the activations are collected once per language and layer set
            cache = None if self.root is None else self.root / "activations"
            fitted = fit_vectors(self.model, corpus, layers=missing, method=method,
                                 cache_dir=cache, progress=progress,
                                 **self.hyper.get(method, {}))  # fmt: skip
            for layer, vector in fitted.items():
                path = self._vector_path(method, lang, layer)
                if path is not None:
                    vector.save(path, root=self.root)
                out[layer] = vector
        return out

    def _vector_path(self, method: str, lang: str, layer: int) -> Path | None:
        return None if self.root is None else self.root / "vectors" / method / lang / f"L{layer}"


class _Vectors:
    """The vectors of one (language, method), fitted (or loaded) once, when first needed."""

    def __init__(
        self,
        cells: _Cells,
        lang: str,
        method: str,
        layers: Sequence[int],
        corpus: ParallelCorpus,
        progress: bool | None,
    ) -> None:
        self.cells, self.lang, self.method, self.layers = cells, lang, method, layers
        self.corpus, self.progress = corpus, progress
        self.got: dict[int, SteeringVector] | None = None

    def __call__(self, layer: int) -> SteeringVector:
        if self.got is None:  # every layer in one activation pass
            self.got = self.cells.vectors(self.lang, self.method, self.layers, self.corpus,
                                          self.progress)  # fmt: skip
        return self.got[layer]


def _fit_expected(
    model: Model,
    lang: str,
    layer: int,
    method: str,
    corpus: ParallelCorpus,
    hyper: Mapping[str, Any],
) -> dict[str, Any]:
    """What :func:`check_fitted` asks of a saved vector of a benchmark folder."""
    return {
        "model": model_name(model),
        "lang": lang,
        "layer": layer,
        "method": method,
        "dataset": corpus.meta.get("dataset"),
        "split": corpus.meta.get("split"),
        "n": len(corpus),
        "pooling": "mean",
        "exclude_bos": True,
        "hyper": dict(hyper),
    }


def _check_hyper(
    methods: Sequence[str], hyper: Mapping[str, Mapping[str, Any]] | None
) -> dict[str, dict[str, Any]]:
    """``hyper`` checked against the methods (names and each one's hyper-parameters)."""
    given = dict(hyper or {})
    names = {resolve_method(m).name: m for m in given}
    stray = sorted(set(names) - set(methods))
    if stray:
        raise ValueError(
            f"hyper names {stray}, which are not among the methods {tuple(methods)}; "
            "give hyper-parameters only for methods the benchmark fits"
        )
    out: dict[str, dict[str, Any]] = {}
    for name, key in names.items():
        options = given[key]
        if not isinstance(options, Mapping):
            raise ValueError(
                f"hyper[{key!r}] must map hyper-parameter names to values, got {options!r}"
            )
        own = {"pooling", "exclude_bos", "cache_dir", "progress", "layers", "lang", "method"}
        clash = sorted(set(options) & own)
        if clash:
            raise ValueError(
                f"hyper[{key!r}] sets {clash}, which the benchmark fixes itself; give only "
                "the method's own hyper-parameters"
            )
        check_hyper(name, options)
        out[name] = plain_settings(dict(options))
    return {name: out[name] for name in methods if name in out}


def _tag(x: float) -> str:
    """A file-name-safe, exact tag for a strength: ``0.25`` -> ``0.25``."""
    text = repr(float(x))
    if all(ch.isalnum() or ch in ".-" for ch in text):
        return text
    return hashlib.sha1(text.encode()).hexdigest()[:10]  # pragma: no cover


def _fit_pairs(corpus: ParallelCorpus, n_fit: int) -> ParallelCorpus:
    """The last ``n_fit`` pairs of ``corpus`` (its lines recorded in ``meta["lines"]``)."""
    total = len(corpus)
    return replace(
        corpus,
        english=corpus.english[total - n_fit :],
        target=corpus.target[total - n_fit :],
        ids=corpus.ids[total - n_fit :] if corpus.ids else (),
        meta={**corpus.meta, "lines": [total - n_fit, total]},
    )


def _check_names(what: str, given: Sequence[str] | str, choices: Sequence[str]) -> tuple[str, ...]:
    items = [given] if isinstance(given, str) else list(given)
    if not items:
        raise ValueError(f"give at least one of {what}, from {tuple(choices)}")
    for item in items:
        check_choice(what.rstrip("s"), item, choices)
    return tuple(dict.fromkeys(items))


def _check_grid(
    operators: Sequence[str], strengths: Mapping[Operator, Sequence[float]] | None
) -> dict[str, tuple[float, ...]]:
    chosen = FORCING_STRENGTHS if strengths is None else strengths
    given: dict[str, Sequence[float]] = {str(k): v for k, v in chosen.items()}
    for op in given:
        check_choice("strengths operator", op, OPERATORS)
    grid: dict[str, tuple[float, ...]] = {}
    for op in operators:
        if op not in given:
            raise ValueError(
                f"strengths names no grid for operator {op!r}; give strengths={{{op!r}: (...)}} "
                f"in {_UNITS[op]}"
            )
        values = given[op]
        if isinstance(values, int | float):
            values = (values,)
        if not len(values):
            raise ValueError(f"strengths[{op!r}] is empty; give at least one strength")
        grid[op] = tuple(sorted({_check_strength(op, x) for x in values}))
    return grid


@locks_run("run_dir")  # one run at a time writes a run folder
def forcing_benchmark(
    model: Model,
    langs: Sequence[str] = FORCING_LANGS,
    *,
    methods: Sequence[str] = ("mean_diff",),
    operators: Sequence[Operator] = ("add",),
    directions: Sequence[Direction] = DIRECTIONS,  # type: ignore[assignment]
    layers: Sequence[int] | None = None,
    strengths: Mapping[Operator, Sequence[float]] | None = None,
    hyper: Mapping[str, Mapping[str, Any]] | None = None,
    n_fit: int = 200,
    n_select: int = 16,
    n_test: int = 32,
    source: str = "flores",
    positions: Positions = "all",
    k: int = 4,
    max_new_tokens: int = 32,
    batch_size: int = 8,
    seed: int = 0,
    run_dir: str | os.PathLike[str] | None = None,
    resume: bool = True,
    progress: bool | None = None,
) -> ForcingBenchmark:
    """Score every method, operator, layer and strength at forcing a language; select, test.

    For each language and direction, the unsteered model is run on the selection and the
    test prompts. For each method, one activation pass fits a vector at every layer (on the
    corpus's last ``n_fit`` pairs); for each operator, every (layer, strength) is run on
    the selection prompts, the one with the highest harmonic-mean score is chosen (ties:
    earliest layer, then smallest strength; failed cells never), and only it is run on the
    test prompts. See the module's text for the data split, the sign of each direction
    and the strengths.

    Args:
        model: The model (a bridge, or a HookedTransformer on TransformerLens 3.x).
        langs: Languages (any spelling), from :data:`~interp_steer.constants.FORCING_LANGS`.
        methods: Fitting methods (:func:`~interp_steer.fitting.fit_vectors`'s names).
        operators: Steering operators (``"add"``, ``"ablate"``, ``"rotate"``, ``"clamp"``).
        directions: ``"to_english"`` (steer with ``+v``) and/or ``"from_english"``
            (``-v``).
        layers: Layers to try; all by default.
        strengths: Per operator, the positive strengths to try (:data:`STRENGTH_UNITS`);
            :data:`~interp_steer.constants.FORCING_STRENGTHS` by default.
        hyper: Per method, hyper-parameters passed on to
            :func:`~interp_steer.fitting.fit_vectors` (e.g. ``{"lowrank": {"k": 4}}``);
            each method's defaults otherwise. Recorded in ``config.json``.
        n_fit: Pairs to fit on, from the end of the corpus.
        n_select: Selection prompts: corpus lines ``[0, n_select)``.
        n_test: Test prompts: lines ``[n_select, n_select + n_test)``.
        source: The parallel corpus (``"flores"``).
        positions: Where the vector acts (``"all"``).
        k: Passed on to :func:`~interp_steer.evaluation.forcing_run`.
        max_new_tokens: Tokens generated per prompt.
        batch_size: Prompts per generation batch.
        seed: Seed of the runs and of each cell's bootstrap interval.
        run_dir: Folder for resumable cells and fitted vectors.
        resume: With ``run_dir``: reuse its finished cells and vectors (the default);
            ``False`` deletes its cells, vectors and records and starts over.
        progress: A bar over the cells (resumed ones count as done at once) and the
            fitting's bars; None follows :func:`~interp_steer.progress.set_progress`.

    Returns:
        A :class:`ForcingBenchmark`; :meth:`~ForcingBenchmark.table` is the test result.

    Raises:
        ValueError: An unknown language, direction, method or operator, an empty grid, a
            layer out of range, a strength out of its range, or ``n_select + n_test +
            n_fit`` beyond the corpus (all checked before any work and before ``run_dir``
            is written), or :class:`~interp_steer.storage.SettingsError`: ``run_dir``
            holds a run with other settings (each one named).
    """
    codes = [canonical(x) for x in ([langs] if isinstance(langs, str) else list(langs))]
    codes = list(_check_names("langs", codes, FORCING_LANGS))
    dirs = _check_names("directions", directions, DIRECTIONS)
    method_list = [methods] if isinstance(methods, str) else list(methods)
    if not method_list or not all(isinstance(m, str) for m in method_list):
        raise ValueError(f"methods must name at least one fitting method, got {methods!r}")
    method_names = tuple(dict.fromkeys(resolve_method(m).name for m in method_list))
    method_hyper = _check_hyper(method_names, hyper)
    ops = _check_names("operators", operators, OPERATORS)
    grid = _check_grid(ops, strengths)
    layer_tuple = check_layers(model, range(int(model.cfg.n_layers)) if layers is None else layers)
    counts = {name: check_count(name, value) for name, value in
              (("n_fit", n_fit), ("n_select", n_select), ("n_test", n_test), ("k", k),
               ("max_new_tokens", max_new_tokens), ("batch_size", batch_size))}  # fmt: skip
    seed = check_count("seed", seed, minimum=0)
    for name in ("n_select", "n_test"):
        if counts[name] < k + 1:
            raise ValueError(
                f"{name}={counts[name]} is too few prompts: relevance compares each "
                f"continuation with k={k} other prompts, so each split needs at least {k + 1}"
            )
    check_choice("positions", positions, POSITION_MODES)

    # the data: disjoint splits of one corpus per language, read before any work
    splits: dict[str, dict[str, Any]] = {}
    prompts: dict[tuple[str, str, str], ForcingPrompts] = {}
    fit_pairs: dict[str, ParallelCorpus] = {}
    fingerprints: dict[str, str] = {}
    for lang in codes:
        corpus = load_parallel(source, lang)
        total = len(corpus)
        if n_select + n_test + n_fit > total:
            raise ValueError(
                f"n_select + n_test + n_fit = {n_select} + {n_test} + {n_fit} = "
                f"{n_select + n_test + n_fit} exceeds the {total} pairs of {corpus.name}: the "
                "selection, test and fitting pairs must not overlap"
            )
        fit_pairs[lang] = _fit_pairs(corpus, n_fit)
        fingerprints[f"{lang}-fit"] = fit_pairs[lang].fingerprint
        splits[lang] = {"select": [0, n_select], "test": [n_select, n_select + n_test],
                        "fit": [total - n_fit, total], "lines": total,
                        "split": corpus.meta.get("split")}  # fmt: skip
        for direction in dirs:
            for stage, start, n in (("select", 0, n_select), ("test", n_select, n_test)):
                p = forcing_prompts(lang, direction, start=start, n=n, source=source)  # type: ignore[arg-type]
                prompts[lang, direction, stage] = p
                fingerprints[f"{lang}-{direction}-{stage}"] = p.fingerprint

    settings = {
        "benchmark": "forcing",
        "source": source,
        **counts,
        "seed": seed,
        "positions": positions,
        "n_boot": N_BOOT,
        "fit": {"dataset": source, "split": splits[codes[0]]["split"], "n": n_fit,
                "pairs": "last", "pooling": "mean", "exclude_bos": True,
                "hyper": method_hyper},
    }  # fmt: skip
    root = None if run_dir is None else Path(run_dir)
    if root is not None and not resume:
        for name in ("cells", "vectors", "data", "activations", "hyper"):
            shutil.rmtree(root / name, ignore_errors=True)
        (root / "config.json").unlink(missing_ok=True)
    store = CellStore(root)
    store.check_config({**model_settings(model), **settings, "relevance": RELEVANCE_RULE})
    store.check_data(fingerprints)
    full = {name: plain_settings(check_hyper(name, method_hyper.get(name, {})))
            for name in method_names}  # fmt: skip
    # one record per method: parts of one folder may fit different methods
    store.check_records("hyper", {m: {"fit": {"hyper": {m: h}}} for m, h in full.items()})
    cells = _Cells(root, model, seed, resume, method_hyper)

    rows: list[dict[str, Any]] = []
    run_args: dict[str, Any] = {"positions": positions, "k": k, "max_new_tokens": max_new_tokens,
                "batch_size": batch_size, "seed": seed, "progress": False}  # fmt: skip
    per_dir = 2 + len(method_names) * sum(len(layer_tuple) * len(grid[op]) + 1 for op in ops)
    with progress_bar(total=len(codes) * len(dirs) * per_dir, desc="forcing cells",
                      unit="cell", progress=progress) as bar:  # fmt: skip
        for li, lang in enumerate(codes):
            for di, direction in enumerate(dirs):
                for stage in ("select", "test"):
                    p = prompts[lang, direction, stage]
                    key = f"{lang}/{direction}/{UNSTEERED}-{stage}"
                    cell = cells.get(key, p) or cells.compute(
                        key, {"applied": 0.0},
                        functools.partial(forcing_run, model, p, **run_args),
                    )  # fmt: skip
                    bar.update()
                    rows.append(_row(li, di, -1, -1, -1, math.nan, stage == "test", cell))
            for mi, method in enumerate(method_names):
                vectors = _Vectors(cells, lang, method, layer_tuple, fit_pairs[lang], progress)
                for di, direction in enumerate(dirs):
                    for oi, op in enumerate(ops):
                        group = []
                        for layer in layer_tuple:
                            for s in grid[op]:
                                key = f"{lang}/{direction}/{method}/{op}/L{layer}-s{_tag(s)}"
                                cell = _steered(cells, f"{key}-select",
                                                prompts[lang, direction, "select"], model, op,
                                                direction, s, layer, vectors, run_args)  # fmt: skip
                                bar.update()
                                group.append(_row(li, di, mi, oi, layer, s, False, cell))
                        best = _first_best(
                            np.asarray([r["score"][0] for r in group]),
                            np.asarray([r["layer"] for r in group]),
                            np.asarray([r["strength"] for r in group]),
                        )  # chosen on the selection prompts only
                        if best is not None:
                            group[best]["selected"] = True
                            layer, s = group[best]["layer"], group[best]["strength"]
                            key = f"{lang}/{direction}/{method}/{op}/L{layer}-s{_tag(s)}"
                            cell = _steered(cells, f"{key}-test", prompts[lang, direction, "test"],
                                            model, op, direction, s, layer, vectors,
                                            run_args)  # fmt: skip
                            group.append({**_row(li, di, mi, oi, layer, s, True, cell),
                                          "selected": True})  # fmt: skip
                        bar.update()
                        rows.extend(group)

    return ForcingBenchmark(
        model=model_name(model),
        langs=tuple(codes),
        directions=dirs,
        methods=method_names,
        operators=ops,
        layers=layer_tuple,
        strengths=grid,
        **{name: np.asarray([r[name] for r in rows]) for name in _ROW_ARRAYS if name != "selected"},
        selected=np.asarray([r["selected"] for r in rows], dtype=bool),
        **{name: np.asarray([r[name] for r in rows], dtype=np.float64).reshape(-1, 3)
           for name in _METRICS},
        meta={
            "splits": splits,
            "settings": json.loads(json.dumps(settings)),
            "units": dict(STRENGTH_UNITS),
            "failed": dict(cells.failed),
            "run_dir": None if run_dir is None else str(run_dir),
        },
    )  # fmt: skip


def _steered(
    cells: _Cells,
    key: str,
    prompts: ForcingPrompts,
    model: Model,
    operator: str,
    direction: str,
    strength: float,
    layer: int,
    vectors: _Vectors,
    run_args: Mapping[str, Any],
) -> _Cell:
    """One steered cell: read from the run folder, else steered, run and saved."""
    cell = cells.get(key, prompts)
    if cell is not None:
        return cell
    vector = vectors(layer)
    args = forcing_arguments(vector, operator, direction, strength)  # type: ignore[arg-type]
    record = {"layer": layer, "strength": strength, "applied": _applied(operator, args), **args}

    def run() -> ForcingResult:
        return forcing_run(model, prompts, vector=vector, operator=operator, **args,  # type: ignore[arg-type]
                           **run_args)  # fmt: skip

    return cells.compute(key, record, run)


def _row(
    lang: int,
    direction: int,
    method: int,
    operator: int,
    layer: int,
    strength: float,
    test: bool,
    cell: _Cell,
) -> dict[str, Any]:
    return {"lang_idx": lang, "direction_idx": direction, "method_idx": method,
            "operator_idx": operator, "layer": layer, "strength": strength, "test": test,
            "applied": cell.applied, "control": cell.control, "relevance": cell.relevance,
            "score": cell.score, "n": cell.n, "selected": False}  # fmt: skip


__all__ = [
    "FORMAT",
    "N_BOOT",
    "STRENGTH_UNITS",
    "UNSTEERED",
    "ForcingBenchmark",
    "forcing_arguments",
    "forcing_benchmark",
]
