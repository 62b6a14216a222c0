"""interp_steer: multilingual activation steering on TransformerLens."""

from interp_steer.models import OFFLINE_MODELS, load_model, model_name, resolve_device

__all__ = ["OFFLINE_MODELS", "load_model", "model_name", "resolve_device"]
