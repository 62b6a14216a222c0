"""Steering vectors, the `steer` intervention that adds them, export, and LoRA adapters."""

from interp_steer.steering.interop import from_gguf, from_layer_dict, to_gguf, to_layer_dict
from interp_steer.steering.intervention import BasisWarning, NonFiniteError, check_vector, steer
from interp_steer.steering.lora import LoraAdapter, apply_lora
from interp_steer.steering.vectors import SteeringVector, alpha_for_ratio

__all__ = [
    "BasisWarning",
    "LoraAdapter",
    "NonFiniteError",
    "SteeringVector",
    "alpha_for_ratio",
    "apply_lora",
    "check_vector",
    "from_gguf",
    "from_layer_dict",
    "steer",
    "to_gguf",
    "to_layer_dict",
]
