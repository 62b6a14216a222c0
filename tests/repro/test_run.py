"""The study pipeline end to end on the tiny model: run folder → results page + figures."""

import json
import re
import time
from dataclasses import replace

import pytest

from interp_steer.analysis import HyperSelection
from repro import run as study
from repro.config import BASELINE_ROWS, QUICK, method_rows
from repro.page import write_results
from repro.run import main


def test_quick_study_writes_the_results_page(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_STEER_CACHE", str(tmp_path / "cache"))  # its tuned lens
    page, figures = tmp_path / "docs" / "results.md", tmp_path / "figures"
    assert (
        main(
            [
                "--quick",
                "--out",
                str(tmp_path / "run"),
                "--page",
                str(page),
                "--figures",
                str(figures),
            ]
        )
        == 0
    )
    text = page.read_text(encoding="utf-8")
    table = text.split("## Main comparison")[1].split("Gains over")[0]
    header = next(line for line in table.splitlines() if line.startswith("| method"))
    assert header == "| method | " + " | ".join(QUICK.langs) + " | mean |"
    rows = [line.split(" | ")[0][2:] for line in table.splitlines() if line.startswith("| ")][1:]
    assert rows == [
        "basic", "translate_test", "self_translate", "xlt", "k_shot",
        "mean_diff", "pca", "mse", "bipo", "sft",
    ]  # fmt: skip
    assert "`mse` as trained (α = 1) has ‖v‖/‖h‖ from" in text
    assert "`sft` is a LoRA fine-tune" in text and "scale-aware learning rate" in text
    for link in re.findall(r"!\[[^]]*\]\(([^)]+)\)", text):
        assert (page.parent / link).resolve().is_file() or not (
            figures / "results_sweep.png"
        ).exists()
    assert (tmp_path / "run" / "study.json").is_file()
    closing = text.split("## Compute and settings")[1]  # the page's last section
    assert "| stage | minutes |" in closing and "| **total** |" in closing
    assert f"| `n_fit` | `{QUICK.n_fit}` |" in closing and "| `forcing.k` |" in closing
    gen = text.split("## Generation tasks")[1]
    summary = gen.split("Mean over languages")[1].split("###")[0]
    assert "| method | MSVAMP | MGSM | forcing (English %) |" in summary
    assert [r.split(" | ")[0][2:] for r in summary.splitlines() if r.startswith("| ")][1:] == [
        *BASELINE_ROWS,
        *method_rows(QUICK.gen_methods),
    ]
    assert "- **`bipo` as trained** (α = 1) has ‖v‖/‖h‖ from" in gen
    assert "EnglishKL on held-out MSVAMP train pairs" in gen and "results_gen_transfer" in gen
    kl = gen.split("### Every method by EnglishKL")[1].split("###")[0]
    assert "| lang | basic | " + " | ".join(method_rows(QUICK.gen_kl_methods)) + " |" in kl
    assert "| mean |" in kl
    # paired tests on the same pairs: each comparison per language (one here, no pooled row)
    assert "| row | vs | lang | n | diff (nats) | 95% CI | lower | p_value | sig |" in kl
    for row, vs in (("bipo", "basic"), ("bipo", "mean_diff"), ("sft", "mean_diff")):
        assert f"| {row} | {vs} | de | {QUICK.n_gen_kl} |" in kl
    assert "- **Pair by pair** (KL, sign test p < 0.05). `bipo` − `basic`" in gen
    assert "### BiPO's learning rate (compared on held-out pairs)" in gen
    assert "### BiPO's epochs (compared on held-out pairs)" in gen
    assert "### BiPO with the library's defaults" in gen
    defaults = json.loads((tmp_path / "run" / "gen_bipo_defaults.json").read_text())
    assert set(defaults) == {"settings", *QUICK.gen_langs}
    assert len(defaults["de"]["kl"]) == QUICK.n_gen_kl
    # the same vector around α = 1: the α chosen on selection pairs is scored on eval pairs
    assert "### BiPO's default vector around α = 1" in gen
    around = json.loads((tmp_path / "run" / "gen_bipo_alpha.json").read_text())
    assert set(around) == {"settings", *QUICK.gen_langs}
    select = around["de"]["select"]
    assert len(select) == len(QUICK.bipo_alphas) and len(around["de"]["kl"]) == QUICK.n_gen_kl
    assert around["de"]["alpha"] == QUICK.bipo_alphas[select.index(min(select))]
    assert around["de"]["norm_ratio"] == defaults["de"]["norm_ratio"]  # one vector, read back
    pairing = gen.split("### BiPO's pairing (compared on held-out pairs, per language)")[1]
    assert "| lang | layer | select: unsteered | select: copy | select: continuation |" in pairing
    assert f"Of {len(QUICK.gen_langs)} languages, `copy` wins the selection in " in pairing
    saved = sorted(p.stem for p in (tmp_path / "run" / "gen_bipo_pairing").glob("*.json"))
    assert saved == sorted(QUICK.gen_langs)
    assert "| epochs | chosen | ‖v‖ |" in gen
    assert "| lr | chosen | ‖v‖ | AdamW rate | select KL | test KL |" in gen
    chosen = {name: HyperSelection.load(tmp_path / "run" / f"gen_bipo_{name}.json").best[name]
              for name in ("lr", "epochs")}  # fmt: skip
    assert chosen["epochs"] in QUICK.bipo_epochs
    # the library default's rate, checked on held-out pairs with the default's own schedule
    assert "### BiPO's default learning rate (compared on held-out pairs)" in gen
    default_lr = HyperSelection.load(tmp_path / "run" / "gen_bipo_default_lr" / "de.json")
    assert QUICK.bipo_default_lr_langs == ("de",)
    assert default_lr.points == tuple({"lr": x} for x in QUICK.bipo_default_lrs)
    assert default_lr.meta["fit"]["n"] == QUICK.n_gen_fit
    fits = [p["fit_metrics"] for p in default_lr.meta["points"]]
    assert {(f["lr_scale"], f["steps"]) for f in fits} == {("coord", QUICK.n_gen_fit)}
    agree = "is" if default_lr.best["lr"] == 1e-3 else f"is {default_lr.best['lr']:g}, not"
    assert f"The rate chosen here {agree} the library's default (`lr` 0.001)." in gen
    header = (
        "| lr | select: de | select / unsteered | worst select / unsteered | test / unsteered |"
    )
    assert header in gen
    # and its number of epochs, at the default rate
    assert "### BiPO's default number of epochs (compared on held-out pairs)" in gen
    epochs = HyperSelection.load(tmp_path / "run" / "gen_bipo_default_epochs" / "de.json")
    assert epochs.points == tuple({"epochs": x} for x in QUICK.bipo_default_epochs)
    fits = [p["fit_metrics"] for p in epochs.meta["points"]]
    assert [(f["lr"], f["steps"]) for f in fits] == [
        (1e-3, QUICK.n_gen_fit * x) for x in QUICK.bipo_default_epochs
    ]
    assert "| epochs | select: de | select / unsteered |" in gen
    # BiPO at the library's defaults is trained apart: the study's rows pin lr_scale="resid"
    assert (tmp_path / "run" / "gen_vectors" / "de-bipo_defaults.safetensors").is_file()
    bipo = [*(tmp_path / "run").glob("vectors/*-bipo.json"),
            *(tmp_path / "run").glob("gen_vectors/*-bipo.json")]  # fmt: skip
    assert len(bipo) == len(QUICK.langs) + len(QUICK.gen_langs)
    hyper = [json.loads(p.read_text())["meta"]["hyper"] for p in bipo]
    assert {(h["lr"], h["epochs"]) for h in hyper} == {(chosen["lr"], chosen["epochs"])}
    assert f"for {chosen['epochs']} epoch" in gen
    kl_cells = json.loads((tmp_path / "run" / "gen_kl.json").read_text(encoding="utf-8"))
    assert len(kl_cells["de"]["bipo"]["kl"]) == QUICK.n_gen_kl
    latent = text.split("## Latent language (Wendler et al.)")[1].split("## Control")[0]
    assert latent.count("| layer | P(zh) base | P(zh) steered | P(en) base |") == 2
    assert "results_trajectory_logit" in latent and "results_trajectory_tuned" in latent
    assert "Through the logit lens, base: English peaks at" in latent
    control = text.split("## Control")[1].split("## Generation")[0]
    assert "| level |" in control and "translate_test" in control
    forcing = text.split("## Language forcing: control × relevance (CLaS-Bench)")[1]
    assert "| method | score to English | score from English |" in forcing
    assert "results_forcing_methods" in forcing and "## Not in this study" in forcing
    # resumable: a second run reuses every evaluation file
    run = tmp_path / "run"
    files = [*(run / "eval").glob("*.json"), *(run / "gen_eval").glob("*.json"),
             *(run / "control" / "eval").glob("*.json")]  # fmt: skip
    before = {p: p.stat().st_mtime_ns for p in files}
    assert len(list((run / "eval").glob("*.json"))) == len(QUICK.langs) * 11
    assert {p.name for p in (run / "adapters").glob("*.safetensors")} == {
        f"{lang}-sft.safetensors" for lang in QUICK.langs
    }
    # MSVAMP and MGSM: every baseline and steered row; forcing: basic and the steered rows
    steered = len(method_rows(QUICK.gen_methods))
    per_lang = 2 * (len(BASELINE_ROWS) + steered) + 1 + steered
    assert len(list((run / "gen_eval").glob("*.json"))) == len(QUICK.gen_langs) * per_lang
    assert (
        main(
            [
                "--quick",
                "--out",
                str(tmp_path / "run"),
                "--page",
                str(page),
                "--figures",
                str(figures),
            ]
        )
        == 0
    )
    assert before == {p: p.stat().st_mtime_ns for p in files}
    # an interrupted generation table: the page shows the rows that are complete
    for path in (run / "gen_eval").glob("*-sft.json"):
        path.unlink()
    write_results(run, page=page, figures=figures)
    gen = page.read_text(encoding="utf-8").split("## Generation tasks")[1]
    summary = gen.split("Mean over languages")[1].split("###")[0]
    assert "| sft" not in summary and "| bipo |" in summary
    # changed settings: a saved cell is not silently kept, the run stops and names it
    changed = (
        r"msvamp-de-basic.json holds a result of 2 items \(complete, n=2\) "
        r"with other settings \(max_new_tokens 8 → 9\)"
    )
    with pytest.raises(ValueError, match=changed):
        study.run_study(run, replace(QUICK, gen_tokens=9))


def test_an_interrupted_study_still_records_its_compute(tmp_path, tiny, monkeypatch):
    def stopped(model, cfg, root):
        time.sleep(0.05)
        raise KeyboardInterrupt

    monkeypatch.setattr(study, "STAGES", (("sweep", stopped), *study.STAGES[1:]))
    (tmp_path / "study.json").write_text(json.dumps({"compute_s": {"sweep": 1.0}, "note": "x"}))
    with pytest.raises(KeyboardInterrupt):
        study.run_study(tmp_path, QUICK, model=tiny)
    record = json.loads((tmp_path / "study.json").read_text(encoding="utf-8"))
    assert record["note"] == "x" and list(record["timings_s"]) == ["sweep"]
    assert record["compute_s"]["sweep"] >= 1.05


def test_a_long_stage_records_its_compute_while_it_runs(tmp_path, tiny, monkeypatch):
    """A process killed mid-stage (no signal to catch) keeps what the heartbeat wrote."""
    import repro.timing

    monkeypatch.setattr(repro.timing, "HEARTBEAT_S", 0.05)
    seen = []

    def long(model, cfg, root):
        time.sleep(0.4)
        seen.append(json.loads((root / "study.json").read_text(encoding="utf-8")))
        seen.append(time.perf_counter())

    monkeypatch.setattr(study, "STAGES", (("sweep", long), *study.STAGES[1:]))
    (tmp_path / "study.json").write_text(json.dumps({"compute_s": {"sweep": 1.0}}))
    called = time.perf_counter()
    study.run_study(tmp_path, QUICK, model=tiny, stages=("sweep",))
    returned = time.perf_counter()
    (record, read), elapsed = seen, returned - called
    during = record["compute_s"]["sweep"]  # written while the stage ran
    # at most the time since the call when it was read (a loaded machine oversleeps)
    assert 1.2 <= during <= 1.0 + (read - called) and record["timings_s"]["sweep"] >= 0.2
    after = json.loads((tmp_path / "study.json").read_text(encoding="utf-8"))
    # counted once, not once per write (nine writes would add about 1.8 s more)
    assert 1.4 <= after["compute_s"]["sweep"] <= 1.0 + elapsed


def test_stages_run_alone_in_the_order_given(tmp_path, tiny, monkeypatch, capsys):
    ran = []
    fake = tuple((name, lambda model, cfg, root, name=name: ran.append(name))
                 for name, _ in study.STAGES)  # fmt: skip
    monkeypatch.setattr(study, "STAGES", fake)
    study.run_study(tmp_path, QUICK, model=tiny, stages=("gen_sweep", "sweep"))
    assert ran == ["gen_sweep", "sweep"]
    record = json.loads((tmp_path / "study.json").read_text(encoding="utf-8"))
    assert list(record["timings_s"]) == ["gen_sweep", "sweep"]
    with pytest.raises(ValueError, match=r"unknown stage\(s\) \['nope'\]; expected some of"):
        study.run_study(tmp_path, QUICK, model=tiny, stages=("nope",))
    assert ran == ["gen_sweep", "sweep"]  # nothing ran
