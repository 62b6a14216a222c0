"""Weight deltas added to a model for the length of a ``with`` block, then undone exactly.

A fine-tune that changes few weights (a LoRA adapter: ``W + scaling * B @ A``) is applied
to the bridge by adding its deltas to the Hugging Face parameters under it
(``model.original_model``) in place. :func:`weight_deltas` keeps a clone of every
parameter it touches and copies it back in its ``finally`` block, so after the block (also
one that raised) every parameter is bit-identical to before; nothing is subtracted. While
the block runs, :func:`active_adapters` lists what is applied (a name and a fingerprint
each), so results computed inside can record it; the record lives in a module-level weak
mapping, never on the model.

Parameters are named as in the plain Hugging Face model (``model.layers.3.self_attn.
q_proj.weight``): the bridge's wrapper levels (``._original_component``) are left out.
"""

import hashlib
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor
from transformer_lens.model_bridge import TransformerBridge

_WRAPPER = "._original_component"  # the bridge's level around each original HF module

_ACTIVE: "weakref.WeakKeyDictionary[Any, list[dict[str, str]]]" = weakref.WeakKeyDictionary()


def hf_name(name: str) -> str:
    """A parameter's name in the plain Hugging Face model: the bridge's wrapper levels removed.

    >>> hf_name("model.layers.0._original_component.self_attn._original_component.q_proj.weight")
    'model.layers.0.self_attn.q_proj.weight'
    """
    return name.replace(_WRAPPER, "")


def named_weights(model: TransformerBridge) -> dict[str, torch.nn.Parameter]:
    """Every parameter of ``model.original_model`` by its plain Hugging Face name.

    Tied parameters appear under each of their names (``lm_head.weight`` and
    ``model.embed_tokens.weight`` are one tensor in Gemma-3).

    >>> from interp_steer import load_model
    >>> weights = named_weights(load_model("tiny"))
    >>> tuple(weights["model.layers.0.mlp.up_proj.weight"].shape)
    (128, 64)
    """
    hf: Any = getattr(model, "original_model", None)
    if not isinstance(hf, torch.nn.Module):
        raise ValueError(
            "weight deltas need a TransformerBridge (they change the Hugging Face model "
            f"under it), got a {type(model).__name__}"
        )
    return {
        hf_name(name): value
        for name, value in hf.state_dict(keep_vars=True).items()
        if isinstance(value, torch.nn.Parameter)
    }


def weights_fingerprint(model: TransformerBridge, names: Sequence[str]) -> str:
    """A SHA-256 (16 hex digits) of the named parameters' exact values, shapes and dtypes.

    What a LoRA adapter records of the weights it was trained on: another checkpoint,
    dtype or an adapter already applied gives another fingerprint.

    Raises:
        KeyError: a name is not a parameter of the model.

    >>> from interp_steer import load_model
    >>> len(weights_fingerprint(load_model("tiny"), ["model.norm.weight"]))
    16
    """
    weights = named_weights(model)
    digest = hashlib.sha256()
    for name in sorted(names):
        if name not in weights:
            raise KeyError(f"the model has no parameter named {name!r}")
        param = weights[name].detach()
        digest.update(f"{name} {tuple(param.shape)} {param.dtype}\n".encode())
        raw = param.to("cpu").contiguous().reshape(-1).view(torch.uint8)
        digest.update(raw.numpy().tobytes())
    return digest.hexdigest()[:16]


def active_adapters(model: torch.nn.Module) -> tuple[dict[str, str], ...]:
    """The adapters applied to ``model`` right now, outermost first (``name``, ``fingerprint``).

    Empty outside every :func:`weight_deltas` block.

    >>> from interp_steer import load_model
    >>> active_adapters(load_model("tiny"))
    ()
    """
    try:
        records = _ACTIVE.get(model, ())
    except TypeError:  # not weakly referable (a stand-in model in a test): nothing applied
        return ()
    return tuple(dict(record) for record in records)


@contextmanager
def weight_deltas(
    model: TransformerBridge, deltas: Mapping[str, Tensor], *, name: str, fingerprint: str
) -> Iterator[None]:
    """Add ``deltas`` to the named parameters inside the block; restore them exactly after.

    Each delta is added in float32 (``(W.float() + delta.float())`` cast to ``W``'s dtype,
    on ``W``'s device), without gradients. On exit, normal or by an exception, every
    touched parameter gets back a clone of its value from before the block (bit-exact;
    nothing is subtracted). Blocks nest (the inner adapter is added on top of the outer
    one and removed first); the same adapter (``name`` and ``fingerprint``) cannot be
    applied twice at once.

    Args:
        model: The bridge whose ``original_model`` parameters change.
        deltas: Plain Hugging Face parameter name (see :func:`named_weights`) -> a tensor
            of that parameter's shape.
        name: What is applied (e.g. ``"lora:msvamp-de"``), for :func:`active_adapters`.
        fingerprint: What identifies it exactly (a checksum of its weights).

    Raises:
        ValueError: no deltas; a name that is not a parameter of the model (the message
            lists a few that are); a delta of another shape, not a float tensor, or with
            NaN/inf values; two names of one tied parameter; this adapter already active.

    >>> from interp_steer import load_model
    >>> model = load_model("tiny")
    >>> norm = named_weights(model)["model.norm.weight"]
    >>> before = norm.detach().clone()
    >>> with weight_deltas(model, {"model.norm.weight": torch.ones(64)}, name="demo",
    ...                    fingerprint="x"):
    ...     bool((norm == before + 1).all()), active_adapters(model)
    (True, ({'name': 'demo', 'fingerprint': 'x'},))
    >>> bool(torch.equal(norm, before)), active_adapters(model)
    (True, ())
    """
    if not isinstance(name, str) or not name or not isinstance(fingerprint, str):
        raise ValueError("weight_deltas needs a non-empty name and a fingerprint string")
    record = {"name": name, "fingerprint": fingerprint}
    stack = _ACTIVE.setdefault(model, [])
    if record in stack:
        raise ValueError(f"adapter {name!r} ({fingerprint}) is already applied to this model")
    targets = _checked(model, deltas)
    saved = [(param, param.detach().clone()) for param, _ in targets]
    stack.append(record)
    try:
        with torch.no_grad():
            for param, delta in targets:
                new = param.detach().float() + delta.detach().to(param.device, torch.float32)
                param.copy_(new.to(param.dtype))
        yield
    finally:
        with torch.no_grad():
            for param, original in saved:
                param.copy_(original)
        stack.remove(record)
        if not stack:
            _ACTIVE.pop(model, None)


def _checked(
    model: TransformerBridge, deltas: Mapping[str, Tensor]
) -> list[tuple[torch.nn.Parameter, Tensor]]:
    """``(parameter, delta)`` per entry, every check made before any weight changes."""
    if not isinstance(deltas, Mapping) or not deltas:
        raise ValueError("deltas must be a non-empty mapping of parameter name -> tensor")
    weights = named_weights(model)
    out: list[tuple[torch.nn.Parameter, Tensor]] = []
    seen: dict[int, str] = {}
    for key, delta in deltas.items():
        param = weights.get(hf_name(key))
        if param is None:
            some = ", ".join(sorted(weights)[:3])
            raise ValueError(
                f"the model has no parameter named {key!r} (plain Hugging Face names, e.g. {some})"
            )
        if id(param) in seen:
            raise ValueError(f"{key!r} and {seen[id(param)]!r} are one (tied) parameter")
        seen[id(param)] = key
        if not isinstance(delta, Tensor) or not delta.is_floating_point():
            raise ValueError(f"the delta for {key!r} must be a float tensor")
        if tuple(delta.shape) != tuple(param.shape):
            raise ValueError(
                f"the delta for {key!r} has shape {tuple(delta.shape)} but the parameter "
                f"has shape {tuple(param.shape)}"
            )
        if not bool(torch.isfinite(delta).all()):
            raise ValueError(f"the delta for {key!r} has NaN or infinite values")
        out.append((param, delta))
    return out


__all__ = [
    "active_adapters",
    "hf_name",
    "named_weights",
    "weight_deltas",
    "weights_fingerprint",
]
