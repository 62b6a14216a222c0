"""The device path: steer, fit, evaluate and generate on a bfloat16 model, on each device.

Runs on the CPU here and on CUDA where a GPU is present (the CUDA cases are skipped
otherwise; ``bench_scale.py`` runs them on the GPU machine). Issue #22 item 3: a bf16 or
fp16 model, steering arithmetic in float32, everything on the model's device.
"""

import pytest
import torch

from interp_steer.data import ParallelCorpus, TaskItem, TaskSet
from interp_steer.evaluation import evaluate
from interp_steer.fitting import fit_vector
from interp_steer.models import greedy_generate, left_pad, load_model
from interp_steer.models.batching import token_ids
from interp_steer.steering import SteeringVector, steer

DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
    ),
]
PAIRS = ParallelCorpus.coerce(
    [("The cat sleeps.", "Die Katze schläft."), ("I like bread.", "Ich mag Brot."),
     ("Good morning.", "Guten Morgen."), ("The sun shines.", "Die Sonne scheint.")],
    lang="de",
)  # fmt: skip
PROMPT = "Guten Morgen zusammen, wie geht es euch?"

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module", params=DEVICES)
def model(request):
    return load_model("tiny", device=request.param, dtype=torch.bfloat16)


def _device(model) -> torch.device:
    return next(model.parameters()).device


def test_the_model_is_where_it_was_asked_in_bfloat16(model):
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    logits = model(PROMPT)
    assert logits.device.type == _device(model).type


def test_steer_on_the_device_in_float32(model):
    base = model(PROMPT)
    g = torch.Generator().manual_seed(0)
    d = torch.randn(model.cfg.d_model, generator=g)
    with steer(model, SteeringVector(d, layer=1), alpha=0.0):
        assert torch.equal(model(PROMPT), base)  # alpha 0: the model itself
    # a vector far below the bfloat16 residual's resolution per coordinate, on the CPU:
    # added in float32 it still moves some coordinates after rounding, so the logits move
    _, cache = model.run_with_cache(PROMPT, names_filter="blocks.1.hook_resid_post")
    scale = float(cache["blocks.1.hook_resid_post"].float().abs().mean()) * 2**-7
    with steer(model, SteeringVector(d / d.abs().max() * scale, layer=1)):
        steered = model(PROMPT)
    assert steered.device == base.device and not torch.equal(steered, base)


def test_fit_and_evaluate_on_the_device(model):
    vector = fit_vector(model, PAIRS, layer=1, method="mean_diff")
    assert torch.isfinite(vector.direction).all() and vector.direction.norm() > 0
    items = tuple(
        TaskItem(
            f"x-{i}",
            "xcopa",
            "de",
            "Es regnet.",
            str(i % 2),
            ("Sonne.", "Schirm."),
            meta={"relation": "effect"},
        )
        for i in range(2)
    )
    run = evaluate(model, TaskSet("xcopa", "de", "test", items), vector=vector, alpha=2.0)
    assert len(run.items) == 2
    unsteered = evaluate(model, TaskSet("xcopa", "de", "test", items))
    zero = evaluate(model, TaskSet("xcopa", "de", "test", items), vector=vector, alpha=0.0)
    assert [i.scores for i in zero.items] == [i.scores for i in unsteered.items]


def test_generate_with_the_kv_cache_on_the_device(model):
    ids, mask = left_pad(model, [token_ids(model, PROMPT, bos=True)])
    ids, mask = ids.to(_device(model)), mask.to(_device(model))
    plain = greedy_generate(model, ids, mask, max_new_tokens=4, progress=False)
    g = torch.Generator().manual_seed(1)
    d = torch.randn(model.cfg.d_model, generator=g)
    with steer(model, SteeringVector(d, layer=1), alpha=0.0):
        zero = greedy_generate(model, ids, mask, max_new_tokens=4, progress=False)
    with steer(model, SteeringVector(d / d.norm() * 50.0, layer=1)):
        steered = greedy_generate(model, ids, mask, max_new_tokens=4, progress=False)
    assert zero == plain and len(steered[0]) > 0
