"""The paper's study on a model that runs here: ``make results`` → ``docs/results.md``.

:func:`run_study` reproduces, at a size 2 CPU cores finish in hours (each stage's compute is
summed in ``study.json``), the comparison of *Improving Multilingual Language Models by
Aligning Representations through Steering* (arXiv 2505.12584) on XCOPA:

1. per language, a mean-difference **layer × strength sweep** fitted on FLORES pairs and
   selected on XCOPA's validation split (never on test items);
2. at the selected layer and strength, vectors by every method (``mean_diff``, ``pca``,
   ``mse`` as the paper trains it — AdamW, lr 1e-8, applied at α = 1 — and ``bipo``
   trained as the paper trains it — batch 1, 100 warm-up steps, one epoch over the same
   pairs, the scale-aware learning rate — applied at α = 1), and ``sft``, a LoRA fine-tune
   on the same pairs (the paper's §7 comparison);
3. on XCOPA test items: ``basic``, ``translate_test`` (Google MT), ``self_translate``,
   ``xlt``, ``k_shot`` and
   each steered run, with gains over ``basic`` and McNemar p-values; English damage
   (the selected vector on the English MT items, the paper's Table 4);
4. the similarity of every FLORES language to English per layer, the transfer matrix of
   the study languages, the logit lens base vs steered, and Wendler's latent-language
   figure (logit and tuned lens, base vs steered; :mod:`repro.trajectory`);
5. the language-forcing benchmark (control × relevance, after CLaS-Bench) over the
   fitting methods, layers and operators, and the control model (:mod:`repro.forcing`).

Everything lands in a resumable run folder; :func:`repro.page.write_results` turns it into
the Markdown page and the figures. The stages are in :mod:`repro.xcopa` (the above),
:mod:`repro.control` (an English-centric control model) and :mod:`repro.generation`
(MSVAMP-fitted vectors for the nine MSVAMP languages on MSVAMP, MGSM and language forcing,
with the same rows); the sizes are a :class:`~repro.config.StudyConfig`.
"""

import argparse
import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from interp_steer.models import load_model, model_name
from interp_steer.storage import atomic_write_json, locks_run
from repro.config import QUICK, STUDY, StudyConfig
from repro.control import control_stage
from repro.forcing import forcing_stage
from repro.generation import (
    bipo_alpha_stage,
    bipo_default_epochs_stage,
    bipo_default_lr_stage,
    bipo_defaults_stage,
    bipo_epochs_stage,
    bipo_lr_stage,
    bipo_pairing_stage,
    gen_adapters,
    gen_kl,
    gen_sweep,
    gen_table,
    gen_transfer,
    gen_vectors,
)
from repro.page import write_results
from repro.timing import heartbeat
from repro.trajectory import trajectory_stage
from repro.xcopa import (
    adapters_stage,
    lens_stage,
    similarity_stage,
    sweep_stage,
    table_stage,
    transfer_stage,
    vectors_stage,
)

__all__ = ["STAGES", "Stage", "main", "run_study"]

Stage = Callable[[Any, StudyConfig, Path], None]
"""A stage of the study: ``stage(model, config, run_folder)`` writes its files, resumably."""

STAGES: tuple[tuple[str, Stage], ...] = (
    ("sweep", sweep_stage),
    ("gen_sweep", gen_sweep),
    ("bipo_lr", bipo_lr_stage),
    ("bipo_epochs", bipo_epochs_stage),
    ("bipo_pairing", bipo_pairing_stage),
    ("vectors", vectors_stage),
    ("adapters", adapters_stage),
    ("table", table_stage),
    ("similarity", similarity_stage),
    ("transfer", transfer_stage),
    ("lens", lens_stage),
    ("trajectory", trajectory_stage),
    ("control", control_stage),
    ("gen_vectors", gen_vectors),
    ("gen_adapters", gen_adapters),
    ("gen_kl", gen_kl),
    ("bipo_default_lr", bipo_default_lr_stage),
    ("bipo_default_epochs", bipo_default_epochs_stage),
    ("bipo_defaults", bipo_defaults_stage),
    ("bipo_alpha", bipo_alpha_stage),
    ("gen_table", gen_table),
    ("gen_transfer", gen_transfer),
    ("forcing", forcing_stage),
)
"""The stages in the order :func:`run_study` runs them, by the names ``study.json`` times.

Both sweeps come first: BiPO's learning rate (``bipo_lr``), then its epochs at that rate
(``bipo_epochs``), are chosen at the generation sweep's layer, and every BiPO vector
(XCOPA's too) uses them."""


@locks_run("out")  # one study per run folder at a time
def run_study(
    out: str | os.PathLike[str],
    config: StudyConfig = STUDY,
    *,
    model: Any = None,
    stages: tuple[str, ...] | None = None,
) -> Path:
    """Run the study into ``out`` (resumable) and return the path of its ``study.json``.

    ``stages`` runs only those stages, in the order given (names of :data:`STAGES`), e.g.
    the generation sweep and the KL comparison first; None runs them all in order.
    """
    root = Path(out)
    by_name = dict(STAGES)
    chosen = tuple(by_name) if stages is None else tuple(stages)
    unknown = [s for s in chosen if s not in by_name]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; expected some of {list(by_name)}")
    model = load_model(config.model) if model is None else model
    timings: dict[str, float] = {}
    summary_path = root / "study.json"
    old = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.is_file() else {}
    base = dict(old.get("compute_s", {}))  # what earlier invocations spent
    t0 = time.perf_counter()
    running: dict[str, float] = {}  # the stage now running -> its start
    complete = False

    def record() -> None:  # every HEARTBEAT_S seconds and at the end: a kill loses little
        now = time.perf_counter()
        spent = dict(timings)
        for stage, start in list(running.items()):
            spent[stage] = spent.get(stage, 0.0) + now - start
        _summary(root, config, model, spent, now - t0, complete=complete, base=base)

    with heartbeat(record):
        for stage in chosen:
            fn = by_name[stage]
            start = time.perf_counter()
            print(f"[{(start - t0) / 60:5.1f} min] {stage}", flush=True)
            running[stage] = start
            try:
                fn(model, config, root)
            finally:  # an interrupted stage's time counts too
                timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start
                running.pop(stage)
        complete = stages is None
    return summary_path


def _summary(
    root: Path,
    config: StudyConfig,
    model: Any,
    timings: dict[str, float],
    total: float,
    *,
    complete: bool,
    base: dict[str, float],
) -> Path:
    """Write ``study.json``: config, this invocation's stage times, compute summed over all.

    ``base`` is the compute earlier invocations recorded (read when this one started), so
    writing again during the run (:func:`~repro.timing.heartbeat`) never counts twice.
    The config (and model) of a folder that already has one is replaced only by a run
    that completed: a run that failed (e.g. on a saved stage with other settings) or was
    interrupted leaves the record of the run its files come from.
    """
    summary_path = root / "study.json"
    old = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.is_file() else {}
    compute = dict(base)
    for stage, seconds in timings.items():
        compute[stage] = compute.get(stage, 0.0) + seconds
    keep = not complete and "config" in old
    summary = {
        **old,  # keeps notes a person added (e.g. how compute_s was seeded)
        "config": old["config"] if keep else asdict(config),
        "model": old.get("model") if keep else model_name(model),
        "timings_s": timings,
        "compute_s": compute,
        "total_s": total,
        "cpu_count": os.cpu_count(),
    }
    return atomic_write_json(summary_path, summary)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    """``python -m repro``: run the study, then write the results page."""
    parser = argparse.ArgumentParser(prog="python -m repro", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path("runs/results"), help="run folder (resumable)"
    )
    parser.add_argument(
        "--page", type=Path, default=Path("docs/results.md"), help="Markdown page to write"
    )
    parser.add_argument(
        "--figures", type=Path, default=Path("figures"), help="folder for the figures"
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny model, a few items (a smoke run)"
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument(
        "--stages",
        type=lambda text: tuple(text.split(",")),
        help="run only these stages, comma-separated, in this order (of: "
        f"{', '.join(dict(STAGES))}); the page is not written",
    )
    parser.add_argument(
        "--page-only",
        action="store_true",
        help="run no stage: write the page from the run folder as it stands (a folder that "
        "has not run every stage gives a partial page that says which parts are missing)",
    )
    args = parser.parse_args(argv)
    if args.page_only:
        write_results(args.out, page=args.page, figures=args.figures)
        print(f"wrote {args.page} and {args.figures}/ from {args.out} as it stands")
        return 0
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` ends the run like Ctrl-C: times saved
    if args.threads:
        torch.set_num_threads(args.threads)
    run_study(args.out, QUICK if args.quick else STUDY, stages=args.stages)
    if args.stages is not None:
        print(f"ran {', '.join(args.stages)} into {args.out} (the page needs every stage)")
        return 0
    write_results(args.out, page=args.page, figures=args.figures)
    print(f"wrote {args.page} and {args.figures}/")
    return 0
