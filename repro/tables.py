"""Tables shared by the sections of ``docs/results.md``, read from a study run folder.

Evaluation files become a frame of runs (:func:`runs_frame`), which the main and gains
tables pivot; similarity results become means per resource level; every table prints as
Markdown (:func:`markdown_table`).
"""

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from interp_steer.analysis import SimilarityResult
from interp_steer.data import get_language
from interp_steer.evaluation import EvalResult, paired_test
from repro.config import AS_TRAINED

__all__ = [
    "gains_table",
    "main_table",
    "markdown_table",
    "middle_layers",
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


def trained_ratios(vectors: Path, methods: tuple[str, ...]) -> dict[str, float]:
    """Largest ``‖v‖/‖h‖`` over languages of each method applied as trained (α = 1).

    The methods are those of :data:`~repro.config.AS_TRAINED`. ``vectors``: a folder of
    saved ``<lang>-<method>`` vectors (the study's ``vectors/``).
    """
    out: dict[str, float] = {}
    for m in AS_TRAINED:
        files = sorted(vectors.glob(f"*-{m}.json")) if m in methods else []
        ratios = [
            json.loads(f.read_text(encoding="utf-8"))["meta"]["metrics"]["norm_ratio"]
            for f in files
        ]
        if ratios:
            out[m] = float(max(ratios))
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
