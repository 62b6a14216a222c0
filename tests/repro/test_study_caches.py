"""The study reuses nothing saved under other settings (issue 16, defect 1).

Saved vectors are checked against their layer, method and fit settings, the similarity
stage against its settings, ``gen_kl.json`` against its evaluator, and ``study.json`` keeps
the config of the run its files come from when a run with another one fails.
"""

import json
import subprocess
import sys
import time
from dataclasses import asdict, replace

import pytest

from interp_steer.data import load_parallel
from interp_steer.storage import RunLockedError, SettingsError
from repro import run as study
from repro.config import HYPER, QUICK
from repro.generation import gen_kl
from repro.page_generation import kl_table
from repro.vectors import fit_adapter_saved, fit_saved
from repro.xcopa import similarity_stage


@pytest.fixture
def saved(tiny, tmp_path):
    """A mean_diff vector for it at layer 1, saved as the study saves it."""
    path = tmp_path / "vectors" / "it-mean_diff"
    corpus = load_parallel("flores", "it", n=4)
    vector = fit_saved(tiny, path, corpus, layer=1, method="mean_diff")
    return path, corpus, vector


def test_fit_saved_reuses_a_vector_of_the_same_settings(tiny, saved):
    path, corpus, vector = saved
    again = fit_saved(tiny, path, corpus, layer=1, method="mean_diff")
    assert again.direction.equal(vector.direction)


@pytest.mark.parametrize(
    "change, named",
    [
        (dict(layer=2), "layer: 1 → 2"),
        (dict(method="pca"), "method: 'mean_diff' → 'pca'"),
        (dict(corpus=("flores", "it", 5)), "n: 4 → 5"),
        (dict(corpus=("flores", "sw", 4)), "lang: 'it' → 'sw'"),
        (dict(corpus=("tatoeba", "it", 4)), "dataset: 'flores' → 'tatoeba'"),
    ],
)
def test_fit_saved_refuses_a_vector_of_other_settings(tiny, saved, change, named):
    path, corpus, _ = saved
    spec = {"layer": 1, "method": "mean_diff", **change}
    if "corpus" in spec:
        dataset, lang, n = spec.pop("corpus")
        corpus = load_parallel(dataset, lang, n=n)
    with pytest.raises(SettingsError, match="holds a vector with different settings") as err:
        fit_saved(tiny, path, corpus, **spec)
    assert named in err.value.changes


def test_fit_saved_checks_the_hyper_parameters_of_a_trained_vector(tiny, tmp_path, monkeypatch):
    path, corpus = tmp_path / "vectors" / "it-mse", load_parallel("flores", "it", n=4)
    fit_saved(tiny, path, corpus, layer=1, method="mse")
    vector = json.loads(path.with_suffix(".json").read_text())
    assert vector["meta"]["hyper"]["solver"] == "adamw"
    path_bipo = tmp_path / "vectors" / "it-bipo"
    fit_saved(tiny, path_bipo, corpus, layer=1, method="bipo")
    hyper = json.loads(path_bipo.with_suffix(".json").read_text())["meta"]["hyper"]
    assert {k: hyper[k] for k in HYPER["bipo"]} == HYPER["bipo"]  # trained as the paper does
    monkeypatch.setitem(HYPER, "bipo", {**HYPER["bipo"], "warmup_steps": 3})
    with pytest.raises(SettingsError, match=r"hyper\.warmup_steps: 100 → 3"):
        fit_saved(tiny, path_bipo, corpus, layer=1, method="bipo")


def test_the_similarity_stage_refuses_a_saved_result_of_other_settings(tiny, tmp_path):
    similarity_stage(tiny, QUICK, tmp_path)
    before = (tmp_path / "similarity.json").stat().st_mtime_ns
    similarity_stage(tiny, QUICK, tmp_path)  # the same settings: kept as it is
    assert (tmp_path / "similarity.json").stat().st_mtime_ns == before
    with pytest.raises(SettingsError, match=r"similarity\.json holds a similarity result") as err:
        similarity_stage(tiny, replace(QUICK, n_similarity=5), tmp_path)
    assert err.value.changes == ("n: 4 → 5",)
    with pytest.raises(SettingsError, match=r"langs: \['en', 'de', 'sw'\] → \['en', 'de'\]"):
        similarity_stage(tiny, replace(QUICK, similarity_langs=("de",)), tmp_path)
    assert (tmp_path / "similarity.json").stat().st_mtime_ns == before


def test_study_json_keeps_the_config_of_its_files_when_a_run_fails(tmp_path, tiny, monkeypatch):
    def done(model, cfg, root):
        pass

    def refused(model, cfg, root):
        raise SettingsError(root / "sweep", ["evaluator.n: 4 → 5"])

    monkeypatch.setattr(study, "STAGES", (("sweep", done),))
    study.run_study(tmp_path, QUICK, model=tiny)
    record = json.loads((tmp_path / "study.json").read_text())
    assert record["config"] == json.loads(json.dumps(asdict(QUICK)))

    other = replace(QUICK, n_select=5)
    monkeypatch.setattr(study, "STAGES", (("sweep", done), ("table", refused)))
    with pytest.raises(SettingsError):
        study.run_study(tmp_path, other, model=tiny)
    record = json.loads((tmp_path / "study.json").read_text())
    assert record["config"]["n_select"] == QUICK.n_select  # not the config that failed
    assert set(record["timings_s"]) == {"sweep", "table"}  # its compute still counts

    monkeypatch.setattr(study, "STAGES", (("sweep", done),))
    study.run_study(tmp_path, other, model=tiny)  # a completed run records its config
    assert json.loads((tmp_path / "study.json").read_text())["config"]["n_select"] == 5


def test_kl_table_leaves_out_the_settings_of_gen_kl(tmp_path):
    cell = {"kl": [0.2, 0.3], "alpha": 1.0}
    data = {"settings": {"model": "tiny", "pairs": {"n": 2}}, "de": {"basic": cell}}
    (tmp_path / "gen_kl.json").write_text(json.dumps(data), encoding="utf-8")
    assert list(kl_table(tmp_path)["lang"]) == ["de", "mean"]


def test_gen_kl_refuses_cells_of_other_pairs(tiny, tmp_path):
    old = {"settings": {"model": "tiny", "pairs": {"n": 99}}, "de": {}}
    (tmp_path / "gen_kl.json").write_text(json.dumps(old), encoding="utf-8")
    with pytest.raises(SettingsError, match=r"gen_kl\.json holds a run") as err:
        gen_kl(tiny, QUICK, tmp_path)
    assert f"pairs.n: 99 → {QUICK.n_gen_kl}" in err.value.changes
    (tmp_path / "gen_kl.json").write_text(json.dumps({"de": {}}), encoding="utf-8")  # no record
    with pytest.raises(SettingsError, match=r"pairs\.n: \(none\) → 4"):
        gen_kl(tiny, QUICK, tmp_path)


def test_a_study_folder_in_use_by_another_process_is_refused(tmp_path):
    run, ready, release = tmp_path / "run", tmp_path / "held", tmp_path / "release"
    hold = (
        "import time, pathlib, sys\n"
        "from interp_steer.storage import run_lock\n"
        "with run_lock(sys.argv[1]):\n"
        "    pathlib.Path(sys.argv[2]).touch()\n"
        "    while not pathlib.Path(sys.argv[3]).exists(): time.sleep(0.02)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", hold, str(run), str(ready), str(release)])
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the holder did not start"
            time.sleep(0.05)
        with pytest.raises(RunLockedError, match=f"pid {proc.pid}"):
            study.run_study(run, QUICK)
        assert not (run / "study.json").exists()
    finally:
        release.touch()
        proc.wait(timeout=60)


def test_fit_adapter_saved_reuses_an_adapter_of_the_same_pairs_only(tiny, tmp_path):
    path, corpus = tmp_path / "adapters" / "it-sft", load_parallel("flores", "it", n=3)
    adapter = fit_adapter_saved(tiny, path, corpus)
    written = path.with_suffix(".safetensors").stat().st_mtime_ns
    again = fit_adapter_saved(tiny, path, corpus)  # read back, not trained again
    assert path.with_suffix(".safetensors").stat().st_mtime_ns == written
    assert again.checksum == adapter.checksum and again.meta == adapter.meta
    with pytest.raises(SettingsError, match="holds a LoRA adapter") as err:
        fit_adapter_saved(tiny, path, load_parallel("flores", "sw", n=3))
    assert "lang: 'it' → 'sw'" in err.value.changes
