"""A single self-contained HTML report: figures (plotly.js inlined once) and tables."""

import html
import math
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from interp_steer.storage import atomic_write_text

_STYLE = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.5; }
h1 { font-weight: 600; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: right; }
th { background: #f5f5f5; } td:first-child, th:first-child { text-align: left; }
.note { color: #555; } .figure { margin: 1em 0 2em; }
.lead { font-size: 1.05em; }
"""


@dataclass(frozen=True)
class Section:
    """One section of a report: a heading, what it found, a note, figures and tables.

    Attributes:
        title: The heading.
        note: How the numbers were made (shown after the lead, in grey).
        figures: Figures, in order.
        tables: Tables, after the figures.
        lead: What the section found, in plain words: one paragraph per entry, shown
            first, right under the heading (e.g. the held-out test result of a sweep).
        lead_tables: Tables shown with the lead, before the note and the figures.
    """

    title: str
    note: str = ""
    figures: tuple[go.Figure, ...] = ()
    tables: tuple[pd.DataFrame, ...] = ()
    lead: tuple[str, ...] = ()
    lead_tables: tuple[pd.DataFrame, ...] = ()


@dataclass(frozen=True)
class Report:
    """A titled list of sections, written by :func:`write_report`."""

    title: str
    sections: tuple[Section, ...] = ()
    footer: str = ""
    created: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))


def render_report(report: Report) -> str:
    """Return the report as one HTML string that opens offline (plotly.js inlined once).

    A section shows its lead (paragraphs, then tables) first, then its note, figures and
    tables.

    >>> fig = go.Figure(go.Bar(x=["a"], y=[1]), layout_title_text="bars")
    >>> page = render_report(Report("Demo", (Section("One", figures=(fig,)),)))
    >>> page.count("<h2>"), "<script src=" in page
    (1, False)
    >>> page = render_report(Report("Demo", (Section("Two", "how", lead=("what",)),)))
    >>> page.index("<p class='lead'>what</p>") < page.index("how")
    True
    """
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(report.title)}</title><style>{_STYLE}</style>",
        "</head><body>",
        f"<h1>{html.escape(report.title)}</h1>",
        f"<p class='note'>Generated {html.escape(report.created)}.</p>",
    ]
    first = True
    for section in report.sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        parts.extend(f"<p class='lead'>{html.escape(text)}</p>" for text in section.lead)
        parts.extend(_table(table) for table in section.lead_tables)
        if section.note:
            parts.append(f"<p class='note'>{html.escape(section.note)}</p>")
        for fig in section.figures:
            div = pio.to_html(fig, full_html=False, include_plotlyjs=first)
            first = False
            parts.append(f"<div class='figure'>{div}</div>")
        parts.extend(_table(table) for table in section.tables)
    if report.footer:
        parts.append(f"<hr><p class='note'>{html.escape(report.footer)}</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _number(x: float) -> str:
    """Three decimals; a small non-zero number (a p-value) in scientific notation, not 0.000."""
    if x == 0 or not math.isfinite(x) or abs(x) >= 0.0005:
        return f"{x:.3f}"
    return f"{x:.1e}"


def _table(table: pd.DataFrame) -> str:
    return str(table.to_html(index=False, float_format=_number, border=0))


def write_report(report: Report, path: str | os.PathLike[str]) -> Path:
    """Write :func:`render_report` to ``path`` atomically and return the path."""
    return atomic_write_text(path, render_report(report))


__all__ = [
    "Report",
    "Section",
    "write_report",
]
