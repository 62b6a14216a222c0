"""The paper's study on a model that runs here: ``make results`` → ``docs/results.md``.

:func:`run_study` reproduces, at a size 2 CPU cores finish in hours (each stage's compute is
summed in ``study.json``), the comparison of *Improving Multilingual Language Models by
Aligning Representations through Steering* (arXiv 2505.12584) on XCOPA:

1. per language, a mean-difference **layer × strength sweep** fitted on FLORES pairs and
   selected on XCOPA's validation split (never on test items);
2. at the selected layer and strength, vectors by every method (``mean_diff``, ``pca``,
   ``mse`` as the paper trains it — AdamW, lr 1e-8, applied at α = 1 — and ``bipo`` at a
   CPU budget: one BiPO step costs ≈10–30 s on 2 CPU cores, so it gets ``bipo_n_fit``
   pairs, one pass, and ``bipo_scaled`` runs its direction at the selected strength);
3. on XCOPA test items: ``basic``, ``translate_test`` (Google MT), ``self_translate``,
   ``xlt``, ``k_shot`` and
   each steered run, with gains over ``basic`` and McNemar p-values; English damage
   (the selected vector on the English MT items, the paper's Table 4);
4. the similarity of every FLORES language to English per layer, the transfer matrix of
   the study languages, and the logit lens base vs steered.

Everything lands in a resumable run folder; :func:`write_results` turns it into the
Markdown page and the figures. The generation part (MSVAMP-fitted vectors for the nine
MSVAMP languages on MSVAMP, MGSM and language forcing, with the same rows) is in
:mod:`interp_steer.study_generation`.
"""

import argparse
import json
import os
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from interp_steer.storage import atomic_write_json

__all__ = ["QUICK", "STUDY", "StudyConfig", "main", "method_rows", "run_study"]

BASELINE_ROWS = ("basic", "translate_test", "self_translate", "xlt", "k_shot")
"""Baseline rows of the main table, in order (the steering methods follow)."""

SCALED = ("bipo",)
"""Trained methods whose direction is also run at the selected relative strength (row
``<method>_scaled``): at a CPU budget BiPO's vector stays far too short to act at α = 1."""


def method_rows(methods: tuple[str, ...]) -> tuple[str, ...]:
    """The steered rows of the main table: each method, then ``<method>_scaled`` if any.

    >>> method_rows(("mean_diff", "bipo"))
    ('mean_diff', 'bipo', 'bipo_scaled')
    """
    return tuple(r for m in methods for r in ((m, f"{m}_scaled") if m in SCALED else (m,)))


@dataclass(frozen=True)
class StudyConfig:
    """Sizes of a study run (the defaults are what ``make results`` runs).

    Attributes:
        model: Model alias.
        langs: XCOPA languages of the study (vectors, table, transfer).
        layers: Layers of the sweep.
        ratios: Relative strengths ``‖alpha v‖ / ‖h‖`` of the sweep.
        n_fit: FLORES pairs per vector.
        n_select: XCOPA validation items per sweep cell.
        n_test: XCOPA test items per table cell.
        n_transfer: XCOPA test items per transfer cell.
        n_similarity: FLORES sentences per language for the similarity analysis.
        similarity_langs: Languages of the similarity analysis (all FLORES ones by default).
        n_lens: Prompts of the logit lens.
        methods: Fitting methods compared.
        bipo_n_fit: FLORES pairs of a BiPO vector (one step of 4 pairs takes ≈10–30 s on
            2 CPU cores, so BiPO gets fewer pairs than the other methods).
        bipo_warmup_steps: BiPO's warm-up steps (the paper's 100 exceed the steps here).
        control_model: English-centric control model (similarity and XCOPA baselines),
            or None.
        gen_langs: MSVAMP languages of the generation part
            (:mod:`interp_steer.study_generation`).
        gen_ratios: Relative strengths of the generation sweep (its metric is cheap).
        n_gen_fit: MSVAMP ``train`` pairs per vector (the next ``n_gen_select`` select).
        n_gen_select: Held-out MSVAMP ``train`` pairs for selection and transfer.
        n_gen_test: MSVAMP ``eval`` / MGSM items per generation cell.
        n_forcing: FLORES sentences per language-forcing cell.
        gen_tokens: Greedy-decoding budget of the math tasks.
        gen_methods: Fitting methods of the generation part's generation tasks.
        gen_kl_methods: Fitting methods compared by EnglishKL on MSVAMP ``eval`` pairs
            (forward passes only: cheap enough for every method).
    """

    model: str = "gemma-3-270m"
    langs: tuple[str, ...] = ("it", "zh", "sw")
    layers: tuple[int, ...] = (4, 8, 12)
    ratios: tuple[float, ...] = (0.25, 0.5)
    n_fit: int = 128
    n_select: int = 40
    n_test: int = 500
    n_transfer: int = 60
    n_similarity: int = 64
    similarity_langs: tuple[str, ...] = (
        "ar", "bn", "de", "el", "es", "et", "fr", "ht", "hi", "id", "it", "ja", "ko", "pt",
        "qu", "ru", "sw", "ta", "te", "th", "tr", "vi", "zh",
    )  # fmt: skip
    n_lens: int = 8
    methods: tuple[str, ...] = ("mean_diff", "pca", "mse", "bipo")
    bipo_n_fit: int = 64
    bipo_warmup_steps: int = 4
    control_model: str | None = "smollm2-135m"
    gen_langs: tuple[str, ...] = ("bn", "de", "es", "fr", "ja", "ru", "sw", "th", "zh")
    gen_ratios: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5)
    n_gen_fit: int = 400
    n_gen_select: int = 64
    n_gen_test: int = 16
    n_forcing: int = 16
    gen_tokens: int = 96
    gen_methods: tuple[str, ...] = ("mean_diff", "pca", "mse", "bipo")
    gen_kl_methods: tuple[str, ...] = ("mean_diff", "pca", "mse", "bipo")


STUDY = StudyConfig()
"""The study of ``docs/results.md``."""

QUICK = StudyConfig(
    model="tiny",
    methods=("mean_diff", "pca", "mse", "bipo"),
    langs=("it", "sw"),
    layers=(1, 2),
    ratios=(0.5,),
    n_fit=6,
    n_select=4,
    n_test=4,
    n_transfer=2,
    n_similarity=4,
    similarity_langs=("de", "sw"),
    n_lens=2,
    bipo_n_fit=4,
    bipo_warmup_steps=0,
    control_model="tiny",
    gen_langs=("de",),
    gen_ratios=(0.5,),
    n_gen_fit=6,
    n_gen_select=4,
    n_gen_test=2,
    n_forcing=2,
    gen_tokens=8,
)
"""A smoke run on the tiny model (seconds)."""


def run_study(
    out: str | os.PathLike[str], config: StudyConfig = STUDY, *, model: Any = None
) -> Path:
    """Run the study into ``out`` (resumable) and return the path of its ``study.json``."""
    from interp_steer.models import load_model
    from interp_steer.study_control import control_stage
    from interp_steer.study_generation import gen_kl, gen_sweep, gen_table, gen_transfer

    root = Path(out)
    model = load_model(config.model) if model is None else model
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    try:
        for stage, fn in (
            ("sweep", _sweep),
            ("table", _table),
            ("similarity", _similarity),
            ("transfer", _transfer),
            ("lens", _lens),
            ("control", control_stage),
            ("gen_sweep", gen_sweep),
            ("gen_table", gen_table),
            ("gen_transfer", gen_transfer),
            ("gen_kl", gen_kl),
        ):
            start = time.perf_counter()
            print(f"[{(start - t0) / 60:5.1f} min] {stage}", flush=True)
            try:
                fn(model, config, root)
            finally:  # an interrupted stage's time counts too
                timings[stage] = time.perf_counter() - start
    finally:
        path = _summary(root, config, model, timings, time.perf_counter() - t0)
    return path


def _summary(
    root: Path, config: StudyConfig, model: Any, timings: dict[str, float], total: float
) -> Path:
    """Write ``study.json``: config, this invocation's stage times, compute summed over all."""
    from interp_steer.models import model_name

    summary_path = root / "study.json"
    old = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.is_file() else {}
    compute = dict(old.get("compute_s", {}))
    for stage, seconds in timings.items():
        compute[stage] = compute.get(stage, 0.0) + seconds
    summary = {
        **old,  # keeps notes a person added (e.g. how compute_s was seeded)
        "config": asdict(config),
        "model": model_name(model),
        "timings_s": timings,
        "compute_s": compute,
        "total_s": total,
        "cpu_count": os.cpu_count(),
    }
    return atomic_write_json(summary_path, summary)


def _sweep(model: Any, cfg: StudyConfig, root: Path) -> None:
    from interp_steer.sweep import layer_sweep

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


def selected(root: Path, lang: str) -> dict[str, Any]:
    """The sweep's selected cell of ``lang`` (layer, strength, alpha, score, gain)."""
    from interp_steer.sweep import SweepResult

    return SweepResult.load(root / "sweep.json").best(lang)


def fit_saved(
    model: Any, cfg: StudyConfig, path: Path, corpus: Any, *, layer: int, method: str
) -> Any:
    """The vector saved at ``path``, or ``method`` fitted on ``corpus`` at ``layer`` and saved.

    ``mse`` is the paper's AdamW training; ``bipo`` uses ``cfg.bipo_warmup_steps``.
    """
    from interp_steer.fitting import fit_vector
    from interp_steer.vectors import SteeringVector

    if path.with_suffix(".safetensors").is_file():
        return SteeringVector.load(path)
    by_method: dict[str, dict[str, Any]] = {
        "mse": {"solver": "adamw"},
        "bipo": {"warmup_steps": cfg.bipo_warmup_steps},
    }
    vector = fit_vector(
        model,
        corpus,
        layer=layer,
        method=method,
        cache_dir=path.parent.parent / "activations",
        progress=True,
        **by_method.get(method, {}),
    )
    vector.save(path)
    return vector


def _vector(model: Any, cfg: StudyConfig, root: Path, lang: str, method: str) -> Any:
    """The study vector of ``method`` for ``lang`` at the selected layer (fitted once, saved)."""
    from interp_steer.data import load_parallel

    n_fit = cfg.bipo_n_fit if method == "bipo" else cfg.n_fit
    return fit_saved(
        model,
        cfg,
        root / "vectors" / f"{lang}-{method}",
        load_parallel("flores", lang, n=n_fit),
        layer=selected(root, lang)["layer"],
        method=method,
    )


def strength(vector: Any, row: str, ratio: float) -> float:
    """The alpha of a steered row: the paper applies its trained vectors as they are (MSE,
    BiPO); directions, and ``<method>_scaled`` rows, get ``ratio`` (a zero vector, from no
    step at a positive rate, stays zero)."""
    from interp_steer.sweep import alpha_for_ratio

    if row in ("mse", "bipo"):
        return 1.0
    if row.endswith("_scaled") and vector.norm == 0:
        return 0.0
    return alpha_for_ratio(vector, ratio)


def _table(model: Any, cfg: StudyConfig, root: Path) -> None:
    from interp_steer.evaluation import evaluate

    for lang in cfg.langs:
        best = selected(root, lang)
        runs: list[tuple[str, str, Any, float]] = [(b, b, None, 0.0) for b in BASELINE_ROWS]
        for method in cfg.methods:
            v = _vector(model, cfg, root, lang, method)
            for row in method_rows((method,)):  # with ``<method>_scaled`` where SCALED
                runs.append((row, "basic", v, strength(v, row, best["strength"])))
        v = _vector(model, cfg, root, lang, "mean_diff")
        runs.append(
            ("english_damage", "translate_test", v, strength(v, "mean_diff", best["strength"]))
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


def _similarity(model: Any, cfg: StudyConfig, root: Path) -> None:
    from interp_steer.similarity import cross_lingual_similarity

    if (root / "similarity.json").is_file():
        return
    res = cross_lingual_similarity(
        model, cfg.similarity_langs, n=cfg.n_similarity, cache_dir=root / "activations"
    )
    res.save(root / "similarity.json")


def _transfer(model: Any, cfg: StudyConfig, root: Path) -> None:
    from interp_steer.transfer import transfer_matrix

    picks = [selected(root, lang) for lang in cfg.langs]
    layer = int(pd.Series([p["layer"] for p in picks]).mode().iloc[0])
    ratio = float(pd.Series([p["strength"] for p in picks]).median())
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


def _lens(model: Any, cfg: StudyConfig, root: Path) -> None:
    from interp_steer.data import load_parallel
    from interp_steer.logit_lens import logit_lens

    lang = cfg.langs[0]
    v = _vector(model, cfg, root, lang, "mean_diff")
    alpha = strength(v, "mean_diff", selected(root, lang)["strength"])
    prompts = list(load_parallel("flores", lang, n=cfg.n_lens).target)
    logit_lens(model, prompts, vector=v, alpha=alpha, lang=lang).save(root / "lens.json")


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    """``python -m interp_steer.study``: run the study, then write the results page."""
    from interp_steer.results import write_results

    parser = argparse.ArgumentParser(
        prog="python -m interp_steer.study", description=__doc__.splitlines()[0]
    )
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
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` ends the run like Ctrl-C: times saved
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    run_study(args.out, QUICK if args.quick else STUDY)
    write_results(args.out, page=args.page, figures=args.figures)
    print(f"wrote {args.page} and {args.figures}/")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
