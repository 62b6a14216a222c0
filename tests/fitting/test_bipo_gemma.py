"""BiPO as shipped, on the real model: its defaults learn a vector that matters (issue #18).

The study shows this at full size (400 pairs, nine languages, 128 held-out pairs each);
here a handful of Swahili pairs, so that a fresh machine proves the real path in minutes.
"""

import pytest

from interp_steer.analysis import english_kl
from interp_steer.data import load_parallel
from interp_steer.fitting import fit_vector

QUESTION = "Question: {text}\nAnswer: The answer is"
"""The study's EnglishKL prompt: the next token is the answer, native vs English question."""


@pytest.mark.real
def test_bipo_defaults_move_swahili_towards_english_on_gemma(gemma):
    train = load_parallel("msvamp", "sw", split="train", n=32)
    held_out = load_parallel("msvamp", "sw", split="eval", n=16)  # never trained on
    v = fit_vector(gemma, train, layer=8, method="bipo")
    m = v.meta["metrics"]
    assert (m["lr_scale"], m["steps"]) == ("resid", 32)
    # at the paper's literal rate the vector stays ~1e-5 of the residual and changes nothing
    assert m["norm_ratio"] >= 0.005
    steered = english_kl(gemma, held_out, vector=v, template=QUESTION)  # as trained: alpha 1
    unsteered = english_kl(gemma, held_out, template=QUESTION)
    assert steered.mean() < unsteered.mean()
    assert (steered < unsteered).sum() >= 12, (steered, unsteered)
