"""The study's vectors and fine-tunes, the sweeps' selected cells, and row strengths.

Vectors and LoRA adapters are fitted once; :class:`Steering` is what a row runs with.

Used by the XCOPA stages (:mod:`repro.xcopa`) and the generation stages
(:mod:`repro.generation`); every vector and adapter is saved in the run folder and read
back on a resumed run, if it was fitted with the settings asked for (otherwise the run
stops).
"""

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from interp_steer.analysis import HyperSelection, SweepResult, check_fitted
from interp_steer.data import ParallelCorpus
from interp_steer.fitting import fit_lora, fit_vector
from interp_steer.models import model_name
from interp_steer.steering import LoraAdapter, SteeringVector, alpha_for_ratio, apply_lora
from interp_steer.storage import atomic_write_json, require_settings
from repro.config import AS_TRAINED, HYPER, Row, RowKind, steered_rows

__all__ = [
    "Steering",
    "bipo_hyper",
    "fit_rows",
    "fit_adapter_saved",
    "fit_saved",
    "gen_selected",
    "selected",
    "shared_cell",
    "steering",
    "strength",
]


@dataclass(frozen=True)
class Steering:
    """What a table row runs with: a vector at a strength, a LoRA adapter, or neither.

    >>> run = Steering()
    >>> run.vector is None and run.adapter is None
    True
    """

    vector: SteeringVector | None = None
    alpha: float = 1.0
    adapter: LoraAdapter | None = None

    @contextmanager
    def applied(self, model: Any) -> Iterator[None]:
        """The adapter merged into ``model`` for the block.

        Nothing for a vector row: the vector is passed to the evaluation itself.
        """
        with apply_lora(model, self.adapter) if self.adapter is not None else nullcontext():
            yield


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
    model: Any,
    path: Path,
    corpus: Any,
    *,
    layer: int,
    method: str,
    hyper: dict[str, Any] | None = None,
) -> SteeringVector:
    """The vector saved at ``path``, or ``method`` fitted on ``corpus`` at ``layer`` and saved.

    Hyper-parameters are ``hyper``, by default :data:`~repro.config.HYPER`'s (``mse``: the
    paper's AdamW training; ``bipo``: trained as the paper trains it). A saved vector is
    used only if it was fitted with these settings (model, language, layer, method, corpus,
    its split and size, hyper-parameters); otherwise the run stops naming them
    (:func:`~interp_steer.analysis.check_fitted`), never reusing it. BiPO saves its training
    state in the run folder's ``checkpoints/`` as it trains and a killed run resumes it.
    """
    hyper = HYPER.get(method, {}) if hyper is None else hyper
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
    # BiPO trains for tens of minutes: its checkpoints (every 50 steps) are committed with
    # the run folder, so a study killed at the end of a session resumes mid-training
    runtime: dict[str, Any] = (
        {"checkpoint_dir": path.parent.parent / "checkpoints"} if method == "bipo" else {}
    )
    vector = fit_vector(
        model,
        corpus,
        layer=layer,
        method=method,
        cache_dir=path.parent.parent / "activations",
        progress=True,
        **hyper,
        **runtime,
    )
    vector.save(path)
    return vector


def strength(vector: SteeringVector, row: Row, ratio: float) -> float:
    """The alpha of a steered row.

    The paper applies its trained vectors as they are (MSE, BiPO: α = 1); directions get
    ``ratio``.
    """
    if row.method in AS_TRAINED:
        return 1.0
    return alpha_for_ratio(vector, ratio)


def bipo_hyper(
    root: Path, names: tuple[Literal["lr", "epochs"], ...] = ("lr", "epochs")
) -> dict[str, Any]:
    """The learning rate and epochs the study's BiPO vectors use, both chosen on held-out pairs.

    ``lr`` is the ``bipo_lr`` stage's choice (``gen_bipo_lr.json``); ``epochs`` the
    ``bipo_epochs`` stage's, made at that rate (``gen_bipo_epochs.json``). ``names``: which.

    Raises:
        FileNotFoundError: A stage that chooses one of them has not run.
    """
    chosen: dict[str, Any] = {}
    for name in names:
        path = root / f"gen_bipo_{name}.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: the bipo_{name} stage chooses it")
        value = HyperSelection.load(path).best[name]
        chosen[name] = float(value) if name == "lr" else int(value)
    return chosen


def fit_adapter_saved(model: Any, path: Path, corpus: ParallelCorpus) -> LoraAdapter:
    """The LoRA fine-tune saved at ``path``, or one trained on ``corpus`` and saved.

    Training is :func:`~interp_steer.fitting.fit_lora` with its defaults. Beside it,
    ``<path>.study.json`` records what it was trained on (model, language, corpus, its
    split, size and fingerprint); a saved adapter of other settings stops the run naming
    them, never reused. Training saves its state in the run folder's ``checkpoints/`` and a
    killed run resumes it.
    """
    meta = dict(getattr(corpus, "meta", {}) or {})
    settings = {
        "model": model_name(model),
        "lang": corpus.source_lang,
        "dataset": meta.get("dataset"),
        "split": meta.get("split"),
        "n": len(corpus),
        "data": corpus.fingerprint,
    }
    record = path.with_suffix(".study.json")
    if record.is_file():
        saved = json.loads(record.read_text(encoding="utf-8"))
        require_settings(record, saved, settings, what="a LoRA adapter",
                         hint="delete it to train it again, or use another folder")  # fmt: skip
        return LoraAdapter.load(path)
    adapter = fit_lora(model, corpus, checkpoint_dir=path.parent.parent / "checkpoints",
                       progress=True)  # fmt: skip
    adapter.save(path)
    atomic_write_json(record, settings)
    return adapter


def steering(
    model: Any,
    root: Path,
    part: Literal["xcopa", "gen"],
    lang: str,
    row: Row,
    *,
    corpus: ParallelCorpus,
    layer: int,
    ratio: float,
) -> Steering:
    """What steered ``row`` of ``lang`` runs with, fitted on ``corpus`` on first use.

    Vectors are saved in ``vectors/`` (``gen_vectors/`` for the generation part) and
    applied at ``layer`` with :func:`strength` (BiPO at the learning rate and epochs of
    :func:`bipo_hyper`); ``sft`` is a LoRA adapter saved in ``adapters/``
    (``gen_adapters/``).
    """
    prefix = "gen_" if part == "gen" else ""
    if row.kind == "adapter":
        path = root / f"{prefix}adapters" / f"{lang}-{row.method}"
        return Steering(adapter=fit_adapter_saved(model, path, corpus))
    path = root / f"{prefix}vectors" / f"{lang}-{row.method}"
    hyper = dict(HYPER.get(row.method, {}))
    if row.method == "bipo":
        hyper.update(bipo_hyper(root))
    v = fit_saved(model, path, corpus, layer=layer, method=row.method, hyper=hyper)
    return Steering(vector=v, alpha=strength(v, row, ratio))


def fit_rows(
    fit: Callable[[str, Row], Steering],
    methods: tuple[str, ...],
    langs: tuple[str, ...],
    kind: RowKind,
) -> None:
    """Fit (or read back) every row of ``kind`` among ``methods`` in every language.

    ``fit(lang, row)`` is a part's own :func:`steering` call; a stage of fits runs them
    ahead of the tables, so their compute is timed as a stage of its own.
    """
    for row in steered_rows(methods):
        if row.kind == kind:
            for lang in langs:
                fit(lang, row)
