"""Model loading: the tiny model, offline aliases and clear errors for hub names."""

import time

import pytest
import torch

from interp_steer.models.loading import (
    cache_dir,
    converted_checkpoint,
    load_model,
    model_name,
    resolve_device,
)


def test_tiny_is_small_fast_and_deterministic(tiny):
    assert (tiny.cfg.n_layers, tiny.cfg.d_model) == (4, 64)
    assert model_name(tiny) == "tiny"
    assert tiny.tokenizer.padding_side == "left"
    start = time.perf_counter()
    again = load_model("tiny")
    assert time.perf_counter() - start < 5.0
    assert torch.equal(again("same weights"), tiny("same weights"))


def test_tiny_does_not_touch_the_global_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    load_model("tiny")
    assert torch.equal(torch.rand(3), expected)


def test_resolve_device_never_defaults_to_an_absent_gpu():
    dev = resolve_device(None)
    assert dev.type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_hub_name_fails_fast_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    start = time.perf_counter()
    with pytest.raises(ValueError, match="offline aliases: gemma-3-270m, smollm2-135m, tiny"):
        load_model("some-org/not-a-local-model")
    assert time.perf_counter() - start < 10


def test_device_and_device_map_are_exclusive():
    with pytest.raises(ValueError, match="either device or device_map"):
        load_model("gemma-3-270m", device="cpu", device_map="auto")


def test_cache_dir_setting(monkeypatch, tmp_path):
    monkeypatch.setenv("INTERP_STEER_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path


@pytest.mark.real
def test_default_model_loads_offline_from_its_converted_cache(gemma):
    assert (gemma.cfg.n_layers, gemma.cfg.d_model) == (18, 640)
    assert model_name(gemma) == "gemma-3-270m"
    assert (converted_checkpoint("gemma-3-270m") / "config.json").exists()
    text = gemma.generate(
        "The capital of France is", max_new_tokens=4, do_sample=False, verbose=False
    )
    assert "Paris" in text or "capital" in text
