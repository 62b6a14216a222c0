"""LoraAdapter and apply_lora on the tiny model: merged = peft's unmerged forward, exact undo."""

import copy
import json
import warnings

import numpy as np
import pytest
import torch
from peft import LoraConfig, get_peft_model
from safetensors import safe_open
from safetensors.numpy import load_file, save_file
from transformers import AutoModelForCausalLM

from interp_steer.analysis import model_settings
from interp_steer.data import load_task
from interp_steer.evaluation import evaluate
from interp_steer.models import active_adapters, named_weights, weights_fingerprint
from interp_steer.steering import LoraAdapter, apply_lora

TARGETS = ("q_proj", "v_proj")


def random_adapter(model, *, rank=2, alpha=4.0, zero_b=False, seed=0, **fields):
    gen = np.random.default_rng(seed)
    weights = named_weights(model)
    names = [f"model.layers.{i}.self_attn.{m}.weight" for i in range(4) for m in TARGETS]
    a, b = {}, {}
    for name in names:
        out, inp = weights[name].shape
        a[name] = gen.normal(0, 0.3, (rank, inp)).astype(np.float32)
        b[name] = (np.zeros if zero_b else lambda s: gen.normal(0, 0.3, s))((out, rank))
        b[name] = np.asarray(b[name], dtype=np.float32)
    fields.setdefault("model_name", "tiny")
    return LoraAdapter(a, b, rank=rank, alpha=alpha, target_modules=TARGETS, **fields)


def snapshot(model):
    return {name: p.detach().clone() for name, p in model.original_model.named_parameters()}


def assert_same(model, before):
    now = dict(model.original_model.named_parameters())
    for name, value in before.items():
        assert torch.equal(now[name], value), name


@pytest.fixture(scope="module")
def ids(tiny):
    return tiny.to_tokens(["Hallo Welt, wie geht es dir?", "Die Katze schläft."])


def test_a_zero_b_adapter_leaves_the_logits_bit_identical(tiny, ids):
    with torch.no_grad():
        plain = tiny(ids)
        with apply_lora(tiny, random_adapter(tiny, zero_b=True)):
            assert torch.equal(tiny(ids), plain)


def test_merged_weights_give_the_logits_of_the_peft_wrapped_model(tiny, ids):
    adapter = random_adapter(tiny, seed=3)
    hf = tiny.original_model
    plain = AutoModelForCausalLM.from_config(copy.deepcopy(hf.config), dtype=torch.float32)
    weights = named_weights(tiny)
    with torch.no_grad():
        for name, p in plain.named_parameters():
            p.copy_(weights[name])
    config = LoraConfig(r=2, lora_alpha=4.0, target_modules=list(TARGETS), lora_dropout=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        wrapped = get_peft_model(plain, config).eval()
    modules = dict(wrapped.base_model.model.named_modules())
    with torch.no_grad():
        for name in adapter.names:
            module = modules[name.removesuffix(".weight")]
            module.lora_A["default"].weight.copy_(torch.from_numpy(adapter.lora_a[name]))
            module.lora_B["default"].weight.copy_(torch.from_numpy(adapter.lora_b[name]))
        unmerged = wrapped(input_ids=ids).logits
        base = tiny(ids)
        with apply_lora(tiny, adapter):
            merged = tiny(ids)
    assert (unmerged - base).abs().max() > 1e-2  # the adapter changes the logits
    torch.testing.assert_close(merged, unmerged, rtol=1e-4, atol=1e-4)


def test_every_weight_is_bit_identical_after_the_block_and_after_an_exception(tiny, ids):
    before = snapshot(tiny)
    adapter = random_adapter(tiny)
    with apply_lora(tiny, adapter) as model:
        assert model is tiny
        assert active_adapters(tiny) == (
            {"name": "lora r=2 q_proj+v_proj", "fingerprint": adapter.checksum},
        )
    assert_same(tiny, before)
    with pytest.raises(KeyError), apply_lora(tiny, adapter):
        raise KeyError("inside")
    assert_same(tiny, before)
    assert active_adapters(tiny) == ()


def test_the_delta_is_scaling_times_b_at_a_and_the_frame_has_its_norm(tiny):
    adapter = random_adapter(tiny, rank=2, alpha=6.0)
    name = adapter.names[0]
    expected = 3.0 * adapter.lora_b[name].astype(np.float64) @ adapter.lora_a[name]
    np.testing.assert_allclose(adapter.delta(name), expected, rtol=1e-5, atol=1e-6)
    frame = adapter.to_frame()
    assert list(frame.columns) == [
        "name", "module", "out_features", "in_features", "rank", "delta_norm"
    ]  # fmt: skip
    assert list(frame["name"]) == sorted(adapter.names) and len(frame) == 8
    row = frame.set_index("name").loc[name]
    assert (row.out_features, row.in_features, row["rank"]) == (64, 64, 2)
    assert row.delta_norm == pytest.approx(np.linalg.norm(expected), rel=1e-5)
    weights = named_weights(tiny)
    before = weights[name].detach().clone()
    with apply_lora(tiny, adapter):
        got = (weights[name].detach().double() - before.double()).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


def test_save_and_load_are_bit_exact(tiny, tmp_path):
    adapter = random_adapter(tiny, meta={"hyper": {"lr": 2e-4}, "metrics": {"loss_curve": [1.5]}})
    path = adapter.save(tmp_path / "lora")
    assert path.name == "lora.safetensors" and path.with_suffix(".json").is_file()
    readable = json.loads(path.with_suffix(".json").read_text())
    assert readable["checksum"] == adapter.checksum and len(readable["modules"]) == 8
    back = LoraAdapter.load(tmp_path / "lora")
    assert back.names == adapter.names and back.checksum == adapter.checksum
    for name in adapter.names:
        assert back.lora_a[name].tobytes() == adapter.lora_a[name].tobytes()
        assert back.lora_b[name].tobytes() == adapter.lora_b[name].tobytes()
    assert (back.rank, back.alpha, back.target_modules) == (2, 4.0, TARGETS)
    assert (back.model_name, back.model_fingerprint, back.meta) == ("tiny", None, adapter.meta)


def test_a_corrupt_or_foreign_file_is_refused(tiny, tmp_path):
    path = random_adapter(tiny).save(tmp_path / "lora")
    with safe_open(str(path), framework="np") as f:
        header = f.metadata()
    tensors = load_file(str(path))
    key = sorted(tensors)[0]
    tensors[key] = tensors[key] + np.float32(1.0)  # one factor changed, the header kept
    save_file(tensors, str(path), metadata=header)
    with pytest.raises(ValueError, match="checksum"):
        LoraAdapter.load(path)
    save_file({"x": np.zeros(2, np.float32)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not an interp_steer LoRA adapter"):
        LoraAdapter.load(tmp_path / "other")
    with pytest.raises(FileNotFoundError):
        LoraAdapter.load(tmp_path / "missing")


def test_an_adapter_of_another_model_is_refused_and_other_weights_warn(tiny, ids):
    before = snapshot(tiny)
    with (
        pytest.raises(ValueError, match="trained on 'gemma-3-270m' but the model is 'tiny'"),
        apply_lora(tiny, random_adapter(tiny, model_name="gemma-3-270m")),
    ):
        pass
    assert active_adapters(tiny) == ()
    stale = random_adapter(tiny, model_fingerprint="0" * 16)
    with pytest.warns(UserWarning, match="other base weights"), apply_lora(tiny, stale):
        pass
    names = random_adapter(tiny).names
    fresh = random_adapter(tiny, model_fingerprint=weights_fingerprint(tiny, names))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with apply_lora(tiny, fresh):
            pass
    assert_same(tiny, before)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rank": 3}, "A must be \\(rank, in\\)"),
        ({"alpha": 0.0}, "alpha must be a positive"),
        ({"target_modules": ("k_proj",)}, "not the weight of one of the target modules"),
        ({"lora_b": {}}, "the same, non-empty set"),
    ],
)
def test_bad_fields_are_refused(tiny, change, message):
    good = random_adapter(tiny)
    fields = {"lora_a": good.lora_a, "lora_b": good.lora_b, "rank": 2, "alpha": 4.0,
              "target_modules": TARGETS} | change  # fmt: skip
    with pytest.raises(ValueError, match=message):
        LoraAdapter(**fields)


def test_evaluate_records_the_adapter_only_while_it_is_applied(tiny):
    ts = load_task("xcopa", "sw", n=2)
    adapter = random_adapter(tiny)
    plain = evaluate(tiny, ts, progress=False)
    with apply_lora(tiny, adapter):
        adapted = evaluate(tiny, ts, progress=False)
    assert "adapters" not in plain.settings
    assert adapted.settings["adapters"] == [
        {"name": "lora r=2 q_proj+v_proj", "fingerprint": adapter.checksum}
    ]
    assert {k: v for k, v in adapted.settings.items() if k != "adapters"} == plain.settings


def test_run_folders_record_the_adapter_only_while_it_is_applied(tiny):
    adapter = random_adapter(tiny)
    plain = model_settings(tiny)
    with apply_lora(tiny, adapter):
        adapted = model_settings(tiny)
    assert sorted(plain) == ["dtype", "interp_steer", "model", "weights"]
    assert adapted["adapters"] == [
        {"name": "lora r=2 q_proj+v_proj", "fingerprint": adapter.checksum}
    ]
    assert adapted["weights"] != plain["weights"] and model_settings(tiny) == plain
