"""The generation part of ``docs/results.md``: MSVAMP, MGSM, language forcing, KL transfer.

Reads what :mod:`interp_steer.study_generation` wrote into the study's run folder and
returns the page section (Markdown) and its figures; :func:`interp_steer.results.write_results`
puts them on the page. Every number is computed from the run folder.
"""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from interp_steer.results import gains_table, main_table, markdown_table, runs_frame

__all__ = ["generation_section", "kl_table"]

TASK_LABELS = {"msvamp": "MSVAMP", "mgsm": "MGSM", "forcing": "forcing (English %)"}
FLOOR = 15.0
"""Below this English accuracy (%) a math task is called at the model's floor."""

PAIRS_OF_INTEREST = (("es", "fr"), ("fr", "es"), ("es", "de"), ("ja", "zh"), ("zh", "ja"))
"""Transfers the paper names: within a family or script area (es→de/fr, ja↔zh)."""


def _summary(runs: pd.DataFrame, order: tuple[str, ...]) -> pd.DataFrame:
    """Mean over languages per row (method) and task; one column per task."""
    wide = runs.pivot_table(index="row", columns="task", values="accuracy", aggfunc="mean")
    wide = wide.reindex([r for r in order if r in wide.index])
    cols = [t for t in TASK_LABELS if t in wide.columns]
    return wide[cols].rename(columns=TASK_LABELS).reset_index().rename(columns={"row": "method"})


def kl_table(root: Path) -> pd.DataFrame | None:
    """KL to English (nats, lower = closer) per language and row from ``gen_kl.json``."""
    path = root / "gen_kl.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    rows = {lang: {r: -cell["value"] for r, cell in cells.items()} for lang, cells in data.items()}
    table = pd.DataFrame(rows).T
    table.loc["mean"] = table.mean()
    return table.reset_index().rename(columns={"index": "lang"})


def _transfer_lines(transfer: Any) -> list[str]:
    """The diagonal, the off-diagonal and the paper's named pairs, in nats of KL removed."""
    gain = np.asarray(transfer.gain)
    src, tgt = list(transfer.sources), list(transfer.targets)
    diag = [gain[i, tgt.index(x)] for i, x in enumerate(src) if x in tgt]
    off = [gain[i, j] for i, s in enumerate(src) for j, t in enumerate(tgt) if s != t]
    named = [
        f"{a}→{b} {gain[src.index(a), tgt.index(b)]:+.3f}"
        for a, b in PAIRS_OF_INTEREST
        if a in src and b in tgt
    ]
    lines = [f"own language {np.mean(diag):+.3f} nats removed on average"]
    if off:
        lines[0] += (
            f", another language {np.mean(off):+.3f} ({int(np.sum(np.asarray(off) > 0))} of "
            f"{len(off)} off-diagonal cells reduce the KL)"
        )
    if named:
        lines.append("the pairs the paper names: " + ", ".join(named))
    return lines


def _findings(
    runs: pd.DataFrame,
    sweep: Any,
    transfer: Any,
    methods: tuple[str, ...],
    kl: pd.DataFrame | None = None,
) -> str:
    """Plain-language findings of the generation part, every number computed."""
    mean = runs.groupby(["task", "row"])["accuracy"].mean()
    lines = []
    for task in ("msvamp", "mgsm"):
        if (task, "basic") not in mean:
            continue
        t = runs[(runs["task"] == task) & runs["row"].isin(methods)]
        sig = t[t["p_value"] < 0.05]
        lines.append(
            f"- **{TASK_LABELS[task]}.** `basic` {mean[task, 'basic']:.1f}%, "
            f"`translate_test` {mean[task, 'translate_test']:.1f}%, "
            + ", ".join(f"`{m}` {mean[task, m]:.1f}%" for m in methods if (task, m) in mean)
            + f" (mean over {runs[runs['task'] == task]['lang'].nunique()} languages, "
            f"{int(t['n'].max()) if len(t) else 0} items each); {len(sig)} of {len(t)} steered "
            "runs differ significantly from `basic`. "
            + (
                f"Even in English (`translate_test`) the model solves "
                f"{mean[task, 'translate_test']:.1f}%: the task is at its floor, so it cannot "
                "show a steering gain."
                if mean[task, "translate_test"] < FLOOR
                else f"The English headroom is "
                f"{mean[task, 'translate_test'] - mean[task, 'basic']:+.1f} points."
            )
        )
    f = runs[runs["task"] == "forcing"]
    if len(f):
        steered = f[f["row"].isin(methods)]
        up = steered[(steered["p_value"] < 0.05) & (steered["gain"] > 0)]
        lines.append(
            "- **Language forcing.** Continuations that langdetect reads as English: "
            f"{mean['forcing', 'basic']:.1f}% unsteered, "
            + ", ".join(f"{mean['forcing', m]:.1f}% with `{m}`" for m in methods)
            + f"; significantly more English in {len(up)} of {len(steered)} languages. "
            "This is the other side of the same vectors: they move what the model writes "
            "towards English even where they do not change what it gets right."
        )
    sel = pd.DataFrame([sweep.best(x) for x in sweep.langs])
    lines.append(
        "- **Closer to English.** The KL between the native and the English prompt's "
        f"next-token prediction goes from {-sweep.baseline[:, 0].mean():.3f} nats unsteered "
        f"to {-sel['score'].mean():.3f} at the selected cells (held-out train pairs, mean "
        f"over languages; {int((sel['gain'] > 0).sum())} of {len(sel)} languages closer)."
        + (
            f" {weakest} of {len(sel)} languages chose the grid's weakest strength "
            f"({min(sweep.strengths):g}), so weaker ones may be closer still."
            if (weakest := int((sel["strength"] == min(sweep.strengths)).sum())) > len(sel) / 2
            else ""
        )
    )
    if kl is not None:
        mean = kl.set_index("lang").loc["mean"]
        rows = [c for c in kl.columns if c not in ("lang", "basic")]
        lines.append(
            f"- **Methods on held-out pairs.** Mean KL to English on MSVAMP `eval` pairs: "
            f"{mean['basic']:.3f} nats unsteered, "
            + ", ".join(f"`{r}` {mean[r]:.3f}" for r in rows)
            + f"; lowest: `{mean[rows].idxmin()}`."
        )
    lines.append("- **Transfer.** " + "; ".join(_transfer_lines(transfer)) + ".")
    return "\n".join(lines)


def generation_section(
    root: Path, img: Callable[[str], str], methods: tuple[str, ...], cfg: dict[str, Any]
) -> tuple[str, dict[str, go.Figure]]:
    """The Markdown section and its figures (name → figure); empty if the part was not run."""
    from interp_steer.plotting import plot_sweep, plot_transfer
    from interp_steer.study_generation import GEN_BASELINES
    from interp_steer.sweep import SweepResult
    from interp_steer.transfer import TransferResult

    if not (root / "gen_transfer.json").is_file():
        return "", {}
    sweep = SweepResult.load(root / "gen_sweep.json")
    transfer = TransferResult.load(root / "gen_transfer.json")
    runs = runs_frame(root / "gen_eval", ("task", "lang"))
    order = (*GEN_BASELINES, *methods)
    figs = {"results_gen_sweep": plot_sweep(sweep), "results_gen_transfer": plot_transfer(transfer)}
    per_task = []
    for task, label in TASK_LABELS.items():
        sub = runs[runs["task"] == task]
        if not len(sub):
            continue
        rows = order if task != "forcing" else ("basic", *methods)
        per_task.append(
            f"### {label}\n\n{markdown_table(main_table(sub, rows))}\n\n"
            f"Gains over `basic` (points), McNemar's exact test:\n\n"
            f"{markdown_table(gains_table(sub, rows), digits=3)}"
        )
    selection = pd.DataFrame([{"lang": x, **sweep.best(x)} for x in sweep.langs])
    kl = kl_table(root)
    kl_text = (
        ""
        if kl is None
        else "### Every method by EnglishKL (MSVAMP `eval` pairs)\n\n"
        f"KL to English in nats (lower = closer) on the first {cfg['n_gen_select']} `eval` "
        "pairs, each method fitted on the same `train` pairs and applied at the selected "
        "layer and strength (`mse` as trained, α = 1):\n\n"
        f"{markdown_table(kl, digits=3)}\n"
    )
    fit_lo, sel_lo = 500, 500 + cfg["n_gen_fit"]
    text = f"""## Generation tasks: MSVAMP-fitted vectors, {len(sweep.langs)} languages

As in the paper, each language's vectors are fitted on MSVAMP pairs: the first
{cfg["n_gen_fit"]} of the `train` half (items {fit_lo}–{sel_lo - 1}). The layer and
strength are selected on the next {cfg["n_gen_select"]} `train` pairs (items
{sel_lo}–{sel_lo + cfg["n_gen_select"] - 1}), which no vector saw, by how close the model's
answer comes to its answer in English: the KL between the next-token distributions after
`Question: <native question> Answer: The answer is` (steered) and the same prompt with the
English question (`EnglishKL`, score = minus the KL in nats). Accuracy cannot rank the
cells: the model solves almost no problem. Tests:
the first {cfg["n_gen_test"]} items of MSVAMP's `eval` half (items 0–499, disjoint from
`train`) and the first {cfg["n_gen_test"]} MGSM items, by greedy decoding of at most
{cfg["gen_tokens"]} new tokens (prompt: the question and "Let's think step by step."),
and language forcing on {cfg["n_forcing"]} FLORES sentences per language (the share of
32-token continuations that langdetect reads as English). Vectors are added at
every position; XLT and k-shot are left out here (their prompts are several times longer,
and decoding is the slow part on a CPU).

{_findings(runs, sweep, transfer, methods, kl)}

Mean over languages (accuracy %; forcing: English %):

{markdown_table(_summary(runs, order))}

{(chr(10) * 2).join(per_task)}

{kl_text}
### Layer and strength selection (EnglishKL on held-out MSVAMP train pairs)

{markdown_table(selection, digits=3)}

{img("results_gen_sweep")}

### Transfer between the {len(sweep.langs)} languages

Each language's vector (rows) on each language's MSVAMP `eval` pairs (columns), at layer
{transfer.layer} and ‖αv‖/‖h‖ = {transfer.strength:g}; cell = nats of KL to English removed
(positive = the prompt's prediction moves towards the English prompt's).

{img("results_gen_transfer")}
"""
    return text, figs
