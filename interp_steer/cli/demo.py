"""The demo: the toolkit's main job in one call, ending in one self-contained report.

:func:`run_demo` runs, on the default model and the shared data:

1. **similarity** of several languages to English per layer (FLORES, centred cosine, CKA,
   retrieval) — where do representations align?
2. a short **layer sweep** on XCOPA: a mean-difference vector per layer and relative
   strength, fitted on FLORES pairs, selected on XCOPA's validation split, the chosen cell
   then tested on XCOPA test items beside the unsteered and translate-test baselines;
3. the **logit lens** on prompts of the first sweep language, base vs steered with the
   chosen vector — which language does each layer decode to?
4. one **steered generation**, base vs steered, to see the vector act.

Everything is written into one run folder: ``figures/`` (HTML + PNG), results as JSON/CSV,
and ``report.html`` with every figure and table. A re-run resumes (sweep cells, evaluated
items and activations are kept).

Example:
    >>> import tempfile
    >>> report = run_demo(tempfile.mkdtemp(), fast=True, progress=False)  # doctest: +SKIP
"""

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from interp_steer.analysis.cells import CellStore, Counted, TaskEvaluator
from interp_steer.analysis.lens import logit_lens
from interp_steer.analysis.similarity import cross_lingual_similarity
from interp_steer.analysis.sweep import layer_sweep
from interp_steer.data.parallel import load_parallel
from interp_steer.evaluation.harness import evaluate
from interp_steer.evaluation.results import compare
from interp_steer.models.batching import generate_texts
from interp_steer.models.loading import load_model, model_name
from interp_steer.plotting.export import save_figures
from interp_steer.plotting.lens import plot_language_shares, plot_token_table
from interp_steer.plotting.report import Report, Section, write_report
from interp_steer.plotting.similarity import plot_similarity, plot_similarity_matrix
from interp_steer.plotting.sweep import plot_sweep, plot_sweep_heatmap
from interp_steer.steering.intervention import steer
from interp_steer.steering.vectors import SteeringVector


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of a demo run.

    Attributes:
        model: Model alias loaded when :func:`run_demo` gets no model.
        similarity_langs: Languages compared with English.
        n_similarity: FLORES sentences per language.
        sweep_langs: Languages of the XCOPA layer sweep (the first is used for the lens).
        layers: Layers swept.
        ratios: Relative strengths ``‖alpha v‖ / ‖h‖`` swept.
        n_fit: FLORES pairs each vector is fitted on.
        n_select: XCOPA validation items per selection cell.
        n_test: XCOPA test items of the final comparison.
        n_lens: Prompts of the logit lens.
        generation_tokens: New tokens of the steered generation example.
    """

    model: str = "gemma-3-270m"
    similarity_langs: tuple[str, ...] = ("de", "fr", "zh", "ja", "it", "sw", "hi")
    n_similarity: int = 48
    sweep_langs: tuple[str, ...] = ("it", "sw")
    layers: tuple[int, ...] = (3, 6, 9, 12)
    ratios: tuple[float, ...] = (0.25, 0.5)
    n_fit: int = 100
    n_select: int = 32
    n_test: int = 60
    n_lens: int = 8
    generation_tokens: int = 24


FULL = DemoConfig()
"""The README's demo on gemma-3-270m (≈10 minutes on a 2-core CPU)."""

FAST = DemoConfig(
    model="tiny",
    similarity_langs=("de", "sw"),
    n_similarity=8,
    layers=(1, 2),
    ratios=(0.5,),
    n_fit=6,
    n_select=4,
    n_test=4,
    n_lens=2,
    generation_tokens=4,
)
"""A smoke run on the tiny random model (seconds; its numbers mean nothing)."""


def run_demo(
    out: str | os.PathLike[str],
    *,
    model: Any = None,
    fast: bool = False,
    config: DemoConfig | None = None,
    progress: bool = True,
) -> Path:
    """Run the demo into ``out`` and return the path of ``out/report.html``.

    Args:
        out: Run folder (created; a re-run resumes).
        model: A loaded bridge; by default ``config.model`` is loaded.
        fast: Use :data:`FAST` (tiny model, a few items) instead of :data:`FULL`.
        config: Explicit sizes (overrides ``fast``).
        progress: Print each step and show progress bars.

    Returns:
        The report's path.
    """
    cfg = config or (FAST if fast else FULL)
    root = Path(out)
    started = time.perf_counter()
    say = print if progress else (lambda *a, **k: None)
    if model is None:
        model = load_model(cfg.model)
    name = model_name(model)
    timings: dict[str, float] = {}

    def step(label: str) -> None:
        timings[label] = time.perf_counter()
        say(f"[{(timings[label] - started) / 60:4.1f} min] {label}", flush=True)

    step("similarity")
    sim_section = _similarity(model, cfg, root, progress)
    step("layer sweep")
    sweep, sweep_section = _sweep(model, cfg, root, progress)
    step("baselines")
    eval_section = _baselines(model, cfg, root, sweep, progress)
    step("logit lens")
    lens_section, vector, alpha = _lens(model, cfg, root, sweep)
    step("generation")
    gen_section = _generation(model, cfg, sweep.langs[0], vector, alpha)
    elapsed = time.perf_counter() - started
    report = Report(
        title=f"interp_steer demo — {name}",
        sections=(sim_section, sweep_section, eval_section, lens_section, gen_section),
        footer=f"Model {name}; {os.cpu_count()} CPU cores; total {elapsed / 60:.1f} min. "
        f"Run folder: {root}. Settings: {cfg}.",
    )
    path = write_report(report, root / "report.html")
    say(f"[{elapsed / 60:4.1f} min] wrote {path}")
    return path


def _figures(root: Path, figures: dict[str, go.Figure]) -> tuple[go.Figure, ...]:

    save_figures(figures, root / "figures")
    return tuple(figures.values())


def _similarity(model: Any, cfg: DemoConfig, root: Path, progress: bool) -> Section:

    res = cross_lingual_similarity(
        model,
        cfg.similarity_langs,
        n=cfg.n_similarity,
        cache_dir=root / "activations",
        progress=progress,
    )
    res.save(root / "similarity.json")
    mid = res.layers[len(res.layers) // 2]
    figs = _figures(
        root,
        {
            "similarity": plot_similarity(res),
            f"similarity_matrix_L{mid}": plot_similarity_matrix(res, mid),
        },
    )
    langs, retrieval = res.vs_english("retrieval")
    table = pd.DataFrame(
        {
            "lang": langs,
            "best layer (retrieval)": [res.layers[i] for i in retrieval.argmax(1)],
            "retrieval accuracy": retrieval.max(1),
        }
    )
    note = (
        f"{res.n} FLORES sentences per language, mean-pooled residuals, centred per "
        "language. Cells at or above the paper's 0.5 threshold are outlined."
    )
    return Section("Which layers align languages with English?", note, figs, (table,))


def _sweep(model: Any, cfg: DemoConfig, root: Path, progress: bool) -> tuple[Any, Section]:

    evaluator: Any = TaskEvaluator("xcopa", n=cfg.n_select)
    if progress:
        cells = len(cfg.sweep_langs) * (1 + len(cfg.layers) * len(cfg.ratios))
        evaluator = Counted(evaluator, cells, "sweep cells")
    res = layer_sweep(
        model,
        cfg.sweep_langs,
        task=evaluator,
        layers=cfg.layers,
        ratios=cfg.ratios,
        fit_dataset="flores",
        n_fit=cfg.n_fit,
        test=False,
        run_dir=root / "sweep",
    )
    res.save(root / "sweep.json")
    figs = {"sweep": plot_sweep(res)}
    figs.update({f"sweep_heatmap_{x}": plot_sweep_heatmap(res, x) for x in res.langs})
    table = pd.DataFrame([{"lang": x, **res.best(x)} for x in res.langs])
    note = (
        f"Mean-difference vectors fitted on {cfg.n_fit} FLORES pairs per layer; each "
        f"(layer, ‖αv‖/‖h‖) scored on {cfg.n_select} XCOPA validation items; the best "
        "cell per language is chosen there, never on test items."
    )
    return res, Section("Layer sweep (XCOPA)", note, _figures(root, figs), (table,))


def _baselines(model: Any, cfg: DemoConfig, root: Path, sweep: Any, progress: bool) -> Section:

    runs = []
    for lang in sweep.langs:
        vector, alpha = _chosen(sweep, root, lang)
        for baseline, vec in (("basic", None), ("translate_test", None), ("basic", vector)):
            tag = baseline if vec is None else f"steered-L{vec.layer}"
            runs.append(
                evaluate(
                    model,
                    "xcopa",
                    lang,
                    vector=vec,
                    alpha=alpha if vec else 1.0,
                    baseline=baseline,
                    n=cfg.n_test,
                    progress=progress,
                    output=root / "eval" / f"xcopa-{lang}-{tag}.json",
                )
            )
    table = compare(runs)
    cols = [
        "lang",
        "method",
        "layer",
        "alpha",
        "n",
        "accuracy",
        "ci_low",
        "ci_high",
        "gain",
        "p_value",
    ]
    note = (
        f"First {cfg.n_test} XCOPA test items per language: the unsteered model, "
        "the Google-MT English version of each item (translate-test: the headroom the "
        "paper's vectors aim for), and the selected vector; gain and McNemar p-value "
        "paired with the basic run."
    )
    return Section("Test items: basic vs translate-test vs steered", note, (), (table[cols],))


def _chosen(sweep: Any, root: Path, lang: str) -> tuple[Any, float]:

    best = sweep.best(lang)
    path = CellStore(root / "sweep").vector_path(lang, best["layer"])
    assert path is not None
    return SteeringVector.load(path), float(best["alpha"])


def _lens(model: Any, cfg: DemoConfig, root: Path, sweep: Any) -> tuple[Section, Any, float]:

    lang = sweep.langs[0]
    vector, alpha = _chosen(sweep, root, lang)
    prompts = list(load_parallel("flores", lang, n=cfg.n_lens).target)
    res = logit_lens(model, prompts, vector=vector, alpha=alpha, lang=lang)
    res.save(root / "lens.json")
    figs = _figures(
        root,
        {
            "lens_shares": plot_language_shares(res),
            "lens_tokens": plot_token_table(res, variant="steered"),
        },
    )
    note = (
        f"{len(prompts)} FLORES sentences in {lang}; each layer's residual at the last "
        "token projected through the final norm and unembedding; top-5 tokens labelled "
        f"by language. Steered: layer {vector.layer}, alpha {alpha:.3g}."
    )
    return (
        Section("Logit lens: which language does each layer decode to?", note, figs),
        vector,
        alpha,
    )


def _generation(model: Any, cfg: DemoConfig, lang: str, vector: Any, alpha: float) -> Section:

    prompt = load_parallel("flores", lang, n=1).target[0]
    # generate_texts, not model.generate: TransformerLens 4.3's cached generate garbles
    # every token after the first (see interp_steer.models.generation).
    base = generate_texts(model, [prompt], max_new_tokens=cfg.generation_tokens)[0]
    rows = [{"variant": "base", "alpha": 0.0, "text": base.strip()}]
    for factor in (1.0, 4.0):
        with steer(model, vector, alpha=alpha * factor, positions="all"):
            text = generate_texts(model, [prompt], max_new_tokens=cfg.generation_tokens)[0]
        variant = f"steered ×{factor:g}"
        rows.append({"variant": variant, "alpha": alpha * factor, "text": text.strip()})
    note = (
        f"Greedy continuation of one {lang} FLORES sentence ({prompt[:80]}…), unsteered, "
        "with the selected vector, and with 4× its strength."
    )
    return Section("One generation, base vs steered", note, (), (pd.DataFrame(rows),))


__all__ = [
    "DemoConfig",
    "FAST",
    "FULL",
    "run_demo",
]
