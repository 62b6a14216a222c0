"""Greedy generation with a working KV cache on TransformerLens 4.3 bridges.

Why this module exists: transformers 5 renamed the cache argument ``past_key_values`` to
``cache``, and its decoder layers now call ``self_attn(..., cache=cache)``. TransformerLens
4.3 replaces ``self_attn`` by its own attention bridge, whose ``_update_kv_cache`` reads only
``past_key_values`` (or ``layer_past``). So keys and values are never written into the cache:
the prompt's first next token is right, but every later decode step attends to its own
token alone and the text turns to garbage (Gemma-3, SmolLM2/Llama alike). It affects
``model.generate`` and ``model.original_model.generate``; ``use_past_kv_cache=False`` is
correct but recomputes the whole sequence each step.

:func:`kv_cache_fix` hands the cache to the bridge under the name it reads (a forward
pre-hook on every attention bridge, removed afterwards); :func:`install_kv_cache_fix` does
the same permanently. :func:`greedy_generate` is the decoding loop used by
:func:`interp_steer.models.generate_texts`: it goes through the bridge's forward (so
steering and other hooks fire), keeps the HF cache, and computes logits for the last
position only.

Example:
    >>> from interp_steer import load_model
    >>> model = load_model("tiny")
    >>> ids = model.to_tokens("Hallo")
    >>> with kv_cache_fix(model):
    ...     cached = model.generate(ids, max_new_tokens=3, do_sample=False, verbose=False)
    >>> cached.shape
    torch.Size([1, 9])
"""

import inspect
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from transformer_lens.model_bridge import TransformerBridge
from transformer_lens.model_bridge.generalized_components import AttentionBridge

from interp_steer.types import Mask, Tokens

_MARK = "_interp_steer_kv_cache_fix"


def _alias_cache(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Forward pre-hook: pass transformers-5 ``cache=`` on as ``past_key_values=`` too."""
    if kwargs.get("past_key_values") is None and kwargs.get("cache") is not None:
        return args, {**kwargs, "past_key_values": kwargs["cache"]}
    return None


def _attention_bridges(model: TransformerBridge) -> list[torch.nn.Module]:
    return [m for m in model.modules() if isinstance(m, AttentionBridge)]


def install_kv_cache_fix(model: TransformerBridge) -> int:
    """Permanently fix KV-cached generation on ``model``; idempotent.

    Returns:
        How many attention modules got the fix now (0 when it was already installed).

    Example:
        >>> from interp_steer import load_model
        >>> model = load_model("tiny")  # load_model installs the fix itself
        >>> remove_kv_cache_fix(model), install_kv_cache_fix(model), install_kv_cache_fix(model)
        (4, 4, 0)
    """
    added = 0
    for module in _attention_bridges(model):
        if getattr(module, _MARK, None) is None:
            setattr(module, _MARK, module.register_forward_pre_hook(_alias_cache, with_kwargs=True))
            added += 1
    return added


def remove_kv_cache_fix(model: TransformerBridge) -> int:
    """Remove the permanent fix of :func:`install_kv_cache_fix`; return how many were removed."""
    removed = 0
    for module in _attention_bridges(model):
        handle = getattr(module, _MARK, None)
        if handle is not None:
            handle.remove()
            delattr(module, _MARK)
            removed += 1
    return removed


@contextmanager
def kv_cache_fix(model: TransformerBridge) -> Iterator[TransformerBridge]:
    """Fix KV-cached generation while the ``with`` block runs; nothing is left afterwards.

    Modules that already carry the permanent fix are left as they are.

    Example:
        >>> from interp_steer import load_model
        >>> model = load_model("tiny")
        >>> remove_kv_cache_fix(model)  # as a bridge booted without load_model
        4
        >>> with kv_cache_fix(model):
        ...     n = sum(len(m._forward_pre_hooks) for m in _attention_bridges(model))
        >>> n, sum(len(m._forward_pre_hooks) for m in _attention_bridges(model))
        (4, 0)
    """
    handles = []
    try:
        for module in _attention_bridges(model):
            if getattr(module, _MARK, None) is None:
                handles.append(module.register_forward_pre_hook(_alias_cache, with_kwargs=True))
        yield model
    finally:
        for handle in handles:
            handle.remove()


def eos_ids(model: TransformerBridge) -> list[int]:
    """The token ids that end generation: ``cfg.eos_token_id``, else the tokenizer's EOS.

    Example:
        >>> from interp_steer import load_model
        >>> eos_ids(load_model("tiny"))
        [1]
    """
    eos = getattr(model.cfg, "eos_token_id", None)
    if eos is None and model.tokenizer is not None:
        eos = model.tokenizer.eos_token_id
    if eos is None:
        return []
    return [int(eos)] if isinstance(eos, int) else [int(e) for e in eos]


def keeps_logits(model: TransformerBridge) -> bool:
    """Whether the wrapped model's forward takes ``logits_to_keep`` (unembed only the tail).

    >>> from interp_steer import load_model
    >>> keeps_logits(load_model("tiny"))
    True
    """
    try:
        params = inspect.signature(model.original_model.forward).parameters
    except (TypeError, ValueError):
        return False
    return "logits_to_keep" in params


def cache_argument(model: TransformerBridge) -> str:
    """The HF forward's name for the KV cache: ``cache`` (transformers ≥ 5) or the old one.

    Passing ``past_key_values`` where the forward takes ``cache`` still works but warns
    (a FutureWarning on every decoding call).

    >>> from interp_steer import load_model
    >>> cache_argument(load_model("tiny"))
    'cache'
    """
    params = inspect.signature(model.original_model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def greedy_generate(
    model: TransformerBridge,
    ids: Tokens,
    mask: Mask,
    *,
    max_new_tokens: int,
    stop: Sequence[str] = (),
    use_cache: bool = True,
) -> list[list[int]]:
    """Greedy continuations of a left-padded batch, through the bridge so hooks fire.

    A row ends at an EOS token (not returned) or once its decoded continuation holds a
    stop string (the tokens up to there are returned; cut the text with
    :func:`interp_steer.models.batching.cut_at_stop`). Rows are independent: a left-padded row
    gets the same tokens as the prompt alone, up to float rounding.

    Args:
        model: The bridge; active hooks (e.g. :func:`interp_steer.steering.steer`) apply.
        ids: Left-padded prompt token ids.
        mask: Which positions of ``ids`` are real tokens.
        max_new_tokens: At most this many tokens per row.
        stop: Stop strings.
        use_cache: Keep the HF KV cache (one new token per forward). ``False``
            recomputes the whole sequence each step (slower, for checking).

    Returns:
        Per row, the generated token ids.

    Example:
        >>> from interp_steer import load_model
        >>> from interp_steer.models import left_pad
        >>> model = load_model("tiny")
        >>> ids, mask = left_pad(model, [[2, 72, 105], [2, 72]])
        >>> out = greedy_generate(model, ids, mask, max_new_tokens=4)
        >>> out == greedy_generate(model, ids, mask, max_new_tokens=4, use_cache=False)
        True
    """
    if ids.shape != mask.shape or ids.ndim != 2:
        raise ValueError(f"expected ids and mask of one [batch, pos] shape, got {ids.shape}")
    batch = ids.shape[0]
    eos = torch.tensor(eos_ids(model), dtype=torch.long, device=ids.device)
    extra = {"logits_to_keep": 1} if keeps_logits(model) else {}
    cache_name = cache_argument(model)
    attention = mask.long()
    done = torch.zeros(batch, dtype=torch.bool, device=ids.device)
    out: list[list[int]] = [[] for _ in range(batch)]
    cache: Any = None
    seq, step = ids, ids
    with torch.no_grad(), kv_cache_fix(model):
        for _ in range(max_new_tokens):
            if use_cache:
                logits, cache = model(
                    step,
                    attention_mask=attention,
                    use_cache=True,
                    **{cache_name: cache},
                    return_type="logits_and_cache",
                    **extra,
                )
            else:
                logits = model(seq, attention_mask=attention, **extra)
            nxt = logits[:, -1].argmax(dim=-1)
            ended = torch.isin(nxt, eos) & ~done
            for r in range(batch):
                if not done[r] and not ended[r]:
                    out[r].append(int(nxt[r]))
            done |= ended
            if stop:
                texts = model.tokenizer.batch_decode(out, skip_special_tokens=True)
                done |= torch.tensor([any(s in t for s in stop) for t in texts], device=done.device)
            if bool(done.all()):
                break
            step = nxt[:, None]
            seq = torch.cat([seq, step], dim=1)
            attention = torch.cat([attention, torch.ones_like(step)], dim=1)
    return out


__all__ = [
    "cache_argument",
    "eos_ids",
    "greedy_generate",
    "install_kv_cache_fix",
    "keeps_logits",
    "kv_cache_fix",
    "remove_kv_cache_fix",
]
