"""BiPO: training lowers the loss and raises the English preference; the model is untouched."""

import math
from types import SimpleNamespace

import pytest
import torch

from interp_steer.fitting import fit_vector
from interp_steer.fitting.bipo import (
    DEFAULT_PROMPT_TEMPLATE,
    _cosine,
    bipo_direction,
    encode_pairs,
    response_logprobs,
)

ENGLISH = ("The cat sleeps.", "Hello, friend.", "I like bread.", "It is cold.", "Go home.", "Yes.")
GERMAN = (
    "Die Katze schläft.",
    "Hallo, Freund.",
    "Ich mag Brot.",
    "Es ist kalt.",
    "Geh heim.",
    "Ja.",
)
PAIRS = SimpleNamespace(
    english=ENGLISH, target=GERMAN, source_lang="de", target_lang="en", name="toy-de", meta={}
)
FAST = {"lr": 0.05, "warmup_steps": 0, "batch_size": 3}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py: tiny ops contend on threads


def margin(model, vector=None):
    prompts = [DEFAULT_PROMPT_TEMPLATE.format(text=t) for t in GERMAN]
    lp_en = response_logprobs(model, prompts, ENGLISH, vector=vector)
    lp_de = response_logprobs(model, prompts, GERMAN, vector=vector)
    return float((lp_en - lp_de).mean())


def test_bipo_lowers_its_loss_and_prefers_english_under_plus_v(tiny):
    v = fit_vector(tiny, PAIRS, layer=2, method="bipo", epochs=8, **FAST)
    m = v.meta["metrics"]
    curve = m["loss_curve"]
    assert m["steps"] == len(curve) == 16
    assert curve[0] == pytest.approx(math.log(2), abs=1e-6)  # v = 0 at the first step
    assert m["final_loss"] < curve[0] - 0.05
    assert m["margin_after"] > m["margin_before"]
    assert margin(tiny, v) > margin(tiny) + 0.5
    assert m["norm"] == pytest.approx(v.norm, rel=1e-5)
    assert v.meta["hyper"]["beta"] == 0.1 and v.meta["hyper"]["weight_decay"] == 0.05
    assert v.meta["data"]["n_pairs"] == 6 and "prompt_template" in m


def test_no_parameter_gets_a_grad_and_flags_are_restored(tiny):
    params = list(tiny.parameters())
    before = [p.requires_grad for p in params]
    params[0].requires_grad_(False)  # a mixed state must come back exactly
    try:
        flags = [p.requires_grad for p in params]
        bipo_direction(tiny, PAIRS, layer=1, epochs=1, n_eval=0, **FAST)
        assert [p.requires_grad for p in params] == flags
        assert all(p.grad is None for p in params)
    finally:
        for p, flag in zip(params, before, strict=True):
            p.requires_grad_(flag)


def test_bipo_is_deterministic(tiny):
    a, ma = bipo_direction(tiny, PAIRS, layer=3, epochs=2, n_eval=0, **FAST)
    b, mb = bipo_direction(tiny, PAIRS, layer=3, epochs=2, n_eval=0, **FAST)
    c, _ = bipo_direction(tiny, PAIRS, layer=3, epochs=2, n_eval=0, seed=1, **FAST)
    assert torch.equal(a, b) and ma["loss_curve"] == mb["loss_curve"]
    assert not torch.equal(a, c)


def test_divergence_raises_with_the_step_and_leaves_the_model_clean(tiny):
    with pytest.raises(ValueError, match=r"NaN/inf at step 1; last finite loss: \d"):
        bipo_direction(tiny, PAIRS, layer=1, lr=1e30, warmup_steps=0, batch_size=3)
    assert all(p.grad is None and p.requires_grad for p in tiny.parameters())


def test_response_logprobs_masks_prompt_and_padding(tiny):
    prompts, responses = ["Hallo", "Ein viel längerer Satz"], [" Welt!", " da"]
    batched = response_logprobs(tiny, prompts, responses)
    for i, (ids, k) in enumerate(encode_pairs(tiny, prompts, responses)):
        logits = tiny(ids[None]).detach()[0].float()
        logp = torch.log_softmax(logits[:-1], dim=-1).gather(-1, ids[1:, None])[:, 0]
        torch.testing.assert_close(batched[i], logp[-k:].sum(), atol=1e-4, rtol=1e-5)


def test_cosine_schedule_warms_up_then_decays():
    assert _cosine(0, 100, 1000) == 0.0 and _cosine(50, 100, 1000) == 0.5
    assert _cosine(100, 100, 1000) == 1.0 and _cosine(1000, 100, 1000) == pytest.approx(0.0)
    assert _cosine(0, 0, 10) == 1.0


@pytest.mark.parametrize(
    ("pairs", "kwargs", "match"),
    [
        (SimpleNamespace(english=(), target=()), {}, "empty"),
        (SimpleNamespace(english=ENGLISH, target=GERMAN[:2]), {}, "6 texts but target has 2"),
        (PAIRS, {"layer": 9}, "out of range"),
        (PAIRS, {"beta": 0.0}, "beta"),
        (PAIRS, {"prompt_template": "no placeholder"}, "prompt_template"),
    ],
)
def test_bad_input_raises(tiny, pairs, kwargs, match):
    with pytest.raises(ValueError, match=match):
        bipo_direction(tiny, pairs, **{"layer": 1, **kwargs})
