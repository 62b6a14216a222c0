"""steer() refuses or reports NaN/inf instead of letting them through (issue 16, defect 2)."""

import pytest
import torch

from interp_steer.models import load_model
from interp_steer.steering import NonFiniteError, SteeringVector, steer


def _unit(model, scale=1.0, layer=1):
    g = torch.Generator().manual_seed(0)
    d = torch.randn(model.cfg.d_model, generator=g)
    return SteeringVector(scale * d / d.norm(), layer=layer, model_name="tiny")


def _nothing_left(model):
    assert not any(hp.fwd_hooks for hp in model.hook_dict.values())
    assert [h.__name__ for h in model.original_model._forward_pre_hooks.values()] in (
        [],
        ["_cache_by_new_name"],  # load_model's permanent past_key_values -> cache renaming
    )
    assert not model.original_model._forward_hooks


@pytest.fixture(scope="module")
def tiny16():
    """The tiny model in float16 (CPU half matmuls work in current torch)."""
    return load_model("tiny", dtype=torch.float16)


def test_an_alpha_that_overflows_is_refused_before_anything_runs(tiny):
    with (
        pytest.raises(NonFiniteError, match=r"alpha=1e\+300 at layer 1 .* float32"),
        steer(tiny, _unit(tiny), alpha=1e300),
    ):
        pass
    _nothing_left(tiny)
    assert issubclass(NonFiniteError, ValueError)


def test_float16_model_at_alpha_1e5(tiny16):
    v = _unit(tiny16, scale=8.0)
    with (
        pytest.raises(NonFiniteError, match=r"alpha=100000 at layer 1 .* float16"),
        steer(tiny16, v, alpha=1e5),
    ):
        pass
    _nothing_left(tiny16)


def test_a_residual_that_overflows_raises_naming_layer_alpha_dtype(tiny16):
    # each term fits float16 (60000 < 65504); their sum in the residual stream does not
    vectors = [SteeringVector(torch.full((64,), 60000.0), layer=i) for i in (1, 2)]
    message = r"steering at layer 2 with alpha=1 \(float16\) made the residual stream NaN"
    with pytest.raises(NonFiniteError, match=message), steer(tiny16, vectors):
        tiny16("Hallo Welt")  # the check stays on the device: raised when the block ends
    _nothing_left(tiny16)
    with steer(tiny16, vectors):
        tiny16("Hallo")
        with pytest.raises(NonFiniteError, match="layer 2"):
            tiny16("Hallo")  # ... or at the next forward call
    _nothing_left(tiny16)


def test_a_non_finite_output_under_steering_raises(tiny):
    def poison(resid, hook):
        return resid * float("nan")

    message = r"output turned NaN .* layer 1 with alpha=2"
    with pytest.raises(NonFiniteError, match=message), steer(tiny, _unit(tiny), alpha=2.0):
        tiny.add_hook("blocks.3.hook_resid_post", poison)
        try:
            tiny("Hallo Welt")
        finally:
            tiny.reset_hooks()
    _nothing_left(tiny)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_the_addition_runs_in_float32_and_is_cast_back(dtype):
    model = load_model("tiny", dtype=dtype)
    v = _unit(model, scale=3.0)
    name = "blocks.1.hook_resid_post"
    _, base = model.run_with_cache("Hallo Welt", names_filter=name)
    with steer(model, v, alpha=1.7):
        _, steered = model.run_with_cache("Hallo Welt", names_filter=name)
    h = base[name]
    expected = (h.float() + 1.7 * v.direction.float()).to(dtype)
    assert steered[name].dtype == dtype
    assert torch.equal(steered[name], expected)
    assert not torch.equal(steered[name], h + (1.7 * v.direction).to(dtype))  # not in dtype
    _nothing_left(model)
