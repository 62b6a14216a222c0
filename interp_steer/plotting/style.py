"""One look for every figure: colours, the template, legends, token display and family labels.

Every figure in :mod:`interp_steer.plotting` takes its colours from here, so English is the
same blue, the prompt language the same orange, and German the same colour in every
figure of a notebook.

Example:
    >>> BUCKET_COLORS["english"] == language_color("en"), language_color("de")
    (True, '#E69F00')
"""

import math
import zlib
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Literal

import plotly.graph_objects as go

from interp_steer.data.languages import family_spans, get_language

TEMPLATE = "plotly_white"
"""The plotly template of every figure."""

FONT_SIZE = 13
"""The font size of every figure (pixels)."""

FONT = {"family": "Inter, Helvetica Neue, Arial, sans-serif", "size": FONT_SIZE}
"""The font of every figure."""

PALETTE: tuple[str, ...] = (
    # Okabe & Ito, "Color Universal Design" (2008), https://jfly.uni-koeln.de/color/ —
    # the eight colour-blind-safe colours less black and yellow (yellow is unreadable as a
    # line on white, black is the colour of outlines and threshold lines):
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#D55E00",  # vermillion
    "#56B4E9",  # sky blue
    "#CC79A7",  # reddish purple
    # Paul Tol, "Colour Schemes" (2021), https://personal.sron.nl/~pault/ — from the
    # "bright", "dark" and "muted" qualitative schemes:
    "#AA3377",  # purple (bright)
    "#663333",  # dark red (dark)
    "#225555",  # dark cyan (dark)
    "#999933",  # olive (muted)
    "#332288",  # indigo (muted)
    "#666633",  # dark yellow (dark)
)
"""Twelve categorical colours, any two at least 20 apart in CIEDE2000 (normal vision).

Under simulated deuteranopia or protanopia (Machado et al. 2009, severity 1) the first
eight stay at least 12 apart; the last four can come as close as 5 to one of the others,
so past eight languages a colour-blind reader needs the legend or the hover text.
``tests/plotting/test_style.py`` checks both."""

LANGUAGE_COLORS: Mapping[str, str] = MappingProxyType(
    dict(
        zip(
            # English, the study's XCOPA and demo languages first (the eight that stay
            # apart for colour-blind readers), then the rest of MGSM's.
            ("en", "de", "fr", "es", "it", "zh", "ja", "sw", "ru", "th", "bn", "te"),
            PALETTE,
            strict=True,
        )
    )
)
"""The fixed colour of each of the twelve most used languages (all different)."""

# Every colour but English's, and a neutral grey (CIEDE2000 >= 19 from all twelve), for
# languages without a fixed colour: twelve of them in one figure still all differ.
_OTHERS = (*PALETTE[1:], "#777777")

BUCKET_COLORS: Mapping[str, str] = MappingProxyType(
    {
        "english": PALETTE[0],  # blue: English's language colour
        "prompt": PALETTE[1],  # orange
        "other": PALETTE[2],  # bluish green
        "undetermined": "#c7c7c7",  # light grey
    }
)
"""Logit-lens language bucket -> colour (keys: the lens's language buckets)."""

SEQUENTIAL = "Viridis"
"""Colour scale for similarities and accuracies (0 = dark, 1 = bright)."""

DIVERGING = "RdBu"
"""Colour scale for gains (red = worse, blue = better), always centred on 0."""


def language_color(code: str) -> str:
    """Return the colour of a language: fixed for the twelve most used, hashed otherwise.

    English's blue is English's alone. A hashed colour may repeat another language's; a
    figure uses :func:`language_colors`, which keeps them apart.

    >>> language_color("en"), language_color("sw")
    ('#0072B2', '#663333')
    """
    if code in LANGUAGE_COLORS:
        return LANGUAGE_COLORS[code]
    return _OTHERS[zlib.crc32(code.encode()) % len(_OTHERS)]


def language_colors(codes: Sequence[str]) -> dict[str, str]:
    """Colours for the languages of one figure: all different for up to twelve languages.

    A language with a fixed colour (:data:`LANGUAGE_COLORS`) keeps it; any other takes
    its :func:`language_color` if no language of the figure has it, else the first free
    colour other than English's blue (codes in sorted order, so the result does not depend
    on the order of ``codes``). Past twelve languages colours repeat.

    >>> language_colors(["de", "pt", "en"])  # Portuguese's hashed colour is German's
    {'de': '#E69F00', 'pt': '#009E73', 'en': '#0072B2'}
    """
    colors = {c: LANGUAGE_COLORS[c] for c in codes if c in LANGUAGE_COLORS}
    for code in sorted(set(codes) - set(colors)):
        taken = set(colors.values())
        free = [c for c in _OTHERS if c not in taken]
        wanted = language_color(code)
        colors[code] = wanted if wanted not in taken or not free else free[0]
    return {c: colors[c] for c in codes}


def language_label(code: str) -> str:
    """Return ``"German (de)"`` for a known code, the code itself otherwise.

    >>> language_label("sw"), language_label("xx")
    ('Swahili (sw)', 'xx')
    """
    try:
        return f"{get_language(code).name} ({code})"
    except ValueError:
        return code


def show_token(token: str) -> str:
    r"""Make a token's whitespace visible for tables: ``" the"`` -> ``"␣the"``.

    >>> show_token(" the"), show_token("\n"), show_token("")
    ('␣the', '↵', '∅')
    """
    if token == "":
        return "∅"
    return token.replace(" ", "␣").replace("\n", "↵").replace("\t", "⇥").replace("\u2581", "␣")


def discrete_colorscale(colors: Sequence[str]) -> list[list[float | str]]:
    """A plotly colour scale with one flat band per colour, for z in ``0..len(colors)-1``.

    Use with ``zmin=-0.5, zmax=len(colors) - 0.5``.

    >>> discrete_colorscale(["#000", "#fff"])
    [[0.0, '#000'], [0.5, '#000'], [0.5, '#fff'], [1.0, '#fff']]
    """
    n = len(colors)
    scale: list[list[float | str]] = []
    for i, color in enumerate(colors):
        scale += [[i / n, color], [(i + 1) / n, color]]
    return scale


def style_figure(fig: go.Figure, title: str, **layout: object) -> go.Figure:
    """Apply the house style (template, font, left-aligned title, margins) to ``fig``.

    Args:
        fig: The figure, changed in place.
        title: Its title.
        **layout: Further ``fig.update_layout`` settings (a ``margin`` replaces the default).

    Returns:
        ``fig``.

    >>> style_figure(go.Figure(), "Shares").layout.title.text
    'Shares'
    """
    settings: dict[str, object] = {"margin": {"l": 70, "r": 30, "t": 90, "b": 60}, **layout}
    fig.update_layout(
        template=TEMPLATE,
        font=FONT,
        title={"text": title, "x": 0.01, "xanchor": "left"},
        **settings,
    )
    return fig


# Trace types plotly leaves out of the legend unless told otherwise.
_NOT_IN_LEGEND = frozenset({"heatmap", "contour", "histogram2d", "histogram2dcontour", "image"})


def legend_entries(fig: go.Figure) -> list[str]:
    """The names ``fig``'s legend shows, in trace order.

    >>> fig = go.Figure([go.Scatter(name="a"), go.Scatter(name="b", showlegend=False)])
    >>> legend_entries(fig)
    ['a']
    """
    if fig.layout.showlegend is False:
        return []
    return [
        t.name
        for t in fig.data
        if t.name and (t.showlegend or (t.showlegend is None and t.type not in _NOT_IN_LEGEND))
    ]


def _text_px(text: str, size: int) -> int:
    """A generous estimate of the width of ``text`` at font ``size`` (pixels)."""
    return math.ceil(0.62 * size * len(text))


def legend_below(fig: go.Figure, *, row_height: int = 24) -> go.Figure:
    """Put the legend in rows under the plot and grow the figure so every entry shows.

    A legend beside the plot is cut off once its entries are taller than the plot (a
    nine-language sweep lost Thai and Chinese). Under it, each entry is as wide as the
    longest, as many go in a row as the figure is wide, and the bottom margin and the
    height grow by the rows needed. Call it after :func:`style_figure` (it reads the
    width, height and margin).

    Args:
        fig: The figure, changed in place.
        row_height: Height of one legend row in pixels.

    Returns:
        ``fig``.

    >>> fig = style_figure(go.Figure([go.Scatter(name=f"language {i}") for i in range(9)]),
    ...                    "Nine", width=800, height=400)
    >>> fig = legend_below(fig)
    >>> fig.layout.legend.orientation, fig.layout.height > 400
    ('h', True)
    """
    names = legend_entries(fig)
    if not names:
        return fig
    text = max(_text_px(n, FONT_SIZE) for n in names)  # plotly adds ~45 px of symbol
    margin = fig.layout.margin
    plot_px = int(fig.layout.width or 700) - (margin.l or 0) - (margin.r or 0)  # wraps there
    per_row = max(1, plot_px // (text + 48))
    room = math.ceil(len(names) / per_row) * row_height + 16
    bottom = margin.b if margin.b is not None else 60
    fig.update_layout(
        legend={
            "orientation": "h",
            "traceorder": "normal",
            "entrywidth": text,
            "entrywidthmode": "pixels",
            "xref": "container",
            "x": 0.5,
            "xanchor": "center",
            "yref": "container",
            "y": 0,
            "yanchor": "bottom",
        },
        margin={"b": bottom + room},
        height=int(fig.layout.height or 450) + room,
    )
    return fig


def add_family_labels(
    fig: go.Figure,
    ordered: Sequence[str],
    axis: Literal["x", "y"],
    *,
    xref: str = "x",
    yref: str = "y",
) -> go.Figure:
    """Name the language families along a family-grouped axis of a heatmap.

    ``ordered`` are the axis's languages in plot order (cell ``i`` at coordinate ``i``,
    e.g. from :func:`~interp_steer.data.languages.family_order`). For ``"y"`` each
    family's name is written right of the plot, level with its rows, and the colour bar
    moves right to make room; for ``"x"`` above the plot, over its columns (slanted when
    a name is wider than its columns), and the top margin grows. Call it after
    :func:`style_figure` (it reads the width, height and margins).

    Args:
        fig: The figure, changed in place.
        ordered: The languages along the axis, in order.
        axis: Which axis is grouped by family.
        xref: The x axis of the heatmap (``"x2"`` for a second panel).
        yref: Its y axis.

    Returns:
        ``fig``, with one annotation per family run.

    >>> fig = style_figure(go.Figure(go.Heatmap(z=[[1, 2, 3]])), "t", width=500, height=400)
    >>> fig = add_family_labels(fig, ["de", "fr", "es"], "x")
    >>> [a.text for a in fig.layout.annotations]
    ['Germanic', 'Romance']
    """
    if axis not in ("x", "y"):
        raise ValueError(f"axis must be 'x' or 'y', got {axis!r}")
    spans = family_spans(ordered)
    size = FONT_SIZE - 2
    font = {"size": size, "color": "#444444"}
    longest = max((_text_px(fam, size) for fam, _, _ in spans), default=0)
    margin = fig.layout.margin
    width, height = int(fig.layout.width or 700), int(fig.layout.height or 450)
    if axis == "y":
        for fam, first, last in spans:
            fig.add_annotation(
                text=fam,
                x=1,
                xref=f"{xref} domain",
                xanchor="left",
                xshift=6,
                y=(first + last) / 2,
                yref=yref,
                showarrow=False,
                font=font,
            )
        room = longest + 16
        plot_px = max(1, width - (margin.l or 0) - (margin.r or 0))
        fig.update_traces(colorbar={"x": 1 + room / plot_px, "xanchor": "left"},
                          selector={"type": "heatmap"})  # fmt: skip
        fig.update_layout(width=width + room, margin={"r": (margin.r or 0) + room})
        return fig
    cell_px = (width - (margin.l or 0) - (margin.r or 0)) / max(1, len(ordered))
    fits = all(_text_px(fam, size) <= (last - first + 1) * cell_px for fam, first, last in spans)
    for fam, first, last in spans:
        fig.add_annotation(
            text=fam,
            x=(first + last) / 2,
            xref=xref,
            y=1,
            yref=f"{yref} domain",
            yanchor="bottom",
            yshift=4,
            xanchor="center" if fits else "left",
            textangle=0 if fits else -40,
            showarrow=False,
            font=font,
        )
    room = 22 if fits else math.ceil(0.65 * longest) + 16
    fig.update_layout(height=height + room, margin={"t": (margin.t or 0) + room})
    return fig


def rgba(color: str, alpha: float) -> str:
    """``"#RRGGBB"`` as ``"rgba(r, g, b, alpha)"``: a translucent band of a line's colour.

    >>> rgba("#0072B2", 0.2)
    'rgba(0, 114, 178, 0.2)'
    """
    code = color.lstrip("#")
    r, g, b = (int(code[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r}, {g}, {b}, {alpha:g})"


__all__ = [
    "BUCKET_COLORS",
    "DIVERGING",
    "FONT",
    "FONT_SIZE",
    "LANGUAGE_COLORS",
    "PALETTE",
    "SEQUENTIAL",
    "TEMPLATE",
    "add_family_labels",
    "discrete_colorscale",
    "language_color",
    "language_colors",
    "language_label",
    "legend_below",
    "legend_entries",
    "rgba",
    "show_token",
    "style_figure",
]
