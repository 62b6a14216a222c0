"""interp_steer: multilingual activation steering on TransformerLens.

The pipeline, one module per stage: :mod:`~interp_steer.models` →
:mod:`~interp_steer.data` / :mod:`~interp_steer.tasks` → :mod:`~interp_steer.activations` →
:mod:`~interp_steer.fitting` → :mod:`~interp_steer.steering` →
:mod:`~interp_steer.evaluation` → analyses (:mod:`~interp_steer.sweep`,
:mod:`~interp_steer.logit_lens`, :mod:`~interp_steer.similarity`,
:mod:`~interp_steer.transfer`) → :mod:`~interp_steer.plotting`.
"""

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

# Lazy exports (PEP 562): `import interp_steer` stays fast (the command line's --help does
# not wait for torch and TransformerLens); each name is imported on first use.
_EXPORTS: dict[str, str] = {
    "Activations": "interp_steer.activations",
    "collect_activations": "interp_steer.activations",
    "compare": "interp_steer.compare",
    "cross_lingual_similarity": "interp_steer.similarity",
    "english_damage": "interp_steer.evaluation",
    "english_kl": "interp_steer.alignment",
    "EnglishKL": "interp_steer.alignment",
    "EvalResult": "interp_steer.compare",
    "evaluate": "interp_steer.evaluation",
    "fit_vector": "interp_steer.fitting",
    "fit_vectors": "interp_steer.fitting",
    "layer_sweep": "interp_steer.sweep",
    "load_model": "interp_steer.models",
    "load_parallel": "interp_steer.data",
    "load_task": "interp_steer.tasks",
    "logit_lens": "interp_steer.logit_lens",
    "LogitLensResult": "interp_steer.logit_lens",
    "METHODS": "interp_steer.fitting",
    "model_name": "interp_steer.models",
    "OFFLINE_MODELS": "interp_steer.models",
    "ParallelCorpus": "interp_steer.data",
    "pivot": "interp_steer.compare",
    "plot_language_shares": "interp_steer.plotting",
    "plot_similarity": "interp_steer.plotting",
    "plot_similarity_matrix": "interp_steer.plotting",
    "plot_sweep": "interp_steer.plotting",
    "plot_sweep_heatmap": "interp_steer.plotting",
    "plot_token_table": "interp_steer.plotting",
    "plot_transfer": "interp_steer.plotting",
    "POSITION_MODES": "interp_steer.steering",
    "Report": "interp_steer.report",
    "resolve_device": "interp_steer.models",
    "save_figure": "interp_steer.plotting",
    "Section": "interp_steer.report",
    "SimilarityResult": "interp_steer.similarity",
    "steer": "interp_steer.steering",
    "SteeringVector": "interp_steer.vectors",
    "SweepResult": "interp_steer.sweep",
    "TaskItem": "interp_steer.tasks",
    "TaskSet": "interp_steer.tasks",
    "transfer_matrix": "interp_steer.transfer",
    "TransferResult": "interp_steer.transfer",
    "write_report": "interp_steer.report",
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
    "TransferResult",
    "collect_activations",
    "compare",
    "cross_lingual_similarity",
    "english_damage",
    "english_kl",
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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'interp_steer' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


# Importing a submodule makes it an attribute of its package. Where a submodule shares its
# name with the function it exports (compare, logit_lens), `interp_steer.compare` must stay
# the function, as with eager `from ... import` lines; so such module attributes are dropped
# and the name is resolved by __getattr__.
_SHADOWED = frozenset(name for name, module in _EXPORTS.items() if module == f"{__name__}.{name}")


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        if name in _SHADOWED and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
for _name in _SHADOWED:
    globals().pop(_name, None)


if TYPE_CHECKING:  # pragma: no cover
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
