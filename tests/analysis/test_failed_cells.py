"""A cell that cannot be scored is recorded as failed (NaN) and never selected (issue 16, 2)."""

import json

import numpy as np
import pytest

from interp_steer.analysis import Score, SweepResult, TransferResult, layer_sweep, transfer_matrix
from interp_steer.plotting import plot_sweep, plot_sweep_heatmap, plot_transfer
from interp_steer.steering import NonFiniteError


class Blowing:
    """A fake task whose score grows with alpha, and which cannot score alpha beyond 1e6."""

    name = "blowing accuracy"
    selection = "blowing val split"
    testing = "blowing test split"

    def __init__(self, how: str = "raise", limit: float = 1e6) -> None:
        self.how, self.limit = how, limit
        self.calls: list[tuple[float, str]] = []

    def __call__(self, model, lang, vector, alpha, stage):
        self.calls.append((alpha, stage))
        if alpha > self.limit:
            if self.how == "nan":
                return Score(float("nan"), float("nan"), float("nan"), 4)
            try:
                raise NonFiniteError(f"choice scores [nan, nan] are not finite (alpha={alpha:g})")
            except NonFiniteError as err:
                raise RuntimeError("evaluation failed at item 0") from err
        value = 0.5 if vector is None else min(0.9, 0.6 + 1e-3 * alpha)
        return Score(value, value - 0.1, value + 0.1, 4)


KW = dict(layers=[1, 2], n_fit=4)


@pytest.mark.parametrize("how", ["raise", "nan"])
def test_failed_cells_are_nan_recorded_and_never_selected(tiny, tmp_path, how):
    fake = Blowing(how)
    res = layer_sweep(tiny, ["de"], task=fake, ratios=(0.1, 1e300), run_dir=tmp_path, **KW)
    assert np.isnan(res.score[0, :, 1]).all() and np.isfinite(res.score[0, :, 0]).all()
    assert res.best("de")["strength"] == 0.1  # 1e300 would "score" highest, but failed
    failed = res.meta["failed"]
    assert len(failed) == 2 and all("not finite" in why or "nan" in why for why in failed.values())
    key = next(iter(failed))
    cell = json.loads((tmp_path / "cells" / f"{key}.json").read_text())
    assert cell["value"] is None and cell["failed"] == failed[key]
    # the test stage ran on the selected (finite) cell
    assert [a for a, stage in fake.calls if stage == "test"] == [res.best("de")["alpha"], 0.0]
    assert np.isfinite(res.test).all()
    # kept on resume, round-trips as NaN, shown as NaN
    again = Blowing(how)
    res2 = layer_sweep(tiny, ["de"], task=again, ratios=(0.1, 1e300), run_dir=tmp_path, **KW)
    assert again.calls == [] and res2.meta["failed"] == failed
    back = SweepResult.load(res.save(tmp_path / "sweep.json"))
    assert np.isnan(back.score[0, :, 1]).all() and back.meta["failed"] == failed
    assert res.to_frame()["select_score"].isna().sum() == 2
    _, vals = res.best_per_layer()
    assert np.isfinite(vals).all()  # the best strength of each layer is the finite one
    plot_sweep(res), plot_sweep_heatmap(res, "de")


def test_every_cell_failed_selects_nothing(tiny):
    fake = Blowing(limit=-1.0)  # even the baseline (alpha 0) fails
    res = layer_sweep(tiny, ["de"], task=fake, ratios=(0.1,), **KW)
    assert np.isnan(res.score).all() and np.isnan(res.baseline).all()
    assert np.isnan(res.test).all() and not [c for c in fake.calls if c[1] == "test"]
    assert len(res.meta["failed"]) == 3
    with pytest.raises(ValueError, match="no cell of de could be scored"):
        res.best("de")
    assert res.selected("de") is None
    stars = [t for t in plot_sweep(res).data if t.name.endswith("selected")]
    assert stars == []  # the figure draws the failed sweep without a selection
    assert not plot_sweep_heatmap(res, "de").layout.shapes


def test_other_errors_still_propagate(tiny):
    def broken(model, lang, vector, alpha, stage):
        raise RuntimeError("disk full")

    broken.name = "broken accuracy"
    with pytest.raises(RuntimeError, match="disk full"):
        layer_sweep(tiny, ["de"], task=broken, ratios=(0.1,), **KW)


def test_real_task_sweep_with_an_overflowing_ratio(tiny, tmp_path):
    """The issue's ``--ratios 0.1,1e300``: those cells fail, 0.1 is selected."""
    res = layer_sweep(tiny, ["sw"], task="xcopa", layers=[1], ratios=(0.1, 1e300), n=2,
                      n_fit=4, run_dir=tmp_path)  # fmt: skip
    assert np.isfinite(res.score[0, 0, 0]) and np.isnan(res.score[0, 0, 1])
    assert res.best("sw")["strength"] == 0.1
    (why,) = res.meta["failed"].values()
    assert "alpha=" in why and "layer 1" in why and "float32" in why


def test_transfer_records_failed_cells_and_english_damage(tiny, tmp_path):
    fake = Blowing(limit=0.0)  # every steered cell fails, the baselines do not
    res = transfer_matrix(tiny, ["de", "sw"], task=fake, layer=1, alpha=5.0, n_fit=4,
                          english=lambda model, vector, alpha: float("nan"),
                          run_dir=tmp_path)  # fmt: skip
    assert np.isnan(res.score).all() and np.isfinite(res.baseline[:, 0]).all()
    assert np.isnan(res.gain).all() and np.isnan(res.english_damage).all()
    assert set(res.meta["failed"]) == {"de-to-de", "sw-to-de", "de-to-sw", "sw-to-sw",
                                       "english-damage-de", "english-damage-sw"}  # fmt: skip
    back = TransferResult.load(res.save(tmp_path / "transfer.json"))
    assert np.isnan(back.score).all()
    plot_transfer(res)


def test_a_ratio_whose_alpha_overflows_is_refused(tiny, tmp_path):
    """alpha = ratio·‖h‖/‖v‖ itself overflows: one clear error, no cell with alpha inf."""
    with pytest.raises(ValueError, match="non-finite alpha"):
        transfer_matrix(tiny, ["sw"], task="xcopa", layer=1, ratio=1e308, n_fit=4, n=2,
                        english=lambda model, vector, alpha: 0.0, run_dir=tmp_path)  # fmt: skip
    assert not list(tmp_path.rglob("*-to-*.json"))
