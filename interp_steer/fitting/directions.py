"""Closed-form steering directions from paired pooled activations, and their alignment.

Each method takes English and target-language activations paired by row (``h_en``,
``h_tgt``, both ``[n, d_model]``) and returns one direction ``v`` such that
``h_tgt + v`` looks like ``h_en``: the mean difference (:func:`mean_diff_direction`), its
first principal component (:func:`pca_direction`), the minimiser of the paper's MSE
loss (:func:`mse_direction`, exact or by the paper's AdamW training), the shrunk Fisher
discriminant (:func:`lda_direction`), a logistic-regression probe's weights
(:func:`probe_direction`), or the mean difference within the top-``k`` singular subspace
of the differences (:func:`lowrank_direction`). :func:`alignment_metrics` measures how well
a direction aligns the pairs. They are registered by name in
:data:`interp_steer.fitting.METHODS`.

``pca``, ``lda`` and ``probe`` find a unit direction ``w`` and return ``(m · w) w`` with
``m`` the mean difference: sign-aligned with ``m`` and as long as ``m``'s projection onto
``w``, so ``alpha`` and norm ratios mean the same for every method.

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

from interp_steer.constants import check_count
from interp_steer.types import Direction, Pooled

BASIS_LIMIT = 16384
"""The most numbers (``k * d_model``) of a ``lowrank`` basis recorded in its metrics."""


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


def lda_direction(
    h_en: Pooled,
    h_tgt: Pooled,
    *,
    shrinkage: float | Literal["ledoit_wolf"] = 0.1,
) -> tuple[Direction, dict[str, Any]]:
    """Return the Fisher discriminant direction between English and the target language.

    ``w = Σ⁻¹ m`` with ``m`` the mean difference and ``Σ`` the pooled within-language
    covariance shrunk towards a multiple of the identity,
    ``Σ = (1 − λ) S + λ · tr(S) / d · I``, so it is invertible also with fewer pairs than
    dimensions. ``w`` discounts directions along which activations vary a lot within each
    language; the result is ``(m · ŵ) ŵ`` (``ŵ = w / ‖w‖``), scaled like ``pca``.

    Args:
        h_en: English activations.
        h_tgt: Target-language activations, paired with ``h_en`` by row (the pairing is
            not used: LDA sees two classes).
        shrinkage: ``λ`` in [0, 1] (0: plain LDA, pseudo-inverse where ``S`` is singular;
            1: ``w`` is the mean difference), or ``"ledoit_wolf"`` for the Ledoit-Wolf
            estimate of it.

    Returns:
        ``(v, metrics)``; metrics: ``shrinkage`` (the ``λ`` used) and ``accuracy`` (of
        telling the languages apart in sample by the projection on ``ŵ``, cut at the
        midpoint of the two means).

    >>> en, tgt = torch.randn(32, 4) + torch.tensor([2.0, 0, 0, 0]), torch.randn(32, 4)
    >>> v, metrics = lda_direction(en, tgt, shrinkage=1.0)  # all shrinkage: the mean difference
    >>> torch.allclose(v, mean_diff_direction(en, tgt), atol=1e-6), metrics["shrinkage"]
    (True, 1.0)
    """
    en, tgt = _as_pairs(h_en, h_tgt)
    n, d = en.shape
    mean = (en - tgt).mean(0)
    x = torch.cat([en - en.mean(0), tgt - tgt.mean(0)])
    scatter = x.T @ x / max(2 * n - 2, 1)
    mu = float(torch.trace(scatter)) / d
    if shrinkage == "ledoit_wolf":
        lam = _ledoit_wolf(x, mu)
    elif isinstance(shrinkage, bool) or not isinstance(shrinkage, int | float):
        raise ValueError(
            f"shrinkage must be a number in [0, 1] or 'ledoit_wolf', got {shrinkage!r}"
        )
    elif not 0.0 <= shrinkage <= 1.0:
        raise ValueError(f"shrinkage must be a number in [0, 1] or 'ledoit_wolf', got {shrinkage}")
    else:
        lam = float(shrinkage)
    if mu > 0:
        sigma = (1.0 - lam) * scatter + lam * mu * torch.eye(d, dtype=scatter.dtype)
        values, vectors = torch.linalg.eigh(sigma)
        keep = values > values[-1] * d * torch.finfo(values.dtype).eps
        inverse = torch.where(keep, 1.0 / torch.where(keep, values, 1.0), 0.0)
        w = vectors @ (inverse * (vectors.T @ mean))
    else:  # no variation within either language: every direction is as noisy
        w = mean
    out = _scaled_like_mean(w, mean)
    return out.float(), {"shrinkage": lam, "accuracy": _accuracy(en, tgt, w)}


def probe_direction(
    h_en: Pooled,
    h_tgt: Pooled,
    *,
    l2: float = 1e-3,
    steps: int = 200,
    lr: float = 1.0,
) -> tuple[Direction, dict[str, Any]]:
    """Return the weight direction of a logistic-regression probe, English vs target.

    The probe ``σ(z · w + b)`` (English = 1) is trained full-batch with L-BFGS
    (strong-Wolfe line search) from zero weights, so it is deterministic: no seed. The
    activations are centred and divided by one scalar (their root-mean-square
    coordinate), which keeps the problem well conditioned without changing which
    direction ``w`` is; the loss is the mean cross-entropy plus ``l2 / 2 · ‖w‖²``. The
    result is ``(m · ŵ) ŵ``, scaled like ``pca``.

    Args:
        h_en: English activations.
        h_tgt: Target-language activations, paired with ``h_en`` by row (the pairing is
            not used: the probe sees two classes).
        l2: Weight decay on the standardised weights (> 0 keeps them finite when the
            languages are linearly separable, as they usually are).
        steps: Most L-BFGS iterations.
        lr: L-BFGS step size (the line search adapts it).

    Returns:
        ``(v, metrics)``; metrics: ``loss`` (final, penalty included), ``accuracy`` (in
        sample) and ``evaluations`` (loss evaluations L-BFGS used).

    >>> g = torch.Generator().manual_seed(0)
    >>> en = torch.randn(32, 4, generator=g) + torch.tensor([4.0, 0, 0, 0])
    >>> v, metrics = probe_direction(en, torch.randn(32, 4, generator=g))
    >>> float(v[0]) > 2 * float(v[1:].abs().max()), metrics["accuracy"] > 0.9
    (True, True)
    """
    en, tgt = _as_pairs(h_en, h_tgt)
    steps = check_count("steps", steps)
    for name, value, least in (("l2", l2, "non-negative"), ("lr", lr, "positive")):
        bad = isinstance(value, bool) or not isinstance(value, int | float)
        if bad or not math.isfinite(value) or value < 0 or (least == "positive" and value == 0):
            raise ValueError(f"{name} must be a finite {least} number, got {value!r}")
    n, d = en.shape
    mean = (en - tgt).mean(0)
    x = torch.cat([en, tgt])
    x = x - x.mean(0)
    scale = float(x.pow(2).mean().sqrt())
    if not scale > 0:
        return mean.float(), {"loss": None, "accuracy": _accuracy(en, tgt, mean), "evaluations": 0}
    z = x / scale
    y = torch.cat([torch.ones(n), torch.zeros(n)]).to(z)
    w = torch.zeros(d, dtype=z.dtype, requires_grad=True)
    b = torch.zeros((), dtype=z.dtype, requires_grad=True)
    opt = torch.optim.LBFGS(
        [w, b],
        lr=lr,
        max_iter=steps,
        history_size=20,
        tolerance_grad=1e-10,
        tolerance_change=1e-14,
        line_search_fn="strong_wolfe",
    )
    evaluations = 0

    def closure() -> torch.Tensor:
        nonlocal evaluations
        evaluations += 1
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(z @ w + b, y) + 0.5 * l2 * (w @ w)
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
        final = float(closure().detach())
    weights = w.detach()
    if not bool(torch.isfinite(weights).all()):
        raise ValueError("the probe diverged (non-finite weights); use a larger l2")
    out = _scaled_like_mean(weights, mean)
    metrics = {"loss": final, "accuracy": _accuracy(en, tgt, weights), "evaluations": evaluations}
    return out.float(), metrics


def lowrank_direction(
    h_en: Pooled, h_tgt: Pooled, *, k: int = 4
) -> tuple[Direction, dict[str, Any]]:
    """Return the mean difference within the top-``k`` singular subspace of the differences.

    ``D = h_en − h_tgt`` (``[n, d_model]``, not centred) has right singular vectors
    ``b_1, b_2, ...``; with ``B`` the top ``k`` of them (``[k, d_model]``) the result is
    ``v = Bᵀ B m``, ``m`` the mean difference. Adding ``v`` moves the target's mean to
    English's within that subspace (``B (μ_tgt + v) = B μ_en``) and leaves every other
    direction alone: the subspace shift of Neural FOXP2's low-rank construction, as one
    vector. ``D`` is not centred, so the subspace holds the pairs' common shift as well as
    how they vary (``k = 1`` is ``pca``); ``m`` lies in the span of all of them, so ``k``
    at least the rank of ``D`` gives the mean difference itself.

    Args:
        h_en: English activations.
        h_tgt: Target-language activations, paired with ``h_en`` by row.
        k: The subspace's dimension; at most ``min(n, d_model)`` are used.

    Returns:
        ``(v, metrics)``; metrics: ``k_used``, ``singular_values`` (the top ``k_used``),
        ``energy`` (their share of ``‖D‖²``), ``mean_captured`` (``‖v‖² / ‖m‖²``) and
        ``basis`` (``B`` as nested lists, each row sign-aligned with ``m``; None when
        ``k_used * d_model`` exceeds :data:`BASIS_LIMIT`, then refit to get it).

    >>> en = torch.tensor([[2.0, 0.0, 1.0], [4.0, 0.0, -1.0]])
    >>> v, metrics = lowrank_direction(en, torch.zeros(2, 3), k=1)  # part of the mean
    >>> metrics["k_used"], round(metrics["mean_captured"], 4)
    (1, 0.9881)
    >>> v, metrics = lowrank_direction(en, torch.zeros(2, 3), k=8)  # D has rank 2: all of it
    >>> [round(float(x), 4) + 0.0 for x in v], metrics["k_used"], round(metrics["mean_captured"], 4)
    ([3.0, 0.0, 0.0], 2, 1.0)
    """
    en, tgt = _as_pairs(h_en, h_tgt)
    k = check_count("k", k)
    diffs = en - tgt
    mean = diffs.mean(0)
    _, values, vh = torch.linalg.svd(diffs, full_matrices=False)
    used = min(k, vh.shape[0])
    basis = vh[:used]
    signs = torch.where(basis @ mean < 0, -1.0, 1.0).to(basis)
    basis = basis * signs[:, None]
    out = basis.T @ (basis @ mean)
    total = float(values.pow(2).sum())
    mean_sq = float(mean @ mean)
    small = used * basis.shape[1] <= BASIS_LIMIT
    metrics = {
        "k_used": used,
        "singular_values": [float(x) for x in values[:used]],
        "energy": float(values[:used].pow(2).sum()) / total if total > 0 else None,
        "mean_captured": float(out @ out) / mean_sq if mean_sq > 0 else None,
        "basis": [[float(x) for x in row] for row in basis.float()] if small else None,
    }
    return out.float(), metrics


def _scaled_like_mean(w: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """``(mean · ŵ) ŵ``: the direction of ``w``, sign-aligned with ``mean``, its projection long."""
    norm = w.norm()
    if not bool(norm > 0):
        return torch.zeros_like(mean)
    unit = w / norm
    return unit * torch.dot(mean, unit)


def _accuracy(en: torch.Tensor, tgt: torch.Tensor, w: torch.Tensor) -> float:
    """In-sample accuracy of telling ``en`` from ``tgt`` by ``x · w`` cut between the means."""
    p_en, p_tgt = en @ w, tgt @ w
    cut = 0.5 * (p_en.mean() + p_tgt.mean())
    sign = 1.0 if bool(p_en.mean() >= p_tgt.mean()) else -1.0
    right = int((sign * (p_en - cut) > 0).sum()) + int((sign * (p_tgt - cut) < 0).sum())
    return right / (2 * en.shape[0])


def _ledoit_wolf(x: torch.Tensor, mu: float) -> float:
    """The Ledoit-Wolf shrinkage of the covariance of the centred rows ``x`` towards ``mu·I``."""
    rows, d = x.shape
    if not mu > 0:
        return 0.0
    cov = x.T @ x / rows
    target_gap = float(((cov - mu * torch.eye(d, dtype=cov.dtype)) ** 2).sum())
    spread = (float((x.pow(2).sum(1) ** 2).sum()) - rows * float((cov**2).sum())) / rows**2
    if not target_gap > 0:
        return 1.0
    return float(min(max(spread / target_gap, 0.0), 1.0))


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
    ``mse_before``/``mse_after``, ``cos_with_mean_diff``, and ``proj_english``/
    ``proj_target``: the mean component ``h · v / ‖v‖`` of each side (NaN for a zero
    ``v``), e.g. the ``value`` to clamp that component to
    (:func:`~interp_steer.steering.steer` with ``operator="clamp"``).

    >>> m = alignment_metrics(torch.ones(3, 2), torch.zeros(3, 2), torch.ones(2))
    >>> m["mse_before"], m["mse_after"]
    (1.0, 0.0)
    """
    en, tgt = _as_pairs(h_en, h_tgt)
    v = direction.detach().double().cpu()
    after = tgt + v
    mean_diff = (en - tgt).mean(0)
    denom = float(v.norm() * mean_diff.norm())
    unit = v / v.norm() if bool(v.norm() > 0) else torch.full_like(v, math.nan)
    return {
        "norm": float(v.norm()),
        "cos_before": float(F.cosine_similarity(tgt, en, dim=-1).mean()),
        "cos_after": float(F.cosine_similarity(after, en, dim=-1).mean()),
        "mse_before": float(F.mse_loss(tgt, en)),
        "mse_after": float(F.mse_loss(after, en)),
        "cos_with_mean_diff": float(torch.dot(v, mean_diff)) / denom if denom > 0 else 0.0,
        "proj_english": float((en @ unit).mean()),
        "proj_target": float((tgt @ unit).mean()),
    }


__all__ = [
    "BASIS_LIMIT",
    "alignment_metrics",
    "lda_direction",
    "lowrank_direction",
    "mean_diff_direction",
    "mse_direction",
    "pca_direction",
    "probe_direction",
]
