"""Wilson intervals against hand computation; McNemar and the paired bootstrap."""

import math

import pytest

from interp_steer.evaluation.statistics import (
    PairedTest,
    binomial_two_sided,
    mcnemar_exact,
    paired_bootstrap,
    wilson_interval,
    z_value,
)


def test_wilson_against_hand_computation():
    # 8/10, z = 1.959964: centre (0.8 + z²/20) / (1 + z²/10) = 0.716738,
    # half-width z * sqrt(0.016 + z²/400) / (1 + z²/10) = 0.226580
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.490160, abs=1e-5)
    assert high == pytest.approx(0.943318, abs=1e-5)
    # 50/100: symmetric around 0.5, half-width 1.96 * sqrt(0.0025 + z²/40000) / 1.038415
    low, high = wilson_interval(50, 100)
    assert (low + high) / 2 == pytest.approx(0.5)
    assert high - 0.5 == pytest.approx(0.096170, abs=1e-5)


def test_wilson_edges():
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(0, 10)[1] == pytest.approx(0.277535, abs=1e-5)
    assert wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(11, 10)
    with pytest.raises(ValueError, match="confidence"):
        z_value(1.5)


def test_wilson_matches_closed_form_for_other_confidence():
    z = z_value(0.9)
    assert z == pytest.approx(1.644854, abs=1e-6)
    k, n = 3, 40
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert wilson_interval(k, n, 0.9) == pytest.approx((centre - half, centre + half))


def test_binomial_two_sided():
    assert binomial_two_sided(0, 5) == pytest.approx(2 / 32)
    assert binomial_two_sided(1, 5) == pytest.approx(2 * 6 / 32)
    assert binomial_two_sided(5, 10) == 1.0
    assert binomial_two_sided(0, 0) == 1.0
    assert 0 < binomial_two_sided(400, 2000) < 1e-100  # large n does not overflow


def test_mcnemar_exact_counts_discordant_items():
    first = [True, True, False, False, True, False]
    second = [True, False, True, True, True, True]
    t = mcnemar_exact(first, second)
    assert (t.n, t.b, t.c) == (6, 1, 3)
    assert t.diff == pytest.approx(2 / 6)
    assert t.p_value == pytest.approx(binomial_two_sided(1, 4)) == pytest.approx(0.625)
    assert mcnemar_exact(first, first).p_value == 1.0
    with pytest.raises(ValueError, match="same items"):
        mcnemar_exact(first, second[:-1])


def test_paired_bootstrap_is_seeded_and_sane():
    first = [False] * 30 + [True] * 10
    second = [True] * 20 + [False] * 10 + [True] * 10
    a = paired_bootstrap(first, second, n_resamples=300, seed=1)
    b = paired_bootstrap(first, second, n_resamples=300, seed=1)
    assert a == b
    assert a.diff == pytest.approx(0.5)
    assert a.p_value < 0.01
    assert a.ci is not None and a.ci[0] <= a.diff <= a.ci[1]
    assert paired_bootstrap(first, first, n_resamples=50).p_value == 1.0


def test_paired_test_validates():
    with pytest.raises(ValueError, match="inconsistent"):
        PairedTest("mcnemar", 2, 2, 1, 0.0, 0.5)
    with pytest.raises(ValueError, match="unknown"):
        PairedTest("t-test", 2, 0, 0, 0.0, 1.0)
