"""Fitting steering vectors from parallel texts: mean difference, PCA, MSE and BiPO."""

from interp_steer.fitting.bipo import bipo_direction
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
    "METHODS",
    "REGISTRY",
    "Method",
    "alignment_metrics",
    "bipo_direction",
    "fit_vector",
    "fit_vectors",
    "mean_diff_direction",
    "mse_direction",
    "pca_direction",
    "register_method",
]
