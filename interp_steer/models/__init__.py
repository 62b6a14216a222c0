"""Loading models and running them: offline aliases, devices, layers, batching, generation."""

from interp_steer.models.batching import generate_texts, left_pad, score_continuations
from interp_steer.models.generation import generating, greedy_generate, kv_cache_fix
from interp_steer.models.layers import HOOK_TEMPLATE, check_layers
from interp_steer.models.loading import cache_dir, load_model, model_name, resolve_device

__all__ = [
    "HOOK_TEMPLATE",
    "cache_dir",
    "check_layers",
    "generate_texts",
    "generating",
    "greedy_generate",
    "kv_cache_fix",
    "left_pad",
    "load_model",
    "model_name",
    "resolve_device",
    "score_continuations",
]
