"""The latent-language part of ``docs/results.md``: Wendler's figure for the study model.

Reads what :mod:`repro.trajectory` wrote (``trajectory/``) and returns the page section
(Markdown: the figures, the per-layer numbers they are drawn from, and a sentence per lens
computed from those numbers) and its figures; :func:`repro.page.write_results` puts them
on the page. A run folder without ``trajectory/`` gets a one-line note instead.
"""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from interp_steer.analysis import TrajectoryResult
from interp_steer.data import get_language
from interp_steer.plotting import plot_language_trajectory
from repro.tables import markdown_table
from repro.trajectory import LENS_FILES

__all__ = ["lens_findings", "trajectory_section", "trajectory_table"]

SECTION = "## Latent language (Wendler et al.)"
"""The section's heading."""


def trajectory_table(result: TrajectoryResult) -> pd.DataFrame:
    """Per layer, the figure's means: target and English probability and entropy, per run.

    >>> res = TrajectoryResult(
    ...     model="m", source="fr", target="zh", lens="logit", layers=(0, 1), runs=("base",),
    ...     concepts=("dog",), prompts=("p",), target_prob=np.array([[[0.1], [0.6]]]),
    ...     english_prob=np.array([[[0.3], [0.2]]]), entropy=np.array([[[5.0], [1.0]]]),
    ...     n_boot=10)
    >>> trajectory_table(res).columns.tolist()
    ['layer', 'P(zh) base', 'P(en) base', 'entropy base']
    """
    mean = result.interval[0]  # [run, quantity, layer]
    columns: dict[str, Any] = {"layer": list(result.layers)}
    for label, q in ((f"P({result.target})", 0), ("P(en)", 1), ("entropy", 2)):
        for r, run in enumerate(result.runs):
            columns[f"{label} {run}"] = mean[r, q]
    return pd.DataFrame(columns)


def lens_findings(result: TrajectoryResult) -> str:
    """One sentence on what a lens shows, every number computed from ``result``.

    Per run: where the English probability peaks (and the target's there), how many
    layers before the last put more on English than on the target, and the target's
    probability at the last layer (the model's own prediction).

    >>> res = TrajectoryResult(
    ...     model="m", source="fr", target="zh", lens="logit", layers=(0, 1, 2),
    ...     runs=("base",), concepts=("dog",), prompts=("p",),
    ...     target_prob=np.array([[[0.0], [0.1], [0.6]]]),
    ...     english_prob=np.array([[[0.1], [0.3], [0.2]]]),
    ...     entropy=np.array([[[9.0], [5.0], [1.0]]]), n_boot=10)
    >>> text = lens_findings(res)
    >>> text.startswith("Through the logit lens, English peaks at 0.300 at layer 1 (Chinese 0.100")
    True
    >>> "above Chinese at 2 of the 2 layers" in text, text.endswith("0.600 at the last layer.")
    (True, True)
    """
    mean = result.interval[0]
    target = get_language(result.target).name
    parts = []
    for r, run in enumerate(result.runs):
        tgt, eng = mean[r, 0], mean[r, 1]
        peak = int(np.argmax(eng))
        above = int((eng[:-1] > tgt[:-1]).sum())
        who = "" if len(result.runs) == 1 else f"{run}: "
        parts.append(
            f"{who}English peaks at {eng[peak]:.3f} at layer {result.layers[peak]} "
            f"({target} {tgt[peak]:.3f} there), English is above {target} at {above} of the "
            f"{len(result.layers) - 1} layers before the last, and {target} ends at "
            f"{tgt[-1]:.3f} at the last layer"
        )
    return f"Through the {result.lens} lens, " + "; ".join(parts) + "."


def _vector_words(info: dict[str, Any]) -> str:
    """How the page names the steered run's vector (:func:`repro.trajectory.trajectory_vector`)."""
    where = {
        "gen": "the generation part's selected vector",
        "xcopa": "the XCOPA part's `mean_diff` vector (as the logit-lens section uses it)",
        "trajectory": "a `mean_diff` vector fitted for this figure (the target is not a "
        "study language) at the XCOPA languages' shared cell",
    }[info["part"]]
    split = f" {info['split']}" if info.get("split") else ""
    return (
        f"{where} `{info['name']}`: `mean_diff` on {info['n']} {info['dataset']}{split} pairs "
        f"(the target language → English) at layer {info['layer']}, ‖αv‖/‖h‖ = "
        f"{info['ratio']:g} (α = {info['alpha']:.4g}), added at every position"
    )


def _lens_words(info: dict[str, Any]) -> str:
    """Where the tuned lens came from and what training it took."""
    texts = info.get("texts") or {}
    langs = texts.get("langs")
    mix = (
        f"{texts.get('n_per_lang')} sentences in each of {len(langs)} languages"
        if langs
        else "the texts its meta records"
    )
    how = {
        "cache": "loaded from the model cache",
        "run folder": "read from the run folder (`trajectory/tuned_lens.*`)",
    }.get(info["source"], "trained in this stage")
    seconds = info.get("seconds")
    cost = f", {seconds / 60:.1f} min of training" if isinstance(seconds, int | float) else ""
    return (
        f"The tuned lens was {how} (`fit_tuned_lens`'s defaults: {mix}, "
        f"{info.get('n_tokens')} positions, {info.get('steps')} steps{cost})."
    )


def trajectory_section(root: Path, img: Callable[[str], str]) -> tuple[str, dict[str, go.Figure]]:
    """The latent-language section of the results page and its figures.

    Args:
        root: The study's run folder.
        img: Markdown image link of a figure name.
    """
    folder = root / "trajectory"
    record = folder / "trajectory.json"
    paths = {name: folder / file for name, file in LENS_FILES.items()}
    if not record.is_file() or not all(p.is_file() for p in paths.values()):
        return (
            f"{SECTION}\n\nThe `trajectory` stage has not run in this run folder yet.\n",
            {},
        )
    saved = json.loads(record.read_text(encoding="utf-8"))
    results = {name: TrajectoryResult.load(path) for name, path in paths.items()}
    figs = {
        f"results_trajectory_{name}": plot_language_trajectory(res, mode="side_by_side")
        for name, res in results.items()
    }
    first = results["logit"]
    source, target = get_language(first.source).name, get_language(first.target).name
    tables = "\n\n".join(
        f"{name.capitalize()} lens (means over prompts; entropy in nats):\n\n"
        f"{markdown_table(trajectory_table(res), digits=3)}"
        for name, res in results.items()
    )
    findings = "\n".join(f"- {lens_findings(res)}" for res in results.values())
    text = f"""{SECTION}

Wendler et al. (2024) read every layer's residual stream at the last position of few-shot
word-translation prompts through a lens and plot the probability of the answer's first
token in the target language and in English, layer by layer. Here: {first.n_prompts}
{source} → {target} prompts ({first.meta.get("shots")} solved examples each; the first
{len(saved["settings"]["concepts"])} concepts of `load_concepts()`, {first.n_excluded}
left out because their {target} and English answers share a first token), through the
logit lens and the tuned lens, unsteered (`base`) and steered with
{_vector_words(saved["settings"]["vector"])}. {_lens_words(saved["tuned_lens"])} Bands:
95% bootstrap intervals over prompts. The lens is a readout, not the model's computation
(see `docs/latent_language.md`): a curve says what the final norm and unembedding make of
a layer's residual stream, not which language the model "thinks" in.

{findings}

{img("results_trajectory_logit")}

{img("results_trajectory_tuned")}

{tables}
"""
    return text, figs
