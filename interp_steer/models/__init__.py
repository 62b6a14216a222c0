"""Loading and running models: offline aliases, devices, layers, batching, generation, adapters."""

from interp_steer.models.adapters import (
    active_adapters,
    named_weights,
    weight_deltas,
    weights_fingerprint,
)
from interp_steer.models.backend import Model, basis_mismatch, is_hooked, weight_basis
from interp_steer.models.batching import generate_texts, left_pad, score_continuations
from interp_steer.models.fast import fast_forward, fast_path_blocker, prefix_blocker, prefix_step
from interp_steer.models.generation import generating, greedy_generate, kv_cache_fix
from interp_steer.models.layers import HOOK_TEMPLATE, check_layers
from interp_steer.models.loading import (
    ModelKind,
    cache_dir,
    load_model,
    model_name,
    resolve_device,
)
from interp_steer.models.verify import ModelCheck, verify_model

__all__ = [
    "HOOK_TEMPLATE",
    "Model",
    "ModelCheck",
    "ModelKind",
    "active_adapters",
    "basis_mismatch",
    "cache_dir",
    "check_layers",
    "fast_forward",
    "fast_path_blocker",
    "generate_texts",
    "generating",
    "greedy_generate",
    "is_hooked",
    "kv_cache_fix",
    "left_pad",
    "load_model",
    "model_name",
    "named_weights",
    "prefix_blocker",
    "prefix_step",
    "resolve_device",
    "score_continuations",
    "verify_model",
    "weight_basis",
    "weight_deltas",
    "weights_fingerprint",
]
