"""Figures of cross-lingual similarity (re-exported by ``plotting`` and ``plotting_lens``).

Example:
    >>> from interp_steer.analysis import similarity_from_activations
    >>> x = torch.randn(12, 4, generator=torch.Generator().manual_seed(0))
    >>> res = similarity_from_activations({"en": {0: x}, "de": {0: x + 0.1}})
    >>> plot_similarity(res).data[0].name
    'centred cosine'
"""

import numpy as np
import plotly.graph_objects as go
import torch  # noqa: F401  (used by the doctests)

from interp_steer.analysis.similarity import THRESHOLD, SimilarityResult
from interp_steer.data.languages import family_order, family_spans
from interp_steer.plotting.style import (
    SEQUENTIAL,
    add_family_labels,
    language_label,
    style_figure,
)

SHORT_LABELS = {
    "centred_cosine": "centred cosine",
    "shuffled_centred_cosine": "centred cosine<br>(shuffled)",
    "cka": "CKA",
    "retrieval": "retrieval",
    "raw_cosine": "raw cosine",
}

METRIC_LABELS = {
    "centred_cosine": "centred cosine (matched pairs)",
    "shuffled_centred_cosine": "centred cosine (shuffled pairs)",
    "cka": "linear CKA",
    "retrieval": "retrieval accuracy of the true partner",
    "raw_cosine": "raw cosine (shared component included)",
}


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def chance_level(result: SimilarityResult, metric: str) -> float | None:
    """The score of guessing, where ``metric`` has one: ``1/n`` for ``"retrieval"``.

    Retrieval picks each sentence's partner among the ``n`` sentences of the other
    language, so a random pick is right once in ``n``; the other metrics have no chance
    level (``None``).

    >>> from interp_steer.analysis import similarity_from_activations
    >>> x = torch.randn(64, 4)
    >>> res = similarity_from_activations({"en": {0: x}, "de": {0: -x}})
    >>> chance_level(res, "retrieval"), chance_level(res, "cka")
    (0.015625, None)
    """
    return 1.0 / result.n if metric == "retrieval" else None


def _colorbar_title(result: SimilarityResult, metric: str) -> str:
    chance = chance_level(result, metric)
    suffix = "" if chance is None else f"<br>chance {chance:.3f}"
    return SHORT_LABELS[metric] + suffix


def _chance_note(result: SimilarityResult, metric: str) -> str:
    chance = chance_level(result, metric)
    return "" if chance is None else f"; chance = 1/{result.n} = {chance:.3f}"


def plot_similarity(
    result: SimilarityResult,
    metric: str = "centred_cosine",
    *,
    threshold: float | None = THRESHOLD,
    annotate: bool = True,
) -> go.Figure:
    """Heatmap of each language's similarity to English (rows) by layer (columns).

    Rows are grouped by language family, each family named right of its rows. A black
    line runs along the cell edges between values at or above ``threshold`` (the paper's
    0.5) and values below it; cell texts give the values. For ``"retrieval"`` the
    subtitle and the colour bar give the chance level, ``1/n`` (:func:`chance_level`).

    Args:
        result: A :class:`~interp_steer.analysis.SimilarityResult`.
        metric: One of :data:`~interp_steer.analysis.similarity_metrics.METRICS`.
        threshold: Where to draw the boundary; ``None`` for none.
        annotate: Write each cell's value in it.

    >>> from interp_steer.analysis import similarity_from_activations
    >>> x = torch.randn(10, 4)
    >>> res = similarity_from_activations({"en": {0: x, 1: x}, "de": {0: x + 1, 1: -x}})
    >>> plot_similarity(res, "cka").data[0].z.shape  # languages (without English) × layers
    (1, 2)
    """
    langs, values = result.vs_english(metric)
    order = family_order(langs)
    z = values[[langs.index(c) for c in order]]
    y, x = list(range(len(order))), list(range(len(result.layers)))
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=x,
            y=y,
            colorscale=SEQUENTIAL,
            zmin=0.0,
            zmax=1.0,
            text=np.where(np.isnan(z), "", np.vectorize(lambda v: f"{v:.2f}")(z)),
            texttemplate="%{text}" if annotate else None,
            textfont={"size": 10},
            colorbar={"title": {"text": _colorbar_title(result, metric)}},
            hovertemplate="%{customdata}: %{z:.3f}<extra></extra>",
            customdata=np.array(
                [[f"{language_label(c)}, layer {la}" for la in result.layers] for c in order]
            ),
            name=SHORT_LABELS[metric],
            xgap=1,
            ygap=1,
        )
    )
    if threshold is not None:
        xs, ys = threshold_boundary(z, threshold)
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                line={"color": "black", "width": 2.5},
                name=f"{threshold:g} threshold (cells ≥ {threshold:g} inside)",
                showlegend=True,
                hoverinfo="skip",
            )
        )
    fig.update_xaxes(title_text="layer", tickvals=x, ticktext=[str(la) for la in result.layers],
                     range=[-0.5, len(x) - 0.5])  # fmt: skip
    fig.update_yaxes(title_text="language", tickvals=y, ticktext=[language_label(c) for c in order],
                     autorange="reversed")  # fmt: skip
    style_figure(
        fig,
        f"Similarity to English: {METRIC_LABELS[metric]}<br><sup>{result.model} · "
        f"{result.dataset}, n={result.n} sentences, {result.pooling} pooling"
        f"{_chance_note(result, metric)}</sup>",
        legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 1, "xanchor": "right"},
        height=max(380, 30 * len(order) + 220),
        width=max(560, 42 * len(result.layers) + 320),
        margin={"l": 70, "r": 30, "t": 120, "b": 60},
    )
    return add_family_labels(fig, order, "y")


def threshold_boundary(z: np.ndarray, threshold: float) -> tuple[list[float | None], ...]:
    """Cell edges between values ``>= threshold`` and the rest, as one broken line.

    Returns ``(xs, ys)`` in cell-index coordinates (cell ``[r, c]`` centred on ``(c, r)``),
    segments separated by ``None``: a crisp, exact "contour" for a coarse grid.

    >>> threshold_boundary(np.array([[0.2, 0.7]]), 0.5)
    ([0.5, 0.5, None], [-0.5, 0.5, None])
    """
    above = np.nan_to_num(np.asarray(z, dtype=float), nan=-np.inf) >= threshold
    xs: list[float | None] = []
    ys: list[float | None] = []
    rows, cols = above.shape
    for r in range(rows):
        for c in range(cols):
            if c + 1 < cols and above[r, c] != above[r, c + 1]:  # vertical edge
                xs += [c + 0.5, c + 0.5, None]
                ys += [r - 0.5, r + 0.5, None]
            if r + 1 < rows and above[r, c] != above[r + 1, c]:  # horizontal edge
                xs += [c - 0.5, c + 0.5, None]
                ys += [r + 0.5, r + 0.5, None]
    return xs, ys


def plot_similarity_matrix(
    result: SimilarityResult, layer: int, metric: str = "cka", *, annotate: bool = True
) -> go.Figure:
    """Language × language heatmap of ``metric`` at one ``layer``, grouped by family.

    Thin lines separate the families, named above the columns and right of the rows;
    rows compare with columns (for ``"retrieval"``: the row language's sentences finding
    their partner among the column language's, chance level ``1/n`` in the subtitle and
    on the colour bar).

    >>> from interp_steer.analysis import similarity_from_activations
    >>> x = torch.randn(10, 4)
    >>> res = similarity_from_activations({"en": {0: x}, "sw": {0: x + 1}, "de": {0: -x}})
    >>> list(plot_similarity_matrix(res, layer=0).data[0].x)  # ordered by family
    ['English (en)', 'German (de)', 'Swahili (sw)']
    """
    m = result.matrix(metric, layer)
    order = family_order(result.langs)
    idx = [result.langs.index(c) for c in order]
    z = m[np.ix_(idx, idx)]
    labels = [language_label(c) for c in order]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=labels,
            y=labels,
            colorscale=SEQUENTIAL,
            zmin=0.0,
            zmax=1.0,
            text=np.where(np.isnan(z), "", np.vectorize(lambda v: f"{v:.2f}")(z)),
            texttemplate="%{text}" if annotate else None,
            textfont={"size": 9},
            colorbar={"title": {"text": _colorbar_title(result, metric)}},
            hovertemplate="%{y} vs %{x}: %{z:.3f}<extra></extra>",
            xgap=1,
            ygap=1,
        )
    )
    spans = family_spans(order)
    if len(spans) == len(order):  # every language its own family: no lines
        spans = spans[:1]
    for _family, first, _last in spans[1:]:  # separators between families
        edge = first - 0.5
        fig.add_shape(type="line", x0=edge, x1=edge, y0=-0.5, y1=len(order) - 0.5,
                      line={"color": "#333333", "width": 1.2})  # fmt: skip
        fig.add_shape(type="line", y0=edge, y1=edge, x0=-0.5, x1=len(order) - 0.5,
                      line={"color": "#333333", "width": 1.2})  # fmt: skip
    fig.update_xaxes(title_text="language", tickangle=-45)
    fig.update_yaxes(title_text="language", autorange="reversed")
    side = max(480, 34 * len(order) + 260)
    style_figure(
        fig,
        f"{_upper_first(METRIC_LABELS[metric])} between languages at layer {layer}"
        f"<br><sup>{result.model} · {result.dataset}, n={result.n}; grouped by family"
        f"{_chance_note(result, metric)}</sup>",
        height=side,
        width=side + 80,
    )
    return add_family_labels(add_family_labels(fig, order, "x"), order, "y")


__all__ = [
    "METRIC_LABELS",
    "SHORT_LABELS",
    "chance_level",
    "plot_similarity",
    "plot_similarity_matrix",
    "threshold_boundary",
]
