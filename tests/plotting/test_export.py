"""Saving figures: HTML files share one plotly.min.js; the report stays self-contained."""

import plotly.graph_objects as go
import pytest
from jaxtyping import TypeCheckError
from plotly.offline import get_plotlyjs

from interp_steer.plotting import Report, Section, export, save_figure, save_figures, write_report


def _fig(i: int) -> go.Figure:
    return go.Figure(go.Scatter(x=[0, 1], y=[i, i + 1]), layout_title_text=f"figure {i}")


def test_figures_of_a_folder_share_one_plotly_js(tmp_path):
    first = save_figure(_fig(1), tmp_path / "figs" / "one.html", png=False)["html"]
    second = save_figure(_fig(2), tmp_path / "figs" / "two", png=False)["html"]
    for page in (first, second):
        html = page.read_text(encoding="utf-8")
        assert page.stat().st_size < 100_000  # not 4.8 MB of plotly.js each
        assert '<script charset="utf-8" src="plotly.min.js"></script>' in html
        assert "Plotly.newPlot" in html and "* plotly.js v" not in html
        assert "http://" not in html and "https://cdn" not in html  # opens offline
    folder = sorted(p.name for p in (tmp_path / "figs").iterdir())
    assert folder == ["one.html", "plotly.min.js", "two.html"]  # one copy, no temp files
    js = tmp_path / "figs" / "plotly.min.js"
    assert js.read_text(encoding="utf-8") == get_plotlyjs()  # the installed plotly's own


def test_plotly_js_is_rewritten_only_when_it_differs(tmp_path):
    js = export.write_plotly_js(tmp_path)
    stamp = js.stat().st_mtime_ns
    save_figure(_fig(1), tmp_path / "a", png=False)
    assert js.stat().st_mtime_ns == stamp  # the same library: left alone
    js.write_text("/* an old plotly */", encoding="utf-8")
    save_figure(_fig(1), tmp_path / "a", png=False)
    assert js.read_text(encoding="utf-8") == get_plotlyjs()  # another one: replaced


def test_an_inline_figure_is_self_contained(tmp_path):
    out = save_figure(_fig(1), tmp_path / "alone", png=False, plotlyjs="inline")
    html = out["html"].read_text(encoding="utf-8")
    assert len(html) > 1_000_000 and "* plotly.js v" in html and "<script src=" not in html
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alone.html"]
    # Under pytest, jaxtyping checks the Literal annotation before our own validation.
    with pytest.raises((ValueError, TypeCheckError), match="plotlyjs|cdn"):
        save_figure(_fig(1), tmp_path / "x", png=False, plotlyjs="cdn")  # type: ignore[arg-type]
    assert not (tmp_path / "x.html").exists()


def test_save_figures_lists_the_shared_library_and_the_report_inlines_it(tmp_path, monkeypatch):
    monkeypatch.setattr(export, "static_export_available", lambda: False)
    written = save_figures({"a": _fig(1), "b": _fig(2)}, tmp_path / "figures")
    assert [p.name for p in written] == ["a.html", "b.html", "plotly.min.js"]
    assert all(p.is_file() for p in written)
    report = write_report(Report("Run", (Section("Figures", figures=(_fig(1), _fig(2))),)),
                          tmp_path / "report.html")  # fmt: skip
    page = report.read_text(encoding="utf-8")
    assert page.count("* plotly.js v") == 1 and "plotly.min.js" not in page  # self-contained
    assert "<script src=" not in page and page.count("Plotly.newPlot") == 2
