"""Benchmark the fitting side: activation collection, closed-form fits, one BiPO epoch.

Prints ratios measured in one run (targets in brackets):

1. collecting all layers vs one layer (the deepest, the same forward cost)   [<= 1.2x]
2. collection throughput vs a plain batched forward of the same texts       [>= 0.8x]
3. mean_diff / pca / mse for every layer on ``--fit-n`` pairs of pooled
   activations from one cached collection (rows tiled when ``--n`` is smaller) [< 1 s]
4. one BiPO epoch on ``--bipo-n`` MSVAMP pairs at one layer, and its cost per step
   relative to one full fine-tuning step (forward + backward into every parameter +
   an AdamW update) on the same sequences.
5. BiPO's exact fast step against the reference step at batch 1, interleaved pair by
   pair on the same ``--bipo-n`` pairs: seconds per step (old / new)      [>= 2x]
   and per pair including the reference pass                             [>= 1.8x]
6. the SFT baseline (a LoRA fine-tune, ``fit_lora``'s defaults) at batch 1 on the same
   pairs: seconds per step (one epoch's time taken from two epochs', so the model copy
   and peft setup cancel) against the fast and the reference BiPO step of 5.

Usage (a smoke run on a shared 2-core CPU, where one thread avoids contention stalls;
the defaults are meant for a GPU)::

    python benchmarks/bench_fitting.py --n 24 --fit-n 1000 --bipo-n 8 --threads 1
    python benchmarks/bench_fitting.py --smoke    # every step on the tiny model (seconds)
"""

import argparse
import tempfile
import time

import torch
from common import parse_args, timed

from interp_steer.activations import Activations, collect_activations
from interp_steer.data import load_parallel
from interp_steer.fitting import (
    alignment_metrics,
    bipo_direction,
    fit_lora,
    fit_vectors,
    mean_diff_direction,
    mse_direction,
    pca_direction,
)
from interp_steer.fitting.bipo import (
    DEFAULT_PROMPT_TEMPLATE,
    FastStep,
    ReferenceStep,
    encode_pairs,
    encode_preference,
    float32_tail,
    sequence_logprobs,
)
from interp_steer.models import load_model

# --smoke: every step on the tiny model in a few seconds
SMOKE = {"model": "tiny", "threads": 1, "n": 2, "fit_n": 8, "bipo_n": 2,
         "batch_size": 4, "bipo_batch_size": 2, "repeat": 1}  # fmt: skip


def plain_forward(model, texts, batch_size):
    """The baseline: the bridge's own batched forward of the texts, full logits."""
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            model(texts[i : i + batch_size])


def tile(acts: Activations, rows: int) -> dict[int, torch.Tensor]:
    reps = -(-rows // acts.n)
    return {layer: acts[layer].repeat(reps, 1)[:rows] for layer in acts.layers}


def fine_tuning_step(model, batch, layer):
    """Forward + backward into every parameter, then an AdamW update on copies."""
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(True)
        start = time.perf_counter()
        loss = -sequence_logprobs(model, batch, None, layer).mean()
        loss.backward()
        copies = [p.detach().clone() for p in params]
        for c, p in zip(copies, params, strict=True):
            c.grad = p.grad
        torch.optim.AdamW(copies, lr=1e-5).step()
        return time.perf_counter() - start
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.grad = None
            p.requires_grad_(flag)


def bipo_steps(model, pairs, layer: int, number: int = 5) -> tuple[float, float]:
    """Step 5: the fast and the reference BiPO step at batch 1, interleaved per pair.

    ``number`` is the step's number in the printed output (``bench_scale`` runs it too).
    """
    prompts = [DEFAULT_PROMPT_TEMPLATE.format(text=t) for t in pairs.target]
    encoded, _ = encode_preference(model, prompts, pairs.english, pairs.target, 128, True)
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        with float32_tail(model, layer):
            new, t_ref_new = timed(FastStep, model, layer, encoded, False)
        old, t_ref_old = timed(ReferenceStep, model, layer, encoded, 1)
        gen = torch.Generator().manual_seed(0)
        v = (torch.randn(int(model.cfg.d_model), generator=gen) * 1e-2).requires_grad_(True)
        t_old = t_new = 0.0
        with torch.inference_mode(False), torch.enable_grad():
            for i in range(len(encoded)):
                sign = 1.0 if i % 2 == 0 else -1.0
                (loss_old, grad_old), took_old = timed(old.loss_and_grad, [i], v, sign, 0.1)
                (loss_new, grad_new), took_new = timed(new.loss_and_grad, [i], v, sign, 0.1)
                t_old, t_new = t_old + took_old, t_new + took_new
                rel = float((loss_new - loss_old).abs() / loss_old.abs())
                cos = float(torch.nn.functional.cosine_similarity(grad_new, grad_old, dim=0))
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)
    n = len(encoded)
    print(
        f"{number}. BiPO step, batch 1, {n} pairs at layer {layer}: "
        f"reference {t_old / n:.3f} s/step, "
        f"fast {t_new / n:.3f} s/step -> {t_old / t_new:.2f}x [target >= 2x]"
    )
    old_pair, new_pair = (t_ref_old + t_old) / n, (t_ref_new + t_new) / n
    print(
        f"   per pair with the reference pass: reference {old_pair:.3f} s, fast {new_pair:.3f} s "
        f"-> {old_pair / new_pair:.2f}x [target >= 1.8x]; last pair: loss rel. diff "
        f"{rel:.1e}, gradient cosine {cos:.6f}"
    )
    return t_new / n, t_old / n


def sft_step(model, pairs, fast: float, reference: float) -> None:
    """Step 6: one SFT (LoRA) step at batch 1 on the same pairs, against a BiPO step."""
    opts = {"batch_size": 1, "n_eval": 0, "warmup_steps": 0, "progress": False}
    adapter, t_one = timed(fit_lora, model, pairs, epochs=1, **opts)
    _, t_two = timed(fit_lora, model, pairs, epochs=2, **opts)
    n = len(pairs)
    t_step = max(t_two - t_one, 1e-9) / n  # the copy, peft and encoding cancel
    modules = "/".join(m.removesuffix("_proj") for m in adapter.target_modules)
    print(
        f"6. SFT (LoRA r={adapter.rank}, {modules}), batch 1, {n} pairs: {t_step:.3f} s/step "
        f"(fit_lora: 1 epoch {t_one:.1f} s, 2 epochs {t_two:.1f} s) -> SFT step / BiPO step = "
        f"{t_step / fast:.2f} (fast), {t_step / reference:.2f} (reference)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--lang", default="de")
    parser.add_argument("--n", type=int, default=1000, help="MSVAMP pairs to collect")
    parser.add_argument("--fit-n", type=int, default=1000, help="pairs for the fit timing")
    parser.add_argument("--bipo-n", type=int, default=500, help="pairs for the BiPO epoch")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--bipo-batch-size", type=int, default=4)
    parser.add_argument("--layer", type=int, default=None, help="BiPO layer (default: middle)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--repeat", type=int, default=3, help="timings are the best of these")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parse_args(parser, argv, SMOKE)
    if args.threads:
        torch.set_num_threads(args.threads)

    model, t_load = timed(load_model, args.model, device=args.device)
    n_layers = int(model.cfg.n_layers)
    layer = n_layers // 3 if args.layer is None else args.layer
    pairs = load_parallel("msvamp", args.lang, n=args.n)
    texts = list(pairs.english) + list(pairs.target)
    print(
        f"model {args.model} ({n_layers} layers, d_model {model.cfg.d_model}, "
        f"{model.cfg.device}), loaded in {t_load:.1f} s; torch threads "
        f"{torch.get_num_threads()}; {len(texts)} texts ({len(pairs)} msvamp-{args.lang} "
        f"pairs), batch size {args.batch_size}"
    )

    opts = {"batch_size": args.batch_size, "progress": False, "pooling": "mean"}
    collect_activations(model, texts[: args.batch_size], layers=[0], **opts)  # warm-up
    best: dict[str, float] = {}
    for _ in range(args.repeat):  # interleaved, best of --repeat: the CPU may be shared
        for key, run in {
            "one": lambda: collect_activations(model, texts, layers=[n_layers - 1], **opts),
            "all": lambda: collect_activations(model, texts, layers=range(n_layers), **opts),
            "mid": lambda: collect_activations(model, texts, layers=[layer], **opts),
            "plain": lambda: plain_forward(model, texts, args.batch_size),
        }.items():
            out, took = timed(run)
            best[key] = min(best.get(key, float("inf")), took)
            if key == "all":
                acts = out
    t_one, t_all, t_mid, t_plain = best["one"], best["all"], best["mid"], best["plain"]
    print(
        f"\n1. collect {n_layers} layers: {t_all:.2f} s; 1 layer (the last): {t_one:.2f} s "
        f"-> ratio {t_all / t_one:.2f}x [target <= 1.2x]; (1 layer at {layer}, early stop: "
        f"{t_mid:.2f} s)  [best of {args.repeat}]"
    )
    print(
        f"2. throughput: collect {n_layers} layers {len(texts) / t_all:.1f} texts/s; plain "
        f"forward {len(texts) / t_plain:.1f} texts/s -> {t_plain / t_all:.2f}x [target >= 0.8x]"
    )

    n = len(pairs)
    h_en, h_tgt = (
        tile(acts.take(range(n)), args.fit_n),
        tile(acts.take(range(n, 2 * n)), args.fit_n),
    )
    methods = {
        "mean_diff": mean_diff_direction,
        "pca": pca_direction,
        "mse": lambda en, tgt: mse_direction(en, tgt)[0],
    }
    print(f"3. fits on {args.fit_n} pairs x {n_layers} layers (from {n} collected pairs):")
    for name, fn in methods.items():
        took = float("inf")
        for _ in range(args.repeat):
            start = time.perf_counter()
            for lay in acts.layers:
                alignment_metrics(h_en[lay], h_tgt[lay], fn(h_en[lay], h_tgt[lay]))
            took = min(took, time.perf_counter() - start)
        print(f"   {name:9s} {took:.3f} s for all layers incl. metrics [target < 1 s]")
    with tempfile.TemporaryDirectory() as cache:
        fit_vectors(model, pairs, layers=range(n_layers), cache_dir=cache)  # fills the cache
        for name in methods:
            _, took = timed(
                fit_vectors,
                model,
                pairs,
                layers=range(n_layers),
                method=name,
                cache_dir=cache,
                collect_batch_size=args.batch_size,
            )
            print(f"   fit_vectors({name!r}, {n} pairs, {n_layers} layers, cached): {took:.3f} s")

    bipo_pairs = pairs.head(args.bipo_n)
    (_, metrics), t_bipo = timed(
        bipo_direction, model, bipo_pairs, layer=layer, batch_size=args.bipo_batch_size, n_eval=0
    )
    steps = metrics["steps"]
    prompts = [DEFAULT_PROMPT_TEMPLATE.format(text=t) for t in bipo_pairs.target]
    k = args.bipo_batch_size
    batch = encode_pairs(model, prompts[:k], bipo_pairs.english[:k], 128)
    batch += encode_pairs(model, prompts[:k], bipo_pairs.target[:k], 128)
    with torch.no_grad():  # the reference pass BiPO makes once, before its steps
        start = time.perf_counter()
        for side in (bipo_pairs.english, bipo_pairs.target):
            seqs = encode_pairs(model, prompts, side, 128)
            for i in range(0, len(seqs), 2 * k):
                sequence_logprobs(model, seqs[i : i + 2 * k], None, layer)
        t_ref = time.perf_counter() - start
    t_step = (t_bipo - t_ref) / steps
    t_ft = min(fine_tuning_step(model, batch, layer) for _ in range(args.repeat))
    print(
        f"4. BiPO, 1 epoch on {len(bipo_pairs)} pairs at layer {layer}, batch "
        f"{args.bipo_batch_size}: {t_bipo:.1f} s ({steps} steps + a {t_ref:.1f} s reference "
        f"pass; {t_step:.2f} s/step); full fine-tuning step on the same {len(batch)} "
        f"sequences: {t_ft:.2f} s -> BiPO step / fine-tuning step = {t_step / t_ft:.2f}"
    )
    fast, reference = bipo_steps(model, bipo_pairs, layer)
    sft_step(model, bipo_pairs, fast, reference)


if __name__ == "__main__":
    main()
