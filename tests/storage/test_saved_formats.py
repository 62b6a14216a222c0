"""Files written before the stage layout (commit c8b3e6b) load unchanged.

The fixtures in tests/fixtures/c8b3e6b were written by that commit's code on the tiny
model: a mean_diff vector (German FLORES, layer 1), an XCOPA evaluation steered with it,
and a two-layer sweep. Their ``format`` headers are the ones every release must read.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from interp_steer import EvalResult, SteeringVector, SweepResult

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "c8b3e6b"


def test_a_vector_saved_before_loads_as_it_was():
    v = SteeringVector.load(FIXTURES / "vector")
    assert (v.layer, v.method, v.source_lang, v.model_name) == (1, "mean_diff", "de", "tiny")
    assert v.hook_name == "blocks.1.hook_resid_post"
    assert v.norm == pytest.approx(4.037610054016113, rel=1e-7)
    assert v.meta["metrics"]["resid_norm"] == pytest.approx(20.814674377441406, rel=1e-7)


def test_an_evaluation_saved_before_loads_as_it_was():
    r = EvalResult.load(FIXTURES / "eval.json")
    assert (r.task, r.lang, r.n, r.n_correct) == ("xcopa", "it", 3, 1)
    assert r.method == "basic+mean_diff@L1 a=2" and r.row == "basic+mean_diff"
    assert json.loads((FIXTURES / "eval.json").read_text())["format"] == "interp_steer.EvalResult"


def test_a_sweep_saved_before_loads_as_it_was():
    s = SweepResult.load(FIXTURES / "sweep.json")
    assert s.langs == ("it",) and s.layers == (1, 2) and s.score.shape == (1, 2, 1)
    np.testing.assert_array_equal(s.score, [[[0.5], [0.5]]])
    assert s.best("it")["alpha"] == pytest.approx(1.074215256979445)


def test_a_saved_vector_round_trips_exactly(tmp_path):
    v = SteeringVector.load(FIXTURES / "vector")
    v.save(tmp_path / "again")
    again = SteeringVector.load(tmp_path / "again")
    assert again.direction.equal(v.direction) and again.meta == v.meta
