"""Turn a study run folder (:mod:`interp_steer.study`) into ``docs/results.md`` + figures.

Every number on the page is read from the run folder; nothing is typed in by hand except
the paper's own Table 2 averages, quoted for comparison.
"""

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from interp_steer.storage import atomic_write_text

__all__ = [
    "gains_table",
    "main_table",
    "markdown_table",
    "runs_frame",
    "trained_ratios",
    "write_results",
]

PAPER_TABLE2 = (
    "| (paper, 5 × 7B models, 14 languages) | MGSM | XCOPA |\n|---|---|---|\n"
    "| Base | 38.1 | 66.4 |\n| Google-Trans | 44.6 | 75.5 |\n| 5-shot | 32.5 | 58.9 |\n"
    "| XLT | 30.4 | 46.1 |\n| DPO-steer | 42.2 | 71.2 |\n| MSE-steer | 39.9 | 66.9 |"
)


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
    from interp_steer.compare import EvalResult, paired_test

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


def _findings(
    runs: pd.DataFrame, rows: tuple[str, ...], levels: pd.DataFrame, trained: dict[str, float]
) -> str:
    """Plain-language findings, every number computed from the run.

    ``trained``: the largest ‖v‖/‖h‖ of each method applied as trained (mse, bipo)."""
    mean = runs.groupby("row")["accuracy"].mean()
    from interp_steer.study import BASELINE_ROWS

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
            f" `{m}` as trained (α = 1) has ‖v‖/‖h‖ ≤ {r:.1e} and moves accuracy by at most "
            f"{runs[runs['row'] == m]['gain'].abs().max():.0f} points."
            for m, r in trained.items()
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


def trained_ratios(vectors: Path, methods: tuple[str, ...]) -> dict[str, float]:
    """Largest ``‖v‖/‖h‖`` over languages of each method applied as trained (α = 1).

    ``vectors``: a folder of saved ``<lang>-<method>`` vectors (the study's ``vectors/``).
    """
    out: dict[str, float] = {}
    for m in ("mse", "bipo"):
        files = sorted(vectors.glob(f"*-{m}.json")) if m in methods else []
        ratios = [
            json.loads(f.read_text(encoding="utf-8"))["meta"]["metrics"]["norm_ratio"]
            for f in files
        ]
        if ratios:
            out[m] = float(max(ratios))
    return out


def middle_layers(sim: Any) -> slice:
    """The middle half of a similarity result's layers (where the page averages)."""
    return slice(len(sim.layers) // 4, 3 * len(sim.layers) // 4 + 1)


def similarity_levels(sim: Any) -> pd.DataFrame:
    """Mean similarity to English per resource level: centred cosine over the middle layers
    and retrieval accuracy at the best layer."""
    from interp_steer.languages import get_language

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


def _half_width(n: int) -> float:
    """Half-width (points) of a normal 95% interval around 50% with ``n`` items."""
    return 100 * 1.96 * math.sqrt(0.25 / n) if n > 0 else math.nan


def _times(study: dict[str, Any]) -> str:
    """Minutes per stage (accumulated ``compute_s``, else this invocation's timings)."""
    t = study.get("compute_s") or study["timings_s"]
    text = f"{sum(t.values()) / 60:.0f} in total; " + ", ".join(
        f"{name.replace('_', ' ')} {seconds / 60:.0f}" for name, seconds in t.items()
    )
    return text + (f" ({study['compute_note']})" if study.get("compute_note") else "")


def write_results(
    out: str | os.PathLike[str],
    *,
    page: str | os.PathLike[str] = "docs/results.md",
    figures: str | os.PathLike[str] = "figures",
) -> Path:
    """Write the results page and its PNG figures from the run folder ``out``."""
    from interp_steer.logit_lens import LogitLensResult
    from interp_steer.plotting import (
        plot_language_shares,
        plot_similarity,
        plot_similarity_matrix,
        plot_sweep,
        plot_transfer,
        save_figure,
    )
    from interp_steer.results_control import control_section
    from interp_steer.results_generation import generation_section
    from interp_steer.similarity import SimilarityResult
    from interp_steer.study import BASELINE_ROWS, method_rows
    from interp_steer.sweep import SweepResult
    from interp_steer.transfer import TransferResult

    root, fig_dir, page_path = Path(out), Path(figures), Path(page)
    study = json.loads((root / "study.json").read_text(encoding="utf-8"))
    sweep = SweepResult.load(root / "sweep.json")
    sim = SimilarityResult.load(root / "similarity.json")
    transfer = TransferResult.load(root / "transfer.json")
    lens = LogitLensResult.load(root / "lens.json")
    runs = runs_frame(root / "eval")
    rows = (*BASELINE_ROWS, *method_rows(tuple(study["config"]["methods"])))
    cfg = study["config"]
    bipo_note = (
        "`bipo` is BiPO's training (β 0.1, AdamW lr 5e-4, cosine schedule) applied at α = 1, "
        f"at a CPU budget: {cfg.get('bipo_n_fit', cfg['n_fit'])} FLORES pairs, one epoch "
        f"of batches of 4, {cfg.get('bipo_warmup_steps', 100)} warm-up steps (one step "
        "takes ≈10–30 s on these 2 cores; the paper trains on 1000s of pairs with 100 "
        "warm-up steps); `bipo_scaled` is the same BiPO direction at the selected relative "
        "strength, like `mean_diff` and `pca`."
        if "bipo" in rows
        else "BiPO is not in this run: one BiPO step (batch 4, full backward pass through "
        "the 262k-token unembedding) takes ≈10–30 s on these 2 cores, so its settings "
        "(100 warm-up steps, an epoch over the pairs) need most of an hour per language."
    )
    rel = os.path.relpath(fig_dir, page_path.parent)
    beside = page_path.parent / fig_dir.name  # docs/figures -> ../figures keeps mkdocs happy
    if beside.exists() and beside.resolve() == fig_dir.resolve():
        rel = fig_dir.name
    img = lambda name: f"![{name}]({rel}/{name}.png)"  # noqa: E731
    levels = similarity_levels(sim)
    ctrl_text, ctrl_figs = control_section(
        root, img, model=study["model"], control=str(study["config"].get("control_model")),
        levels=levels, runs=runs,
    )  # fmt: skip
    gen_text, gen_figs = generation_section(
        root, img, tuple(study["config"].get("gen_methods", ())), study["config"]
    )
    mid = sim.layers[len(sim.layers) // 2]
    figs = {
        **gen_figs,
        **ctrl_figs,
        "results_sweep": plot_sweep(sweep),
        "results_similarity": plot_similarity(sim),
        f"results_similarity_matrix_L{mid}": plot_similarity_matrix(sim, mid),
        "results_transfer": plot_transfer(transfer),
        "results_lens": plot_language_shares(lens),
    }
    fig_dir.mkdir(parents=True, exist_ok=True)
    for name, fig in figs.items():
        written = save_figure(fig, root / "figures" / name)
        if "png" in written:
            shutil.copyfile(written["png"], fig_dir / f"{name}.png")

    middle = middle_layers(sim)
    selection = pd.DataFrame([{"lang": x, **sweep.best(x)} for x in sweep.langs])
    damage = runs[runs["row"] == "english_damage"][
        ["lang", "layer", "alpha", "accuracy", "gain", "p_value"]
    ]
    text = f"""# Results: the paper's study on {study["model"]}

Generated by `make results` (`python -m interp_steer.study`) from the run folder
`{root}`; every number below is read from it. Hardware: {study["cpu_count"]} CPU cores,
no GPU. Compute per stage in minutes, summed over every invocation (the run resumes; an
interrupted invocation records the time it spent): {_times(study)}. Settings:
`{study["config"]}`.

## Findings

{_findings(runs, rows, levels, trained_ratios(root / "vectors", tuple(cfg["methods"])))}

## Main comparison (XCOPA test, accuracy %)

First {int(runs["n"].max())} XCOPA test items per language. Steering vectors are added at
every position at the layer and strength the sweep selected on XCOPA's **validation**
split (below); `mse` is the paper's AdamW training (lr 1e-8) applied at α = 1;
`mean_diff` and `pca` use the selected relative strength. {bipo_note} `translate_test`
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

{ctrl_text}
{gen_text}
## Not in this study

- **SFT.** No fine-tuning baseline (full or LoRA) was run: the toolkit has no trainer for
  it, and the paper's SFT settings (epochs over all MSVAMP pairs of every language) do not
  fit a 2-core CPU next to everything above.
- **The paper's scale.** Five 7B models and 14 languages there; one 270M model (and a 135M
  control) here, with {cfg["n_test"]} XCOPA and {cfg.get("n_gen_test", 0)} MSVAMP/MGSM
  items per cell: a 95% interval around 50% spans ±{_half_width(cfg["n_test"]):.0f} and
  ±{_half_width(cfg.get("n_gen_test", 0)):.0f} points.
- **Google-MT translate-test on math.** MSVAMP and MGSM ship human English versions,
  which `translate_test` reads; XCOPA's `translate_test` is its Google-MT release.
"""
    return atomic_write_text(page_path, text)
