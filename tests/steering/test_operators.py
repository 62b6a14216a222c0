"""steer()'s operators (ablate, rotate, clamp): exact invariants on the tiny model."""

import math

import pytest
import torch

from interp_steer.models import kv_cache_fix, load_model
from interp_steer.steering import OPERATORS, NonFiniteError, SteeringVector, steer

PROMPTS = ["Hallo Welt", "Guten Morgen zusammen, wie geht es euch?"]
NAME = "blocks.1.hook_resid_post"
# each operator with its own argument, at a strength that visibly changes the model
OPS = [("ablate", {}), ("rotate", {"angle": 40.0}), ("clamp", {"value": 6.0})]
IDS = [op for op, _ in OPS]

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py: tiny ops contend on threads


def _vector(model, layer=1, seed=0, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(model.cfg.d_model, generator=g)
    return SteeringVector(scale * d / d.norm(), layer=layer, model_name="tiny")


def _unit(vector):
    return vector.direction / vector.direction.norm()


def _resid(model, prompts, name=NAME):
    _, cache = model.run_with_cache(prompts, names_filter=name)
    return cache[name]


def _n_pad(model):
    return len(model.to_tokens(PROMPTS[1])[0]) - len(model.to_tokens(PROMPTS[0])[0])


def _nothing_left(model):
    assert not any(hp.fwd_hooks for hp in model.hook_dict.values())
    assert [h.__name__ for h in model.original_model._forward_pre_hooks.values()] in (
        [],
        ["_cache_by_new_name"],  # load_model's permanent past_key_values -> cache renaming
    )


def test_operators_are_the_typed_choices():
    assert OPERATORS == ("add", "ablate", "rotate", "clamp")


def test_add_is_todays_addition_bit_for_bit(tiny):
    v = _vector(tiny)
    with steer(tiny, v, alpha=2.5):
        default = tiny(PROMPTS)
    with steer(tiny, v, alpha=2.5, operator="add"):
        assert torch.equal(tiny(PROMPTS), default)


@pytest.mark.parametrize("op, kwargs", OPS, ids=IDS)
def test_alpha_zero_is_the_identity_and_alpha_one_is_not(tiny, op, kwargs):
    base = tiny(PROMPTS)
    with steer(tiny, _vector(tiny), alpha=0.0, operator=op, **kwargs):
        assert torch.equal(tiny(PROMPTS), base)
    with steer(tiny, _vector(tiny), operator=op, **kwargs):
        assert not torch.allclose(tiny(PROMPTS), base)


def test_rotate_by_angle_zero_is_the_identity(tiny):
    base = tiny(PROMPTS)
    with steer(tiny, _vector(tiny), alpha=3.0, operator="rotate", angle=0.0):
        assert torch.equal(tiny(PROMPTS), base)


def test_ablate_leaves_no_component_and_touches_nothing_else(tiny):
    v = _vector(tiny)
    u = _unit(v)
    h = _resid(tiny, PROMPTS)
    with steer(tiny, v, operator="ablate"):
        s = _resid(tiny, PROMPTS)
    n_pad = _n_pad(tiny)
    assert torch.equal(s[0, :n_pad], h[0, :n_pad]), "pads were steered"
    real = torch.cat([s[0, n_pad:], s[1]])
    before = torch.cat([h[0, n_pad:], h[1]])
    assert (before @ u).abs().min() > 1e-2  # there was a component to remove
    torch.testing.assert_close(real @ u, torch.zeros(len(real)), atol=1e-5, rtol=0)
    # only the component along u changed
    torch.testing.assert_close(real - before, -(before @ u)[:, None] * u, atol=1e-5, rtol=1e-5)
    with steer(tiny, v, alpha=0.5, operator="ablate"):
        half = _resid(tiny, PROMPTS)[1]
    torch.testing.assert_close(half @ u, 0.5 * (h[1] @ u), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", ["prompt", "last"])
def test_ablate_only_at_the_selected_positions(tiny, mode):
    v = _vector(tiny)
    u = _unit(v)
    h = _resid(tiny, PROMPTS)
    with steer(tiny, v, operator="ablate", positions=mode):
        s = _resid(tiny, PROMPTS)
    changed = (s != h).any(-1)
    n_pad = _n_pad(tiny)
    expected = torch.ones_like(changed)
    if mode == "prompt":
        expected[0, :n_pad] = False
    else:
        expected[:, :-1] = False
    assert torch.equal(changed, expected)
    torch.testing.assert_close(s[expected] @ u, torch.zeros(int(expected.sum())), atol=1e-5, rtol=0)


def test_rotate_keeps_every_norm_and_turns_by_the_angle(tiny):
    v = _vector(tiny)
    u = _unit(v)
    h = _resid(tiny, PROMPTS)
    with steer(tiny, v, operator="rotate", angle=20.0):
        s = _resid(tiny, PROMPTS)
    n_pad = _n_pad(tiny)
    assert torch.equal(s[0, :n_pad], h[0, :n_pad]), "pads were steered"
    real, before = torch.cat([s[0, n_pad:], s[1]]), torch.cat([h[0, n_pad:], h[1]])
    assert (real - before).norm(dim=-1).min() > 0.1  # every real position turned
    torch.testing.assert_close(real.norm(dim=-1), before.norm(dim=-1), atol=0, rtol=2e-6)

    def degrees(x):
        return torch.rad2deg(torch.acos((x @ u / x.norm(dim=-1)).clamp(-1, 1)))

    assert degrees(before).min() > 20.0  # so no position stops at u
    torch.testing.assert_close(degrees(before) - degrees(real), torch.full((len(real),), 20.0))
    # it stays in the plane of h and u: nothing of it outside span(h, u)
    for x, y in zip(before, real, strict=True):
        basis = torch.linalg.qr(torch.stack([u, x], dim=1)).Q
        torch.testing.assert_close(basis @ (basis.T @ y), y, atol=1e-4, rtol=1e-5)


def test_rotate_with_a_negative_angle_turns_away(tiny):
    v = _vector(tiny)
    u = _unit(v)
    h = _resid(tiny, PROMPTS[1:])[0]
    with steer(tiny, v, operator="rotate", angle=-15.0):
        s = _resid(tiny, PROMPTS[1:])[0]
    cos_before, cos_after = h @ u / h.norm(dim=-1), s @ u / s.norm(dim=-1)
    assert bool((cos_after < cos_before).all())
    torch.testing.assert_close(s.norm(dim=-1), h.norm(dim=-1), atol=0, rtol=2e-6)


def test_rotate_stops_at_the_direction_and_leaves_a_parallel_residual(tiny):
    h = _resid(tiny, PROMPTS[1:])[0]
    # the vector is the last position's own residual: that position is parallel to it
    v = SteeringVector(h[-1].clone(), layer=1, model_name="tiny")
    u = _unit(v)
    with steer(tiny, v, operator="rotate", angle=180.0):
        s = _resid(tiny, PROMPTS[1:])[0]
    torch.testing.assert_close(s[-1], h[-1], atol=1e-5, rtol=1e-5)
    # a full half-turn brings every other residual onto u, norm kept, never past it
    torch.testing.assert_close(s, h.norm(dim=-1, keepdim=True) * u, atol=1e-4, rtol=1e-5)


def test_clamp_sets_the_component_exactly(tiny):
    v = _vector(tiny, scale=7.0)  # the vector's norm does not matter: its direction does
    u = _unit(v)
    h = _resid(tiny, PROMPTS)
    with steer(tiny, v, operator="clamp", value=-4.5):
        s = _resid(tiny, PROMPTS)
    n_pad = _n_pad(tiny)
    assert torch.equal(s[0, :n_pad], h[0, :n_pad]), "pads were steered"
    real, before = torch.cat([s[0, n_pad:], s[1]]), torch.cat([h[0, n_pad:], h[1]])
    torch.testing.assert_close(real @ u, torch.full((len(real),), -4.5), atol=1e-5, rtol=0)
    off = real - (real @ u)[:, None] * u
    torch.testing.assert_close(off, before - (before @ u)[:, None] * u, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("op, kwargs", OPS, ids=IDS)
def test_left_padded_batch_equals_each_sequence_alone(tiny, op, kwargs):
    with steer(tiny, _vector(tiny), operator=op, **kwargs):
        batch = tiny(PROMPTS)
        alone = [tiny(p) for p in PROMPTS]
    for i, single in enumerate(alone):
        torch.testing.assert_close(batch[i, -single.shape[1] :], single[0], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("op, kwargs", OPS, ids=IDS)
def test_generation_with_kv_cache_equals_recompute(tiny, op, kwargs):
    kwargs_gen = dict(max_new_tokens=5, do_sample=False, verbose=False, return_type="tokens")
    plain = tiny.generate(PROMPTS, **kwargs_gen)
    v = _vector(tiny, scale=1.0)
    with steer(tiny, v, operator=op, alpha=1.0, **kwargs), kv_cache_fix(tiny):
        cached = tiny.generate(PROMPTS, use_past_kv_cache=True, **kwargs_gen)
        recomputed = tiny.generate(PROMPTS, use_past_kv_cache=False, **kwargs_gen)
    assert torch.equal(cached, recomputed)
    assert cached.shape == plain.shape


@pytest.mark.parametrize("op, kwargs", OPS, ids=IDS)
def test_no_hooks_after_exception(tiny, op, kwargs):
    v = _vector(tiny)
    with pytest.raises(RuntimeError, match="boom"), steer(tiny, v, operator=op, **kwargs):
        tiny(PROMPTS[0])
        raise RuntimeError("boom")
    _nothing_left(tiny)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_a_small_rotation_runs_in_float32_and_changes_the_output(dtype):
    model = load_model("tiny", dtype=dtype)
    v = _vector(model)
    u = _unit(v)
    base_out = model(PROMPTS[1])
    h = _resid(model, PROMPTS[1])
    with steer(model, v, operator="rotate", angle=0.5):
        s = _resid(model, PROMPTS[1])
        out = model(PROMPTS[1])
    assert s.dtype == dtype and not torch.equal(out, base_out)
    # the rotation computed in float32 and cast back once
    hf = h.float()
    c = hf @ u
    perp = hf - c[..., None] * u
    p = perp.norm(dim=-1)
    t = math.radians(0.5)
    new_c, new_p = c * math.cos(t) + p * math.sin(t), p * math.cos(t) - c * math.sin(t)
    expected = (new_c[..., None] * u + (new_p / p)[..., None] * perp).to(dtype)
    assert torch.equal(s, expected)
    _nothing_left(model)


def test_several_layers_each_with_its_own_direction(tiny):
    v1, v3 = _vector(tiny, layer=1, seed=1), _vector(tiny, layer=3, seed=2)
    names = ("blocks.1.hook_resid_post", "blocks.3.hook_resid_post")
    with steer(tiny, [v1, v3], operator="ablate"):
        _, cache = tiny.run_with_cache(PROMPTS[1], names_filter=lambda n: n in names)
    for v, name in ((v1, names[0]), (v3, names[1])):
        torch.testing.assert_close(cache[name][0] @ _unit(v), torch.zeros(cache[name].shape[1]))


# An `operator` outside the Literal is refused by steer's own check (ValueError) or, under
# pytest's runtime type checking, by the checker first (TypeError): both name the argument.
@pytest.mark.parametrize(
    "vectors, kwargs, error, message",
    [
        (None, {"operator": "scale"}, (ValueError, TypeError), r"operator(.|\n)*'scale'"),
        (None, {"operator": "rotate"}, ValueError, r"operator='rotate' needs angle"),
        (None, {"operator": "clamp"}, ValueError, r"operator='clamp' needs value"),
        (None, {"angle": 10.0}, ValueError, r"angle is for operator='rotate' only"),
        (None, {"operator": "ablate", "value": 1.0}, ValueError, "value is for operator='clamp'"),
        (None, {"operator": "rotate", "angle": float("nan")}, ValueError, "angle must be"),
        (None, {"operator": "rotate", "angle": 120.0, "alpha": 2.0}, ValueError, r"\[-180, 180\]"),
        (None, {"operator": "clamp", "value": 1e300}, NonFiniteError, "use a smaller value"),
        ("zero", {"operator": "ablate"}, ValueError, "non-zero vector"),
        ("two", {"operator": "ablate"}, ValueError, "one direction per hook point"),
    ],
)
def test_bad_operator_input_raises_and_registers_nothing(tiny, vectors, kwargs, error, message):
    chosen = {
        None: _vector(tiny),
        "zero": SteeringVector(torch.zeros(64), layer=1),
        "two": [_vector(tiny, seed=1), _vector(tiny, seed=2)],
    }[vectors]
    with pytest.raises(error, match=message), steer(tiny, chosen, **kwargs):
        pass
    _nothing_left(tiny)
