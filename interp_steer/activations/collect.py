"""Residual-stream activations of many texts at many layers, in one batched pass.

:func:`collect_activations` runs the model once per batch, reads
``blocks.{layer}.hook_resid_post`` for every requested layer, pools each text's tokens
(pad positions never count) and moves the result to the CPU in float32 as it goes. The
forward stops right after the deepest requested layer
(:func:`~interp_steer.models.backend.run_to_layer`, on a bridge or a HookedTransformer),
so the unembedding (262k columns on Gemma-3) is never computed.

Results can be cached on disk (safetensors, written atomically), keyed by a hash of the
model (name, dtype, a fingerprint of its weights and tokenizer), the texts, the layers, the
pooling, BOS handling and the hook (:mod:`~interp_steer.activations.cache`).
"""

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from interp_steer.activations.cache import cache_key, read_cache, write_cache
from interp_steer.activations.pooled import POOLINGS, Activations, Pooling
from interp_steer.constants import check_choice
from interp_steer.models.backend import Model, run_to_layer
from interp_steer.models.batching import context_tokens, left_pad
from interp_steer.models.layers import HOOK_TEMPLATE, check_layers
from interp_steer.models.loading import model_name
from interp_steer.progress import progress_bar
from interp_steer.types import Residual


def collect_activations(
    model: Model,
    texts: Sequence[str],
    *,
    layers: int | Sequence[int],
    pooling: Pooling = "last",
    batch_size: int = 8,
    exclude_bos: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
) -> Activations:
    """Collect ``blocks.{layer}.hook_resid_post`` for all ``layers`` in one batched pass.

    Texts are tokenised one by one (as ``model.to_tokens(text)`` does), sorted by length,
    left-padded into batches with an explicit attention mask, and put back in their
    original order afterwards. Pad positions never enter the pooling. A text longer than
    the model's context (``model.cfg.n_ctx`` tokens) keeps its first ``n_ctx`` tokens, and
    one warning gives the count (also when the result comes from the cache); evaluation
    never cuts (see :func:`~interp_steer.models.batching.context_tokens`).

    Args:
        model: The model (bridge or HookedTransformer); it is not modified.
        texts: The texts (a sequence of strings, not one string).
        layers: One layer or several; each in ``0..n_layers - 1``.
        pooling: ``"last"`` (last real token), ``"mean"`` (mean over real tokens) or
            ``"all"`` (every real token; see :class:`Activations`).
        batch_size: Texts per forward pass.
        exclude_bos: Leave a leading BOS token out of ``"mean"``/``"all"`` pooling and of
            the norm statistics (kept when a text is nothing but BOS).
        cache_dir: If given, results are cached there; a second identical call reads them
            back without running the model. The cache is bypassed (with a warning) while
            other hooks are attached to the model, e.g. inside ``steer``.
        progress: Show a progress bar; ``None`` follows
            :func:`~interp_steer.progress.set_progress`.

    Returns:
        The activations, CPU float32.

    Raises:
        ValueError: no texts, a non-string text, a layer out of range, or a bad option.

    >>> from interp_steer import load_model
    >>> model = load_model("tiny")
    >>> acts = collect_activations(model, ["Hallo Welt", "Hello"], layers=[0, 3],
    ...                            pooling="mean", progress=False)
    >>> acts.layers, acts[3].shape
    ((0, 3), torch.Size([2, 64]))
    """
    layer_tuple = check_layers(model, layers)
    if isinstance(texts, str) or not texts:
        raise ValueError("texts must be a non-empty sequence of strings (not one string)")
    text_list = list(texts)
    if not all(isinstance(t, str) for t in text_list):
        raise ValueError("every text must be a str")
    check_choice("pooling", pooling, POOLINGS)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")

    tokens, _ = context_tokens(model, text_list, warn="activations")
    path = None
    if cache_dir is not None:
        if any(hp.fwd_hooks for hp in model.hook_dict.values()):
            warnings.warn(
                "hooks are attached to the model: activation cache bypassed", stacklevel=2
            )
        else:
            key = cache_key(model, text_list, layer_tuple, pooling, exclude_bos, HOOK_TEMPLATE)
            path = Path(cache_dir) / f"activations-{key[:40]}.safetensors"
            cached = read_cache(path, key)
            if cached is not None:
                return cached

    acts = _collect(model, tokens, layer_tuple, pooling, batch_size, exclude_bos, progress)
    if path is not None:
        write_cache(path, key, acts)
    return acts


def _collect(
    model: Model,
    tokens: list[Tensor],
    layers: tuple[int, ...],
    pooling: str,
    batch_size: int,
    exclude_bos: bool,
    progress: bool | None,
) -> Activations:
    if min(len(t) for t in tokens) == 0:
        raise ValueError("a text tokenised to zero tokens; give the model a BOS token or text")
    bos_id = model.tokenizer.bos_token_id
    order = sorted(range(len(tokens)), key=lambda i: -len(tokens[i]))  # longest first
    top = layers[-1]
    pooled: dict[int, list[Tensor | None]] = {layer: [None] * len(tokens) for layer in layers}
    norms: dict[int, Tensor] = {layer: torch.zeros(len(tokens)) for layer in layers}
    state: dict[str, Any] = {}

    def make_hook(layer: int) -> Any:
        def hook(resid: Residual, hook: Any) -> Residual:
            # few, large ops per layer: small ops are what costs on a busy CPU
            r, weights, rows = resid.detach().float(), state["weights"], state["rows"]
            norms[layer][rows] = (torch.linalg.vector_norm(r, dim=-1) * weights).sum(1).cpu()
            if pooling == "last":  # a copy: a view would keep the whole batch alive
                out = r[:, -1].to("cpu", copy=True).unbind(0)
            elif pooling == "mean":
                out = torch.bmm(weights.unsqueeze(1), r).squeeze(1).cpu().unbind(0)
            else:
                out = r[state["keep"]].cpu().split(state["counts"])
            for i, row in enumerate(rows.tolist()):
                pooled[layer][row] = out[i]
            return resid

        return hook

    hooks = [(HOOK_TEMPLATE.format(layer=layer), make_hook(layer)) for layer in layers]
    bar = progress_bar(total=len(tokens), desc="activations", unit="text", progress=progress)
    with bar, torch.inference_mode(), model.hooks(fwd_hooks=hooks):
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            ids, mask = left_pad(model, [tokens[i].tolist() for i in rows])
            keep = mask.clone()
            if exclude_bos and bos_id is not None:
                first = mask.shape[1] - mask.sum(1)  # column of each row's first real token
                is_bos = (ids.gather(1, first[:, None])[:, 0] == bos_id) & (mask.sum(1) > 1)
                keep[torch.arange(len(rows)), first] &= ~is_bos
            counts = keep.sum(1, keepdim=True)
            weights = keep.float() / counts.clamp_min(1)
            state.update(rows=torch.tensor(rows), keep=keep, weights=weights)
            state["counts"] = counts[:, 0].tolist()
            run_to_layer(model, ids, mask, top)
            bar.update(len(rows))

    parts = {layer: [t for t in pooled[layer] if t is not None] for layer in layers}
    lengths = tuple(int(t.shape[0]) for t in parts[top]) if pooling == "all" else None
    data = {
        layer: torch.cat(p) if pooling == "all" else torch.stack(p) for layer, p in parts.items()
    }
    return Activations(
        layers, pooling, data, model_name(model), len(tokens), lengths, norms, exclude_bos
    )


__all__ = [
    "collect_activations",
]
