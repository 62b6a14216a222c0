"""The paper's SFT baseline: a LoRA fine-tune (peft) on the pairs BiPO trains on.

The paper (arXiv 2505.12584, §7) compares its steering vectors with supervised
fine-tuning on the same data. :func:`fit_lora` trains that baseline: the pairs are
BiPO's (:func:`~interp_steer.fitting.bipo.preference_texts` and
:func:`~interp_steer.fitting.bipo.encode_preference`, the same tokens, EOS and
truncation), and the loss is the mean token negative log-likelihood of the desired
response ``r_T`` given the prompt ``q`` (response tokens only; prompt tokens are
masked). With the default ``pairing="copy"``, ``q`` is the target-language text followed
by "Repeat the text above:" and ``r_T`` its English version, so the fine-tune is taught
what BiPO's vector is: answer a target-language prompt as the English one.

The user's model is never touched: peft wraps a fresh float32 copy of the Hugging Face
model under the bridge (the bridge wraps the original modules, so the copy is rebuilt
from the config and the weights are copied in), only its LoRA factors get gradients, and
the factors are read out into a :class:`~interp_steer.steering.LoraAdapter` whose
parameter names are the original model's. Apply it with
:func:`~interp_steer.steering.apply_lora`.
"""

import copy
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import peft
import torch
import torch.nn.functional as F
import transformers
from peft import LoraConfig, get_peft_model
from peft.tuners.lora import LoraLayer
from torch import Tensor
from transformer_lens.model_bridge import TransformerBridge
from transformers import (
    AutoModelForCausalLM,
    get_cosine_schedule_with_warmup,
    get_linear_schedule_with_warmup,
)
from transformers.initialization import no_init_weights

from interp_steer.activations.cache import model_fingerprint
from interp_steer.constants import check_choice
from interp_steer.data.parallel import CorpusLike, ParallelCorpus
from interp_steer.fitting.bipo import (
    Pairing,
    encode_preference,
    preference_texts,
    prompt_template_for,
    sequence_logprobs,
)
from interp_steer.models.adapters import named_weights, weights_fingerprint
from interp_steer.models.batching import warn_cut
from interp_steer.models.loading import model_name
from interp_steer.progress import progress_bar
from interp_steer.steering.lora import LoraAdapter
from interp_steer.storage import TrainingCheckpoint

DEFAULT_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")
"""The attention projections, the standard LoRA targets."""

Schedule = Literal["cosine", "linear"]
"""The learning-rate decay after the linear warm-up (transformers' schedules)."""
_SCHEDULES: tuple[Schedule, ...] = ("cosine", "linear")
_PAIRINGS: tuple[Pairing, ...] = ("copy", "continuation")

Sequences = list[tuple[Tensor, int]]  # (prompt + response ids, number of prompt tokens)


def fit_lora(
    model: TransformerBridge,
    corpus: CorpusLike,
    *,
    rank: int = 8,
    alpha: float = 16.0,
    target_modules: Sequence[str] = DEFAULT_TARGET_MODULES,
    dropout: float = 0.05,
    lr: float = 2e-4,
    weight_decay: float = 0.0,
    epochs: int = 1,
    batch_size: int = 1,
    warmup_steps: int = 0,
    schedule: Schedule = "cosine",
    max_grad_norm: float | None = 1.0,
    seed: int = 0,
    pairing: Pairing = "copy",
    prompt_template: str | None = None,
    continuation_tokens: int = 48,
    max_response_tokens: int | None = 128,
    append_eos: bool = True,
    n_eval: int = 16,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 50,
    progress: bool | None = None,
) -> LoraAdapter:
    """Fine-tune LoRA factors on BiPO's pairs: the SFT baseline of the paper's §7.

    The settings: the paper's §7 hyper-parameters were not retrievable here (its stored
    copy holds only the abstract and introduction; ``docs/results.md`` records "epochs
    over all MSVAMP pairs of every language"), so the defaults are the standard LoRA
    recipe scaled to a 270M model: rank 8, ``alpha`` 16 (scaling 2), the four attention
    projections, dropout 0.05, AdamW at ``lr=2e-4`` without weight decay, gradients
    clipped to norm 1, a cosine decay, batch size 1 and one epoch over the pairs, as
    BiPO's own settings (batch 1, one epoch over the same pairs), so that one SFT step and
    one BiPO step see the same data.

    Args:
        model: The bridge. Not modified: a float32 copy of its Hugging Face model is
            trained (on the model's device).
        corpus: Pairs in any form :meth:`~interp_steer.data.ParallelCorpus.coerce` reads.
        rank: LoRA's ``r``.
        alpha: LoRA's ``alpha`` (the delta is ``alpha / rank * B @ A``).
        target_modules: Names of the Linear modules to adapt (``"q_proj"``, ``"up_proj"``).
        dropout: LoRA dropout on the adapted modules' inputs during training.
        lr: Peak AdamW learning rate.
        weight_decay: AdamW decoupled weight decay.
        epochs: Passes over the pairs (shuffled with ``seed``).
        batch_size: Pairs per step (right-padded; the loss is the mean over the batch's
            response tokens).
        warmup_steps: Linear warm-up steps from 0 before the decay.
        schedule: ``"cosine"`` or ``"linear"`` decay to 0 at the last step.
        max_grad_norm: Clip the LoRA gradients to this total norm (``None``: never).
        seed: Seeds the factors' initialisation, the dropout and the shuffling: the same
            seed gives a bit-identical adapter (on the CPU).
        pairing: How a pair becomes ``(q, r_T)``: BiPO's ``"copy"`` or ``"continuation"``.
        prompt_template: Builds the query ``q`` from a text (``{text}``); ``None``: the
            pairing's default (:func:`~interp_steer.fitting.prompt_template_for`).
        continuation_tokens: New tokens per greedy continuation (``"continuation"``).
        max_response_tokens: Truncate responses to this many tokens (``None``: never).
        append_eos: End each response with the tokenizer's EOS token (before truncation).
        n_eval: Pairs on which the loss is measured before and after training (0: skip).
        checkpoint_dir: Save the training state there every ``checkpoint_every`` steps
            (:class:`~interp_steer.storage.TrainingCheckpoint`), resume from it when a run
            with the same settings finds one, and delete it when training ends; on the
            same machine the resumed adapter is bit-identical to an uninterrupted run's
            (on the CPU).
            ``None``: no checkpoints.
        checkpoint_every: Steps between two checkpoints.
        progress: Show a progress bar; ``None`` follows
            :func:`~interp_steer.progress.set_progress`.

    Returns:
        The adapter. Its ``meta``: ``method`` (``"sft_lora"``), ``loss`` (what the loss
        is), ``hyper`` (every argument above), ``data`` (``n_pairs``, ``fingerprint`` of
        the pairs, ``corpus`` name, languages, ``mapping``, ``n_truncated``),
        ``metrics`` (``loss_curve`` and ``grad_norm_curve`` per step, ``steps``,
        ``final_loss``, ``lr_peak_reached``, ``n_clipped``, ``trainable_params``,
        ``loss_before``/``loss_after`` on ``n_eval`` training pairs, ``resumed_at``: the step
        a checkpoint resumed training from, or None), ``model_weights``
        (:func:`~interp_steer.activations.model_fingerprint`) and ``versions`` (peft,
        transformers, torch).

    Raises:
        ValueError: an empty or misaligned corpus, a bad hyper-parameter or option, a
            target module the model lacks, or a NaN/inf loss (the message names the step).

    >>> from interp_steer import load_model
    >>> model = load_model("tiny")
    >>> pairs = [("The cat.", "Die Katze."), ("Hello.", "Hallo.")]
    >>> adapter = fit_lora(model, pairs, rank=2, target_modules=("q_proj", "v_proj"))
    >>> adapter.rank, adapter.scaling, len(adapter.names), adapter.meta["metrics"]["steps"]
    (2, 8.0, 8, 2)
    >>> adapter.names[0]
    'model.layers.0.self_attn.q_proj.weight'
    """
    pairs = ParallelCorpus.coerce(corpus)
    english, target = list(pairs.english), list(pairs.target)
    check_choice("pairing", pairing, _PAIRINGS)
    check_choice("schedule", schedule, _SCHEDULES)
    prompt_template = prompt_template_for(pairing, prompt_template)  # used and recorded
    targets = tuple(target_modules)
    _check_hyper(rank, alpha, targets, dropout, lr, weight_decay, epochs, batch_size,
                 warmup_steps, max_grad_norm, max_response_tokens, n_eval)  # fmt: skip
    prompts, chosen, rejected, mapping = preference_texts(
        model, english, target, pairing, prompt_template, continuation_tokens, progress
    )
    encoded, cut = encode_preference(
        model, prompts, chosen, rejected, max_response_tokens, append_eos
    )
    if cut:
        warn_cut("SFT", len(cut), len(encoded), int(model.cfg.n_ctx), "prompt+response pairs")
    seqs: Sequences = [(torch.cat([p.prompt, p.chosen]), len(p.prompt)) for p in encoded]
    n = len(seqs)
    total = math.ceil(n / batch_size) * epochs
    device = torch.device(model.cfg.device or "cpu")
    pad = model.tokenizer.pad_token_id
    pad = 0 if pad is None else int(pad)
    hyper = {
        "rank": rank, "alpha": float(alpha), "target_modules": list(targets),
        "dropout": dropout, "lr": lr, "weight_decay": weight_decay, "epochs": epochs,
        "batch_size": batch_size, "warmup_steps": warmup_steps, "schedule": schedule,
        "max_grad_norm": max_grad_norm, "seed": seed, "pairing": pairing,
        "prompt_template": prompt_template,
        "continuation_tokens": continuation_tokens if pairing == "continuation" else None,
        "max_response_tokens": max_response_tokens, "append_eos": append_eos,
    }  # fmt: skip

    fork = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork), torch.inference_mode(False):
        torch.manual_seed(seed)
        trained = _peft_copy(model, targets, rank, float(alpha), dropout, device)
        eval_rows = list(range(min(n, n_eval)))
        loss_before = _eval_loss(trained, seqs, eval_rows, batch_size, pad, device)
        params = [p for p in trained.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        make = get_cosine_schedule_with_warmup if schedule == "cosine" else (
            get_linear_schedule_with_warmup)  # fmt: skip
        sched = make(opt, warmup_steps, total)
        gen = torch.Generator().manual_seed(seed)
        losses: list[float] = []
        grad_norms: list[float] = []
        lr_peak, n_clipped, done = 0.0, 0, 0
        per_epoch = math.ceil(n / batch_size)
        perm: list[int] = []
        named = {name: p for name, p in trained.named_parameters() if p.requires_grad}
        ckpt, resumed_at = None, None
        if checkpoint_dir is not None:
            ckpt = TrainingCheckpoint(
                Path(checkpoint_dir),
                "sft-lora",
                {"model": model_fingerprint(model), "data": pairs.fingerprint, "hyper": hyper},
                every=checkpoint_every,
            )
            state = ckpt.load()
            if state is not None:  # resume exactly where the last save left off
                with torch.no_grad():
                    for name, param in named.items():
                        param.copy_(state["params"][name])
                opt.load_state_dict(state["optimizer"])
                sched.load_state_dict(state["scheduler"])
                gen.set_state(state["generator"])
                torch.set_rng_state(state["rng"])  # the dropout masks' stream
                if device.type == "cuda" and state["cuda_rng"] is not None:  # saved on a GPU
                    torch.cuda.set_rng_state(state["cuda_rng"], device)
                losses, grad_norms = list(state["losses"]), list(state["grad_norms"])
                lr_peak, n_clipped = state["lr_peak"], state["n_clipped"]
                done, perm = state["step"], list(state["perm"])
                resumed_at = done
        trained.train()
        bar = progress_bar(total=total, desc="SFT (LoRA)", unit="step", progress=progress)
        with bar, torch.enable_grad():
            bar.update(done)
            while done < total:
                k = done % per_epoch
                if k == 0:  # a new epoch: a new order
                    perm = torch.randperm(n, generator=gen).tolist()
                rows = perm[k * batch_size : (k + 1) * batch_size]
                loss = _batch_loss(trained, seqs, rows, pad, device)
                if not bool(torch.isfinite(loss)):
                    _diverged(len(losses), losses)
                loss.backward()
                norm = torch.nn.utils.clip_grad_norm_(
                    params, max_grad_norm if max_grad_norm is not None else math.inf
                )
                if max_grad_norm is not None and float(norm) > max_grad_norm:
                    n_clipped += 1
                lr_peak = max(lr_peak, opt.param_groups[0]["lr"])
                opt.step()
                sched.step()
                opt.zero_grad(set_to_none=True)
                losses.append(float(loss.detach()))
                grad_norms.append(float(norm))
                done += 1
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
                if ckpt is not None and ckpt.due(done, total=total):
                    ckpt.save({
                        "step": done, "perm": perm,
                        "params": {name: p.detach().cpu() for name, p in named.items()},
                        "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                        "generator": gen.get_state(), "rng": torch.get_rng_state(),
                        "cuda_rng": torch.cuda.get_rng_state(device)
                        if device.type == "cuda" else None,
                        "losses": losses, "grad_norms": grad_norms, "lr_peak": lr_peak,
                        "n_clipped": n_clipped,
                    })  # fmt: skip
        trained.eval()
        loss_after = _eval_loss(trained, seqs, eval_rows, batch_size, pad, device)
        lora_a, lora_b = _factors(trained, rank, float(alpha))
        trainable = sum(p.numel() for p in params)
        del trained, opt, params, named
    if ckpt is not None:
        ckpt.remove()  # trained: the adapter is the result now

    metrics: dict[str, Any] = {
        "loss_curve": losses,
        "grad_norm_curve": grad_norms,
        "steps": len(losses),
        "final_loss": sum(losses[-10:]) / len(losses[-10:]),
        "lr_peak_reached": lr_peak,
        "n_clipped": n_clipped,
        "trainable_params": trainable,
        "n_eval": len(eval_rows),
        "loss_before": loss_before,
        "loss_after": loss_after,
        "resumed_at": resumed_at,
    }
    data = {
        "corpus": pairs.name,
        "source_lang": pairs.source_lang,
        "target_lang": pairs.target_lang,
        "n_pairs": n,
        "fingerprint": pairs.fingerprint,
        "mapping": mapping,
        "n_truncated": len(cut),
    }
    meta = {
        "method": "sft_lora",
        "loss": "mean token NLL of r_T given q (response tokens only)",
        "hyper": hyper,
        "data": data,
        "metrics": metrics,
        "model_weights": model_fingerprint(model),
        "versions": {
            "peft": peft.__version__,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
        },
    }
    return LoraAdapter(
        lora_a,
        lora_b,
        rank=rank,
        alpha=float(alpha),
        target_modules=targets,
        model_name=model_name(model),
        model_fingerprint=weights_fingerprint(model, list(lora_a)),
        meta=meta,
    )


def sft_loss(
    model: TransformerBridge,
    corpus: CorpusLike,
    *,
    pairing: Pairing = "copy",
    prompt_template: str | None = None,
    continuation_tokens: int = 48,
    max_response_tokens: int | None = 128,
    append_eos: bool = True,
    batch_size: int = 8,
) -> float:
    """The SFT loss of :func:`fit_lora` on ``corpus``, computed with the bridge as it is now.

    The mean token negative log-likelihood of every pair's desired response given its
    prompt (response tokens only), through ``model`` itself: inside
    :func:`~interp_steer.steering.apply_lora` it is the adapted model's loss.

    >>> from interp_steer import load_model
    >>> round(sft_loss(load_model("tiny"), [("Hi.", "Hallo.")]), 2) > 0
    True
    """
    pairs = ParallelCorpus.coerce(corpus)
    check_choice("pairing", pairing, _PAIRINGS)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    prompts, chosen, rejected, _ = preference_texts(
        model, list(pairs.english), list(pairs.target), pairing, prompt_template,
        continuation_tokens, False,
    )  # fmt: skip
    encoded, _ = encode_preference(
        model, prompts, chosen, rejected, max_response_tokens, append_eos
    )
    batch = [(torch.cat([p.prompt, p.chosen]), len(p.chosen)) for p in encoded]
    total = 0.0
    with torch.inference_mode(False), torch.no_grad():
        for start in range(0, len(batch), batch_size):
            total += float(
                sequence_logprobs(model, batch[start : start + batch_size], None, 0).sum()
            )
    return -total / sum(k for _, k in batch)


def _peft_copy(
    model: TransformerBridge,
    targets: tuple[str, ...],
    rank: int,
    alpha: float,
    dropout: float,
    device: torch.device,
) -> Any:
    """A plain float32 copy of the bridge's HF model, wrapped by peft with fresh LoRA factors."""
    hf: Any = model.original_model
    weights = named_weights(model)
    with no_init_weights():
        plain = AutoModelForCausalLM.from_config(copy.deepcopy(hf.config), dtype=torch.float32)
    plain.to(device)
    missing = [name for name, _ in plain.named_parameters() if name not in weights]
    if missing:
        raise ValueError(
            "the model under the bridge is not a plain Hugging Face causal LM that can be "
            f"rebuilt from its config (no weights for {missing[:3]})"
        )
    with torch.no_grad():
        for name, param in plain.named_parameters():
            param.copy_(weights[name].detach())
    linear = {
        name.rsplit(".", 1)[-1]
        for name, module in plain.named_modules()
        if isinstance(module, torch.nn.Linear) and name != "lm_head"
    }
    unknown = [t for t in targets if t not in linear]
    if unknown:
        raise ValueError(
            f"target_modules {unknown} are not Linear modules of the model; it has "
            f"{', '.join(sorted(linear))}"
        )
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,  # type: ignore[arg-type]  # peft annotates int; scaling = alpha / r
        target_modules=list(targets),
        lora_dropout=dropout,
        bias="none",
        task_type="CAUSAL_LM",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # transformers' deprecations in peft
        return get_peft_model(plain, config)


def _pad(
    seqs: Sequences, rows: list[int], pad: int, device: torch.device
) -> tuple[Tensor, Tensor, Tensor]:
    """Right-padded ``(ids, attention mask, labels)``; labels are -100 off the response."""
    width = max(len(seqs[i][0]) for i in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for j, i in enumerate(rows):
        seq, n_prompt = seqs[i]
        ids[j, : len(seq)] = seq
        mask[j, : len(seq)] = 1
        labels[j, n_prompt : len(seq)] = seq[n_prompt:]
    return ids.to(device), mask.to(device), labels.to(device)


def _token_nll(logits: Tensor, labels: Tensor) -> tuple[Tensor, int]:
    """Summed NLL of the labelled tokens (position ``t`` predicts label ``t + 1``), and count."""
    target = labels[:, 1:]
    logp = F.log_softmax(logits[:, :-1].float(), dim=-1)
    keep = target != -100
    picked = logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return -(picked * keep).sum(), int(keep.sum())


def _batch_loss(trained: Any, seqs: Sequences, rows: list[int], pad: int, device: Any) -> Tensor:
    ids, mask, labels = _pad(seqs, rows, pad, device)
    logits = trained(input_ids=ids, attention_mask=mask).logits
    nll, count = _token_nll(logits, labels)
    return nll / count


def _eval_loss(
    trained: Any, seqs: Sequences, rows: list[int], batch_size: int, pad: int, device: Any
) -> float | None:
    """Mean token NLL over ``rows`` (no dropout, no gradients); None for no rows."""
    if not rows:
        return None
    was_training = trained.training
    trained.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            ids, mask, labels = _pad(seqs, rows[start : start + batch_size], pad, device)
            nll, k = _token_nll(trained(input_ids=ids, attention_mask=mask).logits, labels)
            total, count = total + float(nll), count + k
    trained.train(was_training)
    return total / count


def _factors(trained: Any, rank: int, alpha: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """The LoRA factors by the adapted weight's plain HF name, as float32 numpy arrays."""
    lora_a, lora_b = {}, {}
    for name, module in trained.base_model.model.named_modules():
        if not isinstance(module, LoraLayer) or "default" not in module.lora_A:
            continue
        if not math.isclose(module.scaling["default"], alpha / rank):
            raise RuntimeError(f"peft scaled {name} by {module.scaling['default']}, not alpha/r")
        layer: Any = module
        lora_a[f"{name}.weight"] = layer.lora_A["default"].weight.detach().float().cpu().numpy()
        lora_b[f"{name}.weight"] = layer.lora_B["default"].weight.detach().float().cpu().numpy()
    return lora_a, lora_b


def _diverged(step: int, losses: list[float]) -> None:
    last = f"{losses[-1]:.6g}" if losses else "none (diverged at the first step)"
    raise ValueError(
        f"SFT diverged: the loss became NaN/inf at step {step}; last finite loss: {last}. Lower lr."
    )


def _check_hyper(
    rank: int,
    alpha: float,
    targets: tuple[str, ...],
    dropout: float,
    lr: float,
    weight_decay: float,
    epochs: int,
    batch_size: int,
    warmup_steps: int,
    max_grad_norm: float | None,
    max_response_tokens: int | None,
    n_eval: int,
) -> None:
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ValueError(f"rank must be a positive int, got {rank!r}")
    for name, value in (("alpha", alpha), ("lr", lr)):
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a positive finite number, got {value}")
    if not targets or not all(isinstance(t, str) and t for t in targets):
        raise ValueError(f"target_modules must be non-empty module names, got {targets!r}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    if not math.isfinite(weight_decay) or weight_decay < 0:
        raise ValueError(f"weight_decay must be non-negative, got {weight_decay}")
    if warmup_steps < 0 or epochs < 1 or batch_size < 1 or n_eval < 0:
        raise ValueError("warmup_steps and n_eval must be >= 0, epochs and batch_size >= 1")
    if max_grad_norm is not None and not (math.isfinite(max_grad_norm) and max_grad_norm > 0):
        raise ValueError(
            f"max_grad_norm must be a positive finite number or None, got {max_grad_norm}"
        )
    if max_response_tokens is not None and max_response_tokens < 1:
        raise ValueError(f"max_response_tokens must be positive, got {max_response_tokens}")


__all__ = ["DEFAULT_TARGET_MODULES", "Schedule", "fit_lora", "sft_loss"]
