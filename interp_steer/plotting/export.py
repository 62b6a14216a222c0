"""Writing figures: :func:`save_figure` (HTML + PNG/SVG) and :func:`save_figures` (many).

Static images (PNG, SVG) are rendered by kaleido, which drives a Chrome/Chromium
installed on the machine (Debian: ``apt-get install -y chromium``); the HTML needs
nothing but a browser, offline.

Example:
    >>> import plotly.graph_objects as go, tempfile, pathlib
    >>> fig = go.Figure(go.Bar(x=["a", "b"], y=[1, 2]))
    >>> out = save_figure(fig, pathlib.Path(tempfile.mkdtemp()) / "bars", png=False)
    >>> sorted(p.suffix for p in out.values())
    ['.html']
"""

import atexit
import os
import shutil
import sys
import threading
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio

from interp_steer.storage import atomic_write, atomic_write_text

_server_lock = threading.Lock()
_server_started = False


class StaticExportError(RuntimeError):
    """A PNG/SVG could not be rendered (usually: no Chrome/Chromium for kaleido)."""


def save_figure(
    fig: go.Figure,
    path: str | os.PathLike[str],
    *,
    png: bool = True,
    svg: bool = False,
    scale: float = 2.0,
    width: int | None = None,
    height: int | None = None,
) -> dict[str, Path]:
    """Write ``fig`` as a self-contained HTML (plotly.js inlined) and a PNG (and SVG).

    Every file is written atomically (temporary file, then rename). The HTML is written
    first, so it exists even when static rendering fails.

    Args:
        fig: The figure.
        path: Target without suffix (a ``.html``/``.png``/``.svg`` suffix is dropped):
            ``figs/lens`` writes ``figs/lens.html`` and ``figs/lens.png``.
        png: Also write a PNG.
        svg: Also write an SVG.
        scale: Pixel density of the PNG (2 = crisp on high-DPI screens and slides).
        width: Image width in pixels; default the figure's own (or 900).
        height: Image height in pixels; default the figure's own (or 560).

    Returns:
        ``{"html": path, "png": path, ...}`` for the files written.

    Raises:
        StaticExportError: kaleido could not render (no Chrome/Chromium installed); the
            HTML was written.
    """
    base = Path(path)
    if base.suffix in (".html", ".png", ".svg"):
        base = base.with_suffix("")
    base.parent.mkdir(parents=True, exist_ok=True)
    html = pio.to_html(fig, include_plotlyjs=True, full_html=True, auto_play=False)
    out = {"html": atomic_write_text(base.with_name(base.name + ".html"), html)}
    w = width or fig.layout.width or 900
    h = height or fig.layout.height or 560
    for fmt, wanted in (("png", png), ("svg", svg)):
        if not wanted:
            continue
        data = _to_image(fig, fmt, int(w), int(h), scale)
        out[fmt] = atomic_write(base.with_name(f"{base.name}.{fmt}"), _writer(data))
    return out


def _writer(data: bytes) -> Callable[[str], int]:
    return lambda tmp: Path(tmp).write_bytes(data)


def _to_image(fig: go.Figure, fmt: str, width: int, height: int, scale: float) -> bytes:
    _start_server()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "kopts ignored with a server"
            return bytes(pio.to_image(fig, format=fmt, width=width, height=height, scale=scale))
    except Exception as err:  # kaleido raises several types when Chrome is missing
        raise StaticExportError(
            f"could not render {fmt.upper()} with kaleido ({type(err).__name__}: {err}). "
            "kaleido needs Chrome or Chromium on this machine (Debian/Ubuntu: "
            "`apt-get install -y chromium`); or call save_figure(..., png=False)."
        ) from err


def _start_server() -> None:
    """Keep one headless browser for the whole process: ~0.4 s per image, not ~5 s."""
    global _server_started
    with _server_lock:
        if _server_started:
            return
        try:
            import kaleido  # optional: static export (the `dev` extra)

            kaleido.start_sync_server(silence_warnings=True)
            atexit.register(kaleido.stop_sync_server, silence_warnings=True)
        except Exception:  # no server: plotly starts a browser per image instead
            pass
        _server_started = True


def static_export_available() -> bool:
    """Whether kaleido finds a Chrome/Chromium to render PNG/SVG with (no rendering done).

    >>> isinstance(static_export_available(), bool)
    True
    """
    try:
        from choreographer.browsers.chromium import Chromium  # optional, with kaleido

        return Chromium.find_browser(skip_local=False) is not None  # type: ignore[attr-defined]
    except Exception:
        names = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
        return any(shutil.which(n) for n in names)


def save_figures(figures: Mapping[str, go.Figure], folder: Path) -> list[Path]:
    """Save figures as ``folder/<name>.html`` (+ ``.png`` where Chromium is installed).

    Returns:
        The written files.
    """
    png = static_export_available()
    written: list[Path] = []
    for name, fig in figures.items():
        written.extend(save_figure(fig, folder / name, png=png).values())
    if not png:
        print("note: no Chrome/Chromium for kaleido; figures written as HTML only", file=sys.stderr)
    return written


__all__ = [
    "StaticExportError",
    "save_figure",
    "save_figures",
    "static_export_available",
]
