"""The study's XCOPA stages: sweep, table, similarity, transfer and logit lens.

Each stage takes ``(model, cfg, root)`` and writes into the study's run folder ``root``
(resumably): ``sweep*``, ``vectors/``, ``eval/``, ``similarity.json``, ``transfer*`` and
``lens.json``. :func:`repro.run.run_study` runs them in that order.
"""

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
from interp_steer.steering import SteeringVector
from repro.config import BASELINE_ROWS, Row, StudyConfig, steered_rows
from repro.vectors import fit_saved, selected, shared_cell, strength

__all__ = ["lens_stage", "similarity_stage", "sweep_stage", "table_stage", "transfer_stage"]


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


def _vector(model: Any, cfg: StudyConfig, root: Path, lang: str, method: str) -> SteeringVector:
    """The study vector of ``method`` for ``lang`` at the selected layer (fitted once, saved)."""
    n_fit = cfg.bipo_n_fit if method == "bipo" else cfg.n_fit
    return fit_saved(
        model,
        cfg,
        root / "vectors" / f"{lang}-{method}",
        load_parallel("flores", lang, n=n_fit),
        layer=selected(root, lang)["layer"],
        method=method,
    )


def table_stage(model: Any, cfg: StudyConfig, root: Path) -> None:
    """XCOPA test items: every baseline and steered row, and English damage, per language."""
    for lang in cfg.langs:
        best = selected(root, lang)
        runs: list[tuple[str, str, SteeringVector | None, float]] = [
            (b, b, None, 0.0) for b in BASELINE_ROWS
        ]
        for method in cfg.methods:
            v = _vector(model, cfg, root, lang, method)
            for row in steered_rows((method,)):  # with ``<method>_scaled`` where SCALED
                runs.append((row.name, "basic", v, strength(v, row, best["strength"])))
        v = _vector(model, cfg, root, lang, "mean_diff")
        runs.append(
            ("english_damage", "translate_test", v, strength(v, Row("mean_diff"), best["strength"]))
        )
        for tag, baseline, vector, alpha in runs:
            path = root / "eval" / f"{lang}-{tag}.json"
            evaluate(  # a done cell returns at once; changed settings are an error
                model,
                "xcopa",
                lang,
                vector=vector,
                alpha=alpha if vector else 1.0,
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
    v = _vector(model, cfg, root, lang, "mean_diff")
    alpha = strength(v, Row("mean_diff"), selected(root, lang)["strength"])
    prompts = list(load_parallel("flores", lang, n=cfg.n_lens).target)
    logit_lens(model, prompts, vector=v, alpha=alpha, lang=lang).save(root / "lens.json")
