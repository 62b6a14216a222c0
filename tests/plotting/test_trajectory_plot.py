"""Wendler's figure: its traces' data, names, dashes, panels and titles (not pixels)."""

import dataclasses

import numpy as np
import pytest

from interp_steer.analysis import TrajectoryResult
from interp_steer.plotting import plot_language_trajectory
from interp_steer.plotting.style import language_colors, legend_entries

SHAPE = (2, 3, 4)  # runs, layers, prompts


def _result(runs=("base", "steered")) -> TrajectoryResult:
    rng = np.random.default_rng(0)
    n = len(runs)
    target = rng.uniform(0, 0.5, SHAPE)[:n]
    english = rng.uniform(0, 0.5, SHAPE)[:n]
    vector = {"name": None, "layer": 1, "method": "mean_diff", "source_lang": "zh",
              "target_lang": "en", "model_name": "tiny", "norm": 1.0}  # fmt: skip
    steered = len(runs) > 1
    return TrajectoryResult(
        model="tiny", source="de", target="zh", lens="logit", layers=(0, 1, 2), runs=runs,
        concepts=("dog", "cat", "sun", "moon"), prompts=("a", "b", "c", "d"),
        target_prob=target, english_prob=english, entropy=rng.uniform(0, 5, SHAPE)[:n],
        n_excluded=2, n_boot=100, meta={"task": "translation", "alpha": 2.0 if steered else None,
        "positions": "all" if steered else None, "vector": vector if steered else None},
    )  # fmt: skip


def _lines(fig):
    return [t for t in fig.data if t.mode == "lines+markers"]


def _bands(fig):
    return [t for t in fig.data if t.fill == "toself"]


def test_overlay_draws_both_languages_and_entropy_with_bands_steered_dashed():
    res = _result()
    fig = plot_language_trajectory(res)
    mean, low, high = res.interval
    lines = _lines(fig)
    assert [t.name for t in lines] == [
        "English", "Chinese", "entropy",
        "English · steered", "Chinese · steered", "entropy · steered",
    ]  # fmt: skip
    assert [t.line.dash for t in lines] == ["solid"] * 3 + ["dash"] * 3
    colors = language_colors(["en", "zh"])
    assert [t.line.color for t in lines[:2]] == [colors["en"], colors["zh"]]
    order = {"English": 1, "Chinese": 0, "entropy": 2}  # index into QUANTITIES
    for r in range(2):
        for t, band in zip(lines[3 * r : 3 * r + 3], _bands(fig)[3 * r : 3 * r + 3], strict=True):
            q = order[t.name.split(" · ")[0]]
            assert list(t.x) == [0, 1, 2]
            np.testing.assert_array_equal(t.y, mean[r, q])
            assert list(band.x) == [0, 1, 2, 2, 1, 0]
            np.testing.assert_array_equal(band.y, np.r_[high[r, q], low[r, q][::-1]])
    # probabilities on top, entropy in the strip below (its own y axis), one x column
    assert {t.yaxis for t in lines if "entropy" not in t.name} == {"y"}
    assert {t.yaxis for t in lines if "entropy" in t.name} == {"y2"}
    assert fig.layout.yaxis.title.text == "probability"
    assert fig.layout.yaxis2.title.text == "entropy (nats)"
    assert fig.layout.xaxis2.title.text == "layer"
    assert legend_entries(fig) == [t.name for t in lines]
    marks = [s for s in fig.layout.shapes if s.line.dash == "dot"]  # the steered layer
    assert {s.x0 for s in marks} == {1} and {s.xref for s in marks} == {"x", "x2"}


def test_title_names_model_pair_prompts_lens_and_vector():
    title = plot_language_trajectory(_result()).layout.title.text
    assert title.startswith("Latent language · tiny · German→Chinese")
    assert "4 translation prompts (2 excluded" in title
    assert "logit lens" in title and "95% bootstrap" in title
    assert "steered: vector mean_diff zh→en at layer 1, α = 2" in title
    base = plot_language_trajectory(_result(("base",))).layout.title.text
    assert "steered" not in base


def test_side_by_side_puts_the_steered_run_in_a_second_column():
    res = _result()
    fig = plot_language_trajectory(res, mode="side_by_side")
    lines = _lines(fig)
    assert [t.name for t in lines] == ["English", "Chinese", "entropy"] * 2
    assert all(t.line.dash == "solid" for t in lines)
    assert [t.xaxis for t in lines] == ["x", "x", "x3", "x2", "x2", "x4"]
    assert legend_entries(fig) == ["English", "Chinese", "entropy"]  # once, for both
    assert [a.text for a in fig.layout.annotations if a.text in ("base", "steered")] == [
        "base", "steered"
    ]  # fmt: skip
    mean = res.interval[0]
    np.testing.assert_array_equal(lines[4].y, mean[1, 0])  # steered Chinese = target
    # the steered layer is marked in the steered column only
    marks = [s for s in fig.layout.shapes if s.line.dash == "dot"]
    assert {s.x0 for s in marks} == {1} and {s.xref for s in marks} == {"x2", "x4"}


def test_a_base_result_is_one_column_in_either_mode():
    res = _result(("base",))
    for mode in ("overlay", "side_by_side"):
        fig = plot_language_trajectory(res, mode=mode)
        assert [t.name for t in _lines(fig)] == ["English", "Chinese", "entropy"]
        assert {t.xaxis for t in fig.data} == {"x", "x2"}
        assert not [s for s in fig.layout.shapes if s.line.dash == "dot"]


def test_bad_mode_is_refused():
    with pytest.raises((ValueError, TypeError), match="mode"):
        plot_language_trajectory(_result(), mode="stacked")


def test_a_cloze_title_names_one_language():
    """Cloze prompts are in the target language: "Chinese", not "Chinese→Chinese"."""
    cloze = dataclasses.replace(_result(), source="zh", meta={**_result().meta, "task": "cloze"})
    title = plot_language_trajectory(cloze).layout.title.text
    assert title.startswith("Latent language · tiny · Chinese<br>")
    assert "4 cloze prompts" in title


def test_the_entropy_strip_shows_the_highest_band_in_both_columns():
    res = _result()
    fig = plot_language_trajectory(res, mode="side_by_side")
    top = float(res.interval[2][:, 2].max())  # [run, quantity (target, english, entropy), layer]
    for axis in (fig.layout.yaxis3, fig.layout.yaxis4):  # row 2, both columns
        assert axis.range[0] == 0 and axis.range[1] >= top
