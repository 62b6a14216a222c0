"""interp_steer: multilingual activation steering on TransformerLens.

The pipeline, one module per stage: :mod:`~interp_steer.models` →
:mod:`~interp_steer.data` / :mod:`~interp_steer.tasks` → :mod:`~interp_steer.activations` →
:mod:`~interp_steer.fitting` → :mod:`~interp_steer.steering` →
:mod:`~interp_steer.evaluation` → analyses (:mod:`~interp_steer.sweep`,
:mod:`~interp_steer.logit_lens`, :mod:`~interp_steer.similarity`,
:mod:`~interp_steer.transfer`) → :mod:`~interp_steer.plotting`.
"""

from interp_steer.activations import Activations, collect_activations
from interp_steer.compare import EvalResult, compare, pivot
from interp_steer.data import ParallelCorpus, load_parallel
from interp_steer.evaluation import english_damage, evaluate
from interp_steer.fitting import METHODS, fit_vector, fit_vectors
from interp_steer.logit_lens import LogitLensResult, logit_lens
from interp_steer.models import OFFLINE_MODELS, load_model, model_name, resolve_device
from interp_steer.plotting import (
    plot_language_shares,
    plot_similarity,
    plot_similarity_matrix,
    plot_sweep,
    plot_sweep_heatmap,
    plot_token_table,
    plot_transfer,
    save_figure,
)
from interp_steer.report import Report, Section, write_report
from interp_steer.similarity import SimilarityResult, cross_lingual_similarity
from interp_steer.steering import POSITION_MODES, steer
from interp_steer.sweep import SweepResult, layer_sweep
from interp_steer.tasks import TaskItem, TaskSet, load_task
from interp_steer.transfer import TransferResult, transfer_matrix
from interp_steer.vectors import SteeringVector

__all__ = [
    "METHODS",
    "OFFLINE_MODELS",
    "POSITION_MODES",
    "Activations",
    "EvalResult",
    "LogitLensResult",
    "ParallelCorpus",
    "Report",
    "Section",
    "SimilarityResult",
    "SteeringVector",
    "SweepResult",
    "TaskItem",
    "TaskSet",
    "TransferResult",
    "collect_activations",
    "compare",
    "cross_lingual_similarity",
    "english_damage",
    "evaluate",
    "fit_vector",
    "fit_vectors",
    "layer_sweep",
    "load_model",
    "load_parallel",
    "load_task",
    "logit_lens",
    "model_name",
    "pivot",
    "plot_language_shares",
    "plot_similarity",
    "plot_similarity_matrix",
    "plot_sweep",
    "plot_sweep_heatmap",
    "plot_token_table",
    "plot_transfer",
    "resolve_device",
    "save_figure",
    "steer",
    "transfer_matrix",
    "write_report",
]
