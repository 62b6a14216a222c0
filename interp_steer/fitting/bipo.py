"""Bi-directional Preference Optimization of a steering vector (BiPO; Cao et al. 2024).

BiPO (arXiv 2406.00045) trains one vector ``v`` added at every position of layer ``L``.
With ``d`` drawn uniformly from {-1, +1} at each step, the loss of a pair is::

    -log sigmoid( d*beta*[log pi(r_T | A_L(q) + d*v) - log pi(r_T | A_L(q))]
                - d*beta*[log pi(r_O | A_L(q) + d*v) - log pi(r_O | A_L(q))] )

so ``+v`` makes the desired response ``r_T`` more likely relative to the other response
``r_O``, and ``-v`` the reverse. Log-probabilities are sums over response tokens only
(prompt and pad positions are masked); the reference terms are computed once, without
gradients, before training.

Multilingual mapping (the same for every parallel corpus: MSVAMP, MGSM, Tatoeba, FLORES,
XCOPA): for pair ``i``, the prompt ``q`` is ``prompt_template.format(text=target[i])``,
the target-language text followed by a neutral "repeat" instruction; ``r_T`` (desired) is
``english[i]`` and ``r_O`` is ``target[i]`` itself. For MSVAMP: ``q`` = the German problem
+ "Repeat the text above:", ``r_T`` = the English problem, ``r_O`` = the German problem.
Without steering the model prefers to repeat in the prompt's language; the vector learns
to move target-language prompts towards producing, and so representing, English.

Only ``v`` is trained: the parameters' ``requires_grad`` flags are switched off during
training and restored in a ``finally`` block, gradients are taken with
``torch.autograd.grad`` on ``v`` alone, so no parameter ever gets a ``.grad``.
"""

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor
from transformer_lens.model_bridge import TransformerBridge

from interp_steer.data.parallel import PairedTexts, check_pairs
from interp_steer.models.batching import left_pad, warn_cut
from interp_steer.models.generation import keeps_logits
from interp_steer.models.layers import HOOK_TEMPLATE, check_layers
from interp_steer.progress import progress_bar
from interp_steer.steering.vectors import SteeringVector
from interp_steer.types import Direction, Residual

DEFAULT_PROMPT_TEMPLATE = "{text}\n\nRepeat the text above:\n"
"""The BiPO prompt around a target-language text; ``{text}`` is replaced by it."""


Encoded = list[tuple[Tensor, int]]  # (prompt + response token ids, number of response tokens)


def bipo_direction(
    model: TransformerBridge,
    corpus: PairedTexts,
    *,
    layer: int,
    beta: float = 0.1,
    lr: float = 5e-4,
    weight_decay: float = 0.05,
    warmup_steps: int = 100,
    epochs: int = 1,
    batch_size: int = 4,
    seed: int = 0,
    prompt_template: str = DEFAULT_PROMPT_TEMPLATE,
    max_response_tokens: int | None = 128,
    n_eval: int = 16,
    progress: bool | None = None,
) -> tuple[Direction, dict[str, Any]]:
    """Train a BiPO steering vector for ``layer`` on a parallel corpus.

    Defaults are the BiPO paper's: ``beta=0.1``, AdamW with ``lr=5e-4`` and weight decay
    0.05, a cosine schedule with 100 warm-up steps (as transformers'
    ``get_cosine_schedule_with_warmup``: the rate grows linearly from 0), one epoch.
    With fewer steps than ``warmup_steps`` the rate never reaches ``lr``;
    ``metrics["lr_peak_reached"]`` records how far it got.

    Args:
        model: The bridge; it is left exactly as it was (no parameter gets a ``.grad``).
        corpus: Pairs with ``english`` and ``target`` texts (e.g. a ``ParallelCorpus``).
        layer: The block whose ``hook_resid_post`` gets ``d * v`` at every real position.
        beta: Preference temperature.
        lr: Peak AdamW learning rate.
        weight_decay: AdamW decoupled weight decay.
        warmup_steps: Linear warm-up steps before the cosine decay.
        epochs: Passes over the pairs (shuffled with ``seed``).
        batch_size: Pairs per step (each step runs ``2 * batch_size`` sequences).
        seed: Seeds the shuffling and the draws of ``d``; same seed, same vector.
        prompt_template: Builds ``q`` from a target-language text (``{text}``).
        max_response_tokens: Truncate responses to this many tokens (``None``: never).
        n_eval: Pairs on which the margin ``log pi(r_T) - log pi(r_O)`` is measured with
            and without ``+v`` after training (0 to skip).
        progress: Show a progress bar; ``None`` follows
            :func:`~interp_steer.progress.set_progress`.

    Returns:
        ``(v, metrics)``: ``loss_curve`` (per step), ``steps``, ``final_loss``, ``norm``,
        ``lr_peak_reached``, ``margin_before``/``margin_after``, the prompt template, and
        ``n_truncated``: the pairs whose prompt and response together were longer than the
        model's context and were cut to it (one warning gives the count; see
        :func:`encode_pairs`).

    Raises:
        ValueError: an empty corpus, sides of different lengths, a layer out of range,
            a bad hyper-parameter, or a NaN/inf loss or vector during training (the
            message names the step, counted from 0, and the last finite loss).

    >>> from interp_steer import load_model
    >>> from types import SimpleNamespace
    >>> model = load_model("tiny")
    >>> pairs = SimpleNamespace(english=("The cat.", "Hello."), target=("Die Katze.", "Hallo."))
    >>> v, metrics = bipo_direction(model, pairs, layer=1, lr=0.01, warmup_steps=0)
    >>> v.shape, metrics["steps"], round(metrics["loss_curve"][0], 4)
    (torch.Size([64]), 1, 0.6931)
    """
    english, target = check_pairs(corpus)
    layer = check_layers(model, layer)[0]
    _check_hyper(beta, lr, weight_decay, warmup_steps, epochs, batch_size, max_response_tokens)
    if "{text}" not in prompt_template:
        raise ValueError("prompt_template must contain '{text}'")
    prompts = [prompt_template.format(text=t) for t in target]
    seq_t, cut_t = _encode(model, prompts, english, max_response_tokens)
    seq_o, cut_o = _encode(model, prompts, target, max_response_tokens)
    n_cut = len(cut_t | cut_o)
    if n_cut:
        warn_cut("BiPO", n_cut, len(prompts), int(model.cfg.n_ctx), "prompt+response pairs")
    n, device = len(english), model.cfg.device or "cpu"
    steps_per_epoch = math.ceil(n / batch_size)
    total = steps_per_epoch * epochs
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        with torch.inference_mode(False), torch.no_grad():
            ref_t = _batched_logprobs(model, seq_t, None, layer, batch_size * 2)
            ref_o = _batched_logprobs(model, seq_o, None, layer, batch_size * 2)
        v = torch.zeros(int(model.cfg.d_model), device=device, requires_grad=True)
        opt = torch.optim.AdamW([v], lr=lr, weight_decay=weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _cosine(s, warmup_steps, total))
        gen = torch.Generator().manual_seed(seed)
        losses: list[float] = []
        lr_peak = 0.0
        bar = progress_bar(total=total, desc=f"BiPO layer {layer}", unit="step", progress=progress)
        with bar, torch.inference_mode(False), torch.enable_grad():
            for _ in range(epochs):
                perm = torch.randperm(n, generator=gen).tolist()
                for start in range(0, n, batch_size):
                    rows = perm[start : start + batch_size]
                    sign = 1.0 if int(torch.randint(0, 2, (1,), generator=gen)) else -1.0
                    batch = [seq_t[i] for i in rows] + [seq_o[i] for i in rows]
                    lp = sequence_logprobs(model, batch, v, layer, sign)
                    lp_t, lp_o = lp[: len(rows)], lp[len(rows) :]
                    z = sign * beta * ((lp_t - ref_t[rows]) - (lp_o - ref_o[rows]))
                    loss = -F.logsigmoid(z).mean()
                    (grad,) = torch.autograd.grad(loss, [v])
                    if not (torch.isfinite(loss) and torch.isfinite(grad).all()):
                        _diverged(
                            len(losses), losses, "loss" if not torch.isfinite(loss) else "gradient"
                        )
                    lr_peak = max(lr_peak, opt.param_groups[0]["lr"])
                    v.grad = grad
                    opt.step()
                    v.grad = None
                    sched.step()
                    losses.append(float(loss.detach()))
                    if not bool(torch.isfinite(v).all()):
                        _diverged(len(losses) - 1, losses, "vector")
                    bar.update(1)
                    bar.set_postfix(loss=f"{losses[-1]:.4f}")
        direction = v.detach().float().cpu()
        metrics: dict[str, Any] = {
            "loss_curve": losses,
            "steps": len(losses),
            "final_loss": sum(losses[-10:]) / len(losses[-10:]),
            "norm": float(direction.norm()),
            "lr_peak_reached": lr_peak,
            "prompt_template": prompt_template,
            "mapping": "q=template(target text), r_T=english text, r_O=target text",
            "n_truncated": n_cut,
        }
        if n_eval > 0:
            k = min(n, n_eval)
            with torch.inference_mode(False), torch.no_grad():
                after_t = _batched_logprobs(model, seq_t[:k], v.detach(), layer, batch_size * 2)
                after_o = _batched_logprobs(model, seq_o[:k], v.detach(), layer, batch_size * 2)
            metrics.update(
                n_eval=k,
                margin_before=float((ref_t[:k] - ref_o[:k]).mean()),
                margin_after=float((after_t - after_o).mean()),
            )
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)
    return direction, metrics


def response_logprobs(
    model: TransformerBridge,
    prompts: Sequence[str],
    responses: Sequence[str],
    *,
    vector: SteeringVector | None = None,
    alpha: float = 1.0,
    batch_size: int = 8,
    max_response_tokens: int | None = None,
) -> Float[Tensor, " n"]:
    """Return ``log pi(response | prompt)`` summed over response tokens, per pair.

    Args:
        model: The bridge.
        prompts: Prompts (a BOS token is prepended as ``to_tokens`` does).
        responses: Continuations, tokenised without BOS and appended to their prompts.
        vector: If given, ``alpha * vector`` is added at every real position of its layer.
        alpha: Strength of ``vector``.
        batch_size: Sequences per forward pass.
        max_response_tokens: Truncate responses to this many tokens.

    >>> from interp_steer import load_model
    >>> model = load_model("tiny")
    >>> response_logprobs(model, ["Hallo"], [" Welt"]).shape
    torch.Size([1])
    """
    if len(prompts) != len(responses) or not prompts:
        raise ValueError("prompts and responses must be non-empty and of the same length")
    seqs = encode_pairs(model, prompts, responses, max_response_tokens)
    direction = None if vector is None else vector.direction.detach().float()
    layer = 0 if vector is None else check_layers(model, vector.layer)[0]
    with torch.inference_mode(False), torch.no_grad():
        return _batched_logprobs(model, seqs, direction, layer, batch_size, alpha).cpu()


def encode_pairs(
    model: TransformerBridge,
    prompts: Sequence[str],
    responses: Sequence[str],
    max_response_tokens: int | None = None,
) -> Encoded:
    """Tokenise prompt (with BOS) and response (without), concatenated, per pair.

    A pair longer than the model's context (``n_ctx``) is cut to it: the response loses
    its end; a prompt of ``n_ctx`` tokens or more keeps its first ``n_ctx - 1`` and one
    response token. One warning gives the count.

    >>> from interp_steer import load_model
    >>> [(ids.tolist(), k) for ids, k in encode_pairs(load_model("tiny"), ["a"], ["bc"])]
    [([2, 68, 69, 70], 2)]
    """
    out, cut = _encode(model, prompts, responses, max_response_tokens)
    if cut:
        warn_cut("BiPO", len(cut), len(out), int(model.cfg.n_ctx), "prompt+response pairs")
    return out


def _encode(
    model: TransformerBridge,
    prompts: Sequence[str],
    responses: Sequence[str],
    max_response_tokens: int | None,
) -> tuple[Encoded, set[int]]:
    """:func:`encode_pairs` without the warning: the pairs and the indices of those cut."""
    n_ctx = getattr(model.cfg, "n_ctx", None)
    out: Encoded = []
    cut: set[int] = set()
    for i, (prompt, response) in enumerate(zip(prompts, responses, strict=True)):
        q = model.to_tokens(prompt, move_to_device=False, truncate=False)[0]
        r = model.to_tokens(response, prepend_bos=False, move_to_device=False, truncate=False)[0]
        if max_response_tokens is not None:
            r = r[:max_response_tokens]
        if len(q) == 0 or len(r) == 0:
            raise ValueError(f"prompt {prompt!r} or response {response!r} has no tokens")
        if n_ctx and len(q) + len(r) > n_ctx:
            cut.add(i)
            q = q[: n_ctx - 1]
            r = r[: n_ctx - len(q)]
        out.append((torch.cat([q, r]), len(r)))
    return out, cut


def sequence_logprobs(
    model: TransformerBridge,
    batch: Encoded,
    direction: Direction | None,
    layer: int,
    sign: float = 1.0,
) -> Float[Tensor, " batch"]:
    """Summed response log-probs of encoded pairs, with ``sign * direction`` at ``layer``.

    Keeps the autograd graph to ``direction`` (the hook adds ``sign * v.to(resid)``); only
    the last ``max(response) + 1`` positions are unembedded (``logits_to_keep``), so the
    large vocabulary projection is skipped for prompt tokens.
    """
    ids, mask = left_pad(model, [s.tolist() for s, _ in batch])
    n_resp = torch.tensor([k for _, k in batch], device=ids.device)
    k = int(n_resp.max())
    hooks = []
    if direction is not None:
        keep = mask.unsqueeze(-1)

        def add(resid: Residual, hook: Any) -> Residual:
            return resid + sign * keep.to(resid) * direction.to(resid)

        hooks.append((HOOK_TEMPLATE.format(layer=layer), add))
    extra: dict[str, Any] = {"logits_to_keep": k + 1} if keeps_logits(model) else {}
    with model.hooks(fwd_hooks=hooks):
        logits = model.forward(ids, attention_mask=mask.long(), **extra)
    logp = torch.log_softmax(logits[:, -(k + 1) : -1].float(), dim=-1)
    tokens = logp.gather(-1, ids[:, -k:].unsqueeze(-1)).squeeze(-1)
    in_response = torch.arange(k, device=ids.device) >= (k - n_resp).unsqueeze(1)
    return (tokens * in_response).sum(1)


def _batched_logprobs(
    model: TransformerBridge,
    seqs: Encoded,
    direction: Tensor | None,
    layer: int,
    batch_size: int,
    sign: float = 1.0,
) -> Tensor:
    parts = [
        sequence_logprobs(model, seqs[i : i + batch_size], direction, layer, sign)
        for i in range(0, len(seqs), batch_size)
    ]
    return torch.cat(parts)


def _cosine(step: int, warmup: int, total: int) -> float:
    """Transformers' cosine schedule with linear warm-up, as a multiplier of ``lr``."""
    if step < warmup:
        return step / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


def _diverged(step: int, losses: list[float], what: str) -> None:
    last = f"{losses[-1]:.6g}" if losses else "none (diverged at the first step)"
    raise ValueError(
        f"BiPO diverged: the {what} became NaN/inf at step {step}; last finite loss: {last}. "
        "Lower lr or beta."
    )


def _check_hyper(
    beta: float,
    lr: float,
    weight_decay: float,
    warmup_steps: int,
    epochs: int,
    batch_size: int,
    max_response_tokens: int | None,
) -> None:
    for name, value in (("beta", beta), ("lr", lr)):
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a positive finite number, got {value}")
    if not math.isfinite(weight_decay) or weight_decay < 0:
        raise ValueError(f"weight_decay must be non-negative, got {weight_decay}")
    if warmup_steps < 0 or epochs < 1 or batch_size < 1:
        raise ValueError("warmup_steps must be >= 0, epochs and batch_size >= 1")
    if max_response_tokens is not None and max_response_tokens < 1:
        raise ValueError(f"max_response_tokens must be positive, got {max_response_tokens}")
