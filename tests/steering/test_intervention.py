"""steer(): exact invariants on the tiny model, and one real-model check."""

import pytest
import torch

from interp_steer.models import kv_cache_fix
from interp_steer.steering import SteeringVector, steer

PROMPTS = ["Hallo Welt", "Guten Morgen zusammen, wie geht es euch?"]


def _vector(model, layer=1, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(model.cfg.d_model, generator=g)
    return SteeringVector(scale * d / d.norm(), layer=layer, model_name="tiny")


def _resid(model, prompts, layer):
    _, cache = model.run_with_cache(prompts, names_filter=lambda n: n.endswith("resid_post"))
    return {i: cache[f"blocks.{i}.hook_resid_post"] for i in range(model.cfg.n_layers)}


def test_alpha_zero_equals_baseline(tiny):
    base = tiny(PROMPTS)
    with steer(tiny, _vector(tiny), alpha=0.0):
        assert torch.equal(tiny(PROMPTS), base)


def test_residual_is_original_plus_alpha_v_and_earlier_layers_unchanged(tiny):
    v = _vector(tiny, layer=2)
    base = _resid(tiny, PROMPTS, 2)
    with steer(tiny, v, alpha=3.0):
        steered = _resid(tiny, PROMPTS, 2)
    for layer in (0, 1):
        assert torch.equal(steered[layer], base[layer])
    n_pad = len(tiny.to_tokens(PROMPTS[1])[0]) - len(tiny.to_tokens(PROMPTS[0])[0])
    diff = steered[2] - base[2]
    assert torch.equal(diff[0, :n_pad], torch.zeros_like(diff[0, :n_pad])), "pads were steered"
    torch.testing.assert_close(diff[0, n_pad:], (3.0 * v.direction).expand_as(diff[0, n_pad:]))
    torch.testing.assert_close(diff[1], (3.0 * v.direction).expand_as(diff[1]))
    assert not torch.allclose(steered[3], base[3])


@pytest.mark.parametrize("mode", ["prompt", "last"])
def test_position_modes_on_a_forward(tiny, mode):
    v = _vector(tiny, layer=1)
    base = _resid(tiny, PROMPTS, 1)[1]
    with steer(tiny, v, alpha=2.0, positions=mode):
        diff = _resid(tiny, PROMPTS, 1)[1] - base
    steered = diff.norm(dim=-1) > 1e-4
    n_pad = steered.shape[1] - len(tiny.to_tokens(PROMPTS[0])[0])
    if mode == "prompt":
        assert not steered[0, :n_pad].any() and steered[0, n_pad:].all() and steered[1].all()
    else:
        expected = torch.zeros_like(steered)
        expected[:, -1] = True
        assert torch.equal(steered, expected)


def test_generated_mode_leaves_a_plain_forward_alone(tiny):
    base = tiny(PROMPTS)
    with steer(tiny, _vector(tiny, scale=50.0), positions="generated"):
        assert torch.equal(tiny(PROMPTS), base)


def test_several_vectors_at_several_layers(tiny):
    v1, v3 = _vector(tiny, layer=1, seed=1), _vector(tiny, layer=3, seed=2)
    base = _resid(tiny, PROMPTS[1:], 1)
    with steer(tiny, [v1, v3], alpha=1.0):
        both = _resid(tiny, PROMPTS[1:], 1)
    torch.testing.assert_close(both[1] - base[1], v1.direction.expand_as(base[1]))
    with steer(tiny, v1, alpha=1.0):
        only1 = _resid(tiny, PROMPTS[1:], 1)
    torch.testing.assert_close(both[3] - only1[3], v3.direction.expand_as(base[3]))


def test_no_hooks_after_exception(tiny):
    with pytest.raises(RuntimeError, match="boom"), steer(tiny, _vector(tiny)):
        raise RuntimeError("boom")
    assert not any(hp.fwd_hooks for hp in tiny.hook_dict.values())
    assert [h.__name__ for h in tiny.original_model._forward_pre_hooks.values()] in (
        [],
        ["_cache_by_new_name"],  # load_model's permanent past_key_values -> cache renaming
    )


def test_left_padded_batch_equals_each_sequence_alone(tiny):
    v = _vector(tiny, layer=1, scale=20.0)
    with steer(tiny, v):
        batch = tiny(PROMPTS)
        alone = [tiny(p) for p in PROMPTS]
    for i, single in enumerate(alone):
        torch.testing.assert_close(batch[i, -single.shape[1] :], single[0], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("mode", ["all", "prompt", "generated", "last"])
def test_generation_with_kv_cache_equals_recompute(tiny, mode):
    v = _vector(tiny, layer=1, scale=60.0)
    kwargs = dict(max_new_tokens=6, do_sample=False, verbose=False, return_type="tokens")
    plain = tiny.generate(PROMPTS, **kwargs)
    with steer(tiny, v, positions=mode), kv_cache_fix(tiny):  # TransformerLens 4.3 needs the fix
        cached = tiny.generate(PROMPTS, use_past_kv_cache=True, **kwargs)
        recomputed = tiny.generate(PROMPTS, use_past_kv_cache=False, **kwargs)
    assert torch.equal(cached, recomputed)
    if mode == "all":
        assert not torch.equal(cached, plain), "a strong vector should change generation"


def test_run_with_cache_sees_the_steered_residual(tiny):
    v = _vector(tiny, layer=0)
    _, base = tiny.run_with_cache(PROMPTS[1])
    with steer(tiny, v, alpha=5.0):
        _, cache = tiny.run_with_cache(PROMPTS[1])
    diff = cache["blocks.0.hook_resid_post"] - base["blocks.0.hook_resid_post"]
    torch.testing.assert_close(diff[0], (5.0 * v.direction).expand_as(diff[0]))


def test_dtype_and_device_follow_the_residual(tiny):
    v = _vector(tiny).to(dtype=torch.float64)
    with steer(tiny, v, alpha=1.0):
        out = tiny(PROMPTS[0])
    assert out.dtype == torch.float32


# A `positions` outside the Literal is refused by steer's own check (ValueError) or, under
# pytest's runtime type checking, by the checker first (TypeError): both name the argument.
@pytest.mark.parametrize(
    "vector, kwargs, error, message",
    [
        (SteeringVector(torch.ones(8), layer=0), {}, ValueError, "d_model 8"),
        (SteeringVector(torch.ones(64), layer=4), {}, ValueError, "layer 4 is out of range"),
        (
            SteeringVector(torch.ones(64), layer=0, hook_name="blocks.0.nope"),
            {},
            ValueError,
            "no hook",
        ),
        (
            SteeringVector(torch.ones(64), layer=0),
            {"positions": "middle"},
            (ValueError, TypeError),
            "positions",
        ),
        (
            SteeringVector(torch.ones(64), layer=0),
            {"alpha": float("nan")},
            ValueError,
            "alpha must",
        ),
    ],
)
def test_bad_input_raises_and_registers_nothing(tiny, vector, kwargs, error, message):
    with pytest.raises(error, match=message), steer(tiny, vector, **kwargs):
        pass
    assert not any(hp.fwd_hooks for hp in tiny.hook_dict.values())
    assert [h.__name__ for h in tiny.original_model._forward_pre_hooks.values()] in (
        [],
        ["_cache_by_new_name"],  # load_model's permanent past_key_values -> cache renaming
    )


def test_non_finite_vector_is_refused():
    with pytest.raises(ValueError, match="NaN or infinite"):
        SteeringVector(torch.tensor([1.0, float("inf")]), layer=0)


def test_model_name_mismatch_only_warns(tiny):
    v = SteeringVector(torch.zeros(64), layer=0, model_name="gemma-3-270m")
    with pytest.warns(UserWarning, match="fitted on 'gemma-3-270m'"), steer(tiny, v):
        pass


@pytest.mark.real
def test_real_model_steering_moves_the_logits(gemma):
    assert (gemma.cfg.n_layers, gemma.cfg.d_model) == (18, 640)
    prompt = ["Die Hauptstadt von Frankreich ist"]
    base = gemma(prompt)
    g = torch.Generator().manual_seed(0)
    d = torch.randn(640, generator=g)
    v = SteeringVector(d / d.norm() * 400.0, layer=6, model_name="gemma-3-270m")
    with steer(gemma, v, alpha=0.0):
        assert torch.equal(gemma(prompt), base)
    with steer(gemma, v, alpha=1.0):
        steered = gemma(prompt)
    shift = (steered[0, -1].softmax(-1) - base[0, -1].softmax(-1)).abs().sum()
    assert shift > 0.05, f"a norm-400 vector at layer 6 barely moved the output ({shift:.4f})"
