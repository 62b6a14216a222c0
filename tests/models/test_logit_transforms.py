"""The lens's read-out uses the model's own output-logits transform (issue #19 item 6).

Tiny random Cohere (``logit_scale``), Granite (``logits_scaling``) and Gemma-2
(``final_logit_softcapping``) models are built in memory and booted as bridges; the
lens's last layer must equal the model's logits.
"""

import tempfile
import warnings

import pytest
import torch
from transformer_lens.model_bridge import TransformerBridge
from transformers import (
    AutoTokenizer,
    CohereConfig,
    CohereForCausalLM,
    Gemma2Config,
    Gemma2ForCausalLM,
    GraniteConfig,
    GraniteForCausalLM,
)

from interp_steer.analysis import project_to_vocab
from interp_steer.models.backend import output_logits
from interp_steer.models.loading import tiny_tokenizer

_COMMON = dict(
    vocab_size=260,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=128,
    pad_token_id=0,
    eos_token_id=1,
    bos_token_id=2,
)


def _config(arch: str):
    if arch == "cohere":
        return CohereConfig(**_COMMON, logit_scale=0.0625, architectures=["CohereForCausalLM"])
    if arch == "granite":
        return GraniteConfig(**_COMMON, logits_scaling=8.0, architectures=["GraniteForCausalLM"])
    return Gemma2Config(
        **_COMMON,
        head_dim=16,
        final_logit_softcapping=2.0,  # small, so that the cap bends the tiny model's logits
        initializer_range=0.5,
        architectures=["Gemma2ForCausalLM"],
    )


_CLASSES = {"cohere": CohereForCausalLM, "granite": GraniteForCausalLM, "gemma2": Gemma2ForCausalLM}


def tiny_bridge(arch: str) -> TransformerBridge:
    """A tiny random ``arch`` model booted as a bridge, as ``load_model("tiny")`` does."""
    config = _config(arch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        hf = _CLASSES[arch](config).eval()
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        config.save_pretrained(tmp)
        tiny_tokenizer().save_pretrained(tmp)
        tokenizer = AutoTokenizer.from_pretrained(tmp)
        model = TransformerBridge.boot_transformers(
            tmp, hf_model=hf, tokenizer=tokenizer, device="cpu"
        )
    return model.eval()


@pytest.fixture(scope="module", params=["cohere", "granite", "gemma2"])
def bridge(request):
    return tiny_bridge(request.param)


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
