"""The study's latent-language figure (Wendler et al. 2024): ``trajectory/`` in the run folder.

:func:`trajectory_stage` reads the study model's layers on few-shot word-translation
prompts (``cfg.trajectory_langs``, French → Chinese by default: Wendler's setting, neither
language English) through the logit lens and the tuned lens, unsteered and steered with
the study's vector for the target language, and saves one
:class:`~interp_steer.analysis.TrajectoryResult` per lens (``trajectory/logit.json``,
``trajectory/tuned.json``) beside ``trajectory/trajectory.json`` (the settings, which
vector and which tuned lens were used, and what fitting the lens cost).

The vector is, in this order of preference:

1. the generation part's selected vector of the target language (``mean_diff`` on MSVAMP
   ``train`` pairs at the generation sweep's selected layer and strength, saved in
   ``gen_vectors/``; fitted here on first use, with the settings ``gen_vectors`` uses), if
   the target is a generation language and the generation sweep has run;
2. else the XCOPA part's ``mean_diff`` vector of the target (FLORES pairs, the XCOPA
   sweep's selected cell, ``vectors/``), as the lens stage uses it, if the target is an
   XCOPA language;
3. else a ``mean_diff`` vector fitted on ``cfg.n_fit`` FLORES pairs of the target at the
   XCOPA languages' shared cell (:func:`~repro.vectors.shared_cell`), saved in
   ``trajectory/``.

The tuned lens is the run folder's copy (``trajectory/tuned_lens.*``), else the one saved
for the model's weights (:func:`~interp_steer.analysis.load_tuned_lens`), else one trained
now with :func:`~interp_steer.analysis.fit_tuned_lens`'s defaults and saved there; the
stage's time in ``study.json`` includes that training. The run folder keeps a copy of the
lens it drew with, so a resume on another machine reads the same lens: one trained again
there (other hardware, another precision) would differ, and the saved curves with it.
"""

import json
from pathlib import Path
from typing import Any

from interp_steer.analysis import (
    Lens,
    SweepResult,
    TunedLens,
    fit_tuned_lens,
    language_trajectory,
    load_tuned_lens,
    tuned_lens_path,
)
from interp_steer.data import load_concepts, load_parallel, translation_prompts
from interp_steer.models import model_name
from interp_steer.storage import atomic_write_json, require_settings
from repro.config import Row, StudyConfig
from repro.vectors import Steering, fit_saved, selected, shared_cell, steering, strength

__all__ = ["LENS_FILES", "SHOTS", "trajectory_stage", "trajectory_vector"]

SHOTS = 5
"""Solved examples in each prompt (Wendler et al. use five)."""

LENS_FILES = {"logit": "logit.json", "tuned": "tuned.json"}
"""The result file of each lens, inside ``trajectory/``."""


def trajectory_vector(
    model: Any, cfg: StudyConfig, root: Path, lang: str
) -> tuple[Steering, dict[str, Any]]:
    """The steering of the figure's steered run, and how the page names it.

    Returns:
        The vector and strength, and ``{"part", "dataset", "split", "n", "layer",
        "ratio", "alpha", "name"}``: which of the three sources in the module docstring
        it came from (``"gen"``, ``"xcopa"`` or ``"trajectory"``) and its settings.
    """
    row = Row("mean_diff")
    if lang in cfg.gen_langs and (root / "gen_sweep.json").is_file():
        cell = SweepResult.load(root / "gen_sweep.json").best(lang)
        corpus = load_parallel("msvamp", lang, split="train", n=cfg.n_gen_fit)
        part, layer, ratio = "gen", int(cell["layer"]), float(cell["strength"])
        run = steering(model, root, "gen", lang, row, corpus=corpus, layer=layer, ratio=ratio)
    else:
        corpus = load_parallel("flores", lang, n=cfg.n_fit)
        if lang in cfg.langs:
            cell = selected(root, lang)
            part, layer, ratio = "xcopa", int(cell["layer"]), float(cell["strength"])
            run = steering(model, root, "xcopa", lang, row, corpus=corpus, layer=layer,
                           ratio=ratio)  # fmt: skip
        else:
            part = "trajectory"
            layer, ratio = shared_cell([selected(root, code) for code in cfg.langs])
            path = root / "trajectory" / f"{lang}-{row.method}"
            vector = fit_saved(model, path, corpus, layer=layer, method=row.method)
            run = Steering(vector=vector, alpha=strength(vector, row, ratio))
    meta = dict(getattr(corpus, "meta", {}) or {})
    info = {
        "part": part,
        "dataset": meta.get("dataset"),
        "split": meta.get("split"),
        "n": len(corpus),
        "layer": layer,
        "ratio": ratio,
        "alpha": float(run.alpha),
        "name": f"{lang}-{row.method}",
    }
    return run, info


LENS_STEM = "tuned_lens"
"""The run folder's copy of the stage's tuned lens: ``trajectory/tuned_lens.{json,safetensors}``."""


def _tuned_lens(model: Any, folder: Path) -> tuple[TunedLens, dict[str, Any]]:
    """The tuned lens to draw with, and where it came from.

    The run folder's copy (``folder``), else the model's saved lens, else one trained now
    (and saved in the model cache).
    """
    kept = folder / LENS_STEM
    if kept.with_suffix(".json").is_file():
        lens, source, path = TunedLens.load(kept), "run folder", kept
        lens.check_model(model)
    else:
        try:
            lens, source = load_tuned_lens(model), "cache"
        except FileNotFoundError:
            print("  no tuned lens saved for these weights: fitting one (fit_tuned_lens defaults)")
            lens, source = fit_tuned_lens(model, progress=True), "fitted"
        path = tuned_lens_path(model)
    info = {
        "source": source,
        "path": str(path),
        "checksum": lens.checksum,
        "seconds": lens.meta.get("seconds"),
        "n_tokens": lens.meta.get("n_tokens"),
        "steps": lens.meta.get("steps"),
        "texts": lens.meta.get("texts"),
    }
    return lens, info


def trajectory_stage(model: Any, cfg: StudyConfig, root: Path) -> None:
    """Wendler's figure for the study model: logit and tuned lens, base vs steered.

    Resumable: a lens whose result is saved is not read again; saved results of other
    settings (prompts, vector, tuned lens) stop the run naming them.
    """
    source, target = cfg.trajectory_langs
    out = root / "trajectory"
    concepts = load_concepts([source, target])
    concepts = concepts.subset(concepts.keys[: cfg.n_trajectory])
    prompts = translation_prompts(model.tokenizer, concepts, source, target, shots=SHOTS)
    run, vector_info = trajectory_vector(model, cfg, root, target)
    lens, lens_info = _tuned_lens(model, out)
    settings = {
        "model": model_name(model),
        "source": prompts.source,
        "target": prompts.target,
        "task": prompts.task,
        "shots": prompts.shots,
        "prompt_seed": prompts.seed,
        "concepts": list(concepts.keys),
        "vector": vector_info,
        "tuned_lens": lens.checksum,
    }
    record = out / "trajectory.json"
    if record.is_file():
        saved = json.loads(record.read_text(encoding="utf-8"))["settings"]
        require_settings(record, saved, settings, what="a latent-language trajectory",
                         hint="delete trajectory/ to draw it again")  # fmt: skip
    atomic_write_json(record, {"settings": settings, "tuned_lens": lens_info})
    if lens_info["source"] != "run folder":
        lens.save(out / LENS_STEM)  # the lens these curves are drawn with, for any resume
    readouts: dict[str, Lens | TunedLens] = {"logit": "logit", "tuned": lens}
    for name, readout in readouts.items():
        path = out / LENS_FILES[name]
        if path.is_file():
            continue
        language_trajectory(
            model,
            prompts,
            lens=readout,
            vector=run.vector,
            alpha=run.alpha,
            vector_name=vector_info["name"],
            progress=True,
        ).save(path)
