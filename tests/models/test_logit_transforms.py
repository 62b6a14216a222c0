"""The lens's read-out uses the model's own output-logits transform (issue #19 item 6).

Tiny random Cohere (``logit_scale``), Granite (``logits_scaling``) and Gemma-2
(``final_logit_softcapping``) models are built in memory and booted as bridges; the
lens's last layer must equal the model's logits.
"""

import pytest
import torch

from interp_steer.analysis import project_to_vocab
from interp_steer.models.backend import output_logits

CONFIGS = {
    "cohere": ("cohere", {"logit_scale": 0.0625}),
    "granite": ("granite", {"logits_scaling": 8.0}),
    "gemma2": (
        "gemma2",
        # a small cap, so that it bends the tiny model's logits
        {"head_dim": 16, "final_logit_softcapping": 2.0, "initializer_range": 0.5},
    ),
}


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def bridge(request, tiny_archs):
    """A tiny random model of each architecture, booted as a bridge (tests/conftest.py)."""
    model_type, fields = CONFIGS[request.param]
    return tiny_archs(model_type, **fields)


IDS = torch.tensor([[2, 40, 50, 60, 70], [2, 90, 100, 110, 120]])


def test_the_lens_last_layer_equals_the_models_logits(bridge):
    with torch.inference_mode():
        logits, cache = bridge.run_with_cache(IDS)
        hf_logits = bridge.original_model(IDS).logits
    last = cache[f"blocks.{bridge.cfg.n_layers - 1}.hook_resid_post"]
    lens = project_to_vocab(bridge, last)
    assert torch.allclose(logits, hf_logits, atol=1e-5)
    # HEAD ignored logit_scale (Cohere: 16x too large) and logits_scaling (Granite: 8x)
    torch.testing.assert_close(lens, hf_logits.float(), atol=1e-5, rtol=1e-5)
    # the transform is not a no-op on these configs: the raw unembedding differs
    raw = bridge.unembed(bridge.ln_final(last)).float()
    assert (raw - hf_logits).abs().max() > 0.1


def test_the_config_fallback_matches_the_adapter(bridge, monkeypatch):
    """Without the adapter's transform (older TransformerLens) the HF config's is used."""
    raw = torch.randn(3, 260) * 40
    want = output_logits(bridge, raw)
    monkeypatch.setattr(type(bridge.adapter), "apply_output_logits_transform", None)
    torch.testing.assert_close(output_logits(bridge, raw), want, atol=1e-5, rtol=1e-5)
