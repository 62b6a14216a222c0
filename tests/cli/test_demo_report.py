"""The demo report and the sweep command lead with the held-out test result, then selection."""

import numpy as np
import pytest

from interp_steer.analysis import SweepResult
from interp_steer.cli import main
from interp_steer.cli.demo import FAST, sweep_report
from interp_steer.plotting.report import Report, render_report


def _sweep(gain: tuple[float, float, float] | None, p: float = 0.5) -> SweepResult:
    """Italian, one cell (layer 6, ratio 0.5) selected with +0.094 on val; ``gain`` on test."""
    grid = np.full((1, 1, 1), 0.594)
    test = np.full((1, 3), np.nan) if gain is None else np.array([[0.5 + gain[0], 0.4, 0.7]])
    return SweepResult(
        "m", "xcopa accuracy", "mean_diff", ("it",), (6,), (0.5,), True, grid * 0 + 4.0, grid,
        grid - 0.1, grid + 0.1, np.array([[0.5, 0.4, 0.6]]), test, np.array([[0.5, 0.4, 0.6]]),
        "xcopa val split",
        test_gain=np.full((1, 3), np.nan) if gain is None else np.array([gain]),
        test_p=np.array([p]), test_n=np.array([60.0]),
        testing="" if gain is None else "xcopa test split, first 60 items",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("gain", "sentence"),
    [
        ((0.1, 0.02, 0.18), "Steering raised accuracy on held-out items: +0.100"),
        ((-0.083, -0.15, -0.02), "Steering lowered accuracy here: -0.083 on 60 held-out items"),
        ((-0.083, -0.2, 0.03), "Steering lowered accuracy here: -0.083 on 60 held-out items"),
        ((0.031, -0.05, 0.11), "No reliable change on held-out items (the interval includes 0)"),
        (None, "No held-out test split: the selection gain (+0.094)"),
    ],
)
def test_the_report_says_what_the_test_numbers_mean(gain, sentence):
    section = sweep_report(_sweep(gain), FAST)
    (lead,) = section.lead
    assert lead.startswith(f"Italian (it): {sentence}")
    page = render_report(Report("Demo", (section,)))
    # the sentence, then the table with the test columns, then how it was made
    order = [page.index(x) for x in ("<p class='lead'>Italian (it): " + sentence[:20],
             "<th>test_gain</th>", "<th>select_gain</th>", "Mean-difference vectors")]  # fmt: skip
    assert order == sorted(order)
    table = section.lead_tables[0]
    assert list(table.columns[4:8]) == ["test_gain", "test_ci_low", "test_ci_high", "test_p_value"]
    if gain is not None:
        assert table["test_gain"].tolist() == [gain[0]] and "over unsteered on 60" in lead
        assert lead.index("over unsteered") < lead.index("selected on xcopa val split: +0.094")


def test_the_sweep_command_prints_the_test_result_first(capsys, tmp_path):
    args = ["sweep", "--model", "tiny", "--langs", "sw", "--layers", "1", "--ratios", "0.25",
            "--n", "4", "--n-fit", "4", "--out", tmp_path]  # fmt: skip
    assert main([str(a) for a in args]) == 0
    err = capsys.readouterr().err
    (line,) = [x for x in err.splitlines() if x.startswith("sw: ")]
    assert line.startswith("sw: layer 1, ratio 0.25 (alpha ")
    assert "over unsteered on 4 held-out items (xcopa test split); selected on xcopa val" in line
    assert "(95% CI " in line and ", p=" in line
    verdict = err.splitlines()[err.splitlines().index(line) + 1].strip()
    assert verdict.startswith(("Steering raised", "Steering lowered", "No reliable change"))
    header = (tmp_path / "sweep.csv").read_text().splitlines()[0]
    assert header.startswith("lang,layer,strength,alpha,selected,test_gain,test_ci_low,")
    res = SweepResult.load(tmp_path / "sweep.json")
    assert res.test_n[0] == 4 and np.isfinite(res.test_gain[0]).all()
