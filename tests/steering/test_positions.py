"""Which positions steer() touches: decided per call and per generation, never by tokens.

Issue 16, defect 3: a prompt that starts with the previous call's prompt was taken for a
generation step, so ``positions="last"`` steered the wrong token.
"""

import pytest
import torch

from interp_steer.analysis import logit_lens
from interp_steer.models import generating, greedy_generate, kv_cache_fix, left_pad
from interp_steer.models.batching import token_ids
from interp_steer.steering import SteeringVector, steer

KW = dict(max_new_tokens=6, do_sample=False, verbose=False)


def _vector(model, scale=30.0, layer=1):
    g = torch.Generator().manual_seed(0)
    d = torch.randn(model.cfg.d_model, generator=g)
    return SteeringVector(scale * d / d.norm(), layer=layer, model_name="tiny")


def _left(model):
    """Nothing steer() installs is left on the model."""
    assert [h.__name__ for h in model.original_model._forward_pre_hooks.values()] in (
        [],
        ["_cache_by_new_name"],  # load_model's permanent past_key_values -> cache renaming
    )
    assert not model.original_model._forward_hooks
    assert "generate" not in vars(model) and "generate" not in vars(model.original_model)


@pytest.mark.parametrize("mode", ["last", "prompt", "generated"])
def test_a_call_after_its_prefix_is_a_prompt_of_its_own(tiny, mode):
    v = _vector(tiny)
    with steer(tiny, v, positions=mode):
        alone = tiny("Hallo Welt")
    with steer(tiny, v, positions=mode):
        tiny("Hallo")
        after = tiny("Hallo Welt")
    torch.testing.assert_close(after, alone, atol=0, rtol=0)
    if mode == "generated":  # a plain forward has no generated positions
        torch.testing.assert_close(after, tiny("Hallo Welt"), atol=0, rtol=0)
    _left(tiny)


def test_last_batched_equals_unbatched(tiny):
    prompts = ["Hallo", "Hallo Welt", "Hallo Welt, wie geht es?"]
    with steer(tiny, _vector(tiny), positions="last"):
        batch = tiny(prompts)
        alone = [tiny(p) for p in prompts]  # each extends the one before
    for i, single in enumerate(alone):
        torch.testing.assert_close(batch[i, -single.shape[1] :], single[0], atol=1e-4, rtol=1e-4)


def test_logit_lens_last_does_not_depend_on_batch_size(tiny):
    prompts = ["Hallo", "Hallo Welt"]
    v = _vector(tiny)
    kwargs = dict(vector=v, alpha=1.0, lang="de", steer_positions="last")
    runs = [logit_lens(tiny, prompts, batch_size=size, **kwargs) for size in (1, 2)]
    assert (runs[0].tokens == runs[1].tokens).all()
    torch.testing.assert_close(
        torch.as_tensor(runs[0].probs), torch.as_tensor(runs[1].probs), atol=1e-5, rtol=1e-5
    )


@pytest.mark.parametrize("mode", ["generated", "last", "prompt"])
def test_bridge_generate_with_and_without_cache_and_streaming(tiny, mode):
    v = _vector(tiny, scale=60.0)
    kw = dict(return_type="tokens", **KW)
    plain = tiny.generate("Hallo Welt", **kw)
    with steer(tiny, v, positions=mode), kv_cache_fix(tiny):
        recomputed = tiny.generate("Hallo Welt", use_past_kv_cache=False, **kw)
        cached = tiny.generate("Hallo Welt", use_past_kv_cache=True, **kw)
        stream = tiny.generate_stream("Hallo Welt", use_past_kv_cache=False, max_tokens_per_yield=1,
                                      **kw)  # fmt: skip
        streamed = list(stream)
    assert torch.equal(recomputed, cached)
    assert torch.equal(torch.cat(streamed, dim=1), cached)
    assert not torch.equal(cached, plain), "a strong vector changes generation"
    n_prompt = len(tiny.to_tokens("Hallo Welt")[0])
    if mode == "generated":  # the first new token reads the prompt only: unsteered
        assert cached[0, n_prompt] == plain[0, n_prompt]
    _left(tiny)


@pytest.mark.parametrize("use_cache", [True, False])
def test_a_call_on_the_generated_text_is_a_new_prompt(tiny, use_cache):
    """After generating, the prompt plus its continuation is a prompt like any other."""
    v = _vector(tiny)
    ids, mask = left_pad(tiny, [token_ids(tiny, "Hallo Welt", bos=True)])
    with steer(tiny, v, positions="last"):
        rows = greedy_generate(tiny, ids, mask, max_new_tokens=4, use_cache=use_cache)
        full = torch.cat([ids, torch.tensor([rows[0]])], dim=1)
        after = tiny(full)
    with steer(tiny, v, positions="last"):
        alone = tiny(full)
    torch.testing.assert_close(after, alone, atol=0, rtol=0)


def test_a_marked_loop_is_one_generation(tiny):
    """A hand-written loop recomputing the sequence is a generation once it says so."""
    v = _vector(tiny, scale=60.0)
    ids, mask = left_pad(tiny, [token_ids(tiny, "Hallo Welt", bos=True)])
    with steer(tiny, v, positions="generated"):
        cached = greedy_generate(tiny, ids, mask, max_new_tokens=5)
        seq, loop = ids, []
        with generating(tiny):
            for _ in range(5):
                nxt = int(tiny(seq)[0, -1].argmax())
                loop.append(nxt)
                seq = torch.cat([seq, torch.tensor([[nxt]])], dim=1)
    assert loop == cached[0]
    assert loop != greedy_generate(tiny, ids, mask, max_new_tokens=5)[0]


def test_nested_and_interleaved_steering_leave_nothing(tiny):
    v = _vector(tiny)
    outer = steer(tiny, v, positions="last")
    inner = steer(tiny, v, positions="generated")
    outer.__enter__()
    inner.__enter__()
    assert "generate" in vars(tiny)
    outer.__exit__(None, None, None)  # the outer one ends first
    assert "generate" in vars(tiny)
    tiny.generate("Hallo", **KW)
    inner.__exit__(None, None, None)
    _left(tiny)
