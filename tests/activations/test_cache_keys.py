"""The activation cache's key holds every setting that changes the activations (issue 16).

Changing any one setting gives another key (and a fresh collection equal to an uncached
one); the batch size, which does not change them, keeps the key.
"""

import pytest
import torch

from interp_steer.activations import collect_activations, model_fingerprint
from interp_steer.activations.cache import cache_key
from interp_steer.models import load_model
from interp_steer.models.layers import HOOK_TEMPLATE

TEXTS = ["Hallo Welt", "Wie viele Kinder?", "Zwei plus zwei ist vier."]
BASE = dict(texts=TEXTS, layers=(1, 2), pooling="mean", exclude_bos=True, hook=HOOK_TEMPLATE)
CHANGES = {
    "texts": dict(texts=[*TEXTS[:2], "Zwei plus zwei ist fünf."]),
    "texts (fewer: another n)": dict(texts=TEXTS[:2]),
    "texts (order)": dict(texts=TEXTS[::-1]),
    "layers": dict(layers=(1, 3)),
    "pooling": dict(pooling="last"),
    "exclude_bos": dict(exclude_bos=False),
    "hook": dict(hook="blocks.{layer}.hook_resid_mid"),
}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py: tiny ops contend on threads


def key(model, **kw):
    kw = {**BASE, **kw}
    return cache_key(model, kw["texts"], kw["layers"], kw["pooling"], kw["exclude_bos"], kw["hook"])


@pytest.mark.parametrize("name", list(CHANGES))
def test_a_changed_setting_changes_the_key(tiny, name):
    assert key(tiny, **CHANGES[name]) != key(tiny)


@pytest.fixture(scope="module")
def retrained():
    """A second tiny model with one weight of a late block changed (embeddings untouched)."""
    model = load_model("tiny")
    params = dict(model.original_model.named_parameters())
    name = next(n for n in params if "layers.3" in n and "down_proj" in n)
    with torch.no_grad():
        params[name].view(-1)[-1] += 1.0
    return model


def test_other_weights_behind_the_same_embeddings_change_the_key(tiny, retrained):
    assert model_fingerprint(retrained) != model_fingerprint(tiny)
    assert key(retrained) != key(tiny)
    assert model_fingerprint(load_model("tiny")) == model_fingerprint(tiny)  # but stable


def test_the_batch_size_keeps_the_key_and_a_cached_read_is_a_fresh_collection(tiny, tmp_path):
    kw = dict(layers=[1, 2], pooling="mean", cache_dir=tmp_path, progress=False)
    first = collect_activations(tiny, TEXTS, batch_size=1, **kw)
    again = collect_activations(tiny, TEXTS, batch_size=3, **kw)  # read back from the cache
    assert len(list(tmp_path.iterdir())) == 1
    fresh = collect_activations(tiny, TEXTS, layers=[1, 2], pooling="mean", batch_size=3,
                                progress=False)  # fmt: skip
    for layer in (1, 2):
        assert again[layer].equal(first[layer])
        torch.testing.assert_close(again[layer], fresh[layer])
    other = collect_activations(tiny, TEXTS, layers=[1, 2], pooling="last", cache_dir=tmp_path,
                                progress=False)  # fmt: skip
    assert len(list(tmp_path.iterdir())) == 2 and not other[1].equal(first[1])
