"""One progress setting for the whole library; bars through ``tqdm.auto`` (widgets in Jupyter).

Every call that can take more than a few seconds takes ``progress: bool | None = None``:
``True``/``False`` decide for that call, ``None`` follows the library's setting, which is
:func:`set_progress`, else the ``INTERP_STEER_PROGRESS`` environment variable (``0``/``1``),
else *on in interactive sessions* (a Jupyter kernel, an interactive interpreter, or a
terminal on stderr) and off otherwise (scripts piped to a file, CI, pytest).

>>> set_progress(False)
>>> progress_enabled()
False
>>> progress_enabled(True)
True
>>> with progress_bar(total=2, desc="demo") as bar:
...     bar.update(2)
>>> set_progress(None)
"""

import os
import sys
from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm

ENV_VAR = "INTERP_STEER_PROGRESS"

_setting: bool | None = None


def set_progress(enabled: bool | None) -> None:
    """Turn progress bars on or off for every library call that does not say otherwise.

    Args:
        enabled: ``True`` or ``False`` for every call; ``None`` restores the default
            (``INTERP_STEER_PROGRESS``, else on in interactive sessions only).

    Raises:
        TypeError: ``enabled`` is not a bool or None.

    >>> set_progress(True); progress_enabled(), set_progress(None)
    (True, None)
    """
    global _setting
    if enabled is not None and not isinstance(enabled, bool):
        raise TypeError(f"set_progress takes True, False or None, not {enabled!r}")
    _setting = enabled


def _interactive() -> bool:
    if "ipykernel" in sys.modules:  # a Jupyter kernel: tqdm.auto draws widgets
        return True
    if hasattr(sys, "ps1") or sys.flags.interactive:
        return True
    stream = sys.stderr
    return bool(stream is not None and hasattr(stream, "isatty") and stream.isatty())


def progress_enabled(progress: bool | None = None) -> bool:
    """Whether a call shows its bars: its own ``progress`` argument, else the library setting.

    Args:
        progress: A call's ``progress`` argument; ``None`` defers to :func:`set_progress`,
            then to ``INTERP_STEER_PROGRESS``, then to whether the session is interactive.

    Raises:
        ValueError: ``INTERP_STEER_PROGRESS`` is set to something other than 0 or 1.

    >>> progress_enabled(False)
    False
    """
    if progress is not None:
        return bool(progress)
    if _setting is not None:
        return _setting
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        if env not in ("0", "1"):
            raise ValueError(f"{ENV_VAR} must be 0 or 1, got {env!r}")
        return env == "1"
    return _interactive()


def progress_bar(
    iterable: Iterable[Any] | None = None,
    *,
    total: int | None = None,
    desc: str | None = None,
    unit: str = "it",
    initial: int = 0,
    leave: bool = False,
    progress: bool | None = None,
) -> Any:
    """A ``tqdm.auto`` bar, shown when :func:`progress_enabled` says so.

    Use it as a context manager (or close it in ``finally``) so an error's message is
    printed after the bar is gone, not before a redrawn one.

    Args:
        iterable: What to iterate over, if the bar wraps a loop.
        total: Number of steps, when not ``len(iterable)``.
        desc: Label in front of the bar.
        unit: What one step is (``"text"``, ``"cell"``, ``"step"``).
        initial: Steps already done (a resumed run).
        leave: Keep the finished bar on screen.
        progress: The calling function's ``progress`` argument.

    Returns:
        A ``tqdm`` instance (disabled, and then silent, when progress is off).

    >>> [x for x in progress_bar(range(3), progress=False)]
    [0, 1, 2]
    """
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        initial=initial,
        leave=leave,
        disable=not progress_enabled(progress),
        dynamic_ncols=True,
    )


__all__ = ["ENV_VAR", "progress_bar", "progress_enabled", "set_progress"]
