"""The exact fast path of scoring: a bridge's forward with only its Hugging Face modules run.

A ``TransformerBridge`` wraps every Hugging Face module in place (the embedding, each decoder
layer, its attention, MLP and norms, every linear layer) in a component that runs the HF
module between hook points. Those wrappers make the bridge's full forward cost about 1.2×
the plain HF forward (``docs/gpu.md``). Scoring (:func:`interp_steer.models.batching.tail_logits`,
hence log-likelihood scoring, ``english_kl`` and the forcing benchmark's scores) needs none of
them, so :func:`fast_forward` runs the bridge's own forward (the same position ids from the
attention mask, the same ``logits_to_keep``, the HF model's own output logits) with every
wrapper swapped back to the HF module it wraps for the duration of the call: the HF modules
run alone, as in the plain model, and the wrappers are back in place when it returns or
raises.

The hooks keep their meaning. Hooks on a block's residual stream, ``blocks.{L}.hook_in``
and ``hook_out`` (``hook_resid_pre`` and ``hook_resid_post``, where
:func:`interp_steer.steering.steer` adds its vectors), are fired by calling the block's own
``HookPoint`` on the HF decoder layer's input and output, as the bridge's block does: the
same hook functions, the same ``hook`` object, the return value replacing the tensor. Torch
hooks on the HF model itself (``steer``'s position tracking and health check) fire as
always, and so do hooks on the HF modules inside. Anything the fast path cannot reproduce
sends the call to the ordinary bridge forward (:func:`fast_path_blocker` says why): a hook
on any other hook point (``hook_embed``, ``hook_resid_mid``, attention patterns, ...), a
torch hook on a bridge component, a global module hook, a block class that hooks its
residual differently, TransformerLens 3.x's Cohere bridge (its rotary embedding differs
from Hugging Face's, so its scores must follow the activations vectors are fitted on),
processed weights (``fold_ln`` and kin: the bridge then computes
otherwise than its HF modules), a ``HookedTransformer`` (it has no HF modules). So a
researcher's own hooks always fire. Which path applies is worked out on every call, from
the hooks registered then (a walk over the model's modules: about a millisecond at 32
layers on a CPU).

Example:
    >>> from interp_steer.models import left_pad, load_model
    >>> model = load_model("tiny")
    >>> ids, mask = left_pad(model, [[2, 72, 105], [2, 72]])
    >>> fast_path_blocker(model) is None
    True
    >>> fast = fast_forward(model, ids, mask)
    >>> torch.allclose(fast, fast_forward(model, ids, mask, fast=False), atol=1e-5)
    True
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn.modules import module as torch_module
from transformer_lens.hook_points import HookPoint
from transformer_lens.model_bridge.generalized_components import BlockBridge
from transformer_lens.model_bridge.generalized_components.base import GeneralizedComponent

from interp_steer.models.backend import TL_VERSION, Model, cached_step, hf_model, is_hooked
from interp_steer.models.generation import CACHE_RENAMING_HOOKS, cache_argument, kv_cache_fix
from interp_steer.types import Mask, Tokens, VocabLogits

# how a BlockBridge hooks its residual stream; a block class that overrides any of these
# hooks it otherwise, so hooks on it send the call to the bridge
_BLOCK_METHODS = ("forward", "_hook_input_hidden_states", "_apply_output_hook")
_GLOBAL_HOOKS = (
    "_global_forward_hooks",
    "_global_forward_pre_hooks",
    "_global_backward_hooks",
    "_global_backward_pre_hooks",
)


@dataclass(frozen=True)
class _Swap:
    """``parent._modules[name]`` holds ``bridge``; the fast path puts ``original`` there."""

    parent: torch.nn.Module
    name: str
    bridge: torch.nn.Module
    original: torch.nn.Module


@dataclass(frozen=True)
class _Plan:
    """What one fast call does: the swaps, and the residual hook points to fire per layer."""

    swaps: tuple[_Swap, ...]
    fire: tuple[tuple[torch.nn.Module, HookPoint | None, HookPoint | None], ...]
    modules: tuple[torch.nn.Module, ...]  # the HF model and every HF module below it


def _hooked(module: torch.nn.Module) -> bool:
    """Whether ``module`` has a torch hook of its own (forward, pre-forward or backward)."""
    return bool(
        module._forward_hooks
        or module._forward_pre_hooks
        or module._backward_hooks
        or module._backward_pre_hooks
    )


def _bridge_hooked(module: torch.nn.Module, own: set[int]) -> bool:
    """Whether a bridge component has torch hooks other than the bridge's and this package's.

    ``own`` holds the ids of the hooks a block wires itself (TransformerLens' capture hooks:
    they feed the bridge's attention, which the fast path does not run, and fire
    ``hook_mlp_in``, whose hooks are checked as every hook point's are); the KV-cache
    renaming pre-hooks do nothing on a call without a cache.
    """
    if module._forward_hooks or module._backward_hooks or module._backward_pre_hooks:
        return True
    return any(
        key not in own and fn not in CACHE_RENAMING_HOOKS
        for key, fn in module._forward_pre_hooks.items()
    )


def _hooks_residual_alike(block: Any) -> bool:
    """Whether ``block`` hooks its input and output as ``BlockBridge`` does."""
    return isinstance(block, BlockBridge) and all(
        getattr(type(block), name, None) is getattr(BlockBridge, name, None)
        for name in _BLOCK_METHODS
    )


def _innermost(module: torch.nn.Module) -> torch.nn.Module:
    """The HF module a bridge component wraps (through nested wrappers); else ``module``."""
    while isinstance(module, GeneralizedComponent) and module.original_component is not None:
        module = module.original_component
    return module


def _swaps(hf: torch.nn.Module) -> tuple[tuple[_Swap, ...], list[torch.nn.Module]] | str:
    """Every bridge component in ``hf``'s tree with the HF module it wraps, or why not.

    Also returns the HF modules the walk went through (``hf`` and all below it, wrappers
    seen through): the modules the fast path runs.
    """
    swaps: list[_Swap] = []
    stack, seen, walked = [hf], {id(hf)}, []
    while stack:
        parent = stack.pop()
        walked.append(parent)
        for name, child in parent._modules.items():
            if child is None:
                continue
            original = child
            while isinstance(original, GeneralizedComponent):
                inner = original.original_component
                if inner is None:
                    return f"the bridge component {child.name or name!r} wraps no HF module"
                original = inner
            if original is not child:
                swaps.append(_Swap(parent, name, child, original))
            if id(original) not in seen:
                seen.add(id(original))
                stack.append(original)
    return tuple(swaps), walked


def _plan(model: Model) -> _Plan | str:
    """The fast call's plan, or why the call must go through the bridge."""
    if is_hooked(model):
        return "a HookedTransformer has no Hugging Face modules to run"
    hf = hf_model(model)
    if hf is None:
        return "the model wraps no Hugging Face module"
    model_type = getattr(getattr(hf, "config", None), "model_type", None)
    if TL_VERSION.startswith("3.") and model_type in ("cohere", "cohere2"):
        return (
            "TransformerLens 3.x's Cohere bridge rotates positions unlike Hugging Face's "
            "Cohere (fixed in 4.x): the bridge keeps scores consistent with its activations"
        )
    if getattr(model, "_weights_processed", False):
        return "the bridge's weights were processed (fold_ln and kin): it computes otherwise"
    for name in _GLOBAL_HOOKS:
        if getattr(torch_module, name, None):
            return "a global torch module hook is registered (it would see other modules)"
    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, torch.nn.ModuleList):
        blocks = torch.nn.ModuleList()
    residual: dict[int, tuple[int, str]] = {}  # id(hook point) -> (layer, "in" or "out")
    own: set[int] = set()  # the ids of the hooks blocks wire themselves
    for layer, block in enumerate(blocks):
        if _hooks_residual_alike(block):
            residual[id(block.hook_in)] = (layer, "in")
            residual[id(block.hook_out)] = (layer, "out")
        own.update(h.id for h in getattr(block, "_capture_hook_handles", ()))
    fire: dict[int, list[Any]] = {}
    for module in model.modules():
        if isinstance(module, HookPoint):
            if not _hooked(module):
                continue
            at = residual.get(id(module))
            if at is None:
                return f"a hook on {module.name!r}, which the fast path cannot fire"
            layer, end = at
            entry = fire.setdefault(layer, [_innermost(blocks[layer]), None, None])
            entry[1 if end == "in" else 2] = module
        elif isinstance(module, GeneralizedComponent) and _bridge_hooked(module, own):
            return f"a torch hook on the bridge component {module.name!r}"
    walk = _swaps(hf)
    if isinstance(walk, str):
        return walk
    swaps, modules = walk
    run = {id(swap.original) for swap in swaps}
    for layer_module, *_ in fire.values():
        if id(layer_module) not in run:
            return "a hooked block is not one of the wrapped model's layers"
    return _Plan(swaps, tuple((m, i, o) for m, i, o in fire.values()), tuple(modules))


def fast_path_blocker(model: Model) -> str | None:
    """Why :func:`fast_forward` would go through the bridge now, or None when it would not.

    Asked per call: hooks registered or removed since change the answer.

    >>> from interp_steer.models import load_model
    >>> model = load_model("tiny")
    >>> with model.hooks(fwd_hooks=[("hook_embed", lambda x, hook: x)]):
    ...     fast_path_blocker(model)
    "a hook on 'embed.hook_out', which the fast path cannot fire"
    """
    plan = _plan(model)
    return plan if isinstance(plan, str) else None


def _fire_in(point: HookPoint) -> Any:
    def pre(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if args and isinstance(args[0], torch.Tensor):  # as BlockBridge: args, else kwargs
            return (point(args[0]), *args[1:]), kwargs
        if isinstance(kwargs.get("hidden_states"), torch.Tensor):
            return args, {**kwargs, "hidden_states": point(kwargs["hidden_states"])}
        return None

    return pre


def _fire_out(point: HookPoint) -> Any:
    def post(module: Any, args: Any, output: Any) -> Any:
        if isinstance(output, tuple) and output and isinstance(output[0], torch.Tensor):
            return (point(output[0]), *output[1:])
        if isinstance(output, torch.Tensor):
            return point(output)
        return None

    return post


@contextmanager
def _plain_modules(plan: _Plan) -> Iterator[None]:
    """Swap the HF modules in, and fire the residual hook points from them, during the block."""
    done: list[_Swap] = []
    handles: list[torch.utils.hooks.RemovableHandle] = []
    try:
        for swap in plan.swaps:
            swap.parent._modules[swap.name] = swap.original
            done.append(swap)
        for layer_module, hook_in, hook_out in plan.fire:
            if hook_in is not None:  # first: the bridge fires it before the layer is called
                handles.append(
                    layer_module.register_forward_pre_hook(
                        _fire_in(hook_in), with_kwargs=True, prepend=True
                    )
                )
            if hook_out is not None:  # last: the bridge fires it on what the layer returned
                handles.append(layer_module.register_forward_hook(_fire_out(hook_out)))
        yield
    finally:
        for handle in handles:
            handle.remove()
        for swap in reversed(done):
            swap.parent._modules[swap.name] = swap.bridge


def fast_forward(
    model: Model,
    ids: Tokens,
    mask: Mask,
    *,
    logits_to_keep: int | None = None,
    fast: bool = True,
) -> VocabLogits:
    """The model's logits on a left-padded batch, through the HF modules alone where exact.

    Equal to ``model(ids, attention_mask=mask.long())`` up to float rounding, with every
    active hook applied alike; where the fast path cannot reproduce a hook (see
    :func:`fast_path_blocker`) or ``fast=False``, it is exactly that bridge forward.
    Nothing is left on the model afterwards, also when a hook raises; while the call runs,
    the HF modules stand unwrapped, so a hook that runs the model again (or another thread
    using it) would run them without the bridge's hook points.

    Args:
        model: The model; a HookedTransformer always takes its own forward.
        ids: Token ids, ``[batch, pos]``.
        mask: Which positions are real tokens (left padding).
        logits_to_keep: Unembed only the last this many positions (the wrapped model must
            take ``logits_to_keep``; see :func:`interp_steer.models.generation.keeps_logits`).
        fast: ``False`` takes the bridge forward (for checking).

    Returns:
        The output logits, ``[batch, pos, d_vocab]`` (``pos`` = ``logits_to_keep`` if given).

    Example:
        >>> from interp_steer.models import left_pad, load_model
        >>> model = load_model("tiny")
        >>> ids, mask = left_pad(model, [[2, 72, 105]])
        >>> fast_forward(model, ids, mask, logits_to_keep=1).shape
        torch.Size([1, 1, 260])
    """
    extra = {} if logits_to_keep is None else {"logits_to_keep": logits_to_keep}
    plan = _plan(model) if fast else None
    if not isinstance(plan, _Plan):
        return model(ids, attention_mask=mask.long(), **extra)
    with _plain_modules(plan):
        return model(ids, attention_mask=mask.long(), **extra)


def _foreign(fn: Any) -> bool:
    """Whether a torch hook on an HF module is someone's (not transformers' nor the renaming)."""
    if fn in CACHE_RENAMING_HOOKS:
        return False
    return not str(getattr(fn, "__module__", "") or "").startswith("transformers")


def prefix_blocker(model: Model) -> str | None:
    """Why a forward cannot be split into a KV-cached prefix and the rest now, or None.

    :func:`prefix_step` runs a sequence in two calls (the prefix, then what follows on its
    cache). Only the unhooked model gives the same logits both ways: a hook on the residual
    stream (:func:`interp_steer.steering.steer`'s, or a researcher's) or a torch hook on an
    HF module would see the two calls, not the one forward it was written for. So anything
    :func:`fast_path_blocker` names, any hook on the residual stream and any torch hook on
    an HF module (other than transformers' own and the KV-cache renaming) blocks it.

    >>> from interp_steer.models import load_model
    >>> model = load_model("tiny")
    >>> prefix_blocker(model) is None
    True
    >>> with model.hooks(fwd_hooks=[("blocks.1.hook_resid_post", lambda x, hook: x)]):
    ...     prefix_blocker(model)
    'a hook on the residual stream would see the prefix and the rest as two calls'
    """
    plan = _prefix_plan(model)
    return plan if isinstance(plan, str) else None


def _prefix_plan(model: Model) -> _Plan | str:
    """The fast path's plan where a split forward is exact, else why not."""
    plan = _plan(model)
    if isinstance(plan, str):
        return plan
    if plan.fire:
        return "a hook on the residual stream would see the prefix and the rest as two calls"
    for module in plan.modules:
        hooks = (
            *module._forward_pre_hooks.values(),
            *module._forward_hooks.values(),
            *module._backward_hooks.values(),
            *module._backward_pre_hooks.values(),
        )
        if any(_foreign(fn) for fn in hooks):
            return (
                f"a torch hook on the HF module {type(module).__name__} would see the prefix "
                "and the rest as two calls"
            )
    return plan


def prefix_step(
    model: Model,
    ids: Tokens,
    attention: torch.Tensor,
    cache: Any,
    *,
    logits_to_keep: int | None = None,
) -> tuple[VocabLogits, Any]:
    """One forward of a split sequence on the fast path: ``(logits, the cache to go on from)``.

    The first call takes the prefix (``cache=None``); the next takes what follows it, with
    ``attention`` spanning the prefix and the new tokens (positions follow the mask, so a
    left-padded prefix and right-padded continuations are both exact). The cache is the HF
    model's own, so ``cache.batch_select_indices`` re-batches it between the calls (a
    prefix per row of continuations). Only where :func:`prefix_blocker` is None.

    Example:
        >>> from interp_steer.models import left_pad, load_model
        >>> model = load_model("tiny")
        >>> ids, mask = left_pad(model, [[2, 72, 105, 44]])
        >>> _, cache = prefix_step(model, ids[:, :2], mask[:, :2].long(), None)
        >>> rest, _ = prefix_step(model, ids[:, 2:], mask.long(), cache)
        >>> torch.allclose(rest, fast_forward(model, ids, mask)[:, 2:], atol=1e-5)
        True

    Raises:
        RuntimeError: :func:`prefix_blocker` names a reason.
    """
    plan = _prefix_plan(model)
    if isinstance(plan, str):
        raise RuntimeError(f"a forward cannot be split into a cached prefix here: {plan}")
    extra = {} if logits_to_keep is None else {"logits_to_keep": logits_to_keep}
    with kv_cache_fix(model), _plain_modules(plan):
        logits, cache = cached_step(model, ids, attention, cache, cache_argument(model), extra)
    return logits, cache


__all__ = ["fast_forward", "fast_path_blocker", "prefix_blocker", "prefix_step"]
