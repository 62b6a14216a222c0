"""Compute records that survive a killed process: a write every few minutes, and at the end.

A study stage runs for hours and the process may be killed without a signal it can catch
(a machine taken back): :func:`heartbeat` calls a record's writer every
:data:`HEARTBEAT_S` seconds while the block runs and once when it ends (also on an
exception), so at most that much compute goes unrecorded.
"""

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["HEARTBEAT_S", "heartbeat"]

HEARTBEAT_S = 120.0
"""Seconds between two writes of a running record."""


@contextmanager
def heartbeat(write: Callable[[], None], every: float | None = None) -> Iterator[None]:
    """Call ``write()`` every ``every`` seconds (:data:`HEARTBEAT_S`) in the block, and after it.

    ``write`` runs on a daemon thread during the block and on the caller's thread at the
    end, never two at once.

    >>> calls = []
    >>> with heartbeat(lambda: calls.append(1), every=60.0):
    ...     pass
    >>> calls
    [1]
    """
    period = HEARTBEAT_S if every is None else every
    stop = threading.Event()
    lock = threading.Lock()

    def locked() -> None:
        with lock:
            write()

    def beat() -> None:
        while not stop.wait(period):
            locked()

    thread = threading.Thread(target=beat, name="heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        locked()
