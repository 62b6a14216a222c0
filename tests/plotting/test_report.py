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
