"""The study's control stage: an English-centric model beside the default one.

Runs the similarity analysis and the XCOPA ``basic`` / ``translate_test`` baselines on
``cfg.control_model`` into ``control/`` of the study's run folder (resumably);
:mod:`repro.page_control` turns them into the page section. Called by
:func:`repro.run.run_study` (``model`` is the default model, unused here).
"""

from pathlib import Path
from typing import Any

from interp_steer.analysis import cross_lingual_similarity
from interp_steer.evaluation import evaluate
from interp_steer.models import load_model
from repro.config import StudyConfig

__all__ = ["control_stage"]


def control_stage(model: Any, cfg: StudyConfig, root: Path) -> None:
    """The English-centric control model: similarity to English, XCOPA baselines."""
    if cfg.control_model is None:
        return
    folder = root / "control"
    control = load_model(cfg.control_model)
    cross_lingual_similarity(  # a saved result of other settings is an error naming them
        control,
        cfg.similarity_langs,
        n=cfg.n_similarity,
        cache_dir=folder / "activations",
        output=folder / "similarity.json",
    )
    for lang in cfg.langs:
        for baseline in ("basic", "translate_test"):
            path = folder / "eval" / f"{lang}-{baseline}.json"  # a done cell returns at once
            evaluate(control, "xcopa", lang, baseline=baseline, n=cfg.n_test, output=path)
