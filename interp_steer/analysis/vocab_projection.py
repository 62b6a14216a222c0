"""Residual streams read out as vocabulary distributions (the logit lens's read-out).

:func:`project_to_vocab` applies the model's own final norm and unembedding to any
residual stream, then the model's own output-logits transform (Gemma-2/3 soft-capping,
Cohere's ``logit_scale``, Granite's ``logits_scaling``), so at the last layer it
reproduces the model's logits exactly. :func:`readout_residuals`
collects the residuals to project, at chosen layers and read-out positions (and
:func:`readout_runs` does so unsteered, then steered), and :func:`top_tokens` projects
them in memory-bounded chunks and keeps the top ``k``.

Example:
    >>> from interp_steer import load_model
    >>> model = load_model("tiny")
    >>> tokens = [model.to_tokens("Hallo Welt", move_to_device=False)[0]]
    >>> resid = readout_residuals(model, tokens, (1, 3), "last", batch_size=8)
    >>> probs, ids = top_tokens(model, resid[3], k=2)
    >>> resid[1].shape, probs.shape, ids.shape
    (torch.Size([1, 64]), torch.Size([1, 2]), torch.Size([1, 2]))
"""

import contextlib
from typing import Any, Literal

import torch
from torch import Tensor

from interp_steer.constants import Positions
from interp_steer.models.backend import (
    Model,
    final_logits,
    own_parameters,
    run_to_layer,
)
from interp_steer.models.batching import left_pad
from interp_steer.progress import progress_bar
from interp_steer.steering.intervention import steer
from interp_steer.steering.vectors import SteeringVector
from interp_steer.types import AnyResidual, Residual, VocabLogits

ReadOut = Literal["last", "all"]
"""Read-out positions: each prompt's last token, or every token."""


def project_to_vocab(model: Model, resid: AnyResidual) -> VocabLogits:
    """Read a residual stream out as logits: final norm, unembedding, output transform.

    The output transform is the model's own (:func:`~interp_steer.models.backend.output_logits`):
    Gemma-2/3 soft-capping, Cohere's ``logit_scale``, Granite's ``logits_scaling``.

    Args:
        model: The model (a bridge, or a HookedTransformer on TransformerLens 3.x).
        resid: Residual-stream activations ``[..., d_model]`` (any leading shape).

    Returns:
        Float32 logits ``[..., d_vocab]`` on the model's device.

    >>> from interp_steer import load_model
    >>> model = load_model("tiny")
    >>> logits, cache = model.run_with_cache("Hallo")
    >>> lens = project_to_vocab(model, cache["blocks.3.hook_resid_post"])
    >>> bool((lens - logits).abs().max() < 1e-4)
    True
    """
    shape = resid.shape
    param = next(own_parameters(model))[1]
    x = resid.reshape(1, -1, shape[-1]).to(device=param.device, dtype=param.dtype)
    logits = final_logits(model, x)
    return logits.reshape(*shape[:-1], logits.shape[-1])


def top_tokens(model: Model, rows: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Top-``k`` probabilities and token ids of residual ``rows [n, d_model]``.

    The rows are projected with :func:`project_to_vocab` in chunks of about 256 MB of
    logits; both results are ``[n, k]`` on the CPU.

    >>> from interp_steer import load_model
    >>> model = load_model("tiny")
    >>> probs, ids = top_tokens(model, torch.randn(3, 64), k=4)
    >>> probs.shape, bool((probs[:, :-1] >= probs[:, 1:]).all())
    (torch.Size([3, 4]), True)
    """
    # ~256 MB of float32 logits per chunk: big enough that reading the unembedding
    # (671 MB on Gemma-3) is shared by many rows, small enough for a laptop.
    chunk = max(1, (1 << 26) // int(model.cfg.d_vocab))
    probs, ids = [], []
    with torch.inference_mode():
        for start in range(0, rows.shape[0], chunk):
            logp = project_to_vocab(model, rows[start : start + chunk]).log_softmax(-1)
            top = logp.topk(k, dim=-1)
            probs.append(top.values.exp().cpu())
            ids.append(top.indices.cpu())
    return torch.cat(probs), torch.cat(ids)


def readout_residuals(
    model: Model,
    tokens: list[Tensor],
    layers: tuple[int, ...],
    positions: ReadOut,
    batch_size: int,
) -> dict[int, Tensor]:
    """Residuals at the read-out positions: layer -> ``[n_items, d_model]`` (item order).

    Items are the read-out positions of all prompts in order: one per prompt for
    ``"last"``, every token of every prompt for ``"all"``. The forward pass stops after
    the highest layer in ``layers``.

    Args:
        model: The model (a bridge, or a HookedTransformer on TransformerLens 3.x).
        tokens: One 1-D token-id tensor per prompt (left-padded into batches here), none
            longer than the model's context (cut them with
            :func:`~interp_steer.models.batching.context_tokens`).
        layers: Layers to read, ascending.
        positions: ``"last"`` or ``"all"``.
        batch_size: Prompts per forward pass.

    Raises:
        ValueError: A row longer than the model's context (``model.cfg.n_ctx``).

    >>> from interp_steer import load_model
    >>> model = load_model("tiny")
    >>> tokens = [model.to_tokens(p, move_to_device=False)[0] for p in ("Hallo", "Guten Tag")]
    >>> n_tokens = sum(len(t) for t in tokens)
    >>> readout_residuals(model, tokens, (0,), "all", batch_size=1)[0].shape[0] == n_tokens
    True
    """
    n_ctx = getattr(model.cfg, "n_ctx", None)
    longest = max((len(t) for t in tokens), default=0)
    if n_ctx and longest > n_ctx:
        raise ValueError(
            f"a prompt has {longest} tokens, more than the model's context of {n_ctx}; cut "
            "the rows first (context_tokens)"
        )
    out: dict[int, list[Tensor]] = {layer: [] for layer in layers}
    state: dict[str, Tensor] = {}
    top = layers[-1]

    def make_hook(layer: int) -> Any:
        def hook(resid: Residual, hook: Any) -> Residual:
            r = resid.detach()
            if positions == "last":
                out[layer].append(r[:, -1].float().cpu())
            else:
                out[layer].append(r[state["keep"]].float().cpu())  # row-major: item order
            return resid

        return hook

    hooks = [(f"blocks.{layer}.hook_resid_post", make_hook(layer)) for layer in layers]
    with torch.inference_mode(), model.hooks(fwd_hooks=hooks):
        for start in range(0, len(tokens), batch_size):
            ids, mask = left_pad(model, [t.tolist() for t in tokens[start : start + batch_size]])
            state["keep"] = mask
            run_to_layer(model, ids, mask, top)  # the lens projects by itself
    return {layer: torch.cat(parts) for layer, parts in out.items()}


def readout_runs(
    model: Model,
    tokens: list[Tensor],
    layers: tuple[int, ...],
    positions: ReadOut,
    batch_size: int,
    *,
    vector: SteeringVector | None = None,
    alpha: float = 0.0,
    steer_positions: Positions = "all",
    desc: str = "read-out",
    progress: bool | None = None,
) -> list[dict[int, Tensor]]:
    """:func:`readout_residuals` unsteered, then (given a vector) steered: one dict per run.

    The steered run reads the same prompts inside
    :func:`~interp_steer.steering.steer` (``vector``, ``alpha``, ``steer_positions``).

    Args:
        model: The model.
        tokens: One 1-D token-id tensor per prompt (see :func:`readout_residuals`).
        layers: Layers to read, ascending.
        positions: Read-out positions, ``"last"`` or ``"all"``.
        batch_size: Prompts per forward pass.
        vector: The steering vector of the second run; None reads only the unsteered one.
        alpha: Its strength.
        steer_positions: Where it acts.
        desc: The progress bar's label (one step per batch and run).
        progress: None follows :func:`~interp_steer.progress.set_progress`.

    >>> from interp_steer import load_model
    >>> model = load_model("tiny")
    >>> tokens = [model.to_tokens("Hallo Welt", move_to_device=False)[0]]
    >>> v = SteeringVector(torch.ones(64), layer=1, method="mean_diff")
    >>> base, steered = readout_runs(model, tokens, (0, 2), "last", 8, vector=v, alpha=1.0,
    ...                              progress=False)
    >>> torch.equal(base[0], steered[0]), torch.equal(base[2], steered[2])
    (True, False)
    """
    steered = [False] if vector is None else [False, True]
    batches = [tokens[i : i + batch_size] for i in range(0, len(tokens), batch_size)]
    out: list[dict[int, Tensor]] = []
    with progress_bar(
        total=len(steered) * len(batches), desc=desc, unit="batch", progress=progress
    ) as bar:
        for on in steered:
            steering = (
                steer(model, vector, alpha=alpha, positions=steer_positions)
                if on and vector is not None
                else contextlib.nullcontext()
            )
            parts = []
            with steering:
                for batch in batches:
                    parts.append(readout_residuals(model, batch, layers, positions, batch_size))
                    bar.update(1)
            out.append({layer: torch.cat([p[layer] for p in parts]) for layer in layers})
    return out


__all__ = [
    "project_to_vocab",
]
