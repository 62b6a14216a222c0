"""The study's XCOPA stages: sweep, vectors, adapters, table, similarity, transfer, lens.

Each stage takes ``(model, cfg, root)`` and writes into the study's run folder ``root``
(resumably): ``sweep*``, ``vectors/``, ``adapters/``, ``eval/``, ``similarity.json``,
``transfer*`` and ``lens.json``. :func:`repro.run.run_study` runs them in that order.
"""

import functools
from pathlib import Path
from typing import Any

from interp_steer.analysis import (
    cross_lingual_similarity,
    layer_sweep,
    logit_lens,
    transfer_matrix,
)
from interp_steer.data import load_parallel
from interp_steer.evaluation import evaluate
from repro.config import BASELINE_ROWS, Row, StudyConfig, steered_rows
from repro.vectors import Steering, fit_rows, selected, shared_cell, steering

__all__ = [
    "adapters_stage",
    "lens_stage",
    "similarity_stage",
    "sweep_stage",
    "table_stage",
    "transfer_stage",
    "vectors_stage",
]


def sweep_stage(model: Any, cfg: StudyConfig, root: Path) -> None:
    """Layer × strength sweep per language: FLORES-fitted vectors, XCOPA validation items."""
    layer_sweep(
        model,
        cfg.langs,
        task="xcopa",
        n=cfg.n_select,
        layers=cfg.layers,
        ratios=cfg.ratios,
        fit_dataset="flores",
        n_fit=cfg.n_fit,
        test=False,
        run_dir=root / "sweep",
    ).save(root / "sweep.json")


def _steering(model: Any, cfg: StudyConfig, root: Path, lang: str, row: Row) -> Steering:
    """What a steered row of ``lang`` runs with: fitted on FLORES pairs on first use."""
    best = selected(root, lang)
    return steering(
        model, root, "xcopa", lang, row,
        corpus=load_parallel("flores", lang, n=cfg.n_fit),
        layer=best["layer"],
        ratio=best["strength"],
    )  # fmt: skip


def vectors_stage(model: Any, cfg: StudyConfig, root: Path) -> None:
    """Every method's vector per language at the selected layer (saved in ``vectors/``)."""
    fit_rows(functools.partial(_steering, model, cfg, root), cfg.methods, cfg.langs, "vector")


def adapters_stage(model: Any, cfg: StudyConfig, root: Path) -> None:
    """The LoRA fine-tune per language on the same FLORES pairs (saved in ``adapters/``)."""
    fit_rows(functools.partial(_steering, model, cfg, root), cfg.methods, cfg.langs, "adapter")


def table_stage(model: Any, cfg: StudyConfig, root: Path) -> None:
    """XCOPA test items: every baseline and steered row, and English damage, per language."""
    for lang in cfg.langs:
        runs: list[tuple[str, str, Steering]] = [(b, b, Steering()) for b in BASELINE_ROWS]
        runs += [(row.name, "basic", _steering(model, cfg, root, lang, row))
                 for row in steered_rows(cfg.methods)]  # fmt: skip
        runs.append(
            (
                "english_damage",
                "translate_test",
                _steering(model, cfg, root, lang, Row("mean_diff")),
            )
        )
        for tag, baseline, run in runs:
            path = root / "eval" / f"{lang}-{tag}.json"
            with run.applied(model):
                evaluate(  # a done cell returns at once; changed settings are an error
                    model,
                    "xcopa",
                    lang,
                    vector=run.vector,
                    alpha=run.alpha,
                    baseline=baseline,
                    n=cfg.n_test,
                    output=path,
                )


def similarity_stage(model: Any, cfg: StudyConfig, root: Path) -> None:
    """Similarity of every FLORES language of the study to English, per layer.

    A saved ``similarity.json`` is kept only if it has this run's settings (model,
    languages, ``n``, ...); one with other settings stops the run naming them.
    """
    cross_lingual_similarity(
        model,
        cfg.similarity_langs,
        n=cfg.n_similarity,
        cache_dir=root / "activations",
        output=root / "similarity.json",
    )


def transfer_stage(model: Any, cfg: StudyConfig, root: Path) -> None:
    """Each study language's vector on every study language's XCOPA items."""
    layer, ratio = shared_cell([selected(root, lang) for lang in cfg.langs])
    res = transfer_matrix(
        model,
        cfg.langs,
        task="xcopa",
        n=cfg.n_transfer,
        layer=layer,
        ratio=ratio,
        fit_dataset="flores",
        n_fit=cfg.n_fit,
        run_dir=root / "transfer",
    )
    res.save(root / "transfer.json")


def lens_stage(model: Any, cfg: StudyConfig, root: Path) -> None:
    """The logit lens, base vs steered, on the first study language's FLORES sentences."""
    lang = cfg.langs[0]
    run = _steering(model, cfg, root, lang, Row("mean_diff"))
    prompts = list(load_parallel("flores", lang, n=cfg.n_lens).target)
    logit_lens(model, prompts, vector=run.vector, alpha=run.alpha, lang=lang).save(
        root / "lens.json"
    )
