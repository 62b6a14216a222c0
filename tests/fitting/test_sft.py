"""The SFT (LoRA) baseline on the tiny model: it learns, it is seeded, the model is untouched."""

import peft
import pytest
import torch

from interp_steer.data import ParallelCorpus
from interp_steer.fitting import fit_lora, sft_loss
from interp_steer.models import weights_fingerprint
from interp_steer.steering import LoraAdapter, apply_lora

PAIRS = ParallelCorpus.coerce(
    [
        ("The cat sleeps.", "Die Katze schläft."),
        ("Hello world.", "Hallo Welt."),
        ("I like bread.", "Ich mag Brot."),
        ("It is cold.", "Es ist kalt."),
    ],
    lang="de",
    name="toy",
)
FAST = {"rank": 4, "lr": 1e-2, "epochs": 3, "warmup_steps": 0, "progress": False}


@pytest.fixture(scope="module")
def adapter(tiny):
    return fit_lora(tiny, PAIRS, seed=0, **FAST)


def test_training_lowers_the_sft_loss_of_the_bridge_on_the_training_pairs(tiny, adapter):
    before = sft_loss(tiny, PAIRS)
    with apply_lora(tiny, adapter):
        after = sft_loss(tiny, PAIRS)
    metrics = adapter.meta["metrics"]
    assert after < before - 0.5, (before, after)
    # the training copy (peft, unmerged) and the bridge with the merged adapter agree
    assert metrics["loss_before"] == pytest.approx(before, rel=1e-4)
    assert metrics["loss_after"] == pytest.approx(after, rel=1e-4)
    assert metrics["steps"] == 12 == len(metrics["loss_curve"]) == len(metrics["grad_norm_curve"])


def test_the_same_seed_gives_a_bit_identical_adapter_and_another_seed_another(tiny, adapter):
    again = fit_lora(tiny, PAIRS, seed=0, **FAST)
    assert again.checksum == adapter.checksum
    assert again.meta == adapter.meta
    assert fit_lora(tiny, PAIRS, seed=1, **FAST).checksum != adapter.checksum


def test_the_model_is_left_exactly_as_it_was(tiny):
    params = dict(tiny.named_parameters())
    before = {n: p.detach().clone() for n, p in params.items()}
    flags = {n: p.requires_grad for n, p in params.items()}
    fit_lora(tiny, PAIRS.head(2), rank=2, epochs=1, progress=False)
    for name, p in tiny.named_parameters():
        assert torch.equal(p, before[name]), name
        assert p.grad is None and p.requires_grad == flags[name], name


def test_the_adapter_names_the_original_weights_and_records_its_training(tiny, adapter):
    assert adapter.names == tuple(
        sorted(f"model.layers.{i}.self_attn.{m}_proj.weight" for i in range(4) for m in "qkvo")
    )
    assert adapter.model_name == "tiny"
    assert adapter.model_fingerprint == weights_fingerprint(tiny, adapter.names)
    meta = adapter.meta
    assert meta["method"] == "sft_lora" and meta["versions"]["peft"] == peft.__version__
    assert meta["data"]["n_pairs"] == 4 and meta["data"]["fingerprint"] == PAIRS.fingerprint
    assert meta["data"]["corpus"] == "toy" and meta["data"]["n_truncated"] == 0
    given = {k: v for k, v in FAST.items() if k != "progress"}
    assert meta["hyper"] | given == meta["hyper"]  # every setting given is recorded
    assert meta["hyper"]["alpha"] == 16.0 and meta["hyper"]["batch_size"] == 1
    assert adapter.scaling == 4.0
    assert {r.in_features for r in adapter.to_frame().itertuples()} == {64}


def test_a_saved_adapter_loads_back_bit_exact(adapter, tmp_path):
    back = LoraAdapter.load(adapter.save(tmp_path / "sft"))
    assert back.checksum == adapter.checksum and back.meta == adapter.meta


def test_batches_are_padded_without_changing_the_loss(tiny):
    one = fit_lora(tiny, PAIRS, rank=2, batch_size=4, epochs=1, n_eval=4, progress=False)
    assert one.meta["metrics"]["steps"] == 1
    # the eval loss of batch 4 (right-padded) is the untrained model's loss on every pair
    assert one.meta["metrics"]["loss_before"] == pytest.approx(sft_loss(tiny, PAIRS), rel=1e-4)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"target_modules": ("nope_proj",)}, r"not Linear modules of the model; it has .*q_proj"),
        ({"rank": 0}, "rank must be a positive int"),
        ({"lr": float("nan")}, "lr must be a positive finite number"),
        ({"dropout": 1.0}, "dropout must be in"),
        ({"prompt_template": "no slot"}, "must contain"),
    ],
)
def test_bad_options_are_refused(tiny, options, message):
    with pytest.raises(ValueError, match=message):
        fit_lora(tiny, PAIRS, progress=False, **options)
