"""Uncertainty for accuracies: Wilson intervals and paired tests on the same items.

Steered and unsteered runs answer the same items, so their difference is tested paired:
McNemar's exact test on the discordant items, or a paired bootstrap of the accuracy gain.

Example:
    >>> low, high = wilson_interval(8, 10)
    >>> round(low, 4), round(high, 4)
    (0.4902, 0.9433)
    >>> mcnemar_exact([True, True, False, True], [False, False, False, True]).p_value
    0.5
"""

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist


def z_value(confidence: float = 0.95) -> float:
    """Return the two-sided normal quantile for a confidence level (1.96 for 0.95).

    Example:
        >>> round(z_value(0.95), 4)
        1.96
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Return the Wilson score interval of a binomial proportion.

    ``(p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)`` with ``p = successes / n``.
    Unlike the normal interval it stays inside [0, 1] and is sensible at 0 and n successes.

    Args:
        successes: Number of correct items.
        n: Number of items; 0 gives the uninformative interval (0, 1).
        confidence: Coverage of the interval.

    Raises:
        ValueError: ``successes`` outside ``0..n``, or a negative ``n``.

    Example:
        >>> [round(x, 4) for x in wilson_interval(0, 10)]
        [0.0, 0.2775]
    """
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return 0.0, 1.0
    z = z_value(confidence)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


@dataclass(frozen=True)
class PairedTest:
    """The outcome of a paired test of two runs on the same items.

    Attributes:
        method: ``"mcnemar"`` or ``"bootstrap"``.
        n: Number of paired items.
        b: Items only the first run got right.
        c: Items only the second run got right.
        diff: Accuracy of the second run minus the first.
        p_value: Two-sided p-value of "no difference".
        ci: Confidence interval of ``diff`` (bootstrap only; else None).
    """

    method: str
    n: int
    b: int
    c: int
    diff: float
    p_value: float
    ci: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.method not in ("mcnemar", "bootstrap"):
            raise ValueError(f"unknown paired test {self.method!r}")
        if min(self.n, self.b, self.c) < 0 or self.b + self.c > self.n:
            raise ValueError(f"inconsistent counts n={self.n}, b={self.b}, c={self.c}")
        if not 0.0 <= self.p_value <= 1.0:
            raise ValueError(f"p_value must lie in [0, 1], got {self.p_value}")


def _check_pairs(a: Sequence[bool], b: Sequence[bool]) -> None:
    if len(a) != len(b):
        raise ValueError(f"paired runs need the same items: got {len(a)} and {len(b)} results")


def _discordant(a: Sequence[bool], b: Sequence[bool]) -> tuple[int, int]:
    only_a = sum(1 for x, y in zip(a, b, strict=True) if x and not y)
    only_b = sum(1 for x, y in zip(a, b, strict=True) if y and not x)
    return only_a, only_b


def binomial_two_sided(k: int, n: int) -> float:
    """Exact two-sided p-value of ``k`` successes in ``n`` fair coin flips.

    Example:
        >>> binomial_two_sided(0, 5)
        0.0625
    """
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(k, n - k) + 1))  # exact integers
    return min(1.0, 2 * tail / 2**n)


def mcnemar_exact(first: Sequence[bool], second: Sequence[bool]) -> PairedTest:
    """McNemar's exact test: are the discordant items split evenly between two runs?

    Args:
        first: Per-item correctness of the reference run (e.g. unsteered).
        second: Per-item correctness of the other run, on the same items in the same order.

    Example:
        >>> t = mcnemar_exact([False] * 10, [True] * 8 + [False] * 2)
        >>> t.b, t.c, round(t.p_value, 5)
        (0, 8, 0.00781)
    """
    _check_pairs(first, second)
    b, c = _discordant(first, second)
    n = len(first)
    diff = (c - b) / n if n else 0.0
    return PairedTest("mcnemar", n, b, c, diff, binomial_two_sided(b, b + c))


def paired_bootstrap(
    first: Sequence[bool],
    second: Sequence[bool],
    *,
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> PairedTest:
    """Paired bootstrap of the accuracy gain ``second - first`` over resampled items.

    The p-value is the two-sided share of resampled gains on the other side of zero
    (at least ``1 / n_resamples`` when the gain is not zero, 1 when it is).

    Example:
        >>> t = paired_bootstrap([False] * 10, [True] * 8 + [False] * 2, n_resamples=500)
        >>> t.diff, t.p_value < 0.01, t.ci[0] > 0
        (0.8, True, True)
    """
    _check_pairs(first, second)
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")
    b, c = _discordant(first, second)
    n = len(first)
    if n == 0:
        return PairedTest("bootstrap", 0, 0, 0, 0.0, 1.0, (0.0, 0.0))
    deltas = [int(y) - int(x) for x, y in zip(first, second, strict=True)]
    diff = sum(deltas) / n
    rng = random.Random(seed)
    gains = sorted(sum(rng.choices(deltas, k=n)) / n for _ in range(n_resamples))
    alpha = (1 - confidence) / 2
    ci = (gains[int(alpha * (n_resamples - 1))], gains[int((1 - alpha) * (n_resamples - 1))])
    if diff == 0:
        p = 1.0
    else:
        other_side = sum(1 for g in gains if (g <= 0 if diff > 0 else g >= 0))
        p = min(1.0, max(2 * other_side / n_resamples, 1 / n_resamples))
    return PairedTest("bootstrap", n, b, c, diff, p, ci)


__all__ = [
    "PairedTest",
    "binomial_two_sided",
    "mcnemar_exact",
    "paired_bootstrap",
    "wilson_interval",
    "z_value",
]
