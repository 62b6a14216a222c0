"""Benchmark the analyses: cross-lingual similarity and a mean_diff layer sweep.

Prints wall times and the ratio against collecting activations layer by layer:

1. similarity: ``--langs`` FLORES languages × all layers × ``--n`` sentences, as
   :func:`cross_lingual_similarity` runs it (one collection per language for all layers,
   then the metrics), timed in its two parts; then the collection of ``--per-layer-n``
   English sentences done once per layer against once for all layers, and the ratio.
2. sweep: fitting mean_diff vectors for every layer from one activation pass
   (``fit_vectors``) against one ``fit_vectors`` call per layer, on ``--sweep-n`` pairs;
   then (``--sweep-items`` > 0) a small :func:`layer_sweep` on XCOPA with a relative
   strength grid, timed per evaluated cell.

Usage::

    python benchmarks/bench_analyses.py                       # full size (GPU or patience)
    python benchmarks/bench_analyses.py --langs 3 --n 16 --per-layer-n 8 --sweep-n 16 \\
        --sweep-items 4 --sweep-layers 2          # a small run on 2 shared CPU cores
    python benchmarks/bench_analyses.py --smoke   # every step on the tiny model (seconds)
"""

import argparse
import tempfile

import torch
from common import interleaved, parse_args, timed

from interp_steer.activations import collect_activations
from interp_steer.analysis import layer_sweep, similarity_from_activations
from interp_steer.data import available_languages, load_parallel
from interp_steer.fitting import fit_vectors
from interp_steer.models import load_model

# --smoke: every step on the tiny model in a few seconds (the sweep included)
SMOKE = {"model": "tiny", "threads": 1, "langs": 1, "n": 3, "per_layer_n": 2,
         "batch_size": 4, "sweep_n": 3, "sweep_items": 2, "sweep_layers": 2}  # fmt: skip


def bench_similarity(model, args) -> None:
    langs = [c for c in available_languages("flores") if c != "en"][: args.langs]
    layers = list(range(int(model.cfg.n_layers)))
    print(f"\n== similarity: {len(langs)} languages × {len(layers)} layers × {args.n} sentences")
    english = load_parallel("flores", langs[0], n=args.n).english
    texts = {"en": english} | {c: load_parallel("flores", c, n=args.n).target for c in langs}
    # what cross_lingual_similarity does, timed in its two parts
    acts, collect_s = {}, 0.0
    for code, t in texts.items():
        acts[code], s = timed(collect_activations, model, t, layers=layers, pooling="mean",
                              batch_size=args.batch_size, progress=False)  # fmt: skip
        collect_s += s
    res, metric_s = timed(similarity_from_activations, acts)
    print(f"similarity: {collect_s + metric_s:.1f} s = collection {collect_s:.1f} s "
          f"({len(texts)} languages incl. English, one pass each for all layers) + "
          f"metrics {metric_s:.2f} s")  # fmt: skip
    # the same collection done once per layer, on a subset (the ratio does not depend on
    # n); each per-layer pass is timed next to a one-pass run, so both see the same load
    subset = english[: args.per_layer_n]
    ratio, per_layer, once = interleaved(
        lambda layer: collect_activations(model, subset, layers=[layer], pooling="mean",
                                          batch_size=args.batch_size, progress=False),
        lambda: collect_activations(model, subset, layers=layers, pooling="mean",
                                    batch_size=args.batch_size, progress=False),
        layers,
    )  # fmt: skip
    estimate = ratio * collect_s + metric_s
    print(f"one pass per layer instead ({len(subset)} sentences): {per_layer:.1f} s vs one "
          f"pass {once:.1f} s (median) -> {ratio:.1f}x; the analysis above layer by layer "
          f"≈ {estimate:.0f} s")  # fmt: skip
    _, vals = res.vs_english("centred_cosine")
    _, raw = res.vs_english("raw_cosine")
    _, shuffled = res.vs_english("shuffled_centred_cosine")
    _, retrieval = res.vs_english("retrieval")
    for layer in (0, len(layers) // 2, len(layers) - 1):
        print(f"layer {layer:2d}, mean over languages: raw cosine {raw[:, layer].mean():.3f}, "
              f"centred {vals[:, layer].mean():.3f} (shuffled {shuffled[:, layer].mean():.3f}), "
              f"retrieval {retrieval[:, layer].mean():.2f} (chance {1 / res.n:.2f})")  # fmt: skip


def bench_sweep(model, args) -> None:
    layers = list(range(int(model.cfg.n_layers)))
    corpus = load_parallel("flores", args.sweep_lang, n=args.sweep_n)
    print(f"\n== sweep ({args.sweep_lang}): mean_diff at {len(layers)} layers, "
          f"{len(corpus)} pairs")  # fmt: skip
    _, once = timed(fit_vectors, model, corpus, layers=layers, method="mean_diff",
                    collect_batch_size=args.batch_size)  # fmt: skip
    print(f"fit_vectors, all {len(layers)} layers from one pass: {once:.1f} s")
    subset = corpus.head(args.per_layer_n)
    ratio, per_layer, once_sub = interleaved(
        lambda layer: fit_vectors(model, subset, layers=[layer], method="mean_diff",
                                  collect_batch_size=args.batch_size),
        lambda: fit_vectors(model, subset, layers=layers, method="mean_diff",
                            collect_batch_size=args.batch_size),
        layers,
    )  # fmt: skip
    print(f"one fit_vectors call per layer instead ({len(subset)} pairs): {per_layer:.1f} s vs "
          f"{once_sub:.1f} s (median) -> {ratio:.1f}x")  # fmt: skip
    if args.sweep_items <= 0:
        return
    lang = args.sweep_task_lang
    sweep_layers = layers[:: max(1, len(layers) // args.sweep_layers)][: args.sweep_layers]
    with tempfile.TemporaryDirectory() as run_dir:
        res, total = timed(
            layer_sweep, model, [lang], task="xcopa", layers=sweep_layers,
            ratios=(0.1, 0.5), n=args.sweep_items, n_fit=args.sweep_n, test=False,
            run_dir=run_dir,
        )  # fmt: skip
        _, again = timed(
            layer_sweep, model, [lang], task="xcopa", layers=sweep_layers,
            ratios=(0.1, 0.5), n=args.sweep_items, n_fit=args.sweep_n, test=False,
            run_dir=run_dir,
        )  # fmt: skip
    cells = len(sweep_layers) * 2 + 1
    best = res.best(lang)
    print(f"layer_sweep xcopa-{lang}: {len(sweep_layers)} layers × 2 strengths × "
          f"{args.sweep_items} val items: {total:.1f} s ({total / cells:.1f} s per cell, "
          f"fitting included); resumed re-run {again:.2f} s")  # fmt: skip
    print(f"selected: layer {best['layer']}, ratio {best['strength']}, score "
          f"{best['score']:.2f} vs unsteered {res.baseline[0, 0]:.2f}")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--langs", type=int, default=24, help="FLORES languages (max 23 here)")
    parser.add_argument("--n", type=int, default=200, help="sentences per language")
    parser.add_argument("--per-layer-n", type=int, default=32, help="sentences, per-layer run")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--sweep-lang", default="de")
    parser.add_argument("--sweep-n", type=int, default=200)
    parser.add_argument("--sweep-items", type=int, default=0, help="XCOPA val items; 0: skip")
    parser.add_argument("--sweep-layers", type=int, default=4)
    parser.add_argument("--sweep-task-lang", default="it")
    parser.add_argument("--skip-similarity", action="store_true")
    parser.add_argument("--skip-sweep", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parse_args(parser, argv, SMOKE)
    if args.threads:
        torch.set_num_threads(args.threads)
    model, load_s = timed(load_model, args.model)
    print(f"model {args.model}: loaded in {load_s:.1f} s; torch threads "
          f"{torch.get_num_threads()}; device {model.cfg.device}")  # fmt: skip
    if not args.skip_similarity:
        bench_similarity(model, args)
    if not args.skip_sweep:
        bench_sweep(model, args)


if __name__ == "__main__":
    main()
