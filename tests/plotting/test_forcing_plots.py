"""The forcing benchmark's figures, tested by their data and labels: control vs relevance
with harmonic-mean isolines, and the per-layer score curve."""

import math

import numpy as np
import pytest
from jaxtyping import TypeCheckError

from interp_steer.analysis import ForcingBenchmark
from interp_steer.plotting import plot_forcing, plot_forcing_layers
from interp_steer.plotting.forcing import ISOLINES, X_TITLE, Y_TITLE, isoline, strength_label
from interp_steer.plotting.style import legend_entries

LANGS = ("de", "sw")
DIRECTIONS = ("to_english", "from_english")
METHODS = ("mean_diff", "pca")
OPERATORS = ("add", "rotate")
LAYERS = (1, 2, 3)
STRENGTHS = {"add": (0.25, 0.5), "rotate": (15.0, 30.0)}


def _metrics(rng):
    c, r = rng.uniform(0.05, 0.95, 2)
    s = 2 * c * r / (c + r)
    return [[v, max(0.0, v - 0.1), min(1.0, v + 0.05)] for v in (c, r, s)]


def _bench(seed: int = 0, fail: tuple[int, int, int, int, int] | None = None) -> ForcingBenchmark:
    """A benchmark built from arrays: random distinct scores, the best selection cell of
    each group selected and run on test; ``fail`` (lang, direction, method, operator,
    layer) makes every selection cell at that layer NaN (a failed cell)."""
    rng = np.random.default_rng(seed)
    rows = []

    def add(li, di, mi, oi, layer, s, test, selected=False, nan=False):
        c, r, sc = _metrics(rng)
        if nan:
            c = r = sc = [math.nan] * 3
        rows.append({"lang_idx": li, "direction_idx": di, "method_idx": mi, "operator_idx": oi,
                     "layer": layer, "strength": s, "test": test, "applied": 0.0 if mi < 0 else s,
                     "control": c, "relevance": r, "score": sc, "n": 0 if nan else 8,
                     "selected": selected})  # fmt: skip

    for li in range(len(LANGS)):
        for di in range(len(DIRECTIONS)):
            add(li, di, -1, -1, -1, math.nan, False)
            add(li, di, -1, -1, -1, math.nan, True)
            for mi in range(len(METHODS)):
                for oi, op in enumerate(OPERATORS):
                    first = len(rows)
                    for layer in LAYERS:
                        for s in STRENGTHS[op]:
                            add(li, di, mi, oi, layer, s, False,
                                nan=fail == (li, di, mi, oi, layer))  # fmt: skip
                    group = rows[first:]
                    best = int(np.nanargmax([g["score"][0] for g in group]))
                    group[best]["selected"] = True
                    add(li, di, mi, oi, group[best]["layer"], group[best]["strength"], True, True)
    arrays = {k: np.asarray([r[k] for r in rows]) for k in rows[0]}
    return ForcingBenchmark("m", LANGS, DIRECTIONS, METHODS, OPERATORS, LAYERS, STRENGTHS,
                            meta={"settings": {"k": 4}}, **arrays)  # fmt: skip


@pytest.fixture(scope="module")
def bench():
    return _bench()


def _points(fig):
    """The traces that hold points (markers), by (x axis, name)."""
    return {(t.xaxis, t.name): t for t in fig.data if "markers" in (t.mode or "")}


@pytest.mark.parametrize("split", ["test", "select"])
def test_points_are_the_selected_cells_and_the_unsteered_model(bench, split):
    fig = plot_forcing(bench, split=split)
    frame = bench.to_frame()
    frame = frame[frame["split"] == split]
    points = _points(fig)
    assert len(points) == len(DIRECTIONS) * (1 + len(METHODS) * len(OPERATORS))
    for axis, direction in zip(("x", "x2"), DIRECTIONS, strict=True):
        here = frame[frame["direction"] == direction]
        plain = here[here["method"] == "unsteered"]
        trace = points[axis, "unsteered"]
        assert list(trace.text) == list(plain["lang"]) == list(LANGS)
        np.testing.assert_array_equal(trace.x, plain["control"])
        np.testing.assert_array_equal(trace.y, plain["relevance"])
        assert trace.marker.color == "#777777"
        for method in METHODS:
            for op in OPERATORS:
                rows = here[(here["method"] == method) & (here["operator"] == op)
                            & here["selected"]]  # fmt: skip
                trace = points[axis, f"{method} · {op}"]
                assert len(rows) == len(LANGS) and list(trace.text) == list(rows["lang"])
                np.testing.assert_array_equal(trace.x, rows["control"])
                np.testing.assert_array_equal(trace.y, rows["relevance"])
                # error bars: the Wilson intervals, asymmetric
                np.testing.assert_allclose(trace.error_x.array,
                                           rows["control_high"] - rows["control"])  # fmt: skip
                np.testing.assert_allclose(trace.error_x.arrayminus,
                                           rows["control"] - rows["control_low"])  # fmt: skip
                np.testing.assert_allclose(trace.error_y.array,
                                           rows["relevance_high"] - rows["relevance"])  # fmt: skip
                np.testing.assert_allclose(trace.error_y.arrayminus,
                                           rows["relevance"] - rows["relevance_low"])  # fmt: skip
                # hover: language, method, operator, layer, strength, n, score and interval
                row = rows.iloc[0]
                hover = trace.customdata[0]
                for part in ("German (de)", method, op, f"layer {int(row['layer'])}",
                             strength_label(op, row["strength"]), f"{split} prompts: n=8",
                             f"score {row['score']:.3f} [{row['score_low']:.3f}, "
                             f"{row['score_high']:.3f}]"):  # fmt: skip
                    assert part in hover, (part, hover)


def test_one_colour_per_method_one_marker_per_operator(bench):
    points = _points(plot_forcing(bench))
    colors = {m: {points["x", f"{m} · {o}"].marker.color for o in OPERATORS} for m in METHODS}
    assert all(len(c) == 1 for c in colors.values())
    assert len({c.pop() for c in colors.values()} | {"#777777"}) == len(METHODS) + 1
    symbols = {o: points["x", f"mean_diff · {o}"].marker.symbol for o in OPERATORS}
    assert symbols == {"add": "circle", "rotate": "diamond"}


def test_isolines_are_the_harmonic_mean_and_labelled(bench):
    fig = plot_forcing(bench)
    lines = [t for t in fig.data if t.name and t.name.startswith("harmonic mean")]
    assert len(lines) == len(ISOLINES) * len(DIRECTIONS)
    for trace in lines:
        h = float(trace.name.split()[-1])
        c, r = np.asarray(trace.x), np.asarray(trace.y)
        np.testing.assert_allclose(2 * c * r / (c + r), h, rtol=0, atol=1e-12)
        assert c.min() >= 0 and r.min() >= 0 and math.isclose(r.max(), 1.0)
        assert math.isclose(c.max(), 1.0) and trace.showlegend is False
    labels = [a.text for a in fig.layout.annotations if a.text.startswith("H=")]
    assert labels == [f"H={h:g}" for h in ISOLINES] * len(DIRECTIONS)
    with pytest.raises(ValueError, match=r"in \(0, 1\)"):
        isoline(1.0)


def test_legend_axis_titles_and_panels(bench):
    fig = plot_forcing(bench)
    assert legend_entries(fig) == ["unsteered", "mean_diff · add", "mean_diff · rotate",
                                   "pca · add", "pca · rotate"]  # fmt: skip
    texts = [a.text for a in fig.layout.annotations]
    assert texts[0].startswith("to English") and texts[1].startswith("from English")
    assert f"x: {X_TITLE}<br>y: {Y_TITLE}" in texts  # what each axis measures
    assert fig.layout.xaxis.title.text == "language control"
    assert fig.layout.yaxis.title.text == "semantic relevance"
    assert "held-out test prompts" in fig.layout.title.text
    assert "relevance by chance: 0.20" in fig.layout.title.text  # k=4
    one = plot_forcing(dataclass_one_direction(bench))
    assert one.layout.xaxis.title.text == X_TITLE and one.layout.yaxis.title.text == Y_TITLE
    assert "selection prompts (optimistic)" in plot_forcing(bench, split="select").layout.title.text
    # the type checker of the tests refuses it first; without it, the function's own check
    with pytest.raises((ValueError, TypeCheckError), match="split"):
        plot_forcing(bench, split="val")  # type: ignore[arg-type]


def dataclass_one_direction(bench: ForcingBenchmark) -> ForcingBenchmark:
    """The to_english rows of ``bench`` as a one-direction benchmark."""
    keep = bench.direction_idx == 0
    data = bench.to_dict()
    data["directions"] = ["to_english"]
    for key, value in list(data.items()):
        if isinstance(value, list) and len(value) == len(keep):
            data[key] = [v for v, k in zip(value, keep, strict=True) if k]
    return ForcingBenchmark.from_dict(data)


def test_layer_curve_lines_bands_unsteered_and_star(bench):
    fig = plot_forcing_layers(bench, direction="from_english", method="pca", operator="rotate")
    by_name = {t.name: t for t in fig.data}
    curves = {lang: bench.layer_curve(lang, "from_english", "pca", "rotate") for lang in LANGS}
    table = bench.table()
    for lang, label in (("de", "German (de)"), ("sw", "Swahili (sw)")):
        curve = curves[lang]
        line = by_name[label]
        assert list(line.x) == list(LAYERS)
        np.testing.assert_array_equal(line.y, curve["score"])
        band = by_name[f"{label} 95% interval"]
        np.testing.assert_array_equal(
            band.y, np.concatenate([curve["score_high"], curve["score_low"][::-1]])
        )
        dashed = by_name[f"{label} · unsteered"]
        assert dashed.line.dash == "dash" and dashed.line.color == line.line.color
        assert list(dashed.y) == [curve["unsteered"].iloc[0]] * 2
        group = (table["direction"] == "from_english") & (table["method"] == "pca")
        row = table[group & (table["lang"] == lang) & (table["operator"] == "rotate")].iloc[0]
        star = by_name[f"{label} selected"]
        assert list(star.x) == [row["layer"]] and list(star.y) == [row["select_score"]]
        assert star.y[0] == curve["score"].max()  # the selected cell is the best of the grid
    mean = by_name["mean over languages"]
    np.testing.assert_allclose(mean.y, (curves["de"]["score"] + curves["sw"]["score"]) / 2)
    assert legend_entries(fig) == ["German (de)", "Swahili (sw)", "mean over languages"]
    assert fig.layout.xaxis.title.text == "layer"
    assert fig.layout.yaxis.title.text == "harmonic-mean score (best strength per layer)"
    assert "pca · rotate · from English" in fig.layout.title.text


def test_layer_curve_defaults_one_language_and_bad_labels(bench):
    fig = plot_forcing_layers(bench, lang="German")  # any spelling; the first of the rest
    assert legend_entries(fig) == ["German (de)"]
    curve = bench.layer_curve("de", "to_english", "mean_diff", "add")
    np.testing.assert_array_equal(fig.data[1].y, curve["score"])
    assert "mean_diff · add · to English" in fig.layout.title.text
    with pytest.raises(ValueError, match="'lda' is not one of this benchmark's methods"):
        plot_forcing_layers(bench, method="lda")
    with pytest.raises(ValueError, match="'fr' is not one of this benchmark's langs"):
        plot_forcing_layers(bench, lang="fr")


def test_a_layer_whose_cells_all_failed_is_a_gap(bench):
    failed = _bench(fail=(0, 0, 0, 0, 2))  # de, to_english, mean_diff, add: layer 2 failed
    fig = plot_forcing_layers(failed)
    by_name = {t.name: t for t in fig.data}
    assert math.isnan(by_name["German (de)"].y[1]) and not math.isnan(by_name["German (de)"].y[0])
    sw = by_name["Swahili (sw)"].y
    assert by_name["mean over languages"].y[1] == sw[1]  # the mean of the languages that ran
