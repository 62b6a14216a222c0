"""Writing figures: :func:`save_figure` (HTML + PNG/SVG) and :func:`save_figures` (many).

Static images (PNG, SVG) are rendered by kaleido, which drives a Chrome/Chromium
installed on the machine (Debian: ``apt-get install -y chromium``); the HTML needs
nothing but a browser, offline: the figures of one folder share one ``plotly.min.js``
written beside them (:data:`PLOTLY_JS`, from the installed plotly package), so each HTML
is a few kB instead of 4.8 MB. ``plotlyjs="inline"`` writes a self-contained file instead
(as :func:`~interp_steer.plotting.write_report` always does).

Example:
    >>> import plotly.graph_objects as go, tempfile, pathlib
    >>> fig = go.Figure(go.Bar(x=["a", "b"], y=[1, 2]))
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> out = save_figure(fig, folder / "bars", png=False)
    >>> sorted(p.suffix for p in out.values()), sorted(p.name for p in folder.iterdir())
    (['.html'], ['bars.html', 'plotly.min.js'])
"""

import atexit
import os
import shutil
import sys
import threading
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal

import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from interp_steer.storage import atomic_write, atomic_write_text

_server_lock = threading.Lock()
_server_started = False


PLOTLY_JS = "plotly.min.js"
"""The file name of the plotly.js library the HTML figures of a folder share."""

PlotlyJs = Literal["shared", "inline"]
"""Where an HTML figure finds plotly.js: ``"shared"`` (one :data:`PLOTLY_JS` beside the
figures of a folder) or ``"inline"`` (in the file: self-contained, 4.8 MB)."""


class StaticExportError(RuntimeError):
    """A PNG/SVG could not be rendered (usually: no Chrome/Chromium for kaleido)."""


def write_plotly_js(folder: str | os.PathLike[str]) -> Path:
    """Write the installed plotly's ``plotly.min.js`` into ``folder``, unless it is there.

    The library comes from the plotly package (no network). The file is written
    atomically, and only when it is missing or differs (another plotly version), so a
    folder of figures holds one copy that matches the HTML written last.

    Returns:
        The path of ``folder/plotly.min.js``.

    >>> import tempfile, pathlib
    >>> path = write_plotly_js(tempfile.mkdtemp())
    >>> path.name, path.stat().st_size > 1_000_000, write_plotly_js(path.parent) == path
    ('plotly.min.js', True, True)
    """
    path = Path(folder) / PLOTLY_JS
    data = get_plotlyjs().encode("utf-8")
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return path
    Path(folder).mkdir(parents=True, exist_ok=True)
    return atomic_write(path, _writer(data))


def save_figure(
    fig: go.Figure,
    path: str | os.PathLike[str],
    *,
    png: bool = True,
    svg: bool = False,
    scale: float = 2.0,
    width: int | None = None,
    height: int | None = None,
    plotlyjs: PlotlyJs = "shared",
) -> dict[str, Path]:
    """Write ``fig`` as an HTML that opens offline and a PNG (and SVG).

    Every file is written atomically (temporary file, then rename). The HTML is written
    first, so it exists even when static rendering fails. By default it loads the
    ``plotly.min.js`` written beside it (:func:`write_plotly_js`, once per folder), so
    keep the two together when moving figures.

    Args:
        fig: The figure.
        path: Target without suffix (a ``.html``/``.png``/``.svg`` suffix is dropped):
            ``figs/lens`` writes ``figs/lens.html`` and ``figs/lens.png``.
        png: Also write a PNG.
        svg: Also write an SVG.
        scale: Pixel density of the PNG (2 = crisp on high-DPI screens and slides).
        width: Image width in pixels; default the figure's own (or 900).
        height: Image height in pixels; default the figure's own (or 560).
        plotlyjs: ``"shared"``: the HTML loads ``plotly.min.js`` from its folder (a few
            kB per figure); ``"inline"``: plotly.js inside the HTML (self-contained,
            4.8 MB).

    Returns:
        ``{"html": path, "png": path, ...}`` for the files written (not counting
        ``plotly.min.js``).

    Raises:
        StaticExportError: kaleido could not render (no Chrome/Chromium installed); the
            HTML was written.
        ValueError: ``plotlyjs`` is neither ``"shared"`` nor ``"inline"``.
    """
    if plotlyjs not in ("shared", "inline"):
        raise ValueError(f"plotlyjs must be 'shared' or 'inline', got {plotlyjs!r}")
    base = Path(path)
    if base.suffix in (".html", ".png", ".svg"):
        base = base.with_suffix("")
    base.parent.mkdir(parents=True, exist_ok=True)
    if plotlyjs == "shared":
        write_plotly_js(base.parent)
    include: bool | str = True if plotlyjs == "inline" else "directory"
    html = pio.to_html(fig, include_plotlyjs=include, full_html=True, auto_play=False)
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

    The HTML files share one ``folder/plotly.min.js`` (see :func:`save_figure`).

    Returns:
        The written files, ``plotly.min.js`` last.
    """
    png = static_export_available()
    written: list[Path] = []
    for name, fig in figures.items():
        written.extend(save_figure(fig, folder / name, png=png).values())
    if figures:
        written.append(Path(folder) / PLOTLY_JS)
    if not png:
        print("note: no Chrome/Chromium for kaleido; figures written as HTML only", file=sys.stderr)
    return written


__all__ = [
    "PLOTLY_JS",
    "PlotlyJs",
    "StaticExportError",
    "save_figure",
    "save_figures",
    "static_export_available",
    "write_plotly_js",
]
