"""Weight deltas on the tiny model: applied inside the block, restored bit-exactly after."""

import pytest
import torch

from interp_steer.models import active_adapters, named_weights, weight_deltas, weights_fingerprint

Q0 = "model.layers.0.self_attn.q_proj.weight"
UP1 = "model.layers.1.mlp.up_proj.weight"
EMBED = "model.embed_tokens.weight"


def snapshot(model):
    return {name: p.detach().clone() for name, p in model.original_model.named_parameters()}


def assert_same(model, before):
    now = dict(model.original_model.named_parameters())
    assert now.keys() == before.keys()
    for name, value in before.items():
        assert torch.equal(now[name], value), name


def deltas(model, seed=0, scale=0.1):
    gen = torch.Generator().manual_seed(seed)
    weights = named_weights(model)
    return {n: scale * torch.randn(weights[n].shape, generator=gen) for n in (Q0, UP1)}


def test_deltas_are_added_inside_and_the_exact_weights_come_back(tiny):
    before = snapshot(tiny)
    weights = named_weights(tiny)
    d = deltas(tiny)
    originals = {n: weights[n].detach().clone() for n in d}
    ids = tiny.to_tokens("Hallo Welt")
    with torch.no_grad():
        plain = tiny(ids)
    with weight_deltas(tiny, d, name="demo", fingerprint="f1"):
        for n, delta in d.items():
            assert torch.equal(weights[n], originals[n] + delta)
        assert active_adapters(tiny) == ({"name": "demo", "fingerprint": "f1"},)
        with torch.no_grad():
            assert not torch.allclose(tiny(ids), plain)  # the forward pass sees the deltas
    assert_same(tiny, before)
    assert active_adapters(tiny) == ()
    with torch.no_grad():
        assert torch.equal(tiny(ids), plain)


def test_an_exception_inside_still_restores_every_weight(tiny):
    before = snapshot(tiny)
    with (
        pytest.raises(RuntimeError, match="boom"),
        weight_deltas(tiny, deltas(tiny), name="demo", fingerprint="f1"),
    ):
        raise RuntimeError("boom")
    assert_same(tiny, before)
    assert active_adapters(tiny) == ()


def test_nested_blocks_stack_and_unwind_and_the_same_adapter_twice_is_refused(tiny):
    before = snapshot(tiny)
    weights = named_weights(tiny)
    q0 = weights[Q0].detach().clone()
    outer, inner = deltas(tiny, seed=1), deltas(tiny, seed=2)
    with weight_deltas(tiny, outer, name="outer", fingerprint="a"):
        after_outer = weights[Q0].detach().clone()
        assert torch.equal(after_outer, q0 + outer[Q0])
        with weight_deltas(tiny, inner, name="inner", fingerprint="b"):
            assert torch.equal(weights[Q0], after_outer + inner[Q0])
            assert [r["name"] for r in active_adapters(tiny)] == ["outer", "inner"]
        assert torch.equal(weights[Q0], after_outer)
        assert [r["name"] for r in active_adapters(tiny)] == ["outer"]
        with (
            pytest.raises(ValueError, match="already applied"),
            weight_deltas(tiny, outer, name="outer", fingerprint="a"),
        ):
            pass
        assert torch.equal(weights[Q0], after_outer)  # the refused one changed nothing
    assert_same(tiny, before)
    assert active_adapters(tiny) == ()


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"model.layers.0.self_attn.nope.weight": torch.zeros(2)}, "no parameter named"),
        ({Q0: torch.zeros(3, 3)}, r"has shape \(3, 3\) but the parameter has shape \(64, 64\)"),
        ({Q0: torch.full((64, 64), float("nan"))}, "NaN or infinite"),
        ({Q0: torch.zeros(64, 64, dtype=torch.long)}, "must be a float tensor"),
        ({"lm_head.weight": torch.zeros(260, 64), EMBED: torch.zeros(260, 64)}, "tied"),
        ({}, "non-empty mapping"),
    ],
)  # fmt: skip
def test_bad_deltas_are_refused_before_any_weight_changes(tiny, bad, message):
    before = snapshot(tiny)
    good = deltas(tiny)
    with (
        pytest.raises(ValueError, match=message),
        weight_deltas(tiny, {**good, **bad} if bad else bad, name="x", fingerprint="y"),
    ):
        pass
    assert_same(tiny, before)
    assert active_adapters(tiny) == ()


def test_the_weights_fingerprint_sees_one_changed_value(tiny):
    before = weights_fingerprint(tiny, [Q0, UP1])
    one = torch.zeros(64, 64)
    one[3, 5] = 1e-3
    with weight_deltas(tiny, {Q0: one}, name="x", fingerprint="y"):
        assert weights_fingerprint(tiny, [Q0, UP1]) != before
    assert weights_fingerprint(tiny, [UP1, Q0]) == before  # order-free, restored
    with pytest.raises(KeyError, match="no parameter named"):
        weights_fingerprint(tiny, ["nope.weight"])
