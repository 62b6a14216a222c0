"""Fitting steering vectors from parallel corpora: the method registry and the fit.

A method turns English/target activation pairs into one direction ``v`` such that
``h_target + v`` looks like ``h_english``. Closed-form methods
(:mod:`~interp_steer.fitting.directions`) take the pooled pairs (``h_en``, ``h_tgt``, both
``[n, d_model]``) and can be called on tensors directly; model-level methods (BiPO,
a :class:`Method` with ``needs_model``) take the model and corpus. Methods are registered
by name with :func:`register_method`.

Every fitted :class:`~interp_steer.steering.SteeringVector` records in ``meta``:
``hyper`` (all hyper-parameters, defaults included), ``data`` (corpus name, languages,
number of pairs, the corpus' own meta, ``ids``: the ids of the items fitted on, in order and
without repeats, or None when the corpus has none, ``fingerprint``: the
:attr:`~interp_steer.data.ParallelCorpus.fingerprint` of the pairs, and ``n_truncated``: how
many of the ``2 * n_pairs`` texts were longer than the model's context of ``n_ctx`` tokens
and were cut to it), ``pooling``, and ``metrics``: the vector's norm,
the mean per-token residual norm at its layer on the fitting texts and their ratio, the
in-sample alignment before/after (mean cosine and MSE between ``h_tgt (+ v)`` and
``h_en``), the cosine with the mean difference, and the method's own metrics; and
``weight_basis``: the model's class, the TransformerLens version and its weight
processing (:func:`~interp_steer.models.weight_basis`), which
:func:`~interp_steer.steering.steer` checks against the model it steers.
"""

import inspect
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from interp_steer.activations.collect import collect_activations
from interp_steer.activations.pooled import Pooling
from interp_steer.data.language_id import UND
from interp_steer.data.parallel import CorpusLike, ParallelCorpus
from interp_steer.fitting.bipo import bipo_direction, resolve_bipo_hyper
from interp_steer.fitting.directions import (
    alignment_metrics,
    lda_direction,
    lowrank_direction,
    mean_diff_direction,
    mse_direction,
    pca_direction,
    probe_direction,
)
from interp_steer.models.backend import Model, weight_basis
from interp_steer.models.batching import context_tokens
from interp_steer.models.layers import check_layers
from interp_steer.models.loading import model_name
from interp_steer.steering.vectors import SteeringVector

# ----------------------------------------------------------------- the registry


@dataclass(frozen=True)
class Method:
    """A fitting method: its name, its function, and what the function is called on.

    Attributes:
        name: The name ``fit_vector(method=...)`` and the CLI's ``--method`` accept.
        fit: Returns a direction, or ``(direction, metrics_dict)``. Called as
            ``fit(h_en, h_tgt, **hyper)`` on pooled ``[n, d_model]`` activations, or, when
            ``needs_model``, as ``fit(model, corpus, layer=layer, **hyper)`` with the pairs
            as a :class:`~interp_steer.data.ParallelCorpus`.
        needs_model: Whether ``fit`` takes the model and corpus (BiPO) rather than pooled
            activations.
        resolve: For defaults that ``fit`` works out itself (``None`` in its signature,
            e.g. BiPO's ``lr``, which depends on ``lr_scale``): given every
            hyper-parameter, returns them with those replaced by the values ``fit`` uses.
            Vectors record these values, so changing such a default never lets a vector
            fitted under the old one pass as fitted under the new.

    >>> Method("pca", pca_direction).needs_model
    False
    """

    name: str
    fit: Callable[..., Any]
    needs_model: bool = False
    resolve: Callable[[dict[str, Any]], dict[str, Any]] | None = None


REGISTRY: dict[str, Method] = {}
"""Every registered :class:`Method`, by name (see :func:`register_method`)."""

METHODS: dict[str, Callable[..., Any]] = {}
"""The registered methods' functions, by name (the CLI's ``--method``)."""


def register_method(method: Method) -> Method:
    """Register ``method`` under its name, so ``fit_vector(method=name)`` finds it.

    >>> def twice(h_en, h_tgt):
    ...     return 2 * (h_en - h_tgt).mean(0)
    >>> register_method(Method("twice", twice)).name in METHODS
    True
    >>> _ = REGISTRY.pop("twice"), METHODS.pop("twice")
    """
    if not isinstance(method, Method):
        raise TypeError(f"register a Method record, got {type(method).__name__}")
    REGISTRY[method.name] = method
    METHODS[method.name] = method.fit
    return method


for _builtin in (
    Method("mean_diff", mean_diff_direction),
    Method("pca", pca_direction),
    Method("mse", mse_direction),
    Method("bipo", bipo_direction, needs_model=True, resolve=resolve_bipo_hyper),
    Method("lda", lda_direction),
    Method("probe", probe_direction),
    Method("lowrank", lowrank_direction),
):
    register_method(_builtin)


def resolve_method(method: str | Method | Callable[..., Any]) -> Method:
    """Return the :class:`Method` for a registered name, a record, or a plain function.

    A plain function is a method on pooled activations, named after the function; wrap a
    function that needs the model in ``Method(name, fn, needs_model=True)``.

    >>> resolve_method("pca").fit is pca_direction
    True
    >>> resolve_method("nope")
    Traceback (most recent call last):
    ...
    ValueError: unknown method 'nope'; valid methods: mean_diff, pca, mse, bipo, lda, probe, lowrank
    """
    if isinstance(method, Method):
        return method
    if callable(method):
        return Method(getattr(method, "__name__", "custom"), method)
    if method not in REGISTRY:
        raise ValueError(f"unknown method {method!r}; valid methods: {', '.join(REGISTRY)}")
    return REGISTRY[method]


# ----------------------------------------------------------------- fitting on a corpus


def fit_vector(
    model: Model,
    corpus: CorpusLike,
    *,
    layer: int,
    lang: str | None = None,
    method: str | Method | Callable[..., Any] = "mean_diff",
    pooling: Pooling = "mean",
    exclude_bos: bool = True,
    collect_batch_size: int = 8,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
    **hyper: Any,
) -> SteeringVector:
    """Fit one steering vector for ``layer`` that moves the target texts towards English.

    Args:
        model: The model (a bridge, or a HookedTransformer on TransformerLens 3.x); it is
            not modified.
        corpus: English texts and their translations, in any form
            :meth:`~interp_steer.data.ParallelCorpus.coerce` reads: a ``ParallelCorpus``,
            ``(english, target)`` pairs, two lists, a dict, a DataFrame, a ``Dataset``.
        layer: The block whose ``hook_resid_post`` the vector is for.
        lang: The language of the target texts, for data that does not say (pairs, lists);
            the vector's ``source_lang``. None: the data's own, else unknown (None).
        method: A registered name (``"mean_diff"``, ``"pca"``, ``"mse"``, ``"bipo"``,
            ``"lda"``, ``"probe"``, ``"lowrank"``), a :class:`Method`, or a function of
            pooled activations ``(h_en, h_tgt, **hyper)``.
        pooling: How each text's tokens are pooled: ``"mean"`` (the mean over real tokens,
            BOS excluded; suits a vector added at every position) or ``"last"``.
        exclude_bos: Leave a leading BOS token out of mean pooling and norm statistics.
        collect_batch_size: Texts per forward pass when collecting activations.
        cache_dir: Activation cache folder (see :func:`collect_activations`).
        progress: Progress bars (passed on to methods that take ``progress``); ``None``
            follows :func:`~interp_steer.progress.set_progress`.
        **hyper: The method's hyper-parameters (e.g. ``solver="adamw"`` for ``"mse"``,
            ``beta=0.1`` for ``"bipo"``, ``k=8`` for ``"lowrank"``); unknown names raise
            ``ValueError``.

    Returns:
        The vector, CPU float32, with provenance and fit metrics in ``meta``.

    Raises:
        TypeError: ``corpus`` in no accepted form (the message lists them).
        ValueError: an empty corpus, sides of different lengths, a ``lang`` other than the
            data's, a layer out of range, an unknown method or hyper-parameter, or a method
            failing (e.g. BiPO diverging).

    >>> from interp_steer import load_model
    >>> from interp_steer.data import load_parallel
    >>> model, pairs = load_model("tiny"), load_parallel("msvamp", "de", n=4)
    >>> v = fit_vector(model, pairs, layer=2, method="pca")
    >>> v.method, v.layer, v.source_lang, v.meta["data"]["n_pairs"], v.meta["hyper"]
    ('pca', 2, 'de', 4, {'center': False})
    >>> v = fit_vector(model, [("Hello", "Hallo"), ("Good night", "Gute Nacht")], layer=1)
    >>> v.layer, v.source_lang, v.meta["data"]["n_pairs"], v.meta["data"]["corpus_meta"]["form"]
    (1, None, 2, 'pairs')
    >>> fit_vector(model, {"en": ["Hello"], "de": ["Hallo"]}, layer=1).source_lang
    'de'
    """
    vectors = fit_vectors(
        model,
        corpus,
        layers=[layer],
        lang=lang,
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
    model: Model,
    corpus: CorpusLike,
    *,
    layers: int | Sequence[int],
    lang: str | None = None,
    method: str | Method | Callable[..., Any] = "mean_diff",
    pooling: Pooling = "mean",
    exclude_bos: bool = True,
    collect_batch_size: int = 8,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
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
    pairs = ParallelCorpus.coerce(corpus, lang=lang)
    english, target = list(pairs.english), list(pairs.target)
    layer_tuple = check_layers(model, layers)
    spec = resolve_method(method)
    name, fn, needs_model = spec.name, spec.fit, spec.needs_model
    call_hyper, recorded = _bind_hyper(spec, hyper, progress)
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
    source_lang = None if pairs.source_lang == UND else pairs.source_lang
    target_lang = pairs.target_lang
    data = {
        "corpus": pairs.name,
        "source_lang": source_lang,
        "target_lang": target_lang,
        "n_pairs": n,
        "corpus_meta": _jsonable(dict(pairs.meta)),
        "ids": list(dict.fromkeys(pairs.ids)) if pairs.ids else None,
        "fingerprint": pairs.fingerprint,
        "n_ctx": getattr(model.cfg, "n_ctx", None),
        "n_truncated": context_tokens(model, english + target)[1],  # collection warned
    }
    basis = weight_basis(model)
    vectors: dict[int, SteeringVector] = {}
    for layer in layer_tuple:
        h_en, h_tgt = en_acts[layer], tgt_acts[layer]
        if needs_model:
            result = fn(model, pairs, layer=layer, **call_hyper)
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
            "weight_basis": basis,
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


def check_hyper(
    method: str | Method | Callable[..., Any], options: Mapping[str, Any]
) -> dict[str, Any]:
    """The hyper-parameters ``fit_vectors(method=method, **options)`` records, or its error.

    ``options`` may mix :func:`fit_vectors`'s own options (``pooling``, ...) with the
    method's hyper-parameters; the result holds every hyper-parameter of the method, its
    defaults included, as a fitted vector's ``meta["hyper"]`` does. Runs call this before
    they write anything, and :func:`~interp_steer.analysis.check_fitted` compares a saved
    vector with it.

    >>> check_hyper("pca", {"pooling": "mean", "center": True})
    {'center': True}
    >>> check_hyper("bipo", {"lr_scale": "none"})["lr"]
    0.0005
    >>> check_hyper("pca", {"lr": 0.1})
    Traceback (most recent call last):
    ...
    ValueError: method 'pca' has no hyper-parameter lr; valid: center
    """
    own = set(inspect.signature(fit_vectors).parameters)
    spec = resolve_method(method)
    method_options = {k: v for k, v in options.items() if k not in own}
    return _bind_hyper(spec, method_options, False)[1]


_RUNTIME_OPTIONS = frozenset({"progress", "checkpoint_dir", "checkpoint_every"})
"""Options of a method that change how it runs, not what it fits: passed on, never
recorded in ``meta["hyper"]`` (a vector trained with checkpoints is the same vector)."""


def _bind_hyper(
    spec: Method, hyper: dict[str, Any], progress: bool | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check ``hyper`` against ``spec``'s signature; return (call kwargs, recorded hyper).

    The record holds every hyper-parameter, defaults included, with the defaults the
    method works out itself resolved (:attr:`Method.resolve`); the call passes these same
    values.
    """
    params = list(inspect.signature(spec.fit).parameters.values())[2:]
    kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    accepted = {p.name: p for p in params if p.kind in kinds and p.name != "layer"}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    unknown = sorted(set(hyper) - set(accepted))
    if unknown and not takes_any:
        valid = ", ".join(sorted(set(accepted) - _RUNTIME_OPTIONS)) or "none"
        raise ValueError(
            f"method {spec.name!r} has no hyper-parameter {', '.join(unknown)}; valid: {valid}"
        )
    defaults = {k: p.default for k, p in accepted.items() if p.default is not p.empty}
    recorded = {k: v for k, v in {**defaults, **hyper}.items() if k not in _RUNTIME_OPTIONS}
    if spec.resolve is not None:
        recorded = spec.resolve(recorded)
    call = {**recorded, **{k: v for k, v in hyper.items() if k in _RUNTIME_OPTIONS}}
    if "progress" in accepted and "progress" not in call:
        call["progress"] = progress
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


__all__ = [
    "METHODS",
    "fit_vector",
    "fit_vectors",
    "REGISTRY",
    "Method",
    "check_hyper",
    "register_method",
    "resolve_method",
]
