"""Option types and shared options of the ``interp-steer`` command line.

Each type function turns one command-line string into a checked value or raises
``argparse.ArgumentTypeError`` with one line saying what was expected.

Example:
    >>> ints("2-4,8"), floats("0.1,0.5"), languages("German,zh")
    ((2, 3, 4, 8), (0.1, 0.5), ('de', 'zh'))
"""

import argparse
import math
from collections.abc import Sequence
from pathlib import Path

from interp_steer.constants import LOCAL_DATASETS, METHOD_NAMES, MODEL_ALIASES

__all__ = [
    "add_choice",
    "add_common",
    "add_fitting",
    "add_strength",
    "floats",
    "ints",
    "language",
    "languages",
]


def language(text: str) -> str:
    """One language in any spelling (``de``, ``deu``, ``deu_Latn``, ``German``) → its code.

    >>> language("deu_Latn")
    'de'
    """
    # imported here, not at the top: `interp-steer --help` must not wait for the data stage
    from interp_steer.data.languages import canonical

    try:
        return canonical(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"unknown language {text!r}; use an ISO 639-1/639-3 code, a FLORES code or an "
            "English name (e.g. de, deu, deu_Latn, German)"
        ) from None


def languages(text: str) -> tuple[str, ...]:
    """Comma-separated languages → unique codes in the given order."""
    codes = [language(x) for x in text.split(",") if x.strip()]
    if not codes:
        raise argparse.ArgumentTypeError("expected comma-separated languages, e.g. de,zh,sw")
    return tuple(dict.fromkeys(codes))


def ints(text: str) -> tuple[int, ...]:
    """Comma-separated integers and ranges (``2,4,6`` or ``2-8``) → unique ascending ints."""
    out: list[int] = []
    try:
        for part in (x.strip() for x in text.split(",")):
            if "-" in part.lstrip("-"):
                lo, hi = part.split("-", 1)
                out.extend(range(int(lo), int(hi) + 1))
            elif part:
                out.append(int(part))
    except ValueError:
        out = []
    if not out or min(out) < 0:
        raise argparse.ArgumentTypeError(
            f"expected layers like 2,4,6 or 2-8 (non-negative integers), got {text!r}"
        )
    return tuple(sorted(set(out)))


def floats(text: str) -> tuple[float, ...]:
    """Comma-separated finite numbers → a tuple of floats (order kept)."""
    try:
        out = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        out = ()
    if not out or not all(math.isfinite(x) for x in out):
        raise argparse.ArgumentTypeError(f"expected numbers like 0.1,0.25,0.5, got {text!r}")
    return out


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
    group.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's)")
    group.add_argument(
        "--out",
        type=Path,
        default=Path("runs") / command,
        help="run folder for vectors, results and figures (default: %(default)s)",
    )


def add_strength(parser: argparse.ArgumentParser) -> None:
    """Add ``--alpha`` / ``--ratio`` (mutually exclusive): the steering strength."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--alpha", type=float, help="absolute strength: h + alpha * v")
    group.add_argument(
        "--ratio",
        type=float,
        help="relative strength ‖alpha v‖ / ‖h‖ (h: the layer's mean residual norm on the "
        "fitting data)",
    )


def add_fitting(parser: argparse.ArgumentParser) -> None:
    """Add how vectors are fitted: ``--method``, ``--fit-dataset``, ``--n-fit``."""
    group = parser.add_argument_group("fitting")
    add_choice(group, "--method", list(METHOD_NAMES), "mean_diff", "fitting method")
    add_choice(group, "--fit-dataset", list(LOCAL_DATASETS), "flores", "parallel data to fit on")
    group.add_argument(
        "--n-fit", type=int, default=200, help="pairs to fit on (default: %(default)s)"
    )
