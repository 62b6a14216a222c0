"""The one seam between the stages and TransformerLens's two model classes.

Every stage works on a :data:`Model`: a ``TransformerBridge`` (TransformerLens 3.9 and
4.x, wrapping the Hugging Face model) or a ``HookedTransformer`` (TransformerLens 3.x,
its own re-implementation). Both share what most code needs: ``cfg`` (``n_layers``,
``d_model``, ``d_vocab``, ``n_ctx``, ``device``, ``dtype``, ``model_name``), ``tokenizer``,
``to_tokens``, ``hook_dict``, ``hooks()``, ``forward(..., attention_mask=, stop_at_layer=)``,
``ln_final``/``unembed`` and the ``blocks.{L}.hook_resid_post`` hook point, which holds
the same numbers on both (Hugging Face ``hidden_states[L + 1]``) when the
HookedTransformer's weights are not processed. Where they differ, the stages call the
functions here and nowhere else ask which class they hold: the wrapped HF model,
the dtype, stopping after a block without the unembedding, a KV-cached decoding step,
the output-logits transform (soft-cap, Cohere/Granite scaling), the hooks ``steer``
watches calls with, and the weight basis.

``HookedTransformer`` is ``None`` on TransformerLens 4.x, which has none.

Example:
    >>> from interp_steer.models import load_model
    >>> model = load_model("tiny")
    >>> is_hooked(model), model_dtype(model), hf_model(model) is not None
    (False, torch.float32, True)
"""

import importlib.metadata
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

import torch
from transformer_lens.model_bridge import TransformerBridge
from transformer_lens.model_bridge.exceptions import StopAtLayerException

from interp_steer.types import Mask, Tokens

try:  # TransformerLens 3.x ships HookedTransformer beside the bridge; 4.x has the bridge only
    from transformer_lens import HookedTransformer
    from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache
except ImportError:  # pragma: no cover - depends on the installed TransformerLens
    HookedTransformer = None  # type: ignore[assignment,misc]
    TransformerLensKeyValueCache = None  # type: ignore[assignment,misc]

if TYPE_CHECKING:
    Model: TypeAlias = TransformerBridge
else:
    Model = TransformerBridge | HookedTransformer if HookedTransformer else TransformerBridge
"""A model every public function takes: a bridge, or (TransformerLens 3.x) a HookedTransformer."""

TL_VERSION = importlib.metadata.version("transformer-lens")
"""The installed TransformerLens version (vectors record it)."""

BASIS_FLAGS = ("fold_ln", "center_writing_weights", "center_unembed")
"""TransformerLens's weight processing flags a vector's weight basis records."""

_CENTRED = 1e-5  # |row mean| / row RMS below this: the weights were centred (float32 ~1e-8)


def is_hooked(model: Any) -> bool:
    """Whether ``model`` is a ``HookedTransformer`` (False on TransformerLens 4.x).

    >>> from interp_steer.models import load_model
    >>> is_hooked(load_model("tiny"))
    False
    """
    return HookedTransformer is not None and isinstance(model, HookedTransformer)


def hf_model(model: Model) -> torch.nn.Module | None:
    """The Hugging Face model a bridge wraps; None for a HookedTransformer.

    >>> from interp_steer.models import load_model
    >>> type(hf_model(load_model("tiny"))).__name__
    'Gemma3ForCausalLM'
    """
    hf = getattr(model, "original_model", None)
    return hf if isinstance(hf, torch.nn.Module) and not is_hooked(model) else None


def model_dtype(model: Model) -> torch.dtype:
    """The dtype of the model's weights (``cfg.dtype``, else its first parameter's)."""
    dtype = getattr(model.cfg, "dtype", None)
    if isinstance(dtype, torch.dtype):
        return dtype
    return next(own_parameters(model))[1].dtype


def own_parameters(model: Model) -> Iterator[tuple[str, torch.nn.Parameter]]:
    """The model's own parameters: the wrapped HF model's for a bridge, else its own."""
    owner = hf_model(model)
    return (owner if owner is not None else model).named_parameters()


def logit_softcap(model: Model) -> float | None:
    """The final logit soft-cap (``tanh(x / cap) * cap``), or None when there is none.

    >>> from interp_steer.models import load_model
    >>> logit_softcap(load_model("tiny")) is None
    True
    """
    hf = hf_model(model)
    if hf is not None:
        cap = getattr(getattr(hf, "config", None), "final_logit_softcapping", None)
    else:
        cap = getattr(model.cfg, "output_logits_soft_cap", None)
    return float(cap) if cap is not None and cap > 0 else None


def output_logits(model: Model, logits: torch.Tensor) -> torch.Tensor:
    """The model's own transform of the unembedding's output into its output logits.

    A bridge uses its architecture adapter's ``apply_output_logits_transform`` (Gemma-2/3
    ``final_logit_softcapping``, Cohere ``logit_scale``, Granite ``logits_scaling``, ...);
    where the installed TransformerLens has none, the Hugging Face config's fields are
    applied in the same order (scale, then soft-cap). A HookedTransformer applies its
    ``cfg.output_logits_soft_cap``.

    Args:
        model: The model.
        logits: ``unembed(ln_final(resid))`` of any shape ``[..., d_vocab]``.

    Returns:
        Float32 logits as the model's forward returns them.

    >>> import torch
    >>> from interp_steer.models import load_model
    >>> x = torch.randn(2, 260)
    >>> bool(torch.equal(output_logits(load_model("tiny"), x), x))
    True
    """
    logits = logits.float()
    adapter = getattr(model, "adapter", None)
    transform = getattr(adapter, "apply_output_logits_transform", None)
    if hf_model(model) is not None and callable(transform):
        return transform(logits).float()
    hf = hf_model(model)
    config = getattr(hf, "config", None)
    if config is not None:
        scale = getattr(config, "logit_scale", None)  # Cohere: logits * logit_scale
        if isinstance(scale, int | float) and scale != 1:
            logits = logits * float(scale)
        scaling = getattr(config, "logits_scaling", None)  # Granite: logits / logits_scaling
        if isinstance(scaling, int | float) and scaling not in (0, 1):
            logits = logits / float(scaling)
    cap = logit_softcap(model)
    return torch.tanh(logits / cap) * cap if cap else logits


def final_logits(model: Model, resid: torch.Tensor) -> torch.Tensor:
    """``[batch, pos, d_model]`` residual → float32 logits: norm, unembedding, transform.

    The transform is the model's own (:func:`output_logits`).
    """
    return output_logits(model, model.unembed(model.ln_final(resid)))


def run_to_layer(model: Model, ids: Tokens, mask: Mask, layer: int) -> None:
    """Run blocks ``0..layer`` on a left-padded batch; never the final norm or unembedding.

    Hooks on ``blocks.{0..layer}`` fire as in a full forward. ``stop_at_layer`` counts
    blocks run; the bridge's last block is stopped by raising its own
    ``StopAtLayerException`` from a hook added after the caller's.
    """
    n_layers = int(model.cfg.n_layers)
    if is_hooked(model) or layer + 1 < n_layers:
        model.forward(ids, attention_mask=mask.long(), stop_at_layer=layer + 1)
        return

    def stop(resid: torch.Tensor, hook: Any) -> None:
        raise StopAtLayerException(resid)

    with model.hooks(fwd_hooks=[(f"blocks.{layer}.hook_resid_post", stop)]):
        model.forward(ids, attention_mask=mask.long())


def cached_step(
    model: Model, step: Tokens, attention: torch.Tensor, cache: Any, cache_name: str, extra: Any
) -> tuple[torch.Tensor, Any]:
    """One KV-cached decoding forward: ``(logits [batch, step, d_vocab], cache for the next)``.

    Args:
        model: The model; active hooks fire.
        step: The new tokens (the whole prompt on the first call).
        attention: The attention mask of the whole sequence so far, ``step`` included.
        cache: ``None`` on the first call, then what the previous call returned.
        cache_name: The HF forward's name for the cache (bridge only; see
            :func:`~interp_steer.models.generation.cache_argument`).
        extra: More keyword arguments for the bridge's forward (``logits_to_keep``).
    """
    if is_hooked(model):
        if cache is None:
            cache = TransformerLensKeyValueCache.init_cache(
                model.cfg, model.cfg.device, int(step.shape[0])
            )
        logits = model(step, attention_mask=attention[:, -step.shape[1] :], past_kv_cache=cache)
        return logits, cache
    return model(
        step,
        attention_mask=attention,
        use_cache=True,
        **{cache_name: cache},
        return_type="logits_and_cache",
        **extra,
    )


OnCall = Callable[[tuple[int, int] | None, torch.device | None, Any, int], None]
"""``on_call((batch, pos) or None, device, attention_mask, past_length)`` per forward."""


def watch_calls(
    model: Model, on_call: OnCall, on_output: Callable[[torch.Tensor], None]
) -> list[torch.utils.hooks.RemovableHandle]:
    """Hooks that report every forward's shape, mask and KV-cache length, and its logits.

    ``on_call`` runs before the first block sees a call: with the new positions'
    ``(batch, pos)`` (None for a bridge call that passes ``inputs_embeds``), the attention
    mask as passed, and how many positions a KV cache already holds. ``on_output`` gets
    the logits. Also the model's own ``generate`` is seen (a HookedTransformer's calls
    ``forward`` directly, so its blocks and unembedding are watched, not the model).

    Returns:
        The handles; remove them when done.
    """
    if is_hooked(model):

        def block_pre(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            resid = args[0] if args else kwargs.get("resid_pre")
            entry = kwargs.get("past_kv_cache_entry")
            past = int(entry.past_keys.shape[1]) if entry is not None else 0
            shape = (int(resid.shape[0]), int(resid.shape[1])) if resid is not None else None
            device = resid.device if resid is not None else None
            on_call(shape, device, kwargs.get("attention_mask"), past)

        def unembed_post(module: Any, args: Any, output: Any) -> None:
            on_output(output)

        first = model.blocks[0]
        return [
            first.register_forward_pre_hook(block_pre, with_kwargs=True),
            model.unembed.register_forward_hook(unembed_post),
        ]

    def pre(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is not None and (not isinstance(ids, torch.Tensor) or ids.is_floating_point()):
            ids = None
        attention = kwargs.get("attention_mask")
        past = 0
        cache = kwargs.get("past_key_values", kwargs.get("cache"))  # transformers 5: `cache`
        if cache is not None and hasattr(cache, "get_seq_length"):
            past = int(cache.get_seq_length())
        elif isinstance(attention, torch.Tensor) and ids is not None and attention.ndim == 2:
            past = max(int(attention.shape[1]) - int(ids.shape[1]), 0)
        shape = (int(ids.shape[0]), int(ids.shape[1])) if ids is not None else None
        on_call(shape, ids.device if ids is not None else None, attention, past)

    def post(module: Any, args: Any, kwargs: Any, output: Any) -> None:
        on_output(getattr(output, "logits", output))

    hf = hf_model(model)
    if hf is None:
        raise ValueError(f"expected a TransformerBridge or HookedTransformer, got {model!r:.80}")
    return [
        hf.register_forward_pre_hook(pre, with_kwargs=True),
        hf.register_forward_hook(post, with_kwargs=True),
    ]


# ----------------------------------------------------------------- the weight basis


def _centred(weight: torch.Tensor | None) -> bool:
    """Whether the first rows of ``weight`` have (float-rounding) zero mean along the last dim."""
    if weight is None or weight.ndim != 2 or weight.shape[-1] < 2:
        return False
    with torch.no_grad():
        rows = weight[:8].detach().float()
        rms = rows.pow(2).mean(-1).sqrt().clamp_min(1e-30)
        return bool((rows.mean(-1).abs() / rms).max() < _CENTRED)


def weight_basis(model: Model) -> dict[str, Any]:
    """Which residual-stream basis the model's weights put activations in, as vectors record it.

    ``fold_ln``, ``center_writing_weights`` and ``center_unembed`` are TransformerLens's
    weight processing (``HookedTransformer.from_pretrained`` applies all three by default,
    ``from_pretrained_no_processing`` none; a bridge is unprocessed unless
    ``process_weights``/``enable_compatibility_mode`` ran). ``fold_ln`` is read from
    ``cfg.normalization_type`` (``LNPre``/``RMSPre``), the centring from the weights
    themselves (TransformerLens keeps no record of it): the embedding's and the
    unembedding's rows have zero mean. Centring writing weights applies to LayerNorm
    models only (RMSNorm models skip it).

    >>> from interp_steer.models import load_model
    >>> basis = weight_basis(load_model("tiny"))
    >>> basis["model_class"], basis["fold_ln"], basis["center_writing_weights"]
    ('TransformerBridge', False, False)
    """
    out: dict[str, Any] = {"tl_version": TL_VERSION, "model_class": type(model).__name__}
    cfg = model.cfg
    if not is_hooked(model) and not getattr(model, "_weights_processed", False):
        return {**out, **dict.fromkeys(BASIS_FLAGS, False)}
    norm = str(getattr(cfg, "normalization_type", "") or "")
    if is_hooked(model):
        fold = norm in ("LNPre", "RMSPre")
    else:  # a processed bridge: TransformerLens folds unless told otherwise
        fold = bool(getattr(getattr(model, "adapter", None), "_fold_ln_requested", True))
    layer_norm = norm in ("LN", "LNPre") and not getattr(cfg, "final_rms", False)
    w_e = getattr(model, "W_E", None)
    w_u = getattr(model, "W_U", None)
    return {
        **out,
        "fold_ln": fold,
        "center_writing_weights": layer_norm and _centred(w_e),
        "center_unembed": _centred(w_u),
    }


def basis_mismatch(recorded: Mapping[str, Any], model: Model) -> str | None:
    """What differs between a vector's recorded weight basis and ``model``'s, or None.

    Only the processing flags count (``fold_ln``, ``center_writing_weights``,
    ``center_unembed``); the model class and TransformerLens version are provenance. A
    record without them (vectors saved before they were recorded) matches any model.

    >>> from interp_steer.models import load_model
    >>> basis_mismatch({"fold_ln": True}, load_model("tiny"))
    'fold_ln=True (vector) vs False (model)'
    >>> basis_mismatch({}, load_model("tiny")) is None
    True
    """
    flags = [key for key in BASIS_FLAGS if key in recorded]
    if not flags:
        return None
    have = weight_basis(model)
    diffs = [
        f"{key}={bool(recorded[key])} (vector) vs {have[key]} (model)"
        for key in flags
        if bool(recorded[key]) != have[key]
    ]
    return ", ".join(diffs) or None


__all__ = [
    "BASIS_FLAGS",
    "TL_VERSION",
    "HookedTransformer",
    "Model",
    "basis_mismatch",
    "cached_step",
    "final_logits",
    "hf_model",
    "is_hooked",
    "logit_softcap",
    "model_dtype",
    "output_logits",
    "own_parameters",
    "run_to_layer",
    "watch_calls",
    "weight_basis",
]
