"""The self-contained HTML report."""

import pandas as pd
import plotly.graph_objects as go

from interp_steer.plotting import Report, Section, write_report
from interp_steer.plotting.report import render_report


def test_report_inlines_plotly_once_and_embeds_every_figure(tmp_path):
    figs = tuple(
        go.Figure(go.Scatter(x=[0, 1], y=[i, i + 1]), layout_title_text=f"fig {i}")
        for i in range(3)
    )
    table = pd.DataFrame({"method": ["basic", "mean_diff"], "accuracy": [0.5, 0.625]})
    report = Report(
        "Run", (Section("Figures", note="a & b", figures=figs), Section("Table", tables=(table,)))
    )
    path = write_report(report, tmp_path / "report.html")
    page = path.read_text("utf-8")
    assert page.count("Plotly.newPlot") == 3
    assert page.count("plotly.js v") == 1, "plotly.js must be inlined exactly once"
    assert "<script src=" not in page, "no script may load from the network"
    assert "a &amp; b" in page and "mean_diff" in page and "0.625" in page
    assert render_report(report).count("<h2>") == 2


def test_a_section_leads_with_what_it_found():
    fig = go.Figure(go.Scatter(x=[0], y=[1]), layout_title_text="the curve")
    lead = pd.DataFrame({"test_gain": [-0.08], "test_p_value": [0.00002]})
    section = Section("Sweep", note="how it was made", figures=(fig,),
                      tables=(pd.DataFrame({"select_gain": [0.094]}),),
                      lead=("Steering lowered accuracy here.",), lead_tables=(lead,))  # fmt: skip
    page = render_report(Report("Run", (section,)))
    order = [page.index(x) for x in ("<h2>Sweep</h2>", "<p class='lead'>Steering lowered",
             "test_gain", "how it was made", "Plotly.newPlot", "select_gain")]  # fmt: skip
    assert order == sorted(order)
    assert "2.0e-05" in page and "0.000</td>" not in page  # a small p-value is not shown as 0
