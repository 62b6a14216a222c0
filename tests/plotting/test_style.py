"""Colours and legends: distinguishable language colours (also colour-blind), full legends."""

import math
from itertools import combinations

import numpy as np
import plotly.graph_objects as go
import pytest

import interp_steer.plotting.style as style
from interp_steer.analysis import SweepResult
from interp_steer.plotting import plot_sweep
from interp_steer.plotting.style import language_color, language_label

# The twelve most used languages: English, the XCOPA/demo languages, the rest of MGSM;
# the first eight are the ones a colour-blind reader must still tell apart.
MOST_USED = ("en", "de", "fr", "es", "it", "zh", "ja", "sw", "ru", "th", "bn", "te")

# CIEDE2000 of about 1 is a just-noticeable difference between large patches; lines and
# markers are thin, and telling categories apart at a glance needs far more (Szafir 2018,
# "Modeling Color Difference for Visualization Design": several times the patch JND for
# thin marks). 15 is a clear difference at line width; under simulated dichromacy the
# colours collapse onto two hues, so 10 (still several JNDs) is what eight can keep.
MIN_DELTA_E = 15.0
MIN_DELTA_E_CVD = 10.0

# Machado, Oliveira & Fernandes (2009), "A Physiologically-based Model for Simulation
# of Color Vision Deficiency", severity 1.0; applied to linear RGB.
DEUTERANOPIA = np.array(
    [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
     [-0.011820, 0.042940, 0.968881]]
)  # fmt: skip
PROTANOPIA = np.array(
    [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
     [-0.003882, -0.048116, 1.051998]]
)  # fmt: skip


def _linear_rgb(hex_color: str) -> np.ndarray:
    srgb = np.array([int(hex_color.lstrip("#")[i : i + 2], 16) for i in (0, 2, 4)]) / 255
    return np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)


def _lab(linear: np.ndarray) -> tuple[float, float, float]:
    """CIELAB (D65) of a linear sRGB colour."""
    m = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                  [0.0193339, 0.1191920, 0.9503041]])  # fmt: skip
    xyz = m @ np.clip(linear, 0, 1) / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return 116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])


def _delta_e2000(lab1: tuple[float, ...], lab2: tuple[float, ...]) -> float:
    """CIEDE2000 (Sharma, Wu & Dalal 2005)."""
    (l1, a1, b1), (l2, a2, b2) = lab1, lab2
    c_mean = (math.hypot(a1, b1) + math.hypot(a2, b2)) / 2
    g = 0.5 * (1 - math.sqrt(c_mean**7 / (c_mean**7 + 25**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = math.hypot(a1p, b1), math.hypot(a2p, b2)
    h1p = math.degrees(math.atan2(b1, a1p)) % 360
    h2p = math.degrees(math.atan2(b2, a2p)) % 360
    dh = 0.0 if c1p * c2p == 0 else (h2p - h1p + 180) % 360 - 180
    d_hp = 2 * math.sqrt(c1p * c2p) * math.sin(math.radians(dh / 2))
    l_mean, cp_mean = (l1 + l2) / 2, (c1p + c2p) / 2
    if c1p * c2p == 0:
        h_mean = h1p + h2p
    elif abs(h1p - h2p) <= 180:
        h_mean = (h1p + h2p) / 2
    else:
        h_mean = (h1p + h2p + (360 if h1p + h2p < 360 else -360)) / 2
    t = (1 - 0.17 * math.cos(math.radians(h_mean - 30)) + 0.24 * math.cos(math.radians(2 * h_mean))
         + 0.32 * math.cos(math.radians(3 * h_mean + 6))
         - 0.20 * math.cos(math.radians(4 * h_mean - 63)))  # fmt: skip
    s_l = 1 + 0.015 * (l_mean - 50) ** 2 / math.sqrt(20 + (l_mean - 50) ** 2)
    s_c, s_h = 1 + 0.045 * cp_mean, 1 + 0.015 * cp_mean * t
    r_t = (-2 * math.sqrt(cp_mean**7 / (cp_mean**7 + 25**7))
           * math.sin(math.radians(60 * math.exp(-(((h_mean - 275) / 25) ** 2)))))  # fmt: skip
    dl, dc, dhh = (l2 - l1) / s_l, (c2p - c1p) / s_c, d_hp / s_h
    return math.sqrt(dl**2 + dc**2 + dhh**2 + r_t * dc * dhh)


def _distance(c1: str, c2: str, vision: np.ndarray | None = None) -> float:
    lin1, lin2 = _linear_rgb(c1), _linear_rgb(c2)
    if vision is not None:
        lin1, lin2 = vision @ lin1, vision @ lin2
    return _delta_e2000(_lab(lin1), _lab(lin2))


def _closest(colors: dict[str, str], vision: np.ndarray | None = None) -> tuple[float, str, str]:
    return min((_distance(colors[a], colors[b], vision), a, b) for a, b in combinations(colors, 2))


def test_delta_e2000_matches_the_published_test_pairs():
    # Sharma, Wu & Dalal (2005), Table 1, pairs 1, 17 and 18
    assert _delta_e2000((50, 2.6772, -79.7751), (50, 0, -82.7485)) == pytest.approx(
        2.0425, abs=1e-4
    )
    assert _delta_e2000((50, 2.5, 0), (73, 25, -18)) == pytest.approx(27.1492, abs=1e-4)
    assert _delta_e2000((50, 2.5, 0), (61, -5, 29)) == pytest.approx(22.8977, abs=1e-4)
    assert _lab(_linear_rgb("#ffffff")) == pytest.approx((100, 0, 0), abs=0.01)


def test_the_most_used_languages_have_clearly_different_colours():
    colors = {c: language_color(c) for c in MOST_USED}
    closest = _closest(colors)
    assert closest[0] >= MIN_DELTA_E, f"{closest[1]} and {closest[2]} look alike: {closest}"
    assert _distance(colors["it"], colors["sw"]) >= MIN_DELTA_E  # the demo's pair
    assert language_color("en") == style.BUCKET_COLORS["english"]  # English: one blue


@pytest.mark.parametrize("vision", [DEUTERANOPIA, PROTANOPIA], ids=["deuteranopia", "protanopia"])
def test_the_eight_most_used_stay_apart_for_colour_blind_readers(vision):
    colors = {c: language_color(c) for c in MOST_USED[:8]}
    closest = _closest(colors, vision)
    assert closest[0] >= MIN_DELTA_E_CVD, f"{closest[1]} and {closest[2]} look alike: {closest}"


@pytest.mark.parametrize(
    "codes",
    [
        MOST_USED,
        ("ar", "bn", "de", "el", "es", "et", "fr", "ht", "hi", "id", "it", "ja"),  # the study's
        ("ko", "pt", "qu", "ru", "sw", "ta", "te", "th", "tr", "vi", "zh", "en"),
        ("nl", "pl", "xx", "yy", "et", "hi", "ko", "ar", "pt", "id", "tr", "vi"),  # all hashed
    ],
)
def test_any_twelve_languages_of_a_figure_get_distinct_colours(codes):
    colors = style.language_colors(codes)
    assert list(colors) == list(codes)
    assert _closest(colors)[0] >= MIN_DELTA_E
    assert style.language_colors(codes[::-1]) == colors  # the order given does not matter
    for code in codes:  # a fixed colour stays put, whatever else is in the figure
        if code in MOST_USED:
            assert colors[code] == language_color(code)
    if "en" not in codes:
        assert language_color("en") not in colors.values()  # English's blue is English's


def test_language_colors_of_one_language_is_its_colour():
    assert style.language_colors(["hi"]) == {"hi": language_color("hi")}
    assert language_color("hi") != language_color("en")


def _sweep(langs: tuple[str, ...]) -> SweepResult:
    n = len(langs)
    score = np.linspace(-0.8, 0.0, n * 3 * 2).reshape(n, 3, 2)
    return SweepResult(
        "gemma-3-270m", "-KL to English (nats)", "mean_diff", langs, (4, 8, 12), (0.1, 0.5),
        True, score, score, score - 0.05, score + 0.05,
        np.column_stack([score[:, 0, 0] - 0.1, score[:, 0, 0] - 0.2, score[:, 0, 0]]),
        np.full((n, 3), np.nan), np.full((n, 3), np.nan), "msvamp train pairs 400..463",
    )  # fmt: skip


def test_a_nine_language_sweep_legend_shows_every_language_below_the_plot():
    langs = ("bn", "de", "es", "fr", "ja", "ru", "sw", "th", "zh")  # the generation sweep
    fig = plot_sweep(_sweep(langs))
    shown = [
        t.name for t in fig.data if t.name and t.showlegend is not False and t.type == "scatter"
    ]
    assert shown == [language_label(c) for c in langs]  # Thai and Chinese included
    assert style.legend_entries(fig) == shown
    colors = {t.name: t.line.color for t in fig.data if t.name in shown}
    assert len(set(colors.values())) == 9
    legend, margin = fig.layout.legend, fig.layout.margin
    # rows under the plot, anchored to the bottom of the figure, not beside it
    assert legend.orientation == "h" and legend.yref == "container" and legend.y == 0
    assert legend.yanchor == "bottom" and legend.xanchor == "center"
    # the bottom margin holds the axis title (60 px) and every row of entries
    plot_px = fig.layout.width - margin.l - margin.r
    per_row = plot_px // (legend.entrywidth + 48)
    rows = math.ceil(9 / per_row)
    assert legend.entrywidth >= 0.6 * 13 * max(len(n) for n in shown)  # the longest fits
    assert margin.b >= 60 + rows * 24
    one = plot_sweep(_sweep(("de",)))
    assert fig.layout.height - one.layout.height == margin.b - one.layout.margin.b > 0


def test_legend_entries_leave_out_hidden_and_unnamed_traces():
    fig = go.Figure([go.Scatter(name="a"), go.Scatter(name="b", showlegend=False),
                     go.Scatter(), go.Heatmap(z=[[1]], name="h"),
                     go.Heatmap(z=[[1]], name="shown", showlegend=True)])  # fmt: skip
    assert style.legend_entries(fig) == ["a", "shown"]
    fig.update_layout(showlegend=False)
    assert style.legend_entries(fig) == []
