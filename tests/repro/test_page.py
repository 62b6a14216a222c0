"""The results page's computed sentences: transfer summary, floor wording, gains pairing."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from interp_steer.analysis import HyperSelection, SweepResult, TransferResult
from repro.page import write_results
from repro.page_generation import (
    bipo_alpha_text,
    bipo_defaults_text,
    comparison_phrase,
    default_text,
    generation_findings,
    generation_section,
    kl_table,
    pairing_text,
    transfer_lines,
)
from repro.page_xcopa import xcopa_findings
from repro.tables import gains_table, kl_tests, main_table, paired_difference

LANGS = ("de", "es", "fr", "ja", "zh")


def _transfer(gain: np.ndarray) -> TransferResult:
    base = np.tile([[-1.0, -1.1, -0.9]], (len(LANGS), 1))
    score = gain + base[None, :, 0]
    return TransferResult("m", "-KL", "mean_diff", LANGS, LANGS, 6, 0.1, True,
                          np.ones(len(LANGS)), score, score - 0.1, score + 0.1, base,
                          np.full(len(LANGS), np.nan), "eval")  # fmt: skip


def test_transfer_lines_report_diagonal_off_diagonal_and_named_pairs():
    gain = np.full((5, 5), -0.2)
    np.fill_diagonal(gain, 0.5)
    gain[LANGS.index("es"), LANGS.index("fr")] = 0.3
    gain[LANGS.index("ja"), LANGS.index("zh")] = 0.4
    first, named = transfer_lines(_transfer(gain))
    off = (0.3 + 0.4 - 0.2 * 18) / 20
    assert first.startswith("own language +0.500 nats removed on average")
    assert f"another language {off:+.3f} (2 of 20 off-diagonal cells" in first
    assert "es→fr +0.300" in named and "ja→zh +0.400" in named and "fr→es -0.200" in named


def _runs(task_acc: dict[str, float]) -> pd.DataFrame:
    rows = []
    for lang in ("de", "fr"):
        for row, acc in task_acc.items():
            rows.append({"task": "msvamp", "lang": lang, "row": row, "accuracy": acc, "n": 16,
                         "alpha": None, "layer": "–", "gain": acc - task_acc["basic"],
                         "p_value": 1.0 if row != "basic" else np.nan})  # fmt: skip
    return pd.DataFrame(rows)


def _sweep() -> SweepResult:
    score = np.array([[[-0.5, -0.9]], [[-0.2, -0.8]]])
    return SweepResult("m", "-KL", "mean_diff", ("de", "fr"), (6,), (0.05, 0.1), True,
                       np.ones_like(score), score, score - 0.1, score + 0.1,
                       np.array([[-0.6, -0.7, -0.5], [-0.1, -0.2, 0.0]]),
                       np.full((2, 3), np.nan), np.full((2, 3), np.nan), "held out")  # fmt: skip


def test_findings_call_a_task_at_the_floor_only_when_english_is_low():
    gain, rows = np.zeros((5, 5)), ("basic", "translate_test", "mean_diff")
    low_runs = _runs({"basic": 2.0, "translate_test": 6.0, "mean_diff": 2.0})
    low = generation_findings(low_runs, _sweep(), _transfer(gain), rows, {})
    assert "Even in English (`translate_test`) the model solves 6.0%" in low
    high_runs = _runs({"basic": 20.0, "translate_test": 45.0, "mean_diff": 25.0})
    high = generation_findings(high_runs, _sweep(), _transfer(gain), rows, {})
    assert "floor" not in high and "English headroom is +25.0 points" in high
    # KL: 0.35 unsteered on average; the selected cells -0.5 (de) and -0.2 (fr)
    assert "goes from 0.350 nats unsteered to 0.350 at the selected cells" in high
    assert "1 of 2 languages closer" in high


def test_findings_list_every_row_and_the_trained_vectors_norms():
    acc = {"basic": 2.0, "translate_test": 6.0, "xlt": 8.0, "mse": 2.0, "bipo": 2.0,
           "sft": 10.0}  # fmt: skip
    rows = tuple(acc)
    runs = _runs(acc)
    runs.loc[(runs["row"] == "sft") & (runs["lang"] == "de"), "p_value"] = 0.01
    runs.loc[(runs["row"] == "bipo") & (runs["lang"] == "fr"), "gain"] = -6.25
    trained = {"mse": (1e-6, 1.2e-5), "bipo": (3e-6, 0.014)}
    text = generation_findings(runs, _sweep(), _transfer(np.zeros((5, 5))), rows, trained)
    first = text.splitlines()[0]
    assert first.startswith("- **MSVAMP.** `basic` 2.0%, `translate_test` 6.0%, `xlt` 8.0%, ")
    assert "`sft` 10.0% (mean over 2 languages, 16 items each)" in first
    assert "1 of 6 steered runs and 0 of 4 prompting-baseline runs differ" in first
    assert "- **`mse` as trained** (α = 1) has ‖v‖/‖h‖ from 1.0e-06 to 1.2e-05 over " in text
    assert "- **`bipo` as trained** (α = 1) has ‖v‖/‖h‖ from 3.0e-06 to 1.4e-02 over " in text
    assert "its largest change from `basic` in any cell is +0 points (msvamp, de)." in text
    assert "its largest change from `basic` in any cell is -6 points (msvamp, fr)." in text


def test_main_and_gains_tables_follow_the_row_order():
    runs = _runs({"basic": 2.0, "translate_test": 6.0, "mean_diff": 4.0})
    table = main_table(runs, ("basic", "translate_test", "mean_diff"))
    assert list(table["method"]) == ["basic", "translate_test", "mean_diff"]
    assert list(table.columns) == ["method", "de", "fr", "mean"]
    gains = gains_table(runs, ("basic", "mean_diff", "translate_test"))
    assert list(gains["method"]) == ["mean_diff", "mean_diff", "translate_test", "translate_test"]
    assert list(gains["gain"]) == [2.0, 2.0, 4.0, 4.0]


def test_kl_table_reads_gen_kl_as_positive_nats_with_a_mean_row(tmp_path):
    assert kl_table(tmp_path) is None
    cell = lambda *kl: {"kl": list(kl), "alpha": 1.0}  # noqa: E731
    data = {"settings": {"model": "m"},
            "de": {"basic": cell(0.1, 0.3), "mean_diff": cell(0.1)},
            "fr": {"basic": cell(0.4), "mean_diff": cell(0.5, 0.5, 0.5)}}  # fmt: skip
    (tmp_path / "gen_kl.json").write_text(json.dumps(data), encoding="utf-8")
    table = kl_table(tmp_path)
    assert list(table["lang"]) == ["de", "fr", "mean"]
    np.testing.assert_allclose(table["basic"], [0.2, 0.4, 0.3])
    np.testing.assert_allclose(table["mean_diff"], [0.1, 0.5, 0.3])


def test_bipo_defaults_text_tests_each_language_against_unsteered_and_mean_diff(tmp_path):
    cells = {"de": {"basic": [1.0] * 8, "mean_diff": [0.75] * 8}, "fr": {"basic": [1.0] * 8}}
    assert bipo_defaults_text(tmp_path, cells) == ""  # no file yet
    data = {"settings": {"hyper": {"lr": 1e-3, "lr_scale": "coord", "epochs": 1,
                                   "warmup_steps": 100, "batch_size": 1}},
            "de": {"kl": [0.5] * 8, "norm_ratio": 0.012},  # closer on all 8 pairs
            "fr": {"kl": [1.5, 0.5] * 4, "norm_ratio": 0.007}}  # fmt: skip
    path = tmp_path / "gen_bipo_defaults.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    text = bipo_defaults_text(tmp_path, cells)
    assert text.startswith("### BiPO with the library's defaults")
    assert "`lr` 0.001 × each coordinate's spread, 1 epoch(s), 100 warm-up steps, batch 1)" in text
    assert "below unsteered in 1 of 2 languages, significantly in 1;" in text
    assert "‖v‖/‖h‖ is 0.0070 to 0.0120." in text
    assert "closer to English in 1 of 1." in text  # fr has no mean_diff cells: not compared
    assert "| p_value | mean_diff | bipo − mean_diff | 95% CI (vs mean_diff) |" in text
    rows = [[c.strip() for c in r.strip("|").split("|")] for r in text.splitlines()
            if r.startswith(("| de", "| fr"))]  # fmt: skip
    assert rows[0][5:7] == ["8/8", "0.008"]  # lower, p (sign test: 2/2^8)
    assert rows[0][7:9] == ["0.750", "-0.250"]  # 0.5 against mean_diff's 0.75
    assert rows[1][5] == "4/8"
    assert bipo_defaults_text(tmp_path, {"ja": {"basic": [1.0]}}) == ""  # no shared language
    del data["settings"]["hyper"]["lr_scale"]  # a file from before lr_scale: the rate was × ‖h‖
    path.write_text(json.dumps(data), encoding="utf-8")
    assert "`lr` 0.001 × ‖h‖, 1 epoch(s)" in bipo_defaults_text(tmp_path, cells)


def _lr_selection(lang, kls, unsteered, lrs=(1e-3, 1e-2), name="lr"):
    """A saved-able selection over ``name`` whose selection KLs are ``kls`` (test KL: 2×)."""
    select = np.array([[-k, -k - 0.1, -k + 0.1] for k in kls])
    return HyperSelection(
        model="m", method="bipo", lang=lang, layer=4, metric="-KL", names=(name,),
        points=tuple({name: x} for x in lrs), relative=False, strength=np.ones(len(lrs)),
        alpha=np.ones(len(lrs)), select=select, test=2 * select,
        baseline=np.array([-unsteered] * 3), test_baseline=np.array([-2 * unsteered] * 3),
        chosen=int(np.argmin(kls)), selection="train 400..463",
        meta={"fit": {"n": 400}, "points": [{"vector_norm": 10.0 * (i + 1),
                                            "fit_metrics": {"resid_norm": 1000.0}}
                                           for i in range(len(lrs))]},
    )  # fmt: skip


def test_default_text_chooses_one_rate_for_all_languages(tmp_path):
    folder = tmp_path / "gen_bipo_default_lr"
    assert default_text(tmp_path, ("sw", "fr")) == ""  # nothing run yet
    folder.mkdir()
    # sw alone prefers 1e-2 (0.5 → 0.4 of 1.0), fr 1e-3 (0.05 → 0.1 of 0.1): relative to
    # unsteered fr's loss outweighs sw's gain although its KL is ten times smaller
    _lr_selection("sw", [0.5, 0.4], 1.0).save(folder / "sw.json")
    _lr_selection("fr", [0.05, 0.1], 0.1).save(folder / "fr.json")
    text = default_text(tmp_path, ("sw", "fr", "de"))
    assert text.startswith("### BiPO's default learning rate (compared on held-out pairs)")
    assert "(layer sw 4, fr 4)" not in text and "(sw 4, fr 4)" in text
    assert "one epoch over the first 400 `train` pairs; `lr` × each coordinate's spread" in text
    assert "alone, each language would choose: sw 0.01, fr 0.001)" in text
    assert "The rate chosen here is the library's default (`lr` 0.001)." in text
    assert (
        "mean relative selection KL is 0.500, against 0.700 for the next best (`lr` 0.01)." in text
    )
    assert "smallest `lr` tried" in text and "Not run yet in de: the choice may change." in text
    rows = [[c.strip() for c in r.strip("|").split("|")] for r in text.splitlines()
            if r.startswith("| 0.0")]  # fmt: skip
    assert rows[0] == ["0.001", "0.500", "0.050", "0.500", "0.500", "0.500", "0.010", "0.010", "✓"]
    assert rows[1] == ["0.01", "0.400", "0.100", "0.700", "1.000", "0.700", "0.020", "0.020", ""]
    assert "above" not in text
    _lr_selection("de", [0.1, 0.1, 0.1], 0.1, lrs=(1e-3, 1e-2, 3e-2)).save(folder / "de.json")
    with pytest.raises(ValueError, match="must share one grid of lr"):
        default_text(tmp_path, ("sw", "fr", "de"))
    # 1e-2 has the lower mean (0.1 and 1.02 of unsteered: 0.56 against 0.7), but takes fr
    # above unsteered: a default must leave every language below
    (folder / "de.json").unlink()
    _lr_selection("sw", [0.9, 0.1], 1.0).save(folder / "sw.json")
    _lr_selection("fr", [0.05, 0.102], 0.1).save(folder / "fr.json")
    text = default_text(tmp_path, ("sw", "fr"))
    assert "The rate chosen here is the library's default (`lr` 0.001)." in text
    assert "0.700; `lr` 0.01 has a lower mean (0.560) but leaves fr above unsteered." in text
    assert "largest" not in text and "smallest `lr` tried" in text
    _lr_selection("fr", [0.05, 0.1], 0.1).save(folder / "fr.json")  # at unsteered: not below
    text = default_text(tmp_path, ("sw", "fr"))
    assert "`lr` 0.01 has a lower mean (0.550) but leaves fr above unsteered." in text
    _lr_selection("de", [0.12, 0.5], 0.1).save(folder / "de.json")  # above at both rates
    text = default_text(tmp_path, ("sw", "fr", "de"))
    assert "(`lr` 0.001). Its mean" in text
    assert "No rate tried leaves every language below unsteered; at this one de is above." in text


def test_default_text_chooses_the_number_of_epochs(tmp_path):
    folder = tmp_path / "gen_bipo_default_epochs"
    folder.mkdir()
    # two epochs: sw closer to English (0.6 → 0.5 of 1.0), de no further (0.05 → 0.05)
    _lr_selection("sw", [0.6, 0.5], 1.0, lrs=(1, 2), name="epochs").save(folder / "sw.json")
    _lr_selection("de", [0.05, 0.05], 0.1, lrs=(1, 2), name="epochs").save(folder / "de.json")
    text = default_text(tmp_path, ("sw", "de"), "epochs")
    assert text.startswith("### BiPO's default number of epochs (compared on held-out pairs)")
    assert "(`lr` 0.001 × each coordinate's spread, over the first 400 `train` pairs" in text
    assert "The number chosen here is 2, not the library's default (`epochs` 1)." in text
    assert "against 0.550 for the next best (`epochs` 1)." in text
    assert "| epochs | select: sw | select: de |" in text
    assert "test pairs at this" not in text
    _lr_selection("de", [0.05, 0.04], 0.1, lrs=(1, 2), name="epochs").save(folder / "de.json")
    sel = HyperSelection.load(folder / "de.json")  # de's test KL at 2 epochs: 0.25 > 0.2
    test = sel.test.copy()
    test[1] = [-0.25, -0.3, -0.2]
    dataclasses.replace(sel, test=test).save(folder / "de.json")
    text = default_text(tmp_path, ("sw", "de"), "epochs")
    assert "On the test pairs at this number, above unsteered: de (0.250 against 0.200" in text
    assert "largest `epochs` tried: a larger one might do better still." in text
    _lr_selection("de", [0.05, 0.11], 0.1, lrs=(1, 2), name="epochs").save(folder / "de.json")
    text = default_text(tmp_path, ("sw", "de"), "epochs")  # de above unsteered at 2
    assert "is the library's default (`epochs` 1)." in text and "tried" not in text


def test_bipo_alpha_text_counts_languages_below_unsteered_and_long_enough(tmp_path):
    cells = {"de": {"basic": [1.0] * 8}, "fr": {"basic": [1.0] * 8}}
    assert bipo_alpha_text(tmp_path, cells) == ""  # no file yet
    data = {"settings": {"alphas": [0.5, 1.0], "select": "msvamp train pairs 400..463"},
            # de: α = 0.5 wins the selection and, at 0.5 × 0.012 = 0.006, is long enough
            "de": {"select": [0.4, 0.6], "select_unsteered": 0.9, "alpha": 0.5,
                   "kl": [0.5] * 8, "norm_ratio": 0.012},
            # fr: α = 0.5 wins but 0.5 × 0.008 = 0.004 is below the floor; never closer
            "fr": {"select": [0.3, 0.3], "select_unsteered": 0.2, "alpha": 0.5,
                   "kl": [1.5] * 8, "norm_ratio": 0.008}}  # fmt: skip
    (tmp_path / "gen_bipo_alpha.json").write_text(json.dumps(data), encoding="utf-8")
    text = bipo_alpha_text(tmp_path, cells)
    assert text.startswith("### BiPO's default vector around α = 1")
    assert "at α = 0.5, 1, scored on the selection pairs (msvamp train pairs 400..463)" in text
    assert ("below unsteered in 1 of 2 languages, and ‖αv‖/‖h‖ ≥ 0.005 (the length the "
            "issue asks of a vector that learned) holds in 1; both hold in 1.") in text  # fmt: skip
    header = [c.strip() for c in text.split("\n| lang")[1].split("\n")[0].strip("|").split("|")]
    assert header[:5] == ["", "select: unsteered", "select: α=0.5", "select: α=1", "α"]
    rows = [[c.strip() for c in r.strip("|").split("|")] for r in text.splitlines()
            if r.startswith(("| de", "| fr"))]  # fmt: skip
    assert rows[0][4:7] == ["0.5", "0.006", "1.000"]  # α, ‖αv‖/‖h‖, test unsteered
    assert rows[1][5] == "0.004" and rows[1][9] == "0/8"
    assert bipo_alpha_text(tmp_path, {"ja": {"basic": [1.0]}}) == ""  # no shared language


def test_findings_name_the_methods_further_from_english_than_unsteered():
    runs, rows = _runs({"basic": 2.0, "mean_diff": 2.0}), ("basic", "mean_diff")
    kl = pd.DataFrame({"lang": ["de", "fr", "mean"], "basic": [0.3, 0.3, 0.3],
                       "mean_diff": [0.1, 0.3, 0.2], "bipo": [0.2, 3.6, 1.9]})  # fmt: skip
    text = generation_findings(runs, _sweep(), _transfer(np.zeros((5, 5))), rows, {}, kl)
    line = next(x for x in text.splitlines() if "Methods on held-out pairs" in x)
    assert "0.300 nats unsteered, `mean_diff` 0.200, `bipo` 1.900; lowest: `mean_diff`." in line
    assert "Below unsteered in `mean_diff` 1 of 2, `bipo` 1 of 2 languages." in line
    assert line.endswith("Further from English than unsteered: `bipo`.")
    closer = kl.drop(columns="bipo")
    text = generation_findings(runs, _sweep(), _transfer(np.zeros((5, 5))), rows, {}, closer)
    assert "Further" not in text


def test_xcopa_findings_name_the_best_steering_row_only_when_it_beats_basic():
    levels = pd.DataFrame({"level": ["high", "mid", "low"], "m": [0.6, 0.5, 0.3]})
    rows = ("basic", "translate_test", "mean_diff", "mse")
    lose = _runs({"basic": 52.0, "translate_test": 62.0, "mean_diff": 48.5, "mse": 52.0})
    text = xcopa_findings(lose, rows, levels, {})
    assert "No steering row beats `basic` on average (`mean_diff` -3.5, `mse` +0.0 points)" in text
    assert "best steering row" not in text
    win = _runs({"basic": 52.0, "translate_test": 62.0, "mean_diff": 55.0, "mse": 52.0})
    text = xcopa_findings(win, rows, levels, {})
    assert "The best steering row on average is `mean_diff` at 55.0% (+3.0 points" in text


def test_paired_kl_tests_per_language_and_pooled():
    rng = np.random.default_rng(0)
    base = {x: rng.uniform(0.5, 1.5, 40) for x in ("de", "fr")}
    kl = {
        "de": {"basic": base["de"], "mean_diff": base["de"] - 0.2, "bipo": base["de"] - 0.3},
        "fr": {"basic": base["fr"], "mean_diff": base["fr"] - 0.2, "bipo": base["fr"] + 0.1},
    }
    tests = kl_tests(kl).set_index(["row", "vs", "lang"])
    # no sft rows: only the bipo comparisons, each per language and pooled
    assert list(tests.index) == [
        (row, vs, lang) for row, vs in (("bipo", "basic"), ("bipo", "mean_diff"))
        for lang in ("de", "fr", "pooled")
    ]  # fmt: skip
    np.testing.assert_allclose(tests.loc[("bipo", "mean_diff", "de"), "diff (nats)"], -0.1)
    np.testing.assert_allclose(tests.loc[("bipo", "mean_diff", "fr"), "diff (nats)"], 0.3)
    np.testing.assert_allclose(tests.loc[("bipo", "basic", "pooled"), "diff (nats)"], -0.1)
    assert tests.loc[("bipo", "basic", "pooled"), "n"] == 80
    assert tests.loc[("bipo", "basic", "de"), "lower"] == "40/40"
    assert tests.loc[("bipo", "basic", "de"), "p_value"] < 1e-10
    # pooled: 40 lower, 40 higher -> the sign test finds nothing
    assert tests.loc[("bipo", "basic", "pooled"), "p_value"] == 1.0
    low, high = (
        float(x) for x in tests.loc[("bipo", "basic", "pooled"), "95% CI"][1:-1].split(",")
    )
    assert low <= -0.1 <= high
    text = comparison_phrase(tests.reset_index(), "bipo", "mean_diff")
    assert text.startswith("`bipo` − `mean_diff`: +0.100 nats pooled [")
    assert text.endswith("significantly closer to English in 1 and further in 1 of 2 languages")


def test_paired_difference_refuses_empty_groups():
    with pytest.raises(ValueError, match="at least one pair in every group"):
        paired_difference([(np.array([]), np.array([]))])


def _pairing(lang: str, select: list[float], test: list[float], norms: list[float]):
    """A saved-like pairing selection: KLs (unsteered first) and vector norms (‖h‖ 1000)."""
    return HyperSelection(
        "m", "bipo", lang, 4, "-KL", ("pairing",),
        ({"pairing": "copy"}, {"pairing": "continuation"}),
        False, np.ones(2), np.ones(2), -np.repeat(np.array(select[1:])[:, None], 3, 1),
        -np.repeat(np.array(test[1:])[:, None], 3, 1), -np.full(3, select[0]),
        -np.full(3, test[0]), int(np.argmin(select[1:])), "sel pairs", "test pairs",
        {"fit": {"n": 8}, "points": [{"vector_norm": x, "fit_metrics": {"resid_norm": 1000.0}}
                                     for x in norms]},
    )  # fmt: skip


def test_pairing_text_reports_lengths_mean_and_median(tmp_path):
    _pairing("de", [0.1, 0.08, 0.09], [0.2, 0.1, 0.3], [6.0, 7.0]).save(tmp_path / "de.json")
    _pairing("es", [0.1, 0.2, 9.0], [0.2, 0.3, 9.0], [10.0, 40.0]).save(tmp_path / "es.json")
    _pairing("fr", [0.1, 0.3, 0.2], [0.2, 0.1, 0.15], [8.0, 12.0]).save(tmp_path / "fr.json")
    text = pairing_text(tmp_path)
    rows = {  # a table row's cells after the first, joined by one space
        cells[0]: " ".join(cells[1:]).strip()
        for line in text.splitlines()
        if line.startswith("| ") and (cells := [c.strip() for c in line.strip("|").split("|")])
    }
    assert rows["lang"].endswith("‖v‖/‖h‖: copy ‖v‖/‖h‖: continuation chosen")
    assert rows["de"] == "4 0.100 0.080 0.090 0.200 0.100 0.300 0.006 0.007 copy"
    assert rows["fr"].endswith("0.200 0.100 0.150 0.008 0.012 continuation")
    # the mean is pulled up by es's 9-nat overshoot, the median is not
    assert rows["mean"] == "0.100 0.193 3.097 0.200 0.167 3.150 0.008 0.020"
    assert rows["median"] == "0.100 0.200 0.200 0.200 0.100 0.300 0.008 0.012"
    assert "`copy` wins the selection in 2 and is below unsteered on the test pairs in 2" in text
    assert "`continuation` wins the selection in 1 and is below unsteered on the test" in text
    assert pairing_text(tmp_path / "none") == ""


def test_generation_section_before_its_test_rows_shows_what_has_run(tmp_path):
    img = lambda name: f"![{name}](figures/{name}.png)"  # noqa: E731
    cfg = {"n_gen_fit": 400, "n_gen_select": 64, "n_gen_kl": 2,
           "gen_kl_methods": ["mean_diff", "sft"]}  # fmt: skip
    assert generation_section(tmp_path, img, ("mean_diff",), cfg) == ("", {})  # nothing ran
    shape, nan = (2, 2, 1), np.full((2, 3), np.nan)
    score = np.array([-0.3, -0.2, -0.1, -0.4]).reshape(shape)  # de: layer 8; fr: layer 8
    SweepResult("m", "-KL", "mean_diff", ("de", "fr"), (4, 8), (0.05,), True,
                np.ones(shape), score, score - 0.1, score + 0.1, np.full((2, 3), -0.5),
                nan, nan, "held-out train pairs", {}).save(tmp_path / "gen_sweep.json")  # fmt: skip
    text, figs = generation_section(tmp_path, img, ("mean_diff",), cfg)
    head = "## Generation tasks: MSVAMP-fitted vectors, 2 languages\n\n"
    assert text.startswith(head + "**Not complete in this run folder.** The test rows")
    assert "items 500–899" in text and "items\n900–963" in text
    selection = text.split("### Layer and strength selection")[1]
    rows = [r for r in selection.splitlines() if r.startswith(("| de", "| fr"))]
    assert [r.split(" | ")[1] for r in rows] == ["8", "4"]  # the best layer of each
    assert img("results_gen_sweep") in selection and set(figs) == {"results_gen_sweep"}
    assert "EnglishKL (MSVAMP `eval` pairs)" not in text  # gen_kl has not run
    assert "scale-aware" not in text  # nor have BiPO's selections: no bipo note
    cell = lambda *kl: {"kl": list(kl), "alpha": 1.0}  # noqa: E731
    data = {
        "settings": {"model": "m"},
        "de": {"basic": cell(0.4, 0.6), "mean_diff": cell(0.1, 0.3), "sft": cell(0.5, 0.7)},
        "fr": {"basic": cell(0.2, 0.2), "mean_diff": cell(0.1, 0.1), "sft": cell(0.1, 0.1)},
    }
    (tmp_path / "gen_kl.json").write_text(json.dumps(data), encoding="utf-8")  # fmt: skip
    text, _ = generation_section(tmp_path, img, ("mean_diff",), cfg)
    assert ("- **Methods on held-out pairs.** Mean KL to English on MSVAMP `eval` pairs: "
            "0.350 nats unsteered, `mean_diff` 0.150, `sft` 0.350; lowest: `mean_diff`. "
            "Below unsteered in `mean_diff` 2 of 2, `sft` 1 of 2 languages.") in text  # fmt: skip
    assert "- **Pair by pair** (KL, sign test p < 0.05). `sft` − `mean_diff`" in text
    kl = text.split("### Every method by EnglishKL (MSVAMP `eval` pairs)")[1].split("###")[0]
    assert "| lang | basic | mean_diff | sft |" in kl and "| sft | mean_diff | pooled | 4 |" in kl
    assert "`sft` is a LoRA fine-tune" in text
    assert kl.endswith("|\n\n")  # a blank line between the table and the next heading
    # on the page: the banner calls the part incomplete, not missing
    study = {"config": {**cfg, "n_test": 10}, "model": "m", "cpu_count": 2, "timings_s": {}}
    (tmp_path / "study.json").write_text(json.dumps(study), encoding="utf-8")
    page = write_results(tmp_path, page=tmp_path / "docs" / "results.md",
                         figures=tmp_path / "page_figures").read_text(encoding="utf-8")  # fmt: skip
    assert ("has not run every stage yet: XCOPA, Latent language, Language forcing are missing "
            "below and Generation tasks is incomplete (each says so)") in page  # fmt: skip
    assert text.split("![results_gen_sweep]")[0] in page  # the section, its figure linked
    assert "![results_gen_sweep](../page_figures/results_gen_sweep.png)" in page
