"""What each ``interp-steer`` subcommand does: thin calls into the library + run-folder I/O.

Each command takes the parsed ``argparse.Namespace`` (see :mod:`interp_steer.cli.parser`),
reads and checks the data of every language it names, then loads the model, calls one
library function, and writes its outputs into ``args.out``. Errors that mean bad input
(unknown names, missing files or data, settings that do not fit the model) become a
:class:`CommandError`, which the CLI prints as one line, in the command line's words
(:func:`cli_words`: ``--out`` where the library says ``run_dir``).
"""

import argparse
import functools
import itertools
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from interp_steer.analysis.cells import Stage, TaskEvaluator, check_run
from interp_steer.analysis.forcing import ForcingBenchmark, forcing_benchmark
from interp_steer.analysis.lens import cloze_prompts, lens_shares_table, logit_lens
from interp_steer.analysis.similarity import cross_lingual_similarity
from interp_steer.analysis.sweep import layer_sweep
from interp_steer.analysis.transfer import transfer_matrix
from interp_steer.analysis.tuned_lens import LensLike, TunedLens, fit_tuned_lens, load_tuned_lens
from interp_steer.cli.demo import run_demo
from interp_steer.constants import FORCING, FORCING_LANGS, FORCING_STRENGTHS
from interp_steer.data.hub_tasks import hub_offline, hub_reachable
from interp_steer.data.parallel import ParallelCorpus, load_parallel
from interp_steer.data.sources import DataUnavailableError
from interp_steer.data.tasks import load_task
from interp_steer.evaluation.harness import evaluate
from interp_steer.evaluation.results import EvalResult, EvaluationError, compare
from interp_steer.fitting.fit import fit_vector
from interp_steer.models.layers import check_layers
from interp_steer.models.loading import load_model, model_name
from interp_steer.plotting.export import save_figures
from interp_steer.plotting.forcing import plot_forcing, plot_forcing_layers
from interp_steer.plotting.lens import plot_language_shares, plot_token_table
from interp_steer.plotting.similarity import plot_similarity, plot_similarity_matrix
from interp_steer.plotting.sweep import plot_sweep, plot_sweep_heatmap, plot_transfer
from interp_steer.steering.vectors import SteeringVector, alpha_for_ratio
from interp_steer.storage import SettingsError, atomic_write_text

_BAD_INPUT = (
    ValueError,
    FileNotFoundError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
    DataUnavailableError,
)
# what reading a damaged or foreign file raises (a missing key, a list where an object
# belongs): bad input too, reported naming the file where the reader knows it
_DAMAGED = (KeyError, TypeError, AttributeError)


_CLI_WORDS = (
    (r"\bpass another output path\b", "use another --out"),
    (r"\b(?:pass )?resume=False to overwrite it\b", "pass --no-resume to start over"),
    (r"\banother run_dir\b", "another --out"),
)
"""Library advice → the command-line flag that does it (the one place they are mapped)."""


def cli_words(message: str) -> str:
    """A library message with its advice in command-line flags instead of Python arguments.

    >>> cli_words("r.json holds 3 items; pass another output path, or resume=False to "
    ...           "overwrite it")
    'r.json holds 3 items; use another --out, or pass --no-resume to start over'
    >>> cli_words("runs/x holds a run with different settings (n: 4 → 40); use another run_dir")
    'runs/x holds a run with different settings (n: 4 → 40); use another --out'
    """
    for pattern, flag in _CLI_WORDS:
        message = re.sub(pattern, flag, message)
    return message


class CommandError(Exception):
    """Bad input or a failed run, reported by the CLI as one line (exit code 2)."""

    def one_line(self) -> str:
        """The message on one line."""
        return " ".join(str(self).split())


def _command(fn: Callable[[argparse.Namespace], None]) -> Callable[[argparse.Namespace], None]:
    @functools.wraps(fn)
    def run(args: argparse.Namespace) -> None:
        try:
            _check_out(args.out)
            fn(args)
        except EvaluationError as err:
            message = cli_words(str(err))
            raise CommandError(f"{message} (partial results kept in {args.out})") from err
        except SettingsError as err:  # a saved run of other settings: never reused
            if os.environ.get("INTERP_STEER_TRACEBACK"):
                raise
            raise CommandError(err.with_hint("use another --out")) from err
        except _BAD_INPUT as err:
            if os.environ.get("INTERP_STEER_TRACEBACK"):
                raise
            raise CommandError(cli_words(str(err)) or type(err).__name__) from err

    return run


# ----------------------------------------------------------------- shared I/O


def _check_out(out: Path) -> None:
    """Refuse a run folder that is a file, or lies under one, before any work."""
    for path in (out, *out.parents):
        if path.exists():
            if not path.is_dir():
                raise NotADirectoryError(f"--out {out}: {path} is a file, not a folder")
            return


def _read(path: Path, load: Callable[[Path], Any], what: str) -> Any:
    """``load(path)``, with a damaged or foreign file reported as one ``ValueError`` naming it."""
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not {what}")
    try:
        return load(path)
    except _DAMAGED as err:
        raise ValueError(f"{path} is not {what}: {type(err).__name__}: {err}") from None


def _check_model_layers(model: Any, args: argparse.Namespace) -> None:
    """Check ``--layer``/``--layers``/``--matrix-layer`` against the loaded model, before work."""
    for flag in ("layer", "layers", "matrix_layer"):
        value = getattr(args, flag, None)
        if value is not None:
            try:
                check_layers(model, value)
            except ValueError as err:
                raise ValueError(f"--{flag.replace('_', '-')}: {err}") from None
    matrix, layers = getattr(args, "matrix_layer", None), getattr(args, "layers", None)
    if matrix is not None and layers is not None and matrix not in layers:
        raise ValueError(f"--matrix-layer {matrix} is not among --layers {list(layers)}")


def _model(args: argparse.Namespace) -> Any:
    """Load ``args.model`` with ``--device/--dtype/--threads``."""
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype) if args.dtype else None
    _say(f"loading {args.model} ...")
    model = load_model(args.model, device=args.device, dtype=dtype)
    _check_model_layers(model, args)
    return model


def _check_parallel(dataset: str, langs: tuple[str, ...], n: int) -> None:
    """Read every language's parallel data, so a missing one fails before any work."""
    for lang in langs:
        load_parallel(dataset, lang, n=n)


def _check_cells(
    evaluator: TaskEvaluator,
    langs: tuple[str, ...],
    fit_langs: tuple[str, ...],
    args: argparse.Namespace,
    stages: tuple[Stage, ...],
) -> None:
    """Check every language's task items and fitting pairs before the model is loaded.

    The library checks them again (:func:`~interp_steer.analysis.cells.open_run`), after
    the model is loaded; here a language without data fails before any work.
    """
    fit = {"dataset": args.fit_dataset, "n": args.n_fit, "split": None}
    check_run(evaluator, langs, fit_langs, fit, stages)


def _translator(args: argparse.Namespace) -> str | None:
    """``--translator`` checked against ``--baseline`` and where the model can come from."""
    name = args.translator
    if args.baseline != "translator":
        if name is not None:
            raise ValueError("--translator is used only with --baseline translator")
        return None
    if name is None:
        raise ValueError(
            "--baseline translator needs --translator MODEL: a Hugging Face seq2seq "
            "translation model (a local folder, or a hub id such as "
            "facebook/nllb-200-distilled-600M)"
        )
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path)
    if path.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ValueError(f"--translator {name}: not a folder holding a translation model")
    if not hub_offline() and not hub_reachable():
        raise DataUnavailableError(
            f"--translator {name} is read from the Hugging Face hub, which cannot be reached "
            "from here: give a local folder holding the model, or set HF_HUB_OFFLINE=1 if "
            "the hub cache holds it"
        )
    return name


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def write_table(table: pd.DataFrame, path: Path) -> Path:
    """Write ``table`` as CSV atomically and return the path."""
    return atomic_write_text(path, table.to_csv(index=False))


def _strength(vector: Any, alpha: float | None, ratio: float | None) -> float:
    """Absolute alpha from ``--alpha`` or ``--ratio`` (default alpha 1)."""
    if ratio is not None:
        return alpha_for_ratio(vector, ratio)
    return 1.0 if alpha is None else alpha


def _load_vector(path: Path | None) -> Any:
    if path is None:
        return None
    if path.suffix != ".safetensors":  # as SteeringVector.load reads it
        path = path.with_name(path.name + ".safetensors")
    return _read(path, SteeringVector.load, "a steering vector")


def _eval_runs(folder: Path) -> list[EvalResult]:
    """The evaluation results in ``folder``; a file that is not one is named and left out."""
    runs = []
    for path in sorted(folder.glob("*.json")):
        try:
            runs.append(_read(path, EvalResult.load, "an evaluation result"))
        except (ValueError, OSError) as err:
            _say(f"eval.csv leaves out {path}: {' '.join(str(err).split())}")
    return runs


def _done(paths: list[Path], started: float) -> None:
    for path in paths:
        print(path)
    _say(f"done in {time.perf_counter() - started:.1f} s")


# ----------------------------------------------------------------- commands


@_command
def cmd_fit(args: argparse.Namespace) -> None:
    """``interp-steer fit``: fit one vector and save it under ``vectors/``."""
    started = time.perf_counter()
    if args.pairs is not None:
        corpus = ParallelCorpus.from_file(
            args.pairs,
            english_col=args.english_column,
            target_col=args.target_column,
            source_lang=args.lang,
        ).head(args.n)
    else:
        corpus = load_parallel(args.dataset, args.lang, n=args.n)
    hyper = {k: getattr(args, k) for k in ("solver", "lr", "epochs", "beta")}
    model = _model(args)
    vector = fit_vector(
        model,
        corpus,
        layer=args.layer,
        method=args.method,
        pooling=args.pooling,
        **{k: v for k, v in hyper.items() if v is not None},
    )
    path = vector.save(args.out / "vectors" / f"{args.lang}-L{args.layer}-{args.method}")
    _say(
        f"fitted {args.method} at layer {args.layer} on {len(corpus)} pairs: "
        f"‖v‖ = {vector.norm:.3f}"
    )
    _done([path], started)


@_command
def cmd_eval(args: argparse.Namespace) -> None:
    """``interp-steer eval``: one evaluation into ``eval/``; ``eval.csv`` compares them all."""
    started = time.perf_counter()
    vector = _load_vector(args.vector)
    if vector is None and (args.alpha is not None or args.ratio is not None):
        raise ValueError("--alpha/--ratio need --vector")
    alpha = _strength(vector, args.alpha, args.ratio) if vector is not None else 0.0
    translator = _translator(args)
    label = args.baseline
    if vector is not None:
        label += f"-{args.vector.name.removesuffix('.safetensors')}-a{alpha:.4g}-{args.positions}"
    path = args.out / "eval" / f"{args.task}-{args.lang}-{args.split}-{label}.json"
    # the data first: a missing language or an unreachable hub fails before the model loads
    if args.task == FORCING:
        load_parallel("flores", args.lang, n=args.n)  # what forcing continues
        task: Any = args.task
    else:
        task = load_task(args.task, args.lang, split=args.split, n=args.n)
    model = _model(args)
    result = evaluate(
        model,
        task,
        args.lang,
        vector=vector,
        alpha=alpha,
        positions=args.positions,
        baseline=args.baseline,
        n=args.n,
        split=args.split,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        translator=translator,
        output=path,
        resume=args.resume,
    )
    table = compare(_eval_runs(args.out / "eval"))
    csv = write_table(table, args.out / "eval.csv")
    _say(f"{args.task}/{args.lang} {result.method}: accuracy {result.accuracy:.3f} (n={result.n})")
    _say(table[["task", "lang", "method", "accuracy", "gain", "p_value"]].to_string(index=False))
    _done([path, csv], started)


@_command
def cmd_sweep(args: argparse.Namespace) -> None:
    """``interp-steer sweep``: layer × strength sweep, resumable in ``--out``."""
    started = time.perf_counter()
    evaluator = TaskEvaluator(
        args.task, select_items=args.select_items, n=args.n, positions=args.positions
    )
    stages: tuple[Stage, ...] = ("select",) if args.no_test else ("select", "test")
    _check_cells(evaluator, args.langs, args.langs, args, stages)
    model = _model(args)
    result = layer_sweep(  # its bar over the cells closes before any error prints
        model,
        args.langs,
        task=evaluator,
        layers=args.layers,
        method=args.method,
        ratios=args.ratios,
        fit_dataset=args.fit_dataset,
        n_fit=args.n_fit,
        test=not args.no_test,
        run_dir=args.out,
    )
    figures = {"sweep": plot_sweep(result)}
    figures.update(
        {f"sweep_heatmap_{lang}": plot_sweep_heatmap(result, lang) for lang in result.langs}
    )
    paths = [
        result.save(args.out / "sweep.json"),
        write_table(result.to_frame(), args.out / "sweep.csv"),
    ]
    for lang in result.langs:  # the held-out test result first, the selection score after
        summary = result.summary(lang)
        if summary is None:
            _say(f"{lang}: every cell failed (see sweep.json meta['failed']); nothing selected")
            continue
        _say(f"{lang}: {summary.line()}")
        _say(f"    {summary.verdict}")
    _done(paths + save_figures(figures, args.out / "figures"), started)


@_command
def cmd_lens(args: argparse.Namespace) -> None:
    """``interp-steer lens``: lens language shares, base and (with a vector) steered.

    Each prompt is read at its last token, where the model is about to answer: a
    ``--prompt`` as given (trailing whitespace dropped), a ``--dataset`` sentence cut
    before its last word (:func:`~interp_steer.analysis.lens.cloze_prompts`), not after
    its full stop. With ``--vector`` the steered token table is written too. ``--lens
    tuned`` reads through a tuned lens (:func:`_tuned_lens`); ``lens.json`` records which
    lens (``meta["lens"]``, and the tuned lens's fingerprint and training texts).
    """
    started = time.perf_counter()
    if args.tuned_lens is not None and args.lens != "tuned":
        raise ValueError("--tuned-lens is read only with --lens tuned")
    if args.prompt:
        prompts = [p.rstrip() for p in args.prompt]
    else:
        prompts = cloze_prompts(load_parallel(args.dataset, args.lang, n=args.n).target)
    vector = _load_vector(args.vector)
    if vector is None and (args.alpha is not None or args.ratio is not None):
        raise ValueError("--alpha/--ratio need --vector")
    alpha = _strength(vector, args.alpha, args.ratio) if vector is not None else 1.0
    name = args.vector.name.removesuffix(".safetensors") if vector is not None else None
    model = _model(args)
    lens = _tuned_lens(model, args.tuned_lens) if args.lens == "tuned" else "logit"
    result = logit_lens(
        model, prompts, vector=vector, alpha=alpha, lang=args.lang, k=args.k, vector_name=name,
        lens=lens,
    )  # fmt: skip
    _say(f"lens: {result.meta['lens']}")
    figures = {"lens_shares": plot_language_shares(result), "lens_tokens": plot_token_table(result)}
    if "steered" in result.variants:
        figures["lens_tokens_steered"] = plot_token_table(result, variant="steered")
    paths = [
        result.save(args.out / "lens.json"),
        write_table(lens_shares_table(result), args.out / "lens.csv"),
    ]
    _done(paths + save_figures(figures, args.out / "figures"), started)


def _tuned_lens(model: Any, path: Path | None) -> LensLike:
    """``--lens tuned``'s lens: ``--tuned-lens PATH``, else the model's saved one, else fit one.

    A lens fitted here uses :func:`~interp_steer.analysis.fit_tuned_lens`'s defaults and is
    saved where :func:`~interp_steer.analysis.load_tuned_lens` finds it next time.
    """
    if path is not None:
        _say(f"tuned lens: {path}")
        return TunedLens.load(path)  # logit_lens checks it was trained on these weights
    try:
        lens = load_tuned_lens(model)
    except FileNotFoundError:
        _say(
            f"no tuned lens saved for {model_name(model)} with these weights: fitting one with "
            "fit_tuned_lens's defaults (12 languages x 2 FLORES sentences; gemma-3-270m: ~5 "
            "min on 2 CPU cores) and saving it for next time ..."
        )
        lens = fit_tuned_lens(model)
        _say(f"tuned lens fitted in {lens.meta['seconds']:.0f} s")
        return lens
    _say(f"tuned lens: the one saved for {lens.model} (fingerprint {lens.fingerprint})")
    return lens


@_command
def cmd_similarity(args: argparse.Namespace) -> None:
    """``interp-steer similarity``: per-layer similarity of each language to English."""
    started = time.perf_counter()
    _check_parallel(args.dataset, args.langs, args.n)
    model = _model(args)
    result = cross_lingual_similarity(
        model,
        args.langs,
        dataset=args.dataset,
        n=args.n,
        layers=args.layers,
        pooling=args.pooling,
        cache_dir=args.out / "activations",  # keyed by texts, layers, pooling and model
    )
    layer = (
        args.matrix_layer
        if args.matrix_layer is not None
        else result.layers[len(result.layers) // 2]
    )
    figures = {
        "similarity": plot_similarity(result),
        "similarity_cka": plot_similarity(result, "cka", threshold=None),
        "similarity_retrieval": plot_similarity(result, "retrieval", threshold=None),
        f"similarity_matrix_L{layer}": plot_similarity_matrix(result, layer),
    }
    paths = [
        result.save(args.out / "similarity.json"),
        write_table(result.to_frame(), args.out / "similarity.csv"),
    ]
    _done(paths + save_figures(figures, args.out / "figures"), started)


@_command
def cmd_transfer(args: argparse.Namespace) -> None:
    """``interp-steer transfer``: the transfer matrix, resumable in ``--out``."""
    started = time.perf_counter()
    evaluator = TaskEvaluator(args.task, n=args.n)
    targets = args.targets or args.langs
    _check_cells(evaluator, targets, args.langs, args, ("test",))
    model = _model(args)
    result = transfer_matrix(  # its bar closes before an error prints
        model,
        args.langs,
        task=evaluator,
        layer=args.layer,
        method=args.method,
        ratio=args.ratio,
        alpha=args.alpha,
        targets=targets,
        english=not args.no_english,
        fit_dataset=args.fit_dataset,
        n_fit=args.n_fit,
        run_dir=args.out,
    )
    paths = [
        result.save(args.out / "transfer.json"),
        write_table(result.to_frame(), args.out / "transfer.csv"),
    ]
    _done(paths + save_figures({"transfer": plot_transfer(result)}, args.out / "figures"), started)


def _forcing_args(args: argparse.Namespace) -> dict[str, Any]:
    """``interp-steer forcing``'s options as :func:`forcing_benchmark`'s arguments, checked.

    ``--langs`` and ``--layers`` may be space- or comma-separated (each word is a list);
    ``--strengths`` replaces the default grid of each operator it names. Every language's
    corpus is read, and checked to hold the three splits, before the model loads.
    """
    langs = tuple(dict.fromkeys(code for part in args.langs for code in part))
    unknown = [code for code in langs if code not in FORCING_LANGS]
    if unknown:
        raise ValueError(
            f"--langs: {', '.join(unknown)} is not a forcing language; use "
            f"{' '.join(FORCING_LANGS)}"
        )
    given: dict[str, tuple[float, ...]] = {}
    for op, values in args.strengths or ():
        if op in given:
            raise ValueError(f"--strengths names {op} twice; give {op}=S1,S2,... once")
        given[op] = values
    operators = tuple(dict.fromkeys(args.operators))
    unused = [op for op in given if op not in operators]
    if unused:
        raise ValueError(
            f"--strengths names {', '.join(unused)}, which is not among --operators "
            f"{' '.join(operators)}"
        )
    needed = args.n_select + args.n_test + args.n_fit
    for lang in langs:
        corpus = load_parallel(args.source, lang)
        if needed > len(corpus):
            raise ValueError(
                f"--n-select + --n-test + --n-fit = {needed} exceeds the {len(corpus)} pairs "
                f"of {corpus.name}: the selection, test and fitting pairs must not overlap"
            )
    layers = None
    if args.layers:
        layers = tuple(sorted({layer for part in args.layers for layer in part}))
    return {
        "langs": langs,
        "methods": tuple(dict.fromkeys(args.methods)),
        "operators": operators,
        "directions": tuple(dict.fromkeys(args.directions)),
        "layers": layers,
        "strengths": {op: given.get(op, FORCING_STRENGTHS[op]) for op in operators},
        "n_fit": args.n_fit,
        "n_select": args.n_select,
        "n_test": args.n_test,
        "source": args.source,
        "positions": args.positions,
        "k": args.k,
        "max_new_tokens": args.max_new_tokens,
        "batch_size": args.batch_size,
        "seed": args.seed,
    }


def _forcing_lines(result: ForcingBenchmark) -> list[str]:
    """One line per tested cell: the held-out test score first, then what was selected."""
    lines = []
    for row in result.table().itertuples():
        base = f"unsteered {row.unsteered_score:.3f}, gain {row.gain:+.3f}"
        lines.append(
            f"{row.lang} {row.direction} {row.method}·{row.operator}: test score "
            f"{row.score:.3f} [{row.score_low:.3f}, {row.score_high:.3f}] (control "
            f"{row.control:.3f}, relevance {row.relevance:.3f}; {base}) at layer {row.layer}, "
            f"strength {row.strength:g}"
        )
    failed = result.meta.get("failed") or {}
    if failed:
        lines.append(f"{len(failed)} cells failed (non-finite values): see forcing.json meta")
    return lines


@_command
def cmd_forcing(args: argparse.Namespace) -> None:
    """``interp-steer forcing``: the language-forcing benchmark, resumable in ``--out/forcing``.

    Writes ``forcing.json`` (every cell), ``forcing.csv`` (the test table) and
    ``figures/forcing`` (control vs relevance) plus ``figures/forcing_layers_<direction>_
    <method>_<operator>`` (the per-layer selection score) for each combination.
    """
    started = time.perf_counter()
    kwargs = _forcing_args(args)
    args.layers = kwargs["layers"]  # checked against the model as it loads
    model = _model(args)
    result = forcing_benchmark(  # its bar over the cells closes before any error prints
        model, run_dir=args.out / "forcing", resume=args.resume, **kwargs
    )
    figures = {"forcing": plot_forcing(result)}
    for d, m, o in itertools.product(result.directions, result.methods, result.operators):
        fig = plot_forcing_layers(result, direction=d, method=m, operator=o)  # type: ignore[arg-type]
        figures[f"forcing_layers_{d}_{m}_{o}"] = fig
    paths = [
        result.save(args.out / "forcing.json"),
        write_table(result.table(), args.out / "forcing.csv"),
    ]
    for line in _forcing_lines(result):
        _say(line)
    _done(paths + save_figures(figures, args.out / "figures"), started)


@_command
def cmd_demo(args: argparse.Namespace) -> None:
    """``interp-steer demo``: see :func:`interp_steer.cli.demo.run_demo`."""
    started = time.perf_counter()
    model = _model(args) if not args.fast else None
    report = run_demo(args.out, model=model, fast=args.fast)
    _say(f"open {report} in a browser")
    _say(f"elapsed: {(time.perf_counter() - started) / 60:.1f} min")


COMMANDS: dict[str, Callable[[argparse.Namespace], None]] = {
    "fit": cmd_fit,
    "eval": cmd_eval,
    "sweep": cmd_sweep,
    "lens": cmd_lens,
    "similarity": cmd_similarity,
    "transfer": cmd_transfer,
    "forcing": cmd_forcing,
    "demo": cmd_demo,
}
"""Subcommand name → implementation."""


__all__ = [
    "COMMANDS",
    "CommandError",
    "cli_words",
    "write_table",
]
