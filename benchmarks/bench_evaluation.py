"""Benchmark the evaluation side: steering overhead in generation, batched choice scoring.

Prints ratios measured in one run (targets in brackets):

1. greedy generation of ``--n`` MGSM prompts for ``--max-new-tokens`` tokens, steered
   (one vector, every position, through ``steer()``) vs unsteered, same batch  [<= 1.1x]
2. log-likelihood of the k choices of ``--n`` XCOPA items: k separate passes (one per
   choice) vs all k choices in ONE batched forward (the harness's way)    [>= 1x, same scores]
3. the forcing benchmark's relevance margins of ``--n`` FLORES prompts (continuations: their
   references cut to ``--max-new-tokens`` tokens, k = 4 distractors): every
   ``(prompt, continuation)`` row run whole vs each prompt once and its continuations on its
   KV cache (``relevance_margins``' way)                            [>= 1.2x, same margins]

Conditions alternate (A B A B ...) and the median of ``--repeats`` runs is reported, so a
busy machine slows both alike; the load average is printed with the numbers.

Usage (a few minutes on 2 CPU cores; on a machine other jobs share, ``--threads 1`` avoids
OpenMP threads waiting on each other, which can slow small ops by an order of magnitude)::

    python benchmarks/bench_evaluation.py --model gemma-3-270m --n 8 --max-new-tokens 32
    python benchmarks/bench_evaluation.py --smoke    # every step on the tiny model (seconds)
"""

import argparse
import os
import statistics

import torch
from common import parse_args, timed

from interp_steer.data import load_task
from interp_steer.evaluation import forcing_prompts, relevance_margins
from interp_steer.evaluation.prompts import build_prompt
from interp_steer.models import left_pad, load_model, score_continuations
from interp_steer.models.batching import token_ids
from interp_steer.steering import SteeringVector, steer

# --smoke: every step on the tiny model in a few seconds
SMOKE = {"model": "tiny", "threads": 1, "n": 2, "max_new_tokens": 2, "repeats": 1}


def alternate(a, b, repeats):
    """Run ``a`` and ``b`` alternately; return their outputs and median times."""
    times_a, times_b, out_a, out_b = [], [], None, None
    for _ in range(repeats):
        out_a, t = timed(a)
        times_a.append(t)
        out_b, t = timed(b)
        times_b.append(t)
    return out_a, out_b, statistics.median(times_a), statistics.median(times_b)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--n", type=int, default=8, help="items (prompts) per batch")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--layer", type=int, default=None, help="steered layer (default: middle)")
    parser.add_argument("--lang", default="sw")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (1 is far faster on a busy CPU)"
    )
    args = parse_args(parser, argv, SMOKE)
    if args.n <= 0 or args.repeats <= 0 or args.max_new_tokens <= 0:
        parser.error("--n, --repeats and --max-new-tokens must be positive")
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    model = load_model(args.model)
    layer = model.cfg.n_layers // 2 if args.layer is None else args.layer
    gen = torch.Generator().manual_seed(0)
    direction = torch.randn(model.cfg.d_model, generator=gen)
    vector = SteeringVector(direction / direction.norm() * 4.0, layer=layer, method="random")
    print(f"model {args.model}, {torch.get_num_threads()} threads, n={args.n}, layer {layer}")

    # 1. generation, steered vs unsteered, on the same left-padded batch
    prompts = [build_prompt(item).text for item in load_task("mgsm", args.lang, n=args.n)]
    ids, mask = left_pad(model, [token_ids(model, p, bos=True) for p in prompts])

    def generate():
        with torch.no_grad():
            return model.generate(
                ids,
                attention_mask=mask.long(),
                max_new_tokens=args.max_new_tokens,
                do_sample=False,
                stop_at_eos=False,  # the same number of steps in both conditions
                verbose=False,
                return_type="tokens",
            )

    def generate_steered():
        with steer(model, vector, alpha=1.0, positions="all"):
            return generate()

    generate()  # warm-up
    plain, steered, t_plain, t_steered = alternate(generate, generate_steered, args.repeats)
    changed = float((plain != steered).float().mean())
    print(
        f"1. generation {args.n}x{args.max_new_tokens} tokens: unsteered {t_plain:.2f} s, "
        f"steered {t_steered:.2f} s -> ratio {t_steered / t_plain:.3f}x [target <= 1.1x] "
        f"({changed:.0%} of tokens changed by steering)"
    )

    # 2. choice scoring: k passes vs one batched forward of all k choices
    ps = [build_prompt(item) for item in load_task("xcopa", args.lang, n=args.n)]
    contexts, conts = [p.text for p in ps], [p.continuations for p in ps]
    k = len(conts[0])

    def one_forward():
        return score_continuations(model, contexts, conts)

    def k_passes():
        per_choice = [
            score_continuations(model, contexts, [[c[j]] for c in conts]) for j in range(k)
        ]
        return [[per_choice[j][i][0] for j in range(k)] for i in range(len(contexts))]

    one_forward()  # warm-up
    batched, separate, t_one, t_k = alternate(one_forward, k_passes, args.repeats)
    diff = max(
        abs(a[0] - b[0])
        for x, y in zip(batched, separate, strict=True)
        for a, b in zip(x, y, strict=True)
    )
    print(
        f"2. scoring {args.n} items x {k} choices: {k} passes {t_k:.2f} s, one forward "
        f"{t_one:.2f} s -> speed-up {t_k / t_one:.2f}x (max |score diff| {diff:.1e})"
    )

    # 3. relevance: every row whole vs each prompt once (its continuations on its KV cache)
    items = forcing_prompts(args.lang, "to_english", n=max(args.n, 3))
    k = min(4, len(items) - 1)
    cut = [
        model.tokenizer.decode(token_ids(model, r, bos=False)[: args.max_new_tokens])
        for r in items.references
    ]

    def shared():
        return relevance_margins(model, items.prompts, cut, k=k, progress=False)

    def whole():  # a no-op residual hook: scoring keeps the fast path but runs rows whole
        with model.hooks(fwd_hooks=[("blocks.0.hook_resid_post", lambda x, hook: x)]):
            return shared()

    shared()  # warm-up
    fast, slow, t_shared, t_whole = alternate(shared, whole, args.repeats)
    diff = float(abs(fast - slow).max())
    print(
        f"3. relevance of {len(items)} prompts x {k + 1} continuations: rows whole "
        f"{t_whole:.2f} s, each prompt once {t_shared:.2f} s -> speed-up "
        f"{t_whole / t_shared:.2f}x [target >= 1.2x] (max |margin diff| {diff:.1e})"
    )
    print(f"load average (1/5/15 min): {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
