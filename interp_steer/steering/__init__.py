"""Steering vectors, `steer` (add, ablate, rotate, clamp), export, and LoRA adapters."""

from interp_steer.steering.interop import (
    from_gguf,
    from_layer_dict,
    from_sae_feature,
    sae_feature_scores,
    to_gguf,
    to_layer_dict,
)
from interp_steer.steering.intervention import (
    OPERATORS,
    BasisWarning,
    NonFiniteError,
    Operator,
    check_vector,
    steer,
)
from interp_steer.steering.lora import LoraAdapter, apply_lora
from interp_steer.steering.vectors import SteeringVector, alpha_for_ratio

__all__ = [
    "BasisWarning",
    "LoraAdapter",
    "NonFiniteError",
    "OPERATORS",
    "Operator",
    "SteeringVector",
    "alpha_for_ratio",
    "apply_lora",
    "check_vector",
    "from_gguf",
    "from_layer_dict",
    "from_sae_feature",
    "sae_feature_scores",
    "steer",
    "to_gguf",
    "to_layer_dict",
]
