"""Evaluating a model on tasks and language forcing, steered or not: prompts, scores, statistics."""

from interp_steer.evaluation.forcing import (
    REFERENCE_SEPARATOR,
    ForcingPrompts,
    ForcingResult,
    RelevanceCheck,
    forcing_prompts,
    forcing_run,
    harmonic_mean,
    relevance_margins,
    validate_relevance,
)
from interp_steer.evaluation.harness import EnglishDamage, english_damage, evaluate
from interp_steer.evaluation.prompts import BASELINES, Baseline, Prompt
from interp_steer.evaluation.results import (
    EvalResult,
    EvaluationError,
    ItemResult,
    compare,
    paired_test,
    pivot,
)
from interp_steer.evaluation.statistics import (
    PairedTest,
    mcnemar_exact,
    paired_bootstrap,
    wilson_interval,
)

__all__ = [
    "BASELINES",
    "REFERENCE_SEPARATOR",
    "Baseline",
    "EnglishDamage",
    "EvalResult",
    "EvaluationError",
    "ForcingPrompts",
    "ForcingResult",
    "ItemResult",
    "PairedTest",
    "Prompt",
    "RelevanceCheck",
    "compare",
    "english_damage",
    "evaluate",
    "forcing_prompts",
    "forcing_run",
    "harmonic_mean",
    "mcnemar_exact",
    "paired_bootstrap",
    "paired_test",
    "pivot",
    "relevance_margins",
    "validate_relevance",
    "wilson_interval",
]
