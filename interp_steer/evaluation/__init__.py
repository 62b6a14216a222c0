"""Evaluating a model on tasks, with or without a vector: prompts, answers, statistics, results."""

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
    "Baseline",
    "EnglishDamage",
    "EvalResult",
    "EvaluationError",
    "ItemResult",
    "PairedTest",
    "Prompt",
    "compare",
    "english_damage",
    "evaluate",
    "mcnemar_exact",
    "paired_bootstrap",
    "paired_test",
    "pivot",
    "wilson_interval",
]
