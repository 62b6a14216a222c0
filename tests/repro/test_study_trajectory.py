"""The study's latent-language stage and its page section, on the tiny model."""

import json
from dataclasses import replace

import numpy as np
import pytest

from interp_steer.analysis import SweepResult, TrajectoryResult, TunedLens, load_tuned_lens
from interp_steer.storage import SettingsError
from repro import run as study
from repro.config import QUICK
from repro.page_lens import SECTION, lens_findings, trajectory_section, trajectory_table
from repro.tables import markdown_table
from repro.vectors import selected, shared_cell


def _img(name):
    return f"![{name}](figures/{name}.png)"


def test_trajectory_stage_reads_both_lenses_base_vs_steered_and_resumes(
    tmp_path, tiny, monkeypatch
):
    monkeypatch.setenv("INTERP_STEER_CACHE", str(tmp_path / "cache"))  # no lens saved yet
    root = tmp_path / "run"
    study.run_study(root, QUICK, model=tiny, stages=("sweep", "trajectory"))
    folder = root / "trajectory"
    record = json.loads((folder / "trajectory.json").read_text(encoding="utf-8"))
    logit = TrajectoryResult.load(folder / "logit.json")
    tuned = TrajectoryResult.load(folder / "tuned.json")
    lens = load_tuned_lens(tiny)  # the stage trained it and saved it where it is found
    assert record["tuned_lens"]["source"] == "fitted"
    assert record["tuned_lens"]["checksum"] == lens.checksum
    assert record["tuned_lens"]["steps"] == lens.meta["steps"] > 0
    assert (logit.lens, tuned.lens) == ("logit", "tuned")
    assert tuned.meta["tuned_lens"]["checksum"] == lens.checksum
    for res in (logit, tuned):
        assert (res.source, res.target) == QUICK.trajectory_langs
        assert res.runs == ("base", "steered") and res.layers == (0, 1, 2, 3)
        assert res.n_prompts + res.n_excluded == QUICK.n_trajectory
        assert res.meta["shots"] == 5 and res.meta["vector"]["name"] == "zh-mean_diff"
    # the last layer is the model's own output under both lenses
    np.testing.assert_allclose(logit.target_prob[:, -1], tuned.target_prob[:, -1], atol=1e-6)
    assert not np.allclose(logit.target_prob[:, :-1], tuned.target_prob[:, :-1])
    # zh is neither an XCOPA nor a generation language of QUICK: a FLORES mean_diff vector
    # at the XCOPA languages' shared cell, fitted for the figure
    vector = record["settings"]["vector"]
    layer, ratio = shared_cell([selected(root, lang) for lang in QUICK.langs])
    assert vector["part"] == "trajectory" and vector["dataset"] == "flores"
    assert (vector["layer"], vector["ratio"], vector["n"]) == (layer, ratio, QUICK.n_fit)
    assert (folder / "zh-mean_diff.safetensors").is_file()
    assert logit.meta["vector"]["layer"] == layer and logit.meta["alpha"] == vector["alpha"]

    # the run folder keeps the lens it drew with
    assert TunedLens.load(folder / "tuned_lens").checksum == lens.checksum
    # resumed on another machine (an empty model cache): nothing is read again and no lens
    # is trained, the run folder's copy is read (a new one could differ)
    monkeypatch.setenv("INTERP_STEER_CACHE", str(tmp_path / "other_cache"))
    stamps = {p: p.stat().st_mtime_ns for p in folder.glob("*.json") if p.name != "trajectory.json"}
    study.run_study(root, QUICK, model=tiny, stages=("trajectory",))
    assert stamps == {p: p.stat().st_mtime_ns for p in stamps}
    record = json.loads((folder / "trajectory.json").read_text(encoding="utf-8"))
    assert record["tuned_lens"]["source"] == "run folder"
    assert record["tuned_lens"]["checksum"] == lens.checksum
    assert not (tmp_path / "other_cache" / "tuned_lens").exists()
    # other settings: the run stops and names them, the saved results are not reused
    with pytest.raises(SettingsError, match="concepts"):
        study.run_study(root, replace(QUICK, n_trajectory=7), model=tiny, stages=("trajectory",))

    text, figs = trajectory_section(root, _img)
    assert text.startswith(SECTION)
    assert set(figs) == {"results_trajectory_logit", "results_trajectory_tuned"}
    names = [t.name for t in figs["results_trajectory_tuned"].data if t.showlegend]
    assert names == ["English", "Chinese", "entropy"]
    assert "tuned lens" in figs["results_trajectory_tuned"].layout.title.text
    assert _img("results_trajectory_logit") in text and _img("results_trajectory_tuned") in text
    header = (
        "| layer | P(zh) base | P(zh) steered | P(en) base | P(en) steered | entropy base "
        "| entropy steered |"
    )
    assert text.count(header) == 2
    frame = tuned.to_frame().set_index(["run", "quantity", "layer"]).sort_index()["mean"]
    table = trajectory_table(tuned)
    for run in tuned.runs:
        np.testing.assert_allclose(table[f"P(zh) {run}"], frame[run, "target"].to_numpy())
        np.testing.assert_allclose(table[f"P(en) {run}"], frame[run, "english"].to_numpy())
        np.testing.assert_allclose(table[f"entropy {run}"], frame[run, "entropy"].to_numpy())
    for res in (logit, tuned):
        assert markdown_table(trajectory_table(res), digits=3) in text
    # the last layer reads the model's output under both lenses: the same row in both tables
    last = markdown_table(table.tail(1), digits=3).splitlines()[-1]
    assert last.startswith("| 3 | ") and text.count(last) == 2
    assert f"- {lens_findings(logit)}" in text and f"- {lens_findings(tuned)}" in text
    assert f"{logit.n_prompts}\nFrench → Chinese prompts" in text
    assert "a `mean_diff` vector fitted for this figure" in text
    assert f"layer {layer}, ‖αv‖/‖h‖ = {ratio:g}" in text
    assert "The tuned lens was read from the run folder (`trajectory/tuned_lens.*`)" in text


def test_the_generation_vector_is_used_when_the_target_has_one(tmp_path, tiny, monkeypatch):
    monkeypatch.setenv("INTERP_STEER_CACHE", str(tmp_path / "cache"))
    cfg = replace(QUICK, trajectory_langs=("fr", "de"))  # de: QUICK's generation language
    root = tmp_path / "run"
    study.run_study(root, cfg, model=tiny, stages=("gen_sweep", "trajectory"))
    vector = json.loads((root / "trajectory" / "trajectory.json").read_text())["settings"]["vector"]
    best = SweepResult.load(root / "gen_sweep.json").best("de")
    assert vector["part"] == "gen" and (vector["dataset"], vector["split"]) == ("msvamp", "train")
    assert (vector["layer"], vector["ratio"]) == (best["layer"], best["strength"])
    assert vector["n"] == cfg.n_gen_fit
    # the same file the gen_vectors stage reads back: fitted once, with its settings
    assert (root / "gen_vectors" / "de-mean_diff.safetensors").is_file()
    assert not (root / "trajectory" / "de-mean_diff.safetensors").exists()
    text, _ = trajectory_section(root, _img)
    assert "the generation part's selected vector `de-mean_diff`" in text
    assert f"on {cfg.n_gen_fit} msvamp train pairs" in text


def test_a_run_folder_without_the_stage_gets_a_note(tmp_path):
    text, figs = trajectory_section(tmp_path, _img)
    assert text == f"{SECTION}\n\nThe `trajectory` stage has not run in this run folder yet.\n"
    assert figs == {}
