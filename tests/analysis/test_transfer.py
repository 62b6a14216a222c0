"""Transfer matrix: gains over the target's baseline, English damage, resume, validation."""

import dataclasses

import numpy as np
import pytest

from interp_steer.analysis import Score, TransferResult, transfer_matrix


class Fake:
    """Own-language vectors help (+0.2), foreign ones a little (+0.05), English loses 0.1."""

    name = "fake accuracy"
    testing = "fake test split"

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None]] = []

    def __call__(self, model, lang, vector, alpha, stage):
        self.calls.append((lang, None if vector is None else vector.source_lang))
        base = {"de": 0.5, "sw": 0.3, "en": 0.8}[lang]
        if vector is None:
            value = base
        elif lang == "en":
            value = base - 0.1
        else:
            value = base + (0.2 if vector.source_lang == lang else 0.05)
        return Score(value, value - 0.1, value + 0.1, 50)


def test_gain_matrix_and_english_damage(tiny):
    fake = Fake()
    res = transfer_matrix(tiny, ["de", "sw"], task=fake, layer=2, n_fit=4)
    np.testing.assert_allclose(res.gain, [[0.2, 0.05], [0.05, 0.2]], atol=1e-12)
    np.testing.assert_allclose(res.english_damage, [-0.1, -0.1], atol=1e-12)
    assert res.stage == "fake test split" and res.relative and res.layer == 2
    assert (res.alphas > 0).all()
    # 2 baselines + 4 cells + 2 × (steered + unsteered English)
    assert len(fake.calls) == 2 + 4 + 4


def test_targets_differ_from_sources_and_no_english(tiny):
    res = transfer_matrix(tiny, ["de"], task=Fake(), layer=1, targets=["de", "sw"],
                          english=False, alpha=1.5, n_fit=4)  # fmt: skip
    assert res.score.shape == (1, 2) and np.isnan(res.english_damage).all()
    assert res.alphas.tolist() == [1.5] and not res.relative


def test_resume_and_roundtrip(tiny, tmp_path):
    transfer_matrix(tiny, ["de", "sw"], task=Fake(), layer=2, n_fit=4, run_dir=tmp_path)
    again = Fake()
    res = transfer_matrix(tiny, ["de", "sw"], task=again, layer=2, n_fit=4, run_dir=tmp_path)
    assert again.calls == []
    back = TransferResult.load(res.save(tmp_path / "transfer.json"))
    np.testing.assert_array_equal(back.gain, res.gain)
    assert back.sources == ("de", "sw") and len(back.to_frame()) == 4
    table = TransferResult.load(res.save(tmp_path / "transfer.parquet"))
    np.testing.assert_array_equal(table.score, res.score)


def test_validation(tiny):
    res = transfer_matrix(tiny, ["de"], task=Fake(), layer=1, n_fit=4)
    with pytest.raises(ValueError, match="score has shape"):
        dataclasses.replace(res, score=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="unique"):
        dataclasses.replace(res, targets=())
    with pytest.raises(ValueError, match="exactly one"):
        transfer_matrix(tiny, ["de"], task=Fake(), layer=1, ratio=0.1, alpha=1.0)
