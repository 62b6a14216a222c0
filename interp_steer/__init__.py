"""interp_steer: multilingual activation steering on TransformerLens.

One subpackage per pipeline stage, each with its own face: :mod:`~interp_steer.models` and
:mod:`~interp_steer.data` → :mod:`~interp_steer.activations` and
:mod:`~interp_steer.steering` → :mod:`~interp_steer.fitting` and
:mod:`~interp_steer.evaluation` → :mod:`~interp_steer.analysis` →
:mod:`~interp_steer.plotting` → :mod:`~interp_steer.cli`. The names most work needs are
exported here too (``from interp_steer import fit_vector, steer, evaluate``).
"""

import importlib
from typing import TYPE_CHECKING, Any

# Lazy exports (PEP 562): `import interp_steer` stays fast (the command line's --help does
# not wait for torch and TransformerLens); each name is imported from its stage on first use.
_EXPORTS: dict[str, str] = {
    "Activations": "interp_steer.activations",
    "collect_activations": "interp_steer.activations",
    "EnglishKL": "interp_steer.analysis",
    "LogitLensResult": "interp_steer.analysis",
    "SimilarityResult": "interp_steer.analysis",
    "SweepResult": "interp_steer.analysis",
    "TrajectoryResult": "interp_steer.analysis",
    "TransferResult": "interp_steer.analysis",
    "cross_lingual_similarity": "interp_steer.analysis",
    "english_kl": "interp_steer.analysis",
    "language_trajectory": "interp_steer.analysis",
    "layer_sweep": "interp_steer.analysis",
    "logit_lens": "interp_steer.analysis",
    "transfer_matrix": "interp_steer.analysis",
    "OFFLINE_MODELS": "interp_steer.constants",
    "POSITION_MODES": "interp_steer.constants",
    "set_progress": "interp_steer.progress",
    "ParallelCorpus": "interp_steer.data",
    "TaskItem": "interp_steer.data",
    "TaskSet": "interp_steer.data",
    "load_concepts": "interp_steer.data",
    "load_parallel": "interp_steer.data",
    "load_task": "interp_steer.data",
    "translation_prompts": "interp_steer.data",
    "EvalResult": "interp_steer.evaluation",
    "compare": "interp_steer.evaluation",
    "english_damage": "interp_steer.evaluation",
    "evaluate": "interp_steer.evaluation",
    "pivot": "interp_steer.evaluation",
    "METHODS": "interp_steer.fitting",
    "fit_vector": "interp_steer.fitting",
    "fit_vectors": "interp_steer.fitting",
    "load_model": "interp_steer.models",
    "model_name": "interp_steer.models",
    "resolve_device": "interp_steer.models",
    "Report": "interp_steer.plotting",
    "Section": "interp_steer.plotting",
    "plot_language_shares": "interp_steer.plotting",
    "plot_language_trajectory": "interp_steer.plotting",
    "plot_similarity": "interp_steer.plotting",
    "plot_similarity_matrix": "interp_steer.plotting",
    "plot_sweep": "interp_steer.plotting",
    "plot_sweep_heatmap": "interp_steer.plotting",
    "plot_token_table": "interp_steer.plotting",
    "plot_transfer": "interp_steer.plotting",
    "save_figure": "interp_steer.plotting",
    "write_report": "interp_steer.plotting",
    "SteeringVector": "interp_steer.steering",
    "alpha_for_ratio": "interp_steer.steering",
    "steer": "interp_steer.steering",
}

__all__ = [
    "Activations",
    "EnglishKL",
    "EvalResult",
    "LogitLensResult",
    "METHODS",
    "OFFLINE_MODELS",
    "POSITION_MODES",
    "ParallelCorpus",
    "Report",
    "Section",
    "SimilarityResult",
    "SteeringVector",
    "SweepResult",
    "TaskItem",
    "TaskSet",
    "TrajectoryResult",
    "TransferResult",
    "alpha_for_ratio",
    "collect_activations",
    "compare",
    "cross_lingual_similarity",
    "english_damage",
    "english_kl",
    "evaluate",
    "fit_vector",
    "fit_vectors",
    "language_trajectory",
    "layer_sweep",
    "load_concepts",
    "load_model",
    "load_parallel",
    "load_task",
    "logit_lens",
    "model_name",
    "pivot",
    "plot_language_shares",
    "plot_language_trajectory",
    "plot_similarity",
    "plot_similarity_matrix",
    "plot_sweep",
    "plot_sweep_heatmap",
    "plot_token_table",
    "plot_transfer",
    "resolve_device",
    "save_figure",
    "set_progress",
    "steer",
    "transfer_matrix",
    "translation_prompts",
    "write_report",
]


def __getattr__(name: str) -> Any:
    stage = _EXPORTS.get(name)
    if stage is None:
        raise AttributeError(f"module 'interp_steer' has no attribute {name!r}")
    value = getattr(importlib.import_module(stage), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # pragma: no cover
    from interp_steer.activations import Activations, collect_activations
    from interp_steer.analysis import (
        EnglishKL,
        LogitLensResult,
        SimilarityResult,
        SweepResult,
        TrajectoryResult,
        TransferResult,
        cross_lingual_similarity,
        english_kl,
        language_trajectory,
        layer_sweep,
        logit_lens,
        transfer_matrix,
    )
    from interp_steer.constants import OFFLINE_MODELS, POSITION_MODES
    from interp_steer.data import (
        ParallelCorpus,
        TaskItem,
        TaskSet,
        load_concepts,
        load_parallel,
        load_task,
        translation_prompts,
    )
    from interp_steer.evaluation import EvalResult, compare, english_damage, evaluate, pivot
    from interp_steer.fitting import METHODS, fit_vector, fit_vectors
    from interp_steer.models import load_model, model_name, resolve_device
    from interp_steer.plotting import (
        Report,
        Section,
        plot_language_shares,
        plot_language_trajectory,
        plot_similarity,
        plot_similarity_matrix,
        plot_sweep,
        plot_sweep_heatmap,
        plot_token_table,
        plot_transfer,
        save_figure,
        write_report,
    )
    from interp_steer.progress import set_progress
    from interp_steer.steering import SteeringVector, alpha_for_ratio, steer
