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
the same permanently. Both also rename the other way at the top: TransformerLens's own
``generate`` and ``generate_stream`` pass the HF model ``past_key_values=``, which
transformers 5 accepts with a ``FutureWarning`` on every decoding step; a pre-hook on the HF
model hands it on as ``cache=``, the name its forward takes (what transformers itself
would do, without the warning). :func:`greedy_generate` is the decoding loop used by
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

import functools
import inspect
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import torch
from transformer_lens.model_bridge.generalized_components import AttentionBridge

from interp_steer.models.backend import Model, cached_step, hf_model
from interp_steer.progress import progress_bar
from interp_steer.types import Mask, Tokens

_MARK = "_interp_steer_kv_cache_fix"
_MARKED = "_interp_steer_generation_marks"  # on the bridge: [users, restore list]
_GENERATORS = ("generate", "generate_stream", "hf_generate")  # the bridge's own
_GENERATION: ContextVar[tuple[Any, object] | None] = ContextVar(
    "interp_steer_generation", default=None
)


def _alias_cache(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Forward pre-hook: pass transformers-5 ``cache=`` on as ``past_key_values=`` too."""
    if kwargs.get("past_key_values") is None and kwargs.get("cache") is not None:
        return args, {**kwargs, "past_key_values": kwargs["cache"]}
    return None


def _cache_by_new_name(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Forward pre-hook on the HF model: pass ``past_key_values=`` on as ``cache=``.

    TransformerLens's ``generate`` passes the old name; transformers 5's forward takes
    ``cache`` and renames the old one itself, warning (``FutureWarning``) each call.
    """
    if "past_key_values" in kwargs and kwargs.get("cache") is None:
        renamed = {k: v for k, v in kwargs.items() if k != "past_key_values"}
        return args, {**renamed, "cache": kwargs["past_key_values"]}
    return None


CACHE_RENAMING_HOOKS = (_alias_cache, _cache_by_new_name)
"""The pre-hooks this module installs; they only rename a KV cache (no cache: no effect)."""


def _attention_bridges(model: Model) -> list[torch.nn.Module]:
    return [m for m in model.modules() if isinstance(m, AttentionBridge)]


def _hf_model(model: Model) -> torch.nn.Module | None:
    """The wrapped HF model when its forward takes ``cache`` (transformers >= 5), else None."""
    hf = hf_model(model)
    if hf is None:
        return None
    return hf if cache_argument(model) == "cache" else None


def install_kv_cache_fix(model: Model) -> int:
    """Permanently fix KV-cached generation on ``model``; idempotent.

    Returns:
        How many attention modules got the fix now (0 when it was already installed); the
        HF model gets its ``past_key_values`` → ``cache`` renaming hook too, once.

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
    hf = _hf_model(model)
    if hf is not None and getattr(hf, _MARK, None) is None:
        setattr(hf, _MARK, hf.register_forward_pre_hook(_cache_by_new_name, with_kwargs=True))
    return added


def remove_kv_cache_fix(model: Model) -> int:
    """Remove the permanent fix of :func:`install_kv_cache_fix`.

    Returns:
        How many attention modules lost the fix (the HF model's renaming hook goes too).
    """
    removed = 0
    for module in _attention_bridges(model):
        handle = getattr(module, _MARK, None)
        if handle is not None:
            handle.remove()
            delattr(module, _MARK)
            removed += 1
    hf = hf_model(model)
    handle = getattr(hf, _MARK, None)
    if handle is not None:
        handle.remove()
        delattr(hf, _MARK)
    return removed


@contextmanager
def kv_cache_fix(model: Model) -> Iterator[Model]:
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
        hf = _hf_model(model)
        if hf is not None and getattr(hf, _MARK, None) is None:
            handles.append(hf.register_forward_pre_hook(_cache_by_new_name, with_kwargs=True))
        yield model
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def generating(model: Model, key: object | None = None) -> Iterator[object]:
    """Mark the forward calls on ``model`` inside the block as the steps of ONE generation.

    The first forward call of a generation reads its prompt; every later one is a decoding
    step, whether it passes a KV cache or recomputes the whole sequence. Outside a
    generation each forward call is a prompt of its own. :func:`greedy_generate` marks its
    loop, :func:`marked_generation` the bridge's ``generate`` and its kin, and
    :func:`interp_steer.steering.steer` reads the mark (:func:`current_generation`) to tell
    prompt positions from generated ones. A generation started inside another one on the
    same model is part of it (``hf_generate`` calling the HF model's ``generate``).

    Args:
        model: The bridge.
        key: The generation's identity (a new one by default); pass the same key again to
            continue a generation in another block (a streaming generator between yields).

    Yields:
        The key of the generation under way.

    Example:
        >>> from interp_steer import load_model
        >>> model = load_model("tiny")
        >>> with generating(model) as key:
        ...     current_generation(model) is key
        True
        >>> current_generation(model) is None
        True
    """
    mark = _GENERATION.get()
    if mark is not None and mark[0] is model:  # nested: one generation
        yield mark[1]
        return
    key = object() if key is None else key
    token = _GENERATION.set((model, key))
    try:
        yield key
    finally:
        _GENERATION.reset(token)


def current_generation(model: Model) -> object | None:
    """The key of the :func:`generating` block under way on ``model``, or None outside one.

    >>> from interp_steer import load_model
    >>> current_generation(load_model("tiny")) is None
    True
    """
    mark = _GENERATION.get()
    return mark[1] if mark is not None and mark[0] is model else None


def _marked(model: Model, method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` run inside :func:`generating` (a streaming one: each step, not between)."""
    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def stream(*args: Any, **kwargs: Any) -> Iterator[Any]:
            key = object()
            steps = method(*args, **kwargs)
            try:
                while True:
                    with generating(model, key):
                        try:
                            item = next(steps)
                        except StopIteration:
                            return
                    yield item
            finally:
                steps.close()

        return stream

    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        with generating(model):
            return method(*args, **kwargs)

    return call


@contextmanager
def marked_generation(model: Model) -> Iterator[Model]:
    """Run the model's own generation methods inside :func:`generating` during the block.

    They are the bridge's ``generate``, ``generate_stream`` and ``hf_generate`` and the
    HF model's ``generate``. TransformerLens's ``generate(..., use_past_kv_cache=False)``
    recomputes the whole sequence each step through the ordinary forward; the mark is how
    a hook tells such a step from a new prompt. The methods are wrapped on the instance
    (blocks may nest and interleave; the last one to end removes the wrappers); a method
    fetched before the block (``g = model.generate``) is not marked.

    Example:
        >>> from interp_steer import load_model
        >>> model = load_model("tiny")
        >>> with marked_generation(model):
        ...     "generate" in vars(model)
        True
        >>> "generate" in vars(model)
        False
    """
    record = vars(model).get(_MARKED)
    if record is None:
        owners: list[tuple[Any, str]] = [(model, n) for n in _GENERATORS if hasattr(model, n)]
        hf = hf_model(model)
        if callable(getattr(hf, "generate", None)):
            owners.append((hf, "generate"))
        restore = []
        for owner, name in owners:
            restore.append((owner, name, vars(owner).get(name)))
            vars(owner)[name] = _marked(model, getattr(owner, name))
        record = vars(model)[_MARKED] = [0, restore]
    record[0] += 1
    try:
        yield model
    finally:
        record[0] -= 1
        if record[0] == 0:
            for owner, name, before in record[1]:
                if before is None:
                    vars(owner).pop(name, None)
                else:
                    vars(owner)[name] = before
            vars(model).pop(_MARKED, None)


def eos_ids(model: Model) -> list[int]:
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


def keeps_logits(model: Model) -> bool:
    """Whether the wrapped model's forward takes ``logits_to_keep`` (unembed only the tail).

    >>> from interp_steer import load_model
    >>> keeps_logits(load_model("tiny"))
    True
    """
    hf = hf_model(model)
    if hf is None:  # a HookedTransformer unembeds every position
        return False
    try:
        params = inspect.signature(hf.forward).parameters
    except (TypeError, ValueError):
        return False
    return "logits_to_keep" in params


def cache_argument(model: Model) -> str:
    """The HF forward's name for the KV cache: ``cache`` (transformers ≥ 5) or the old one.

    Passing ``past_key_values`` where the forward takes ``cache`` still works but warns
    (a FutureWarning on every decoding call).

    >>> from interp_steer import load_model
    >>> cache_argument(load_model("tiny"))
    'cache'
    """
    hf = hf_model(model)
    if hf is None:  # a HookedTransformer keeps its own cache (``past_kv_cache``)
        return "past_kv_cache"
    params = inspect.signature(hf.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def greedy_generate(
    model: Model,
    ids: Tokens,
    mask: Mask,
    *,
    max_new_tokens: int,
    stop: Sequence[str] = (),
    use_cache: bool = True,
    progress: bool | None = None,
) -> list[list[int]]:
    """Greedy continuations of a left-padded batch, through the model so hooks fire.

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
        progress: A bar counting generated tokens (a long budget takes minutes on a
            CPU); ``None`` follows :func:`~interp_steer.progress.set_progress`.

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
    bar = progress_bar(total=max_new_tokens, desc="generating", unit="token", progress=progress)
    with bar, torch.no_grad(), kv_cache_fix(model), generating(model):
        for _ in range(max_new_tokens):
            if use_cache:
                logits, cache = cached_step(model, step, attention, cache, cache_name, extra)
            else:
                logits = model(seq, attention_mask=attention, **extra)
            nxt = logits[:, -1].argmax(dim=-1)
            bar.update()
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
    "CACHE_RENAMING_HOOKS",
    "cache_argument",
    "current_generation",
    "eos_ids",
    "generating",
    "greedy_generate",
    "install_kv_cache_fix",
    "keeps_logits",
    "kv_cache_fix",
    "marked_generation",
    "remove_kv_cache_fix",
]
