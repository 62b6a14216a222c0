"""Figures of the language-forcing benchmark (re-exported by ``plotting``).

:func:`plot_forcing` is CLaS-Bench's picture: language control against semantic relevance,
one point per language and method, with the harmonic-mean score as isolines.
:func:`plot_forcing_layers` is its per-layer curve (where language structure emerges).

Example:
    >>> import numpy as np
    >>> from interp_steer.analysis import ForcingBenchmark
    >>> m = np.array([[0.5, 0.3, 0.7], [0.9, 0.7, 1.0], [0.6, 0.4, 0.8], [0.7, 0.5, 0.9]])
    >>> a = np.array
    >>> bench = ForcingBenchmark(
    ...     "m", ("de",), ("to_english",), ("mean_diff",), ("add",), (2,), {"add": (0.5,)},
    ...     lang_idx=a([0, 0, 0, 0]), direction_idx=a([0, 0, 0, 0]),
    ...     method_idx=a([-1, -1, 0, 0]), operator_idx=a([-1, -1, 0, 0]),
    ...     layer=a([-1, -1, 2, 2]), strength=a([np.nan, np.nan, 0.5, 0.5]),
    ...     test=a([False, True, False, True]), applied=a([0.0, 0.0, 3.0, 3.0]), control=m,
    ...     relevance=m, score=m, n=a([8] * 4), selected=a([False, False, True, True]))
    >>> from interp_steer.plotting.style import legend_entries
    >>> legend_entries(plot_forcing(bench))
    ['unsteered', 'mean_diff · add']
"""

import math
import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from interp_steer.analysis.forcing import UNSTEERED, ForcingBenchmark
from interp_steer.constants import METHOD_NAMES, Direction
from interp_steer.data.languages import canonical
from interp_steer.plotting.style import (
    PALETTE,
    language_colors,
    language_label,
    legend_below,
    rgba,
    style_figure,
)

Split = Literal["test", "select"]
"""Which prompts :func:`plot_forcing` shows: the held-out ``"test"`` prompts (the result)
or the ``"select"`` prompts the cells were chosen on (optimistic)."""

ISOLINES: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8)
"""The harmonic-mean scores :func:`plot_forcing` draws as isolines."""

UNSTEERED_COLOR = "#777777"
"""The colour of the unsteered model's points and lines (a neutral grey: no method)."""

OPERATOR_SYMBOLS: dict[str, str] = {
    "add": "circle",
    "ablate": "x",
    "rotate": "diamond",
    "clamp": "square",
}
"""The marker of each steering operator in :func:`plot_forcing`."""

X_TITLE = "language control (share in the intended language)"
"""What :func:`plot_forcing`'s x axis measures."""

Y_TITLE = "semantic relevance (share whose own prompt wins)"
"""What :func:`plot_forcing`'s y axis measures: the share of continuations whose own
prompt explains them better than every distractor prompt."""


def method_color(method: str, methods: Sequence[str] = ()) -> str:
    """The colour of a fitting method: fixed for the built-in ones, by position otherwise.

    Built-in methods (:data:`~interp_steer.constants.METHOD_NAMES`) take the palette's
    colours in that order, so ``mean_diff`` is the same blue in every figure; another
    method takes the first colour after them, by its position in ``methods``.

    >>> method_color("mean_diff"), method_color("pca")
    ('#0072B2', '#E69F00')
    """
    if method in METHOD_NAMES:
        return PALETTE[METHOD_NAMES.index(method)]
    extra = [m for m in methods if m not in METHOD_NAMES]
    at = extra.index(method) if method in extra else 0
    return PALETTE[(len(METHOD_NAMES) + at) % len(PALETTE)]


def strength_label(operator: str, strength: float) -> str:
    """A strength in its operator's unit: ``‖αv‖/‖h‖=0.5``, ``α=0.5``, ``30°``, ``0.25‖h‖``.

    >>> strength_label("add", 0.5), strength_label("rotate", 30.0), strength_label("clamp", 0.25)
    ('‖αv‖/‖h‖=0.5', '30°', '0.25‖h‖ along v')
    """
    if math.isnan(strength):
        return "unsteered"
    return {
        "add": f"‖αv‖/‖h‖={strength:g}",
        "ablate": f"α={strength:g} (share removed)",
        "rotate": f"{strength:g}°",
        "clamp": f"{strength:g}‖h‖ along v",
    }.get(operator, f"{strength:g}")


def _direction_title(direction: str) -> str:
    return {
        "to_english": "to English: prompts in the language, English wanted",
        "from_english": "from English: English prompts, the language wanted",
    }.get(direction, direction)


def _interval(name: str, row: pd.Series) -> str:
    value, low, high = row[name], row[f"{name}_low"], row[f"{name}_high"]
    if not math.isfinite(value):
        return f"{name} n/a"
    return f"{name} {value:.3f} [{low:.3f}, {high:.3f}]"


def _hover(row: pd.Series) -> str:
    """One point's hover text: what was steered, how strongly, on how many prompts, scores."""
    if row["method"] == UNSTEERED:
        what = "unsteered"
    else:
        strength = strength_label(str(row["operator"]), float(row["strength"]))
        what = f"{row['method']} · {row['operator']} · layer {int(row['layer'])} · {strength}"
    lines = [
        f"<b>{language_label(str(row['lang']))}</b> · {str(row['direction']).replace('_', ' ')}",
        what,
        f"{row['split']} prompts: n={int(row['n'])}",
        _interval("score", row),
        _interval("control", row),
        _interval("relevance", row),
    ]
    return "<br>".join(lines)


def _errors(frame: pd.DataFrame, name: str) -> dict[str, object]:
    value = frame[name].to_numpy(dtype=float)
    return {
        "type": "data",
        "symmetric": False,
        "array": frame[f"{name}_high"].to_numpy(dtype=float) - value,
        "arrayminus": value - frame[f"{name}_low"].to_numpy(dtype=float),
        "thickness": 1,
        "width": 3,
    }


def isoline(score: float, n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Points ``(control, relevance)`` in the unit square whose harmonic mean is ``score``.

    ``2 c r / (c + r) = h`` gives ``r = h c / (2 c - h)``, inside the square for ``c`` from
    ``h / (2 - h)`` (where ``r = 1``) to 1.

    Raises:
        ValueError: ``score`` not in (0, 1).

    >>> c, r = isoline(0.5, n=3)
    >>> np.round(2 * c * r / (c + r), 12).tolist()
    [0.5, 0.5, 0.5]
    """
    if not 0.0 < float(score) < 1.0:
        raise ValueError(f"an isoline's score must be in (0, 1), got {score!r}")
    h = float(score)
    control = np.linspace(h / (2.0 - h), 1.0, n)
    return control, h * control / (2.0 * control - h)


def _check_split(split: str) -> None:
    if split not in ("test", "select"):
        raise ValueError(f"split must be 'test' or 'select', got {split!r}")


def plot_forcing(bench: ForcingBenchmark, *, split: Split = "test") -> go.Figure:
    """Control (x) against relevance (y): one point per language and method, per direction.

    One panel per direction. Each (method, operator) is one trace, coloured by method
    (:func:`method_color`) with a marker per operator (:data:`OPERATOR_SYMBOLS`); its
    points are the languages (labelled by code), at the **selected** cell of each. Grey
    points are the unsteered model on the same prompts. Error bars are the Wilson 95%
    intervals of both shares; dotted curves are the harmonic-mean isolines
    (:data:`ISOLINES`), the score the benchmark ranks by, labelled at the top. Hover text
    gives the language, method, operator, layer, strength, number of prompts and each
    score with its interval.

    Args:
        bench: A :class:`~interp_steer.analysis.ForcingBenchmark`.
        split: ``"test"``: the selected cells on the held-out test prompts (the result);
            ``"select"``: the same cells on the prompts they were chosen on (optimistic).

    Returns:
        The figure (not shown).

    Raises:
        ValueError: ``split`` is not ``"test"`` or ``"select"``.
    """
    _check_split(split)
    frame = bench.to_frame()
    frame = frame[(frame["split"] == split) & (frame["selected"] | (frame["method"] == UNSTEERED))]
    dirs = list(bench.directions)
    fig = make_subplots(
        rows=1,
        cols=len(dirs),
        shared_yaxes=True,
        horizontal_spacing=0.06,
        subplot_titles=[_direction_title(d) for d in dirs],
    )
    groups = [(UNSTEERED, "none")] + [(m, o) for m in bench.methods for o in bench.operators]
    for col, direction in enumerate(dirs, start=1):
        for h in ISOLINES:
            control, relevance = isoline(h)
            fig.add_trace(
                go.Scatter(
                    x=control,
                    y=relevance,
                    mode="lines",
                    name=f"harmonic mean {h:g}",
                    legendgroup="isolines",
                    showlegend=False,
                    line={"color": "#bbbbbb", "dash": "dot", "width": 1},
                    hoverinfo="skip",
                ),
                row=1,
                col=col,
            )
            fig.add_annotation(
                text=f"H={h:g}",
                x=float(control[0]),
                y=1.0,
                yanchor="bottom",
                showarrow=False,
                font={"size": 10, "color": "#888888"},
                row=1,
                col=col,
            )
        here = frame[frame["direction"] == direction]
        for method, operator in groups:
            rows = here[(here["method"] == method) & (here["operator"] == operator)]
            if rows.empty:
                continue
            plain = method == UNSTEERED
            name = UNSTEERED if plain else f"{method} · {operator}"
            color = UNSTEERED_COLOR if plain else method_color(method, bench.methods)
            fig.add_trace(
                go.Scatter(
                    x=rows["control"].to_numpy(dtype=float),
                    y=rows["relevance"].to_numpy(dtype=float),
                    mode="markers+text",
                    text=list(rows["lang"]),
                    textposition="top right",
                    textfont={"size": 10, "color": color},
                    name=name,
                    legendgroup=name,
                    showlegend=col == 1,
                    marker={
                        "color": color,
                        "size": 9 if plain else 11,
                        "symbol": "circle-open" if plain else OPERATOR_SYMBOLS.get(operator),
                        "line": {"color": color, "width": 1.5},
                    },
                    error_x={**_errors(rows, "control"), "color": color},
                    error_y={**_errors(rows, "relevance"), "color": color},
                    customdata=[_hover(row) for _, row in rows.iterrows()],
                    hovertemplate="%{customdata}<extra></extra>",
                ),
                row=1,
                col=col,
            )
    fig.update_xaxes(title_text=X_TITLE if len(dirs) == 1 else "language control",
                     range=[-0.04, 1.06], dtick=0.2)  # fmt: skip
    fig.update_yaxes(range=[-0.04, 1.1], dtick=0.2)
    fig.update_yaxes(title_text=Y_TITLE if len(dirs) == 1 else "semantic relevance", col=1)
    n = sorted({int(x) for x in frame.loc[frame["method"] == UNSTEERED, "n"]})
    prompts = "held-out test prompts" if split == "test" else "selection prompts (optimistic)"
    k = (bench.meta.get("settings") or {}).get("k")
    chance = f"; relevance by chance: {1 / (k + 1):.2f}" if isinstance(k, int) else ""
    subtitle = (
        f"<br><sup>the selected cell of each method and operator on {prompts}, n="
        f"{'/'.join(map(str, n)) or '?'} per language</sup><br><sup>grey: unsteered · "
        f"bars: Wilson 95% · dotted: harmonic mean (the score){chance}</sup>"
    )
    width = 560 * len(dirs) + 80
    fig = style_figure(
        fig,
        f"Language forcing · control vs relevance · {bench.model}{subtitle}",
        margin={"l": 80, "r": 30, "t": 150, "b": 60},
        height=660,
        width=width,
    )
    if len(dirs) > 1:  # the axis titles say what each share is, under the panels
        fig.add_annotation(text=f"x: {X_TITLE}<br>y: {Y_TITLE}", x=0, xref="paper",
                           xanchor="left", y=-0.16, yref="paper", yanchor="top",
                           showarrow=False, align="left",
                           font={"size": 11, "color": "#555555"})  # fmt: skip
        fig.update_layout(margin={"b": 110}, height=710)
    return legend_below(fig)


def plot_forcing_layers(
    bench: ForcingBenchmark,
    *,
    lang: str | None = None,
    direction: Direction | None = None,
    method: str | None = None,
    operator: str | None = None,
) -> go.Figure:
    """The best selection score at each layer, per language (where language structure emerges).

    For one (direction, method, operator), each language's line is
    :meth:`~interp_steer.analysis.ForcingBenchmark.layer_curve`: at each layer the
    harmonic-mean score of its best strength on the selection prompts, with a shaded 95%
    bootstrap band; the dashed line of the same colour is the unsteered model's selection
    score, and a star marks the selected cell. With more than one language, a black line
    is their mean.

    Args:
        bench: A :class:`~interp_steer.analysis.ForcingBenchmark`.
        lang: One language (any spelling); all of the benchmark's by default.
        direction: The benchmark's first direction by default.
        method: The benchmark's first method by default.
        operator: The benchmark's first operator by default.

    Returns:
        The figure (not shown).

    Raises:
        ValueError: A language, direction, method or operator the benchmark does not hold.

    Example:
        >>> import numpy as np
        >>> from interp_steer.analysis import ForcingBenchmark
        >>> m = np.array([[0.2, 0.1, 0.3], [0.6, 0.5, 0.7], [0.4, 0.3, 0.5]])
        >>> a = np.array
        >>> bench = ForcingBenchmark(
        ...     "m", ("sw",), ("from_english",), ("pca",), ("rotate",), (1, 3),
        ...     {"rotate": (30.0,)}, lang_idx=a([0, 0, 0]), direction_idx=a([0, 0, 0]),
        ...     method_idx=a([-1, 0, 0]), operator_idx=a([-1, 0, 0]), layer=a([-1, 1, 3]),
        ...     strength=a([np.nan, 30.0, 30.0]), test=a([False] * 3),
        ...     applied=a([0.0, -30.0, -30.0]), control=m, relevance=m, score=m,
        ...     n=a([8] * 3), selected=a([False, True, False]))
        >>> fig = plot_forcing_layers(bench)
        >>> [(t.name, t.y.tolist()) for t in fig.data if t.showlegend is not False]
        [('Swahili (sw)', [0.6, 0.4])]
    """
    codes = list(bench.langs) if lang is None else [canonical(lang)]
    d = bench.directions[0] if direction is None else str(direction)
    m = bench.methods[0] if method is None else method
    o = bench.operators[0] if operator is None else operator
    curves = {code: bench.layer_curve(code, d, m, o) for code in codes}  # type: ignore[arg-type]
    table = bench.table()
    colors = language_colors(codes)
    layers = list(bench.layers)
    fig = go.Figure()
    for code, curve in curves.items():
        color, label = colors[code], language_label(code)
        low, high = curve["score_low"].to_numpy(float), curve["score_high"].to_numpy(float)
        fig.add_trace(go.Scatter(
            x=layers + layers[::-1], y=np.concatenate([high, low[::-1]]), fill="toself",
            mode="lines", fillcolor=rgba(color, 0.15), line={"width": 0}, hoverinfo="skip",
            legendgroup=code, showlegend=False, name=f"{label} 95% interval",
        ))  # fmt: skip
        hover = [
            f"{label}<br>layer {int(r.layer)}, {strength_label(o, float(r.strength))}"
            f"<br>score {r.score:.3f} [{r.score_low:.3f}, {r.score_high:.3f}]"
            f"<br>control {r.control:.3f}, relevance {r.relevance:.3f}"
            for r in curve.itertuples()
        ]
        fig.add_trace(go.Scatter(
            x=layers, y=curve["score"].to_numpy(float), mode="lines+markers", name=label,
            legendgroup=code, line={"color": color, "width": 2.5}, marker={"size": 6},
            customdata=hover, hovertemplate="%{customdata}<extra></extra>",
        ))  # fmt: skip
        unsteered = float(curve["unsteered"].iloc[0])
        fig.add_trace(go.Scatter(
            x=[layers[0], layers[-1]], y=[unsteered] * 2, mode="lines",
            name=f"{label} · unsteered", legendgroup=code, showlegend=False,
            line={"color": color, "dash": "dash", "width": 1.5},
            hovertemplate=f"{label} unsteered: %{{y:.3f}}<extra></extra>",
        ))  # fmt: skip
        chosen = table[(table["lang"] == code) & (table["direction"] == d)
                       & (table["method"] == m) & (table["operator"] == o)]  # fmt: skip
        if not chosen.empty:
            row = chosen.iloc[0]
            fig.add_trace(go.Scatter(
                x=[int(row["layer"])], y=[float(row["select_score"])], mode="markers",
                name=f"{label} selected", legendgroup=code, showlegend=False,
                marker={"symbol": "star", "size": 15, "color": color,
                        "line": {"color": "black", "width": 1}},
                hovertemplate=f"{label} selected: layer %{{x}}, "
                f"{strength_label(o, float(row['strength']))}: %{{y:.3f}} on selection"
                f" prompts, {float(row['score']):.3f} on test<extra></extra>",
            ))  # fmt: skip
    if len(codes) > 1:
        scores = np.stack([c["score"].to_numpy(float) for c in curves.values()])
        with warnings.catch_warnings():  # a layer where every language failed: NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(scores, axis=0)
        fig.add_trace(go.Scatter(
            x=layers, y=mean, mode="lines", name="mean over languages",
            line={"color": "black", "width": 3},
            hovertemplate="mean over languages<br>layer %{x}: %{y:.3f}<extra></extra>",
        ))  # fmt: skip
    fig.update_xaxes(title_text="layer", tickvals=layers,
                     range=[layers[0] - 0.4, layers[-1] + 0.4])  # fmt: skip
    fig.update_yaxes(title_text="harmonic-mean score (best strength per layer)",
                     range=[-0.03, 1.03])  # fmt: skip
    subtitle = (
        f"<br><sup>{m} · {o} · {_direction_title(d)}</sup>"
        "<br><sup>band: 95% bootstrap interval · dashed: unsteered · star: selected "
        "(selection prompts)</sup>"
    )
    return legend_below(
        style_figure(
            fig,
            f"Language forcing by layer · {bench.model}{subtitle}",
            margin={"l": 70, "r": 30, "t": 150, "b": 60},
            height=560,
            width=820,
        )
    )


__all__ = [
    "ISOLINES",
    "OPERATOR_SYMBOLS",
    "UNSTEERED_COLOR",
    "Split",
    "isoline",
    "method_color",
    "plot_forcing",
    "plot_forcing_layers",
    "strength_label",
]
