"""The demo: the toolkit's main job in one call, ending in one self-contained report.

:func:`run_demo` runs, on the default model and the shared data:

1. **similarity** of several languages to English per layer (FLORES, centred cosine, CKA,
   retrieval) — where do representations align?
2. a short **layer sweep** on XCOPA: a mean-difference vector per layer and relative
   strength, fitted on FLORES pairs, selected on XCOPA's validation split, the chosen cell
   then tested on XCOPA test items beside the unsteered and translate-test baselines; the
   report's sweep section leads with that **test** result (gain, 95% interval, p-value and
   one sentence saying what it means), the optimistic selection gain second;
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

from interp_steer.analysis.cells import CellStore, TaskEvaluator
from interp_steer.analysis.lens import logit_lens
from interp_steer.analysis.similarity import cross_lingual_similarity
from interp_steer.analysis.sweep import SweepResult, layer_sweep
from interp_steer.data.parallel import load_parallel
from interp_steer.evaluation.harness import evaluate
from interp_steer.evaluation.results import compare
from interp_steer.models.batching import generate_texts
from interp_steer.models.loading import load_model, model_name
from interp_steer.plotting.export import save_figures
from interp_steer.plotting.lens import plot_language_shares, plot_token_table
from interp_steer.plotting.report import Report, Section, write_report
from interp_steer.plotting.similarity import plot_similarity, plot_similarity_matrix
from interp_steer.plotting.style import language_label
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
    progress: bool | None = None,
) -> Path:
    """Run the demo into ``out`` and return the path of ``out/report.html``.

    Args:
        out: Run folder (created; a re-run resumes).
        model: A loaded bridge; by default ``config.model`` is loaded.
        fast: Use :data:`FAST` (tiny model, a few items) instead of :data:`FULL`.
        config: Explicit sizes (overrides ``fast``).
        progress: Progress bars; ``None`` follows
            :func:`~interp_steer.progress.set_progress`. Each step is printed unless
            ``progress`` is False.

    Returns:
        The report's path.
    """
    cfg = config or (FAST if fast else FULL)
    root = Path(out)
    started = time.perf_counter()
    say = print if progress is not False else (lambda *a, **k: None)  # a log keeps the steps
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
    sweep = _sweep(model, cfg, root, progress)
    step("baselines")
    eval_section, tested = _baselines(model, cfg, root, sweep, progress)
    sweep = _with_test(sweep, tested, cfg)
    sweep.save(root / "sweep.json")
    for lang in sweep.langs:
        summary = sweep.summary(lang)
        if summary is not None:
            say(f"  {lang}: {summary.line()}")
    figs = {"sweep": plot_sweep(sweep)}
    figs.update({f"sweep_heatmap_{x}": plot_sweep_heatmap(sweep, x) for x in sweep.langs})
    sweep_section = sweep_report(sweep, cfg, _figures(root, figs))
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


def _similarity(model: Any, cfg: DemoConfig, root: Path, progress: bool | None) -> Section:

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


def _sweep(model: Any, cfg: DemoConfig, root: Path, progress: bool | None) -> SweepResult:
    """The selection stage only: the test run is :func:`_baselines`' (``n_test`` items)."""
    return layer_sweep(
        model,
        cfg.sweep_langs,
        task=TaskEvaluator("xcopa", n=cfg.n_select),
        layers=cfg.layers,
        ratios=cfg.ratios,
        fit_dataset="flores",
        n_fit=cfg.n_fit,
        test=False,
        run_dir=root / "sweep",
        progress=progress,
    )


def _with_test(sweep: SweepResult, tested: dict[str, tuple[Any, Any]], cfg: DemoConfig) -> Any:
    """``sweep`` with each language's test stage: the steered and basic runs of the baselines."""
    testing = f"xcopa test split, first {cfg.n_test} items"
    for lang, (basic, steered) in tested.items():
        sweep = sweep.with_test(lang, steered, basic, testing=testing)
    return sweep


def sweep_report(
    sweep: SweepResult, cfg: DemoConfig, figures: tuple[go.Figure, ...] = ()
) -> Section:
    """The report's sweep section: the held-out test result first, in words and a table.

    Its lead has one paragraph per language: the sentence of
    :attr:`~interp_steer.analysis.SweepSummary.verdict` ("steering lowered accuracy here"
    when it did), then the numbers (the test result, the selection gain last); then
    :meth:`~interp_steer.analysis.SweepResult.summary_frame` (``test_*`` columns before
    ``select_*``). The note says how the numbers were made; ``figures`` follow.

    >>> import numpy as np
    >>> grid = np.full((1, 1, 1), 0.7)
    >>> res = SweepResult("m", "xcopa accuracy", "mean_diff", ("sw",), (6,), (0.5,), True,
    ...                   grid * 0 + 4.0, grid, grid - 0.1, grid + 0.1,
    ...                   np.array([[0.6, 0.5, 0.7]]), np.array([[0.5, 0.4, 0.6]]),
    ...                   np.array([[0.58, 0.48, 0.68]]), "xcopa val split",
    ...                   test_gain=np.array([[-0.08, -0.16, -0.01]]), test_p=np.array([0.04]),
    ...                   test_n=np.array([64]), testing="xcopa test split")
    >>> section = sweep_report(res, FAST)
    >>> print(section.lead[0])  # doctest: +NORMALIZE_WHITESPACE
    Swahili (sw): Steering lowered accuracy here: -0.080 on 64 held-out items (95% CI -0.160
    to -0.010). In numbers: layer 6, ratio 0.5 (alpha 4): -0.080 (95% CI -0.160 to -0.010,
    p=0.04) over unsteered on 64 held-out items (xcopa test split); selected on xcopa val
    split: +0.100.
    >>> list(section.lead_tables[0].columns[4:8])
    ['test_gain', 'test_ci_low', 'test_ci_high', 'test_p_value']
    """
    lead = []
    for lang in sweep.langs:
        summary = sweep.summary(lang)
        label = language_label(lang)
        if summary is None:
            lead.append(f"{label}: every cell failed, so nothing was selected or tested.")
            continue
        lead.append(f"{label}: {summary.verdict} In numbers: {summary.line()}.")
    note = (
        f"Mean-difference vectors fitted on {cfg.n_fit} FLORES pairs per layer; each "
        f"(layer, ‖αv‖/‖h‖) scored on {cfg.n_select} XCOPA validation items; the best "
        "cell per language is chosen there, never on test items, then run on the first "
        f"{cfg.n_test} XCOPA test items beside the unsteered model. The table gives that "
        "test result first (test_gain with its paired-bootstrap 95% interval and McNemar "
        "p-value); select_gain, the gain of the best of the grid on the items it was chosen "
        "on, is optimistic by construction."
    )
    return Section(
        "Layer sweep (XCOPA)",
        note,
        tuple(figures),
        lead=tuple(lead),
        lead_tables=(sweep.summary_frame(),),
    )


def _baselines(
    model: Any, cfg: DemoConfig, root: Path, sweep: Any, progress: bool | None
) -> tuple[Section, dict[str, tuple[Any, Any]]]:

    runs = []
    tested: dict[str, tuple[Any, Any]] = {}
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
        tested[lang] = (runs[-3], runs[-1])  # basic and steered, on the same items
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
    return (
        Section("Test items: basic vs translate-test vs steered", note, (), (table[cols],)),
        tested,
    )


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
    "sweep_report",
]
