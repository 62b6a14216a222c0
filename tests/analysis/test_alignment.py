"""english_kl and the EnglishKL sweep evaluator."""

import numpy as np
import pytest
import torch

from interp_steer.analysis import EnglishKL, alignment, english_kl, layer_sweep
from interp_steer.analysis.alignment import english_logprobs
from interp_steer.data import ParallelCorpus, load_parallel
from interp_steer.steering import SteeringVector

PAIRS = ParallelCorpus(
    ("The cat sleeps.", "A dog runs fast.", "Rain"),
    ("Die Katze schläft.", "Ein Hund rennt schnell.", "Regen"),
    "de",
    "en",
)


@pytest.fixture
def english_passes(monkeypatch):
    """A list that grows by one on every ``english_logprobs`` call (the English pass)."""
    calls: list[int] = []
    real = alignment.english_logprobs

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(alignment, "english_logprobs", counted)
    return calls


def test_identical_texts_have_zero_kl_and_steering_moves_them(tiny):
    same = ParallelCorpus(PAIRS.english, PAIRS.english, "de", "en")
    assert np.abs(english_kl(tiny, same)).max() < 1e-5
    v = SteeringVector(torch.ones(64), layer=1)
    assert english_kl(tiny, same, vector=v, alpha=8.0).min() > 1e-3


def test_alpha_zero_is_the_unsteered_gap_and_batching_does_not_matter(tiny):
    base = english_kl(tiny, PAIRS)
    v = SteeringVector(torch.randn(64, generator=torch.Generator().manual_seed(0)), layer=2)
    assert np.array_equal(english_kl(tiny, PAIRS, vector=v, alpha=0.0), base)
    assert (base > 0).all()
    one = english_kl(tiny, PAIRS, vector=v, alpha=3.0, batch_size=1)
    np.testing.assert_allclose(english_kl(tiny, PAIRS, vector=v, alpha=3.0), one, atol=1e-5)


def test_template_wraps_both_sides(tiny):
    wrapped = english_kl(tiny, PAIRS, template="Q: {text}\nA:")
    assert not np.allclose(wrapped, english_kl(tiny, PAIRS))
    with pytest.raises(ValueError, match="template must contain"):
        english_kl(tiny, PAIRS, template="no slot")


def test_evaluator_selects_on_pairs_after_start_and_drives_a_sweep(tiny):
    ev = EnglishKL("msvamp", "train", start=490, n=4)
    held = ev.pairs("de", "select")
    train = load_parallel("msvamp", "de", split="train")
    assert held.target == train.target[490:494]
    score = ev(tiny, "de", None, 0.0, "select")
    assert score.n == 4 and score.value < 0 and score.low <= score.value <= score.high
    with pytest.raises(ValueError, match="no test stage"):
        ev(tiny, "de", None, 0.0, "test")
    res = layer_sweep(tiny, ["de"], task=ev, layers=[1, 3], ratios=(0.25,), n_fit=4,
                      fit_dataset="msvamp", fit_split="train", test=False)  # fmt: skip
    assert res.metric == "-KL to English (nats)"
    assert "msvamp train pairs 490..493" in res.selection
    assert np.isfinite(res.score).all()


def test_bad_evaluator_settings_are_refused():
    with pytest.raises(ValueError, match="start >= 0"):
        EnglishKL("msvamp", start=-1)
    with pytest.raises(ValueError, match="none from 2000"):
        EnglishKL("msvamp", "train", start=2000).pairs("de", "select")


def test_reference_is_the_english_side_and_the_evaluator_computes_it_once(tiny, english_passes):
    v = SteeringVector(torch.randn(64, generator=torch.Generator().manual_seed(1)), layer=2)
    ref = english_logprobs(tiny, PAIRS)
    assert np.array_equal(
        english_kl(tiny, PAIRS, vector=v, alpha=2.0, reference=ref),
        english_kl(tiny, PAIRS, vector=v, alpha=2.0),
    )
    with pytest.raises(ValueError, match="reference has 2 rows for 3 pairs"):
        english_kl(tiny, PAIRS, reference=ref[:2])
    english_passes.clear()
    ev = EnglishKL("msvamp", "train", start=490, n=3)
    cells = [ev(tiny, "de", v, a, "select") for a in (0.0, 1.0, 3.0)]
    assert len(english_passes) == 1  # one English pass for all cells of a language
    ev(tiny, "fr", v, 1.0, "select")
    assert len(english_passes) == 2  # a new language: a new reference
    fresh = [EnglishKL("msvamp", "train", start=490, n=3)(tiny, "de", v, a, "select")
             for a in (0.0, 1.0, 3.0)]  # fmt: skip
    assert cells == fresh


def test_transfer_matrix_computes_each_targets_english_reference_once(tiny, english_passes):
    from interp_steer.analysis import transfer_matrix

    ev = EnglishKL("msvamp", "train", start=490, n=2, test_split="eval")
    res = transfer_matrix(tiny, ["de", "fr", "es"], task=ev, layer=2, ratio=0.25, n_fit=4,
                          english=False, fit_dataset="msvamp", fit_split="train")  # fmt: skip
    assert len(english_passes) == 3  # one per target, shared by the baseline and all three sources
    assert np.isfinite(res.score).all() and res.score.shape == (3, 3)
