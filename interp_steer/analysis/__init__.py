"""Analyses across layers and languages: sweeps, transfer, alignment, similarity, lenses."""

from interp_steer.analysis.alignment import EnglishKL, english_kl
from interp_steer.analysis.cells import (
    CellStore,
    Evaluator,
    Score,
    Stage,
    TaskEvaluator,
    check_fitted,
    evaluator_settings,
    model_settings,
    vector_settings,
)
from interp_steer.analysis.forcing import ForcingBenchmark, forcing_arguments, forcing_benchmark
from interp_steer.analysis.hyper import HyperSelection, select_hyper
from interp_steer.analysis.lens import (
    LogitLensResult,
    cloze_prompts,
    lens_shares_table,
    logit_lens,
)
from interp_steer.analysis.similarity import (
    SimilarityResult,
    cross_lingual_similarity,
    similarity_from_activations,
)
from interp_steer.analysis.sweep import SweepResult, SweepSummary, layer_sweep, paired_gain
from interp_steer.analysis.trajectory import TrajectoryResult, language_trajectory
from interp_steer.analysis.transfer import TransferResult, transfer_matrix
from interp_steer.analysis.tuned_lens import (
    Lens,
    TunedLens,
    fit_tuned_lens,
    lens_kl,
    lens_texts,
    load_tuned_lens,
    tuned_lens_path,
)
from interp_steer.analysis.vocab_projection import project_to_vocab

__all__ = [
    "CellStore",
    "EnglishKL",
    "Evaluator",
    "ForcingBenchmark",
    "HyperSelection",
    "Lens",
    "LogitLensResult",
    "Score",
    "SimilarityResult",
    "Stage",
    "SweepResult",
    "SweepSummary",
    "TaskEvaluator",
    "TrajectoryResult",
    "TransferResult",
    "TunedLens",
    "check_fitted",
    "cloze_prompts",
    "cross_lingual_similarity",
    "english_kl",
    "evaluator_settings",
    "fit_tuned_lens",
    "forcing_arguments",
    "forcing_benchmark",
    "language_trajectory",
    "layer_sweep",
    "lens_kl",
    "lens_shares_table",
    "lens_texts",
    "load_tuned_lens",
    "logit_lens",
    "model_settings",
    "paired_gain",
    "project_to_vocab",
    "select_hyper",
    "similarity_from_activations",
    "transfer_matrix",
    "tuned_lens_path",
    "vector_settings",
]
