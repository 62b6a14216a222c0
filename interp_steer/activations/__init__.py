"""Residual-stream activations of many texts at many layers, pooled and cached."""

from interp_steer.activations.cache import model_fingerprint
from interp_steer.activations.collect import collect_activations
from interp_steer.activations.pooled import POOLINGS, Activations, Pooling

__all__ = [
    "Activations",
    "POOLINGS",
    "Pooling",
    "collect_activations",
    "model_fingerprint",
]
