"""Fitting steering vectors: mean difference, PCA, MSE, LDA, probe, low-rank, BiPO; SFT (LoRA)."""

from interp_steer.fitting.bipo import (
    BipoStep,
    LrScale,
    Pairing,
    bipo_direction,
    fast_step_supported,
    preference_texts,
    prompt_template_for,
)
from interp_steer.fitting.directions import (
    alignment_metrics,
    lda_direction,
    lowrank_direction,
    mean_diff_direction,
    mse_direction,
    pca_direction,
    probe_direction,
)
from interp_steer.fitting.fit import (
    METHODS,
    REGISTRY,
    Method,
    check_hyper,
    fit_vector,
    fit_vectors,
    register_method,
)
from interp_steer.fitting.sft import DEFAULT_TARGET_MODULES, Schedule, fit_lora, sft_loss

__all__ = [
    "BipoStep",
    "DEFAULT_TARGET_MODULES",
    "LrScale",
    "METHODS",
    "Pairing",
    "REGISTRY",
    "Method",
    "Schedule",
    "alignment_metrics",
    "bipo_direction",
    "check_hyper",
    "fast_step_supported",
    "fit_lora",
    "fit_vector",
    "fit_vectors",
    "lda_direction",
    "lowrank_direction",
    "mean_diff_direction",
    "mse_direction",
    "pca_direction",
    "preference_texts",
    "probe_direction",
    "prompt_template_for",
    "register_method",
    "sft_loss",
]
