"""The study's language-forcing benchmark (CLaS-Bench's two axes): ``forcing/`` in the run folder.

:func:`forcing_stage` runs :func:`~interp_steer.analysis.forcing_benchmark` (language
control × semantic relevance, selection on held-out FLORES lines, test on the next ones)
in four parts, :data:`PARTS`, sized by ``cfg.forcing`` (:class:`~repro.config.ForcingConfig`):

1. ``methods``: every language of ``cfg.forcing.langs`` in both directions, every fitting
   method of ``cfg.forcing.methods`` with ``add``, at ``layers`` × ``ratios``: does
   DiffMean (``mean_diff``) win, as in CLaS-Bench?
2. ``layers``: ``mean_diff`` / ``add`` from English at ``curve_layers`` for
   ``curve_langs``: where language structure emerges;
3. ``operators``: ``mean_diff`` from English with ``add``, ``rotate`` and ``clamp`` for
   ``operator_langs``;
4. ``control``: the control model (``cfg.control_model``, English-centric) on
   ``control_langs``, both directions, every method, at ``control_layers``.

After the parts, :func:`relevance_checks` validates the relevance measure of each model on
its languages (:data:`VALIDATION`): the scorer is the model under test, so the page says
in which languages it ranks the parallel reference above an off-topic one.

The study model's three parts share one run folder, ``forcing/study`` (cells and vectors
one part has computed are reused by the others: the same settings make the same cell);
the control model has ``forcing/control``. Each part's result is saved as
``forcing/<part>.json``, and ``forcing/compute.json`` accumulates the seconds each part
has taken over every invocation (a resumed run adds what it spent; written every few
minutes while a part runs, so a killed run loses little: :func:`~repro.timing.heartbeat`).
"""

import json
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from interp_steer.analysis import ForcingBenchmark, forcing_benchmark
from interp_steer.constants import DIRECTIONS
from interp_steer.evaluation import (
    REFERENCE_SEPARATOR,
    RelevanceCheck,
    forcing_prompts,
    validate_relevance,
)
from interp_steer.models import load_model, model_name
from interp_steer.storage import atomic_write_json, require_settings
from repro.config import ForcingConfig, StudyConfig
from repro.timing import heartbeat

__all__ = [
    "PARTS",
    "SOURCE",
    "VALIDATION",
    "forcing_parts",
    "forcing_stage",
    "relevance_checks",
]

SOURCE = "flores"
"""The parallel corpus of every part (its relevance measure is validated on FLORES)."""

PARTS = ("methods", "layers", "operators", "control")
"""The parts of the stage, in the order they run."""

VALIDATION = "validation"
"""The relevance checks' folder in ``forcing/`` and their entry in ``compute.json``."""


def forcing_parts(cfg: StudyConfig) -> dict[str, dict[str, Any]]:
    """Each part's :func:`~interp_steer.analysis.forcing_benchmark` grid.

    ``control`` only where the study has a control model.

    >>> from repro.config import QUICK
    >>> parts = forcing_parts(QUICK)
    >>> list(parts), parts["layers"]["methods"], parts["operators"]["operators"]
    (['methods', 'layers', 'operators', 'control'], ('mean_diff',), ('add', 'rotate', 'clamp'))
    """
    f: ForcingConfig = cfg.forcing
    add = {"add": f.ratios}
    parts: dict[str, dict[str, Any]] = {
        "methods": {"langs": f.langs, "methods": f.methods, "operators": ("add",),
                    "directions": DIRECTIONS, "layers": f.layers,
                    "strengths": add},
        "layers": {"langs": f.curve_langs, "methods": ("mean_diff",), "operators": ("add",),
                   "directions": ("from_english",), "layers": f.curve_layers,
                   "strengths": add},
        "operators": {"langs": f.operator_langs, "methods": ("mean_diff",),
                      "operators": ("add", "rotate", "clamp"),
                      "directions": ("from_english",), "layers": f.layers,
                      "strengths": {**add, "rotate": f.angles, "clamp": f.clamps}},
    }  # fmt: skip
    if cfg.control_model is not None:
        parts["control"] = {
            "langs": f.control_langs,
            "methods": f.methods,
            "operators": ("add",),
            "directions": DIRECTIONS,
            "layers": f.control_layers,
            "strengths": add,
        }
    return parts


def relevance_checks(
    model: Any, langs: tuple[str, ...], f: ForcingConfig, folder: Path
) -> list[RelevanceCheck]:
    """Validate ``model``'s relevance measure in ``langs``, both directions (resumably).

    Each check (:func:`~interp_steer.evaluation.validate_relevance`, ``k = f.k``) runs on
    the benchmark's selection and test lines, FLORES devtest ``[0, n_select + n_test)``,
    and is saved as ``folder/<lang>-<direction>.json``; a saved check is read back when
    its model and settings are the ones asked for, and is an error naming the difference
    otherwise.

    >>> from repro.config import QUICK
    >>> from interp_steer.models import load_model
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     checks = relevance_checks(load_model("tiny"), ("sw",), QUICK.forcing, Path(tmp))
    ...     sorted(p.name for p in Path(tmp).iterdir())
    ['sw-from_english.json', 'sw-to_english.json']
    >>> [(c.lang, c.direction, len(c.ids)) for c in checks]
    [('sw', 'to_english', 4), ('sw', 'from_english', 4)]
    """
    checks = []
    for lang in langs:
        for direction in DIRECTIONS:
            prompts = forcing_prompts(
                lang, direction, start=0, n=f.n_select + f.n_test, source=SOURCE
            )
            settings = {
                "k": f.k,
                "seed": 0,
                "source": SOURCE,
                "start": 0,
                "fingerprint": prompts.fingerprint,
                "separator": REFERENCE_SEPARATOR,
            }
            path = folder / f"{prompts.lang}-{direction}.json"
            if path.is_file():
                check = RelevanceCheck.load(path)
                require_settings(
                    path,
                    {"model": check.model, **check.settings},
                    {"model": model_name(model), **settings},
                    what="a relevance check",
                    hint="delete it to check again",
                )
            else:
                check = validate_relevance(model, prompts, k=f.k, seed=0, progress=False)
                check.save(path)
            checks.append(check)
    return checks


def forcing_stage(model: Any, cfg: StudyConfig, root: Path) -> None:
    """Run every part of the benchmark into ``root / "forcing"``, then the relevance checks.

    Resumable: cells, vectors and checks already saved are read back.
    """
    f = cfg.forcing
    folder = root / "forcing"
    sizes: dict[str, Any] = {"n_fit": f.n_fit, "n_select": f.n_select, "n_test": f.n_test, "k": f.k,
             "max_new_tokens": f.max_new_tokens, "source": SOURCE}  # fmt: skip
    compute_path = folder / "compute.json"
    control: Any = None

    def timed(part: str) -> AbstractContextManager[None]:
        """Add the block's seconds to ``part`` in ``compute.json``, as it runs and after."""
        base = (
            json.loads(compute_path.read_text(encoding="utf-8")) if compute_path.is_file() else {}
        )
        start = time.perf_counter()

        def record() -> None:
            spent = base.get(part, 0.0) + time.perf_counter() - start
            atomic_write_json(compute_path, {**base, part: spent})

        return heartbeat(record)  # every few minutes and at the end: a kill loses little

    for part, grid in forcing_parts(cfg).items():
        with timed(part):
            if part == "control":
                assert cfg.control_model is not None  # forcing_parts checked
                control = load_model(cfg.control_model)
                runner, run_dir = control, folder / "control"
            else:
                runner, run_dir = model, folder / "study"
            print(f"  forcing: {part}", flush=True)
            bench: ForcingBenchmark = forcing_benchmark(
                runner, **grid, **sizes, run_dir=run_dir, progress=True
            )
            bench.save(folder / f"{part}.json")
    with timed(VALIDATION):
        print(f"  forcing: {VALIDATION}", flush=True)
        relevance_checks(model, f.langs, f, folder / VALIDATION / "study")
        if control is not None:
            relevance_checks(control, f.control_langs, f, folder / VALIDATION / "control")
