"""The intervention: add steering vectors to the residual stream inside a context manager.

``steer`` is built on the bridge's own ``hooks()`` context, so TransformerLens removes the
hooks in its ``finally`` block: nothing is left on the model after the ``with`` block,
also when the block raises. The model itself is never modified.

Which positions are steered is decided per forward call from the call's tokens, attention
mask and KV-cache length, so the same vector acts identically on ``model(...)``,
``run_with_cache`` and ``model.generate(...)`` with or without the KV cache, and pad
positions of a left-padded batch are never touched.
"""

import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from transformer_lens.model_bridge import TransformerBridge

from interp_steer.constants import POSITION_MODES, Positions, check_choice
from interp_steer.models.loading import model_name
from interp_steer.steering.vectors import SteeringVector
from interp_steer.types import Direction, Mask, Residual, Tokens


def check_vector(model: TransformerBridge, vector: SteeringVector) -> None:
    """Raise ``ValueError`` if ``vector`` cannot be applied to ``model``; warn on a name mismatch.

    >>> from interp_steer import load_model
    >>> check_vector(load_model("tiny"), SteeringVector(torch.zeros(3), layer=0))
    Traceback (most recent call last):
    ...
    ValueError: vector has d_model 3 but the model's residual stream has d_model 64
    """
    if not isinstance(vector, SteeringVector):
        raise ValueError(f"expected a SteeringVector, got {type(vector).__name__}")
    d_model, n_layers = int(model.cfg.d_model), int(model.cfg.n_layers)
    if vector.d_model != d_model:
        raise ValueError(
            f"vector has d_model {vector.d_model} but the model's residual stream has "
            f"d_model {d_model}"
        )
    if not 0 <= vector.layer < n_layers:
        raise ValueError(
            f"vector layer {vector.layer} is out of range: the model has layers 0..{n_layers - 1}"
        )
    if vector.hook_name not in model.hook_dict:
        raise ValueError(f"the model has no hook point named {vector.hook_name!r}")
    if not bool(torch.isfinite(vector.direction).all()):
        raise ValueError("vector contains NaN or infinite values")
    name = model_name(model)
    if vector.model_name and name != "unknown" and vector.model_name != name:
        warnings.warn(
            f"vector was fitted on {vector.model_name!r} but is applied to {name!r}",
            stacklevel=3,
        )


@dataclass
class _PositionTracker:
    """Works out, for each forward call, which positions to steer.

    A call without KV cache starts a new prompt, unless its tokens extend the previous
    call's tokens (generation that recomputes the whole sequence each step): then the
    prompt length is kept and the extra positions count as generated.
    """

    mode: str
    prompt_len: int = 0
    last_ids: torch.Tensor | None = None
    mask: torch.Tensor | None = None  # [batch, pos] for the current call

    def on_call(self, ids: Tokens | None, attention: torch.Tensor | None, past: int) -> None:
        if ids is None:  # inputs_embeds: no token ids, treat the call as a fresh prompt
            self.mask = None
            return
        batch, length = ids.shape
        if past == 0 and not self._extends(ids):
            self.prompt_len = length
        if past == 0:
            self.last_ids = ids
        real = (
            attention[:, -length:].bool()
            if attention is not None and attention.ndim == 2
            else torch.ones(batch, length, dtype=torch.bool, device=ids.device)
        )
        self.mask = self._select(real, past + torch.arange(length, device=ids.device))

    def _extends(self, ids: torch.Tensor) -> bool:
        prev = self.last_ids
        return (
            prev is not None
            and prev.shape[0] == ids.shape[0]
            and ids.shape[1] > prev.shape[1]
            and torch.equal(ids[:, : prev.shape[1]], prev.to(ids.device))
        )

    def _select(self, real: Mask, abs_pos: torch.Tensor) -> Mask:
        in_prompt = (abs_pos < self.prompt_len).unsqueeze(0)
        if self.mode == "all":
            return real
        if self.mode == "prompt":
            return real & in_prompt
        if self.mode == "generated":
            return real & ~in_prompt
        # "last": the last real prompt token of each row
        prompt_real = real & in_prompt
        idx = torch.arange(real.shape[1], device=real.device).expand_as(real)
        last = torch.where(prompt_real, idx, -1).max(dim=1, keepdim=True).values
        return (idx == last) & prompt_real


def _call_info(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any, int]:
    ids = kwargs.get("input_ids", args[0] if args else None)
    if ids is not None and (not isinstance(ids, torch.Tensor) or ids.is_floating_point()):
        ids = None
    attention = kwargs.get("attention_mask")
    past = 0
    cache = kwargs.get("past_key_values", kwargs.get("cache"))  # transformers 5 says `cache`
    if cache is not None and hasattr(cache, "get_seq_length"):
        past = int(cache.get_seq_length())
    elif isinstance(attention, torch.Tensor) and ids is not None and attention.ndim == 2:
        past = max(int(attention.shape[1]) - int(ids.shape[1]), 0)
    return ids, attention, past


@contextmanager
def steer(
    model: TransformerBridge,
    vectors: SteeringVector | Sequence[SteeringVector],
    *,
    alpha: float = 1.0,
    positions: Positions = "all",
) -> Iterator[TransformerBridge]:
    """Add ``alpha * vector`` to the residual stream while the ``with`` block runs.

    Args:
        model: The bridge to steer; it is not modified.
        vectors: One vector, or several (e.g. at several layers; vectors sharing a hook
            point are summed).
        alpha: Strength. ``0`` leaves the model exactly as it is.
        positions: ``"all"`` (every prompt and generated token, the paper's setting),
            ``"prompt"``, ``"generated"`` or ``"last"`` (the last prompt token).
            Pad positions are never steered.

    Yields:
        The model, for convenience.

    Raises:
        ValueError: a vector does not fit the model, or ``alpha``/``positions`` is invalid.
            Nothing is registered in that case.

    >>> from interp_steer import load_model
    >>> model = load_model("tiny")
    >>> v = SteeringVector(torch.ones(64), layer=1)
    >>> base = model("Hallo Welt")
    >>> with steer(model, v, alpha=0.0):
    ...     torch.equal(model("Hallo Welt"), base)
    True
    >>> with steer(model, v, alpha=4.0):
    ...     torch.equal(model("Hallo Welt"), base)
    False
    """
    vector_list = [vectors] if isinstance(vectors, SteeringVector) else list(vectors)
    if not vector_list:
        raise ValueError("steer() needs at least one SteeringVector")
    for vector in vector_list:
        check_vector(model, vector)
    check_choice("positions", positions, POSITION_MODES)
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not math.isfinite(alpha):
        raise ValueError(f"alpha must be a finite number, got {alpha!r}")

    summed: dict[str, torch.Tensor] = {}
    for vector in vector_list:
        d = vector.direction.detach().float()
        summed[vector.hook_name] = summed[vector.hook_name] + d if vector.hook_name in summed else d
    tracker = _PositionTracker(positions)

    def make_hook(direction: Direction) -> Any:
        def hook(resid: Residual, hook: Any) -> Residual:
            mask = tracker.mask
            if mask is None or mask.shape != resid.shape[:2]:
                return resid + alpha * direction.to(resid)
            return resid + alpha * mask.unsqueeze(-1).to(resid) * direction.to(resid)

        return hook

    def pre_hook(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        tracker.on_call(*_call_info(args, kwargs))

    fwd_hooks = [(name, make_hook(d)) for name, d in summed.items()]
    handle = None
    try:
        handle = model.original_model.register_forward_pre_hook(pre_hook, with_kwargs=True)
        with model.hooks(fwd_hooks=fwd_hooks):
            yield model
    finally:
        if handle is not None:
            handle.remove()


__all__ = [
    "steer",
]
