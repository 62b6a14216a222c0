"""Figures of the logit lens and of cross-lingual similarity (re-exported by ``plotting``).

Example:
    >>> from interp_steer import load_model
    >>> from interp_steer.logit_lens import logit_lens
    >>> res = logit_lens(load_model("tiny"), ["Hallo Welt"], lang="de", k=3)
    >>> fig = plot_language_shares(res)
    >>> [t.name for t in fig.data]
    ['English', 'German', 'other', 'undetermined']
"""

from collections.abc import Sequence
from typing import Literal

import numpy as np
import plotly.graph_objects as go
import torch  # noqa: F401  (used by the doctests)
from plotly.subplots import make_subplots

from interp_steer.logit_lens import BUCKETS, LogitLensResult
from interp_steer.plotting_style import (
    BUCKET_COLORS,
    FONT,
    SEQUENTIAL,
    TEMPLATE,
    discrete_colorscale,
    family_order,
    family_spans,
    language_label,
    show_token,
)
from interp_steer.similarity import THRESHOLD, SimilarityResult

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


def _layout(fig: go.Figure, title: str, **kwargs: object) -> go.Figure:
    settings: dict[str, object] = {"margin": {"l": 70, "r": 30, "t": 90, "b": 60}, **kwargs}
    fig.update_layout(
        template=TEMPLATE,
        font=FONT,
        title={"text": title, "x": 0.01, "xanchor": "left"},
        **settings,
    )
    return fig


# ----------------------------------------------------------------- logit lens


def plot_language_shares(
    results: LogitLensResult | Sequence[LogitLensResult],
    *,
    weighting: Literal["uniform", "prob"] = "uniform",
    titles: Sequence[str] | None = None,
) -> go.Figure:
    """Stacked areas of each layer's top-k language shares; base and steered side by side.

    One panel per (result, variant): pass one result to compare base with steered, or
    several (e.g. two models) to put them next to each other.

    Args:
        results: One :class:`~interp_steer.logit_lens.LogitLensResult` or several.
        weighting: ``"uniform"`` (each top-k token counts once) or ``"prob"``.
        titles: Panel titles; default ``"<model> · <variant>"``.

    Returns:
        The figure: one trace per bucket and panel (areas stack to 1).

    >>> from interp_steer import load_model
    >>> from interp_steer.logit_lens import logit_lens
    >>> res = logit_lens(load_model("tiny"), ["Guten Tag"], lang="de", k=2)
    >>> len(plot_language_shares([res, res], titles=["model A", "model B"]).data)
    8
    """
    items = [results] if isinstance(results, LogitLensResult) else list(results)
    if not items:
        raise ValueError("give at least one LogitLensResult")
    panels = [(r, v) for r in items for v in r.variants]
    names = list(titles) if titles is not None else [f"{r.model} · {v}" for r, v in panels]
    if len(names) != len(panels):
        raise ValueError(f"titles has {len(names)} entries for {len(panels)} panels")
    fig = make_subplots(rows=1, cols=len(panels), shared_yaxes=True, subplot_titles=names,
                        horizontal_spacing=0.04)  # fmt: skip
    same_lang = len({r.lang for r in items}) == 1
    for col, (res, variant) in enumerate(panels, start=1):
        shares = res.shares(weighting)[res.variants.index(variant)]
        for b, bucket in enumerate(BUCKETS):
            label = res.bucket_names[b] if same_lang else (
                "prompt language" if bucket == "prompt" else res.bucket_names[b]
            )  # fmt: skip
            fig.add_trace(
                go.Scatter(
                    x=list(res.layers),
                    y=shares[:, b],
                    name=label,
                    legendgroup=bucket,
                    showlegend=col == 1,
                    stackgroup=f"p{col}",
                    mode="lines",
                    line={"width": 0.5, "color": BUCKET_COLORS[bucket]},
                    fillcolor=BUCKET_COLORS[bucket],
                    hovertemplate=f"{label}<br>layer %{{x}}: %{{y:.0%}}<extra></extra>",
                ),
                row=1,
                col=col,
            )
        fig.update_xaxes(title_text="layer", row=1, col=col, dtick=_dtick(len(res.layers)))
    fig.update_yaxes(range=[0, 1], tickformat=".0%")
    fig.update_yaxes(title_text=f"share of top-{items[0].k} tokens", row=1, col=1)
    n_prompts = len(items[0].prompts)
    where = "every position" if items[0].readout == "all" else "the last position"
    prompts = f"{n_prompts} prompt{'s' if n_prompts > 1 else ''}, {where}"
    return _layout(
        fig,
        f"Logit lens: language of the top-{items[0].k} tokens by layer ({prompts})",
        legend={"orientation": "h", "y": -0.2, "x": 0.5, "xanchor": "center"},
        height=420,
        width=max(560, 380 * len(panels)),
    )


def plot_token_table(
    result: LogitLensResult, *, variant: str = "base", prompt: int = 0
) -> go.Figure:
    """The top-1 token of every layer (rows) and position (columns), coloured by language.

    For a result read out at ``"all"`` positions the columns are the tokens of prompt
    ``prompt``; for ``"last"`` they are the prompts (each at its last token). Hover a
    cell for its top-k tokens, probabilities and languages.

    Returns:
        A heatmap figure whose cell texts are the tokens (whitespace made visible).

    >>> from interp_steer import load_model
    >>> from interp_steer.logit_lens import logit_lens
    >>> res = logit_lens(load_model("tiny"), ["Guten Tag"], lang="de", positions="all")
    >>> plot_token_table(res).data[0].z.shape  # layers × input tokens (BOS included)
    (4, 10)
    """
    vi = result.variants.index(variant) if variant in result.variants else None
    if vi is None:
        raise ValueError(f"no variant {variant!r}; this result has {result.variants}")
    if result.readout == "all":
        if not 0 <= prompt < len(result.prompts):
            raise ValueError(f"prompt must be in 0..{len(result.prompts) - 1}, got {prompt}")
        cols = np.flatnonzero(result.item_prompt == prompt)
        xlabels = [f"{result.item_position[i]}: {show_token(result.item_token[i])}" for i in cols]
        xtitle = f"input token (prompt {prompt})"
        subtitle = (
            f"prompt {prompt}: “{_shorten(result.prompts[prompt])}”; hover for the top {result.k}"
        )
    else:
        cols = np.arange(len(result.item_prompt))
        xlabels = [f"#{result.item_prompt[i]}: …{show_token(result.item_token[i])}" for i in cols]
        xtitle = "prompt (last token)"
        subtitle = (
            f"{len(result.prompts)} prompts at their last token; hover for the top {result.k}"
        )
    buckets = result.buckets()[vi][:, cols]  # [layers, items, k]
    tokens = result.tokens[vi][:, cols]
    probs, langs = result.probs[vi][:, cols], result.langs[vi][:, cols]
    text = np.vectorize(show_token, otypes=[object])(tokens[..., 0])
    hover = np.empty(text.shape, dtype=object)
    for (li, ci), _ in np.ndenumerate(text):
        rows = [
            f"{show_token(t)} · {p:.1%} · {c}"
            for t, p, c in zip(tokens[li, ci], probs[li, ci], langs[li, ci], strict=True)
        ]
        hover[li, ci] = f"layer {result.layers[li]}, {xlabels[ci]}<br>" + "<br>".join(rows)
    colors = [BUCKET_COLORS[b] for b in BUCKETS]
    x = list(range(len(cols)))
    fig = go.Figure(
        go.Heatmap(
            z=buckets[..., 0],
            x=x,
            y=list(result.layers),
            text=text,
            texttemplate="%{text}",
            textfont={"size": 11},
            customdata=hover,
            hovertemplate="%{customdata}<extra></extra>",
            colorscale=discrete_colorscale(colors),
            zmin=-0.5,
            zmax=len(BUCKETS) - 0.5,
            showscale=False,
            xgap=1,
            ygap=1,
        )
    )
    for b, bucket in enumerate(BUCKETS):  # a legend for the categorical colours
        fig.add_trace(
            go.Scatter(x=[None], y=[None], mode="markers", name=result.bucket_names[b],
                       marker={"size": 12, "symbol": "square", "color": BUCKET_COLORS[bucket]})
        )  # fmt: skip
    fig.update_xaxes(title_text=xtitle, tickvals=x, ticktext=xlabels, tickangle=-45)
    fig.update_yaxes(title_text="layer", dtick=1)
    return _layout(
        fig,
        f"Logit lens top-1 tokens · {result.model} · {variant}<br><sup>{subtitle}</sup>",
        margin={"l": 70, "r": 30, "t": 130, "b": 60},
        legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 1, "xanchor": "right"},
        height=max(380, 28 * len(result.layers) + 220),
        width=max(520, 70 * len(cols) + 160),
    )


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def _shorten(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _dtick(n: int) -> int:
    return 1 if n <= 12 else 2 if n <= 24 else 4


# ----------------------------------------------------------------- similarity


def plot_similarity(
    result: SimilarityResult,
    metric: str = "centred_cosine",
    *,
    threshold: float | None = THRESHOLD,
    annotate: bool = True,
) -> go.Figure:
    """Heatmap of each language's similarity to English (rows) by layer (columns).

    Rows are grouped by language family. A black line runs along the cell edges between
    values at or above ``threshold`` (the paper's 0.5) and values below it; cell texts
    give the values.

    Args:
        result: A :class:`~interp_steer.similarity.SimilarityResult`.
        metric: One of :data:`~interp_steer.similarity.METRICS`.
        threshold: Where to draw the boundary; ``None`` for none.
        annotate: Write each cell's value in it.

    >>> from interp_steer.similarity import similarity_from_activations
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
            colorbar={"title": {"text": SHORT_LABELS[metric]}},
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
    return _layout(
        fig,
        f"Similarity to English: {METRIC_LABELS[metric]}<br><sup>{result.model} · "
        f"{result.dataset}, n={result.n} sentences, {result.pooling} pooling</sup>",
        legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 1, "xanchor": "right"},
        height=max(380, 30 * len(order) + 220),
        width=max(560, 42 * len(result.layers) + 320),
        margin={"l": 70, "r": 30, "t": 120, "b": 60},
    )


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

    Thin lines separate the families; rows compare with columns (for ``"retrieval"``:
    the row language's sentences finding their partner among the column language's).

    >>> from interp_steer.similarity import similarity_from_activations
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
            colorbar={"title": {"text": SHORT_LABELS[metric]}},
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
    return _layout(
        fig,
        f"{_upper_first(METRIC_LABELS[metric])} between languages at layer {layer}"
        f"<br><sup>{result.model} · {result.dataset}, n={result.n}; grouped by family</sup>",
        height=side,
        width=side + 80,
    )


__all__ = [
    "METRIC_LABELS",
    "SHORT_LABELS",
    "plot_language_shares",
    "plot_similarity",
    "plot_similarity_matrix",
    "plot_token_table",
    "threshold_boundary",
]
