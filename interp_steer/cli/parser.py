"""The ``interp-steer`` command line: fit, eval, sweep, lens, similarity, transfer, forcing, demo.

Every command writes into a run folder (``--out``, by default ``runs/<command>``) that the
other commands and the Python API read back:

* ``vectors/<lang>-L<layer>-<method>.safetensors`` (+ ``.json``): fitted vectors
  (:meth:`~interp_steer.steering.SteeringVector.load`);
* ``<analysis>.json`` and ``.csv``: results (e.g. :meth:`~interp_steer.analysis.SweepResult.load`);
* ``eval/*.json`` and ``eval.csv``: evaluation runs and their
  :func:`~interp_steer.evaluation.compare` table, which grows with every ``eval`` into the
  same folder;
* ``figures/<name>.html`` (+ ``.png`` where Chromium is installed).

Runs are resumable: a re-run with the same settings skips finished work (sweep and
transfer cells, evaluated items). Bad input ends with exit code 2 and one line on stderr.

Example:
    >>> main(["eval", "--task", "xcopa", "--lang", "Klingon"])  # one line on stderr:
    2

    ``interp-steer eval: error: argument --lang: unknown language 'Klingon'; use an ISO
    639-1/639-3 code, ... (see --help)``
"""

import argparse
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from interp_steer.cli.options import (
    add_choice,
    add_common,
    add_fitting,
    add_strength,
    count,
    finite,
    floats,
    index,
    ints,
    language,
    languages,
    nonnegative,
    operator_strengths,
)
from interp_steer.constants import (
    BASELINE_NAMES,
    DEFAULT_RATIOS,
    DIRECTIONS,
    EVAL_TASKS,
    FORCING_LANGS,
    FORCING_STRENGTHS,
    LOCAL_DATASETS,
    METHOD_NAMES,
    POSITION_MODES,
    TASKS,
)

_EPILOG = "Outputs go to --out (default runs/<command>); see `interp-steer <command> --help`."

LENS_CHOICES = ("logit", "tuned")
"""``interp-steer lens --lens``: the library's lenses (``interp_steer.analysis.LENSES``,
spelled out here so ``--help`` does not import torch; a test keeps the two equal)."""

OPERATOR_CHOICES: tuple[str, ...] = tuple(FORCING_STRENGTHS)
"""``interp-steer forcing --operators``: the steering operators (``interp_steer.steering.
OPERATORS``, read from the keys of ``FORCING_STRENGTHS`` so ``--help`` does not import
torch; a test keeps the two equal)."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line: ``interp-steer fit: error: ...``."""

    def error(self, message: str) -> NoReturn:
        first = message.splitlines()[0] if message else "bad arguments"
        self.exit(2, f"{self.prog}: error: {first} (see --help)\n")


def _add_fit(sub: Any) -> None:
    """``interp-steer fit``."""
    p = sub.add_parser(
        "fit",
        help="fit a steering vector for one language and layer",
        description="Fit a steering vector from English/target pairs and save "
        "it as vectors/<lang>-L<layer>-<method>.safetensors (+ .json).",
    )
    add_common(p, "fit")
    p.add_argument(
        "--lang", type=language, required=True, help="target language (de, deu, German...)"
    )
    p.add_argument(
        "--layer", type=index, required=True, help="block whose hook_resid_post is steered"
    )
    add_choice(p, "--method", list(METHOD_NAMES), "mean_diff", "fitting method")
    add_choice(p, "--dataset", LOCAL_DATASETS, "flores", "parallel data")
    p.add_argument("--pairs", type=Path, help="a JSONL/CSV/TSV file of pairs instead of --dataset")
    p.add_argument("--english-column", default="english", help="--pairs column with English text")
    p.add_argument("--target-column", default="target", help="--pairs column with target text")
    p.add_argument("--n", type=count, default=200, help="pairs to fit on (default: %(default)s)")
    add_choice(p, "--pooling", ["mean", "last"], "mean", "token pooling of each text")
    p.add_argument(
        "--solver",
        choices=["closed_form", "adamw"],
        help="mse: exact minimiser or the paper's AdamW",
    )
    p.add_argument("--lr", type=finite, help="mse (adamw) / bipo learning rate")
    p.add_argument("--epochs", type=count, help="mse (adamw) / bipo epochs")
    p.add_argument("--beta", type=finite, help="bipo: DPO temperature")


def _add_eval(sub: Any) -> None:
    """``interp-steer eval``."""
    p = sub.add_parser(
        "eval",
        help="evaluate a task, steered or under a baseline",
        description="Evaluate one task and language; results go to eval/*.json "
        "and the comparison of every run in the folder to eval.csv.",
    )
    add_common(p, "eval")
    p.add_argument("--task", choices=EVAL_TASKS, required=True, help="task to evaluate")
    p.add_argument("--lang", type=language, required=True, help="prompt language")
    p.add_argument("--vector", type=Path, help="a saved vector (path with or without .safetensors)")
    add_strength(p)
    add_choice(p, "--positions", POSITION_MODES, "all", "where the vector is added")
    add_choice(
        p,
        "--baseline",
        list(BASELINE_NAMES),
        "basic",
        "prompting baseline; translator translates each item with the --translator model",
    )
    p.add_argument(
        "--translator",
        metavar="MODEL",
        help="--baseline translator only: a Hugging Face seq2seq translation model, as a "
        "local folder or a hub id (e.g. facebook/nllb-200-distilled-600M; needs the hub or "
        "its cache with HF_HUB_OFFLINE=1). Any other translator: Python, evaluate(..., "
        "baseline='translator', translator=<a str -> str function>)",
    )
    p.add_argument("--n", type=count, help="evaluate the first N items (default: all)")
    p.add_argument("--split", default="test", help="task split (default: %(default)s)")
    p.add_argument(
        "--batch-size", type=count, default=8, help="items per batch (default: %(default)s)"
    )
    p.add_argument(
        "--max-new-tokens",
        type=count,
        metavar="N",
        help="tokens generated per answer (math tasks, forcing, self-translations; default: "
        "256, 32 for forcing); recorded with the result",
    )
    p.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="continue the result saved in --out by a run with the same settings "
        "(--no-resume: start over, overwriting it) (default: resume)",
    )


def _add_sweep(sub: Any) -> None:
    """``interp-steer sweep``."""
    p = sub.add_parser(
        "sweep",
        help="layer × strength sweep, selected on held-out data",
        description="Fit a vector per layer, evaluate each (layer, strength) on "
        "the selection set, test the best one. Writes sweep.json/.csv and "
        "figures/sweep*.",
    )
    add_common(p, "sweep")
    p.add_argument("--langs", type=languages, required=True, help="comma-separated languages")
    add_choice(p, "--task", EVAL_TASKS, "xcopa", "task")
    p.add_argument("--layers", type=ints, help="layers, e.g. 2,4,6 or 2-8 (default: all)")
    p.add_argument(
        "--ratios",
        type=floats,
        default=DEFAULT_RATIOS,
        help="strengths ‖αv‖/‖h‖, comma-separated (default: %(default)s)",
    )
    add_fitting(p)
    p.add_argument("--n", type=count, help="items per evaluation (default: all)")
    p.add_argument(
        "--select-items",
        type=count,
        help="select on the first K test items (held out) instead of the val split",
    )
    add_choice(p, "--positions", POSITION_MODES, "all", "where vectors are added")
    p.add_argument(
        "--no-test", action="store_true", help="skip the test-stage run of the selected cell"
    )


def _add_lens(sub: Any) -> None:
    """``interp-steer lens``."""
    p = sub.add_parser(
        "lens",
        help="logit or tuned lens: which language each layer decodes to",
        description="Project every layer's residual stream through the final "
        "norm and unembedding (with --lens tuned: after the tuned lens's translator for "
        "that layer) at each prompt's last token (where the model is about to "
        "answer), identify the language of the top tokens, base vs steered. Writes "
        "lens.json/.csv and figures/lens_* (lens_tokens_steered with --vector).",
    )
    add_common(p, "lens")
    p.add_argument("--lang", type=language, required=True, help="language of the prompts")
    p.add_argument(
        "--prompt",
        action="append",
        help="a prompt, read at its last token (repeatable); default: --n sentences of "
        "--dataset, each cut before its last word",
    )
    add_choice(p, "--dataset", LOCAL_DATASETS, "flores", "where prompts come from")
    p.add_argument(
        "--n", type=count, default=16, help="prompts from --dataset (default: %(default)s)"
    )
    p.add_argument("--vector", type=Path, help="a saved vector for the steered variant")
    add_strength(p)
    p.add_argument("--k", type=count, default=5, help="top tokens per layer (default: %(default)s)")
    add_choice(
        p, "--lens", LENS_CHOICES, "logit",
        "the read-out: the model's own unembedding, or a tuned lens first (the one saved "
        "for this model, else one fitted now with fit_tuned_lens's defaults and saved; "
        "gemma-3-270m: ~5 min on 2 CPU cores)",
    )  # fmt: skip
    p.add_argument(
        "--tuned-lens",
        type=Path,
        metavar="PATH",
        help="with --lens tuned: this saved tuned lens (TunedLens.save's .json/.safetensors "
        "or their stem) instead of the one saved for the model",
    )


def _add_similarity(sub: Any) -> None:
    """``interp-steer similarity``."""
    p = sub.add_parser(
        "similarity",
        help="cross-lingual similarity to English per layer",
        description="Centred cosine, linear CKA and retrieval accuracy of each "
        "language against English on parallel sentences, per layer. Writes "
        "similarity.json/.csv and figures/similarity*.",
    )
    add_common(p, "similarity")
    p.add_argument("--langs", type=languages, required=True, help="comma-separated languages")
    add_choice(p, "--dataset", ("flores", "tatoeba"), "flores", "parallel sentences")
    p.add_argument(
        "--n", type=count, default=200, help="sentences per language (default: %(default)s)"
    )
    p.add_argument("--layers", type=ints, help="layers (default: all)")
    add_choice(p, "--pooling", ["mean", "last"], "mean", "token pooling")
    p.add_argument(
        "--matrix-layer", type=index, help="layer of the language×language figure (default: middle)"
    )


def _add_transfer(sub: Any) -> None:
    """``interp-steer transfer``."""
    p = sub.add_parser(
        "transfer",
        help="vectors of language A applied to language B",
        description="Fit a vector per source language at one layer, evaluate it "
        "on every target language; cell = gain over the unsteered baseline; plus "
        "English damage. Writes transfer.json/.csv and figures/transfer.",
    )
    add_common(p, "transfer")
    p.add_argument(
        "--langs", type=languages, required=True, help="comma-separated source languages"
    )
    p.add_argument("--targets", type=languages, help="target languages (default: the sources)")
    add_choice(p, "--task", EVAL_TASKS, "xcopa", "task")
    p.add_argument("--layer", type=index, required=True, help="layer of every vector")
    add_strength(p)
    add_fitting(p)
    p.add_argument("--n", type=count, help="items per evaluation (default: all)")
    p.add_argument("--no-english", action="store_true", help="skip the English-damage column")


def _add_forcing(sub: Any) -> None:
    """``interp-steer forcing``."""
    p = sub.add_parser(
        "forcing",
        help="language-forcing benchmark: control × relevance per method, operator, layer",
        description="Score every language, direction, method, operator, layer and strength "
        "at forcing the language of a continuation: language control (is it in the "
        "intended language) and semantic relevance (does it still continue its prompt), "
        "combined into their harmonic mean (CLaS-Bench). The best (layer, strength) of "
        "each method and operator is chosen on selection prompts and tested on held-out "
        "test prompts. Resumable: cells and vectors are kept in --out/forcing/. Writes "
        "forcing.json, forcing.csv (the test table) and figures/forcing*.",
    )
    add_common(p, "forcing")
    p.add_argument(
        "--langs",
        type=languages,
        nargs="+",
        required=True,
        metavar="LANG",
        help=f"languages, space- or comma-separated, from {' '.join(FORCING_LANGS)}",
    )
    p.add_argument(
        "--directions",
        nargs="+",
        choices=DIRECTIONS,
        default=list(DIRECTIONS),
        metavar="DIRECTION",
        help="to_english: prompts in the language, English wanted; from_english: English "
        f"prompts, the language wanted (default: {' '.join(DIRECTIONS)})",
    )
    p.add_argument(
        "--methods",
        nargs="+",
        choices=METHOD_NAMES,
        default=["mean_diff"],
        metavar="METHOD",
        help=f"fitting methods, from {', '.join(METHOD_NAMES)} (default: mean_diff)",
    )
    p.add_argument(
        "--operators",
        nargs="+",
        choices=OPERATOR_CHOICES,
        default=["add"],
        metavar="OPERATOR",
        help=f"steering operators, from {', '.join(OPERATOR_CHOICES)} (default: add)",
    )
    p.add_argument(
        "--layers",
        type=ints,
        nargs="+",
        metavar="LAYER",
        help="layers, e.g. 2 4 6, 2,4,6 or 2-8 (default: all)",
    )
    defaults = " ".join(f"{op}={','.join(f'{x:g}' for x in v)}"
                        for op, v in FORCING_STRENGTHS.items())  # fmt: skip
    p.add_argument(
        "--strengths",
        type=operator_strengths,
        nargs="+",
        metavar="OP=S1,S2",
        help="strengths per operator, positive (the sign comes from the direction): add "
        "ratios ‖αv‖/‖h‖, ablate the share removed (at most 1), rotate degrees (at most "
        f"180), clamp multiples of ‖h‖; an operator not named keeps its default ({defaults})",
    )
    add_choice(p, "--source", ("flores", "tatoeba"), "flores", "parallel corpus of the prompts")
    group = p.add_argument_group("sizes (per language; the three must not overlap)")
    group.add_argument(
        "--n-fit", type=count, default=200,
        help="pairs to fit on, from the end of the corpus (default: %(default)s)",
    )  # fmt: skip
    group.add_argument(
        "--n-select", type=count, default=16,
        help="selection prompts: corpus lines 0..N-1 (default: %(default)s)",
    )  # fmt: skip
    group.add_argument(
        "--n-test", type=count, default=32,
        help="held-out test prompts, after the selection ones (default: %(default)s)",
    )  # fmt: skip
    add_choice(p, "--positions", POSITION_MODES, "all", "where the vector acts")
    p.add_argument(
        "--k", type=count, default=4,
        help="distractor prompts per continuation for relevance; chance is 1/(k+1) "
        "(default: %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--max-new-tokens", type=count, default=32, metavar="N",
        help="tokens generated per prompt (default: %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--batch-size", type=count, default=8, help="prompts per batch (default: %(default)s)"
    )
    p.add_argument(
        "--seed", type=nonnegative, default=0,
        help="seed of the distractor draws and intervals (default: %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="reuse the finished cells and vectors of --out/forcing/ (--no-resume: start "
        "over) (default: resume)",
    )


def _add_demo(sub: Any) -> None:
    """``interp-steer demo``."""
    p = sub.add_parser(
        "demo",
        help="the main job: fit, sweep, lens, similarity → report.html",
        description="Fit vectors for a few languages, run a short layer sweep, "
        "the logit-lens and similarity analyses, and write figures/ plus one "
        "self-contained report.html into --out.",
    )
    add_common(p, "demo")
    p.add_argument(
        "--fast", action="store_true", help="tiny random model, a few items: a smoke run in seconds"
    )


SUBCOMMANDS: tuple[Callable[[Any], None], ...] = (
    _add_fit,
    _add_eval,
    _add_sweep,
    _add_lens,
    _add_similarity,
    _add_transfer,
    _add_forcing,
    _add_demo,
)
"""One builder per subcommand, in the order ``--help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    """Return the ``interp-steer`` parser with every subcommand and its options.

    >>> sorted(build_parser()._subparsers._group_actions[0].choices)
    ['demo', 'eval', 'fit', 'forcing', 'lens', 'similarity', 'sweep', 'transfer']
    """
    parser = _Parser(
        prog="interp-steer",
        description="Multilingual activation steering on TransformerLens: fit one vector, "
        "add it to one layer's residual stream, measure what changes.",
        epilog=_EPILOG,
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def _warning_line(command: str) -> Callable[..., None]:
    r"""A ``warnings.showwarning`` that prints ``interp-steer <command>: warning: ...`` on stderr.

    >>> import contextlib, io
    >>> with contextlib.redirect_stderr(io.StringIO()) as err:
    ...     _warning_line("eval")("two\n  lines", UserWarning, "f.py", 1)
    >>> err.getvalue()
    'interp-steer eval: warning: two lines\n'
    """
    # sys.stderr is looked up at each warning: tests and callers may replace it

    def show(message: Any, category: Any, filename: Any, lineno: Any, *rest: Any) -> None:
        text = " ".join(str(message).split())
        print(f"interp-steer {command}: warning: {text}", file=sys.stderr, flush=True)

    return show


def _check_hub(args: argparse.Namespace) -> str | None:
    """Why a hub-only task cannot run here (nothing local, hub unreachable), else None.

    Checked before torch is imported, so the answer comes in about a second.
    """
    task = getattr(args, "task", None)
    if task is None or task in LOCAL_DATASETS or task not in TASKS:
        return None
    # imported here, only for a hub task: the data stage, without torch (--help stays fast)
    from interp_steer.data.hub_tasks import check_hub_task

    # the same: its one error type (--help imports neither)
    from interp_steer.data.sources import DataUnavailableError

    langs = [args.lang] if getattr(args, "lang", None) else []
    langs += [*(getattr(args, "langs", None) or []), *(getattr(args, "targets", None) or [])]
    try:
        for lang in dict.fromkeys(langs):
            check_hub_task(task, lang)
    except (DataUnavailableError, ValueError) as err:
        return str(err)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (0 ok, 2 bad input).

    Args:
        argv: Arguments without the program name (default: ``sys.argv[1:]``).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # argparse: --help (0) or a bad argument (2), already printed
        return int(stop.code or 0)
    failed = _check_hub(args)
    if failed is not None:
        print(f"interp-steer {args.command}: error: {failed}", file=sys.stderr)
        return 2
    # imported here, not at the top: `interp-steer --help` must not wait for torch
    from interp_steer.cli.commands import COMMANDS, CommandError

    try:
        with warnings.catch_warnings():
            warnings.showwarning = _warning_line(args.command)
            COMMANDS[args.command](args)
    except CommandError as err:
        print(f"interp-steer {args.command}: error: {err.one_line()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interp-steer {args.command}: interrupted; re-run to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


__all__ = [
    "LENS_CHOICES",
    "OPERATOR_CHOICES",
    "build_parser",
    "main",
]
