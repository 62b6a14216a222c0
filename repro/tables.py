"""Tables shared by the sections of ``docs/results.md``, read from a study run folder.

Evaluation files become a frame of runs (:func:`runs_frame`), which the main and gains
tables pivot; similarity results become means per resource level; every table prints as
Markdown (:func:`markdown_table`).
"""

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from interp_steer.analysis import SimilarityResult
from interp_steer.data import get_language
from interp_steer.evaluation import EvalResult, paired_test
from repro.config import AS_TRAINED

__all__ = [
    "KL_COMPARISONS",
    "gains_table",
    "kl_tests",
    "main_table",
    "markdown_table",
    "middle_layers",
    "paired_difference",
    "runs_frame",
    "similarity_levels",
    "trained_ratios",
]


def markdown_table(table: pd.DataFrame, digits: int = 1) -> str:
    """A GitHub-flavoured Markdown table (numbers rounded; NaN as an en dash).

    >>> print(markdown_table(pd.DataFrame({"a": ["x"], "b": [0.123]}), digits=2))
    | a | b |
    |---|---|
    | x | 0.12 |
    """

    def cell(x: Any) -> str:
        if isinstance(x, float | np.floating):
            return "–" if math.isnan(float(x)) else f"{float(x):.{digits}f}"
        return str(x).replace("|", "\\|")

    lines = [
        "| " + " | ".join(str(c) for c in table.columns) + " |",
        "|" + "---|" * len(table.columns),
    ]
    lines += [
        "| " + " | ".join(cell(x) for x in row) + " |" for row in table.itertuples(index=False)
    ]
    return "\n".join(lines)


def runs_frame(folder: Path, keys: tuple[str, ...] = ("lang",)) -> pd.DataFrame:
    """One row per evaluation file ``<key>-...-<tag>.json``, paired with its reference run.

    ``keys`` name the stem's fields before the tag (``"it-basic"``: ``("lang",)``;
    ``"msvamp-de-basic"``: ``("task", "lang")``). Each run is paired with ``basic`` of the
    same keys (``english_damage`` with ``translate_test``) by McNemar's exact test. Runs
    that did not complete (an interrupted study) are left out.
    """
    rows = []
    for path in sorted(folder.glob("*.json")):
        *fields, tag = path.stem.split("-", len(keys))
        res = EvalResult.load(path)
        if not res.complete:
            continue
        ref_tag = "translate_test" if tag == "english_damage" else "basic"
        ref = EvalResult.load(folder / f"{'-'.join([*fields, ref_tag])}.json")
        test = paired_test(ref, res) if tag != ref_tag else None
        rows.append(
            {
                **dict(zip(keys, fields, strict=True)),
                "row": tag,
                "accuracy": 100 * res.accuracy,
                "n": res.n,
                "alpha": res.settings.get("alpha") if res.steered else None,
                "k": res.settings.get("k") if tag == "k_shot" else None,
                "layer": str((res.vector or {}).get("layer", "–")),
                "gain": 100 * test.diff if test else 0.0,
                "p_value": test.p_value if test else math.nan,
            }
        )
    return pd.DataFrame(rows)


def main_table(runs: pd.DataFrame, order: tuple[str, ...]) -> pd.DataFrame:
    """Accuracy (%) per row and language plus the mean; steered rows with their gain."""
    wide = runs.pivot(index="row", columns="lang", values="accuracy")
    wide["mean"] = wide.mean(axis=1)
    wide = wide.reindex([r for r in order if r in wide.index])
    return wide.reset_index().rename(columns={"row": "method"})


def gains_table(runs: pd.DataFrame, order: tuple[str, ...]) -> pd.DataFrame:
    """Rows after ``basic`` in ``order``: accuracy, gain over ``basic`` and its p-value."""
    keep = runs[runs["row"].isin(order[1:])].copy()
    keep["sig"] = np.where(keep["p_value"] < 0.05, "p<0.05", "")
    cols = ["row", "lang", "layer", "alpha", "accuracy", "gain", "p_value", "sig"]
    keep["order"] = keep["row"].map({r: i for i, r in enumerate(order)})
    return keep.sort_values(["order", "lang"])[cols].rename(columns={"row": "method"})


def trained_ratios(vectors: Path, methods: tuple[str, ...]) -> dict[str, tuple[float, float]]:
    """Smallest and largest ``‖v‖/‖h‖`` over languages of each method applied as trained.

    The methods are those of :data:`~repro.config.AS_TRAINED`. ``vectors``: a folder of
    saved ``<lang>-<method>`` vectors (the study's ``vectors/``).
    """
    out: dict[str, tuple[float, float]] = {}
    for m in AS_TRAINED:
        files = sorted(vectors.glob(f"*-{m}.json")) if m in methods else []
        ratios = [
            json.loads(f.read_text(encoding="utf-8"))["meta"]["metrics"]["norm_ratio"]
            for f in files
        ]
        if ratios:
            out[m] = (float(min(ratios)), float(max(ratios)))
    return out


def middle_layers(sim: SimilarityResult) -> slice:
    """The middle half of a similarity result's layers (where the page averages)."""
    return slice(len(sim.layers) // 4, 3 * len(sim.layers) // 4 + 1)


def similarity_levels(sim: SimilarityResult) -> pd.DataFrame:
    """Mean similarity to English per resource level.

    Centred cosine over the middle layers and retrieval accuracy at the best layer.
    """
    langs, cos = sim.vs_english("centred_cosine")
    by_lang = pd.DataFrame(
        {
            "lang": langs,
            "level": [get_language(x).resource for x in langs],
            "centred cosine (middle layers)": cos[:, middle_layers(sim)].mean(1),
            "retrieval (best layer)": sim.vs_english("retrieval")[1].max(1),
        }
    )
    levels = by_lang.groupby("level", sort=False).mean(numeric_only=True)
    order = [x for x in ("high", "mid", "low") if x in levels.index]
    return levels.reindex(order).reset_index()


KL_COMPARISONS = (("bipo", "basic"), ("bipo", "mean_diff"), ("sft", "mean_diff"), ("sft", "basic"))
"""(row, against) pairs the page tests pair by pair on the KL comparison."""


def paired_difference(
    groups: list[tuple[np.ndarray, np.ndarray]], *, n_resamples: int = 2000, seed: int = 0
) -> dict[str, float]:
    """``first - second`` per pair, over one or several groups (languages) of pairs.

    The mean difference over all pairs, its 95% bootstrap interval (pairs resampled within
    each group, so every group keeps its size), how many pairs are lower / higher, and the
    exact two-sided sign test's p-value.

    >>> a, b = np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.5, 0.5, 0.5, 0.5])
    >>> d = paired_difference([(a, b)], n_resamples=200)
    >>> round(d["diff"], 2), d["lower"], d["higher"], d["p_value"]
    (-0.25, 4, 0, 0.125)
    """
    diffs = [np.asarray(x, dtype=float) - np.asarray(y, dtype=float) for x, y in groups]
    if not diffs or any(len(d) == 0 for d in diffs):
        raise ValueError("paired_difference needs at least one pair in every group")
    every = np.concatenate(diffs)
    rng = np.random.default_rng(seed)
    sums = np.zeros(n_resamples)
    for d in diffs:
        sums += d[rng.integers(0, len(d), (n_resamples, len(d)))].sum(1)
    low, high = np.quantile(sums / len(every), [0.025, 0.975])
    lower, higher = int((every < 0).sum()), int((every > 0).sum())
    m, k = lower + higher, min(lower, higher)
    p = min(1.0, 2 * sum(math.comb(m, i) for i in range(k + 1)) / 2**m) if m else 1.0
    return {"diff": float(every.mean()), "ci_low": float(low), "ci_high": float(high),
            "n": len(every), "lower": lower, "higher": higher, "p_value": p}  # fmt: skip


def kl_tests(
    kl: Mapping[str, Mapping[str, Sequence[float] | np.ndarray]],
    comparisons: Sequence[tuple[str, str]] = KL_COMPARISONS,
) -> pd.DataFrame:
    """Each ``(row, against)`` pair of ``comparisons`` present, per language and pooled.

    ``kl``: ``{lang: {row: per-pair KLs}}`` (``gen_kl.json`` without its settings). A
    negative ``diff`` means the first row brings the prompt closer to English.
    """
    out = []
    for row, other in comparisons:
        langs = [x for x in kl if row in kl[x] and other in kl[x]]
        groups = {x: (np.asarray(kl[x][row]), np.asarray(kl[x][other])) for x in langs}
        cells = [(x, [g]) for x, g in groups.items()]
        if len(groups) > 1:
            cells.append(("pooled", list(groups.values())))
        for lang, group in cells:
            d = paired_difference(group)
            ci = f"[{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]"
            out.append({"row": row, "vs": other, "lang": lang, "n": d["n"],
                        "diff (nats)": d["diff"], "95% CI": ci,
                        "lower": f"{d['lower']}/{d['n']}", "p_value": d["p_value"],
                        "sig": "p<0.05" if d["p_value"] < 0.05 else ""})  # fmt: skip
    return pd.DataFrame(out)
