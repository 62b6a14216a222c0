"""Fitting steering vectors from parallel texts: mean difference, PCA, MSE and BiPO."""

from interp_steer.fitting.bipo import (
    BipoStep,
    LrScale,
    Pairing,
    bipo_direction,
    fast_step_supported,
)
from interp_steer.fitting.directions import (
    alignment_metrics,
    mean_diff_direction,
    mse_direction,
    pca_direction,
)
from interp_steer.fitting.fit import (
    METHODS,
    REGISTRY,
    Method,
    fit_vector,
    fit_vectors,
    register_method,
)

__all__ = [
    "BipoStep",
    "LrScale",
    "METHODS",
    "Pairing",
    "REGISTRY",
    "Method",
    "alignment_metrics",
    "bipo_direction",
    "fast_step_supported",
    "fit_vector",
    "fit_vectors",
    "mean_diff_direction",
    "mse_direction",
    "pca_direction",
    "register_method",
]
