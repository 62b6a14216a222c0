"""Greedy generation with the KV cache: exact invariants on the tiny model, one real check.

The tiny model's greedy text is degenerate (one byte repeated), so on it the invariants are
checked on every step's next-token logits, which a broken cache changes. Its sliding
window is 16 tokens, shorter than the second prompt, so local layers are exercised too.
"""

import warnings
from contextlib import nullcontext

import pytest
import torch
from transformer_lens.model_bridge.generalized_components import AttentionBridge

from interp_steer.models import generate_texts, left_pad, load_model
from interp_steer.models.batching import token_ids
from interp_steer.models.generation import (
    eos_ids,
    generating,
    greedy_generate,
    install_kv_cache_fix,
    kv_cache_fix,
    remove_kv_cache_fix,
)
from interp_steer.steering import SteeringVector, steer

PROMPTS = ["Hallo Welt", "Guten Morgen zusammen, wie geht es euch? Mir geht es gut."]


def _run(model, prompts, *, use_cache=True, max_new_tokens=6, stop=()):
    """Generated ids per row, and the next-token logits of every step ``[batch, step, vocab]``."""
    ids, mask = left_pad(model, [token_ids(model, p, bos=True) for p in prompts])
    seen = []

    def keep(logits, hook):
        seen.append(logits[:, -1].clone())
        return logits

    with model.hooks(fwd_hooks=[("unembed.hook_out", keep)]):
        out = greedy_generate(
            model, ids, mask, max_new_tokens=max_new_tokens, stop=stop, use_cache=use_cache
        )
    return out, torch.stack(seen, dim=1)


def _vector(model, scale, layer=1):
    d = torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(0))
    return SteeringVector(scale * d / d.norm(), layer=layer)


def test_load_model_installs_the_fix():
    model = load_model("tiny")
    ids = model.to_tokens(PROMPTS[1])
    _, cache = model(ids, use_cache=True, return_type="logits_and_cache")
    assert cache.get_seq_length() == ids.shape[1]
    assert install_kv_cache_fix(model) == 0


def test_kv_cache_fix_fills_the_cache_and_leaves_no_hook():
    model = load_model("tiny")
    assert remove_kv_cache_fix(model) == model.cfg.n_layers
    ids = model.to_tokens(PROMPTS[1])
    _, cache = model(ids, use_cache=True, return_type="logits_and_cache")
    assert cache.get_seq_length() == 0  # the bug the fix works around
    with kv_cache_fix(model):
        _, cache = model(ids, use_cache=True, return_type="logits_and_cache")
    assert cache.get_seq_length() == ids.shape[1]
    assert not any(m._forward_pre_hooks for m in model.modules() if isinstance(m, AttentionBridge))


def test_cached_step_logits_equal_recomputed(tiny):
    cached, cached_logits = _run(tiny, PROMPTS)
    recomputed, recomputed_logits = _run(tiny, PROMPTS, use_cache=False)
    assert cached == recomputed
    assert cached_logits.shape == (2, 6, tiny.cfg.d_vocab)
    torch.testing.assert_close(cached_logits, recomputed_logits, atol=1e-4, rtol=1e-4)


def test_left_padded_batch_equals_each_prompt_alone(tiny):
    batch, batch_logits = _run(tiny, PROMPTS)
    for i, prompt in enumerate(PROMPTS):
        alone, alone_logits = _run(tiny, [prompt])
        assert alone[0] == batch[i]
        torch.testing.assert_close(alone_logits[0], batch_logits[i], atol=1e-4, rtol=1e-4)
    texts = generate_texts(tiny, PROMPTS, max_new_tokens=6)
    assert texts == [generate_texts(tiny, [p], max_new_tokens=6)[0] for p in PROMPTS]


@pytest.mark.parametrize("mode", ["all", "generated", "prompt", "last"])
def test_steered_cached_generation_equals_recomputed(tiny, mode):
    _, plain = _run(tiny, PROMPTS)
    with steer(tiny, _vector(tiny, 30.0), positions=mode):
        cached, cached_logits = _run(tiny, PROMPTS)
        recomputed, recomputed_logits = _run(tiny, PROMPTS, use_cache=False)
    assert cached == recomputed
    torch.testing.assert_close(cached_logits, recomputed_logits, atol=1e-4, rtol=1e-4)
    changed = (cached_logits - plain).abs().amax(dim=-1) > 1e-3  # [batch, step]
    if mode == "generated":  # the first step only reads the prompt
        assert not changed[:, 0].any() and changed[:, 1:].all()
    else:
        assert changed.all()


def test_stop_string_and_eos_end_a_row(tiny, monkeypatch):
    full, _ = _run(tiny, PROMPTS)
    assert all(len(row) == 6 for row in full)
    first = tiny.tokenizer.decode(full[0][:1])
    stopped, logits = _run(tiny, PROMPTS[:1], stop=[first])
    assert stopped == [full[0][:1]] and logits.shape[1] == 1
    monkeypatch.setattr(tiny.cfg, "eos_token_id", full[0][0])
    assert eos_ids(tiny) == [full[0][0]]
    ended, _ = _run(tiny, PROMPTS[:1])
    assert ended == [[]]


# ----------------------------------------------------------------- the real model


def _no_cache_loop(model, prompt, max_new_tokens):
    """Reference: the prompt alone, the whole sequence recomputed for every new token.

    The loop is marked as one generation, so steering counts the tokens after the prompt
    as generated (two plain calls are two prompts, whatever their tokens).
    """
    ids = model.to_tokens(prompt)
    out: list[int] = []
    with generating(model):
        for _ in range(max_new_tokens):
            nxt = int(model(ids, logits_to_keep=1)[0, -1].argmax())
            if nxt in eos_ids(model):
                break
            out.append(nxt)
            ids = torch.cat([ids, torch.tensor([[nxt]], device=ids.device)], dim=1)
    return out


@pytest.mark.real
def test_real_model_cached_generation_equals_no_cache_loop(gemma):
    prompts = ["The capital of France is", "Die Hauptstadt von Frankreich ist eine Stadt, die"]
    ids, mask = left_pad(gemma, [token_ids(gemma, p, bos=True) for p in prompts])
    v = _vector(gemma, 200.0, layer=6)
    got = {}
    for mode in (None, "all", "generated"):
        with steer(gemma, v, positions=mode) if mode else nullcontext():
            with torch.no_grad():
                reference = [_no_cache_loop(gemma, p, 12) for p in prompts]
            got[mode] = greedy_generate(gemma, ids, mask, max_new_tokens=12)
        assert got[mode] == reference, mode
        assert all(len(row) == 12 for row in got[mode]), mode
    assert got["all"] != got[None] and got["generated"] != got[None]


def test_decoding_passes_the_cache_under_the_forwards_name(tiny):
    """transformers 5 renamed past_key_values to cache: no deprecation warning per step."""
    ids, mask = left_pad(tiny, [token_ids(tiny, "Hallo", bos=True)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = greedy_generate(tiny, ids, mask, max_new_tokens=3)
    assert len(out[0]) > 0
    assert not [w for w in caught if "past_key_values" in str(w.message)]
    assert out == greedy_generate(tiny, ids, mask, max_new_tokens=3, use_cache=False)


@pytest.mark.parametrize("kind", ["generate", "generate_stream", "forward"])
def test_transformer_lens_generation_raises_no_past_key_values_warning(tiny, kind):
    """TransformerLens passes the HF model past_key_values=; it arrives as cache=, silently."""
    ids = tiny.to_tokens("Hallo")
    uncached = tiny.generate(ids, max_new_tokens=4, do_sample=False, verbose=False,
                             use_past_kv_cache=False)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        if kind == "generate":
            out = tiny.generate(ids, max_new_tokens=4, do_sample=False, verbose=False)
            assert torch.equal(out, uncached)
        elif kind == "generate_stream":
            steps = list(tiny.generate_stream(ids, max_new_tokens=4, do_sample=False,
                                              verbose=False))  # fmt: skip
            assert len(steps) > 0
        else:
            with torch.no_grad():
                first, cache = tiny(ids, use_cache=True, return_type="logits_and_cache")
                nxt = first[:, -1:].argmax(-1)
                logits, _ = tiny(nxt, use_cache=True, past_key_values=cache,
                                 return_type="logits_and_cache")  # fmt: skip
            assert int(logits[0, -1].argmax()) == int(uncached[0, ids.shape[1] + 1])


def test_removing_the_fix_removes_the_renaming_hook_too(tiny):
    hf = tiny.original_model
    assert len(hf._forward_pre_hooks) == 1  # load_model installed it
    try:
        assert remove_kv_cache_fix(tiny) == 4 and len(hf._forward_pre_hooks) == 0
        with kv_cache_fix(tiny):
            assert len(hf._forward_pre_hooks) == 1
        assert len(hf._forward_pre_hooks) == 0
    finally:
        install_kv_cache_fix(tiny)
    assert len(hf._forward_pre_hooks) == 1
