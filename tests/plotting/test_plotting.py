"""Figures: traces, shapes, axis titles and labels (not pixels); save_figure's files."""

import dataclasses

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from interp_steer.analysis import (
    SweepResult,
    TransferResult,
    logit_lens,
    similarity_from_activations,
)
from interp_steer.data.languages import family_spans
from interp_steer.plotting import (
    language_color,
    plot_language_shares,
    plot_sweep,
    plot_sweep_heatmap,
    plot_token_table,
    plot_transfer,
    save_figure,
    static_export_available,
)
from interp_steer.plotting.similarity import (
    plot_similarity,
    plot_similarity_matrix,
    threshold_boundary,
)
from interp_steer.plotting.style import BUCKET_COLORS, show_token
from interp_steer.steering import SteeringVector


@pytest.fixture(scope="module")
def lens(tiny):
    v = SteeringVector(torch.ones(64), layer=1)
    return logit_lens(tiny, ["Hallo Welt", "Guten Morgen"], vector=v, alpha=2.0,
                      positions="all", k=3, lang="de")  # fmt: skip


@pytest.fixture(scope="module")
def sim():
    g = torch.Generator().manual_seed(0)
    content = torch.randn(20, 8, generator=g)
    acts = {
        c: {layer: content * (layer + 1) + torch.randn(20, 8, generator=g) for layer in range(3)}
        for c in ("en", "sw", "fr", "de")
    }
    return similarity_from_activations(acts, model="m", dataset="synthetic")


@pytest.fixture(scope="module")
def sweep():
    score = np.array(
        [[[0.5, 0.55], [0.7, 0.6], [0.45, 0.4]], [[0.3, 0.3], [0.35, 0.5], [0.2, 0.2]]]
    )
    return SweepResult(
        "m", "xcopa accuracy", "mean_diff", ("de", "sw"), (2, 4, 6), (0.1, 0.5), True,
        score * 10, score, score - 0.1, score + 0.1, np.array([[0.5, 0.4, 0.6], [0.3, 0.2, 0.4]]),
        np.full((2, 3), np.nan), np.full((2, 3), np.nan), "xcopa val split",
    )  # fmt: skip


@pytest.fixture(scope="module")
def transfer():
    score = np.array([[0.7, 0.4, 0.5], [0.55, 0.6, 0.5], [0.5, 0.45, 0.65]])
    return TransferResult(
        "m", "xcopa accuracy", "mean_diff", ("sw", "de", "fr"), ("sw", "de", "fr"), 5, 0.25,
        True, np.ones(3), score, score - 0.1, score + 0.1,
        np.array([[0.5, 0.4, 0.6]] * 3), np.array([-0.02, 0.0, np.nan]),
        "xcopa test split",
    )  # fmt: skip


def _common(fig: go.Figure) -> None:
    assert fig.layout.template.layout.paper_bgcolor is not None or fig.layout.template
    assert fig.layout.title.text


def test_language_shares(lens):
    fig = plot_language_shares(lens)
    _common(fig)
    assert len(fig.data) == 2 * 4  # base and steered, four buckets each
    assert [t.name for t in fig.data[:4]] == ["English", "German", "other", "undetermined"]
    assert [t.line.color for t in fig.data[:4]] == list(BUCKET_COLORS.values())
    assert {t.stackgroup for t in fig.data} == {"p1", "p2"}
    assert fig.data[0].x == tuple(lens.layers)
    stacked = np.sum([t.y for t in fig.data[:4]], axis=0)
    np.testing.assert_allclose(stacked, 1.0)
    assert fig.layout.xaxis.title.text == "layer"
    assert fig.layout.yaxis.title.text.startswith("share of top-3")
    assert [a.text for a in fig.layout.annotations] == ["tiny · base", "tiny · steered"]
    two = plot_language_shares([lens, lens], titles=["a", "b", "c", "d"])  # a second model
    assert len(two.data) == 16
    with pytest.raises(ValueError, match="titles"):
        plot_language_shares(lens, titles=["only one"])


def test_token_table(lens):
    fig = plot_token_table(lens, variant="steered", prompt=1)
    heat = fig.data[0]
    n = int((lens.item_prompt == 1).sum())
    assert np.asarray(heat.z).shape == (4, n)
    top1 = lens.top1("steered")[:, lens.item_prompt == 1]
    assert np.asarray(heat.text).tolist() == [[show_token(t) for t in row] for row in top1]
    assert [t.name for t in fig.data[1:]] == ["English", "German", "other", "undetermined"]
    assert fig.layout.yaxis.title.text == "layer"
    assert fig.layout.xaxis.title.text == "input token (prompt 1)"
    with pytest.raises(ValueError, match="variant"):
        plot_token_table(lens, variant="nope")


def test_similarity_heatmap(sim):
    fig = plot_similarity(sim, "centred_cosine")
    heat, boundary = fig.data
    z = np.asarray(heat.z)
    assert z.shape == (3, 3)  # languages without English × layers
    langs, values = sim.vs_english("centred_cosine")
    np.testing.assert_allclose(z[0], values[langs.index("de")])  # rows in family order
    assert list(fig.layout.yaxis.ticktext) == ["German (de)", "French (fr)", "Swahili (sw)"]
    assert list(fig.layout.xaxis.ticktext) == ["0", "1", "2"]
    assert boundary.mode == "lines" and boundary.name.startswith("0.5 threshold")
    assert fig.layout.xaxis.title.text == "layer" and fig.layout.yaxis.title.text == "language"
    assert "centred cosine" in fig.layout.title.text
    assert len(plot_similarity(sim, "cka", threshold=None).data) == 1


def test_threshold_boundary_follows_cell_edges():
    z = np.array([[0.1, 0.6], [0.7, 0.8]])
    xs, ys = threshold_boundary(z, 0.5)
    segments = {(xs[i], ys[i], xs[i + 1], ys[i + 1]) for i in range(0, len(xs), 3)}
    assert segments == {(0.5, -0.5, 0.5, 0.5), (-0.5, 0.5, 0.5, 0.5)}
    assert threshold_boundary(np.full((2, 2), 0.9), 0.5) == ([], [])


def test_similarity_matrix(sim):
    fig = plot_similarity_matrix(sim, layer=1, metric="cka")
    z = np.asarray(fig.data[0].z)
    assert z.shape == (4, 4)
    np.testing.assert_allclose(np.diag(z), 1.0)
    assert list(fig.data[0].x) == ["English (en)", "German (de)", "French (fr)", "Swahili (sw)"]
    assert len(fig.layout.shapes) == 2 * 2  # two family boundaries, both axes
    with pytest.raises(ValueError, match="layer"):
        plot_similarity_matrix(sim, layer=9)


def test_sweep_figures(sweep):
    fig = plot_sweep(sweep)
    assert len(fig.data) == 2 * 4  # band, line, baseline, selected star per language
    line = fig.data[1]
    assert line.name == "German (de)" and line.line.color == language_color("de")
    np.testing.assert_allclose(line.y, [0.55, 0.7, 0.45])  # best strength per layer
    assert fig.data[2].line.dash == "dash" and fig.data[2].y == (0.5, 0.5)
    assert fig.data[3].x == (4,) and fig.data[3].marker.symbol == "star"
    assert fig.layout.xaxis.title.text == "layer"
    assert fig.layout.yaxis.title.text.startswith("xcopa accuracy")
    heat = plot_sweep_heatmap(sweep, "sw")
    assert np.asarray(heat.data[0].z).shape == (2, 3)
    assert list(heat.layout.yaxis.ticktext) == ["‖αv‖/‖h‖=0.1", "‖αv‖/‖h‖=0.5"]
    assert heat.layout.shapes[0].x0 == 3.5  # the selected cell: layer 4, ratio 0.5


def test_sweep_figure_leads_with_the_held_out_test_result(sweep):
    tested = dataclasses.replace(
        sweep, test=np.array([[0.62, 0.5, 0.74], [np.nan] * 3]),
        test_baseline=np.array([[0.58, 0.46, 0.7], [np.nan] * 3]),
        test_gain=np.array([[0.04, -0.05, 0.11], [np.nan] * 3]), test_p=np.array([0.48, np.nan]),
        test_n=np.array([64, np.nan]), testing="xcopa test split",
    )  # fmt: skip
    fig = plot_sweep(tested)
    diamond = [t for t in fig.data if t.name.endswith("held-out test")]
    assert len(diamond) == 1 and diamond[0].marker.symbol == "diamond"
    assert diamond[0].x == (4,) and diamond[0].y == (0.62,)  # at the selected layer of de
    np.testing.assert_allclose(diamond[0].error_y.array, [0.12])
    np.testing.assert_allclose(diamond[0].error_y.arrayminus, [0.12])
    title = fig.layout.title.text
    assert title.index("held-out test (xcopa test split)") < title.index("lines: selection")
    assert "German (de), layer 4, ‖αv‖/‖h‖=0.1: test +0.040 (95% CI -0.050 to +0.110, p=0.48) " \
        "on 64 items" in title  # fmt: skip
    assert "Swahili (sw), layer 4, ‖αv‖/‖h‖=0.5: the held-out test run could not be scored" in title
    assert "selection" in fig.layout.yaxis.title.text
    # without a test stage the figure says so, and draws no test marker
    title = plot_sweep(sweep).layout.title.text
    assert "no held-out test split" in title and "selection scores on xcopa val split" in title
    assert not [t for t in plot_sweep(sweep).data if t.name.endswith("held-out test")]


def test_transfer_figure(transfer):
    fig = plot_transfer(transfer)
    gain, damage = fig.data
    assert list(gain.y) == ["German (de)", "French (fr)", "Swahili (sw)"]  # by family
    z = np.asarray(gain.z)
    assert z.shape == (3, 3) and z[0, 0] == pytest.approx(0.6 - 0.5)  # de→de
    assert np.asarray(damage.z).shape == (3, 1) and list(damage.x) == ["English"]
    assert np.asarray(damage.text)[:, 0].tolist() == ["+0.00", "n/a", "-0.02"]  # de fr sw
    assert gain.zmid == 0 and gain.zmin == -gain.zmax
    assert fig.layout.yaxis.title.text.startswith("vector fitted on")
    assert fig.layout.xaxis.title.text.startswith("prompts in")
    # no English damage measured: one panel, no empty "English" column
    alone = plot_transfer(dataclasses.replace(transfer, english_damage=np.full(3, np.nan)))
    assert len(alone.data) == 1 and [a.text for a in alone.layout.annotations] == [
        "gain over unsteered",
        *[family for family, _, _ in family_spans(["de", "fr", "sw"])],  # the rows' families
    ]
    assert [a.text for a in fig.layout.annotations][2:] == ["Germanic", "Romance", "Bantu"]
    assert np.array_equal(np.asarray(alone.data[0].z), z)


def test_save_figure_html_offline(sim, tmp_path):
    out = save_figure(plot_similarity(sim), tmp_path / "figs" / "sim.html", png=False,
                      plotlyjs="inline")  # fmt: skip
    html = out["html"].read_text(encoding="utf-8")
    assert out["html"].name == "sim.html"
    assert "Plotly.newPlot" in html and len(html) > 1_000_000  # plotly.js is inlined
    assert "* plotly.js v" in html  # the library itself, not a link to it
    assert "<script src=" not in html and "<link" not in html  # nothing fetched when opened
    assert sorted(p.name for p in out["html"].parent.iterdir()) == ["sim.html"]  # no temp


@pytest.mark.skipif(not static_export_available(), reason="no Chrome/Chromium for kaleido")
def test_save_figure_png_and_svg(transfer, tmp_path):
    out = save_figure(plot_transfer(transfer), tmp_path / "transfer", svg=True)
    assert set(out) == {"html", "png", "svg"}
    assert out["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out["svg"].read_text(encoding="utf-8").lstrip().startswith("<svg")
