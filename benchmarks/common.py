"""What the benchmarks share: timing helpers and the ``--smoke`` option.

Every ``bench_*.py`` has ``main(argv=None)`` and a ``--smoke`` mode: the tiny random model
and tiny sizes, so that ``tests/benchmarks`` runs every step of every benchmark in a few
seconds and a changed library signature fails the test suite, not the next ``make bench``.
Smoke numbers mean nothing; benchmarks print ratios measured in one run and assert none.
Smoke runs use one torch thread: on CPU cores other jobs share, two threads waiting on each
other can slow the tiny model's small ops tenfold.
"""

import argparse
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """``(fn(*args, **kwargs), seconds it took)``."""
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def interleaved(per_layer_fn, all_fn, layers) -> tuple[float, float, float]:
    """Time ``per_layer_fn(layer)`` for every layer, each next to one ``all_fn()`` run.

    Returns ``(ratio, sum of per-layer times, median all-layers time)``; interleaving
    keeps the comparison fair on a machine whose load changes (shared CPU cores).
    """
    per, full = [], []
    for layer in layers:
        per.append(timed(per_layer_fn, layer)[1])
        full.append(timed(all_fn)[1])
    once = statistics.median(full)
    return sum(per) / once, sum(per), once


def parse_args(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, smoke: Mapping[str, Any]
) -> argparse.Namespace:
    """Parse ``argv`` with a ``--smoke`` flag whose defaults are ``smoke`` (tiny model, sizes).

    Options given explicitly still win over the smoke defaults.
    """
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="the tiny random model and tiny sizes: checks that every step runs (seconds)",
    )
    args = parser.parse_args(argv)
    unknown = set(smoke) - set(vars(args))
    if unknown:
        raise ValueError(f"smoke defaults for options the parser lacks: {sorted(unknown)}")
    if args.smoke:
        parser.set_defaults(**smoke)
        args = parser.parse_args(argv)
        print("smoke run (tiny random model, tiny sizes): the numbers below mean nothing")
    return args
