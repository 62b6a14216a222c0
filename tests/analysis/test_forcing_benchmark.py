"""The forcing benchmark: disjoint splits, selection on select prompts only, signs by
direction, resumable run folders with identical results, and its saved result."""

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from jaxtyping import TypeCheckError

import interp_steer.analysis.forcing as bench_module
from interp_steer.analysis import ForcingBenchmark, forcing_arguments, forcing_benchmark
from interp_steer.evaluation.forcing import ForcingResult
from interp_steer.steering import NonFiniteError, SteeringVector, steer
from interp_steer.storage import SettingsError

TINY = dict(n_fit=4, n_select=2, n_test=2, k=1, max_new_tokens=2)


class FakeRun:
    """Stands in for ``forcing_run``: fast, deterministic in its inputs, and a spy.

    On the selection prompts (``start == 0``) layer 2 controls every item and other layers
    none; on the test prompts it is the other way round (layer 1 would win there). Margins
    come from the vector's values, so a resumed run whose vectors were loaded from the run
    folder gives the same numbers only if the vectors are the same.
    """

    def __init__(self, fail_after: int | None = None) -> None:
        self.calls: list[dict] = []
        self.fail_after = fail_after

    def __call__(self, model, prompts, *, vector=None, alpha=0.0, operator="add", angle=None,
                 value=None, **kwargs):  # fmt: skip
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise RuntimeError("interrupted")
        if vector is not None:  # the arguments must be ones steer() accepts
            with steer(model, vector, alpha=alpha, operator=operator, angle=angle, value=value):
                pass
        select = prompts.start == 0
        layer = None if vector is None else vector.layer
        self.calls.append({"split": "select" if select else "test", "layer": layer,
                           "direction": prompts.direction, "operator": operator,
                           "alpha": alpha, "angle": angle, "value": value, "vector": vector,
                           "ids": prompts.ids, **kwargs})  # fmt: skip
        n = len(prompts)
        hit = layer == (2 if select else 1)
        detected = [prompts.intended if hit else "und"] * n
        if vector is None:
            margin = np.array([0.5] + [-math.inf] * (n - 1))
        else:
            raw = vector.direction[:n].double().numpy() * (alpha or 1.0)
            margin = np.abs(raw) + 0.125  # relevant, with float values from the vector
        return ForcingResult(
            "tiny", prompts.lang, prompts.direction, prompts.ids, ("out",) * n, tuple(detected),
            np.asarray(detected) == prompts.intended, margin > 0, margin, {"fake": True},
        )  # fmt: skip


@pytest.fixture
def fake(monkeypatch):
    run = FakeRun()
    monkeypatch.setattr(bench_module, "forcing_run", run)
    return run


def _run(tiny, **kw):
    args = {"directions": ("to_english",), "layers": [1, 2],
            "strengths": {"add": (1.0, 0.5)}, **TINY, **kw}  # fmt: skip
    return forcing_benchmark(tiny, ["de"], **args)


def _same(a: ForcingBenchmark, b: ForcingBenchmark) -> None:
    da, db = a.to_dict(), b.to_dict()
    da["meta"].pop("run_dir"), db["meta"].pop("run_dir")
    assert json.dumps(da, sort_keys=True) == json.dumps(db, sort_keys=True)


def test_selection_uses_only_select_prompts(tiny, fake):
    bench = _run(tiny)
    # grid on select, then only the chosen cell (and the unsteered model) on test
    steered_tests = [(c["layer"], c["alpha"]) for c in fake.calls
                     if c["split"] == "test" and c["layer"] is not None]  # fmt: skip
    assert len(steered_tests) == 1
    row = bench.table().iloc[0]
    # layer 2 wins on select (both strengths tie: the smaller one), though layer 1 would
    # win on the test prompts: the test prompts never change the choice
    assert (int(row["layer"]), float(row["strength"])) == (2, 0.5)
    assert steered_tests[0][0] == 2
    assert row["select_score"] == 1.0 and row["score"] == 0.0
    assert row["unsteered_score"] == 0.0 and row["gain"] == 0.0
    assert bench.strengths == {"add": (0.5, 1.0)}  # sorted: ties go to the smaller one
    frame = bench.to_frame()
    assert frame["selected"].sum() == 2  # the select cell and its test run
    chosen = frame[frame["selected"]]
    assert set(chosen["split"]) == {"select", "test"}
    assert set(chosen["layer"]) == {2} and set(chosen["strength"]) == {0.5}


def test_splits_are_disjoint_and_fit_on_the_last_pairs(tiny, fake):
    bench = _run(tiny, n_select=3, n_test=2)
    split = bench.meta["splits"]["de"]
    assert split["select"] == [0, 3] and split["test"] == [3, 5]
    assert split["fit"] == [split["lines"] - 4, split["lines"]]
    ids = {c["split"]: set() for c in fake.calls}
    for c in fake.calls:
        ids[c["split"]] |= set(c["ids"])
    assert ids["select"] == {"flores-0", "flores-1", "flores-2"}
    assert ids["test"] == {"flores-3", "flores-4"}
    vector = next(c["vector"] for c in fake.calls if c["vector"] is not None)
    fitted = vector.meta["data"]["ids"]
    assert fitted == [f"flores-{i}" for i in range(split["lines"] - 4, split["lines"])]
    assert not set(fitted) & (ids["select"] | ids["test"])


def test_too_many_pairs_is_refused(tiny, fake, tmp_path):
    with pytest.raises(ValueError, match="exceeds the 1012 pairs of flores-de"):
        _run(tiny, n_fit=1000, n_select=10, n_test=10, run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists() and not fake.calls


def test_from_english_steers_with_minus_v(tiny, fake):
    ops = ("add", "rotate", "ablate", "clamp")
    strengths = {"add": (0.5,), "rotate": (30.0,), "ablate": (1.0,), "clamp": (0.25,)}
    bench = forcing_benchmark(tiny, ["de"], directions=("to_english", "from_english"),
                              operators=ops, layers=[2], strengths=strengths, **TINY)  # fmt: skip
    steered = [c for c in fake.calls if c["vector"] is not None and c["split"] == "select"]
    by = {(c["direction"], c["operator"]): c for c in steered}
    assert len(by) == 8
    for op in ops:
        to, fro = by["to_english", op], by["from_english", op]
        assert torch.equal(to["vector"].direction, fro["vector"].direction)  # the same vector
    add_to, add_from = by["to_english", "add"], by["from_english", "add"]
    assert add_to["alpha"] > 0 and add_from["alpha"] == -add_to["alpha"]
    v = add_to["vector"]
    assert add_to["alpha"] * v.norm / v.meta["metrics"]["resid_norm"] == pytest.approx(0.5)
    assert by["to_english", "rotate"]["angle"] == 30.0
    assert by["from_english", "rotate"]["angle"] == -30.0
    assert by["to_english", "rotate"]["alpha"] == by["from_english", "rotate"]["alpha"] == 1.0
    resid = v.meta["metrics"]["resid_norm"]
    assert by["to_english", "clamp"]["value"] == pytest.approx(0.25 * resid)
    assert by["from_english", "clamp"]["value"] == -by["to_english", "clamp"]["value"]
    assert by["to_english", "ablate"]["alpha"] == by["from_english", "ablate"]["alpha"] == 1.0
    # the signed number is in the result too
    frame = bench.to_frame().set_index(["direction", "operator", "split"])
    assert frame.loc[("from_english", "rotate", "select"), "applied"] == -30.0
    assert frame.loc[("from_english", "ablate", "select"), "applied"] == 1.0
    assert frame.loc[("to_english", "add", "select"), "applied"] == add_to["alpha"]


def test_forcing_arguments_signs():
    v = SteeringVector(torch.ones(4), layer=0, meta={"metrics": {"resid_norm": 10.0}})
    assert forcing_arguments(v, "add", "to_english", 0.5)["alpha"] == 2.5
    assert forcing_arguments(v, "rotate", "from_english", 45.0)["angle"] == -45.0
    assert forcing_arguments(v, "ablate", "from_english", 0.5)["alpha"] == 0.5
    with pytest.raises(ValueError, match=r"ablate strengths .* must be in \(0, 1\]"):
        forcing_arguments(v, "ablate", "to_english", 1.5)


def test_interrupted_run_resumes_with_identical_results(tiny, monkeypatch, tmp_path):
    whole = FakeRun()
    monkeypatch.setattr(bench_module, "forcing_run", whole)
    kw = dict(directions=("to_english", "from_english"), operators=("add", "rotate"),
              strengths={"add": (0.5, 1.0), "rotate": (30.0,)})  # fmt: skip
    once = _run(tiny, run_dir=tmp_path / "once", **kw)

    broken = FakeRun(fail_after=7)  # dies midway through the grid
    monkeypatch.setattr(bench_module, "forcing_run", broken)
    with pytest.raises(RuntimeError, match="interrupted"):
        _run(tiny, run_dir=tmp_path / "resumed", **kw)
    assert len(list((tmp_path / "resumed" / "cells").rglob("*.json"))) == 7

    rest = FakeRun()
    monkeypatch.setattr(bench_module, "forcing_run", rest)
    resumed = _run(tiny, run_dir=tmp_path / "resumed", **kw)
    assert len(rest.calls) == len(whole.calls) - 7  # nothing finished is run again
    _same(once, resumed)

    again = FakeRun()  # a finished run reruns nothing and gives the same result
    monkeypatch.setattr(bench_module, "forcing_run", again)
    _same(once, _run(tiny, run_dir=tmp_path / "resumed", **kw))
    assert again.calls == []


def test_changed_setting_is_refused_naming_it(tiny, fake, tmp_path):
    run = tmp_path / "run"
    first = _run(tiny, run_dir=run)
    for change, name in ((dict(max_new_tokens=3), "max_new_tokens"),
                         (dict(n_select=3), "n_select"), (dict(seed=1), "seed"),
                         (dict(k=2, n_select=3, n_test=3), "k")):  # fmt: skip
        with pytest.raises(SettingsError, match=rf"\b{name}: "):
            _run(tiny, run_dir=run, **change)
    # other layers, strengths and operators are new cells of the same run
    before = len(fake.calls)
    more = _run(tiny, run_dir=run, layers=[1, 2, 3], operators=("add", "ablate"),
                strengths={"add": (0.5, 1.0), "ablate": (1.0,)})  # fmt: skip
    new = fake.calls[before:]
    assert {(c["layer"], c["operator"]) for c in new if c["split"] == "select"} == {
        (3, "add"),
        (1, "ablate"),
        (2, "ablate"),
        (3, "ablate"),
    }
    assert len([c for c in new if c["split"] == "select"]) == 2 + 3
    assert more.table().iloc[0]["layer"] == first.table().iloc[0]["layer"] == 2
    # resume=False starts over: every cell is run again
    before = len(fake.calls)
    _run(tiny, run_dir=run, max_new_tokens=3, resume=False)
    assert len(fake.calls) - before == 2 + 4 + 1


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (dict(langs=["xx"]), "unknown language 'xx'"),
        (dict(langs=["en"]), "lang must be one of"),
        (dict(langs=[]), "give at least one of langs"),
        (dict(directions=("sideways",)), "sideways"),
        (dict(directions=()), "give at least one of directions"),
        (dict(methods=("nope",)), "unknown method 'nope'"),
        (dict(methods=()), "methods must name at least one"),
        (dict(operators=("scale",)), "scale"),
        (dict(operators=()), "give at least one of operators"),
        (dict(operators=("rotate",), strengths={"add": (0.5,)}), "no grid for operator 'rotate'"),
        (dict(strengths={"add": ()}), r"strengths\['add'\] is empty"),
        (dict(strengths={"add": (-0.5,)}), "add strengths .* positive"),
        (dict(operators=("rotate",), strengths={"rotate": (270.0,)}), r"in \(0, 180\]"),
        (dict(layers=[9]), "layer 9 is out of range"),
        (dict(layers=[]), "at least one layer"),
        (dict(n_select=1), "n_select=1 is too few prompts"),
        (dict(n_fit=0), "n_fit must be a positive int"),
        (dict(hyper={"pca": {"center": False}}), r"hyper names \['pca'\], which are not"),
        (dict(methods=("lowrank",), hyper={"lowrank": {"lr": 1}}), "has no hyper-parameter lr"),
        (dict(hyper={"mean_diff": {"pooling": "last"}}), r"sets \['pooling'\], which the"),
        (dict(hyper={"mean_diff": 3}), r"hyper\['mean_diff'\] must map|parameter 'hyper'"),
    ],
)
def test_bad_input_fails_before_any_work(tiny, fake, tmp_path, kw, message):
    args = {"langs": ["de"], "layers": [1], "strengths": {"add": (0.5,)}, **TINY, **kw}
    langs = args.pop("langs")
    # under pytest, jaxtyping's checker refuses a value outside a Literal first
    with pytest.raises((ValueError, TypeCheckError), match=message):
        forcing_benchmark(tiny, langs, run_dir=tmp_path / "run", **args)
    assert not fake.calls and not (tmp_path / "run").exists()


@pytest.fixture
def bench(tiny, fake):
    return _run(tiny, directions=("to_english", "from_english"))


def test_frame_table_and_layer_curve(bench):
    frame = bench.to_frame()
    assert list(frame.columns) == [
        "lang", "direction", "method", "operator", "layer", "strength", "split", "selected",
        "applied", "control", "control_low", "control_high", "relevance", "relevance_low",
        "relevance_high", "score", "score_low", "score_high", "n",
    ]  # fmt: skip
    # per direction: 2 unsteered + 4 grid cells + 1 test run
    assert len(frame) == 2 * 7
    plain = frame[frame["method"] == "unsteered"]
    assert len(plain) == 4 and set(plain["operator"]) == {"none"} and set(plain["layer"]) == {-1}
    assert plain["strength"].isna().all() and (plain["applied"] == 0).all()
    assert (frame["n"] == 2).all()
    assert ((frame["score_low"] <= frame["score"]) & (frame["score"] <= frame["score_high"])).all()
    table = bench.table()
    assert len(table) == 2 and list(table["direction"]) == ["to_english", "from_english"]
    assert (table["gain"] == table["score"] - table["unsteered_score"]).all()
    curve = bench.layer_curve("German", "to_english", "mean_diff", "add")
    assert list(curve["layer"]) == [1, 2] and list(curve["score"]) == [0.0, 1.0]
    assert list(curve["strength"]) == [0.5, 0.5] and (curve["unsteered"] == 0.0).all()
    with pytest.raises(ValueError, match="'rotate' is not one of this benchmark's operators"):
        bench.layer_curve("de", "to_english", "mean_diff", "rotate")


@pytest.mark.parametrize("suffix", [".json", ".parquet"])
def test_save_load_bit_exact(bench, tmp_path, suffix):
    path = bench.save(tmp_path / f"bench{suffix}")
    back = ForcingBenchmark.load(path)
    arrays = [f.name for f in dataclasses.fields(bench) if isinstance(getattr(bench, f.name),
                                                                      np.ndarray)]  # fmt: skip
    assert len(arrays) == 13
    for name in arrays:
        a, b = getattr(bench, name), getattr(back, name)
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), name  # NaN included
    assert back.strengths == bench.strengths and back.meta == bench.meta
    assert back.to_frame().equals(bench.to_frame())


def test_result_refuses_a_wrong_selection(bench):
    flags = bench.selected.copy()
    select = np.flatnonzero(~bench.test & (bench.method_idx == 0))
    flags[select] = ~flags[select]  # another select cell marked as chosen
    with pytest.raises(ValueError, match="the selected cell must be the best selection cell"):
        dataclasses.replace(bench, selected=flags)
    with pytest.raises(ValueError, match="layer 7 is not one of"):
        dataclasses.replace(bench, layer=np.where(bench.layer == 1, 7, bench.layer))


def test_real_runs_resume_identically(tiny, monkeypatch, tmp_path):
    # the real forcing_run: its results go through the cell files and come back the same
    kw = dict(
        directions=("from_english",), layers=[2], strengths={"add": (4.0,)}, source="tatoeba"
    )  # short sentences: quicker than FLORES
    once = _run(tiny, run_dir=tmp_path / "once", **kw)
    real, calls = bench_module.forcing_run, []

    def dies(*args, **kwargs):
        if len(calls) == 2:  # both unsteered cells are done, then the run is stopped
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(bench_module, "forcing_run", dies)
    with pytest.raises(KeyboardInterrupt):
        _run(tiny, run_dir=tmp_path / "resumed", **kw)
    monkeypatch.setattr(bench_module, "forcing_run", real)
    resumed = _run(tiny, run_dir=tmp_path / "resumed", **kw)
    _same(once, resumed)
    assert resumed.table().iloc[0]["applied"] < 0  # from English: -v


def test_a_cell_that_turns_non_finite_is_kept_and_never_selected(tiny, monkeypatch, tmp_path):
    fake = FakeRun()

    def breaks_at_layer_2(model, prompts, **kw):
        vector = kw.get("vector")
        if vector is not None and vector.layer == 2:
            raise NonFiniteError("steering made the residual stream NaN")
        return fake(model, prompts, **kw)

    monkeypatch.setattr(bench_module, "forcing_run", breaks_at_layer_2)
    bench = _run(tiny, run_dir=tmp_path / "run")
    frame = bench.to_frame()
    broken = frame[frame["layer"] == 2]
    assert len(broken) == 2 and broken["score"].isna().all() and (broken["n"] == 0).all()
    assert not broken["selected"].any()
    assert bench.table().iloc[0]["layer"] == 1  # the best cell that could be scored
    assert sorted(bench.meta["failed"]) == [
        "de/to_english/mean_diff/add/L2-s0.5-select",
        "de/to_english/mean_diff/add/L2-s1.0-select",
    ]
    # a resumed run keeps the failures without running them again
    again = FakeRun()
    monkeypatch.setattr(bench_module, "forcing_run", again)
    _same(bench, _run(tiny, run_dir=tmp_path / "run"))
    assert again.calls == []


def test_hyper_reaches_the_fit_is_recorded_and_a_change_is_refused(tiny, fake, tmp_path):
    run = tmp_path / "run"
    args = dict(methods=("lowrank",), run_dir=run)
    two = _run(tiny, hyper={"lowrank": {"k": 2}}, **args)
    assert json.loads((run / "config.json").read_text())["fit"]["hyper"] == {"lowrank": {"k": 2}}
    assert two.meta["settings"]["fit"]["hyper"] == {"lowrank": {"k": 2}}
    fitted = [c["vector"] for c in fake.calls if c["vector"] is not None]
    assert fitted and all(v.meta["hyper"]["k"] == 2 for v in fitted)
    with pytest.raises(SettingsError, match=r"fit\.hyper"):
        _run(tiny, hyper={"lowrank": {"k": 3}}, **args)
    one = _run(tiny, hyper={"lowrank": {"k": 1}}, methods=("lowrank",))  # no run folder
    vec = next(c["vector"] for c in reversed(fake.calls) if c["vector"] is not None)
    assert vec.meta["hyper"]["k"] == 1 and one.meta["settings"]["fit"]["hyper"]["lowrank"]


def test_a_folder_made_under_another_default_is_refused_per_method(tiny, fake, tmp_path):
    # config.json records the hyper-parameters given; hyper/<method>.json every one, its
    # defaults included, per method (a later part may fit other methods in the folder)
    run = tmp_path / "run"
    _run(tiny, methods=("pca",), run_dir=run)
    record = run / "hyper" / "pca.json"
    assert json.loads(record.read_text())["fit"]["hyper"] == {"pca": {"center": False}}
    _run(tiny, methods=("mean_diff",), run_dir=run)  # another method: a record of its own
    assert (run / "hyper" / "mean_diff.json").is_file()
    saved = json.loads(record.read_text())
    saved["fit"]["hyper"]["pca"]["center"] = True  # as if True had been the default
    record.write_text(json.dumps(saved))
    with pytest.raises(SettingsError) as err:
        _run(tiny, methods=("pca",), run_dir=run)
    assert err.value.changes == ("fit.hyper.pca.center: True → False",)


def test_methods_share_one_activation_pass_per_language(tiny, fake, tmp_path, monkeypatch):
    import interp_steer.activations.collect as collect

    passes, collected = [], []
    fit, run_collection = bench_module.fit_vectors, collect._collect

    def fit_spy(*args, **kwargs):
        passes.append(kwargs.get("cache_dir"))
        return fit(*args, **kwargs)

    def collect_spy(*args, **kwargs):
        collected.append(args[2])  # the layers
        return run_collection(*args, **kwargs)

    monkeypatch.setattr(bench_module, "fit_vectors", fit_spy)
    monkeypatch.setattr(collect, "_collect", collect_spy)
    _run(tiny, methods=("mean_diff", "pca", "lda"), run_dir=tmp_path / "run")
    assert passes == [tmp_path / "run" / "activations"] * 3
    assert collected == [(1, 2)]  # the second and third method read the cache
