"""BiPO's training core: the exact fast step, scale-aware lr, the paper's recipe, float32
training on a bfloat16 model, and the continuation pairing (issue #18, items 1-5)."""

import inspect
import math
from types import SimpleNamespace

import pytest
import torch

from interp_steer.activations import collect_activations
from interp_steer.fitting import fit_vector
from interp_steer.fitting.bipo import (
    DEFAULT_PROMPT_TEMPLATE,
    FastStep,
    ReferenceStep,
    _engine,
    _TokenLogprob,
    bipo_direction,
    encode_preference,
    response_logprobs,
)
from interp_steer.models import load_model

ENGLISH = ("The cat sleeps on the warm mat.", "Hello, my friend.", "I like fresh bread.")
GERMAN = (
    "Die Katze schläft auf der warmen Matte.",
    "Hallo, mein Freund.",
    "Ich mag frisches Brot.",
)
PAIRS = SimpleNamespace(english=ENGLISH, target=GERMAN, source_lang="de", name="toy", meta={})
PROMPTS = [DEFAULT_PROMPT_TEMPLATE.format(text=t) for t in GERMAN]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture
def frozen(tiny, frozen_params):
    """The tiny model with its parameters' requires_grad off (as BiPO trains), restored after."""
    with frozen_params(tiny) as model:
        yield model


# ------------------------------------------------------------- 1. the exact fast step


@pytest.mark.parametrize("layer", [0, 2])
def test_fast_step_equals_the_reference_step(frozen, layer, fast_step_matches):
    pairs, _ = encode_preference(frozen, PROMPTS, ENGLISH, GERMAN, 128, True)
    fast_step_matches(frozen, layer, pairs)
    # the prompts are longer than the tiny model's sliding window of 16 tokens
    assert min(len(p.prompt) for p in pairs) > frozen.original_model.config.sliding_window
    fast = FastStep(frozen, layer, pairs, False)
    v = (torch.randn(64, generator=torch.Generator().manual_seed(layer)) * 0.5).requires_grad_()
    with torch.enable_grad():
        # a batch of pairs: the mean loss and its gradient, as the reference's one batch
        loss_fast, grad_fast = fast.loss_and_grad([2, 0], v, -1.0, 0.1)
        loss_ref, grad_ref = ReferenceStep(frozen, layer, pairs, 2).loss_and_grad(
            [2, 0], v, -1.0, 0.1
        )
    assert float(loss_fast) == pytest.approx(float(loss_ref), rel=1e-4)
    assert float(torch.nn.functional.cosine_similarity(grad_fast, grad_ref, dim=0)) >= 0.9999


@pytest.mark.parametrize("softcap", [None, 3.0])
def test_fused_token_logprob_matches_log_softmax(softcap):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5, 8, generator=gen, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(30, 8, generator=gen, dtype=torch.float64)
    bias = torch.randn(30, generator=gen, dtype=torch.float64)
    targets = torch.tensor([0, 29, 3, 3, 17])
    g = torch.randn(5, generator=gen, dtype=torch.float64)
    logits = x @ weight.T + bias
    if softcap is not None:
        logits = softcap * torch.tanh(logits / softcap)
    want = torch.log_softmax(logits, -1).gather(-1, targets[:, None])[:, 0]
    (want_grad,) = torch.autograd.grad(want, x, g)
    got = _TokenLogprob.apply(x, weight, bias, targets, softcap)
    (got_grad,) = torch.autograd.grad(got, x, g)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got_grad, want_grad, rtol=1e-12, atol=1e-12)


def test_fast_and_reference_training_agree(tiny):
    opts = {"layer": 1, "lr": 0.05, "warmup_steps": 0, "epochs": 2, "n_eval": 3}
    fast, m_fast = bipo_direction(tiny, PAIRS, **opts)
    ref, m_ref = bipo_direction(tiny, PAIRS, step="reference", **opts)
    assert (m_fast["step"], m_ref["step"]) == ("fast", "reference")
    assert m_fast["loss_curve"] == pytest.approx(m_ref["loss_curve"], rel=1e-4)
    assert float(torch.nn.functional.cosine_similarity(fast, ref, dim=0)) >= 0.9999
    assert m_fast["margin_before"] == pytest.approx(m_ref["margin_before"], rel=1e-5)
    assert m_fast["margin_after"] == pytest.approx(m_ref["margin_after"], rel=1e-4)


# ------------------------------------------------------------- 2. scale-aware lr


def test_lr_is_scaled_by_the_prompts_residual_norm(tiny):
    one = SimpleNamespace(english=ENGLISH[:1], target=GERMAN[:1])
    v, m = bipo_direction(tiny, one, layer=2, lr_scale="resid", warmup_steps=0, n_eval=0)
    norms = collect_activations(tiny, PROMPTS[:1], layers=[2], exclude_bos=True).norms[2]
    assert m["lr_resid_norm"] == pytest.approx(float(norms.mean()), rel=1e-6)
    assert (m["lr"], m["lr_scale"]) == (1e-3, "resid")
    assert m["lr_effective"] == pytest.approx(1e-3 * m["lr_resid_norm"], rel=1e-12)
    assert m["lr_effective"] > 5 * 1e-4  # the tiny model's residual norm is well above 1
    # Adam's first step moves every coordinate with a gradient by the rate itself
    moved = v[v != 0].abs()
    assert len(moved) > 60
    torch.testing.assert_close(moved, torch.full_like(moved, m["lr_effective"]), rtol=1e-3, atol=0)
    paper, mp = bipo_direction(tiny, one, layer=2, lr_scale="none", warmup_steps=0, n_eval=0)
    assert (mp["lr"], mp["lr_effective"]) == (5e-4, 5e-4)
    assert paper[paper != 0].abs().max() == pytest.approx(5e-4, rel=1e-3)


def test_coord_scale_moves_each_coordinate_in_units_of_its_spread(tiny):
    # v = spread * w with AdamW on w: the first step moves coordinate i by lr * spread_i,
    # where spread_i is its standard deviation over the prompt's tokens (BOS excluded)
    one = SimpleNamespace(english=ENGLISH[:1], target=GERMAN[:1])
    v, m = bipo_direction(tiny, one, layer=2, lr_scale="coord", warmup_steps=0, n_eval=0)
    tokens = tiny.to_tokens(PROMPTS[0])
    _, cache = tiny.run_with_cache(tokens, names_filter="blocks.2.hook_resid_post")
    spread = cache["blocks.2.hook_resid_post"][0, 1:].float().std(0, correction=0)
    assert spread.max() > 1.5 * spread.min()  # the coordinates' scales differ
    assert (m["lr"], m["lr_scale"], m["lr_effective"]) == (1e-3, "coord", 1e-3)
    assert m["spread_norm"] == pytest.approx(float(spread.norm()), rel=1e-4)
    moved = v != 0
    assert int(moved.sum()) > 60
    torch.testing.assert_close(v[moved].abs(), 1e-3 * spread[moved], rtol=1e-3, atol=0)
    assert m["white_rms"] == pytest.approx(1e-3 * math.sqrt(int(moved.sum()) / 64), rel=1e-3)


# ------------------------------------------------------------- 3. the paper's recipe


def test_defaults_are_the_papers_and_everything_is_recorded(tiny):
    v = fit_vector(tiny, PAIRS, layer=1, method="bipo")
    hyper, m = v.meta["hyper"], v.meta["metrics"]
    assert (hyper["batch_size"], hyper["warmup_steps"], hyper["epochs"]) == (1, 100, 1)
    assert (hyper["lr_scale"], hyper["max_grad_norm"], hyper["append_eos"]) == ("coord", None, True)
    assert (hyper["lr"], m["lr"], m["lr_effective"]) == (1e-3, 1e-3, 1e-3)  # in spreads
    assert (hyper["pairing"], hyper["step"]) == ("copy", "fast")
    assert m["steps"] == 3 and len(m["grad_norm_curve"]) == 3 and m["n_clipped"] == 0
    assert m["lr_peak_reached"] == pytest.approx(m["lr_effective"] * 2 / 100)
    assert {"lr", "lr_scale", "lr_resid_norm", "lr_effective", "append_eos", "pairing"} <= set(m)


def test_responses_end_with_eos(tiny):
    eos = tiny.tokenizer.eos_token_id
    pairs, _ = encode_preference(tiny, PROMPTS, ENGLISH, GERMAN, 128, True)
    plain, _ = encode_preference(tiny, PROMPTS, ENGLISH, GERMAN, 128, False)
    for with_eos, without in zip(pairs, plain, strict=True):
        assert with_eos.chosen[-1] == eos and with_eos.rejected[-1] == eos
        assert torch.equal(with_eos.chosen[:-1], without.chosen) and without.chosen[-1] != eos
    # truncation comes after the EOS, as in the reference trainer: a cut response has none
    cut, _ = encode_preference(tiny, PROMPTS, ENGLISH, GERMAN, 3, True)
    assert all(len(p.chosen) == 3 and p.chosen[-1] != eos for p in cut)
    # and the reference log-probs BiPO trains against are those of the response + EOS
    _, m = bipo_direction(tiny, PAIRS, layer=1, n_eval=3, append_eos=False)
    lp_en = response_logprobs(tiny, PROMPTS, ENGLISH)
    lp_de = response_logprobs(tiny, PROMPTS, GERMAN)
    assert m["margin_before"] == pytest.approx(float((lp_en - lp_de).mean()), rel=1e-4)
    _, m_eos = bipo_direction(tiny, PAIRS, layer=1, n_eval=3)
    assert m_eos["margin_before"] != pytest.approx(m["margin_before"], rel=1e-4)


def test_gradient_clipping(tiny):
    opts = {"layer": 1, "warmup_steps": 0, "n_eval": 0}
    _, clipped = bipo_direction(tiny, PAIRS, max_grad_norm=1e-9, **opts)
    assert clipped["n_clipped"] == clipped["steps"] == 3
    assert min(clipped["grad_norm_curve"][1:]) > 1e-9  # recorded before clipping
    _, free = bipo_direction(tiny, PAIRS, max_grad_norm=1e9, **opts)
    assert free["n_clipped"] == 0
    with pytest.raises(ValueError, match="max_grad_norm must be a positive finite number"):
        bipo_direction(tiny, PAIRS, max_grad_norm=0.0, **opts)


# ------------------------------------------------------------- 4. precision


def test_small_v_trains_on_a_bfloat16_model():
    model = load_model("tiny", dtype=torch.bfloat16)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    pairs, _ = encode_preference(model, PROMPTS[:2], ENGLISH[:2], GERMAN[:2], 128, True)
    ids = torch.cat([pairs[0].prompt, pairs[0].chosen])[None]
    _, cache = model.run_with_cache(ids)
    h = cache["blocks.1.hook_resid_post"][0]
    v = torch.full((64,), 2e-4 * float(h.float().abs().median()))
    assert float(((h + v.to(h.dtype)) == h).float().mean()) > 0.95  # v: below bf16 steps
    for p in model.parameters():
        p.requires_grad_(False)
    with _engine(model, 1, pairs, "fast", 1, False) as engine, torch.enable_grad():
        v.requires_grad_(True)
        loss, grad = engine.loss_and_grad([0], v, 1.0, 0.1)
    # at v = 0 the loss is log 2 exactly; a small v moves it by the first-order term g.v
    assert float(grad.norm()) > 0
    first_order = float(grad @ v.detach())
    assert float(loss) - math.log(2) == pytest.approx(first_order, rel=0.05)
    # through the public function: a v of about 1e-4 changes the measured margin
    for p in model.parameters():
        p.requires_grad_(True)
    _, m = bipo_direction(model, PAIRS, layer=1, lr=1e-5, warmup_steps=0, n_eval=3)
    assert m["margin_after"] != m["margin_before"]
    assert max(m["grad_norm_curve"]) > 0
    for name, p in model.named_parameters():  # cast back exactly, nothing left behind
        assert p.dtype == torch.bfloat16 and torch.equal(p, before[name]), name
        assert p.grad is None


# ------------------------------------------------------------- 5. pairings


@pytest.mark.parametrize(
    ("template", "recorded"), [(None, "{text}"), ("Q: {text}\nA:", "Q: {text}\nA:")]
)
def test_continuation_pairing_builds_its_pairs_from_greedy_continuations(
    tiny, monkeypatch, template, recorded
):
    """The query is the template around each text (the text itself by default); both
    texts are continued in that template, and the template used is recorded."""
    wrap = recorded.format
    calls = []

    def fake_generate(model, prompts, *, max_new_tokens, progress=None):
        calls.append((list(prompts), max_new_tokens))
        return [f" and then: {p[::-1]}" for p in prompts]

    monkeypatch.setattr("interp_steer.fitting.bipo.generate_texts", fake_generate)
    opts = {"layer": 1, "pairing": "continuation", "continuation_tokens": 7, "n_eval": 3}
    v, m = bipo_direction(tiny, PAIRS, append_eos=False, prompt_template=template, **opts)
    asked = [p for prompts, _ in calls for p in prompts]
    english = [wrap(text=e) for e in ENGLISH]
    queries = [wrap(text=t) for t in GERMAN]
    assert sorted(asked) == sorted(english + queries) and {k for _, k in calls} == {7}
    lp_t = response_logprobs(tiny, queries, [f" and then: {e[::-1]}" for e in english])
    lp_o = response_logprobs(tiny, queries, [f" and then: {t[::-1]}" for t in queries])
    assert m["margin_before"] == pytest.approx(float((lp_t - lp_o).mean()), rel=1e-4)
    assert m["pairing"] == "continuation" and m["prompt_template"] == recorded
    assert "continuation" in m["mapping"] and m["steps"] == 3 and v.norm() > 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"pairing": "translate"}, "pairing must be one of"),
        ({"lr_scale": "norm"}, "lr_scale must be one of"),
        ({"step": "quick"}, "step must be one of"),
        ({"pairing": "continuation", "prompt_template": "no slot"}, "must contain"),
        ({"continuation_tokens": 0}, "continuation_tokens"),
    ],
)
def test_bad_options_raise(tiny, kwargs, match):
    raw = inspect.unwrap(bipo_direction)  # past the test run's type checker: our own message
    with pytest.raises(ValueError, match=match):
        raw(tiny, PAIRS, layer=1, **kwargs)
