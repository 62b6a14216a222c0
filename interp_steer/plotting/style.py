"""One look for every figure: colours, the template, token display and family grouping.

Every figure in :mod:`interp_steer.plotting.export` takes its colours from here, so English is
the same blue, the prompt language the same orange, and German the same colour in every
figure of a notebook.

Example:
    >>> BUCKET_COLORS["english"], language_color("de") == language_color("de")
    ('#2f6db5', True)
"""

import zlib
from collections.abc import Mapping, Sequence
from types import MappingProxyType

import plotly.graph_objects as go

from interp_steer.data.languages import get_language

TEMPLATE = "plotly_white"
"""The plotly template of every figure."""

FONT = {"family": "Inter, Helvetica Neue, Arial, sans-serif", "size": 13}
"""The font of every figure."""

BUCKET_COLORS: Mapping[str, str] = MappingProxyType(
    {
        "english": "#2f6db5",  # blue
        "prompt": "#e8833a",  # orange
        "other": "#59a14f",  # green
        "undetermined": "#c7c7c7",  # light grey
    }
)
"""Logit-lens language bucket -> colour (keys: the lens's language buckets)."""

# Colour-blind-aware qualitative palette (Tableau 10 + 10 darker companions).
_QUALITATIVE: tuple[str, ...] = (
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
    "#ff9da7", "#9c755f", "#bab0ac", "#1f4e79", "#b6561a", "#8c1c13", "#2a7f7a",
    "#2d6a27", "#a08400", "#6a3d62", "#c25b6a", "#5c4033", "#6b6b6b",
)  # fmt: skip

# The paper's languages first, so they never share a colour.
_FIXED_ORDER: tuple[str, ...] = (
    "en", "de", "fr", "es", "ru", "zh", "ja", "th", "sw", "bn", "te", "it", "pt", "ar",
    "ko", "hi", "id", "tr", "vi", "et",
)  # fmt: skip

SEQUENTIAL = "Viridis"
"""Colour scale for similarities and accuracies (0 = dark, 1 = bright)."""

DIVERGING = "RdBu"
"""Colour scale for gains (red = worse, blue = better), always centred on 0."""


def language_color(code: str) -> str:
    """Return the colour of a language: fixed for the paper's languages, hashed otherwise.

    >>> language_color("en"), language_color("de")
    ('#4e79a7', '#f28e2b')
    """
    if code in _FIXED_ORDER:
        return _QUALITATIVE[_FIXED_ORDER.index(code) % len(_QUALITATIVE)]
    return _QUALITATIVE[zlib.crc32(code.encode()) % len(_QUALITATIVE)]


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


__all__ = [
    "BUCKET_COLORS",
    "DIVERGING",
    "FONT",
    "SEQUENTIAL",
    "TEMPLATE",
    "discrete_colorscale",
    "language_color",
    "language_label",
    "show_token",
    "style_figure",
]
