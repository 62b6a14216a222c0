"""Bi-directional Preference Optimization of a steering vector (BiPO; Cao et al. 2024).

BiPO (arXiv 2406.00045) trains one vector ``v`` added at every position of layer ``L``.
With ``d`` drawn uniformly from {-1, +1} at each step, the loss of a pair is::

    -log sigmoid( d*beta*[log pi(r_T | A_L(q) + d*v) - log pi(r_T | A_L(q))]
                - d*beta*[log pi(r_O | A_L(q) + d*v) - log pi(r_O | A_L(q))] )

so ``+v`` makes the desired response ``r_T`` more likely relative to the other response
``r_O``, and ``-v`` the reverse. Log-probabilities are sums over response tokens only
(each response ends with the tokenizer's EOS token, as in the reference trainer); the
reference terms are computed once, without gradients, before training.

Two multilingual pairings (``pairing``), the same for every parallel corpus (MSVAMP, MGSM,
Tatoeba, FLORES, XCOPA):

* ``"copy"`` (default): ``q`` is ``prompt_template.format(text=target[i])``, the
  target-language text followed by a neutral "repeat" instruction; ``r_T`` (desired) is
  ``english[i]`` and ``r_O`` is ``target[i]`` itself. For MSVAMP: ``q`` = the German
  problem + "Repeat the text above:", ``r_T`` = the English problem, ``r_O`` = the German
  problem. Without steering the model prefers to repeat in the prompt's language.
* ``"continuation"``: ``q`` is the target-language query, ``r_O`` the model's own
  greedy continuation of it and ``r_T`` its greedy continuation of the English query: the
  vector learns to make the model respond to a target-language query as it would to the
  English one. The query is the text itself, or ``prompt_template`` around it (a task's
  prompt, such as a question followed by "Answer:", whose continuations are then the
  model's answers). Continuations are generated once, before training
  (``continuation_tokens`` new tokens at most).

The step (``step="fast"``, exact): the residual after block ``L`` does not depend on
``v``, so it is computed once per pair without gradients (the same pass gives the
reference log-probs); prompt, ``r_T`` and ``r_O`` share one sequence ``[q, r_T, r_O]``
whose attention mask hides ``r_T`` from ``r_O`` and whose positions restart at ``len(q)``
for ``r_O`` (so the prompt passes through the blocks once); each step runs blocks
``L+1..`` only, and the token log-probs come from a fused log-softmax on the response
rows alone. It gives today's reference step's loss and gradient to float32 rounding
(``step="reference"``: each response its own sequence through the whole model, ``v``
added by a hook) at about half its cost per step. The trainable path (``h_L + d*v`` and
blocks ``L+1..``) runs in float32 whatever the model's dtype: the tail blocks are cast to
float32 during training and cast back after (exactly: bfloat16 and float16 values are
float32 values), so a ``v`` far below a bfloat16 residual's resolution still changes the
loss. The fast step is implemented, and tested equal to the reference step, for the
decoder families of the paper's models and ours: Gemma-3 (``tiny``, ``gemma-3-270m``),
Llama, Mistral (sliding window), Qwen2 and Cohere (Aya; its ``logit_scale``); other
architectures fall back to the reference step (``metrics["step"]`` says which ran).

Only ``v`` is trained: the parameters' ``requires_grad`` flags are switched off during
training and restored in a ``finally`` block, gradients are taken with
``torch.autograd.grad`` on ``v`` alone, so no parameter ever gets a ``.grad``.
"""

import inspect
import math
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

from interp_steer.activations.cache import model_fingerprint
from interp_steer.activations.collect import collect_activations
from interp_steer.constants import check_choice
from interp_steer.data.parallel import PairedTexts, check_pairs
from interp_steer.models.backend import Model, hf_model
from interp_steer.models.batching import generate_texts, left_pad, warn_cut
from interp_steer.models.generation import keeps_logits
from interp_steer.models.layers import HOOK_TEMPLATE, check_layers
from interp_steer.progress import progress_bar
from interp_steer.steering.vectors import SteeringVector
from interp_steer.storage import TrainingCheckpoint, texts_fingerprint
from interp_steer.types import Direction, Residual

DEFAULT_PROMPT_TEMPLATE = "{text}\n\nRepeat the text above:\n"
"""The BiPO prompt around a target-language text; ``{text}`` is replaced by it."""

BipoStep = Literal["fast", "reference"]
"""How a BiPO step is computed: ``"fast"`` (exact, about twice as fast) or ``"reference"``."""
_STEPS: tuple[BipoStep, ...] = ("fast", "reference")

LrScale = Literal["coord", "resid", "none"]
"""``"coord"``: AdamW trains ``w = v / sigma`` (``sigma`` each coordinate's spread) at rate
``lr``; ``"resid"``: it trains ``v`` at ``lr * resid_norm``; ``"none"``: at ``lr`` itself."""
_LR_SCALES: tuple[LrScale, ...] = ("coord", "resid", "none")

Pairing = Literal["copy", "continuation"]
"""How a parallel pair becomes a BiPO preference pair (see the module docstring)."""
_PAIRINGS: tuple[Pairing, ...] = ("copy", "continuation")

_DEFAULT_LR: dict[str, float] = {"coord": 1e-3, "resid": 1e-3, "none": 5e-4}
"""The default ``lr`` per ``lr_scale``: ``1e-3`` of each coordinate's spread (compared on
held-out pairs: the lowest mean KL relative to unsteered among the rates tried that keep
sw, fr and de below unsteered, :func:`bipo_direction`), ``1e-3`` of the residual norm
(chosen on held-out pairs), or the paper's 5e-4."""

_FAST_ARCHITECTURES = (  # the fast step is tested equal to the reference step on these
    "Gemma3ForCausalLM",
    "LlamaForCausalLM",
    "MistralForCausalLM",
    "Qwen2ForCausalLM",
    "CohereForCausalLM",
)

Encoded = list[tuple[Tensor, int]]  # (prompt + response token ids, number of response tokens)


@dataclass(frozen=True)
class _Pair:
    """One preference pair as token ids: prompt (with BOS), chosen ``r_T``, rejected ``r_O``."""

    prompt: Tensor
    chosen: Tensor
    rejected: Tensor


def resolve_bipo_hyper(hyper: Mapping[str, Any]) -> dict[str, Any]:
    """``hyper`` with ``lr=None`` and ``prompt_template=None`` replaced by what they stand for.

    The default ``lr`` depends on ``lr_scale`` and the default template on ``pairing``
    (:func:`prompt_template_for`); a vector records the values it was trained with, so one
    trained under another default is never taken for one trained under this.

    >>> resolve_bipo_hyper({"lr": None, "lr_scale": "none", "beta": 0.1})
    {'lr': 0.0005, 'lr_scale': 'none', 'beta': 0.1}
    >>> resolve_bipo_hyper({"pairing": "continuation", "prompt_template": None})
    {'pairing': 'continuation', 'prompt_template': '{text}', 'lr': 0.001}
    """
    lr_scale = hyper.get("lr_scale", "coord")
    check_choice("lr_scale", lr_scale, _LR_SCALES)
    lr = hyper.get("lr")
    out = {**hyper, "lr": _DEFAULT_LR[lr_scale] if lr is None else lr}
    if "prompt_template" in hyper:
        pairing = hyper.get("pairing", "copy")
        out["prompt_template"] = prompt_template_for(pairing, hyper["prompt_template"])
    return out


def bipo_direction(
    model: Model,
    corpus: PairedTexts,
    *,
    layer: int,
    beta: float = 0.1,
    lr: float | None = None,
    lr_scale: LrScale = "coord",
    weight_decay: float = 0.05,
    warmup_steps: int = 100,
    epochs: int = 1,
    batch_size: int = 1,
    max_grad_norm: float | None = None,
    seed: int = 0,
    pairing: Pairing = "copy",
    prompt_template: str | None = None,
    continuation_tokens: int = 48,
    append_eos: bool = True,
    max_response_tokens: int | None = 128,
    step: BipoStep = "fast",
    n_eval: int = 16,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 50,
    progress: bool | None = None,
) -> tuple[Direction, dict[str, Any]]:
    """Train a BiPO steering vector for ``layer`` on a parallel corpus.

    Trained as the paper trains it: ``beta=0.1``, AdamW with weight decay 0.05, a cosine
    schedule with 100 warm-up steps (as transformers' ``get_cosine_schedule_with_warmup``:
    the rate grows linearly from 0), batch size 1, one epoch over all pairs, EOS appended
    to each response. With fewer steps than ``warmup_steps`` the rate never reaches its
    peak; ``metrics["lr_peak_reached"]`` records how far it got.

    The learning rate is scale-aware per coordinate by default (``lr_scale="coord"``):
    AdamW trains ``w = v / spread`` at ``lr``, where ``spread`` is each coordinate's
    standard deviation over the training prompts' tokens at ``layer`` (BOS excluded), so
    coordinate ``i`` moves by about ``lr * spread[i]`` per step and one ``lr`` means the
    same on every model, layer and coordinate. A residual's coordinates differ in scale by
    orders of magnitude (Gemma-3-270M at layer 4: median spread 4.4, largest 374, and one
    coordinate with a mean of ≈2.2k that makes up most of the residual norm ``‖h‖``). The
    default ``lr=1e-3`` was compared on held-out pairs (``repro``'s ``bipo_default_lr``
    stage: sw, fr and de, ``lr`` 3e-4, 1e-3 and 3e-3): 3e-3 has the lowest mean KL relative
    to unsteered but leaves fr further from English than unsteered, and 1e-3 is the
    largest rate tried that leaves none of the three so. Two epochs at 1e-3 (the
    ``bipo_default_epochs`` stage) gain as much as 3e-3 in sw and de and again take fr's
    test pairs above unsteered; ``epochs`` stays at the paper's 1. On Gemma-3-270M (400 copy
    pairs, one epoch, the selected layer) it gave vectors of 1.3–2.7% of ``‖h‖`` that
    lowered held-out English-KL below unsteered in all nine languages of the study's
    ``bipo_defaults`` stage (e.g. Spanish, layer 4: 0.101 against 0.132), though not as
    far as ``mean_diff`` at its selected strength in eight of them (Spanish: 0.086).

    ``lr_scale="resid"`` scales by the residual norm alone: AdamW trains ``v`` at
    ``lr * resid_norm`` (``resid_norm`` the mean per-token norm at ``layer`` on the
    training prompts, BOS excluded, as ``fit_vector`` records it), which moves every
    coordinate by the same amount per step, large on the quiet ones. In Spanish at layer
    4 its copy-pairing vector at 0.7% of ``‖h‖`` averages 0.19 spreads per coordinate and
    raises English-KL from 0.102 to 0.182, while the same vector's entries reweighted by the
    spread (same norm) lower it to 0.097; trained this way the default vector was further
    from English than unsteered in five of nine languages. Its default ``1e-3`` is the rate
    the study's selection chose (``repro``'s ``bipo_lr`` stage: Swahili MSVAMP, layer 8,
    128 training pairs, English-KL on 64 held-out pairs of 0.564, 0.521, 0.482, 0.462 and
    0.492 nats for ``lr`` 3e-5, 1e-4, 3e-4, 1e-3 and 3e-3).

    ``lr_scale="none"`` is the paper's literal absolute rate (default ``lr=5e-4``).
    Gemma-3-270M's residual norms are in the thousands (≈2.2k per token at layer 4, 5.8k
    at 8, 13.7k at 12), and Adam moves each coordinate by about its rate per step, so a
    1000-step epoch bounds ``‖v‖ ≤ 6.3`` (≤ 1.4e-3·‖h‖ at layer 8) and BiPO learns nothing
    (Swahili MSVAMP, layer 8: held-out English-KL 1.092 against 1.098 unsteered).

    Args:
        model: The bridge; it is left exactly as it was (no parameter gets a ``.grad``;
            blocks cast to float32 for training are cast back).
        corpus: Pairs with ``english`` and ``target`` texts (e.g. a ``ParallelCorpus``).
        layer: The block whose ``hook_resid_post`` gets ``d * v`` at every real position.
        beta: Preference temperature.
        lr: Peak learning rate, in units of each coordinate's spread with
            ``lr_scale="coord"`` (default ``1e-3``), of ``resid_norm`` with ``"resid"``
            (default ``1e-3``) or absolute with ``"none"`` (default the paper's ``5e-4``).
        lr_scale: ``"coord"``, ``"resid"`` or ``"none"`` (above).
        weight_decay: AdamW decoupled weight decay.
        warmup_steps: Linear warm-up steps before the cosine decay.
        epochs: Passes over the pairs (shuffled with ``seed``).
        batch_size: Pairs per step.
        max_grad_norm: Clip the gradient of the trained vector (``v``, or ``w`` with
            ``lr_scale="coord"``) to this norm before each update (``None``: never).
        seed: Seeds the shuffling and the draws of ``d``; same seed, same vector.
        pairing: ``"copy"`` or ``"continuation"`` (module docstring).
        prompt_template: Builds the query ``q`` from a text (``{text}``); ``None``: the
            pairing's default (:func:`prompt_template_for`). With ``"continuation"`` it
            wraps both texts before they are continued, e.g. a task's prompt.
        continuation_tokens: New tokens per greedy continuation (``pairing="continuation"``).
        append_eos: End each response with the tokenizer's EOS token (before truncation).
        max_response_tokens: Truncate responses to this many tokens (``None``: never).
        step: ``"fast"`` (exact, module docstring) or ``"reference"``.
        n_eval: Pairs on which the margin ``log pi(r_T) - log pi(r_O)`` is measured with
            and without ``+v`` after training (0 to skip).
        checkpoint_dir: Save the training state there every ``checkpoint_every`` steps
            (:class:`~interp_steer.storage.TrainingCheckpoint`: one file per layer and
            settings), resume from it when a run with the same settings finds one, and
            delete it when training ends. On the same machine the resumed run's vector
            and curves are bit-identical to an uninterrupted run's (another machine
            resumes it too, with that machine's float rounding). ``None``: no checkpoints.
        checkpoint_every: Steps between two checkpoints.
        progress: Show progress bars; ``None`` follows
            :func:`~interp_steer.progress.set_progress`.

    Returns:
        ``(v, metrics)``: ``loss_curve`` and ``grad_norm_curve`` (per step), ``steps``,
        ``final_loss``, ``norm``, ``lr`` (the ``lr`` used), ``lr_scale``,
        ``lr_resid_norm`` (the prompts' residual norm), ``lr_effective`` (AdamW's peak
        rate), ``spread_norm`` (the norm of the coordinates' spreads), ``white_rms`` (the
        root mean square of ``v / spread``: its size per coordinate in spreads),
        ``lr_peak_reached``, ``n_clipped`` (steps whose gradient was clipped),
        ``step`` (the step that ran), ``pairing``, ``mapping``, ``append_eos``,
        ``margin_before``/``margin_after``, the prompt template, ``resumed_at`` (the step
        a checkpoint resumed training from, or None), and ``n_truncated``: the
        pairs whose prompt and response together were longer than the model's context and
        were cut to it (one warning gives the count; see :func:`encode_pairs`).

    Raises:
        ValueError: an empty corpus, sides of different lengths, a layer out of range,
            a bad hyper-parameter or option, or a NaN/inf loss or vector during training
            (the message names the step, counted from 0, and the last finite loss).

    >>> from interp_steer import load_model
    >>> from types import SimpleNamespace
    >>> model = load_model("tiny")
    >>> pairs = SimpleNamespace(english=("The cat.", "Hello."), target=("Die Katze.", "Hallo."))
    >>> v, metrics = bipo_direction(model, pairs, layer=1, warmup_steps=0)
    >>> v.shape, metrics["steps"], round(metrics["loss_curve"][0], 4), metrics["step"]
    (torch.Size([64]), 2, 0.6931, 'fast')
    >>> metrics["lr_scale"], metrics["lr_effective"] == metrics["lr"]
    ('coord', True)
    """
    english, target = check_pairs(corpus)
    layer = check_layers(model, layer)[0]
    check_choice("lr_scale", lr_scale, _LR_SCALES)
    check_choice("pairing", pairing, _PAIRINGS)
    check_choice("step", step, _STEPS)
    prompt_template = prompt_template_for(pairing, prompt_template)  # used and recorded
    lr = resolve_bipo_hyper({"lr": lr, "lr_scale": lr_scale})["lr"]
    _check_hyper(beta, lr, weight_decay, warmup_steps, epochs, batch_size, max_response_tokens)
    if max_grad_norm is not None and not (math.isfinite(max_grad_norm) and max_grad_norm > 0):
        raise ValueError(
            f"max_grad_norm must be a positive finite number or None, got {max_grad_norm}"
        )
    prompts, chosen, rejected, mapping = preference_texts(
        model, english, target, pairing, prompt_template, continuation_tokens, progress
    )
    pairs, cut = encode_preference(
        model, prompts, chosen, rejected, max_response_tokens, append_eos
    )
    if cut:
        warn_cut("BiPO", len(cut), len(pairs), int(model.cfg.n_ctx), "prompt+response pairs")
    n, device = len(pairs), model.cfg.device or "cpu"
    step_used: BipoStep = step if step == "reference" or fast_step_supported(model) else "reference"
    resid_norm, spread = _prompt_scales(model, prompts, layer)
    lr_effective = lr * resid_norm if lr_scale == "resid" else lr
    scale = spread.to(device) if lr_scale == "coord" else None  # v = scale * w
    if not (math.isfinite(lr_effective) and lr_effective > 0):
        raise ValueError(f"the effective learning rate is {lr_effective} (resid_norm {resid_norm})")
    total = math.ceil(n / batch_size) * epochs
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        with _engine(model, layer, pairs, step_used, batch_size, progress) as engine:
            w = torch.zeros(int(model.cfg.d_model), device=device, requires_grad=True)
            opt = torch.optim.AdamW([w], lr=lr_effective, weight_decay=weight_decay)
            sched = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda s: _cosine(s, warmup_steps, total)
            )
            gen = torch.Generator().manual_seed(seed)
            losses: list[float] = []
            grad_norms: list[float] = []
            lr_peak, n_clipped, done = 0.0, 0, 0
            per_epoch = math.ceil(n / batch_size)
            perm: list[int] = []
            ckpt, resumed_at = None, None
            if checkpoint_dir is not None:
                ckpt = TrainingCheckpoint(
                    Path(checkpoint_dir),
                    f"bipo-layer{layer}",
                    {
                        "model": model_fingerprint(model),
                        "layer": layer,
                        "pairs": texts_fingerprint(prompts, chosen, rejected),
                        "hyper": {
                            # lr, not lr_effective: the residual norm it is scaled by
                            # differs in its last bits between CPUs, the run does not
                            "beta": beta, "lr": lr, "lr_scale": lr_scale,
                            "weight_decay": weight_decay, "warmup_steps": warmup_steps,
                            "epochs": epochs, "batch_size": batch_size,
                            "max_grad_norm": max_grad_norm, "seed": seed,
                            "max_response_tokens": max_response_tokens,
                            "append_eos": append_eos, "step": step_used,
                        },
                    },
                    every=checkpoint_every,
                )  # fmt: skip
                state = ckpt.load()
                if state is not None:  # resume exactly where the last save left off
                    with torch.no_grad():  # "v": a checkpoint saved before "coord" (w is v)
                        w.copy_(state["w"] if "w" in state else state["v"])
                    opt.load_state_dict(state["optimizer"])
                    sched.load_state_dict(state["scheduler"])
                    gen.set_state(state["generator"])
                    losses, grad_norms = list(state["losses"]), list(state["grad_norms"])
                    lr_peak, n_clipped = state["lr_peak"], state["n_clipped"]
                    done, perm = state["step"], list(state["perm"])
                    resumed_at = done
            bar = progress_bar(
                total=total, desc=f"BiPO layer {layer}", unit="step", progress=progress
            )
            with bar, torch.inference_mode(False), torch.enable_grad():
                bar.update(done)
                while done < total:
                    k = done % per_epoch
                    if k == 0:  # a new epoch: a new order (drawn before its first sign)
                        perm = torch.randperm(n, generator=gen).tolist()
                    rows = perm[k * batch_size : (k + 1) * batch_size]
                    sign = 1.0 if int(torch.randint(0, 2, (1,), generator=gen)) else -1.0
                    v = w if scale is None else (w * scale).detach().requires_grad_(True)
                    loss, grad = engine.loss_and_grad(rows, v, sign, beta)
                    if scale is not None:
                        grad = grad * scale  # the chain rule through v = scale * w
                    if not (torch.isfinite(loss) and torch.isfinite(grad).all()):
                        what = "loss" if not torch.isfinite(loss) else "gradient"
                        _diverged(len(losses), losses, what)
                    grad_norm = float(grad.norm())
                    if max_grad_norm is not None and grad_norm > max_grad_norm:
                        grad = grad * (max_grad_norm / (grad_norm + 1e-6))  # as torch's clip
                        n_clipped += 1
                    lr_peak = max(lr_peak, opt.param_groups[0]["lr"])
                    w.grad = grad
                    opt.step()
                    w.grad = None
                    sched.step()
                    losses.append(float(loss))
                    grad_norms.append(grad_norm)
                    if not bool(torch.isfinite(w).all()):
                        _diverged(len(losses) - 1, losses, "vector")
                    done += 1
                    bar.update(1)
                    bar.set_postfix(loss=f"{losses[-1]:.4f}")
                    if ckpt is not None and ckpt.due(done, total=total):
                        ckpt.save({
                            "step": done, "w": w.detach().cpu(), "perm": perm,
                            "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                            "generator": gen.get_state(), "losses": losses,
                            "grad_norms": grad_norms, "lr_peak": lr_peak,
                            "n_clipped": n_clipped,
                        })  # fmt: skip
            v = w.detach() if scale is None else w.detach() * scale
            direction = v.float().cpu()
            metrics: dict[str, Any] = {
                "loss_curve": losses,
                "grad_norm_curve": grad_norms,
                "steps": len(losses),
                "final_loss": sum(losses[-10:]) / len(losses[-10:]),
                "norm": float(direction.norm()),
                "lr": lr,
                "lr_scale": lr_scale,
                "lr_resid_norm": resid_norm,
                "lr_effective": lr_effective,
                "spread_norm": float(spread.norm()),
                "white_rms": float((direction / spread.clamp_min(1e-12)).pow(2).mean().sqrt()),
                "lr_peak_reached": lr_peak,
                "n_clipped": n_clipped,
                "step": step_used,
                "pairing": pairing,
                "prompt_template": prompt_template,
                "mapping": mapping,
                "append_eos": append_eos,
                "n_truncated": len(cut),
                "resumed_at": resumed_at,
            }
            if ckpt is not None:
                ckpt.remove()  # trained: the vector is the result now
            if n_eval > 0:
                k = min(n, n_eval)
                with torch.inference_mode(False), torch.no_grad():
                    after = engine.logprobs(list(range(k)), v, 1.0)
                before = engine.ref[:k]
                metrics.update(
                    n_eval=k,
                    margin_before=float((before[:, 0] - before[:, 1]).mean()),
                    margin_after=float((after[:, 0] - after[:, 1]).mean()),
                )
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)
    return direction, metrics


def fast_step_supported(model: Model) -> bool:
    """Whether BiPO's exact fast step runs on ``model`` (else the reference step does).

    >>> from interp_steer import load_model
    >>> fast_step_supported(load_model("tiny"))
    True
    """
    wrapped = hf_model(model)  # None for a HookedTransformer: the reference step runs
    hf = getattr(wrapped, "model", None)
    config = getattr(hf, "config", None)
    return (
        getattr(model.cfg, "architecture", None) in _FAST_ARCHITECTURES
        and all(hasattr(hf, name) for name in ("embed_tokens", "layers", "norm", "rotary_emb"))
        and hasattr(wrapped, "lm_head")
        and not getattr(config, "use_bidirectional_attention", False)
    )


def prompt_template_for(pairing: Pairing, template: str | None = None) -> str:
    """The prompt template a pairing uses: ``template``, or the pairing's default for None.

    ``"copy"``: :data:`DEFAULT_PROMPT_TEMPLATE`; ``"continuation"``: ``"{text}"`` (the
    text itself is the query).

    >>> prompt_template_for("continuation"), prompt_template_for("copy", "{text}?")
    ('{text}', '{text}?')
    """
    check_choice("pairing", pairing, _PAIRINGS)
    if template is not None:
        return template
    return DEFAULT_PROMPT_TEMPLATE if pairing == "copy" else "{text}"


def preference_texts(
    model: Model,
    english: Sequence[str],
    target: Sequence[str],
    pairing: Pairing,
    template: str | None = None,
    continuation_tokens: int = 48,
    progress: bool | None = None,
) -> tuple[list[str], list[str], list[str], str]:
    """The texts of BiPO's preference pairs: ``(prompts q, chosen r_T, rejected r_O, mapping)``.

    ``pairing="copy"``: ``q = template.format(text=target[i])``, ``r_T = english[i]``,
    ``r_O = target[i]``; ``"continuation"``: ``q = template.format(text=target[i])``,
    ``r_T`` and ``r_O`` the model's greedy continuations (``continuation_tokens`` new
    tokens) of the template around the English text and of ``q`` (module docstring).
    ``template=None`` is the pairing's default (:func:`prompt_template_for`). ``mapping``
    is a one-line description of the pairing. The SFT baseline
    (:func:`~interp_steer.fitting.fit_lora`) trains on ``(q, r_T)`` of the same pairs.

    >>> from interp_steer import load_model
    >>> q, chosen, rejected, _ = preference_texts(load_model("tiny"), ["Hi."], ["Hallo."], "copy")
    >>> chosen, rejected, q[0].startswith("Hallo.") and "Repeat the text above" in q[0]
    (['Hi.'], ['Hallo.'], True)

    Raises:
        ValueError: A template without ``{text}`` or ``continuation_tokens`` below 1;
            checked before any generation.
    """
    template = prompt_template_for(pairing, template)
    if "{text}" not in template:
        raise ValueError(f"prompt_template must contain '{{text}}', got {template!r}")
    if continuation_tokens < 1:
        raise ValueError(f"continuation_tokens must be >= 1, got {continuation_tokens}")
    if pairing == "copy":
        prompts = [template.format(text=t) for t in target]
        return (
            prompts,
            list(english),
            list(target),
            ("q=template(target text), r_T=english text, r_O=target text"),
        )
    texts = [template.format(text=t) for t in (*english, *target)]
    outs: list[str] = []
    for i in range(0, len(texts), 8):
        outs += generate_texts(
            model, texts[i : i + 8], max_new_tokens=continuation_tokens, progress=progress
        )
    chosen, rejected = outs[: len(english)], outs[len(english) :]
    return (
        texts[len(english) :],
        chosen,
        rejected,
        (
            "q=template(target text), r_T=greedy continuation of template(english text), "
            "r_O=greedy continuation of q"
        ),
    )


def encode_preference(
    model: Model,
    prompts: Sequence[str],
    chosen: Sequence[str],
    rejected: Sequence[str],
    max_response_tokens: int | None,
    append_eos: bool,
) -> tuple[list[_Pair], set[int]]:
    """Token ids of each preference pair, and the indices of the pairs cut to the context.

    EOS is appended, then responses are truncated and cut as :func:`encode_pairs` does.
    """
    n_ctx = getattr(model.cfg, "n_ctx", None)
    eos = model.tokenizer.eos_token_id if append_eos else None
    if append_eos and eos is None:
        raise ValueError("append_eos=True but the tokenizer has no EOS token")
    out: list[_Pair] = []
    cut: set[int] = set()
    for i, (prompt, r_t, r_o) in enumerate(zip(prompts, chosen, rejected, strict=True)):
        q = model.to_tokens(prompt, move_to_device=False, truncate=False)[0]
        responses = []
        for text in (r_t, r_o):
            r = model.to_tokens(text, prepend_bos=False, move_to_device=False, truncate=False)[0]
            if eos is not None:
                r = torch.cat([r, torch.tensor([eos], dtype=r.dtype)])
            if max_response_tokens is not None:
                r = r[:max_response_tokens]
            if len(q) == 0 or len(r) == 0:
                raise ValueError(f"prompt {prompt!r} or response {text!r} has no tokens")
            responses.append(r)
        if n_ctx and len(q) + max(len(r) for r in responses) > n_ctx:
            cut.add(i)
            q = q[: n_ctx - 1]
            responses = [r[: n_ctx - len(q)] for r in responses]
        out.append(_Pair(q, responses[0], responses[1]))
    return out, cut


def _prompt_scales(model: Model, prompts: Sequence[str], layer: int) -> tuple[float, Tensor]:
    """The residual's scales at ``layer`` on ``prompts``, BOS excluded: ``(resid_norm, spread)``.

    ``resid_norm`` is the mean per-token norm (as ``fit_vector``'s); ``spread`` is each
    coordinate's standard deviation over the prompts' tokens (``[d_model]``, CPU float32).
    """
    with warnings.catch_warnings():  # a prompt cut to the context is BiPO's own warning
        warnings.filterwarnings("ignore", message="activations: .* exceed the model's context")
        acts = collect_activations(
            model, list(prompts), layers=[layer], pooling="all", exclude_bos=True, progress=False
        )
    tokens = acts[layer]
    spread = tokens.std(0, correction=0) if len(tokens) > 1 else tokens.abs()[0]
    return float(acts.norms[layer].mean()), spread.float().clamp_min(1e-6)


def _dpo_loss(lp: Tensor, ref: Tensor, sign: float, beta: float) -> Tensor:
    """Per-pair BiPO loss from ``[k, 2]`` log-probs (r_T, r_O) and their references."""
    z = sign * beta * ((lp[:, 0] - ref[:, 0]) - (lp[:, 1] - ref[:, 1]))
    return -F.logsigmoid(z)


@contextmanager
def _engine(
    model: Model,
    layer: int,
    pairs: list[_Pair],
    step: BipoStep,
    batch_size: int,
    progress: bool | None,
) -> Iterator["FastStep | ReferenceStep"]:
    """The step implementation, with its reference log-probs computed (``.ref``)."""
    if step == "reference":
        yield ReferenceStep(model, layer, pairs, batch_size)
        return
    with float32_tail(model, layer):
        yield FastStep(model, layer, pairs, progress)


class ReferenceStep:
    """Today's step: each response its own sequence through the whole model, ``v`` by a hook."""

    def __init__(self, model: Model, layer: int, pairs: list[_Pair], batch_size: int) -> None:
        self.model, self.layer, self.batch_size = model, layer, batch_size
        self.seq_t = [(torch.cat([p.prompt, p.chosen]), len(p.chosen)) for p in pairs]
        self.seq_o = [(torch.cat([p.prompt, p.rejected]), len(p.rejected)) for p in pairs]
        with torch.inference_mode(False), torch.no_grad():
            self.ref = self._batched(list(range(len(pairs))), None, 1.0)

    def _batched(self, rows: list[int], v: Tensor | None, sign: float) -> Tensor:
        k = 2 * self.batch_size
        ref_t = _batched_logprobs(self.model, [self.seq_t[i] for i in rows], v, self.layer, k, sign)
        ref_o = _batched_logprobs(self.model, [self.seq_o[i] for i in rows], v, self.layer, k, sign)
        return torch.stack([ref_t, ref_o], 1)

    def logprobs(self, rows: list[int], v: Tensor | None, sign: float) -> Tensor:
        """``[len(rows), 2]`` summed log-probs of (r_T, r_O) under ``sign * v``."""
        batch = [self.seq_t[i] for i in rows] + [self.seq_o[i] for i in rows]
        lp = sequence_logprobs(self.model, batch, v, self.layer, sign)
        return torch.stack([lp[: len(rows)], lp[len(rows) :]], 1)

    def loss_and_grad(
        self, rows: list[int], v: Tensor, sign: float, beta: float
    ) -> tuple[Tensor, Tensor]:
        """The batch's mean loss (detached) and its gradient with respect to ``v``."""
        loss = _dpo_loss(self.logprobs(rows, v, sign), self.ref[rows], sign, beta).mean()
        (grad,) = torch.autograd.grad(loss, [v])
        return loss.detach(), grad


@dataclass(frozen=True)
class _Prefix:
    """One pair in the shared layout ``[q, r_T, r_O]``, with its residual after block L."""

    resid: Tensor  # [1, seq, d_model], the model's dtype, no grad
    positions: Tensor  # [1, seq]
    masks: dict[str, Tensor]  # layer type -> [1, 1, seq, seq] bool (True: may attend)
    rows: Tensor  # the rows whose next token is a response token: r_T's, then r_O's
    targets: Tensor  # those tokens
    n_chosen: int


class FastStep:
    """The exact fast step (module docstring); the model's tail must be float32 already."""

    def __init__(self, model: Model, layer: int, pairs: list[_Pair], progress: bool | None) -> None:
        self.model, self.layer = model, layer
        hf: Any = model.original_model.model  # the wrapped HF decoder (_FAST_ARCHITECTURES)
        self.hf, config = hf, hf.config
        n_layers = int(model.cfg.n_layers)
        self.window = getattr(config, "sliding_window", None)
        # Gemma-3 and Qwen2 name each layer's attention; Mistral's window covers every layer
        every = "sliding_attention" if self.window else "full_attention"
        self.types = list(getattr(config, "layer_types", None) or [every] * n_layers)
        rotary = getattr(hf.rotary_emb, "original_component", hf.rotary_emb)  # under the bridge's
        self.rotary_by_type = "layer_type" in inspect.signature(rotary.forward).parameters
        head: Any = model.original_model.lm_head
        self.weight = head.weight.detach().float()
        bias = getattr(head, "bias", None)
        self.bias = None if bias is None else bias.detach().float()
        self.softcap = getattr(config, "final_logit_softcapping", None)
        self.scale = getattr(config, "logit_scale", None)  # Cohere multiplies its logits
        self.device = model.cfg.device or "cpu"
        self.prefixes: list[_Prefix] = []
        refs = []
        bar = progress_bar(
            total=len(pairs), desc="BiPO reference pass", unit="pair", progress=progress
        )
        with bar, torch.inference_mode(False), torch.no_grad():
            for pair in pairs:
                self.prefixes.append(self._prefix(pair))
                refs.append(self._logprobs(self.prefixes[-1], None, 1.0))
                bar.update(1)
        self.ref = torch.stack(refs)

    def _prefix(self, pair: _Pair) -> _Prefix:
        n_q, n_t, n_o = len(pair.prompt), len(pair.chosen), len(pair.rejected)
        ids = torch.cat([pair.prompt, pair.chosen, pair.rejected]).to(self.device)[None]
        pos = torch.cat([torch.arange(n_q + n_t), torch.arange(n_q, n_q + n_o)]).to(self.device)
        seq = len(pos)
        allowed = torch.ones(seq, seq, dtype=torch.bool, device=self.device).tril()
        allowed[n_q + n_t :, n_q : n_q + n_t] = False  # r_O does not see r_T
        masks = {}
        for kind in set(self.types):
            mask = allowed
            if kind == "sliding_attention" and self.window:  # by position, as HF's window
                mask = allowed & ((pos[:, None] - pos[None, :]) < self.window)
            masks[kind] = mask[None, None]
        rows = torch.cat(
            [
                torch.arange(n_q - 1, n_q - 1 + n_t),
                torch.tensor([n_q - 1]),
                torch.arange(n_q + n_t, n_q + n_t + n_o - 1),
            ]
        ).to(self.device)
        targets = torch.cat([pair.chosen, pair.rejected]).to(self.device)
        resid = self._blocks(self.hf.embed_tokens(ids), pos[None], masks, 0, self.layer + 1)
        return _Prefix(resid.detach(), pos[None], masks, rows, targets, n_t)

    def _blocks(
        self, h: Tensor, pos: Tensor, masks: dict[str, Tensor], start: int, stop: int
    ) -> Tensor:
        kinds = set(self.types[start:stop])
        rotary = {
            kind: self.hf.rotary_emb(h, pos, *([kind] if self.rotary_by_type else []))
            for kind in kinds
        }
        for i in range(start, stop):
            kind = self.types[i]
            h = self.hf.layers[i](
                h, attention_mask=masks[kind], position_embeddings=rotary[kind], position_ids=pos
            )
            if isinstance(h, tuple):
                h = h[0]
        return h

    def _logprobs(self, pre: _Prefix, v: Tensor | None, sign: float) -> Tensor:
        h = pre.resid.float()
        if v is not None:
            h = h + sign * v.float()
        h = self._blocks(h, pre.positions, pre.masks, self.layer + 1, len(self.types))
        x = self.hf.norm(h[0, pre.rows])
        lp = _TokenLogprob.apply(x, self.weight, self.bias, pre.targets, self.softcap, self.scale)
        return torch.stack([lp[: pre.n_chosen].sum(), lp[pre.n_chosen :].sum()])

    def logprobs(self, rows: list[int], v: Tensor | None, sign: float) -> Tensor:
        """``[len(rows), 2]`` summed log-probs of (r_T, r_O) under ``sign * v``."""
        return torch.stack([self._logprobs(self.prefixes[i], v, sign) for i in rows])

    def loss_and_grad(
        self, rows: list[int], v: Tensor, sign: float, beta: float
    ) -> tuple[Tensor, Tensor]:
        """The batch's mean loss (detached) and its gradient with respect to ``v``.

        One pair at a time (each pair's graph is freed before the next is built).
        """
        total = torch.zeros((), device=v.device)
        grad = torch.zeros_like(v)
        for i in rows:
            lp = self._logprobs(self.prefixes[i], v, sign)[None]
            loss = _dpo_loss(lp, self.ref[[i]], sign, beta).sum() / len(rows)
            (g,) = torch.autograd.grad(loss, [v])
            total, grad = total + loss.detach(), grad + g
        return total, grad


class _TokenLogprob(torch.autograd.Function):
    """``log softmax(x @ W.T + b)[target]`` per row, fused: backward ``g·(onehot − p)·W``.

    Only ``x`` gets a gradient. The exponentials are formed in place in the logits buffer
    and reused by the backward (which runs once), so no graph of ``log_softmax`` is kept.
    With ``scale`` the logits are multiplied by it first (Cohere's ``logit_scale``), then
    with ``softcap`` they are ``softcap * tanh(logits / softcap)``.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: FunctionCtx,
        x: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        targets: Tensor,
        softcap: float | None,
        scale: float | None = None,
    ) -> Tensor:
        logits = x @ weight.T
        if bias is not None:
            logits += bias
        if scale is not None:
            logits *= scale
        squash = None
        if softcap is not None:
            squash = torch.tanh(logits / softcap)
            logits = squash * softcap
        target_logits = logits.gather(-1, targets[:, None])[:, 0]
        top = logits.max(dim=-1).values
        exps = logits.sub_(top[:, None]).exp_()  # in place: the logits are not needed again
        total = exps.sum(dim=-1)
        ctx.save_for_backward(exps, total, weight, targets, *([] if squash is None else [squash]))
        ctx.scale = scale  # type: ignore[attr-defined]
        return target_logits - top - total.log()

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        exps, total, weight, targets, *squash = ctx.saved_tensors
        grad = exps.mul_((-grad_out / total)[:, None])  # -g·p, in place: backward runs once
        grad[torch.arange(len(targets), device=grad.device), targets] += grad_out
        if squash:  # the softcap's tanh
            grad.mul_(1 - squash[0] * squash[0])
        if ctx.scale is not None:
            grad.mul_(ctx.scale)
        return grad @ weight, None, None, None, None, None


@contextmanager
def float32_tail(model: Model, layer: int) -> Iterator[None]:
    """Blocks ``layer+1..`` and the final norm in float32 inside the block, cast back after."""
    hf: Any = model.original_model.model
    modules = [*list(hf.layers)[layer + 1 :], hf.norm]
    dtypes = []
    for module in modules:
        floats = [p.dtype for p in module.parameters() if p.is_floating_point()]
        dtypes.append(floats[0] if floats else torch.float32)
    try:
        for module, dtype in zip(modules, dtypes, strict=True):
            if dtype != torch.float32:
                module.float()
        yield
    finally:
        for module, dtype in zip(modules, dtypes, strict=True):
            if dtype != torch.float32:
                module.to(dtype)


def response_logprobs(
    model: Model,
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
    model: Model,
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
    model: Model,
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
    model: Model,
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
    model: Model,
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
