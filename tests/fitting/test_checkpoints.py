"""Resumable training: BiPO and the LoRA fine-tune save their state every few steps, and a
run killed mid-training resumes to the bit-identical result of an uninterrupted run."""

from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from interp_steer.fitting import bipo_direction, check_hyper, fit_lora, fit_vector
from interp_steer.storage import SettingsError, TrainingCheckpoint

PAIRS = SimpleNamespace(
    english=("The cat sleeps.", "Hello, my friend.", "I like fresh bread."),
    target=("Die Katze schläft.", "Hallo, mein Freund.", "Ich mag frisches Brot."),
    source_lang="de",
    name="toy",
    meta={},
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


class Killed(Exception):
    """Stands for the process being killed mid-training."""


@contextmanager
def killed_before_step(n: int) -> Iterator[None]:
    """Raise :class:`Killed` before the ``n``-th optimizer step (counted from 0)."""
    calls = [0]

    def hook(optimizer: object, args: object, kwargs: object) -> None:
        if calls[0] == n:
            raise Killed
        calls[0] += 1

    handle = register_optimizer_step_pre_hook(hook)
    try:
        yield
    finally:
        handle.remove()


BIPO = {"layer": 1, "epochs": 3, "warmup_steps": 2, "n_eval": 0}  # 9 steps of one pair


@pytest.mark.parametrize(
    ("every", "kill", "resumed", "lr_scale"),
    [(2, 5, 4, "resid"), (3, 7, 6, "resid"), (2, 5, 4, "coord")],
)
def test_a_killed_bipo_run_resumes_to_the_uninterrupted_vector(
    tiny, tmp_path, every, kill, resumed, lr_scale
):
    options = {**BIPO, "lr_scale": lr_scale}
    v_full, m_full = bipo_direction(tiny, PAIRS, **options)
    with pytest.raises(Killed), killed_before_step(kill):
        bipo_direction(tiny, PAIRS, **options, checkpoint_dir=tmp_path, checkpoint_every=every)
    (saved,) = tmp_path.glob("bipo-layer1-*.pt")
    v, metrics = bipo_direction(
        tiny, PAIRS, **options, checkpoint_dir=tmp_path, checkpoint_every=every
    )
    # (6: an epoch's start, where the order is drawn anew; 4: mid-epoch, its saved order)
    assert metrics["resumed_at"] == resumed and m_full["resumed_at"] is None
    assert torch.equal(v, v_full)
    assert metrics["loss_curve"] == m_full["loss_curve"]
    assert metrics["grad_norm_curve"] == m_full["grad_norm_curve"]
    assert metrics["lr_peak_reached"] == m_full["lr_peak_reached"]
    assert not saved.exists()  # trained: the checkpoint is gone


def test_a_checkpoint_saved_before_coord_still_resumes(tiny, tmp_path):
    # older checkpoints hold the trained vector as "v" (with "resid" it is w itself)
    v_full, _ = bipo_direction(tiny, PAIRS, **BIPO)
    with pytest.raises(Killed), killed_before_step(5):
        bipo_direction(tiny, PAIRS, **BIPO, checkpoint_dir=tmp_path, checkpoint_every=2)
    (saved,) = tmp_path.glob("bipo-layer1-*.pt")
    payload = torch.load(saved, weights_only=True)
    payload["state"]["v"] = payload["state"].pop("w")
    torch.save(payload, saved)
    v, metrics = bipo_direction(tiny, PAIRS, **BIPO, checkpoint_dir=tmp_path, checkpoint_every=2)
    assert metrics["resumed_at"] == 4 and torch.equal(v, v_full)


def test_other_settings_never_resume_a_bipo_checkpoint(tiny, tmp_path):
    with pytest.raises(Killed), killed_before_step(3):
        bipo_direction(tiny, PAIRS, **BIPO, checkpoint_dir=tmp_path, checkpoint_every=2)
    (saved,) = tmp_path.glob("*.pt")
    _, metrics = bipo_direction(
        tiny, PAIRS, **{**BIPO, "seed": 1}, checkpoint_dir=tmp_path, checkpoint_every=2
    )
    assert metrics["resumed_at"] is None and saved.exists()  # another seed: a new file
    other = SimpleNamespace(**{**vars(PAIRS), "target": ("Die Katze.", "Hallo.", "Brot.")})
    _, metrics = bipo_direction(tiny, other, **BIPO, checkpoint_dir=tmp_path)
    assert metrics["resumed_at"] is None  # other pairs: a new file too


def test_a_checkpoint_of_other_settings_is_refused_naming_them(tmp_path):
    TrainingCheckpoint(tmp_path, "x", {"lr": 0.1, "seed": 0}).save({"step": 1})
    (saved,) = tmp_path.glob("x-*.pt")
    wrong = TrainingCheckpoint(tmp_path, "x", {"lr": 0.2, "seed": 0})
    saved.rename(wrong.path)  # a file moved by hand under another run's name
    with pytest.raises(SettingsError, match=r"lr: 0\.1 → 0\.2") as err:
        wrong.load()
    assert "seed" not in str(err.value)
    wrong.path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable training checkpoint"):
        wrong.load()
    with pytest.raises(ValueError, match="checkpoint_every must be a positive integer"):
        TrainingCheckpoint(tmp_path, "x", {}, every=0)


def test_checkpoint_options_are_not_recorded(tiny, tmp_path):
    plain = fit_vector(tiny, PAIRS, method="bipo", **BIPO)
    saved = fit_vector(tiny, PAIRS, method="bipo", **BIPO, checkpoint_dir=tmp_path)
    hyper = {k: v for k, v in BIPO.items() if k != "layer"}
    assert saved.meta["hyper"] == plain.meta["hyper"] == check_hyper("bipo", hyper)
    assert "checkpoint_dir" not in saved.meta["hyper"]
    assert torch.equal(saved.direction, plain.direction)


SFT = {"epochs": 3, "warmup_steps": 2, "n_eval": 1, "target_modules": ("q_proj",)}


def test_a_killed_lora_run_resumes_to_the_uninterrupted_adapter(tiny, tmp_path):
    full = fit_lora(tiny, PAIRS, **SFT)
    with pytest.raises(Killed), killed_before_step(5):
        fit_lora(tiny, PAIRS, **SFT, checkpoint_dir=tmp_path, checkpoint_every=2)
    (saved,) = tmp_path.glob("sft-lora-*.pt")
    resumed = fit_lora(tiny, PAIRS, **SFT, checkpoint_dir=tmp_path, checkpoint_every=2)
    assert resumed.meta["metrics"]["resumed_at"] == 4
    assert full.meta["metrics"]["resumed_at"] is None
    for name in full.names:  # dropout masks and all: bit-identical factors
        assert np.array_equal(resumed.lora_a[name], full.lora_a[name])
        assert np.array_equal(resumed.lora_b[name], full.lora_b[name])
    for key in ("loss_curve", "grad_norm_curve", "loss_before", "loss_after"):
        assert resumed.meta["metrics"][key] == full.meta["metrics"][key]
    assert resumed.meta["hyper"] == full.meta["hyper"]
    assert not saved.exists()
    _, metrics = bipo_direction(tiny, PAIRS, **BIPO, checkpoint_dir=tmp_path)
    assert metrics["resumed_at"] is None  # BiPO and LoRA checkpoints never mix
