"""Nothing saved is reused under other settings: run folders, saved vectors, similarity.

Every cached analysis either refuses a changed setting (naming it) or computes a new cell;
a resumed result always equals a fresh one (issue 16, defect 1).
"""

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch

from interp_steer.analysis import (
    CellStore,
    Score,
    SimilarityResult,
    TaskEvaluator,
    cells,
    check_fitted,
    cross_lingual_similarity,
    evaluator_settings,
    layer_sweep,
    transfer_matrix,
)
from interp_steer.analysis.cells import fitted_vectors
from interp_steer.data import load_parallel
from interp_steer.fitting import check_hyper, fit_vector
from interp_steer.steering import SteeringVector
from interp_steer.storage import SettingsError, changed_settings, check_settings

# ----------------------------------------------------------------- the filed scenario

SWEEP = dict(task="xcopa", layers=[1, 2], ratios=(0.5,), n_fit=4, test=False)


def files(folder):
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_a_sweep_folder_refuses_another_n_and_positions(tiny, tmp_path):
    layer_sweep(tiny, ["sw"], n=4, run_dir=tmp_path, **SWEEP)
    before = files(tmp_path)
    with pytest.raises(SettingsError) as err:
        layer_sweep(tiny, ["sw"], n=40, positions="last", run_dir=tmp_path, **SWEEP)
    message = str(err.value)
    assert "evaluator.n: 4 → 40" in message
    assert "evaluator.positions: 'all' → 'last'" in message
    assert set(err.value.changes) == {"evaluator.n: 4 → 40", "evaluator.positions: 'all' → 'last'"}
    assert files(tmp_path) == before  # nothing evaluated, nothing rewritten


def test_a_sweep_folder_made_under_another_default_is_refused(tiny, tmp_path):
    # The record holds every hyper-parameter, defaults included: a folder whose pca ran
    # with center=True while that was the default is not resumed under today's False.
    layer_sweep(tiny, ["sw"], n=4, run_dir=tmp_path, method="pca", **SWEEP)
    config = tmp_path / "config.json"
    saved = json.loads(config.read_text(encoding="utf-8"))
    assert saved["fit"]["hyper"] == {"center": False}
    saved["fit"]["hyper"]["center"] = True
    config.write_text(json.dumps(saved), encoding="utf-8")
    with pytest.raises(SettingsError) as err:
        layer_sweep(tiny, ["sw"], n=4, run_dir=tmp_path, method="pca", **SWEEP)
    assert err.value.changes == ("fit.hyper.center: True → False",)


def test_a_transfer_folder_refuses_another_n_and_positions(tiny, tmp_path):
    kw = dict(task="xcopa", layer=1, n_fit=4, english=False)
    transfer_matrix(tiny, ["it", "sw"], n=2, run_dir=tmp_path, **kw)
    before = files(tmp_path)
    with pytest.raises(SettingsError, match=r"evaluator\.n: 2 → 3.*positions: 'all' → 'last'"):
        transfer_matrix(tiny, ["it", "sw"], n=3, positions="last", run_dir=tmp_path, **kw)
    with pytest.raises(SettingsError, match=r"evaluator\.baseline: 'basic' → 'xlt'"):
        transfer_matrix(tiny, ["it", "sw"], n=2, baseline="xlt", run_dir=tmp_path, **kw)
    assert files(tmp_path) == before


# ----------------------------------------------------------------- validation first


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(select_items=1000), "select_items=1000 leaves no test items"),
        (dict(n=0), "n must be a positive integer"),
        (dict(n=True), "n must be a positive integer"),
        (dict(baseline="nope"), "unknown baseline 'nope'"),
        (dict(method="nope"), "unknown method 'nope'"),
        (dict(n_fit=0), "n_fit must be a positive integer"),
        (dict(layers=[1, 99]), "layer"),
        (dict(langs=["de"]), "xcopa has no de data"),
        (dict(fit_dataset="msvamp", langs=["it"]), "msvamp"),
    ],
)
def test_an_invalid_sweep_writes_nothing_and_the_corrected_one_runs(tiny, tmp_path, bad, message):
    run = tmp_path / "run"
    kw = dict(task="xcopa", layers=[1], ratios=(0.5,), n=2, n_fit=4, select_items=2, test=False)
    langs = bad.pop("langs", ["it"])
    with pytest.raises(ValueError, match=message):
        layer_sweep(tiny, langs, run_dir=run, **{**kw, **bad})
    assert not (run / "config.json").exists()
    assert not (run / "cells").exists() and not (run / "vectors").exists()
    layer_sweep(tiny, ["it"], run_dir=run, **kw)  # the corrected command is not refused
    assert (run / "config.json").is_file()


def test_changed_data_files_are_refused_naming_the_language_and_stage(tiny, tmp_path, monkeypatch):
    kw = dict(task="xcopa", layers=[1], ratios=(0.5,), n=2, n_fit=4, test=False)
    layer_sweep(tiny, ["it"], run_dir=tmp_path, **kw)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [
        "it-fit.json",
        "it-select.json",
    ]
    load_task = cells.load_task

    def edited_task(*args, **kwargs):
        tasks = load_task(*args, **kwargs)
        first = dataclasses.replace(tasks.items[0], question=tasks.items[0].question + "!")
        return dataclasses.replace(tasks, items=(first, *tasks.items[1:]))

    with monkeypatch.context() as m:
        m.setattr(cells, "load_task", edited_task)
        with pytest.raises(SettingsError, match=r"data\.it-select: '[0-9a-f]+' → '[0-9a-f]+'"):
            layer_sweep(tiny, ["it"], run_dir=tmp_path, **kw)
    load_parallel_ = cells.load_parallel

    def edited_pairs(*args, **kwargs):
        pairs = load_parallel_(*args, **kwargs)
        return dataclasses.replace(pairs, target=(pairs.target[0] + "!", *pairs.target[1:]))

    with monkeypatch.context() as m:
        m.setattr(cells, "load_parallel", edited_pairs)
        with pytest.raises(SettingsError, match=r"data\.it-fit: "):
            layer_sweep(tiny, ["it"], run_dir=tmp_path, **kw)
    layer_sweep(tiny, ["it", "sw"], run_dir=tmp_path, **kw)  # a new language: new records
    assert (tmp_path / "data" / "sw-select.json").is_file()


# ----------------------------------------------------------------- saved vectors

FIT = {"dataset": "flores", "n": 4, "split": None, "method": "mean_diff", "hyper": {}}


@pytest.mark.parametrize(
    "other, named",
    [
        (dict(n=6), "n: 6 → 4"),
        (dict(layer=2), "layer: 2 → 1"),
        (dict(lang="sw"), "lang: 'sw' → 'de'"),
        (dict(method="pca"), "method: 'pca' → 'mean_diff'"),
        (dict(dataset="tatoeba"), "dataset: 'tatoeba' → 'flores'"),
        (dict(pooling="last"), "pooling: 'last' → 'mean'"),
    ],
)
def test_fitted_vectors_refuse_a_vector_with_other_fit_settings(tiny, tmp_path, other, named):
    spec = {"lang": "de", "layer": 1, "n": 4, "method": "mean_diff", "dataset": "flores",
            "pooling": "mean", **other}  # fmt: skip
    corpus = load_parallel(spec["dataset"], spec["lang"], n=spec["n"])
    vector = fit_vector(tiny, corpus, layer=spec["layer"], method=spec["method"],
                        pooling=spec["pooling"])  # fmt: skip
    store = CellStore(tmp_path)
    path = store.vector_path("de", 1)
    vector.save(path)
    with pytest.raises(SettingsError, match="holds a vector with different settings") as err:
        fitted_vectors(tiny, "de", [1], store, FIT)
    assert named in err.value.changes and str(path) in str(err.value)


def test_fitted_vectors_use_a_vector_with_the_same_fit_settings(tiny, tmp_path):
    store = CellStore(tmp_path)
    first = fitted_vectors(tiny, "de", [1], store, FIT)[1]
    again = fitted_vectors(tiny, "de", [1], store, FIT)[1]
    assert again.direction.equal(first.direction)
    with pytest.raises(SettingsError) as err:
        fitted_vectors(tiny, "de", [1], store, {**FIT, "method": "pca", "hyper": {"center": True}})
    assert err.value.changes == ("hyper.center: (none) → True", "method: 'mean_diff' → 'pca'")


@pytest.mark.parametrize("saved_lr", [None, 1e-4])
def test_a_vector_fitted_under_another_default_is_refused(tiny, tmp_path, saved_lr):
    # A BiPO vector saved before lr was resolved recorded lr=None (then 1e-4 of the residual
    # norm); one trained under an older default records that rate. Neither is today's
    # default, which the expected settings leave out.
    recorded = {**check_hyper("bipo", {}), "lr": saved_lr}
    vector = SteeringVector(torch.ones(tiny.cfg.d_model), layer=1, method="bipo",
                            source_lang="de", meta={"hyper": recorded})  # fmt: skip
    expected = {"layer": 1, "method": "bipo", "hyper": {"warmup_steps": 100}}
    with pytest.raises(SettingsError) as err:
        check_fitted(vector, expected, tmp_path / "v")
    assert err.value.changes == (f"hyper.lr: {saved_lr} → 0.001",)
    current = dataclasses.replace(vector, meta={"hyper": check_hyper("bipo", {})})
    assert check_fitted(current, expected, tmp_path / "v") is current


# ----------------------------------------------------------------- the property


def scores(result):
    return {k: np.asarray(getattr(result, k)).tolist() for k in ("score", "alphas", "baseline")}


SWEEP_BASE = dict(task="xcopa", layers=[1], ratios=(0.5,), n=2, n_fit=4, select_items=2,
                  test=False)  # fmt: skip
SWEEP_CHANGES = {
    "n": dict(n=3),
    "positions": dict(positions="last"),
    "baseline": dict(baseline="xlt"),
    "select_items": dict(select_items=3),
    "select_split": dict(select_items=None, select_split="val"),
    "method": dict(method="pca"),
    "n_fit": dict(n_fit=5),
    "fit_dataset": dict(fit_dataset="tatoeba"),
    "fit_split": dict(fit_split="devtest"),  # the default, but named: still refused
    "fit_hyper": dict(pooling="last"),
    "absolute": dict(ratios=None, alphas=(0.5,)),
    "evaluator": dict(task=TaskEvaluator("xcopa", select_items=2, n=2, batch_size=3)),
    "layers (new cells)": dict(layers=[1, 2]),
    "strengths (new cells)": dict(ratios=(0.5, 0.25)),
    "langs (new cells)": dict(langs=["it", "sw"]),
    "test stage (new cells)": dict(test=True),
}


@pytest.fixture(scope="module")
def sweep_run(tiny, tmp_path_factory):
    run = tmp_path_factory.mktemp("sweep")
    layer_sweep(tiny, ["it"], run_dir=run, **SWEEP_BASE)
    return run


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SWEEP_CHANGES))
def test_a_changed_sweep_setting_raises_or_gives_a_fresh_result(tiny, tmp_path, sweep_run, name):
    run = tmp_path / "run"
    shutil.copytree(sweep_run, run)
    change = dict(SWEEP_CHANGES[name])
    langs = change.pop("langs", ["it"])
    kw = {**SWEEP_BASE, **change}
    try:
        resumed = layer_sweep(tiny, langs, run_dir=run, **kw)
    except SettingsError as err:
        assert err.changes, name
        return
    assert "new cells" in name, f"{name}: changed, yet reused the saved run"
    fresh = layer_sweep(tiny, langs, **kw)
    assert scores(resumed) == scores(fresh)


TRANSFER_BASE = dict(task="xcopa", layer=1, n=2, n_fit=4, english=False)
TRANSFER_CHANGES = {
    "n": dict(n=3),
    "positions": dict(positions="last"),
    "baseline": dict(baseline="xlt"),
    "stage": dict(stage="select"),
    "layer": dict(layer=2),
    "ratio": dict(ratio=0.5),
    "alpha": dict(alpha=0.25),
    "method": dict(method="pca"),
    "n_fit": dict(n_fit=5),
    "fit_dataset": dict(fit_dataset="tatoeba"),
    "fit_hyper": dict(pooling="last"),
    "english": dict(english=lambda model, vector, alpha: 0.0),
    "targets (new cells)": dict(targets=["it", "sw"]),
}


@pytest.fixture(scope="module")
def transfer_run(tiny, tmp_path_factory):
    run = tmp_path_factory.mktemp("transfer")
    transfer_matrix(tiny, ["it"], run_dir=run, **TRANSFER_BASE)
    return run


@pytest.mark.slow
@pytest.mark.parametrize("name", list(TRANSFER_CHANGES))
def test_a_changed_transfer_setting_raises_or_gives_a_fresh_result(
    tiny, tmp_path, transfer_run, name
):
    run = tmp_path / "run"
    shutil.copytree(transfer_run, run)
    kw = {**TRANSFER_BASE, **TRANSFER_CHANGES[name]}
    try:
        resumed = transfer_matrix(tiny, ["it"], run_dir=run, **kw)
    except SettingsError as err:
        assert err.changes, name
        return
    assert "new cells" in name, f"{name}: changed, yet reused the saved run"
    fresh = transfer_matrix(tiny, ["it"], **kw)
    assert resumed.score.tolist() == fresh.score.tolist()
    assert resumed.baseline.tolist() == fresh.baseline.tolist()


SIMILARITY_BASE = dict(n=4, pooling="mean", layers=None, dataset="flores")
SIMILARITY_CHANGES = {
    "n": dict(n=5),
    "pooling": dict(pooling="last"),
    "layers": dict(layers=[1, 2]),
    "dataset": dict(dataset="tatoeba"),
    "langs": dict(langs=["de", "fr"]),
}


@pytest.mark.parametrize("name", list(SIMILARITY_CHANGES))
def test_a_changed_similarity_setting_misses_the_cache_and_refuses_the_saved_result(
    tiny, tmp_path, name
):
    cache, output = tmp_path / "activations", tmp_path / "similarity.json"
    base = cross_lingual_similarity(tiny, ["de"], cache_dir=cache, output=output, progress=False,
                                    **SIMILARITY_BASE)  # fmt: skip
    change = dict(SIMILARITY_CHANGES[name])
    langs = change.pop("langs", ["de"])
    kw = {**SIMILARITY_BASE, **change}
    with pytest.raises(SettingsError, match="similarity result with different settings") as err:
        cross_lingual_similarity(tiny, langs, cache_dir=cache, output=output, progress=False, **kw)
    assert any(c.split(":")[0] in (name, "langs", "layers") for c in err.value.changes)
    # the activation cache is keyed by the same settings: a cached run is a fresh one
    cached = cross_lingual_similarity(tiny, langs, cache_dir=cache, progress=False, **kw)
    fresh = cross_lingual_similarity(tiny, langs, progress=False, **kw)
    assert cached.to_dict()["values"] == fresh.to_dict()["values"]
    assert cached.to_dict()["values"] != base.to_dict()["values"]
    # the same settings: the saved result comes back as it was
    again = cross_lingual_similarity(tiny, ["de"], cache_dir=cache, output=output, progress=False,
                                     **SIMILARITY_BASE)  # fmt: skip
    assert again.to_dict() == SimilarityResult.load(output).to_dict()


# ----------------------------------------------------------------- the mechanism


def test_check_settings_names_every_change_and_writes_only_a_first_record(tmp_path):
    path = tmp_path / "config.json"
    check_settings(path, {"n": 4, "fit": {"n": 8, "hyper": {}}, "layers": (1, 2)})
    assert json.loads(path.read_text()) == {"fit": {"hyper": {}, "n": 8}, "layers": [1, 2], "n": 4}
    check_settings(path, {"n": 4, "fit": {"n": 8}, "layers": [1, 2]})  # the same, as saved
    with pytest.raises(SettingsError) as err:
        check_settings(path, {"n": 4.0, "fit": {"n": 8, "hyper": {"lr": 1}}, "layers": [1, 2]})
    assert err.value.changes == ("fit.hyper.lr: (none) → 1", "n: 4 → 4.0")
    assert err.value.with_hint("use another --out").endswith("; use another --out")
    assert changed_settings({"x": True}, {"x": 1}) == ["x: True → 1"]
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a settings record"):
        check_settings(path, {"n": 4})


def test_evaluator_settings_record_every_field_and_a_custom_evaluators_name():
    got = evaluator_settings(TaskEvaluator("xcopa", select_items=3, n=2, baseline="xlt"))
    assert {k: got[k] for k in ("task", "select_items", "n", "baseline", "positions")} == {
        "task": "xcopa", "select_items": 3, "n": 2, "baseline": "xlt", "positions": "all"
    }  # fmt: skip

    class Custom:
        name = "custom metric"
        settings = {"template": "Q: {text}"}

        def __call__(self, model, lang, vector, alpha, stage):  # pragma: no cover
            return Score(0.5, 0.4, 0.6, 2)

    assert evaluator_settings(Custom()) == {
        "class": "test_evaluator_settings_record_every_field_and_a_custom_evaluators_name."
        "<locals>.Custom",
        "name": "custom metric",
        "settings": {"template": "Q: {text}"},
    }


def test_an_unknown_hyper_parameter_fails_before_the_run_folder_is_written(tiny, tmp_path):
    with pytest.raises(ValueError, match="no hyper-parameter lr"):
        layer_sweep(tiny, ["de"], task=lambda *a: None, layers=[1], ratios=(0.1,), n_fit=4,
                    method="pca", lr=0.1, run_dir=tmp_path / "run")  # fmt: skip
    assert not (tmp_path / "run" / "config.json").exists()
