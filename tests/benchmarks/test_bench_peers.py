"""benchmarks/bench_peers.py on the tiny model: our vectors match the peers' (skipped without them).

The peers read a plain Hugging Face model; the bridge wraps its model's modules in place, so
the benchmark builds an unwrapped twin of the tiny model from the same weights (``hf_twin``).
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_peers  # noqa: E402  (from the benchmarks folder, put on the path above)

from interp_steer.data import load_parallel  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def peers():
    try:
        return bench_peers.load_peers()
    except ImportError:
        pytest.skip("steering-vectors / repeng not installed (make bench installs them)")


@pytest.fixture(scope="module")
def twin(tiny):
    return bench_peers.hf_twin(tiny)


@pytest.mark.parametrize("n_layers", [4, 18])
def test_spread_layers(n_layers):
    for k in (1, n_layers // 3, n_layers, n_layers + 5):
        layers = bench_peers.spread_layers(n_layers, k)
        assert len(layers) == min(k, n_layers)
        assert layers[-1] == n_layers - 1 and layers[0] >= 0
        assert layers == sorted(set(layers))
    assert bench_peers.spread_layers(18, 6) == [2, 5, 8, 11, 14, 17]


def test_layer_conventions(tiny, twin, peers):
    pairs = load_parallel("msvamp", "de", n=3)
    texts = list(pairs.english) + list(pairs.target)
    errs = bench_peers.check_conventions(tiny, twin, tiny.tokenizer, texts, 1, peers[2])
    assert errs["same"] < 1e-5  # our block L = HF hidden_states[L + 1] = their block L
    assert errs["steering-vectors decoder_block 1"] < 1e-5
    assert errs["HF hidden_states[1]"] > 1e-2  # off by one: the input of block L


def test_vectors_match_peers(tiny, twin, peers):
    pairs = load_parallel("msvamp", "de", n=6)
    fits, vector = bench_peers.bench_fits(tiny, twin, tiny.tokenizer, pairs, 2, 4, peers)
    assert vector.layer == 2 and vector.meta["pooling"] == "last"
    assert fits["cos_md"] > 1 - 1e-6
    assert abs(fits["norm_md"] - 1) < 1e-5
    assert abs(fits["cos_pca"]) > 1 - 1e-5  # repeng picks the sign by a majority vote
