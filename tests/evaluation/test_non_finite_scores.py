"""A NaN score is never an answer: the evaluation fails naming it (issue 16, defect 2).

The chosen behaviour: an item whose choice scores are not all finite fails the evaluation
(``EvaluationError`` whose cause is a ``NonFiniteError`` naming layer, alpha and dtype); the
partial result keeps only the items scored before it. Before the fix ``max`` over
``[nan, x]`` answered choice 0.
"""

import pytest
import torch

import interp_steer.evaluation.batches as eval_batches
from interp_steer.data import load_task
from interp_steer.evaluation import EvaluationError, evaluate
from interp_steer.models import score_continuations
from interp_steer.steering import NonFiniteError, SteeringVector


def _nan_from(monkeypatch, bad_row):
    """Score continuations as usual, but give row ``bad_row`` of each call NaN sums."""

    def fake(model, contexts, continuations):
        out = score_continuations(model, contexts, continuations)
        if bad_row < len(out):
            out[bad_row] = [(float("nan"), t, c) for _, t, c in out[bad_row]]
        return out

    monkeypatch.setattr(eval_batches, "score_continuations", fake)


def test_a_nan_score_fails_the_item_instead_of_answering_choice_0(tiny, monkeypatch):
    ts = load_task("xcopa", "sw", n=4)
    _nan_from(monkeypatch, bad_row=2)
    with pytest.raises(EvaluationError, match="not finite") as info:
        evaluate(tiny, ts, batch_size=4, progress=False)
    cause = info.value.__cause__
    assert isinstance(cause, NonFiniteError)
    assert "unsteered, float32" in str(cause)
    assert info.value.item_id == ts.items[2].id
    assert info.value.partial.n == 0  # nothing of the failing batch is counted


def test_the_failure_names_layer_alpha_and_dtype_when_steered(tiny, monkeypatch):
    ts = load_task("xcopa", "sw", n=2)
    v = SteeringVector(torch.zeros(64), layer=1)
    _nan_from(monkeypatch, bad_row=0)
    with pytest.raises(EvaluationError) as info:
        evaluate(tiny, ts, vector=v, alpha=2.5, batch_size=1, progress=False)
    assert "steered at layer 1 with alpha=2.5, float32" in str(info.value.__cause__)


def test_an_overflowing_alpha_fails_the_evaluation_with_the_cause(tiny):
    ts = load_task("xcopa", "sw", n=2)
    v = SteeringVector(torch.ones(64), layer=1)
    with pytest.raises(EvaluationError) as info:
        evaluate(tiny, ts, vector=v, alpha=1e300, progress=False)
    assert NonFiniteError.found_in(info.value) is not None
    assert "alpha=1e+300 at layer 1" in str(info.value.__cause__)
