"""BiPO as shipped, on the real model: its recipe learns a vector that matters (issue #18).

The study shows the defaults at full size (``bipo_defaults``: 400 pairs, nine languages,
128 held-out pairs each); here 32 Swahili pairs, so that a fresh machine proves the real
path in minutes. 32 steps are a twelfth of that epoch, so the schedule is compressed to
them: the warm-up keeps its share of the epoch (8 of 32 steps against 100 of 400) and the
peak rate is raised 12.5-fold (``SUMMED``), so that the summed rate matches the epoch's.
"""

import math

import pytest

from interp_steer.analysis import english_kl
from interp_steer.data import load_parallel
from interp_steer.fitting import fit_vector

WARMUP = 8


def summed_rate(steps: int, warmup: int) -> float:
    """The sum over an epoch of the schedule's rate, per unit of peak ``lr`` (bipo._cosine)."""
    up = sum(s / warmup for s in range(warmup))
    down = sum(0.5 * (1 + math.cos(math.pi * s / (steps - warmup))) for s in range(steps - warmup))
    return up + down


SUMMED = summed_rate(400, 100) / summed_rate(32, WARMUP)  # 12.5: lr 1e-3 -> 1.25e-2

QUESTION = "Question: {text}\nAnswer: The answer is"
"""The study's EnglishKL prompt: the next token is the answer, native vs English question."""


@pytest.mark.real
def test_bipo_defaults_move_swahili_towards_english_on_gemma(gemma):
    train = load_parallel("msvamp", "sw", split="train", n=32)
    held_out = load_parallel("msvamp", "sw", split="eval", n=16)  # never trained on
    v = fit_vector(gemma, train, layer=8, method="bipo", lr=1e-3 * SUMMED, warmup_steps=WARMUP)
    m = v.meta["metrics"]
    assert (m["lr_scale"], m["steps"]) == ("coord", 32)
    # at the paper's literal rate the vector stays ~1e-5 of the residual and changes nothing
    assert m["norm_ratio"] >= 0.005
    steered = english_kl(gemma, held_out, vector=v, template=QUESTION)  # as trained: alpha 1
    unsteered = english_kl(gemma, held_out, template=QUESTION)
    assert steered.mean() < unsteered.mean()
    assert (steered < unsteered).sum() >= 12, (steered, unsteered)
