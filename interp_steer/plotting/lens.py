"""Figures of the logit lens (re-exported by ``plotting``).

The similarity figures live in :mod:`~interp_steer.plotting.similarity` (re-exported here
for older imports).

Example:
    >>> from interp_steer import load_model
    >>> from interp_steer.analysis import logit_lens
    >>> res = logit_lens(load_model("tiny"), ["Hallo Welt"], lang="de", k=3)
    >>> fig = plot_language_shares(res)
    >>> [t.name for t in fig.data]
    ['English', 'German', 'other', 'undetermined']
"""

from collections.abc import Sequence
from typing import Literal

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from interp_steer.analysis.lens import LogitLensResult
from interp_steer.analysis.token_languages import BUCKETS
from interp_steer.plotting.style import BUCKET_COLORS, discrete_colorscale, show_token, style_figure

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
        results: One :class:`~interp_steer.analysis.LogitLensResult` or several.
        weighting: ``"uniform"`` (each top-k token counts once) or ``"prob"``.
        titles: Panel titles; default ``"<model> · <variant>"``.

    Returns:
        The figure: one trace per bucket and panel (areas stack to 1). When a panel is
        steered, the subtitle names the vector, its layer and its strength.

    >>> from interp_steer import load_model
    >>> from interp_steer.analysis import logit_lens
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
    steering = _steering_lines(items)
    return style_figure(
        fig,
        f"Logit lens: language of the top-{items[0].k} tokens by layer ({prompts}){steering}",
        margin={"l": 70, "r": 30, "t": 90 + 20 * steering.count("<br>"), "b": 60},
        legend={"orientation": "h", "y": -0.2, "x": 0.5, "xanchor": "center"},
        height=420 + 20 * steering.count("<br>"),
        width=max(560, 380 * len(panels)),
    )


def _steering_lines(results: Sequence[LogitLensResult]) -> str:
    """``<br><sup>steered: ...</sup>`` per distinct steering among ``results`` (or ``""``)."""
    labels = dict.fromkeys(
        (r.model, label) for r in results if (label := r.steering_label()) is not None
    )
    one_model = len({r.model for r in results}) == 1
    return "".join(
        f"<br><sup>steered{'' if one_model else f' ({model})'}: {label}</sup>"
        for model, label in labels
    )


def plot_token_table(
    result: LogitLensResult, *, variant: str = "base", prompt: int = 0
) -> go.Figure:
    """The top-1 token of every layer (rows) and position (columns), coloured by language.

    For a result read out at ``"all"`` positions the columns are the tokens of prompt
    ``prompt``; for ``"last"`` they are the prompts, each labelled with its last words
    (the read-out token ends the label). A cell's colour is the language bucket of its
    top-1 token, decided once per token. Hover a cell for its top-k tokens,
    probabilities and languages. The ``"steered"`` table's subtitle names the vector,
    its layer and its strength.

    Returns:
        A heatmap figure whose cell texts are the tokens (whitespace made visible).

    >>> from interp_steer import load_model
    >>> from interp_steer.analysis import logit_lens
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
        xlabels = [
            f"#{result.item_prompt[i]}: {_last_words(result.prompts[result.item_prompt[i]])}"
            for i in cols
        ]
        xtitle = "prompt (read at its last token)"
        subtitle = (
            f"{len(result.prompts)} prompts at their last token; hover for the top {result.k}"
        )
    steering = result.steering_label() if variant == "steered" else None
    if steering is not None:
        subtitle += f"<br>steered: {steering}"
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
    return style_figure(
        fig,
        f"Logit lens top-1 tokens · {result.model} · {variant}<br><sup>{subtitle}</sup>",
        margin={"l": 70, "r": 30, "t": 130 + 20 * subtitle.count("<br>"), "b": 60},
        legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 1, "xanchor": "right"},
        height=max(380, 28 * len(result.layers) + 220),
        width=max(520, 70 * len(cols) + 160),
    )


def _last_words(text: str, n: int = 3, limit: int = 24) -> str:
    """The last ``n`` words of ``text`` (at most ``limit`` characters), ``…`` before them.

    >>> _last_words("Der Hund schläft auf dem"), _last_words("Hallo")
    ('…schläft auf dem', 'Hallo')
    """
    words = text.split()
    tail = " ".join(words[-n:])
    if len(tail) > limit:
        tail = tail[-limit:]
    return tail if tail == " ".join(words) else "…" + tail


def _shorten(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _dtick(n: int) -> int:
    return 1 if n <= 12 else 2 if n <= 24 else 4


__all__ = [
    "plot_language_shares",
    "plot_token_table",
]
