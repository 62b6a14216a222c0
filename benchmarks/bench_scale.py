"""Benchmark at scale: random weights of real architectures, through the loader users take.

No checkpoint of a 7B model can be downloaded here, but random weights of the same
architecture cost the same memory and time. This script builds one from a stock
``transformers`` config (Llama-2-7B, Llama-3-8B, Gemma-3-4B or Aya-23-8B sizes, or
Llama-3.2-1B for a CPU), directly on the target device in the target dtype, boots it with
:func:`interp_steer.models.load_model` (a folder holding its config and a tokenizer, plus
the in-memory weights, passed on to ``TransformerBridge.boot_transformers``) and measures
in one run:

1. a forward pass of ``--batch`` × ``--seq`` tokens: the bridge unsteered, steered
   (one vector, every position) and the plain Hugging Face model (its default attention,
   and eager attention as the bridge runs it) [steered <= 1.1x unsteered, bridge <= 1.1x
   HF]; and the forward scoring takes, the exact fast path
   (:func:`interp_steer.models.fast_forward`), unsteered and steered, against plain HF,
   with its logits against the bridge's [fast <= 1.1x HF]
2. greedy generation of ``--new-tokens`` tokens with the KV cache, steered vs unsteered
3. ``fit_vectors`` (mean_diff, one layer) on ``--pairs`` pairs against the physical limit:
   the Hugging Face decoder run on the same texts and stopped after that layer
4. one BiPO step (batch 1) at that layer: the fast step against the reference step
5. ``evaluate`` on ``--items`` XCOPA-shaped items (a premise and two choices of XCOPA's
   length), items per second
6. peak memory of each step: the device's (CUDA), else the process's peak resident set.

Texts are pseudo-random words tokenised by the tiny model's byte-level tokenizer (no real
tokenizer travels with a random model): a token is a byte, so per-token numbers carry over
and per-item numbers overstate a real tokenizer's sequence lengths; token counts are
printed. Ratios are measured in one run, interleaved where they compare two paths.

Usage::

    python benchmarks/bench_scale.py --size llama3.2-1b           # CPU, float32 (minutes)
    python benchmarks/bench_scale.py --size llama2-7b --device cuda   # bfloat16 on a GPU
    python benchmarks/bench_scale.py --smoke                       # tiny sizes (seconds)
"""

import argparse
import contextlib
import copy
import random
import resource
import statistics
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from bench_fitting import bipo_steps
from common import parse_args, timed
from transformers import AutoConfig, AutoModelForCausalLM

from interp_steer.data import ParallelCorpus, TaskItem, TaskSet
from interp_steer.evaluation import evaluate
from interp_steer.fitting import fit_vectors
from interp_steer.models import (
    fast_forward,
    fast_path_blocker,
    greedy_generate,
    left_pad,
    load_model,
)
from interp_steer.models.batching import token_ids
from interp_steer.models.loading import tiny_tokenizer
from interp_steer.steering import SteeringVector, steer

_TOKENS = {"pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 2}
SIZES: dict[str, tuple[str, dict[str, Any]]] = {
    # name: (transformers model_type, config fields); published sizes of each family
    "llama2-7b": (
        "llama",
        dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
             num_attention_heads=32, num_key_value_heads=32, vocab_size=32000),
    ),
    "llama3-8b": (
        "llama",
        dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
             num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
             rope_theta=500000.0),
    ),
    "aya23-8b": (
        "cohere",
        dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
             num_attention_heads=32, num_key_value_heads=8, vocab_size=256000,
             logit_scale=0.125),
    ),
    "gemma3-4b": (
        "gemma3_text",
        dict(hidden_size=2560, intermediate_size=10240, num_hidden_layers=34,
             num_attention_heads=8, num_key_value_heads=4, head_dim=256, vocab_size=262208,
             sliding_window=1024),
    ),
    "llama3.2-1b": (
        "llama",
        dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
             num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
             rope_theta=500000.0, tie_word_embeddings=True),
    ),
    "tiny-llama": (
        "llama",
        dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, vocab_size=260),
    ),
}  # fmt: skip
"""The model sizes ``--size`` builds (the tiny one for ``--smoke``)."""

# --smoke: every step at a tiny size in a few seconds
SMOKE = {
    "size": "tiny-llama",
    "device": "cpu",
    "threads": 1,
    "batch": 2,
    "seq": 16,
    "new_tokens": 2,
    "pairs": 4,
    "bipo_pairs": 2,
    "items": 2,
    "repeats": 1,
}


def build(size: str, device: torch.device, dtype: torch.dtype, folder: Path) -> tuple[Any, Any]:
    """Random weights of ``size`` on ``device`` in ``dtype``: ``(bridge, plain HF model)``.

    The bridge is booted by ``load_model`` (which wraps the Hugging Face modules in place);
    the plain model is a copy of the modules made before, sharing every weight tensor (no
    second copy of the weights), for the comparison with Hugging Face alone.
    """
    kind, fields = SIZES[size]
    config = AutoConfig.for_model(kind, **fields, **_TOKENS, max_position_embeddings=4096)
    config.architectures = [AutoModelForCausalLM._model_mapping[type(config)].__name__]
    torch.manual_seed(0)
    with torch.device(device):
        hf = AutoModelForCausalLM.from_config(config, dtype=dtype).eval()
    plain = copy.deepcopy(hf, memo={id(p): p for p in hf.parameters()})  # before the bridge
    config.save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = load_model(str(folder), device=device, dtype=dtype, hf_model=hf, verify=False)
    return model, plain


@contextlib.contextmanager
def peak_memory(device: torch.device, out: dict[str, float]) -> Iterator[None]:
    """Record the peak memory of the block in GiB: CUDA allocated, else the process's RSS."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    else:
        with contextlib.suppress(OSError):  # Linux: "5" resets the peak resident set
            Path("/proc/self/clear_refs").write_text("5")
    yield
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        out["peak"] = torch.cuda.max_memory_allocated(device) / 2**30
    else:
        out["peak"] = peak_rss()


def peak_rss() -> float:
    """The process's peak resident set in GiB (``VmHWM``, which ``clear_refs`` resets)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20  # KiB
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes there, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**30


def measured(device: torch.device, fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """``(fn(), seconds, peak GiB)``, synchronising CUDA around the timing."""
    mem: dict[str, float] = {}
    with peak_memory(device, mem):
        out, seconds = timed(fn)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return out, seconds, mem["peak"]


def interleaved_runs(
    device: torch.device, fns: dict[str, Callable[[], Any]], repeats: int
) -> tuple[dict[str, Any], dict[str, float], dict[str, float]]:
    """Run ``fns`` in turn, ``repeats`` rounds (a busy machine slows each alike).

    Returns each one's output of the last round, median seconds, and peak GiB.
    """
    outs: dict[str, Any] = {}
    times: dict[str, list[float]] = {key: [] for key in fns}
    peaks = dict.fromkeys(fns, 0.0)
    for _ in range(repeats):
        for key, fn in fns.items():
            outs[key], seconds, peak = measured(device, fn)
            times[key].append(seconds)
            peaks[key] = max(peaks[key], peak)
    return outs, {key: statistics.median(t) for key, t in times.items()}, peaks


def words(n: int, rng: random.Random) -> str:
    """``n`` pseudo-random lower-case words (3–8 letters)."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    return " ".join(
        "".join(rng.choice(letters) for _ in range(rng.randint(3, 8))) for _ in range(n)
    )


def hf_truncated(hf: Any, ids: torch.Tensor, mask: torch.Tensor, layer: int) -> None:
    """The physical limit of collection: the HF decoder's blocks 0..``layer``, nothing more."""
    decoder = hf.model
    blocks = decoder.layers
    decoder.layers = blocks[: layer + 1]
    try:
        decoder(input_ids=ids, attention_mask=mask.long())
    finally:
        decoder.layers = blocks


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="llama3.2-1b", choices=sorted(SIZES))
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if any)")
    parser.add_argument("--dtype", default=None, help="default: bfloat16 on CUDA, else float32")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--batch", type=int, default=8, help="sequences per forward")
    parser.add_argument("--seq", type=int, default=128, help="tokens per sequence")
    parser.add_argument("--new-tokens", type=int, default=32, help="tokens generated")
    parser.add_argument("--pairs", type=int, default=32, help="pairs fitted on (step 3)")
    parser.add_argument("--bipo-pairs", type=int, default=4, help="BiPO steps timed (step 4)")
    parser.add_argument("--items", type=int, default=32, help="XCOPA-shaped items (step 5)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per timing (median)")
    args = parse_args(parser, argv, SMOKE)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = (
        getattr(torch, args.dtype)
        if args.dtype
        else (torch.bfloat16 if device.type == "cuda" else torch.float32)
    )
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"{args.size} (random weights), {dtype}, on {name}"
        + (f", {torch.get_num_threads()} threads" if device.type == "cpu" else "")
    )
    with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
        (model, hf), t_load, mem_load = measured(
            device, lambda: build(args.size, device, dtype, Path(tmp))
        )
    n_params = sum(p.numel() for p in hf.parameters())
    bridged = {p.data_ptr() for p in model.original_model.parameters()}
    shared = all(p.data_ptr() in bridged for p in hf.parameters())
    print(
        f"0. built and booted in {t_load:.1f} s: {n_params / 1e9:.2f}B parameters, "
        f"{model.cfg.n_layers} layers, d_model {model.cfg.d_model}; peak {mem_load:.2f} GiB; "
        f"the plain HF copy shares the weights: {shared}"
    )
    layer = model.cfg.n_layers // 2
    rng = random.Random(0)
    gen = torch.Generator().manual_seed(0)
    direction = torch.randn(model.cfg.d_model, generator=gen)
    vector = SteeringVector(direction / direction.norm(), layer=layer, method="random")

    # 1. forward: bridge unsteered / steered / plain HF, same tokens
    text = words(args.seq, rng)
    row = token_ids(model, text, bos=True)[: args.seq]
    ids, mask = left_pad(model, [row] * args.batch)

    def bridge() -> Any:
        return model(ids, attention_mask=mask.long())

    def steered() -> Any:
        with steer(model, vector, alpha=4.0):
            return model(ids, attention_mask=mask.long())

    def plain() -> Any:
        return hf(input_ids=ids, attention_mask=mask.long()).logits

    # the bridge forces eager attention (its hooks see the pattern); a plain copy that runs
    # it too, sharing the weights, tells the bridge's own cost from the attention kernel's
    hf_eager = copy.deepcopy(hf, memo={id(p): p for p in hf.parameters()})
    hf_eager.set_attn_implementation("eager")

    def plain_eager() -> Any:
        return hf_eager(input_ids=ids, attention_mask=mask.long()).logits

    def fast() -> Any:
        return fast_forward(model, ids, mask)

    taken: list[bool] = []

    def fast_steered() -> Any:
        with steer(model, vector, alpha=4.0):
            taken.append(fast_path_blocker(model) is None)
            return fast_forward(model, ids, mask)

    fns = {
        "hf": plain,
        "hf_eager": plain_eager,
        "bridge": bridge,
        "steered": steered,
        "fast": fast,
        "fast_steered": fast_steered,
    }
    with torch.inference_mode():
        for fn in fns.values():  # warm-up (CUDA kernels, allocator)
            fn()
        outs, med, peaks = interleaved_runs(device, fns, args.repeats)
    same = float((outs["bridge"].float() - outs["hf"].float()).abs().max())
    tokens = ids.numel()
    print(
        f"1. forward {args.batch}x{ids.shape[1]} tokens: HF {med['hf'] * 1e3:.1f} ms "
        f"({tokens / med['hf']:.0f} tok/s), bridge {med['bridge'] * 1e3:.1f} ms, steered "
        f"{med['steered'] * 1e3:.1f} ms -> bridge / HF {med['bridge'] / med['hf']:.2f}x "
        f"[<= 1.1x], steered / unsteered {med['steered'] / med['bridge']:.2f}x [<= 1.1x]; "
        f"peak {peaks['bridge']:.2f} GiB (steered {peaks['steered']:.2f}); bridge vs HF logits: "
        f"max abs difference {same:.1e}"
    )
    real = mask.bool()  # pads are never read
    fast_same = float((outs["fast"] - outs["bridge"]).float()[real].abs().max())
    fast_same_steered = float((outs["fast_steered"] - outs["steered"]).float()[real].abs().max())
    print(
        f"   scoring forward, the fast path (taken under steering: {all(taken)}): "
        f"{med['fast'] * 1e3:.1f} ms, steered {med['fast_steered'] * 1e3:.1f} ms; HF with eager "
        f"attention as the bridge {med['hf_eager'] * 1e3:.1f} ms -> fast / HF "
        f"{med['fast'] / med['hf']:.2f}x [<= 1.1x], steered fast / HF "
        f"{med['fast_steered'] / med['hf']:.2f}x, fast / HF eager "
        f"{med['fast'] / med['hf_eager']:.2f}x, bridge / HF eager "
        f"{med['bridge'] / med['hf_eager']:.2f}x; fast vs bridge logits: max abs difference "
        f"{fast_same:.1e} (steered {fast_same_steered:.1e})"
    )

    # 2. greedy generation with the KV cache
    prompt_ids, prompt_mask = left_pad(model, [row[: max(4, args.seq // 2)]] * args.batch)

    def generate() -> list[list[int]]:
        return greedy_generate(
            model, prompt_ids, prompt_mask, max_new_tokens=args.new_tokens, progress=False
        )

    def generate_steered() -> list[list[int]]:
        with steer(model, vector, alpha=4.0):
            return generate()

    outs, g_med, g_peaks = interleaved_runs(
        device, {"plain": generate, "steered": generate_steered}, args.repeats
    )
    made = sum(map(len, outs["plain"]))
    g_plain, g_steer, g_peak = g_med["plain"], g_med["steered"], max(g_peaks.values())
    print(
        f"2. greedy generation, {args.batch} prompts x {args.new_tokens} new tokens (KV cache): "
        f"{g_plain:.2f} s ({made / g_plain:.1f} new tok/s), steered {g_steer:.2f} s -> "
        f"{g_steer / g_plain:.2f}x [<= 1.1x]; peak {g_peak:.2f} GiB"
    )

    # 3. fit_vectors against the decoder stopped at the layer (the physical limit)
    pairs = ParallelCorpus.coerce(
        [(words(args.seq // 6, rng), words(args.seq // 6, rng)) for _ in range(args.pairs)],
        lang="de",
    )
    texts = [*pairs.english, *pairs.target]
    batches = [left_pad(model, [token_ids(model, t, bos=True) for t in texts[i : i + 8]])
               for i in range(0, len(texts), 8)]  # fmt: skip
    n_tok = sum(int(m.sum()) for _, m in batches)

    def fit() -> Any:
        return fit_vectors(model, pairs, layers=[layer], collect_batch_size=8, progress=False)

    def limit() -> None:
        with torch.inference_mode():
            for b_ids, b_mask in batches:
                hf_truncated(hf, b_ids, b_mask, layer)

    _, f_med, f_peaks = interleaved_runs(device, {"fit": fit, "limit": limit}, args.repeats)
    t_fit, t_limit, f_peak = f_med["fit"], f_med["limit"], f_peaks["fit"]
    print(
        f"3. fit_vectors('mean_diff', {args.pairs} pairs, layer {layer}): {t_fit:.2f} s "
        f"({n_tok / t_fit:.0f} tok/s); HF decoder stopped at the layer {t_limit:.2f} s -> "
        f"{t_fit / t_limit:.2f}x the physical limit [<= 1.1x]; peak {f_peak:.2f} GiB"
    )

    # 4. one BiPO step, fast vs reference, batch 1
    bipo = ParallelCorpus.coerce(
        [(words(8, rng), words(8, rng)) for _ in range(args.bipo_pairs)], lang="de"
    )
    mem: dict[str, float] = {}
    with peak_memory(device, mem):
        bipo_steps(model, bipo, layer, number=4)
    print(f"   peak {mem['peak']:.2f} GiB")

    # 5. evaluate on XCOPA-shaped items (premise ~14 words, choices ~6 words)
    items = tuple(
        TaskItem(
            f"x-{i}",
            "xcopa",
            "it",
            words(14, rng),
            str(i % 2),
            (words(6, rng), words(6, rng)),
            meta={"relation": "cause"},
        )
        for i in range(args.items)
    )
    tasks = TaskSet("xcopa", "it", "test", items)
    result, t_eval, e_peak = measured(
        device,
        lambda: evaluate(model, tasks, vector=vector, alpha=4.0, batch_size=8, progress=False),
    )
    print(
        f"5. evaluate {len(result.items)} XCOPA-shaped items (2 choices, batch 8, steered): "
        f"{t_eval:.2f} s -> {len(result.items) / t_eval:.1f} items/s; peak {e_peak:.2f} GiB"
    )


if __name__ == "__main__":
    main()
