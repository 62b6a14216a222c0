"""Benchmark against peer libraries: steering-vectors 0.12.2 and repeng 0.4.0.

One run, one model, the same MSVAMP pairs (English = positive, target = negative), the
same layer ``L``, the same batch size. Prints, then sums up in one table:

1. conventions, on a few texts: our ``blocks.L.hook_resid_post`` at the last real token
   against the Hugging Face model's ``hidden_states[L + 1]`` (repeng's layer ``L``) and
   ``hidden_states[L]``, and against steering-vectors' decoder-block ``L`` output;
2. fitting wall time and the cosine between the vectors, collection included:
   mean difference, ours (``pooling="last"``) vs ``steering_vectors.train_steering_vector``
   (reads the last token, ``read_token_index=-1``); PCA of the paired differences, ours
   (``method="pca", center=True``) vs repeng's ``ControlVector.train(method="pca_diff")``
   (sklearn's PCA centres; repeng 0.4.0 has only pca_diff, pca_center and umap, no mean
   difference). The peers run the separately loaded Hugging Face model in full, logits
   included; ours stops after block ``L``;
3. steering overhead (ours): a steered batched forward and greedy generation (KV cache,
   fixed length) against unsteered, interleaved, median of the per-pair ratios;
4. activations at every layer in one pass vs one pass per layer;
5. scaling of ``fit_vectors`` (mean_diff, last-token pooling): wall time and peak resident
   memory vs pairs and vs layers, one fresh subprocess per configuration. Memory is the
   process's peak RSS (``VmHWM``, reset through ``/proc/self/clear_refs`` after the model is
   loaded) minus its RSS at that moment: what the fit adds on top of the loaded model,
   torch's CPU allocations included (tracemalloc would not see those).

The peers pin ``transformers<5`` (steering-vectors) and ``numpy<2`` (repeng), which this
project cannot take, so they are installed without their dependencies (``make bench`` does
it)::

    pip install -e '.[bench]' && pip install --no-deps steering-vectors==0.12.2 repeng==0.4.0

repeng 0.4.0 only uses ``np.float_`` in annotations, which NumPy 2 removed; this script
aliases it to ``np.float64`` before importing repeng.

Usage::

    python benchmarks/bench_peers.py --threads 1           # 1000 pairs, long on one thread
    python benchmarks/bench_peers.py --quick --threads 1   # few pairs, a few minutes
    python benchmarks/bench_peers.py --smoke               # every step on the tiny model

``--smoke`` runs the tiny random model (its Hugging Face twin, built from the same weights,
stands in for the checkpoint the peers read) with tiny sizes and one scaling subprocess;
without the peers installed it skips only their parts (steering-vectors' block reading in
step 1, the peers' fits in step 2) and runs all of ours. Without ``--smoke`` the peers are
required.
"""

import argparse
import contextlib
import gc
import io
import json
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from common import interleaved, parse_args, timed
from transformers import AutoModelForCausalLM, AutoTokenizer

from interp_steer.activations import collect_activations
from interp_steer.constants import OFFLINE_MODELS
from interp_steer.data import load_parallel
from interp_steer.fitting import fit_vector, fit_vectors
from interp_steer.models import left_pad, load_model
from interp_steer.models.batching import token_ids
from interp_steer.models.loading import converted_checkpoint
from interp_steer.steering import steer

# --smoke: every step on the tiny model in seconds (sizes of steps 3-5 are set in main)
SMOKE = {"model": "tiny", "threads": 1, "pairs": 6, "batch_size": 4}
PEERS_MISSING = "steering-vectors / repeng not installed (make bench installs them)"


def load_peers():
    """Import the peers (repeng needs ``np.float_``, gone in NumPy 2: alias it)."""
    if not hasattr(np, "float_"):
        np.float_ = np.float64
    from repeng import ControlVector, DatasetEntry
    from steering_vectors import record_activations, train_steering_vector

    return ControlVector, DatasetEntry, record_activations, train_steering_vector


def peers_or_none(required: bool):
    """The peers, or ``None`` when they are not installed and not ``required``."""
    try:
        return load_peers()
    except ImportError as err:
        if required:
            raise SystemExit(f"{PEERS_MISSING}: {err}") from None
        print(f"{PEERS_MISSING}: their parts are skipped ({err})")
        return None


def hf_twin(model):
    """A plain Hugging Face model with the bridge's weights (the bridge wraps its own in place).

    For the tiny model, which has no checkpoint on disk.
    """
    wrapped = model.original_model
    state = {k.replace("._original_component", ""): v for k, v in wrapped.state_dict().items()}
    twin = type(wrapped)(wrapped.config).eval()
    missing, _ = twin.load_state_dict(state, strict=False)
    if missing:
        raise RuntimeError(f"the Hugging Face twin lacks weights: {missing}")
    return twin


def hf_model(name: str, model):
    """The peers' plain Hugging Face model and tokenizer for ``--model name``."""
    if name == "tiny":
        hf, tok = hf_twin(model), model.tokenizer
    elif name in OFFLINE_MODELS or Path(name).expanduser().is_dir():
        path = converted_checkpoint(name) if name in OFFLINE_MODELS else Path(name).expanduser()
        hf = AutoModelForCausalLM.from_pretrained(path, dtype=model.cfg.dtype)
        tok = AutoTokenizer.from_pretrained(path)
    else:
        raise SystemExit(f"--model must be an offline alias or a checkpoint folder: {name!r}")
    return hf.to(model.cfg.device).eval(), tok


def cosine(a, b) -> float:
    a, b = torch.as_tensor(np.asarray(a)).double(), torch.as_tensor(np.asarray(b)).double()
    return float(F.cosine_similarity(a.flatten(), b.flatten(), dim=0))


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest per-row ``|a - b| / |b|``."""
    return float(((a - b).norm(dim=-1) / b.norm(dim=-1)).max())


def check_conventions(model, hf, tok, texts, layer, record_activations) -> dict[str, float]:
    """Compare our last-token residuals with the HF model's hidden states and the peers'.

    ``record_activations`` is steering-vectors'; ``None`` (not installed) skips its row.
    """
    n_layers = int(model.cfg.n_layers)
    ours = collect_activations(
        model, texts, layers=sorted({layer, n_layers - 1}), pooling="last", progress=False
    )
    same_ids = all(model.to_tokens(t)[0].tolist() == tok(t)["input_ids"] for t in texts)
    enc = tok(texts, padding=True, return_tensors="pt").to(hf.device)
    with contextlib.ExitStack() as stack, torch.inference_mode():
        rec = None
        if record_activations is not None:
            rec = stack.enter_context(record_activations(hf, layer_nums=[layer]))
        out = hf(**enc, output_hidden_states=True)
    width = enc["attention_mask"].shape[1]
    last = (enc["attention_mask"] * torch.arange(width, device=hf.device)).argmax(1)

    def pick(h: torch.Tensor) -> torch.Tensor:
        return h[torch.arange(len(texts), device=h.device), last].float().cpu()

    hf_same = rel_err(pick(out.hidden_states[layer + 1]), ours[layer])
    sv_same = None if rec is None else rel_err(pick(rec[layer][-1]), ours[layer])
    errs = {  # "same": the readings that must match ours
        "same": max(e for e in (hf_same, sv_same) if e is not None),
        f"HF hidden_states[{layer + 1}] (repeng layer {layer})": hf_same,
    }
    if sv_same is not None:
        errs[f"steering-vectors decoder_block {layer}"] = sv_same
    errs |= {
        f"HF hidden_states[{layer}]": rel_err(pick(out.hidden_states[layer]), ours[layer]),
        f"HF hidden_states[{n_layers}] vs our block {n_layers - 1}": rel_err(
            pick(out.hidden_states[n_layers]), ours[n_layers - 1]
        ),
    }
    print(f"\n1. conventions on {len(texts)} texts (HF tokenizer pads {tok.padding_side}; "
          f"token ids incl. BOS identical to ours: {same_ids}); max relative difference "
          f"from our blocks.L.hook_resid_post, last real token:")  # fmt: skip
    for name, err in list(errs.items())[1:]:
        print(f"   {name:48s} {err:.2e}")
    if rec is None:
        print(f"   (steering-vectors decoder_block {layer}: skipped, not installed)")
    return errs


def bench_fits(model, hf, tok, pairs, layer, batch_size, peers):
    """Fit ours and (when ``peers`` is not ``None``) the peers' vectors; time and compare."""
    english, target = list(pairs.english), list(pairs.target)
    opts = {"layer": layer, "pooling": "last", "collect_batch_size": batch_size}
    print(f"\n2. fitting at layer {layer} on {len(pairs)} pairs, batch size {batch_size} "
          f"(each timed once, collection included)")  # fmt: skip
    ours_md, t_md = timed(fit_vector, model, pairs, method="mean_diff", **opts)
    if peers is None:
        ours_pca, t_pca = timed(fit_vector, model, pairs, method="pca", center=True, **opts)
        print(f"   mean_diff  ours {t_md:7.1f} s | steering-vectors: skipped, not installed")
        print(f"   pca_diff   ours {t_pca:7.1f} s | repeng: skipped, not installed")
        return {"t_md": t_md, "t_pca": t_pca}, ours_md
    control_vector, dataset_entry, _, train_steering_vector = peers
    sv, t_sv = timed(
        train_steering_vector, hf, tok, list(zip(english, target, strict=True)),
        layers=[layer], read_token_index=-1, batch_size=batch_size,
    )  # fmt: skip
    ours_pca, t_pca = timed(fit_vector, model, pairs, method="pca", center=True, **opts)
    entries = [dataset_entry(positive=e, negative=t) for e, t in zip(english, target, strict=True)]
    with contextlib.redirect_stderr(io.StringIO()):  # repeng's tqdm bars cannot be turned off
        cv, t_rp = timed(
            control_vector.train, hf, tok, entries, hidden_layers=[layer],
            batch_size=batch_size, method="pca_diff",
        )  # fmt: skip
    theirs_md, theirs_pca = sv.layer_activations[layer].float().cpu(), cv.directions[layer]
    out = {
        "t_md": t_md, "t_sv": t_sv, "t_pca": t_pca, "t_rp": t_rp,
        "cos_md": cosine(ours_md.direction, theirs_md),
        "norm_md": float(ours_md.norm / theirs_md.norm()),
        "cos_pca": cosine(ours_pca.direction, theirs_pca),
        "cos_md_rp": cosine(ours_md.direction, theirs_pca),
    }  # fmt: skip
    print(
        f"   mean_diff  ours {t_md:7.1f} s | steering-vectors {t_sv:7.1f} s -> "
        f"{t_sv / t_md:.2f}x; cosine {out['cos_md']:.6f}, norm ratio {out['norm_md']:.6f}"
    )
    print(
        f"   pca_diff   ours {t_pca:7.1f} s | repeng           {t_rp:7.1f} s -> "
        f"{t_rp / t_pca:.2f}x; cosine {out['cos_pca']:.6f} (repeng's sign: majority vote)"
    )
    print(f"   (cosine of repeng's pca_diff with the mean difference: {out['cos_md_rp']:.4f})")
    return out, ours_md


def bench_steering(model, vector, prompts, new_tokens, repeat) -> dict[str, float]:
    ids, mask = left_pad(model, [token_ids(model, p, bos=True) for p in prompts])
    mask = mask.long()

    def forward() -> None:
        model.forward(ids, attention_mask=mask)

    def generate() -> None:
        model.generate(
            ids, attention_mask=mask, max_new_tokens=new_tokens, do_sample=False,
            stop_at_eos=False, verbose=False, return_type="tokens",
        )  # fmt: skip

    print(f"\n3. steering overhead (ours, alpha 1, all positions), {len(prompts)} prompts, "
          f"median of {repeat} interleaved pairs:")  # fmt: skip
    out = {}
    for name, fn in (("forward", forward), (f"generate {new_tokens} tokens", generate)):
        plain, steered = [], []
        with torch.inference_mode():
            fn()  # warm-up
            for _ in range(repeat):
                plain.append(timed(fn)[1])
                with steer(model, vector):
                    steered.append(timed(fn)[1])
        ratio = statistics.median(s / p for s, p in zip(steered, plain, strict=True))
        out[name] = ratio
        print(f"   {name:20s} unsteered {statistics.median(plain):.3f} s, steered "
              f"{statistics.median(steered):.3f} s -> {ratio:.3f}x")  # fmt: skip
    return out


def bench_one_pass(model, texts, batch_size) -> float:
    layers = list(range(int(model.cfg.n_layers)))
    opts = {"pooling": "last", "batch_size": batch_size, "progress": False}
    ratio, per_layer, once = interleaved(
        lambda layer: collect_activations(model, texts, layers=[layer], **opts),
        lambda: collect_activations(model, texts, layers=layers, **opts),
        layers,
    )
    print(
        f"\n4. activations at all {len(layers)} layers, {len(texts)} texts: one pass per "
        f"layer {per_layer:.1f} s vs one pass {once:.2f} s (median) -> {ratio:.1f}x"
    )
    return ratio


def spread_layers(n_layers: int, k: int) -> list[int]:
    """``k`` layers evenly spread, ending at the last (the same forward depth for every k).

    >>> spread_layers(18, 6)
    [2, 5, 8, 11, 14, 17]
    """
    k = min(k, n_layers)
    return sorted({n_layers - 1 - i * (n_layers // k) for i in range(k)})


def status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def scale_child(args) -> None:
    """One scaling configuration in this (fresh) process; prints one JSON line."""
    model = load_model(args.model, device=args.device)
    pairs = load_parallel("msvamp", args.lang, n=args.child_pairs)
    layers = [int(x) for x in args.child_layers.split(",")]
    opts = {"layers": layers, "pooling": "last", "collect_batch_size": args.batch_size}
    fit_vectors(model, pairs.head(2), **opts)  # warm-up: lazy one-time allocations
    gc.collect()
    base = status_mb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS (VmHWM)
    _, seconds = timed(fit_vectors, model, pairs, **opts)
    print(json.dumps({"seconds": seconds, "peak_mb": status_mb("VmHWM") - base, "base_mb": base}))


def run_child(args, n_pairs: int, layers: list[int]) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--model", args.model, "--lang", args.lang,
           "--batch-size", str(args.batch_size), "--child-pairs", str(n_pairs),
           "--child-layers", ",".join(map(str, layers))]  # fmt: skip
    cmd += ["--threads", str(args.threads)] if args.threads else []
    cmd += ["--device", args.device] if args.device else []
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"scaling run {n_pairs} pairs {layers} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_scaling(args, n_layers: int, layer: int) -> list[tuple[str, dict[str, float]]]:
    pair_counts = sorted({min(n, args.pairs) for n in args.scale_pairs})
    layer_pairs = min(args.scale_layer_pairs, args.pairs)
    layer_counts = args.scale_layer_counts or (1, max(1, n_layers // 3), n_layers)
    configs = [(f"{n} pairs, layer {layer}", n, [layer]) for n in pair_counts]
    configs += [
        (f"{k} layers, {layer_pairs} pairs", layer_pairs, spread_layers(n_layers, k))
        for k in sorted(set(layer_counts))
    ]
    print("\n5. scaling of fit_vectors (mean_diff, last token), a fresh process each; peak RSS "
          "above the loaded model's RSS:")  # fmt: skip
    rows = []
    for label, n, layers in configs:
        res = run_child(args, n, layers)
        rows.append((label, res))
        print(f"   {label:24s} {res['seconds']:7.1f} s  {res['peak_mb']:7.0f} MB "
              f"(model loaded: {res['base_mb']:.0f} MB; layers {layers})")  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="gemma-3-270m", help="an offline alias or a folder")
    parser.add_argument("--lang", default="de")
    parser.add_argument("--pairs", type=int, default=1000, help="MSVAMP pairs for the fits")
    parser.add_argument("--layer", type=int, default=None, help="default: n_layers // 3")
    parser.add_argument("--batch-size", type=int, default=8, help="the same for every library")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--device", default=None)
    parser.add_argument("--quick", action="store_true", help="few pairs: a shorter run")
    parser.add_argument("--child-pairs", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-layers", help=argparse.SUPPRESS)
    args = parse_args(parser, argv, SMOKE)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child_pairs:
        scale_child(args)
        return
    if args.quick:
        args.pairs = min(args.pairs, 24)
    # step 5's configurations (one subprocess each) and steps 3-4's sizes
    args.scale_pairs = (8, 16, 24) if args.quick else (100, 300, 1000)
    args.scale_layer_pairs, args.scale_layer_counts = (8 if args.quick else 300), None
    ratio_texts, new_tokens, repeat = (8, 8, 3) if args.quick else (32, 32, 5)
    if args.smoke:  # one subprocess (a fresh interpreter costs seconds), two layers in it
        args.scale_pairs, args.scale_layer_pairs, args.scale_layer_counts = (), 4, (2,)
        ratio_texts, new_tokens, repeat = 4, 2, 1

    peers = peers_or_none(required=not args.smoke)
    model, t_load = timed(load_model, args.model, device=args.device)
    hf, tok = hf_model(args.model, model)
    n_layers = int(model.cfg.n_layers)
    layer = n_layers // 3 if args.layer is None else args.layer
    pairs = load_parallel("msvamp", args.lang, n=args.pairs)
    attn = (model.original_model.config._attn_implementation, hf.config._attn_implementation)
    setup = (f"{args.model} ({n_layers} layers, d_model {model.cfg.d_model}, "
             f"{model.cfg.device}, {model.cfg.dtype}); torch {torch.__version__}, threads "
             f"{torch.get_num_threads()}; {len(pairs)} msvamp-{args.lang} pairs; layer {layer}; "
             f"batch {args.batch_size}; attention: ours {attn[0]}, peers {attn[1]}")  # fmt: skip
    print(f"model loaded in {t_load:.1f} s: {setup}")

    errs = check_conventions(
        model, hf, tok, list(pairs.target[:4]) + list(pairs.english[:4]), layer,
        None if peers is None else peers[2],
    )  # fmt: skip
    fits, vector = bench_fits(model, hf, tok, pairs, layer, args.batch_size, peers)
    del hf
    gc.collect()
    steering = bench_steering(model, vector, list(pairs.target[:8]), new_tokens, repeat)
    texts = list(pairs.english[: ratio_texts // 2]) + list(pairs.target[: ratio_texts // 2])
    one_pass = bench_one_pass(model, texts, args.batch_size)
    scaling = bench_scaling(args, n_layers, layer)

    print(f"\n== summary: {setup}")
    skipped = "skipped: peers not installed"
    rows = [
        ("max rel. diff, ours vs HF hidden_states[L+1] / steering-vectors",
         f"{errs['same']:.1e}"),
        ("fit mean_diff: steering-vectors / ours (time)",
         f"{fits['t_sv'] / fits['t_md']:.2f}x ({fits['t_sv']:.1f} s / {fits['t_md']:.1f} s)"
         if peers else f"{skipped} (ours {fits['t_md']:.1f} s)"),
        ("  cosine, norm ratio",
         f"{fits['cos_md']:.6f}, {fits['norm_md']:.6f}" if peers else skipped),
        ("fit pca_diff: repeng / ours (time)",
         f"{fits['t_rp'] / fits['t_pca']:.2f}x ({fits['t_rp']:.1f} s / {fits['t_pca']:.1f} s)"
         if peers else f"{skipped} (ours {fits['t_pca']:.1f} s)"),
        ("  cosine", f"{fits['cos_pca']:.6f}" if peers else skipped),
    ]  # fmt: skip
    rows += [(f"steered / unsteered {name}", f"{r:.3f}x") for name, r in steering.items()]
    rows.append((f"one pass per layer / one pass, {n_layers} layers", f"{one_pass:.1f}x"))
    rows += [(f"fit_vectors {label}", f"{r['seconds']:.1f} s, +{r['peak_mb']:.0f} MB peak RSS")
             for label, r in scaling]  # fmt: skip
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:{width}s}  {value}")


if __name__ == "__main__":
    main()
