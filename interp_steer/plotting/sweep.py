"""Figures of layer sweeps and transfer matrices (re-exported by ``plotting``).

Example:
    >>> import numpy as np
    >>> from interp_steer.analysis import SweepResult
    >>> grid = np.full((1, 2, 1), 0.6)
    >>> res = SweepResult("m", "acc", "mean_diff", ("de",), (1, 2), (0.1,), True, grid,
    ...                   grid, grid - 0.1, grid + 0.1, np.array([[0.5, 0.4, 0.6]]),
    ...                   np.full((1, 3), np.nan), np.full((1, 3), np.nan), "val split")
    >>> from interp_steer.plotting.style import legend_entries
    >>> legend_entries(plot_sweep(res))  # one entry per language; dashed = unsteered
    ['German (de)']
"""

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from interp_steer.analysis.sweep import SweepResult
from interp_steer.analysis.transfer import TransferResult
from interp_steer.data.languages import family_order, family_spans
from interp_steer.plotting.style import (
    DIVERGING,
    add_family_labels,
    language_colors,
    language_label,
    legend_below,
    rgba,
    style_figure,
)


def _boundaries(ordered: list[str]) -> list[tuple[str, int, int]]:
    """Family runs after the first, or none when every language is its own family."""
    spans = family_spans(ordered)
    return spans[1:] if len(spans) < len(ordered) else []


def _strength_label(result: SweepResult | TransferResult, value: float) -> str:
    return f"‖αv‖/‖h‖={value:g}" if result.relative else f"α={value:g}"


# ----------------------------------------------------------------- sweep


def _test_line(result: SweepResult, lang: str) -> str:
    """One subtitle line: ``lang``'s held-out test result (or that there is none)."""
    summary = result.summary(lang)
    label = language_label(lang)
    if summary is None:
        return f"{label}: every cell failed, nothing selected"
    cell = f"layer {summary.layer}, {_strength_label(result, summary.strength)}"
    if not summary.has_test:
        return f"{label}, {cell}: no held-out test split"
    if not math.isfinite(summary.test_gain):
        return f"{label}, {cell}: the held-out test run could not be scored"
    stats = "no interval"
    if summary.has_interval:
        stats = f"95% CI {summary.test_low:+.3f} to {summary.test_high:+.3f}"
        if math.isfinite(summary.p_value):
            stats += f", p={summary.p_value:.2g}"
    items = "" if summary.n_test is None else f" on {summary.n_test} items"
    return f"{label}, {cell}: test {summary.test_gain:+.3f} ({stats}){items}"


def plot_sweep(result: SweepResult) -> go.Figure:
    """One line per language: the selection score by layer (best strength per layer).

    The held-out **test** result comes first: the subtitle gives each language's test gain
    over unsteered with its 95% interval and p-value (:meth:`SweepResult.summary`), and a
    diamond with its 95% interval marks the selected cell's test score at its layer. The
    lines are **selection** scores (on ``result.selection``), labelled as such: a shaded
    band is each point's 95% interval, the dashed line of the same colour the language's
    unsteered selection score, and a star the selected (layer, strength).
    """
    idx, vals = result.best_per_layer()
    fig = go.Figure()
    layers = list(result.layers)
    colors = language_colors(result.langs)
    for li, lang in enumerate(result.langs):
        color, label = colors[lang], language_label(lang)
        value, low, high = vals[li, :, 0], vals[li, :, 1], vals[li, :, 2]
        fig.add_trace(go.Scatter(
            x=layers + layers[::-1], y=np.concatenate([high, low[::-1]]), fill="toself",
            mode="lines", fillcolor=rgba(color, 0.15), line={"width": 0}, hoverinfo="skip",
            legendgroup=lang, showlegend=False, name=f"{label} 95% CI",
        ))  # fmt: skip
        strengths = [_strength_label(result, result.strengths[s]) for s in idx[li]]
        fig.add_trace(go.Scatter(
            x=layers, y=value, mode="lines+markers", name=label, legendgroup=lang,
            line={"color": color, "width": 2.5}, marker={"size": 6}, customdata=strengths,
            hovertemplate=f"{label}<br>layer %{{x}}, %{{customdata}}: %{{y:.3f}}<extra></extra>",
        ))  # fmt: skip
        fig.add_trace(go.Scatter(
            x=[layers[0], layers[-1]], y=[result.baseline[li, 0]] * 2, mode="lines",
            name=f"{label} · unsteered", legendgroup=lang, showlegend=False,
            line={"color": color, "dash": "dash", "width": 1.5},
            hovertemplate=f"{label} unsteered: %{{y:.3f}}<extra></extra>",
        ))  # fmt: skip
        best = result.selected(lang)
        if best is None:  # every cell failed: nothing was selected
            continue
        fig.add_trace(go.Scatter(
            x=[best["layer"]], y=[best["score"]], mode="markers", legendgroup=lang,
            showlegend=False, name=f"{label} selected",
            marker={"symbol": "star", "size": 15, "color": color,
                    "line": {"color": "black", "width": 1}},
            hovertemplate=f"{label} selected (on {result.selection}): layer %{{x}}, "
            f"{_strength_label(result, best['strength'])}: %{{y:.3f}}<extra></extra>",
        ))  # fmt: skip
        test, low, high = result.test[li]
        if not np.isfinite(test):  # no held-out test stage (or it failed)
            continue
        fig.add_trace(go.Scatter(
            x=[best["layer"]], y=[test], mode="markers", legendgroup=lang, showlegend=False,
            name=f"{label} held-out test",
            marker={"symbol": "diamond", "size": 11, "color": color,
                    "line": {"color": "black", "width": 1}},
            error_y={"type": "data", "symmetric": False, "array": [high - test],
                     "arrayminus": [test - low], "color": color},
            customdata=[_test_line(result, lang)],
            hovertemplate=f"{label} on held-out test items: %{{y:.3f}} (unsteered "
            f"{result.test_baseline[li, 0]:.3f})<br>%{{customdata}}<extra></extra>",
        ))  # fmt: skip
    fig.update_xaxes(title_text="layer", dtick=1 if len(layers) <= 18 else 2,
                     range=[layers[0] - 0.4, layers[-1] + 0.4])  # fmt: skip
    fig.update_yaxes(title_text=f"{result.metric} (selection: best strength per layer)")
    tested = any(result.has_test(lang) for lang in result.langs)
    heading = "held-out test" + (f" ({result.testing})" if result.testing else "")
    if not tested:
        heading = "no held-out test split: the lines are selection scores, not a result"
    lines = [heading, *(_test_line(result, lang) for lang in result.langs if tested)]
    key = f"lines: selection scores on {result.selection}; band: 95% interval; dashed: unsteered"
    key += "; star: selected" + ("; diamond: its held-out test score" if tested else "")
    subtitle = "".join(f"<br><sup>{line}</sup>" for line in (*lines, key))
    extra = 20 * (len(lines) - 1)
    return legend_below(
        style_figure(
            fig,
            f"Layer sweep · {result.method} · {result.model}{subtitle}",
            margin={"l": 70, "r": 30, "t": 110 + extra, "b": 60},
            height=500 + extra,
            width=820,
        )
    )


def plot_sweep_heatmap(result: SweepResult, lang: str | None = None) -> go.Figure:
    """Layer × strength heatmap of one language's selection scores (gain over unsteered).

    Cell colour is the gain over the unsteered baseline (diverging, centred on 0); cell
    text is the score. The selected cell is outlined.

    >>> from interp_steer.analysis import SweepResult
    >>> grid = np.array([[[0.5, 0.6], [0.7, 0.4]]])  # 1 language, 2 layers, 2 strengths
    >>> res = SweepResult("m", "acc", "mean_diff", ("sw",), (3, 6), (0.1, 0.5), True, grid,
    ...                   grid, grid - 0.1, grid + 0.1, np.array([[0.5, 0.4, 0.6]]),
    ...                   np.full((1, 3), np.nan), np.full((1, 3), np.nan), "val split")
    >>> plot_sweep_heatmap(res).data[0].z.shape  # strengths × layers
    (2, 2)
    """
    code = lang if lang is not None else result.langs[0]
    if code not in result.langs:
        raise ValueError(f"no language {code!r}; this sweep has {result.langs}")
    li = result.langs.index(code)
    score = result.score[li].T  # [strengths, layers]
    gain = score - result.baseline[li, 0]
    limit = float(np.nanmax(np.abs(gain))) if np.isfinite(gain).any() else 1.0
    ylabels = [_strength_label(result, s) for s in result.strengths]
    fig = go.Figure(go.Heatmap(
        z=gain, x=list(result.layers), y=list(range(len(ylabels))),
        text=np.vectorize(lambda v: "" if np.isnan(v) else f"{v:.2f}")(score),
        texttemplate="%{text}", textfont={"size": 10},
        colorscale=DIVERGING, zmid=0.0, zmin=-limit or -1, zmax=limit or 1,
        colorbar={"title": {"text": "gain over<br>unsteered"}},
        customdata=np.array([[lab] * score.shape[1] for lab in ylabels]),
        hovertemplate="layer %{x}, %{customdata}<br>score %{text}, gain %{z:+.3f}<extra></extra>",
        xgap=1, ygap=1,
    ))  # fmt: skip
    best = result.selected(code)
    if best is not None:  # None: every cell failed, nothing was selected
        y = result.strengths.index(best["strength"])
        fig.add_shape(type="rect", x0=best["layer"] - 0.5, x1=best["layer"] + 0.5, y0=y - 0.5,
                      y1=y + 0.5, line={"color": "black", "width": 2.5})  # fmt: skip
    fig.update_xaxes(title_text="layer", dtick=1 if len(result.layers) <= 18 else 2)
    fig.update_yaxes(title_text="strength", tickvals=list(range(len(ylabels))), ticktext=ylabels)
    return style_figure(
        fig,
        f"{language_label(code)}: {result.metric} by layer and strength"
        f"<br><sup>{result.method} · {result.model} · on {result.selection}; "
        f"unsteered {result.baseline[li, 0]:.3f}; box: selected</sup>",
        height=max(340, 46 * len(ylabels) + 200),
        width=max(600, 44 * len(result.layers) + 300),
    )


# ----------------------------------------------------------------- transfer


def plot_transfer(result: TransferResult, *, annotate: bool = True) -> go.Figure:
    """Annotated heatmap of gains: vector fitted on row language, applied to column language.

    Rows and columns are grouped by family (thin lines between families); a second panel
    gives each vector's English damage (left out when none was measured). Colours are
    diverging and centred on 0, on one scale for both panels.

    >>> from interp_steer.analysis import TransferResult
    >>> score = np.array([[0.7, 0.5], [0.5, 0.6]])
    >>> res = TransferResult("m", "acc", "mean_diff", ("de", "sw"), ("de", "sw"), 6, 0.25,
    ...                      True, np.ones(2), score, score - 0.1, score + 0.1,
    ...                      np.array([[0.5, 0.4, 0.6]] * 2), np.array([-0.01, 0.0]), "test")
    >>> plot_transfer(res).data[0].z.round(2).tolist()  # gains: rows sources, cols targets
    [[0.2, 0.0], [0.0, 0.1]]
    """
    rows, cols = family_order(result.sources), family_order(result.targets)
    ri = [result.sources.index(c) for c in rows]
    ci = [result.targets.index(c) for c in cols]
    gain = result.gain[np.ix_(ri, ci)]
    damage = result.english_damage[ri][:, None]
    both = np.concatenate([gain.ravel(), damage.ravel()])
    limit = float(np.nanmax(np.abs(both))) if np.isfinite(both).any() else 1.0
    limit = limit or 1.0
    ylab = [language_label(c) for c in rows]
    has_damage = bool(np.isfinite(damage).any())  # no English panel when none was run
    titles = ("gain over unsteered", "English") if has_damage else ("gain over unsteered",)
    fig = make_subplots(rows=1, cols=len(titles), shared_yaxes=True, horizontal_spacing=0.03,
                        column_widths=[len(cols), 1.4] if has_damage else None,
                        subplot_titles=titles)  # fmt: skip

    def fmt(z: np.ndarray) -> np.ndarray:
        return np.vectorize(lambda v: "n/a" if np.isnan(v) else f"{v:+.2f}")(z)

    common = {"colorscale": DIVERGING, "zmid": 0.0, "zmin": -limit, "zmax": limit,
              "texttemplate": "%{text}" if annotate else None, "textfont": {"size": 11},
              "xgap": 1, "ygap": 1}  # fmt: skip
    fig.add_trace(go.Heatmap(
        z=gain, x=[language_label(c) for c in cols], y=ylab, text=fmt(gain),
        colorbar={"title": {"text": "Δ " + result.metric}},
        hovertemplate="vector %{y} → prompts %{x}: %{z:+.3f}<extra></extra>", **common,
    ), row=1, col=1)  # fmt: skip
    if has_damage:
        fig.add_trace(go.Heatmap(
            z=damage, x=["English"], y=ylab, text=fmt(damage), showscale=False,
            hovertemplate="vector %{y} on English: %{z:+.3f}<extra></extra>", **common,
        ), row=1, col=2)  # fmt: skip
    for _family, first, _last in _boundaries(cols):
        fig.add_shape(type="line", x0=first - 0.5, x1=first - 0.5, y0=-0.5, y1=len(rows) - 0.5,
                      line={"color": "black", "width": 1.5}, row=1, col=1)  # fmt: skip
    for _family, first, _last in _boundaries(rows):
        fig.add_shape(type="line", y0=first - 0.5, y1=first - 0.5, x0=-0.5, x1=len(cols) - 0.5,
                      line={"color": "black", "width": 1.5}, row=1, col=1)  # fmt: skip
    fig.update_xaxes(title_text="prompts in (target language)", tickangle=-45, row=1, col=1)
    if has_damage:
        fig.update_xaxes(title_text="", row=1, col=2)
        fig.update_yaxes(autorange="reversed", row=1, col=2)
    fig.update_yaxes(title_text="vector fitted on (source language)", autorange="reversed",
                     row=1, col=1)  # fmt: skip
    strength = _strength_label(result, result.strength)
    side = max(440, 40 * len(rows) + 240)
    fig = style_figure(
        fig,
        f"Transfer of steering vectors · {result.metric}"
        f"<br><sup>{result.method} at layer {result.layer}, {strength} · {result.model} · "
        f"{result.stage}; grouped by family</sup>",
        height=side,
        width=max(560, 52 * len(cols) + 420),
    )
    # the source families, right of the last panel and level with their rows
    return add_family_labels(fig, rows, "y", xref="x2" if has_damage else "x")


__all__ = [
    "plot_sweep",
    "plot_sweep_heatmap",
    "plot_transfer",
]
