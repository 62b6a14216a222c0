"""collect_activations: batching, pooling, early stopping, the on-disk cache, bad input."""

import warnings

import pytest
import torch

from interp_steer.activations import Activations, collect_activations

TEXTS = [
    "Hallo Welt",
    "A much longer sentence here, longer than the sixteen-token sliding window.",
    "x",
    "Wie viele Kinder?",
    "Zwei plus zwei ist vier.",
]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py: tiny ops contend on threads


class CountForwards:
    """Counts calls (``finished=True``: completed calls) of a module, with a torch hook."""

    def __init__(self, module, finished=False):
        self.module, self.finished, self.calls = module, finished, 0

    def __enter__(self):
        register = (
            self.module.register_forward_hook
            if self.finished
            else (self.module.register_forward_pre_hook)
        )
        self.handle = register(self._count)
        return self

    def _count(self, *args):
        self.calls += 1

    def __exit__(self, *exc):
        self.handle.remove()


@pytest.mark.parametrize("pooling", ["last", "mean", "all"])
def test_batched_equals_one_by_one(tiny, pooling):
    batched = collect_activations(
        tiny, TEXTS, layers=[0, 2, 3], pooling=pooling, batch_size=3, progress=False
    )
    single = collect_activations(
        tiny, TEXTS, layers=[0, 2, 3], pooling=pooling, batch_size=1, progress=False
    )
    assert batched.layers == (0, 2, 3) and batched.n == len(TEXTS)
    assert batched.lengths == single.lengths
    for layer in batched.layers:
        torch.testing.assert_close(batched[layer], single[layer], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(batched.norms[layer], single.norms[layer], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("exclude_bos", [True, False])
def test_pooling_matches_run_with_cache(tiny, exclude_bos):
    acts = {
        p: collect_activations(
            tiny, TEXTS, layers=[1], pooling=p, exclude_bos=exclude_bos, progress=False
        )
        for p in ("last", "mean", "all")
    }
    start = 1 if exclude_bos else 0
    for i, text in enumerate(TEXTS):
        _, cache = tiny.run_with_cache(text)
        h = cache["blocks.1.hook_resid_post"][0]
        tokens = h[start:] if h.shape[0] > 1 else h
        torch.testing.assert_close(acts["last"][1][i], h[-1], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(acts["mean"][1][i], tokens.mean(0), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(acts["all"].take([i])[1], tokens, atol=1e-5, rtol=1e-5)
        norm = tokens.norm(dim=-1).mean()
        torch.testing.assert_close(acts["mean"].norms[1][i], norm, atol=1e-4, rtol=1e-5)
    assert acts["all"][1].dtype == torch.float32 and acts["all"][1].device.type == "cpu"


def test_forward_stops_after_the_deepest_requested_layer(tiny):
    hf = tiny.original_model
    block2, head = CountForwards(hf.model.layers[2], True), CountForwards(hf.lm_head, True)
    with block2, head:
        collect_activations(tiny, TEXTS, layers=[0, 1], progress=False)
        assert block2.calls == 0  # stop_at_layer=2 ends after block 1
        collect_activations(tiny, TEXTS, layers=[3], progress=False)
        assert block2.calls > 0 and head.calls == 0  # the unembedding never runs


def test_cache_returns_identical_tensors_without_a_forward(tiny, tmp_path):
    with CountForwards(tiny.original_model) as counter:
        first = collect_activations(
            tiny, TEXTS, layers=[1, 3], pooling="all", batch_size=2, cache_dir=tmp_path
        )
        assert counter.calls == 3
        second = collect_activations(
            tiny, TEXTS, layers=[1, 3], pooling="all", batch_size=2, cache_dir=tmp_path
        )
        assert counter.calls == 3  # read back from disk
        other = collect_activations(tiny, TEXTS[:2], layers=[1, 3], cache_dir=tmp_path)
        assert counter.calls == 4  # different texts and pooling: a different key
    assert len(list(tmp_path.glob("*.safetensors"))) == 2
    assert not list(tmp_path.glob(".*tmp"))  # atomic writes leave no temporaries
    assert second.lengths == first.lengths and second.pooling == "all"
    for layer in (1, 3):
        assert torch.equal(first[layer], second[layer])
        assert torch.equal(first.norms[layer], second.norms[layer])
    assert other.n == 2


def test_cache_survives_a_corrupt_file_and_bypasses_hooks(tiny, tmp_path):
    collect_activations(tiny, TEXTS, layers=[1], cache_dir=tmp_path, progress=False)
    (path,) = tmp_path.glob("*.safetensors")
    path.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable activation cache"):
        again = collect_activations(tiny, TEXTS, layers=[1], cache_dir=tmp_path, progress=False)
    assert again.n == len(TEXTS)
    double = [("blocks.0.hook_resid_post", lambda r, hook: r * 2)]
    with tiny.hooks(fwd_hooks=double), pytest.warns(UserWarning, match="cache bypassed"):
        steered = collect_activations(tiny, TEXTS, layers=[1], cache_dir=tmp_path)
    assert not torch.equal(steered[1], again[1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(
            collect_activations(tiny, TEXTS, layers=[1], cache_dir=tmp_path)[1], again[1]
        )


def test_take_splits_all_pooling_by_text(tiny):
    acts = collect_activations(tiny, TEXTS, layers=[2], pooling="all", progress=False)
    assert sum(acts.lengths) == acts[2].shape[0]
    parts = [acts.take([i])[2] for i in range(len(TEXTS))]
    assert torch.equal(torch.cat(parts), acts[2])
    swapped = acts.take([1, 0])
    assert swapped.lengths == (acts.lengths[1], acts.lengths[0])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"texts": [], "layers": [0]}, "non-empty sequence"),
        ({"texts": "one string", "layers": [0]}, "not one string"),
        ({"texts": TEXTS, "layers": [4]}, "out of range"),
        ({"texts": TEXTS, "layers": [-1]}, "out of range"),
        ({"texts": TEXTS, "layers": []}, "at least one layer"),
        ({"texts": TEXTS, "layers": [0], "batch_size": 0}, "batch_size"),
    ],
)
def test_bad_input_raises(tiny, kwargs, match):
    with pytest.raises(ValueError, match=match):
        collect_activations(tiny, progress=False, **kwargs)


def test_bad_pooling_raises(tiny):
    # TypeError comes from the runtime type checker active under pytest, ValueError without
    with pytest.raises((ValueError, TypeError), match="pooling"):
        collect_activations(tiny, TEXTS, layers=[0], pooling="max")


def test_activations_validates_its_fields():
    with pytest.raises(ValueError, match="rows"):
        Activations((0,), "last", {0: torch.zeros(3, 4)}, "m", 2, norms={0: torch.ones(2)})
    with pytest.raises(ValueError, match="lengths"):
        Activations((0,), "all", {0: torch.zeros(3, 4)}, "m", 2, norms={0: torch.ones(2)})
    with pytest.raises(ValueError, match="ascending"):
        Activations((1, 0), "last", {}, "m", 2)
