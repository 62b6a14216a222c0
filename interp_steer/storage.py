"""Atomic file writes: results are written to a temporary file, then renamed into place.

A crash mid-write never leaves a half-written result behind; readers see the old file or
the new one. :func:`write_result` / :func:`read_result` store analysis results as JSON or
as a parquet table that carries the JSON payload in its metadata.

Run folders are not followed out of: a write given its run folder (``root=``) is refused
when the target's folder resolves outside it (a symlinked ``cells/``, say), and
:func:`run_lock` keeps two runs from writing one folder at the same time.
"""

import dataclasses
import errno
import fcntl
import functools
import hashlib
import importlib.metadata
import inspect
import json
import os
import pickle
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import numpy as np
import pandas as pd
import safetensors
import safetensors.numpy
import safetensors.torch
import torch

PathLike = str | os.PathLike[str]


def atomic_write(
    path: PathLike, write: Callable[[str], Any], *, root: PathLike | None = None
) -> Path:
    """Call ``write(tmp_path)`` and atomically rename the temporary file to ``path``.

    Args:
        path: The file to write.
        write: Writes the content to the temporary path it is given.
        root: The run folder ``path`` belongs to: the write is refused (``ValueError``,
            nothing written) when ``path``'s folder resolves outside it, e.g. through a
            symlinked subfolder. None writes wherever ``path`` leads.

    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> _ = atomic_write(out, lambda tmp: pathlib.Path(tmp).write_text("hi"))
    >>> out.read_text(), oct(out.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    ('hi', True)
    """
    return atomic_write_group([(path, write)], root=root)[0]


def atomic_write_group(
    writes: Sequence[tuple[PathLike, Callable[[str], Any]]], *, root: PathLike | None = None
) -> list[Path]:
    """Write several files: each to a temporary name first, then rename them in order.

    Nothing is renamed until every file is written. A crash between two renames leaves
    the earlier files new and the later ones old, so put last the file readers trust
    and let them detect a stale companion (a steering vector renames its tensor last).

    Args:
        writes: ``(path, write)`` pairs, as for :func:`atomic_write`, in rename order.
        root: The run folder every path belongs to (see :func:`atomic_write`).

    Returns:
        The paths written, in order.

    >>> import tempfile, pathlib
    >>> run = pathlib.Path(tempfile.mkdtemp())
    >>> paths = atomic_write_group(
    ...     [(run / p, lambda tmp, p=p: pathlib.Path(tmp).write_text(p)) for p in ("a", "b")]
    ... )
    >>> [p.read_text() for p in paths]
    ['a', 'b']
    """
    targets = [Path(p) for p, _ in writes]
    for target in targets:
        check_inside(target, root)
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
    tmps: list[str] = []
    try:
        for target, (_, write) in zip(targets, writes, strict=True):
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
            os.close(fd)
            tmps.append(tmp)
            write(tmp)
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give a normal file's mode
        for tmp, target in zip(tmps, targets, strict=True):
            os.replace(tmp, target)
    except BaseException:
        for tmp in tmps:
            Path(tmp).unlink(missing_ok=True)
        raise
    return targets


def check_inside(path: PathLike, root: PathLike | None) -> None:
    """Raise ``ValueError`` if ``path``'s folder resolves outside the run folder ``root``.

    Symlinks are resolved on both sides, so a run folder that is itself a symlink is fine,
    while a symlinked subfolder leading out of it is not. ``root=None`` checks nothing.

    >>> import tempfile, pathlib
    >>> run = pathlib.Path(tempfile.mkdtemp())
    >>> check_inside(run / "cells" / "de" / "x.json", run)
    >>> (run / "cells").symlink_to(tempfile.mkdtemp())
    >>> check_inside(run / "cells" / "de" / "x.json", run)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: refusing to write .../cells/de/x.json: ... outside the run folder ...
    """
    if root is None:
        return
    base = Path(root).resolve()
    folder = Path(path).parent.resolve()
    if not folder.is_relative_to(base):
        raise ValueError(
            f"refusing to write {path}: its folder resolves to {folder}, outside the run "
            f"folder {base} (a symlink leads out of it)"
        )


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: PathLike, text: str, *, root: PathLike | None = None) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (``root``: see :func:`atomic_write`)."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"), root=root)


def atomic_write_json(path: PathLike, obj: Any, *, root: PathLike | None = None) -> Path:
    """Write ``obj`` as indented UTF-8 JSON to ``path`` atomically (NaN is refused).

    ``root``: see :func:`atomic_write`.
    """
    text = json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False)
    return atomic_write_text(path, text + "\n", root=root)


# ----------------------------------------------------------------- run locks

LOCK_NAME = ".interp_steer.lock"
"""The lock file :func:`run_lock` holds in a run folder (removed when the run ends)."""

_HELD: dict[Path, int] = {}  # lock files this process holds -> nesting depth


class RunLockedError(ValueError):
    """Another process holds a run folder's lock (a ``ValueError``: bad input to the CLI)."""


@contextmanager
def run_lock(
    folder: PathLike | None, *, name: str = LOCK_NAME, timeout: float | int = 0
) -> Iterator[Path | None]:
    """Hold the exclusive lock of run folder ``folder`` while the block runs.

    The lock is an ``fcntl.flock`` on the file ``folder/name``, which holds the holder's
    pid; the kernel releases it when the process ends, however it ends. Another process
    asking for it waits up to ``timeout`` seconds (by default it does not wait), then fails
    with :class:`RunLockedError` naming the holder's pid. The same process may take it
    again (nested runs). At the end the lock file is removed, and the folder too if the
    lock created it and nothing was written into it. ``folder=None`` locks nothing.

    Args:
        folder: The run folder (created if missing).
        name: The lock file's name inside it.
        timeout: Seconds to wait for another process to release it.

    Yields:
        The lock file, or None for ``folder=None``.

    Raises:
        RunLockedError: Another process holds the lock.
        NotADirectoryError: ``folder`` is a file.

    >>> import tempfile, pathlib
    >>> run = pathlib.Path(tempfile.mkdtemp()) / "run"
    >>> with run_lock(run) as lock, run_lock(run):  # nested in one process: fine
    ...     lock.name, lock.read_text().strip() == str(os.getpid())
    ('.interp_steer.lock', True)
    >>> run.exists()  # created for the lock, left empty: removed again
    False
    """
    if folder is None:
        yield None
        return
    base = Path(folder)
    if base.exists() and not base.is_dir():
        raise NotADirectoryError(f"run folder {base} is a file, not a folder")
    created = not base.exists()
    base.mkdir(parents=True, exist_ok=True)
    lock = base.resolve() / name
    if lock in _HELD:
        _HELD[lock] += 1
        try:
            yield lock
        finally:
            _HELD[lock] -= 1
        return
    try:
        fd = _acquire(base, lock, timeout)
        try:
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            _HELD[lock] = 1
            try:
                yield lock
            finally:
                del _HELD[lock]
                lock.unlink(missing_ok=True)  # while still held: a waiter sees a new file
        finally:
            os.close(fd)  # releases the flock
    finally:
        if created:
            with suppress(OSError):
                base.rmdir()  # only if empty


def _acquire(folder: Path, lock: Path, timeout: float | int) -> int:
    """Open and flock ``lock``; retry when its holder removed it meanwhile."""
    deadline = time.monotonic() + max(float(timeout), 0.0)
    while True:
        folder.mkdir(parents=True, exist_ok=True)  # a finished holder may have removed it
        try:  # O_NOFOLLOW: a symlinked lock file is refused, never written through
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
        except FileNotFoundError:
            continue
        except OSError as err:
            if err.errno != errno.ELOOP:
                raise
            raise ValueError(f"refusing to lock {folder}: {lock} is a symlink") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() >= deadline:
                break
            time.sleep(0.05)
            continue
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock, follow_symlinks=False))
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # locked a file its holder had just removed: take the new one
    try:
        holder = lock.read_text(encoding="utf-8").strip() or "unknown"
    except OSError:
        holder = "unknown"
    waited = f" (waited {timeout:g} s)" if timeout > 0 else ""
    raise RunLockedError(
        f"run folder {folder} is in use by another run (pid {holder}, lock {lock}){waited}; "
        "wait for it to finish or write to another folder"
    )


_P = ParamSpec("_P")
_T = TypeVar("_T")


def locks_run(param: str, *, file: bool = False) -> Callable[[Callable[_P, _T]], Callable[_P, _T]]:
    """Decorate a function to hold :func:`run_lock` on its argument ``param`` during a call.

    With ``file=True`` the argument is an output file: the lock is ``.<name>.lock`` beside
    it, so runs writing other files of its folder do not wait for each other. A call with
    ``param`` None locks nothing.

    >>> import tempfile
    >>> @locks_run("run_dir")
    ... def run(x, *, run_dir=None):
    ...     return (Path(run_dir) / LOCK_NAME).read_text().strip() == str(os.getpid())
    >>> run(1, run_dir=tempfile.mkdtemp())
    True
    """

    def decorate(func: Callable[_P, _T]) -> Callable[_P, _T]:
        signature = inspect.signature(func)

        @functools.wraps(func)
        def locked(*args: _P.args, **kwargs: _P.kwargs) -> _T:
            value = signature.bind_partial(*args, **kwargs).arguments.get(param)
            if value is None:
                return func(*args, **kwargs)
            target = Path(value)
            folder, name = (target.parent, f".{target.name}.lock") if file else (target, LOCK_NAME)
            with run_lock(folder, name=name):
                return func(*args, **kwargs)

        return locked

    return decorate


def nan_as_null(values: Any) -> Any:
    """A float array as nested lists for JSON, NaN written as ``None`` (``null``).

    >>> nan_as_null(np.array([[1.0, np.nan]]))
    [[1.0, None]]
    """
    arr = np.asarray(values, dtype=np.float64)
    out = arr.astype(object)
    out[np.isnan(arr)] = None
    return out.tolist()


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


# ----------------------------------------------------------------- settings records

_NONE = "(none)"


class SettingsError(ValueError):
    """Saved work was made with other settings than the ones asked for now.

    Raised instead of reusing the work (a ``ValueError``: the command line reports it as
    bad input). :meth:`with_hint` rewords the advice at its end (the command line says
    ``--out`` where the library says ``run_dir``).

    Attributes:
        where: The file or folder holding the saved work.
        what: What it holds (``"a run"``, ``"a vector"``, ...).
        changes: ``name: saved → now`` for each setting that differs.

    >>> str(SettingsError("runs/x", ["n: 4 → 40"], hint="use another run_dir"))
    'runs/x holds a run with different settings (n: 4 → 40); use another run_dir'
    """

    def __init__(
        self,
        where: PathLike,
        changes: Sequence[str],
        *,
        what: str = "a run",
        hint: str = "use another folder",
    ) -> None:
        self.where = str(where)
        self.what = what
        self.changes = tuple(changes)
        super().__init__(self.with_hint(hint))

    def with_hint(self, hint: str) -> str:
        """The message, ending in ``hint`` (what to do instead)."""
        changed = "; ".join(self.changes)
        return f"{self.where} holds {self.what} with different settings ({changed}); {hint}"


def json_meta(meta: Mapping[str, Any]) -> str:
    """``meta`` as JSON text for a file's header, or one clear error.

    >>> json_meta({"n": 4})
    '{"n": 4}'
    >>> json_meta({"f": len})
    Traceback (most recent call last):
    ...
    ValueError: meta must be JSON-serialisable to be saved: ...
    """
    try:
        return json.dumps(dict(meta), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"meta must be JSON-serialisable to be saved: {err}") from None


def write_tensors(
    path: PathLike,
    tensors: Mapping[str, Any],
    header: Mapping[str, str],
    readable: Mapping[str, Any],
    *,
    last: str = "tensors",
    framework: str = "pt",
    root: PathLike | None = None,
) -> tuple[Path, Path]:
    """Write a safetensors file and its readable JSON twin as one atomic group.

    ``path`` names either file or their stem: the tensors go to ``<stem>.safetensors``
    (``header`` as their string metadata) and ``readable`` to ``<stem>.json``, indented.

    Args:
        path: The files' stem (a ``.safetensors`` or ``.json`` suffix is replaced).
        tensors: Name -> torch tensor (``framework="pt"``) or numpy array (``"np"``).
        header: The safetensors metadata (strings).
        readable: What the JSON file holds (JSON-serialisable; NaN refused).
        last: ``"tensors"`` or ``"json"``: the file renamed last, the one readers trust
            (see :func:`atomic_write_group`).
        framework: ``"pt"`` or ``"np"``, as :func:`read_safetensors` reads them back.
        root: The run folder both belong to (see :func:`atomic_write`).

    Returns:
        ``(tensor path, JSON path)``.

    >>> import tempfile, torch
    >>> run = Path(tempfile.mkdtemp())
    >>> st, js = write_tensors(run / "v", {"d": torch.ones(2)}, {"k": "v"}, {"k": "v"})
    >>> st.name, js.name, read_safetensors(st, what="demo")[0]
    ('v.safetensors', 'v.json', {'k': 'v'})
    """
    stem = Path(path)
    if stem.suffix in (".safetensors", ".json"):
        stem = stem.with_suffix("")
    tensor_path, json_path = (
        stem.with_name(stem.name + ".safetensors"),
        stem.with_name(stem.name + ".json"),
    )
    try:
        text = json.dumps(dict(readable), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    except (TypeError, ValueError) as err:
        raise ValueError(f"meta must be JSON-serialisable to be saved: {err}") from None
    if framework == "pt":
        cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
        save: Callable[..., Any] = safetensors.torch.save_file
    elif framework == "np":
        cpu = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
        save = safetensors.numpy.save_file
    else:
        raise ValueError(f"framework must be 'pt' or 'np', got {framework!r}")
    writes: list[tuple[PathLike, Callable[[str], Any]]] = [
        (json_path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8")),
        (tensor_path, lambda tmp: save(cpu, tmp, metadata=dict(header))),
    ]
    if last == "json":
        writes.reverse()
    elif last != "tensors":
        raise ValueError(f"last must be 'tensors' or 'json', got {last!r}")
    atomic_write_group(writes, root=root)
    return tensor_path, json_path


def read_safetensors(
    path: PathLike, *, what: str, framework: str = "pt"
) -> tuple[dict[str, str], dict[str, Any]]:
    """The header (string metadata) and tensors of a safetensors file, or one clear error.

    ``framework``: ``"pt"`` (torch tensors) or ``"np"`` (numpy arrays); ``what`` names the
    file's content in the errors.

    Raises:
        FileNotFoundError: No file at ``path``.
        ValueError: The file is not readable safetensors (truncated or corrupt).

    >>> import tempfile, torch, safetensors.torch
    >>> path = Path(tempfile.mkdtemp()) / "x.safetensors"
    >>> safetensors.torch.save_file({"a": torch.ones(2)}, str(path), metadata={"k": "v"})
    >>> header, tensors = read_safetensors(path, what="demo")
    >>> header, tensors["a"].tolist()
    ({'k': 'v'}, [1.0, 1.0])
    >>> read_safetensors(path.with_name("nothing.safetensors"), what="demo vector")
    Traceback (most recent call last):
    ...
    FileNotFoundError: no demo vector file at ...nothing.safetensors
    """
    target = Path(path)
    if not target.is_file():
        raise FileNotFoundError(f"no {what} file at {target}")
    load = safetensors.torch.load_file if framework == "pt" else safetensors.numpy.load_file
    try:
        with safetensors.safe_open(str(target), framework=framework) as f:
            header = dict(f.metadata() or {})
        tensors = dict(load(str(target)))
    except (safetensors.SafetensorError, OSError, ValueError) as err:
        raise ValueError(
            f"{target} is not a readable safetensors file (truncated or corrupt?): {err}"
        ) from None
    return header, tensors


def plain_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` as a JSON file keeps them: tuples as lists, objects by name or fields.

    A dataclass becomes its fields, a function or class its qualified name, a path its
    text, any other object its ``repr`` (its type's name if the ``repr`` is the default
    one, which holds a memory address).

    >>> plain_settings({"layers": (1, 2), "fn": len, "fit": {"n": 4}})
    {'fit': {'n': 4}, 'fn': 'len', 'layers': [1, 2]}
    """
    text = json.dumps(dict(settings), default=_plain_value, sort_keys=True)
    return dict(json.loads(text))


def _plain_value(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value) if f.init}
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    name = getattr(value, "__qualname__", None)
    if isinstance(name, str):
        return name
    if type(value).__repr__ is object.__repr__:
        return type(value).__qualname__
    return repr(value)


def changed_settings(saved: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """``name: saved → now`` for each setting that differs; nested names joined by dots.

    Values are compared as a JSON file keeps them, type included (``1`` is neither
    ``1.0`` nor ``True``); a setting only one side has shows ``(none)`` on the other.

    >>> changed_settings({"n": 4, "fit": {"n": 8}}, {"n": 40, "fit": {"n": 8}, "pos": "last"})
    ['n: 4 → 40', "pos: (none) → 'last'"]
    """
    old, new = flat_settings(plain_settings(saved)), flat_settings(plain_settings(now))
    return [
        f"{name}: {_shown(old, name)} → {_shown(new, name)}"
        for name in sorted(old.keys() | new.keys())
        if name not in old or name not in new or _exact(old[name]) != _exact(new[name])
    ]


def flat_settings(settings: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``settings`` with nested settings as dotted names, as :func:`changed_settings` names them.

    >>> flat_settings({"n": 4, "fit": {"lr": 0.1, "opt": {"wd": 0}}})
    {'n': 4, 'fit.lr': 0.1, 'fit.opt.wd': 0}
    """
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, Mapping):
            out.update(flat_settings(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _exact(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _shown(flat: Mapping[str, Any], name: str) -> str:
    return repr(flat[name]) if name in flat else _NONE


def require_settings(
    where: PathLike,
    saved: Mapping[str, Any],
    settings: Mapping[str, Any],
    *,
    what: str = "a run",
    hint: str = "use another folder",
) -> None:
    """Raise :class:`SettingsError` naming every setting ``saved`` and ``settings`` differ in.

    For saved work that carries its settings inside (a result's metadata, a vector's).

    >>> require_settings("sim.json", {"n": 4}, {"n": 4})  # the same: nothing happens
    >>> require_settings("sim.json", {"n": 4}, {"n": 8}, what="a result")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    interp_steer.storage.SettingsError: sim.json holds a result with ... (n: 4 → 8); use ...
    """
    changes = changed_settings(saved, settings)
    if changes:
        raise SettingsError(where, changes, what=what, hint=hint)


def check_settings(
    path: PathLike,
    settings: Mapping[str, Any],
    *,
    what: str = "a run",
    hint: str = "use another folder",
    root: PathLike | None = None,
) -> Path:
    """Check ``settings`` against the record at ``path``; write them there if it has none.

    The one check of every run folder and cache that is reused: the first run records
    its settings (atomically, as JSON), every later run must bring the same ones. Call it
    once the settings are validated and before any work is saved, so that an invalid run
    records nothing.

    Args:
        path: The record (e.g. a run folder's ``config.json``).
        settings: Every setting that changes the saved work (JSON-able, see
            :func:`plain_settings`).
        what: What the folder holds, for the message.
        hint: What to do instead, for the message.
        root: The run folder ``path`` belongs to (see :func:`atomic_write`).

    Returns:
        ``path``.

    Raises:
        SettingsError: The record holds other settings (each one named).
        ValueError: The record is not a JSON object.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "config.json"
    >>> _ = check_settings(path, {"n": 4, "positions": "all"})
    >>> _ = check_settings(path, {"n": 4, "positions": "all"})  # the same: fine
    >>> check_settings(path, {"n": 40, "positions": "last"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    interp_steer.storage.SettingsError: ... (n: 4 → 40; positions: 'all' → 'last'); use ...
    """
    target = Path(path)
    if not target.is_file():
        atomic_write_json(target, plain_settings(settings), root=root)
        return target
    try:
        saved = json.loads(target.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{target} is not a settings record (not JSON: {err})") from None
    if not isinstance(saved, dict):
        raise ValueError(f"{target} is not a settings record (not a JSON object)")
    require_settings(target.parent, saved, settings, what=what, hint=hint)
    return target


def texts_fingerprint(*parts: Sequence[str]) -> str:
    """A short SHA-256 of lists of texts, in order: what a cached result was computed on.

    >>> texts_fingerprint(["a", "b"], ["c"]) == texts_fingerprint(["a"], ["b", "c"])
    False
    """
    text = json.dumps([list(p) for p in parts], ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class TrainingCheckpoint:
    """Where a training loop saves its state every few steps, to resume after a crash.

    The state goes to ``<folder>/<name>-<digest>.pt``, where ``digest`` hashes
    ``settings`` (every setting that changes the trained result: model, data fingerprint,
    hyper-parameters): a run with other settings gets another file, a new cell, and never
    resumes this one; the settings are stored inside too and checked again on reading (a
    renamed file is refused, naming the settings that differ). Writes are atomic
    (:func:`atomic_write`), so a crash mid-save leaves the previous checkpoint.

    Attributes:
        folder: The checkpoint folder (created on the first save).
        name: What is trained (e.g. ``"bipo-layer4"``): the file's prefix.
        settings: Every setting the state depends on (JSON-able, :func:`plain_settings`).
        every: Steps between two saves.

    >>> import tempfile, torch
    >>> ckpt = TrainingCheckpoint(Path(tempfile.mkdtemp()), "demo", {"lr": 0.1}, every=2)
    >>> ckpt.load() is None, ckpt.due(2, total=10), ckpt.due(10, total=10)
    (True, True, False)
    >>> _ = ckpt.save({"step": 2, "v": torch.ones(3)})
    >>> ckpt.load()["v"].tolist(), ckpt.path.name.startswith("demo-")
    ([1.0, 1.0, 1.0], True)
    >>> ckpt.remove(); ckpt.path.exists()
    False
    """

    folder: Path
    name: str
    settings: Mapping[str, Any]
    every: int = 50

    def __post_init__(self) -> None:
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise ValueError(f"checkpoint_every must be a positive integer, got {self.every!r}")
        object.__setattr__(self, "folder", Path(self.folder))
        object.__setattr__(self, "settings", plain_settings(self.settings))

    @property
    def path(self) -> Path:
        """The checkpoint file: ``<folder>/<name>-<hash of the settings>.pt``."""
        digest = hashlib.sha256(_exact(self.settings).encode()).hexdigest()[:12]
        return self.folder / f"{self.name}-{digest}.pt"

    def due(self, step: int, *, total: int) -> bool:
        """Whether to save after ``step`` steps (every ``every`` steps, never after the last)."""
        return step % self.every == 0 and step < total

    def save(self, state: Mapping[str, Any]) -> Path:
        """Write ``state`` (tensors, numbers, lists, dicts) with the settings, atomically."""
        payload = {"settings": json.dumps(self.settings, sort_keys=True), "state": dict(state)}
        self.folder.mkdir(parents=True, exist_ok=True)
        return atomic_write(self.path, lambda tmp: torch.save(payload, tmp))

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None when there is none.

        Raises:
            SettingsError: The file holds another run's state (each setting named).
            ValueError: The file is not a readable checkpoint.
        """
        if not self.path.is_file():
            return None
        try:
            payload = torch.load(self.path, map_location="cpu", weights_only=True)
            saved = json.loads(payload["settings"])
            state = dict(payload["state"])
        except (OSError, RuntimeError, KeyError, TypeError, ValueError, EOFError,
                pickle.UnpicklingError) as err:  # fmt: skip
            raise ValueError(
                f"{self.path} is not a readable training checkpoint ({err}); delete it to "
                "start the training again"
            ) from None
        require_settings(
            self.path, saved, self.settings, what="a training checkpoint",
            hint="delete it to start the training again",
        )  # fmt: skip
        return state

    def remove(self) -> None:
        """Delete the checkpoint (once training has finished)."""
        self.path.unlink(missing_ok=True)


def package_version() -> str:
    """The installed version of ``interp_steer`` (``"unknown"`` for an uninstalled copy).

    Recorded with saved scores: another version of the scoring code is another setting.

    >>> package_version().count(".") >= 1
    True
    """
    try:
        return importlib.metadata.version("interp_steer")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - a bare checkout
        return "unknown"


__all__ = [
    "LOCK_NAME",
    "RunLockedError",
    "SettingsError",
    "TrainingCheckpoint",
    "atomic_write",
    "atomic_write_group",
    "json_meta",
    "atomic_write_json",
    "atomic_write_text",
    "changed_settings",
    "check_inside",
    "check_settings",
    "flat_settings",
    "locks_run",
    "nan_as_null",
    "package_version",
    "plain_settings",
    "read_result",
    "read_safetensors",
    "texts_fingerprint",
    "write_tensors",
    "require_settings",
    "run_lock",
    "write_result",
]
