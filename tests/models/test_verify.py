"""verify_model catches a residual stream that is not the Hugging Face model's (#19 item 5)."""

import json

import pytest
import torch

from interp_steer.models import load_model, verify_model
from interp_steer.models import loading as loading_module
from interp_steer.models.loading import _tiny_hf


def test_a_clean_tiny_model_passes(tiny):
    check = verify_model(tiny, ["Hallo Welt"])
    assert check.reference == "hf"
    assert len(check.layer_diffs) == tiny.cfg.n_layers
    assert max(check.layer_diffs) < 1e-4 and check.logits_diff < 1e-4


def test_a_corrupted_block_is_caught_naming_its_layer(tiny, monkeypatch):
    """Noise added to block 2's output in the bridge's forward only (the HF run is clean)."""
    state = {"bridge": False}

    def noisy(module, args, output):
        if not state["bridge"]:
            return output
        if isinstance(output, tuple):
            return (output[0] + 0.5, *output[1:])
        return output + 0.5

    forward = tiny.forward

    def bridge_forward(*args, **kwargs):
        state["bridge"] = True
        try:
            return forward(*args, **kwargs)
        finally:
            state["bridge"] = False

    handle = tiny.blocks[2].hook_out.register_forward_hook(noisy)  # resid_post
    monkeypatch.setattr(tiny, "forward", bridge_forward)
    try:
        with pytest.raises(ValueError, match=r"from layer 2 \(blocks\.2\.hook_resid_post"):
            verify_model(tiny, ["Hallo Welt"])
    finally:
        handle.remove()


def test_load_model_verifies_a_checkpoint_once(tmp_path, monkeypatch):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    hf, _ = _tiny_hf(torch.device("cpu"), folder)
    hf.save_pretrained(folder)
    monkeypatch.setenv("INTERP_STEER_CACHE", str(tmp_path / "cache"))
    calls = []

    def counting(model, *args, **kwargs):
        calls.append(model)
        return verify_model(model, *args, **kwargs)

    monkeypatch.setattr(loading_module, "verify_model", counting)
    load_model(str(folder), device="cpu")
    markers = list((tmp_path / "cache" / "verified").glob("*.json"))
    assert len(calls) == 1 and len(markers) == 1
    assert json.loads(markers[0].read_text())["reference"] == "hf"
    load_model(str(folder), device="cpu")
    assert len(calls) == 1  # the cached result was used
    load_model(str(folder), device="cpu", dtype=torch.float64)
    assert len(calls) == 2  # another dtype is another check
