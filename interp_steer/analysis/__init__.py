"""Analyses across layers and languages: sweeps, transfer, alignment, similarity, logit lens."""

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
from interp_steer.analysis.lens import LogitLensResult, lens_shares_table, logit_lens
from interp_steer.analysis.similarity import (
    SimilarityResult,
    cross_lingual_similarity,
    similarity_from_activations,
)
from interp_steer.analysis.sweep import SweepResult, layer_sweep
from interp_steer.analysis.transfer import TransferResult, transfer_matrix
from interp_steer.analysis.vocab_projection import project_to_vocab

__all__ = [
    "CellStore",
    "EnglishKL",
    "Evaluator",
    "LogitLensResult",
    "Score",
    "SimilarityResult",
    "Stage",
    "SweepResult",
    "TaskEvaluator",
    "TransferResult",
    "check_fitted",
    "cross_lingual_similarity",
    "english_kl",
    "evaluator_settings",
    "layer_sweep",
    "lens_shares_table",
    "logit_lens",
    "model_settings",
    "project_to_vocab",
    "similarity_from_activations",
    "transfer_matrix",
    "vector_settings",
]
