"""The control-model part of ``docs/results.md``: an English-centric model beside the default.

Reads ``control/`` of the study's run folder (written by the study's ``control`` stage) and
returns the page section and its figure. Every number is computed from the run folder.
"""

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from interp_steer.analysis import SimilarityResult
from interp_steer.plotting import plot_similarity
from repro.tables import markdown_table, runs_frame, similarity_levels

__all__ = ["control_section"]


def control_section(
    root: Path,
    img: Callable[[str], str],
    *,
    model: str,
    control: str,
    levels: pd.DataFrame,
    runs: pd.DataFrame,
) -> tuple[str, dict[str, go.Figure]]:
    """Markdown and figures comparing ``control`` with the default ``model``.

    Args:
        root: The study's run folder.
        img: Markdown image link of a figure name.
        model: The default model's name.
        control: The control model's name.
        levels: The default model's :func:`~repro.tables.similarity_levels`.
        runs: The default model's XCOPA runs (:func:`~repro.tables.runs_frame`).

    Returns:
        ``("", {})`` when the control stage was not run.
    """
    folder = root / "control"
    if not (folder / "similarity.json").is_file() or not (folder / "eval").is_dir():
        return "", {}
    name, control = control, f"{control} (control)"  # a distinct label, even for one model
    sim = SimilarityResult.load(folder / "similarity.json")
    mine = similarity_levels(sim)
    col = "centred cosine (middle layers)"
    both = levels[["level", col]].merge(mine[["level", col]], on="level", suffixes=("", "_c"))
    both.columns = ["level", model, control]
    ctrl = runs_frame(folder / "eval")
    xcopa = pd.concat(
        [
            runs[runs["row"].isin(("basic", "translate_test"))].assign(model=model),
            ctrl.assign(model=control),
        ]
    ).pivot_table(index="lang", columns=["model", "row"], values="accuracy")
    xcopa.columns = [f"{m} {r}" for m, r in xcopa.columns]
    xcopa = xcopa.reset_index()
    head = {
        name: (
            xcopa[f"{name} translate_test"].mean() - xcopa[f"{name} basic"].mean(),
            xcopa[f"{name} basic"].mean(),
        )
        for name in (model, control)
    }
    order = list(both.set_index("level")[control].sort_values(ascending=False).index)
    text = f"""## Control: {name}

The same similarity analysis and XCOPA baselines on {name}, the English-centric control
(its pre-training data are mostly English). XCOPA native prompts:
{head[model][1]:.1f}% for {model}, {head[control][1]:.1f}% for {control} (chance 50%);
translate-test headroom {head[model][0]:+.1f} and {head[control][0]:+.1f} points.
Centred cosine to English in the middle layers, by resource level
({control}: {" > ".join(order)}):

{markdown_table(both, digits=3)}

{markdown_table(xcopa)}

{img("results_control_similarity")}
"""
    return text, {"results_control_similarity": plot_similarity(sim)}
