"""Option types and shared options of the ``interp-steer`` command line.

Each type function turns one command-line string into a checked value or raises
``argparse.ArgumentTypeError`` with one line saying what was expected.

Example:
    >>> ints("2-4,8"), floats("0.1,0.5"), languages("German,zh")
    ((2, 3, 4, 8), (0.1, 0.5), ('de', 'zh'))
"""

import argparse
import math
from pathlib import Path

__all__ = [
    "DEFAULT_RATIOS",
    "METHOD_NAMES",
    "MODEL_ALIASES",
    "POSITION_MODES",
    "add_common",
    "add_fitting",
    "add_strength",
    "floats",
    "ints",
    "language",
    "languages",
]

# Names from modules that import torch and TransformerLens (seconds), repeated here so
# that `interp-steer --help` answers at once; tests/test_cli.py checks they agree.
METHOD_NAMES: tuple[str, ...] = ("mean_diff", "pca", "mse", "bipo")
"""``interp_steer.fitting.METHODS``."""
POSITION_MODES: tuple[str, ...] = ("all", "prompt", "generated", "last")
"""``interp_steer.steering.POSITION_MODES``."""
MODEL_ALIASES: tuple[str, ...] = ("gemma-3-270m", "smollm2-135m", "tiny")
"""``interp_steer.models.OFFLINE_MODELS``."""
DEFAULT_RATIOS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0)
"""``interp_steer.sweep.DEFAULT_RATIOS``."""


def language(text: str) -> str:
    """One language in any spelling (``de``, ``deu``, ``deu_Latn``, ``German``) → its code.

    >>> language("deu_Latn")
    'de'
    """
    from interp_steer.languages import canonical

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
    from interp_steer.sources import LOCAL_DATASETS

    group = parser.add_argument_group("fitting")
    group.add_argument(
        "--method",
        choices=list(METHOD_NAMES),
        default="mean_diff",
        help="fitting method (default: %(default)s)",
    )
    group.add_argument(
        "--fit-dataset",
        choices=list(LOCAL_DATASETS),
        default="flores",
        help="parallel data to fit on (default: %(default)s)",
    )
    group.add_argument(
        "--n-fit", type=int, default=200, help="pairs to fit on (default: %(default)s)"
    )
