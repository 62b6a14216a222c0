"""Closed-form steering directions from paired pooled activations, and their alignment.

Each method takes English and target-language activations paired by row (``h_en``,
``h_tgt``, both ``[n, d_model]``) and returns one direction ``v`` such that
``h_tgt + v`` looks like ``h_en``: the mean difference (:func:`mean_diff_direction`), its
first principal component (:func:`pca_direction`), or the minimiser of the paper's MSE
loss (:func:`mse_direction`, exact or by the paper's AdamW training).
:func:`alignment_metrics` measures how well a direction aligns the pairs. They are
registered by name in :data:`interp_steer.fitting.METHODS`.

Example:
    >>> en, tgt = torch.randn(8, 4) + 1.0, torch.randn(8, 4)
    >>> v = mean_diff_direction(en, tgt)
    >>> alignment_metrics(en, tgt, v)["mse_after"] < alignment_metrics(en, tgt, 0 * v)["mse_after"]
    True
"""

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F

from interp_steer.types import Direction, Pooled


def mean_diff_direction(h_en: Pooled, h_tgt: Pooled) -> Direction:
    """Return the mean over pairs of ``h_en - h_tgt`` (CAA / DiffMean).

    >>> mean_diff_direction(torch.tensor([[3.0, 1.0]]), torch.tensor([[1.0, 1.0]])).tolist()
    [2.0, 0.0]
    """
    en, tgt = _as_pairs(h_en, h_tgt)
    return (en - tgt).mean(0).float()


def pca_direction(h_en: Pooled, h_tgt: Pooled, *, center: bool = False) -> Direction:
    """Return the first principal component of the paired differences ``h_en - h_tgt``.

    The component is sign-aligned with the mean difference and scaled to the mean
    difference's projection onto it, so it is comparable in size to ``mean_diff``.

    Args:
        h_en: English activations.
        h_tgt: Target-language activations, paired with ``h_en`` by row.
        center: Subtract the mean difference first (classic PCA: the direction of largest
            *variation* between pairs). The default, ``False``, takes the top singular
            vector of the raw differences, which also captures their common offset.

    >>> v = pca_direction(torch.tensor([[2.0, 0.0], [4.0, 0.0]]), torch.zeros(2, 2))
    >>> round(float(v[0]), 4), round(abs(float(v[1])), 4)
    (3.0, 0.0)
    """
    en, tgt = _as_pairs(h_en, h_tgt)
    diffs = en - tgt
    mean = diffs.mean(0)
    x = diffs - mean if center else diffs
    if not bool(x.abs().sum() > 0):
        return mean.float()
    pc = _top_eigenvector(x.T @ x)
    proj = torch.dot(mean, pc)
    return (pc * proj).float()  # sign-aligned: pc * (mean . pc) always points along mean


def mse_direction(
    h_en: Pooled,
    h_tgt: Pooled,
    *,
    solver: Literal["closed_form", "adamw"] = "closed_form",
    lr: float = 1e-8,
    epochs: int = 3,
    batch_size: int | None = 8,
    weight_decay: float = 0.01,
    seed: int = 0,
) -> tuple[Direction, dict[str, Any]]:
    """Minimise the paper's loss ``MSE(h_tgt + v, h_en)`` over ``v``.

    On paired pooled activations this loss is a convex quadratic whose minimiser is
    exactly the mean difference ``mean(h_en - h_tgt)`` (its gradient is
    ``2 * mean(h_tgt + v - h_en)``), so ``solver="closed_form"`` returns that.

    ``solver="adamw"`` reproduces the paper's training instead: ``v`` starts at zero and
    AdamW runs with the paper's ``lr=1e-8`` for a few epochs. Adam moves each coordinate
    by about ``lr`` per step, so after ``S`` steps ``|v| <= lr * S * sqrt(d_model)``: the
    paper's "MSE-steer" ends far from the minimiser, a much shorter vector.
    ``metrics["norm_vs_converged"]`` records ``|v| / |v*|`` and ``loss_curve`` the
    per-step loss. With a large ``lr`` and many epochs it converges to the closed form.

    Args:
        h_en: English activations.
        h_tgt: Target-language activations, paired with ``h_en`` by row.
        solver: ``"closed_form"`` (exact) or ``"adamw"`` (the paper's gradient training).
        lr: AdamW learning rate (the paper's 1e-8 by default).
        epochs: Passes over the pairs (the paper used 3 to 12).
        batch_size: Pairs per step; ``None`` for full-batch steps.
        weight_decay: AdamW's decoupled weight decay (torch's default).
        seed: Seed of the shuffling.

    Returns:
        ``(v, metrics)``.

    >>> en, tgt = torch.randn(16, 4) + 2.0, torch.randn(16, 4)
    >>> v, _ = mse_direction(en, tgt)
    >>> torch.allclose(v, mean_diff_direction(en, tgt))
    True
    """
    en, tgt = _as_pairs(h_en, h_tgt)
    exact = (en - tgt).mean(0).float()
    metrics: dict[str, Any] = {"closed_form_loss": float(F.mse_loss(tgt + exact, en))}
    if solver == "closed_form":
        return exact, {**metrics, "loss": metrics["closed_form_loss"]}
    if solver != "adamw":
        raise ValueError(f"solver must be 'closed_form' or 'adamw', got {solver!r}")
    for name, value in (("lr", lr), ("weight_decay", weight_decay)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite non-negative number, got {value}")
    if epochs < 1 or (batch_size is not None and batch_size < 1):
        raise ValueError("epochs and batch_size must be positive")
    n = en.shape[0]
    step_size = n if batch_size is None else batch_size
    gen = torch.Generator().manual_seed(seed)
    v = torch.zeros(en.shape[1], dtype=en.dtype, requires_grad=True)
    opt = torch.optim.AdamW([v], lr=lr, weight_decay=weight_decay)
    losses: list[float] = []
    with torch.enable_grad():
        for _ in range(epochs):
            perm = torch.randperm(n, generator=gen)
            for start in range(0, n, step_size):
                rows = perm[start : start + step_size]
                loss = F.mse_loss(tgt[rows] + v, en[rows])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
    out = v.detach().float()
    norm_exact = float(exact.norm())
    ratio = float(out.norm()) / norm_exact if norm_exact > 0 else None
    metrics.update(loss=float(F.mse_loss(tgt + out, en)), loss_curve=losses, steps=len(losses))
    metrics.update(converged_norm=norm_exact, norm_vs_converged=ratio)
    return out, metrics


def _top_eigenvector(gram: torch.Tensor, block: int = 8, tol: float = 1e-10) -> torch.Tensor:
    """Top eigenvector of a PSD matrix: block power iteration with Rayleigh-Ritz.

    Converges at the rate ``lambda_{block+1} / lambda_1``; falls back to a full ``eigh``
    when 30 iterations do not bring the residual under ``tol`` (relative).
    """
    d = gram.shape[0]
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(d, min(block, d), generator=gen, dtype=gram.dtype).to(gram.device)
    for _ in range(30):
        q = torch.linalg.qr(gram @ q).Q
        values, vectors = torch.linalg.eigh(q.T @ gram @ q)
        u = q @ vectors[:, -1]
        if float((gram @ u - values[-1] * u).norm()) <= tol * max(float(values[-1]), 1e-300):
            return u
    return torch.linalg.eigh(gram).eigenvectors[:, -1]


def _as_pairs(h_en: Pooled, h_tgt: Pooled) -> tuple[torch.Tensor, torch.Tensor]:
    if h_en.ndim != 2 or h_en.shape != h_tgt.shape:
        raise ValueError(
            f"h_en and h_tgt must be paired [n, d_model] tensors, got {tuple(h_en.shape)} "
            f"and {tuple(h_tgt.shape)}"
        )
    if h_en.shape[0] == 0:
        raise ValueError("no activation pairs to fit on")
    return h_en.double(), h_tgt.double()


def alignment_metrics(h_en: Pooled, h_tgt: Pooled, direction: Direction) -> dict[str, float]:
    """In-sample alignment of ``h_tgt + direction`` with ``h_en``, and the vector's norm.

    Returns ``norm``, ``cos_before``/``cos_after`` (mean cosine between paired rows),
    ``mse_before``/``mse_after`` and ``cos_with_mean_diff``.

    >>> m = alignment_metrics(torch.ones(3, 2), torch.zeros(3, 2), torch.ones(2))
    >>> m["mse_before"], m["mse_after"]
    (1.0, 0.0)
    """
    en, tgt = _as_pairs(h_en, h_tgt)
    v = direction.detach().double().cpu()
    after = tgt + v
    mean_diff = (en - tgt).mean(0)
    denom = float(v.norm() * mean_diff.norm())
    return {
        "norm": float(v.norm()),
        "cos_before": float(F.cosine_similarity(tgt, en, dim=-1).mean()),
        "cos_after": float(F.cosine_similarity(after, en, dim=-1).mean()),
        "mse_before": float(F.mse_loss(tgt, en)),
        "mse_after": float(F.mse_loss(after, en)),
        "cos_with_mean_diff": float(torch.dot(v, mean_diff)) / denom if denom > 0 else 0.0,
    }


__all__ = [
    "alignment_metrics",
    "mean_diff_direction",
    "mse_direction",
    "pca_direction",
]
