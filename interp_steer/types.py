"""Shape-annotated tensor aliases used across interp_steer.

Shapes are checked at runtime only under pytest (``--jaxtyping-packages``), so these
annotations cost nothing in normal use. Dimension names are shared across modules:
``batch``, ``pos``, ``d_model``, ``d_vocab``, ``n`` (items), ``layer``.
"""

import numpy as np
from jaxtyping import Bool, Float, Int
from torch import Tensor

Direction = Float[Tensor, " d_model"]
"""One steering direction: a vector in the residual stream."""

Residual = Float[Tensor, "batch pos d_model"]
"""Residual-stream activations for a batch of sequences."""

Pooled = Float[Tensor, "n d_model"]
"""One pooled activation per text."""

Tokens = Int[Tensor, "batch pos"]
"""Token ids."""

Mask = Bool[Tensor, "batch pos"]
"""A boolean mask over token positions."""

Logits = Float[Tensor, "batch pos d_vocab"]
"""Next-token logits."""

FloatArray = Float[np.ndarray, "..."]
"""A numpy array of floats (results are numpy, tensors are torch)."""

AnyResidual = Float[Tensor, "*batch d_model"]
"""Residual-stream activations with any leading shape (read out by the logit lens)."""

VocabLogits = Float[Tensor, "*batch d_vocab"]
"""Logits with any leading shape."""

__all__ = [
    "AnyResidual",
    "Direction",
    "FloatArray",
    "Logits",
    "Mask",
    "Pooled",
    "Residual",
    "Tokens",
    "VocabLogits",
]
