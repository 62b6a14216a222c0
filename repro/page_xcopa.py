"""The XCOPA part of ``docs/results.md``: findings, main table, selection, similarity, lens.

Reads what :mod:`repro.xcopa` wrote into the study's run folder and returns the page
section (Markdown) and its figures; :func:`repro.page.write_results` puts them on the page.
Every number is computed from the run folder, except the paper's own Table 2 averages
(:data:`PAPER_TABLE2`), quoted for comparison.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from interp_steer.analysis import LogitLensResult, SimilarityResult, SweepResult, TransferResult
from interp_steer.plotting import (
    plot_language_shares,
    plot_similarity,
    plot_similarity_matrix,
    plot_sweep,
    plot_transfer,
)
from repro.config import BASELINE_ROWS, SFT_NOTE, bipo_note, method_rows
from repro.tables import gains_table, main_table, markdown_table, middle_layers, trained_ratios
from repro.vectors import bipo_hyper

__all__ = ["PAPER_TABLE2", "xcopa_findings", "xcopa_section"]

PAPER_TABLE2 = (
    "| (paper, 5 × 7B models, 14 languages) | MGSM | XCOPA |\n|---|---|---|\n"
    "| Base | 38.1 | 66.4 |\n| Google-Trans | 44.6 | 75.5 |\n| 5-shot | 32.5 | 58.9 |\n"
    "| XLT | 30.4 | 46.1 |\n| DPO-steer | 42.2 | 71.2 |\n| MSE-steer | 39.9 | 66.9 |"
)
"""The paper's Table 2 averages (Markdown), the one thing on the page not read from the run."""


def xcopa_findings(
    runs: pd.DataFrame,
    rows: tuple[str, ...],
    levels: pd.DataFrame,
    trained: dict[str, tuple[float, float]],
) -> str:
    """Plain-language findings, every number computed from the run.

    ``trained``: the smallest and largest ‖v‖/‖h‖ over languages of each method applied
    as trained (mse, bipo).
    """
    mean = runs.groupby("row")["accuracy"].mean()
    steered = [r for r in rows if r not in BASELINE_ROWS]
    best = max(steered, key=lambda r: mean.get(r, -1.0))
    rows_s = runs[runs["row"].isin(steered)]
    up = rows_s[(rows_s["p_value"] < 0.05) & (rows_s["gain"] > 0)]
    down = rows_s[(rows_s["p_value"] < 0.05) & (rows_s["gain"] < 0)]
    damage = runs[(runs["row"] == "english_damage") & (runs["p_value"] < 0.05)]
    order = levels.set_index("level").iloc[:, 0].sort_values(ascending=False)
    headroom = mean["translate_test"] - mean["basic"]
    lines = [
        f"- **Headroom.** Translate-test (Google MT) scores {mean['translate_test']:.1f}% on "
        f"average against {mean['basic']:.1f}% for the native prompts: the model does "
        f"understand these items better in English, by {headroom:.1f} points.",
        (
            f"- **Steering.** The best steering row on average is `{best}` at {mean[best]:.1f}% "
            f"({mean[best] - mean['basic']:+.1f} points over `basic`); of "
            if mean[best] > mean["basic"]
            else "- **Steering.** No steering row beats `basic` on average ("
            + ", ".join(f"`{r}` {mean[r] - mean['basic']:+.1f}" for r in steered if r in mean)
            + " points); of "
        )
        + f"{len(rows_s)} steered (method, language) runs, {len(up)} gain and {len(down)} "
        "lose significantly (McNemar p < 0.05)."
        + (
            " At this size neither the sign nor the ordering of the paper's steering gains "
            "is established."
            if not len(up)
            else ""
        )
        + "".join(
            f" `{m}` as trained (α = 1) has ‖v‖/‖h‖ from {lo:.1e} to {hi:.1e} and moves "
            f"accuracy by at most {runs[runs['row'] == m]['gain'].abs().max():.0f} points."
            for m, (lo, hi) in trained.items()
        ),
        "- **Prompting baselines.** "
        + ", ".join(
            f"`{b}` {mean[b] - mean['basic']:+.1f}"
            for b in ("self_translate", "xlt", "k_shot")
            if b in mean
        )
        + " points against `basic` (the paper found XLT and 5-shot below its base models).",
        f"- **English damage.** {len(damage)} of the selected vectors change English "
        "accuracy significantly"
        + (
            " (" + ", ".join(f"{r.lang}: {r.gain:+.0f} points" for r in damage.itertuples()) + ")."
            if len(damage)
            else "."
        ),
        "- **Similarity.** Centred cosine to English in the middle layers, by resource level: "
        + ", ".join(f"{lvl} {v:.2f}" for lvl, v in order.items())
        + " — "
        + (
            "high > mid > low, as the paper finds."
            if list(order.index) == ["high", "mid", "low"]
            else "not the paper's high > mid > low ordering."
        ),
    ]
    return "\n".join(lines)


def xcopa_section(
    root: Path,
    img: Callable[[str], str],
    study: dict[str, Any],
    *,
    runs: pd.DataFrame,
    sim: SimilarityResult,
    levels: pd.DataFrame,
) -> tuple[str, dict[str, go.Figure]]:
    """The Markdown of the XCOPA part (from ``## Findings`` on) and its figures.

    Args:
        root: The study's run folder.
        img: Markdown image link of a figure name.
        study: The run folder's ``study.json``.
        runs: The XCOPA runs (:func:`~repro.tables.runs_frame` of ``eval/``).
        sim: The similarity result of ``similarity.json``.
        levels: ``sim``'s :func:`~repro.tables.similarity_levels`.
    """
    sweep = SweepResult.load(root / "sweep.json")
    transfer = TransferResult.load(root / "transfer.json")
    lens = LogitLensResult.load(root / "lens.json")
    cfg = study["config"]
    rows = (*BASELINE_ROWS, *method_rows(tuple(cfg["methods"])))
    trained_note = (
        f"{bipo_note(bipo_hyper(root))} on the same {cfg['n_fit']} FLORES pairs, applied at α = 1."
        if "bipo" in rows
        else ""
    ) + (f" {SFT_NOTE} on the same pairs." if "sft" in rows else "")
    trained = trained_ratios(root / "vectors", tuple(cfg["methods"]))
    mid = sim.layers[len(sim.layers) // 2]
    figs = {
        "results_sweep": plot_sweep(sweep),
        "results_similarity": plot_similarity(sim),
        f"results_similarity_matrix_L{mid}": plot_similarity_matrix(sim, mid),
        "results_transfer": plot_transfer(transfer),
        "results_lens": plot_language_shares(lens),
    }
    middle = middle_layers(sim)
    selection = pd.DataFrame([{"lang": x, **sweep.best(x)} for x in sweep.langs])
    damage = runs[runs["row"] == "english_damage"][
        ["lang", "layer", "alpha", "accuracy", "gain", "p_value"]
    ]
    text = f"""## Findings

{xcopa_findings(runs, rows, levels, trained)}

## Main comparison (XCOPA test, accuracy %)

First {int(runs["n"].max())} XCOPA test items per language. Steering vectors are added at
every position at the layer and strength the sweep selected on XCOPA's **validation**
split (below); `mse` is the paper's AdamW training (lr 1e-8) applied at α = 1;
`mean_diff` and `pca` use the selected relative strength. {trained_note} `translate_test`
reads Google MT's English; `self_translate` has the model translate each premise and choice
into English first (greedy, unsteered). Chance is 50%.

{markdown_table(main_table(runs, rows))}

Gains over `basic` (percentage points) with McNemar's exact paired test:

{markdown_table(gains_table(runs, rows), digits=3)}

For comparison, the paper's Table 2 (averages over five 7B models and 14 languages):

{PAPER_TABLE2}

## Layer and strength selection

{markdown_table(selection, digits=3)}

{img("results_sweep")}

## English damage (paper's Table 4)

The selected `mean_diff` vector of each language applied to the English (Google-MT)
version of its XCOPA items, against the unsteered English run:

{markdown_table(damage, digits=3)}

## Similarity to English by layer

{sim.n} FLORES sentences per language, mean-pooled, centred per language. By resource
level (means over languages; middle = layers {sim.layers[middle][0]}–{sim.layers[middle][-1]}):

{markdown_table(levels, digits=3)}

{img("results_similarity")}

{img(f"results_similarity_matrix_L{mid}")}

## Transfer between languages

Vectors of each language (rows) on each language's prompts (columns), at layer
{transfer.layer} and ‖αv‖/‖h‖ = {transfer.strength:g}; cell = gain over that language's
unsteered baseline; last column: English damage.

{img("results_transfer")}

## Logit lens, base vs steered ({lens.lang})

{img("results_lens")}
"""
    return text, figs
