"""Benchmark the tuned lens: training time on a multilingual mix, and held-out KL curves.

1. ``fit_tuned_lens`` on ``--n`` FLORES sentences in each of ``--langs`` languages (the
   default mix: English, the default model's languages and four more scripts), each cut
   to ``--max-tokens`` tokens, for ``--epochs`` passes: wall time, time per sequence and
   per position-step (one position through every layer's translator, the unembedding
   forward and back), and the training KL of the first and last step.
2. ``lens_kl`` on ``--heldout`` held-out FLORES sentences per language (the last 100 of
   each file, never trained on): the mean KL to the model's final distribution per layer,
   logit lens vs tuned lens, and whether the tuned lens is below at every earlier layer.

Usage::

    python benchmarks/bench_lens.py                  # gemma-3-270m, the default mix
    python benchmarks/bench_lens.py --n 1 --langs 6   # a quicker run on 2 shared CPU cores
    python benchmarks/bench_lens.py --smoke          # every step on the tiny model (seconds)
"""

import argparse
import os

import numpy as np
import torch
from common import parse_args, timed

from interp_steer.analysis import fit_tuned_lens, lens_kl, lens_texts
from interp_steer.analysis.tuned_lens import DEFAULT_LANGS
from interp_steer.models import load_model

# --smoke: every step on the tiny model in a few seconds
SMOKE = {"model": "tiny", "threads": 1, "langs": 3, "n": 2, "heldout": 1, "max_tokens": 16,
         "epochs": 1}  # fmt: skip


def bench_fit(model, args):
    langs = DEFAULT_LANGS[: args.langs]
    texts, _ = lens_texts(langs, args.n)
    lens, seconds = timed(
        fit_tuned_lens, model, texts, max_tokens=args.max_tokens, epochs=args.epochs,
        batch_tokens=args.batch_tokens, lr=args.lr, bias_lr=args.bias_lr, save=False,
        progress=False,
    )  # fmt: skip
    meta = lens.meta
    n_tok, trained = meta["n_tokens"], int(model.cfg.n_layers) - 1
    per_step = seconds / (n_tok * args.epochs)
    print(f"1. fit_tuned_lens: {len(texts)} sequences ({len(langs)} languages × {args.n}), "
          f"{n_tok} positions (≤ {args.max_tokens} tokens each, BOS excluded), "
          f"{args.epochs} epochs, {meta['steps']} steps of {args.batch_tokens}: "
          f"{seconds:.1f} s = {seconds / 60:.1f} min")  # fmt: skip
    print(
        f"   {seconds / len(texts):.2f} s per sequence; {1000 * per_step:.1f} ms per position-"
        f"step ({trained} layers: {1000 * per_step / trained:.2f} ms per position and layer)"
    )
    loss = np.asarray(meta["train_kl"])
    print(f"   training KL, mean over layers: first step {loss[0].mean():.3f}, last "
          f"{loss[-1].mean():.3f}")  # fmt: skip
    return lens, langs


def bench_heldout(model, lens, langs, args):
    texts, _ = lens_texts(langs, args.heldout, part="heldout")
    logit, logit_s = timed(lens_kl, model, texts, "logit", max_tokens=args.max_tokens)
    tuned, tuned_s = timed(lens_kl, model, texts, lens, max_tokens=args.max_tokens)
    print(f"2. held-out KL(final || lens), nats, {len(texts)} sequences "
          f"({logit_s:.0f} s + {tuned_s:.0f} s)")  # fmt: skip
    print("   layer  logit lens  tuned lens")
    for layer, (a, b) in enumerate(zip(logit, tuned, strict=True)):
        print(f"   {layer:5d}  {a:10.3f}  {b:10.3f}")
    below = bool((tuned[:-1] < logit[:-1]).all())
    print(f"   tuned below logit at every earlier layer: {below}; last layer: "
          f"{logit[-1]:.3f} vs {tuned[-1]:.3f}")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--langs", type=int, default=len(DEFAULT_LANGS), help="of the mix")
    parser.add_argument("--n", type=int, default=2, help="training sentences per language")
    parser.add_argument("--heldout", type=int, default=1, help="held-out sentences per language")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-tokens", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--bias-lr", type=float, default=1e-2)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parse_args(parser, argv, SMOKE)
    if args.threads:
        torch.set_num_threads(args.threads)
    model, load_s = timed(load_model, args.model)
    print(f"model {args.model}: loaded in {load_s:.1f} s; torch threads "
          f"{torch.get_num_threads()}; load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    lens, langs = bench_fit(model, args)
    bench_heldout(model, lens, langs, args)


if __name__ == "__main__":
    main()
