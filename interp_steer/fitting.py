"""Fitting steering vectors from parallel corpora: closed-form methods and a registry.

A method turns English/target activation pairs into one direction ``v`` such that
``h_target + v`` looks like ``h_english``. Closed-form methods take the pooled pairs
(``h_en``, ``h_tgt``, both ``[n, d_model]``) and can be called on tensors directly;
model-level methods (BiPO, marked with :func:`model_level`) take the model and corpus.

Every fitted :class:`~interp_steer.vectors.SteeringVector` records in ``meta``:
``hyper`` (all hyper-parameters, defaults included), ``data`` (corpus name, languages,
number of pairs, the corpus' own meta), ``pooling``, and ``metrics``: the vector's norm,
the mean per-token residual norm at its layer on the fitting texts and their ratio, the
in-sample alignment before/after (mean cosine and MSE between ``h_tgt (+ v)`` and
``h_en``), the cosine with the mean difference, and the method's own metrics.
"""

import inspect
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from transformer_lens.model_bridge import TransformerBridge

from interp_steer.activations import Pooling, check_layers, collect_activations
from interp_steer.bipo import PairedTexts, bipo_direction, check_pairs
from interp_steer.models import model_name
from interp_steer.types import Direction, Pooled
from interp_steer.vectors import SteeringVector

# ----------------------------------------------------------------- closed-form methods


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


# ----------------------------------------------------------------- the registry


def model_level(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Mark ``fn(model, corpus, *, layer, ...)`` as a method that needs the model itself.

    Unmarked methods are called as ``fn(h_en, h_tgt, **hyper)`` on pooled activations.
    Either kind returns a direction, or ``(direction, metrics_dict)``.
    """
    fn.__interp_steer_model_level__ = True  # type: ignore[attr-defined]
    return fn


def is_model_level(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` was marked with :func:`model_level`."""
    return bool(getattr(fn, "__interp_steer_model_level__", False))


METHODS: dict[str, Callable[..., Any]] = {
    "mean_diff": mean_diff_direction,
    "pca": pca_direction,
    "mse": mse_direction,
    "bipo": model_level(bipo_direction),
}
"""Fitting methods by name (the CLI's ``--method``); add your own here."""


def resolve_method(method: str | Callable[..., Any]) -> tuple[str, Callable[..., Any]]:
    """Return ``(name, function)`` for a method name or function.

    >>> resolve_method("pca")[1] is pca_direction
    True
    >>> resolve_method("nope")
    Traceback (most recent call last):
    ...
    ValueError: unknown method 'nope'; valid methods: mean_diff, pca, mse, bipo
    """
    if callable(method):
        return getattr(method, "__name__", "custom"), method
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid methods: {', '.join(METHODS)}")
    return method, METHODS[method]


# ----------------------------------------------------------------- fitting on a corpus


def fit_vector(
    model: TransformerBridge,
    corpus: PairedTexts,
    *,
    layer: int,
    method: str | Callable[..., Any] = "mean_diff",
    pooling: Pooling = "mean",
    exclude_bos: bool = True,
    collect_batch_size: int = 8,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
    **hyper: Any,
) -> SteeringVector:
    """Fit one steering vector for ``layer`` that moves ``corpus.target`` towards English.

    Args:
        model: The bridge; it is not modified.
        corpus: Aligned ``english``/``target`` texts (e.g. a ``ParallelCorpus``).
        layer: The block whose ``hook_resid_post`` the vector is for.
        method: A name from ``METHODS`` (``"mean_diff"``, ``"pca"``, ``"mse"``,
            ``"bipo"``) or a function (see :func:`model_level`).
        pooling: How each text's tokens are pooled: ``"mean"`` (the mean over real tokens,
            BOS excluded; suits a vector added at every position) or ``"last"``.
        exclude_bos: Leave a leading BOS token out of mean pooling and norm statistics.
        collect_batch_size: Texts per forward pass when collecting activations.
        cache_dir: Activation cache folder (see :func:`collect_activations`).
        progress: Progress bars (passed on to methods that take ``progress``).
        **hyper: The method's hyper-parameters (e.g. ``solver="adamw"`` for ``"mse"``,
            ``beta=0.1`` for ``"bipo"``); unknown names raise ``ValueError``.

    Returns:
        The vector, CPU float32, with provenance and fit metrics in ``meta``.

    Raises:
        ValueError: an empty corpus, sides of different lengths, a layer out of range,
            an unknown method or hyper-parameter, or a method failing (e.g. BiPO diverging).

    >>> from interp_steer import load_model
    >>> from interp_steer.data import load_parallel
    >>> model, pairs = load_model("tiny"), load_parallel("msvamp", "de", n=4)
    >>> v = fit_vector(model, pairs, layer=2, method="pca")
    >>> v.method, v.layer, v.source_lang, v.meta["data"]["n_pairs"], v.meta["hyper"]
    ('pca', 2, 'de', 4, {'center': False})
    """
    vectors = fit_vectors(
        model,
        corpus,
        layers=[layer],
        method=method,
        pooling=pooling,
        exclude_bos=exclude_bos,
        collect_batch_size=collect_batch_size,
        cache_dir=cache_dir,
        progress=progress,
        **hyper,
    )
    return vectors[layer]


def fit_vectors(
    model: TransformerBridge,
    corpus: PairedTexts,
    *,
    layers: int | Sequence[int],
    method: str | Callable[..., Any] = "mean_diff",
    pooling: Pooling = "mean",
    exclude_bos: bool = True,
    collect_batch_size: int = 8,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
    **hyper: Any,
) -> dict[int, SteeringVector]:
    """Fit one vector per layer, collecting activations once for all layers (sweeps).

    Arguments as for :func:`fit_vector`. Model-level methods (BiPO) are trained once per
    layer; the shared collection then only serves their metrics.

    >>> from interp_steer import load_model
    >>> from interp_steer.data import load_parallel
    >>> model, pairs = load_model("tiny"), load_parallel("msvamp", "fr", n=4)
    >>> sorted(fit_vectors(model, pairs, layers=[0, 3]))
    [0, 3]
    """
    english, target = check_pairs(corpus)
    layer_tuple = check_layers(model, layers)
    name, fn = resolve_method(method)
    needs_model = is_model_level(fn)
    call_hyper, recorded = _bind_hyper(name, fn, hyper, progress)
    if pooling not in ("mean", "last"):
        raise ValueError(f"pooling for fitting must be 'mean' or 'last', got {pooling!r}")
    acts = collect_activations(
        model,
        english + target,
        layers=layer_tuple,
        pooling=pooling,
        batch_size=collect_batch_size,
        exclude_bos=exclude_bos,
        cache_dir=cache_dir,
        progress=progress,
    )
    n = len(english)
    en_acts, tgt_acts = acts.take(range(n)), acts.take(range(n, 2 * n))
    source_lang = getattr(corpus, "source_lang", None)
    target_lang = getattr(corpus, "target_lang", "en")
    data = {
        "corpus": str(getattr(corpus, "name", "unnamed")),
        "source_lang": source_lang,
        "target_lang": target_lang,
        "n_pairs": n,
        "corpus_meta": _jsonable(dict(getattr(corpus, "meta", {}) or {})),
    }
    vectors: dict[int, SteeringVector] = {}
    for layer in layer_tuple:
        h_en, h_tgt = en_acts[layer], tgt_acts[layer]
        if needs_model:
            result = fn(model, corpus, layer=layer, **call_hyper)
        else:
            result = fn(h_en, h_tgt, **call_hyper)
        direction, method_metrics = result if isinstance(result, tuple) else (result, {})
        direction = torch.as_tensor(direction).detach().float().cpu()
        if direction.shape != (acts.d_model,):
            raise ValueError(
                f"method {name!r} returned shape {tuple(direction.shape)}, "
                f"expected ({acts.d_model},)"
            )
        metrics = {
            **_jsonable(method_metrics),
            **alignment_metrics(h_en, h_tgt, direction),
            "resid_norm": float(tgt_acts.norms[layer].mean()),
            "resid_norm_english": float(en_acts.norms[layer].mean()),
        }
        metrics["norm_ratio"] = metrics["norm"] / max(metrics["resid_norm"], 1e-12)
        meta = {
            "method": name,
            "hyper": recorded,
            "pooling": pooling,
            "exclude_bos": exclude_bos,
            "data": data,
            "metrics": metrics,
        }
        vectors[layer] = SteeringVector(
            direction,
            layer,
            method=name,
            source_lang=source_lang,
            target_lang=target_lang,
            model_name=model_name(model),
            meta=meta,
        )
    return vectors


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


def _bind_hyper(
    name: str, fn: Callable[..., Any], hyper: dict[str, Any], progress: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check ``hyper`` against ``fn``'s signature; return (call kwargs, recorded hyper)."""
    params = list(inspect.signature(fn).parameters.values())[2:]
    kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    accepted = {p.name: p for p in params if p.kind in kinds and p.name != "layer"}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    unknown = sorted(set(hyper) - set(accepted))
    if unknown and not takes_any:
        valid = ", ".join(sorted(set(accepted) - {"progress"})) or "none"
        raise ValueError(
            f"method {name!r} has no hyper-parameter {', '.join(unknown)}; valid: {valid}"
        )
    call = dict(hyper)
    if "progress" in accepted and "progress" not in call:
        call["progress"] = progress
    defaults = {k: p.default for k, p in accepted.items() if p.default is not p.empty}
    recorded = {k: v for k, v in {**defaults, **hyper}.items() if k != "progress"}
    return call, _jsonable(recorded)


def _jsonable(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-safe copy (unknown objects become strings, non-finite floats ``None``)."""

    def clean(x: Any) -> Any:
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, Mapping):
            return {str(k): clean(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [clean(v) for v in x]
        if isinstance(x, torch.Tensor) and x.numel() == 1:
            return clean(x.item())
        if x is None or isinstance(x, bool | int | float | str):
            return x
        return str(x)

    return {str(k): clean(v) for k, v in obj.items()}
