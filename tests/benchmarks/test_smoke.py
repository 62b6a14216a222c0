"""Every benchmark runs every step in its ``--smoke`` mode (tiny model, tiny sizes).

So a changed library signature fails here, not after an hour of ``make bench``. The runs
import each script's ``main(argv)`` (one interpreter: a fresh one costs seconds of imports
alone); ``bench_peers`` still starts its one scaling subprocess. No timing is asserted.
"""

import importlib
import re
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))  # the scripts import their helpers (`common`) by name
pytestmark = pytest.mark.usefixtures("one_thread")

# per benchmark: lines its smoke output must hold, one or more per step, in order
STEPS = {
    "bench_fitting": [
        r"^1\. collect 4 layers",
        r"^2\. throughput",
        r"^3\. fits on 8 pairs x 4 layers",
        r"fit_vectors\('mse', 2 pairs, 4 layers, cached\)",
        r"^4\. BiPO, 1 epoch on 2 pairs",
        r"^5\. BiPO step, batch 1, 2 pairs",  # fast vs reference step
        r"^6\. SFT \(LoRA r=8, q/k/v/o\), batch 1, 2 pairs: .* SFT step / BiPO step",
    ],
    "bench_evaluation": [
        r"^1\. generation 2x2 tokens",
        r"^2\. scoring 2 items x 2 choices",
        r"^3\. relevance of 3 prompts x 3 continuations",
        r"^load average",
    ],
    "bench_analyses": [
        r"^== similarity: 1 languages × 4 layers × 3 sentences",
        r"^similarity: .* metrics",
        r"^one pass per layer instead",
        r"^layer  3, mean over languages",
        r"^== sweep \(de\)",
        r"^one fit_vectors call per layer instead",
        r"^layer_sweep xcopa-it: 2 layers × 2 strengths × 2 val items",
        r"^selected: layer",
    ],
    "bench_lens": [
        r"^1\. fit_tuned_lens: 6 sequences \(3 languages × 2\), \d+ positions",
        r"^   [0-9.]+ s per sequence; [0-9.]+ ms per position-step \(3 layers",
        r"^   training KL, mean over layers: first step",
        r"^2\. held-out KL\(final \|\| lens\), nats, 3 sequences",
        r"^       3       0\.000       0\.000$",  # the last layer: the model's output
        r"^   tuned below logit at every earlier layer: (True|False)",
    ],
    "bench_scale": [
        r"^tiny-llama \(random weights\), torch\.float32, on CPU",
        r"^0\. built and booted in .* parameters, 2 layers, d_model 64; peak [0-9.]+ GiB",
        r"^1\. forward 2x\d+ tokens: .* bridge / HF [0-9.]+x .* steered / unsteered [0-9.]+x",
        # the fast path is taken under steer and equals the bridge to float32 rounding
        r"^   scoring forward, the fast path \(taken under steering: True\): .* fast / HF "
        r"[0-9.]+x .* steered fast / HF [0-9.]+x, fast / HF eager [0-9.]+x, bridge / HF eager "
        r"[0-9.]+x; fast vs bridge logits: max abs difference (0\.0e\+00|\d\.\de-0[6-9]) "
        r"\(steered (0\.0e\+00|\d\.\de-0[6-9])\)$",
        r"^2\. greedy generation, 2 prompts x 2 new tokens \(KV cache\): .* peak",
        r"^3\. fit_vectors\('mean_diff', 4 pairs, layer 1\): .* the physical limit",
        r"^4\. BiPO step, batch 1, 2 pairs at layer 1: .* fast",
        r"gradient cosine (1\.000000|0\.99999\d)$",  # the fast step runs on Llama, exactly
        r"^5\. evaluate 2 XCOPA-shaped items .* items/s; peak",
    ],
    "bench_peers": [
        r"^1\. conventions on 8 texts .*identical to ours: True",
        r"^   HF hidden_states\[2\] \(repeng layer 1\) +[0-9.]+e-0[6-9]",  # = our block 1
        r"^   HF hidden_states\[1\] +[0-9.]+e-0[12]",  # off by one: the input of block 1
        r"^2\. fitting at layer 1 on 6 pairs",
        r"^3\. steering overhead",
        r"^   forward +unsteered",
        r"^   generate 2 tokens +unsteered",
        r"^4\. activations at all 4 layers",
        r"^5\. scaling of fit_vectors",
        r"^   2 layers, 4 pairs .* MB",
        r"^== summary",
        r"^steered / unsteered generate 2 tokens +[0-9.]+x",
        r"^fit_vectors 2 layers, 4 pairs +[0-9.]+ s",
    ],
}


def peers_installed() -> bool:
    try:
        importlib.import_module("bench_peers").load_peers()
    except ImportError:
        return False
    return True


def test_every_benchmark_has_a_smoke_test_and_runs_in_make_bench():
    scripts = sorted(p.stem for p in BENCHMARKS.glob("bench_*.py"))
    assert scripts == sorted(STEPS)
    makefile = (BENCHMARKS.parent / "Makefile").read_text()
    bench = makefile.split("\nbench:", 1)[1].split("\n\n", 1)[0]
    for name in scripts:
        assert f"benchmarks/{name}.py" in bench, f"make bench does not run {name}"


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=[pytest.mark.slow] if n == "bench_peers" else []) for n in STEPS],
)  # bench_peers starts a fresh interpreter for its step 5: seconds of imports
def test_smoke(name, capsys):
    importlib.import_module(name).main(["--smoke"])
    out = capsys.readouterr().out
    rest = out
    for step in STEPS[name]:
        found = re.search(step, rest, flags=re.MULTILINE)
        assert found, f"{name} --smoke: no line matching {step!r} (in order) in:\n{out}"
        rest = rest[found.end() :]
    if name == "bench_peers":  # the peers' parts run where they are installed, else say so
        if peers_installed():
            assert re.search(r"^   steering-vectors decoder_block 1 +[0-9.]+e-0[6-9]", out, re.M)
            one = r"(1\.000000|0\.99999\d)"  # cosines and the norm ratio, to float32 rounding
            assert re.search(rf"^  cosine, norm ratio +{one}, {one}$", out, re.M)
            assert re.search(rf"^  cosine +-?{one}$", out, re.M)  # repeng's sign: a majority vote
        else:
            assert "steering-vectors / repeng not installed" in out
            assert re.search(r"^  cosine +skipped: peers not installed", out, re.M)
