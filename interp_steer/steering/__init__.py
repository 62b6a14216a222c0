"""Steering vectors, the `steer` intervention that adds them, and export to other tools."""

from interp_steer.steering.interop import from_gguf, from_layer_dict, to_gguf, to_layer_dict
from interp_steer.steering.intervention import NonFiniteError, check_vector, steer
from interp_steer.steering.vectors import SteeringVector, alpha_for_ratio

__all__ = [
    "NonFiniteError",
    "SteeringVector",
    "alpha_for_ratio",
    "check_vector",
    "from_gguf",
    "from_layer_dict",
    "steer",
    "to_gguf",
    "to_layer_dict",
]
