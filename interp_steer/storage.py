"""Atomic file writes: results are written to a temporary file, then renamed into place.

A crash mid-write never leaves a half-written result behind; readers see the old file or
the new one. :func:`write_result` / :func:`read_result` store analysis results as JSON or
as a parquet table that carries the JSON payload in its metadata.
"""

import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], Any]) -> Path:
    """Call ``write(tmp_path)`` and atomically rename the temporary file to ``path``.

    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> _ = atomic_write(out, lambda tmp: pathlib.Path(tmp).write_text("hi"))
    >>> out.read_text(), oct(out.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    ('hi', True)
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give a normal file's mode
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented UTF-8 JSON to ``path`` atomically (NaN is refused)."""
    text = json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False)
    return atomic_write_text(path, text + "\n")


def write_result(
    path: str | os.PathLike[str], payload: Mapping[str, Any], frame: pd.DataFrame
) -> Path:
    """Write a result atomically: JSON, or (``.parquet`` suffix) its long table.

    A parquet file carries the full JSON payload in its metadata, so it loads back too.
    Used by every analysis result's ``save``.

    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "r.parquet"
    >>> read_result(write_result(out, {"a": 1}, pd.DataFrame({"x": [1, 2]})))
    {'a': 1}
    """
    target = Path(path)
    if target.suffix == ".parquet":
        table = frame.copy()
        table.attrs["interp_steer"] = json.dumps(payload, ensure_ascii=False)
        return atomic_write(target, lambda tmp: table.to_parquet(tmp))
    return atomic_write_json(target, dict(payload))


def read_result(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read what :func:`write_result` wrote (JSON or parquet) back as a dict."""
    target = Path(path)
    if target.suffix == ".parquet":
        attrs = pd.read_parquet(target).attrs
        if "interp_steer" not in attrs:
            raise ValueError(f"{target} is a parquet file without interp_steer metadata")
        return dict(json.loads(attrs["interp_steer"]))
    return dict(json.loads(target.read_text(encoding="utf-8")))


_R = TypeVar("_R", bound="SavedResult")


class SavedResult:
    """Mixin giving a result class ``save``/``load`` through :func:`write_result`.

    The class provides ``to_dict()``, ``to_frame()`` and ``from_dict(data)``.
    """

    def to_dict(self) -> dict[str, Any]:  # pragma: no cover - provided by the result class
        raise NotImplementedError

    def to_frame(self) -> pd.DataFrame:  # pragma: no cover - provided by the result class
        raise NotImplementedError

    @classmethod
    def from_dict(cls: type[_R], data: Mapping[str, Any]) -> _R:  # pragma: no cover
        raise NotImplementedError

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the result atomically: JSON, or a ``.parquet`` table (with the JSON inside)."""
        return write_result(path, self.to_dict(), self.to_frame())

    @classmethod
    def load(cls: type[_R], path: str | os.PathLike[str]) -> _R:
        """Read a result written by :meth:`save` (JSON or parquet)."""
        return cls.from_dict(read_result(path))


__all__ = [
    "read_result",
    "write_result",
]
