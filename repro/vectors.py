"""The study's vectors: the sweeps' selected cells, fitted-once vectors, row strengths.

Used by the XCOPA stages (:mod:`repro.xcopa`) and the generation stages
(:mod:`repro.generation`); every vector is saved in the run folder and read back on a
resumed run, if it was fitted with the settings asked for (otherwise the run stops).
"""

from pathlib import Path
from typing import Any

import pandas as pd

from interp_steer.analysis import SweepResult, check_fitted
from interp_steer.fitting import fit_vector
from interp_steer.models import model_name
from interp_steer.steering import SteeringVector, alpha_for_ratio
from repro.config import AS_TRAINED, Row, StudyConfig

__all__ = ["fit_saved", "gen_selected", "selected", "shared_cell", "strength"]


def selected(root: Path, lang: str) -> dict[str, Any]:
    """The XCOPA sweep's selected cell of ``lang`` (layer, strength, alpha, score, gain)."""
    return SweepResult.load(root / "sweep.json").best(lang)


def gen_selected(root: Path, lang: str) -> dict[str, Any]:
    """The generation sweep's selected cell of ``lang``."""
    return SweepResult.load(root / "gen_sweep.json").best(lang)


def shared_cell(picks: list[dict[str, Any]]) -> tuple[int, float]:
    """One layer and strength for every language of a transfer matrix.

    The most common of the selected layers and the median of the selected strengths.

    >>> shared_cell([{"layer": 4, "strength": 0.1}, {"layer": 4, "strength": 0.5},
    ...              {"layer": 8, "strength": 0.25}])
    (4, 0.25)
    """
    layer = int(pd.Series([p["layer"] for p in picks]).mode().iloc[0])
    ratio = float(pd.Series([p["strength"] for p in picks]).median())
    return layer, ratio


def fit_saved(
    model: Any, cfg: StudyConfig, path: Path, corpus: Any, *, layer: int, method: str
) -> SteeringVector:
    """The vector saved at ``path``, or ``method`` fitted on ``corpus`` at ``layer`` and saved.

    ``mse`` is the paper's AdamW training; ``bipo`` uses ``cfg.bipo_warmup_steps``. A saved
    vector is used only if it was fitted with these settings (model, language, layer,
    method, corpus, its split and size, hyper-parameters); otherwise the run stops naming
    them (:func:`~interp_steer.analysis.check_fitted`), never reusing it.
    """
    by_method: dict[str, dict[str, Any]] = {
        "mse": {"solver": "adamw"},
        "bipo": {"warmup_steps": cfg.bipo_warmup_steps},
    }
    hyper = by_method.get(method, {})
    saved = path.with_suffix(".safetensors")
    if saved.is_file():
        meta = dict(getattr(corpus, "meta", {}) or {})
        expected = {
            "model": model_name(model),
            "lang": corpus.source_lang,
            "layer": layer,
            "method": method,
            "dataset": meta.get("dataset"),
            "split": meta.get("split"),
            "n": len(corpus),
            "pooling": "mean",
            "exclude_bos": True,
            "hyper": hyper,
        }
        return check_fitted(SteeringVector.load(path), expected, saved)
    vector = fit_vector(
        model,
        corpus,
        layer=layer,
        method=method,
        cache_dir=path.parent.parent / "activations",
        progress=True,
        **hyper,
    )
    vector.save(path)
    return vector


def strength(vector: SteeringVector, row: Row, ratio: float) -> float:
    """The alpha of a steered row.

    The paper applies its trained vectors as they are (MSE, BiPO: α = 1); directions, and
    scaled rows, get ``ratio`` (a zero vector, from no step at a positive rate, stays zero).
    """
    if row.method in AS_TRAINED and not row.scaled:
        return 1.0
    if row.scaled and vector.norm == 0:
        return 0.0
    return alpha_for_ratio(vector, ratio)
