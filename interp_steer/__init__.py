"""interp_steer: multilingual activation steering on TransformerLens."""

from interp_steer.models import OFFLINE_MODELS, load_model, model_name, resolve_device
from interp_steer.steering import POSITION_MODES, steer
from interp_steer.vectors import SteeringVector

__all__ = [
    "OFFLINE_MODELS",
    "POSITION_MODES",
    "SteeringVector",
    "load_model",
    "model_name",
    "resolve_device",
    "steer",
]
