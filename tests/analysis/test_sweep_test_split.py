"""A sweep's result is its held-out test result: paired gain, interval, p-value, then selection."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from interp_steer.analysis import Score, SweepResult, SweepSummary, layer_sweep
from interp_steer.analysis.sweep import paired_gain
from interp_steer.evaluation import EvalResult, ItemResult, mcnemar_exact, paired_bootstrap
from interp_steer.progress import set_progress

FIXTURES = Path(__file__).parents[1] / "fixtures" / "c8b3e6b"

BASE = [True, False, False, False, True, False, False, False]  # 2 of 8 on test, unsteered
STEERED = [True, True, True, True, True, True, False, False]  # 6 of 8 with the vector


class PerItem:
    """A fake task with per-item results: layer 2 wins selection; steering helps on test."""

    name = "fake accuracy"
    selection = "fake val split"
    testing = "fake test split"

    def __call__(self, model, lang, vector, alpha, stage):
        if stage == "test":
            marks = BASE if vector is None else STEERED
            value = sum(marks) / len(marks)
            return Score(value, value - 0.2, value + 0.2, len(marks), marks)
        value = 0.5 if vector is None else 0.6 + 0.2 * (vector.layer == 2) - 0.01 * alpha
        return Score(value, value - 0.1, value + 0.1, 10)


KW = dict(layers=[0, 2], ratios=(0.1, 0.5), n_fit=4)


def _summary(**changes):
    fields = dict(lang="sw", metric="xcopa accuracy", layer=6, strength=0.5, alpha=4.0,
                  relative=True, testing="xcopa test split", n_test=64, test_steered=0.6,
                  test_unsteered=0.5, test_gain=0.1, test_low=0.02, test_high=0.18, p_value=0.01,
                  selection="xcopa val split", select_score=0.8, select_unsteered=0.6)  # fmt: skip
    return SweepSummary(**{**fields, **changes})


def test_the_test_gain_is_paired_item_by_item(tiny):
    res = layer_sweep(tiny, ["de"], task=PerItem(), **KW)
    boot = paired_bootstrap(BASE, STEERED, n_resamples=2000, seed=0)
    assert res.test_gain[0].tolist() == [0.5, *boot.ci]
    assert res.test_p[0] == mcnemar_exact(BASE, STEERED).p_value == 0.125
    assert res.test_n[0] == 8 and res.testing == "fake test split"
    s = res.summary("de")
    assert (s.layer, s.test_steered, s.test_unsteered, s.n_test) == (2, 0.75, 0.25, 8)
    assert s.test_low > 0 and s.select_gain == pytest.approx(s.select_score - 0.5)
    line = s.line()
    # the held-out result comes first, the selection gain after it
    assert line.startswith("layer 2, ratio 0.1 (alpha ")
    assert (
        f": +0.500 (95% CI {boot.ci[0]:+.3f} to {boot.ci[1]:+.3f}, p=0.12) over unsteered" in line
    )
    assert line.index("8 held-out items (fake test split)") < line.index("selected on fake val")
    assert s.verdict.startswith("Steering raised accuracy on held-out items: +0.500")


def test_paired_gain_checks_its_items():
    assert paired_gain(BASE, STEERED)[0] == 0.5
    with pytest.raises(ValueError, match="same items"):
        paired_gain(BASE, STEERED[:-1])


def test_frame_puts_the_test_columns_first_and_the_selected_cell_on_top(tiny):
    frame = layer_sweep(tiny, ["de", "sw"], task=PerItem(), **KW).to_frame()
    assert list(frame.columns) == [
        "lang", "layer", "strength", "alpha", "selected",
        "test_gain", "test_ci_low", "test_ci_high", "test_p_value", "test_n", "test_steered",
        "test_unsteered", "select_score", "select_ci_low", "select_ci_high", "select_unsteered",
        "select_gain",
    ]  # fmt: skip
    assert len(frame) == 8 and frame["selected"].sum() == 2
    for lang in ("de", "sw"):
        rows = frame[frame["lang"] == lang]
        top = rows.iloc[0]
        assert top["selected"] and (top["layer"], top["strength"]) == (2, 0.1)
        assert (top["test_gain"], top["test_p_value"], top["test_n"]) == (0.5, 0.125, 8)
        assert rows.iloc[1:]["test_gain"].isna().all()  # only the selected cell was tested
    np.testing.assert_allclose(frame["select_gain"], frame["select_score"] - 0.5)


def test_without_a_test_stage_it_says_so(tiny):
    res = layer_sweep(tiny, ["de"], task=PerItem(), test=False, **KW)
    s = res.summary("de")
    assert not s.has_test and s.testing is None and res.testing == ""
    assert "no held-out test split" in s.line() and "not a result" in s.line()
    assert "over unsteered on" not in s.line()  # the selection gain is not the result
    assert s.verdict.startswith(
        f"No held-out test split: the selection gain ({s.select_gain:+.3f})"
    )
    assert res.summary_frame()["test_gain"].isna().all()


def test_resumed_cells_keep_their_per_item_results(tiny, tmp_path):
    first = layer_sweep(tiny, ["de"], task=PerItem(), run_dir=tmp_path, **KW)
    cell = json.loads((tmp_path / "cells" / "de" / "baseline-test.json").read_text())
    assert cell["correct"] == [int(x) for x in BASE]
    again = layer_sweep(tiny, ["de"], task=PerItem(), run_dir=tmp_path, **KW)
    np.testing.assert_array_equal(again.test_gain, first.test_gain)
    assert again.test_p[0] == first.test_p[0]


def test_saved_and_loaded_with_the_test_result(tiny, tmp_path):
    res = layer_sweep(tiny, ["de"], task=PerItem(), **KW)
    for name in ("sweep.json", "sweep.parquet"):
        back = SweepResult.load(res.save(tmp_path / name))
        np.testing.assert_array_equal(back.test_gain, res.test_gain)
        assert back.test_p[0] == 0.125 and back.test_n[0] == 8
        assert back.summary("de") == res.summary("de")
    assert json.loads((tmp_path / "sweep.json").read_text())["version"] == 2


def test_a_sweep_saved_at_c8b3e6b_has_a_gain_but_no_interval():
    s = SweepResult.load(FIXTURES / "sweep.json")
    assert s.test_gain[0, 0] == 0.0 and np.isnan(s.test_gain[0, 1:]).all()
    assert np.isnan(s.test_p).all() and np.isnan(s.test_n).all() and s.testing == ""
    summary = s.summary("it")
    assert summary.has_test and not summary.has_interval and summary.n_test is None
    assert "(no paired interval: per-item results not recorded) over unsteered on held-out " \
        "items; selected on xcopa test items 0..1 (held out): +0.000" in summary.line()  # fmt: skip


def test_shapes_of_the_test_result_are_checked():
    grid = np.full((1, 1, 1), 0.5)
    args = ("m", "acc", "mean_diff", ("de",), (1,), (0.1,), True, grid, grid, grid, grid,
            np.zeros((1, 3)), np.zeros((1, 3)), np.zeros((1, 3)), "val")  # fmt: skip
    with pytest.raises(ValueError, match="test_gain has shape"):
        SweepResult(*args, test_gain=np.zeros((1, 2)))
    with pytest.raises(ValueError, match="test_p has shape"):
        SweepResult(*args, test_p=np.zeros(2))


@pytest.mark.parametrize(
    ("changes", "verdict"),
    [
        ({}, "Steering raised accuracy on held-out items: +0.100 (95% CI +0.020 to +0.180)."),
        ({"test_gain": -0.08, "test_low": -0.16, "test_high": -0.01},
         "Steering lowered accuracy here: -0.080 on 64 held-out items "
         "(95% CI -0.160 to -0.010)."),
        ({"test_gain": -0.08, "test_low": -0.2, "test_high": 0.04},
         "Steering lowered accuracy here: -0.080 on 64 held-out items "
         "(95% CI -0.200 to +0.040, which includes 0)."),
        ({"test_gain": 0.03, "test_low": -0.05, "test_high": 0.11},
         "No reliable change on held-out items (the interval includes 0): +0.030, "
         "95% CI -0.050 to +0.110."),
        ({"test_low": math.nan, "test_high": math.nan, "p_value": math.nan},
         "No reliable change on held-out items (no interval: per-item results were not "
         "recorded)."),
        ({"testing": None}, "No held-out test split: the selection gain (+0.200) is the best "
         "cell of the grid on the items it was chosen on, so it overstates what steering "
         "does."),
        ({"test_gain": math.nan}, "The held-out test run could not be scored (see "
         "meta['failed'])."),
    ],
)  # fmt: skip
def test_each_verdict_follows_from_the_numbers(changes, verdict):
    assert _summary(**changes).verdict == verdict


def test_the_line_reads_test_first():
    line = _summary().line()
    assert line == (
        "layer 6, ratio 0.5 (alpha 4): +0.100 (95% CI +0.020 to +0.180, p=0.01) over "
        "unsteered on 64 held-out items (xcopa test split); selected on xcopa val split: +0.200"
    )
    assert _summary(relative=False, strength=4.0).line().startswith("layer 6, alpha 4: +0.100")
    row = _summary().to_row()
    assert list(row)[4:8] == ["test_gain", "test_ci_low", "test_ci_high", "test_p_value"]


def _run(lang, marks, vector=None, alpha=0.0, ids=None):
    ids = ids or [f"i{j}" for j in range(len(marks))]
    items = tuple(
        ItemResult(i, "p", "1", "1" if m else "0", m) for i, m in zip(ids, marks, strict=True)
    )
    return EvalResult("xcopa", lang, "tiny", "basic", items, settings={"alpha": alpha},
                      vector=vector)  # fmt: skip


def test_with_test_pairs_separate_runs_by_item_id(tiny):
    res = layer_sweep(tiny, ["de"], task=PerItem(), test=False, **KW)
    best = res.best("de")
    vector = {"method": "mean_diff", "layer": best["layer"]}
    order = [7, 3, 0, 5, 1, 6, 2, 4]  # the steered run lists its items in another order
    steered = _run("de", [STEERED[j] for j in order], vector, best["alpha"],
                   [f"i{j}" for j in order])  # fmt: skip
    tested = res.with_test("de", steered, _run("de", BASE), testing="xcopa test, first 8")
    s = tested.summary("de")
    assert (s.test_gain, s.p_value, s.n_test, s.testing) == (0.5, 0.125, 8, "xcopa test, first 8")
    assert (s.test_low, s.test_high) == tuple(paired_bootstrap(BASE, STEERED, seed=0).ci)
    assert tested.test[0, 0] == 0.75 and tested.test_baseline[0, 0] == 0.25
    assert np.isnan(res.test).all()  # the original is unchanged
    with pytest.raises(ValueError, match="selected cell of de"):
        res.with_test("de", _run("de", STEERED, {"layer": 0}, best["alpha"]), _run("de", BASE),
                      testing="x")  # fmt: skip
    with pytest.raises(ValueError, match="same items"):
        res.with_test("de", _run("de", STEERED[:4], vector, best["alpha"]), _run("de", BASE),
                      testing="x")  # fmt: skip
    with pytest.raises(ValueError, match="without a vector"):
        res.with_test("de", steered, steered, testing="x")


def test_the_sweep_draws_its_bar_as_asked(tiny, capsys):
    def plain(model, lang, vector, alpha, stage):  # no per-item results
        return Score(0.5, 0.4, 0.6, 4)

    plain.name = "plain accuracy"
    layer_sweep(tiny, ["de"], task=plain, progress=True, **KW)
    assert "sweep cells" in capsys.readouterr().err
    layer_sweep(tiny, ["de"], task=plain, progress=False, **KW)
    assert "sweep cells" not in capsys.readouterr().err
    set_progress(True)
    try:
        layer_sweep(tiny, ["de"], task=plain, **KW)  # None follows set_progress
    finally:
        set_progress(None)
    err = capsys.readouterr().err
    assert "sweep cells" in err and " 0/7 " in err  # every cell counted: 1 + 2 × 2 + 2
