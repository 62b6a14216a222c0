"""Check that a model's residual stream is the Hugging Face model's, layer by layer.

TransformerLens has had per-architecture residual-stream bugs (the hook point reading
another tensor than the block's output, a re-implemented block computing something
else) that would silently corrupt every vector fitted on the model. :func:`verify_model`
runs a few short prompts through the model and through the Hugging Face model and
compares ``blocks.{L}.hook_resid_post`` with HF's ``hidden_states[L + 1]``, and the
lens's read-out of the last layer (final norm, unembedding, output transform) with HF's
logits. :func:`~interp_steer.models.loading.load_model` calls it once per checkpoint.

Example:
    >>> from interp_steer.models import load_model
    >>> check = verify_model(load_model("tiny"))
    >>> len(check.layer_diffs), check.reference
    (4, 'hf')
"""

import dataclasses
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import torch

from interp_steer.models.backend import Model, final_logits, hf_model, model_dtype

VERIFY_PROMPTS = (
    "The capital of France is",
    "Der Hund schläft unter dem Tisch.",
    "1, 2, 3, 4,",
)
"""The short prompts :func:`verify_model` runs by default."""

_TOLERANCE = {torch.float32: (1e-3, 1e-3), torch.float64: (1e-6, 1e-6)}
_HALF_TOLERANCE = (5e-2, 2e-2)  # bfloat16 / float16


@dataclasses.dataclass(frozen=True)
class ModelCheck:
    """What :func:`verify_model` measured (all within tolerance, or it raised).

    Attributes:
        layer_diffs: Per layer, the largest ``|resid_post - hidden_states[L + 1]|``
            (empty when there was no Hugging Face model to compare with).
        logits_diff: The largest ``|lens(last layer) - logits|``.
        reference: ``"hf"`` when compared with a Hugging Face model, ``"self"`` when only
            the lens was compared with the model's own logits.
    """

    layer_diffs: tuple[float, ...]
    logits_diff: float
    reference: Literal["hf", "self"]

    def __post_init__(self) -> None:
        if self.reference not in ("hf", "self"):
            raise ValueError(f"reference must be 'hf' or 'self', got {self.reference!r}")


def verify_model(
    model: Model,
    prompts: Sequence[str] | None = None,
    *,
    atol: float | None = None,
    rtol: float | None = None,
    reference: torch.nn.Module | None = None,
) -> ModelCheck:
    """Compare the residual stream and the lens's logits with the Hugging Face model's.

    Each prompt runs on its own (no padding). For a bridge the reference is the wrapped
    HF model (``model.original_model(..., output_hidden_states=True)``), run directly, not
    through the bridge's forward. HF's last hidden state is taken after the final norm by
    most architectures (Gemma-3 included), so the last layer is compared both raw and
    through ``ln_final`` and the closer one counts. A HookedTransformer has no HF model:
    pass one as ``reference`` to compare its residual stream, else only its lens is
    checked against its own logits, with a warning saying so.

    Args:
        model: The model.
        prompts: Short prompts; default :data:`VERIFY_PROMPTS`.
        atol: Absolute tolerance; ``None``: 1e-3 (float32) or 5e-2 (bfloat16/float16).
        rtol: Relative tolerance (of the reference's values); ``None``: 1e-3 or 2e-2.
        reference: The Hugging Face model to compare with; default the bridge's own.

    Returns:
        The largest differences found.

    Raises:
        ValueError: A layer (or the logits) differ beyond ``atol + rtol * |reference|``;
            the message names the first such layer (a wrong block spoils all later ones)
            and its largest difference.

    >>> from interp_steer.models import load_model
    >>> verify_model(load_model("tiny"), ["Hallo"]).logits_diff < 1e-4
    True
    """
    default = _TOLERANCE.get(model_dtype(model), _HALF_TOLERANCE)
    atol = default[0] if atol is None else atol
    rtol = default[1] if rtol is None else rtol
    hf = reference if reference is not None else hf_model(model)
    if hf is None:
        warnings.warn(
            "verify_model: a HookedTransformer has no Hugging Face model to compare its "
            "residual stream with (pass reference=); only its lens is checked against its "
            "own logits",
            stacklevel=2,
        )
    n_layers = int(model.cfg.n_layers)
    names = [f"blocks.{layer}.hook_resid_post" for layer in range(n_layers)]
    # per layer (index n_layers: the logits): (largest |diff|, largest |diff| / tolerance)
    worst = [(0.0, 0.0)] * (n_layers + 1)
    with torch.inference_mode():
        for prompt in prompts if prompts is not None else VERIFY_PROMPTS:
            ids = model.to_tokens(prompt)
            ref_hidden: Any = None
            if hf is not None:
                out = hf(ids.to(_device(hf)), output_hidden_states=True)
                ref_hidden, ref_logits = out.hidden_states, out.logits
            logits, cache = model.run_with_cache(ids, names_filter=lambda n: n in names)
            if hf is None:
                ref_logits = logits
            for layer in range(n_layers if hf is not None else 0):
                resid = cache[names[layer]]
                ref = ref_hidden[layer + 1].to(resid.device)
                pair = _excess(resid, ref, atol, rtol)
                if layer == n_layers - 1:
                    pair = min(pair, _excess(model.ln_final(resid), ref, atol, rtol), key=_ratio)
                worst[layer] = max(worst[layer], pair, key=_ratio)
            lens = final_logits(model, cache[names[-1]])
            pair = _excess(lens, ref_logits.to(lens.device), atol, rtol)
            worst[n_layers] = max(worst[n_layers], pair, key=_ratio)
    # a wrong block spoils every later one: name the first layer beyond tolerance
    bad = next((i for i in range(n_layers + 1) if worst[i][1] > 1), None)
    if bad is not None:
        where = f"layer {bad} (blocks.{bad}.hook_resid_post vs HF hidden_states[{bad + 1}])"
        if bad == n_layers:
            where = "the lens's read-out of the last layer vs the model's logits"
        raise ValueError(
            f"the model's residual stream disagrees with the Hugging Face model's from "
            f"{where}, max |difference| {worst[bad][0]:.3g} (tolerance atol={atol:g}, "
            f"rtol={rtol:g}); vectors fitted on it would be corrupted"
        )
    return ModelCheck(
        layer_diffs=tuple(d for d, _ in worst[:n_layers]) if hf is not None else (),
        logits_diff=worst[n_layers][0],
        reference="hf" if hf is not None else "self",
    )


def _device(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device


def _ratio(pair: tuple[float, float]) -> float:
    return pair[1]


def _excess(got: torch.Tensor, want: torch.Tensor, atol: float, rtol: float) -> tuple[float, float]:
    """(largest |got - want|, largest |got - want| / (atol + rtol * |want|))."""
    diff = (got.float() - want.float()).abs()
    return float(diff.max()), float((diff / (atol + rtol * want.float().abs())).max())


__all__ = [
    "VERIFY_PROMPTS",
    "ModelCheck",
    "verify_model",
]
