"""BiPO's exact fast step on the decoder families of the paper's models (issue #22).

The paper's models are Llama-2/3, Mistral, Qwen2 and Aya-23 (Cohere). On HEAD the fast
step ran on Gemma-3 alone and fell back to the reference step (about twice as slow) on
all of them; here it must equal the reference step on tiny random models of each family:
Mistral with a sliding window shorter than the prompts, Qwen2 with its attention biases,
Cohere with its ``logit_scale``.
"""

import pytest
import torch

from interp_steer.fitting import fit_vector
from interp_steer.fitting.bipo import (
    DEFAULT_PROMPT_TEMPLATE,
    _TokenLogprob,
    encode_preference,
    fast_step_supported,
)

ENGLISH = ("The cat sleeps on the warm mat.", "Hello, my friend.", "I like fresh bread.")
GERMAN = (
    "Die Katze schläft auf der warmen Matte.",
    "Hallo, mein Freund.",
    "Ich mag frisches Brot.",
)
PROMPTS = [DEFAULT_PROMPT_TEMPLATE.format(text=t) for t in GERMAN]
ARCHS = {
    "llama": {},
    "mistral": {"sliding_window": 8},  # shorter than every prompt: the window matters
    "qwen2": {},  # q/k/v biases
    "cohere": {"logit_scale": 0.0625},  # its logits are scaled
}

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module", params=sorted(ARCHS))
def frozen(request, tiny_archs, frozen_params):
    with frozen_params(tiny_archs(request.param, layers=3, **ARCHS[request.param])) as model:
        yield model


@pytest.mark.parametrize("layer", [0, 1])
def test_fast_step_equals_the_reference_step(frozen, layer, fast_step_matches):
    assert fast_step_supported(frozen)
    pairs, _ = encode_preference(frozen, PROMPTS, ENGLISH, GERMAN, 128, True)
    fast_step_matches(frozen, layer, pairs)
    window = getattr(frozen.original_model.config, "sliding_window", None)
    if window:
        assert min(len(p.prompt) for p in pairs) > window


def test_bipo_trains_with_the_fast_step(frozen):
    vector = fit_vector(
        frozen, (ENGLISH, GERMAN), layer=1, method="bipo", warmup_steps=0, n_eval=0, lang="de"
    )
    assert vector.meta["metrics"]["step"] == "fast"
    assert float(vector.direction.norm()) > 0


@pytest.mark.parametrize("scale", [0.0625, 3.0])
def test_fused_token_logprob_with_a_logit_scale(scale):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5, 8, generator=gen, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(30, 8, generator=gen, dtype=torch.float64)
    bias = torch.randn(30, generator=gen, dtype=torch.float64)
    targets = torch.tensor([0, 29, 3, 3, 17])
    g = torch.randn(5, generator=gen, dtype=torch.float64)
    logits = 2.0 * torch.tanh((x @ weight.T + bias) * scale / 2.0)
    want = torch.log_softmax(logits, -1).gather(-1, targets[:, None])[:, 0]
    (want_grad,) = torch.autograd.grad(want, x, g)
    got = _TokenLogprob.apply(x, weight, bias, targets, 2.0, scale)
    (got_grad,) = torch.autograd.grad(got, x, g)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got_grad, want_grad, rtol=1e-12, atol=1e-12)
