"""Wendler's latent-language figure (re-exported by ``plotting``).

Example:
    >>> from interp_steer import load_model
    >>> from interp_steer.analysis import language_trajectory
    >>> from interp_steer.data import load_concepts, translation_prompts
    >>> model = load_model("tiny")
    >>> few = load_concepts(["de", "zh"]).subset(["dog", "cat", "bread", "water"])
    >>> prompts = translation_prompts(model.tokenizer, few, "de", "zh", shots=2)
    >>> res = language_trajectory(model, prompts)
    >>> [t.name for t in plot_language_trajectory(res).data if t.showlegend]
    ['English', 'Chinese', 'entropy']
"""

from typing import Literal

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from interp_steer.analysis.trajectory import QUANTITIES, TrajectoryResult
from interp_steer.data.languages import ENGLISH, get_language
from interp_steer.plotting.style import language_colors, legend_below, rgba, style_figure

Mode = Literal["overlay", "side_by_side"]
"""How a steered run is drawn: dashed over the base run, or in a second column."""

ENTROPY_COLOR = "#555555"
"""The entropy strip's colour (a neutral grey: it is no language)."""


def plot_language_trajectory(result: TrajectoryResult, *, mode: Mode = "overlay") -> go.Figure:
    """Wendler et al.'s figure: English vs target-language answer probability by layer.

    Top row: the mean lens probability of the English answer and of the target-language
    answer at each layer, with shaded 95% bootstrap bands over prompts; bottom row (same
    x axis): the entropy of the lens distribution (nats). A steered run is drawn dashed
    over the base run (``"overlay"``) or in a second column (``"side_by_side"``), with a
    dotted line at the steered layer.

    Args:
        result: A :class:`~interp_steer.analysis.TrajectoryResult`.
        mode: ``"overlay"`` or ``"side_by_side"`` (same as overlay for a base-only result).

    Returns:
        The figure: per run, one band and one line for English, the target language and
        the entropy; its title names the model, the language pair, the prompts (and how
        many were excluded), the lens and the steering.

    Raises:
        ValueError: An unknown ``mode``.

    >>> from interp_steer import load_model
    >>> from interp_steer.analysis import language_trajectory
    >>> from interp_steer.data import load_concepts, translation_prompts
    >>> from interp_steer.steering import SteeringVector
    >>> import torch
    >>> model = load_model("tiny")
    >>> few = load_concepts(["fr", "ja"]).subset(["dog", "cat", "bread", "water"])
    >>> v = SteeringVector(torch.ones(64), layer=2, method="mean_diff", source_lang="ja")
    >>> prompts = translation_prompts(model.tokenizer, few, "fr", "ja", shots=2)
    >>> res = language_trajectory(model, prompts, vector=v, alpha=2.0)
    >>> fig = plot_language_trajectory(res, mode="side_by_side")
    >>> [a.text for a in fig.layout.annotations][:2]
    ['base', 'steered']
    """
    if mode not in ("overlay", "side_by_side"):
        raise ValueError(f"mode must be 'overlay' or 'side_by_side', got {mode!r}")
    side = mode == "side_by_side" and len(result.runs) > 1
    cols = len(result.runs) if side else 1
    fig = make_subplots(
        rows=2,
        cols=cols,
        shared_xaxes=True,
        shared_yaxes=True,
        row_heights=[0.7, 0.3],
        vertical_spacing=0.08,
        horizontal_spacing=0.05,
        subplot_titles=list(result.runs) + [""] * cols if side else None,
    )
    mean, low, high = result.interval
    colors = language_colors([ENGLISH, result.target])
    names = {
        "english": get_language(ENGLISH).name,
        "target": get_language(result.target).name,
        "entropy": "entropy",
    }
    color_of = {"english": colors[ENGLISH], "target": colors[result.target],
                "entropy": ENTROPY_COLOR}  # fmt: skip
    layers = list(result.layers)
    steered_layer = (result.meta.get("vector") or {}).get("layer")
    for r, run in enumerate(result.runs):
        col = r + 1 if side else 1
        dashed = run == "steered" and not side
        suffix = " · steered" if dashed else ""
        for quantity in ("english", "target", "entropy"):
            q = QUANTITIES.index(quantity)
            row = 2 if quantity == "entropy" else 1
            color = color_of[quantity]
            name = names[quantity] + suffix
            group = f"{quantity}{suffix}"
            fig.add_trace(
                go.Scatter(
                    x=layers + layers[::-1],
                    y=np.concatenate([high[r, q], low[r, q][::-1]]),
                    fill="toself",
                    fillcolor=rgba(color, 0.12 if dashed else 0.2),
                    line={"width": 0},
                    mode="lines",
                    name=f"{name} 95% interval",
                    legendgroup=group,
                    showlegend=False,
                    hoverinfo="skip",
                ),
                row=row,
                col=col,
            )
            fig.add_trace(
                go.Scatter(
                    x=layers,
                    y=mean[r, q],
                    customdata=np.stack([low[r, q], high[r, q]], -1),
                    mode="lines+markers",
                    name=name,
                    legendgroup=group,
                    showlegend=col == 1,
                    line={"color": color, "width": 2, "dash": "dash" if dashed else "solid"},
                    marker={"size": 5, "color": color},
                    hovertemplate=(
                        f"{name}<br>layer %{{x}}: %{{y:.3f}} "
                        "[%{customdata[0]:.3f}, %{customdata[1]:.3f}]<extra></extra>"
                    ),
                ),
                row=row,
                col=col,
            )
        if run == "steered" and steered_layer is not None:
            for row in (1, 2):
                fig.add_vline(x=steered_layer, line={"color": "#999999", "dash": "dot",
                              "width": 1}, row=row, col=col)  # fmt: skip
    dtick = 1 if len(layers) <= 12 else 2 if len(layers) <= 24 else 4
    for col in range(1, cols + 1):
        fig.update_xaxes(dtick=dtick, row=1, col=col)
        fig.update_xaxes(title_text="layer", dtick=dtick, row=2, col=col)
    fig.update_yaxes(range=[0, 1], row=1)
    fig.update_yaxes(title_text="probability", row=1, col=1)
    top = float(np.nanmax(high[:, QUANTITIES.index("entropy")], initial=0.0))
    # an explicit range: with shared y axes and the steered layer's line, Plotly's
    # autorange cut the side-by-side strip at 4 nats while gemma's layers reach 6
    fig.update_yaxes(range=[0, 1.05 * top if top > 0 else 1], row=2)
    fig.update_yaxes(title_text="entropy (nats)", row=2, col=1)
    title = _title(result)
    lines = title.count("<br>")
    fig = style_figure(
        fig,
        title,
        margin={"l": 70, "r": 30, "t": 70 + 22 * lines + (20 if side else 0), "b": 60},
        height=520 + 22 * lines,
        width=max(640, 460 * cols),
    )
    return legend_below(fig)


def _title(result: TrajectoryResult) -> str:
    """The title and its ``<sup>`` subtitle lines."""
    source, target = get_language(result.source).name, get_language(result.target).name
    n, excluded = result.n_prompts, result.n_excluded
    task = result.meta.get("task", "translation")
    prompts = f"{n} {task} prompt{'s' if n != 1 else ''}"
    if excluded:
        prompts += f" ({excluded} excluded: their target and English answers share a token)"
    lens = f"{result.lens} lens at the last position"
    pair = target if result.source == result.target else f"{source}→{target}"  # cloze: one
    title = (
        f"Latent language · {result.model} · {pair}"
        f"<br><sup>{prompts} · {lens} · bands: 95% bootstrap over prompts</sup>"
    )
    steering = result.steering_label()
    return title if steering is None else f"{title}<br><sup>steered: {steering}</sup>"


__all__ = [
    "ENTROPY_COLOR",
    "Mode",
    "plot_language_trajectory",
]
