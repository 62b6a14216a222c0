"""select_hyper: one sweep per grid point of fitting hyper-parameters, chosen on selection."""

import math
from typing import Any

import numpy as np
import pytest

from interp_steer.analysis import HyperSelection, Score, select_hyper
from interp_steer.analysis.hyper import grid_points

LRS = (1e-4, 1e-3, 3e-4)  # the largest lr gives the largest BiPO vector: point 1
KW: dict[str, Any] = dict(layer=1, n_fit=4)


class ByNorm:
    """Select by the vector's norm; the test stage scores the opposite way."""

    name = "fake norm"
    selection = "fake select"
    testing = "fake test"

    def __init__(self):
        self.calls = []

    def __call__(self, model, lang, vector, alpha, stage):
        self.calls.append((stage, None if vector is None else vector.norm, alpha))
        norm = 0.0 if vector is None else vector.norm
        value = norm if stage == "select" else -norm
        return Score(value, value - 1.0, value + 1.0, 4)


def test_the_chosen_point_is_the_best_select_score_and_test_never_decides(tiny):
    ev = ByNorm()
    sel = select_hyper(tiny, "swa", task=ev, grid={"lr": LRS}, **KW)
    norms = [p["vector_norm"] for p in sel.meta["points"]]
    assert sel.select[:, 0].tolist() == norms  # the select score of each point is its own
    assert sel.test[:, 0].tolist() == [-x for x in norms]  # test prefers the smallest vector
    assert int(np.argmax(norms)) == 1 and int(np.argmin(norms)) == 0
    assert sel.chosen == 1 and sel.best == {"lr": 1e-3}
    assert sel.points == ({"lr": 1e-4}, {"lr": 1e-3}, {"lr": 3e-4})
    assert (sel.lang, sel.layer, sel.method, sel.names) == ("sw", 1, "bipo", ("lr",))
    assert sel.testing == "fake test" and sel.selection == "fake select"
    assert sel.baseline.tolist() == [0.0, -1.0, 1.0]
    assert sel.test_baseline.tolist() == [-0.0, -1.0, 1.0]
    # BiPO as trained: every point at alpha 1, absolute
    assert not sel.relative and sel.alpha.tolist() == sel.strength.tolist() == [1.0] * 3
    assert {a for stage, norm, a in ev.calls if norm is not None} == {1.0}
    # each point's fit is recorded: by default BiPO's lr is in units of each coordinate's
    # spread, so AdamW's rate is lr itself
    for point, extra in zip(sel.points, sel.meta["points"], strict=True):
        fit = extra["fit_metrics"]
        assert fit["lr"] == point["lr"] and fit["norm"] == pytest.approx(extra["vector_norm"])
        assert (fit["lr_scale"], fit["lr_effective"]) == ("coord", fit["lr"])
    frame = sel.to_frame()
    assert frame["lr"].tolist() == list(LRS) and frame["chosen"].tolist() == [False, True, False]
    assert frame["select_score"].tolist() == norms
    assert frame["lr_effective"].tolist() == [
        x["fit_metrics"]["lr_effective"] for x in sel.meta["points"]
    ]


def test_ties_go_to_the_first_point_and_a_grid_of_two_names_is_a_product(tiny):
    def flat(model, lang, vector, alpha, stage):
        return Score(0.5, 0.4, 0.6, 4)

    sel = select_hyper(tiny, "sw", task=flat, grid={"lr": (1e-3, 1e-4), "epochs": (1, 2)},
                       test=False, **KW)  # fmt: skip
    assert sel.chosen == 0 and sel.best == {"lr": 1e-3, "epochs": 1}
    assert [tuple(p.values()) for p in sel.points] == [(1e-3, 1), (1e-3, 2), (1e-4, 1),
                                                        (1e-4, 2)]  # fmt: skip
    assert np.isnan(sel.test).all() and sel.testing == ""
    steps = [p["fit_metrics"]["steps"] for p in sel.meta["points"]]
    assert steps[1] == 2 * steps[0] and steps[3] == 2 * steps[2]  # epochs reached the fit


def test_resuming_from_run_dir_does_no_new_work(tiny, tmp_path):
    first = ByNorm()
    a = select_hyper(tiny, "sw", task=first, grid={"lr": LRS[:2]}, run_dir=tmp_path, **KW)
    assert len(first.calls) == 2 * 4  # per point: baseline, the cell, test, test baseline
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["lr=0.0001", "lr=0.001"]
    again = ByNorm()
    b = select_hyper(tiny, "sw", task=again, grid={"lr": LRS[:2]}, run_dir=tmp_path, **KW)
    assert again.calls == []
    assert b.to_dict() == a.to_dict()
    assert a.meta["points"][0]["run_dir"] == str(tmp_path / "lr=0.0001")


@pytest.mark.parametrize("suffix", [".json", ".parquet"])
def test_save_load_round_trips_bit_exact(tiny, tmp_path, suffix):
    sel = select_hyper(tiny, "sw", task=ByNorm(), grid={"lr": LRS[:2]}, test=False, **KW)
    back = HyperSelection.load(sel.save(tmp_path / f"sel{suffix}"))
    for name in ("strength", "alpha", "select", "test", "baseline", "test_baseline"):
        mine, theirs = getattr(sel, name), getattr(back, name)
        assert mine.tobytes() == theirs.tobytes(), name
    assert back.to_dict() == sel.to_dict() and back.points == sel.points
    assert back.chosen == sel.chosen == 1 and back.best == {"lr": 1e-3}


@pytest.mark.parametrize(
    ("grid", "extra", "match"),
    [
        ({}, {}, "grid must be a non-empty mapping"),
        ({"lr": ()}, {}, r"grid\['lr'\] must be a non-empty sequence"),
        ({"lr": (1e-3, 1e-3)}, {}, "repeats a value"),
        ({"nope": (1, 2)}, {}, "method 'bipo' has no hyper-parameter nope; valid: "),
        ({"lr": (1e-3,)}, {"lr": 1e-4}, "grid and fit_hyper both set lr"),
        ({"n_fit": (4, 8)}, {}, "n_fit is a setting of the sweep"),
        ({"lr": (1e-3,)}, {"ratios": (0.1,), "alphas": (1.0,)}, "at most one of alphas"),
        ({"lr": (math.nan,)}, {}, "finite float"),
    ],
)
def test_bad_grids_fail_before_any_work(tiny, tmp_path, grid, extra, match):
    ev = ByNorm()
    run = tmp_path / "run"
    with pytest.raises(ValueError, match=match):
        select_hyper(tiny, "sw", task=ev, grid=grid, run_dir=run, **KW, **extra)
    assert ev.calls == [] and (not run.exists() or not any(run.iterdir()))


def test_grid_points_is_the_product_in_order():
    assert grid_points({"a": (1, 2), "b": ("x", "y")}) == (
        {"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"}, {"a": 2, "b": "y"},
    )  # fmt: skip


def _fields(**changes):
    fields = dict(model="m", method="bipo", lang="sw", layer=1, metric="x", names=("lr",),
                  points=({"lr": 1e-4}, {"lr": 1e-3}), relative=False, strength=[1.0, 1.0],
                  alpha=[1.0, 1.0], select=[[0.1, 0, 0.2], [0.3, 0.2, 0.4]],
                  test=np.full((2, 3), np.nan), baseline=[0.0, 0.0, 0.0],
                  test_baseline=[np.nan] * 3, chosen=1, selection="s")  # fmt: skip
    arrays = ("strength", "alpha", "select", "test", "baseline", "test_baseline")
    return {k: np.asarray(v, dtype=float) if k in arrays else v
            for k, v in {**fields, **changes}.items()}  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"chosen": 0}, r"chosen must be the first point with the best select value \(1\)"),
        ({"points": ({"lr": 1e-4}, {"epochs": 2})}, r"every point must set \('lr',\)"),
        ({"points": ({"lr": 1e-4}, {"lr": 1e-4})}, "points must be distinct"),
        ({"select": [[0.1, 0.0, 0.2]]}, r"select has shape \(1, 3\), expected \(2, 3\)"),
        ({"points": ({"lr": [1e-4]}, {"lr": 1e-3})}, "point values must be"),
    ],
)
def test_the_result_checks_itself(changes, match):
    assert HyperSelection(**_fields()).best == {"lr": 1e-3}
    with pytest.raises(ValueError, match=match):
        HyperSelection(**_fields(**changes))


def test_every_point_failed_chooses_nothing():
    sel = HyperSelection(**_fields(select=np.full((2, 3), np.nan), chosen=None))
    with pytest.raises(ValueError, match="every one failed"):
        _ = sel.best
    assert sel.to_frame()["chosen"].tolist() == [False, False]


def test_one_bar_over_the_points_and_none_inside(tiny, capsys):
    select_hyper(tiny, "sw", task=ByNorm(), grid={"lr": LRS[:2]}, test=False, progress=True,
                 **KW)  # fmt: skip
    err = capsys.readouterr().err
    assert "bipo grid (sw, L1)" in err and "2/2" in err
    assert "sweep cells" not in err and "BiPO" not in err  # the sweeps' and the fitting's
