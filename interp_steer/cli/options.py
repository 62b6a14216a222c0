"""Option types and shared options of the ``interp-steer`` command line.

Each type function turns one command-line string into a checked value or raises
``argparse.ArgumentTypeError`` with one line saying what was expected.

Example:
    >>> ints("2-4,8"), floats("0.1,0.5"), languages("German,zh"), count("3")
    ((2, 3, 4, 8), (0.1, 0.5), ('de', 'zh'), 3)
"""

import argparse
import math
import re
from collections.abc import Sequence
from pathlib import Path

from interp_steer.constants import (
    FORCING_STRENGTHS,
    LOCAL_DATASETS,
    METHOD_NAMES,
    MODEL_ALIASES,
)

__all__ = [
    "MAX_LAYERS",
    "add_choice",
    "add_common",
    "add_fitting",
    "add_strength",
    "count",
    "finite",
    "floats",
    "index",
    "ints",
    "language",
    "languages",
    "nonnegative",
    "operator_strengths",
]

MAX_LAYERS = 1024
"""The most layers ``--layers`` may name: more than any model has. A larger range is
refused before it is expanded; the model's own count is checked once it is loaded."""

_LAYER_PART = re.compile(r"(\d+)(?:-(\d+))?")


def language(text: str) -> str:
    """One language in any spelling (``de``, ``deu``, ``deu_Latn``, ``German``) → its code.

    >>> language("deu_Latn")
    'de'
    """
    # imported here, not at the top: `interp-steer --help` must not wait for the data stage
    from interp_steer.data.languages import canonical

    try:
        return canonical(text.strip())
    except ValueError as err:
        # the library's message without its list of every valid code
        raise argparse.ArgumentTypeError(
            str(err).split("; valid codes")[0] + " (e.g. de, deu, deu_Latn, pt-BR, German)"
        ) from None


def languages(text: str) -> tuple[str, ...]:
    """Comma-separated languages → unique codes in the given order."""
    codes = [language(x) for x in text.split(",") if x.strip()]
    if not codes:
        raise argparse.ArgumentTypeError("expected comma-separated languages, e.g. de,zh,sw")
    return tuple(dict.fromkeys(codes))


def ints(text: str) -> tuple[int, ...]:
    """Comma-separated layers and ranges (``2,4,6`` or ``2-8``) → unique ascending ints.

    Every part is checked before any range is expanded: a range above :data:`MAX_LAYERS`
    or a reversed one is refused at once.

    >>> ints("0-100000000")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: layer 100000000 is above 1023: no model has so many layers
    """
    bounds: list[tuple[int, int]] = []
    for part in (x.strip() for x in text.split(",")):
        match = _LAYER_PART.fullmatch(part)
        if match is None:
            if not part:
                continue
            bounds = []
            break
        lo = int(match.group(1))
        hi = lo if match.group(2) is None else int(match.group(2))
        if hi >= MAX_LAYERS:
            raise argparse.ArgumentTypeError(
                f"layer {hi} is above {MAX_LAYERS - 1}: no model has so many layers"
            )
        if hi < lo:
            raise argparse.ArgumentTypeError(f"layer range {part!r} is empty (start above end)")
        bounds.append((lo, hi))
    if not bounds:
        raise argparse.ArgumentTypeError(
            f"expected layers like 2,4,6 or 2-8 (non-negative integers), got {text!r}"
        )
    return tuple(sorted({n for lo, hi in bounds for n in range(lo, hi + 1)}))


def count(text: str) -> int:
    """A positive integer (a number of items, pairs, tokens, threads ...).

    >>> count("0")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: expected a positive integer, got '0'
    """
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def finite(text: str) -> float:
    """A finite number (``nan`` and ``inf`` are refused).

    >>> finite("0.5"), finite("1e-3")
    (0.5, 0.001)
    """
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def index(text: str) -> int:
    """A non-negative integer (a layer); the model's range is checked once it is loaded.

    >>> index("3")
    3
    """
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a layer index (0, 1, 2, ...), got {text!r}")
    return value


def floats(text: str) -> tuple[float, ...]:
    """Comma-separated finite numbers → a tuple of floats (order kept)."""
    try:
        out = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        out = ()
    if not out or not all(math.isfinite(x) for x in out):
        raise argparse.ArgumentTypeError(f"expected numbers like 0.1,0.25,0.5, got {text!r}")
    return out


def nonnegative(text: str) -> int:
    """A whole number ``>= 0`` (a seed).

    >>> nonnegative("0")
    0
    """
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def operator_strengths(text: str) -> tuple[str, tuple[float, ...]]:
    """``OPERATOR=S1,S2,...`` → the operator and its positive strengths (sorted, unique).

    The operator is one of :data:`~interp_steer.constants.FORCING_STRENGTHS`' keys; each
    operator's upper bound (``ablate`` 1, ``rotate`` 180 degrees) is checked by the library.

    >>> operator_strengths("rotate=30,15"), operator_strengths("add=0.5")
    (('rotate', (15.0, 30.0)), ('add', (0.5,)))
    """
    name, sep, values = text.partition("=")
    name = name.strip()
    if not sep or name not in FORCING_STRENGTHS:
        raise argparse.ArgumentTypeError(
            f"expected OPERATOR=S1,S2 with an operator of {', '.join(FORCING_STRENGTHS)} "
            f"(e.g. add=0.25,0.5 rotate=15,30), got {text!r}"
        )
    strengths = floats(values)
    if not all(x > 0 for x in strengths):
        raise argparse.ArgumentTypeError(
            f"{name} strengths must be positive (the sign comes from --directions), got {values!r}"
        )
    return name, tuple(sorted(set(strengths)))


def add_choice(
    parser: argparse._ActionsContainer,  # a parser or an argument group
    flag: str,
    choices: Sequence[str],
    default: str,
    help: str,
) -> None:
    """Add ``flag`` to a parser or argument group: one of ``choices``, help ending in its default.

    >>> p = argparse.ArgumentParser()
    >>> add_choice(p, "--pooling", ("mean", "last"), "mean", "token pooling")
    >>> p.parse_args([]).pooling, p.format_help().count("(default: mean)")
    ('mean', 1)
    """
    parser.add_argument(
        flag, choices=list(choices), default=default, help=f"{help} (default: %(default)s)"
    )


def add_common(parser: argparse.ArgumentParser, command: str) -> None:
    """Add the options every command shares: model, device, dtype, threads, run folder."""
    group = parser.add_argument_group("model and run folder")
    group.add_argument(
        "--model",
        default="gemma-3-270m",
        help=f"model alias ({', '.join(MODEL_ALIASES)}), a local checkpoint folder or a "
        "hub id (default: %(default)s)",
    )
    group.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: cuda if available)")
    group.add_argument(
        "--dtype",
        choices=["float32", "bfloat16", "float16"],
        help="weights dtype (default: the model's own; float32 for the offline models)",
    )
    group.add_argument("--threads", type=count, help="CPU threads for torch (default: torch's)")
    group.add_argument(
        "--out",
        type=Path,
        default=Path("runs") / command,
        help="run folder for vectors, results and figures (default: %(default)s)",
    )


def add_strength(parser: argparse.ArgumentParser) -> None:
    """Add ``--alpha`` / ``--ratio`` (mutually exclusive): the steering strength."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--alpha", type=finite, help="absolute strength: h + alpha * v")
    group.add_argument(
        "--ratio",
        type=finite,
        help="relative strength ‖alpha v‖ / ‖h‖ (h: the layer's mean residual norm on the "
        "fitting data)",
    )


def add_fitting(parser: argparse.ArgumentParser) -> None:
    """Add how vectors are fitted: ``--method``, ``--fit-dataset``, ``--n-fit``."""
    group = parser.add_argument_group("fitting")
    add_choice(group, "--method", list(METHOD_NAMES), "mean_diff", "fitting method")
    add_choice(group, "--fit-dataset", list(LOCAL_DATASETS), "flores", "parallel data to fit on")
    group.add_argument(
        "--n-fit", type=count, default=200, help="pairs to fit on (default: %(default)s)"
    )
