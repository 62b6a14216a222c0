"""Layer sweep: relative strengths, selection never on test items, resumable run folders."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from interp_steer.analysis import CellStore, Score, SweepResult, TaskEvaluator, layer_sweep
from interp_steer.steering import SteeringVector, alpha_for_ratio


class Counting:
    """A fake task: scores depend on layer and alpha; counts calls per stage."""

    name = "fake accuracy"
    selection = "fake val split"

    def __init__(self, fail_after: int | None = None) -> None:
        self.calls: list[tuple[str, int | None, float, str]] = []
        self.fail_after = fail_after

    def __call__(self, model, lang, vector, alpha, stage):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise RuntimeError("interrupted")
        self.calls.append((lang, None if vector is None else vector.layer, alpha, stage))
        if vector is None:
            return Score(0.4, 0.3, 0.5, 20)
        value = 0.5 + 0.1 * (vector.layer == 2) - 0.01 * alpha
        return Score(value, value - 0.1, value + 0.1, 20)


KW = dict(layers=[0, 2], ratios=(0.1, 0.5), n_fit=4)


def test_grid_selection_and_relative_strengths(tiny):
    fake = Counting()
    res = layer_sweep(tiny, ["de", "sw"], task=fake, **KW)
    assert res.score.shape == (2, 2, 2) and res.relative
    # one baseline + 4 cells per language on select, then best + baseline on test
    stages = [c[3] for c in fake.calls]
    assert stages.count("select") == 2 * 5 and stages.count("test") == 2 * 2
    best = res.best("de")
    assert best["layer"] == 2 and best["strength"] == 0.1  # weaker alpha scores higher
    assert best["gain"] == pytest.approx(best["score"] - 0.4)
    assert not np.isnan(res.test).any() and res.selection == "fake val split"
    # alphas really give ‖alpha v‖ / ‖h‖ = ratio
    norms = res.meta["vector_norms"]["de"]
    assert set(norms) == {"0", "2"}
    idx, vals = res.best_per_layer()
    assert idx.shape == (2, 2) and vals.shape == (2, 2, 3)


def test_alpha_for_ratio():
    v = SteeringVector(torch.ones(4), layer=0, meta={"metrics": {"resid_norm": 8.0}})
    assert alpha_for_ratio(v, 0.25) * v.norm / 8.0 == pytest.approx(0.25)
    with pytest.raises(ValueError, match="residual norm"):
        alpha_for_ratio(SteeringVector(torch.ones(4), layer=0), 0.1)


def test_resume_skips_done_cells(tiny, tmp_path):
    first = Counting()
    res1 = layer_sweep(tiny, ["de"], task=first, run_dir=tmp_path, **KW)
    assert len(first.calls) == 7
    again = Counting()
    res2 = layer_sweep(tiny, ["de"], task=again, run_dir=tmp_path, **KW)
    assert again.calls == []  # nothing evaluated, nothing fitted again
    np.testing.assert_array_equal(res1.score, res2.score)
    np.testing.assert_array_equal(res1.alphas, res2.alphas)
    (tmp_path / "cells" / "de" / "L0-s0.5.json").unlink()
    third = Counting()
    layer_sweep(tiny, ["de"], task=third, run_dir=tmp_path, **KW)
    assert [(c[1], c[3]) for c in third.calls] == [(0, "select")]
    np.testing.assert_allclose(third.calls[0][2], res1.alphas[0, 0, 1])  # same saved vector


def test_interrupted_run_resumes(tiny, tmp_path):
    with pytest.raises(RuntimeError, match="interrupted"):
        layer_sweep(tiny, ["de"], task=Counting(fail_after=3), run_dir=tmp_path, **KW)
    rest = Counting()
    layer_sweep(tiny, ["de"], task=rest, run_dir=tmp_path, **KW)
    assert len(rest.calls) == 7 - 3
    cells = sorted(p.name for p in (tmp_path / "cells" / "de").iterdir())
    assert not [c for c in cells if c.endswith(".tmp")]
    assert json.loads((tmp_path / "config.json").read_text())["metric"] == "fake accuracy"


def test_run_dir_refuses_other_settings(tiny, tmp_path):
    layer_sweep(tiny, ["de"], task=Counting(), run_dir=tmp_path, test=False, **KW)
    with pytest.raises(ValueError, match="different settings"):
        layer_sweep(tiny, ["de"], task=Counting(), run_dir=tmp_path, method="pca",
                    test=False, **KW)  # fmt: skip


def test_never_selects_on_test():
    with pytest.raises(ValueError, match="leak"):
        TaskEvaluator("mgsm", select_split="test")
    ev = TaskEvaluator("mgsm", select_items=3, n=2)
    select, test = ev.items("de", "select"), ev.items("de", "test")
    assert not {i.id for i in select.items} & {i.id for i in test.items}
    assert "held out" in ev.selection


def test_result_validation_and_roundtrip(tiny, tmp_path):
    res = layer_sweep(tiny, ["de"], task=Counting(), test=False, **KW)
    assert np.isnan(res.test).all()
    with pytest.raises(ValueError, match="score has shape"):
        dataclasses.replace(res, score=res.score[:, :1])
    with pytest.raises(ValueError, match="unique"):
        dataclasses.replace(res, layers=(0, 0))
    back = SweepResult.load(res.save(tmp_path / "sweep.json"))
    np.testing.assert_array_equal(back.score, res.score)
    assert np.isnan(back.test).all() and back.best("de") == res.best("de")
    assert len(res.to_frame()) == 4
    table = SweepResult.load(res.save(tmp_path / "sweep.parquet"))
    np.testing.assert_array_equal(table.alphas, res.alphas)


def test_cellstore_without_folder():
    store = CellStore(None)
    store.put("x", {"a": 1})
    assert store.get("x") is None


@pytest.mark.slow
def test_real_task_on_tiny(tiny, tmp_path):
    res = layer_sweep(tiny, ["it"], task="xcopa", layers=[1], ratios=(0.1,), n=2, n_fit=4,
                      run_dir=tmp_path)  # fmt: skip
    assert res.selection == "xcopa val split" and res.metric == "xcopa accuracy"
    assert 0.0 <= res.score[0, 0, 0] <= 1.0 and not np.isnan(res.test).any()
