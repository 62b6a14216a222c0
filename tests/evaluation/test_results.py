"""compare(): tidy tables, gains over basic, paired tests; results' JSON round trip."""

import math

import pandas as pd
import pytest

from interp_steer.evaluation import EvalResult, ItemResult, compare, paired_test, pivot
from interp_steer.evaluation.statistics import binomial_two_sided

VEC = {
    "method": "mean_diff",
    "layer": 6,
    "hook_name": "blocks.6.hook_resid_post",
    "norm": 1.0,
    "source_lang": "sw",
    "target_lang": "en",
    "model_name": "m",
    "sha1": "0",
}


def _result(
    marks, *, task="xcopa", lang="sw", baseline="basic", vector=None, alpha=1.0, ids=None, model="m"
):
    ids = ids or [f"{task}-{lang}-{i}" for i in range(len(marks))]
    items = tuple(
        ItemResult(i, "prompt", "0", "0" if m else "1", bool(m), scores=(-1.0, -2.0))
        for i, m in zip(ids, marks, strict=True)
    )
    return EvalResult(
        task, lang, model, baseline, items, {"alpha": alpha, "positions": "all"}, vector
    )


def test_gain_and_mcnemar_against_hand_computation():
    basic = _result([1, 0, 0, 0, 1, 0, 0, 1])
    steered = _result([1, 1, 1, 0, 0, 1, 1, 1], vector=VEC, alpha=4.0)
    table = compare(basic, steered)
    assert list(table["method"]) == ["basic", "basic+mean_diff@L6 a=4"]
    row = table.iloc[1]
    assert row["accuracy"] == pytest.approx(6 / 8) and row["ref_accuracy"] == pytest.approx(3 / 8)
    assert row["gain"] == pytest.approx(3 / 8)
    assert (row["b"], row["c"], row["n_paired"]) == (1, 4, 8)
    assert row["p_value"] == pytest.approx(2 * (1 + 5) / 32)  # two-sided binomial, 1 of 5
    assert row["p_value"] == pytest.approx(binomial_two_sided(1, 5))
    assert table.iloc[0]["gain"] == 0.0 and math.isnan(table.iloc[0]["p_value"])
    assert row["steered"] and row["layer"] == 6 and row["alpha"] == 4.0


def test_bootstrap_option_and_pairing_by_id():
    basic = _result([1, 0, 0, 0], ids=["a", "b", "c", "d"])
    other = _result([1, 1], ids=["b", "a"], baseline="xlt")
    t = paired_test(basic, other)
    assert (t.n, t.b, t.c) == (2, 0, 1)
    table = compare(basic, other, test="bootstrap", n_resamples=200)
    assert table.iloc[1]["test"] == "bootstrap" and table.iloc[1]["n_paired"] == 2
    disjoint = _result([1], ids=["z"], baseline="k_shot")
    row = compare(basic, disjoint).iloc[1]
    assert row["n_paired"] == 0 and math.isnan(row["p_value"])
    assert row["gain"] == pytest.approx(1.0 - 0.25)  # unpaired difference only
    with pytest.raises(ValueError, match="share no item"):
        paired_test(basic, disjoint)
    with pytest.raises((ValueError, TypeError)):  # beartype checks the Literal under pytest
        paired_test(basic, other, test="t-test")


def test_reference_is_per_model_task_and_language():
    runs = [
        _result([1, 0]),
        _result([1, 1], vector=VEC),
        _result([0, 0], lang="th"),
        _result([1, 1], lang="th", vector=VEC),
        _result([1, 1], task="mgsm"),
        _result([0, 1], lang="ta", baseline="xlt"),  # no basic run for ta
    ]
    table = compare(runs)  # an iterable of results works too
    assert list(table["reference"].fillna("-")) == ["basic"] * 5 + ["-"]
    assert list(table["gain"].round(2).fillna(-9)) == [0.0, 0.5, 0.0, 1.0, 0.0, -9]
    wide = pivot(table, columns="lang")
    assert list(wide.columns) == ["sw", "th", "ta", "mean"]
    assert wide.loc[("xcopa", "basic+mean_diff@L6 a=1"), "th"] == 1.0
    assert list(table["row"]) == ["basic", "basic+mean_diff"] * 2 + ["basic", "xlt"]
    steered = table[table["steered"]].index
    table.loc[steered[1], "method"] = "basic+mean_diff@L3 a=2"  # th's own layer and strength
    assert len(pivot(table)) == 5
    by_row = pivot(table, rows="row")
    assert list(by_row.loc[("xcopa", "basic+mean_diff")].iloc[:2]) == [1.0, 1.0]
    with pytest.raises(ValueError, match="2 runs share the cell"):
        pivot(pd.concat([table, table.iloc[:1]]))
    by_task = pivot(table, columns="task", values="accuracy")
    assert "mgsm" in by_task.columns
    with pytest.raises((ValueError, TypeError)):
        pivot(table, columns="method")
    with pytest.raises(ValueError, match="at least one"):
        compare()
    with pytest.raises(TypeError):
        compare(3)


def test_forcing_rows_carry_language_shares():
    items = tuple(
        ItemResult(f"f{i}", "p", "en", code, code == "en", "out")
        for i, code in enumerate(["en", "sw", "sw", "und"])
    )
    r = EvalResult("forcing", "sw", "m", "basic", items)
    row = compare(r).iloc[0]
    assert (row["share_en"], row["share_lang"], row["share_und"]) == (0.25, 0.5, 0.25)


def test_result_json_round_trip_and_validation(tmp_path):
    r = _result([1, 0, 1], vector=VEC, alpha=2.5)
    path = r.save(tmp_path / "deep" / "r.json")
    assert EvalResult.load(path) == r
    assert EvalResult.from_dict(r.to_dict()).method == r.method
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="not an interp_steer evaluation result"):
        EvalResult.load(tmp_path / "bad.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        EvalResult.load(tmp_path / "broken.json")
    with pytest.raises(ValueError, match="unique"):
        _result([1, 1], ids=["a", "a"])
    with pytest.raises(ValueError, match="unknown task"):
        EvalResult("gsm8k", "de", "m", "basic", ())
    empty = EvalResult("mgsm", "de", "m", "basic", ())
    assert math.isnan(empty.accuracy) and empty.ci == (0.0, 1.0)


def test_to_frame_is_one_row_per_item_and_to_pandas_its_alias():
    r = _result([1, 0, 1], vector=VEC, alpha=2.5)
    frame = r.to_frame()
    assert list(frame.columns) == [
        "id", "prompt", "gold", "parsed", "correct", "output", "scores",
        "task", "lang", "model", "baseline", "method", "alpha",
    ]  # fmt: skip
    assert list(frame["id"]) == [i.id for i in r.items]
    assert list(frame["correct"]) == [True, False, True]
    assert set(frame["method"]) == {"basic+mean_diff@L6 a=2.5"} and set(frame["alpha"]) == {2.5}
    assert [list(s) for s in frame["scores"]] == [[-1.0, -2.0]] * 3
    assert EvalResult.to_pandas is EvalResult.to_frame
    pd.testing.assert_frame_equal(r.to_pandas(), frame)


def test_result_saves_as_parquet_like_every_other_result(tmp_path):
    r = _result([1, 0, 1], vector=VEC, alpha=2.5)
    path = r.save(tmp_path / "r.parquet")
    assert EvalResult.load(path) == r
    table = pd.read_parquet(path)
    assert list(table["id"]) == [i.id for i in r.items] and list(table["correct"]) == [1, 0, 1]
