"""Turn a study run folder (:mod:`repro.run`) into ``docs/results.md`` + figures.

Every number on the page is read from the run folder; nothing is typed in by hand except
the paper's own Table 2 averages, quoted for comparison. The sections are built by
:mod:`repro.page_xcopa`, :mod:`repro.page_lens`, :mod:`repro.page_control`,
:mod:`repro.page_generation` and :mod:`repro.page_forcing`.
"""

import json
import math
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from interp_steer.analysis import SimilarityResult
from interp_steer.plotting import save_figure
from interp_steer.storage import atomic_write_text, flat_settings
from repro.page_control import control_section
from repro.page_forcing import forcing_section
from repro.page_generation import generation_section
from repro.page_lens import trajectory_section
from repro.page_xcopa import xcopa_section
from repro.tables import runs_frame, similarity_levels
from repro.trajectory import LENS_FILES

__all__ = ["write_results"]


def _half_width(n: int) -> float:
    """Half-width (points) of a normal 95% interval around 50% with ``n`` items."""
    return 100 * 1.96 * math.sqrt(0.25 / n) if n > 0 else math.nan


def _stage_seconds(study: dict[str, Any]) -> dict[str, float]:
    """Seconds per stage, summed over every invocation where the run folder has them.

    That is the accumulated ``compute_s`` (the run resumes), else this invocation's
    ``timings_s``.
    """
    return dict(study.get("compute_s") or study["timings_s"])


def _hours(study: dict[str, Any]) -> str:
    """The run's total compute in words.

    >>> _hours({"timings_s": {"a": 5400.0}}), _hours({"timings_s": {"a": 60.0}})
    ('1.5 hours', '1 min')
    """
    total = sum(_stage_seconds(study).values())
    return f"{total / 3600:.1f} hours" if total >= 3600 else f"{total / 60:.0f} min"


def _compute_section(study: dict[str, Any]) -> str:
    """The page's last section: minutes per stage and every setting of the run.

    The minutes are :func:`_stage_seconds`, longest stage first.

    >>> text = _compute_section({"config": {"n": 8, "forcing": {"k": 4}}, "cpu_count": 2,
    ...                          "timings_s": {"table": 30.0, "sweep": 90.0}})
    >>> text.index("| sweep | 1.5 |") < text.index("| table | 0.5 |")
    True
    >>> "| **total** | **2** |" in text
    True
    >>> "| `forcing.k` | `4` |" in text
    True
    """
    t = _stage_seconds(study)
    rows = "".join(f"| {name.replace('_', ' ')} | {s / 60:.{1 if s < 600 else 0}f} |\n"
                   for name, s in sorted(t.items(), key=lambda kv: -kv[1]))  # fmt: skip
    note = f"\n{study['compute_note']}.\n" if study.get("compute_note") else ""
    settings = "".join(
        f"| `{key}` | `{json.dumps(value, ensure_ascii=False)}` |\n"
        for key, value in flat_settings(study["config"]).items()
    )
    return f"""## Compute and settings

Minutes of wall time per stage on {study["cpu_count"]} CPU cores, longest first, summed
over every invocation (the run resumes, and an interrupted invocation records the time it
spent):

| stage | minutes |
|---|---|
{rows}| **total** | **{sum(t.values()) / 60:.0f}** |
{note}
The run's settings (`repro.config`), as `study.json` records them:

| setting | value |
|---|---|
{settings}"""


SECTION_FILES: dict[str, tuple[str, ...]] = {
    "XCOPA": ("sweep.json", "similarity.json", "transfer.json", "lens.json", "eval"),
    "Generation tasks": ("gen_sweep.json", "gen_transfer.json", "gen_eval"),
    "Latent language": tuple(f"trajectory/{name}" for name in LENS_FILES.values()),
    "Language forcing": ("forcing/methods.json",),
}
"""The files each part of the page is drawn from, in the run folder. The stages run in
order (:data:`repro.run.STAGES`), so a part's last file means its earlier ones are done;
a part whose files are missing gets a note instead of its section."""


PREVIOUS = "results-previous.md"
"""The file name of an earlier complete run's page, kept beside a partial page (linked)."""


def _not_run(part: str) -> str:
    """The note standing for a part whose stages have not run in the run folder."""
    return f"## {part}\n\nNot in this run folder yet: its stages have not run.\n"


def _partial_note(
    missing: list[str], root: Path, previous: Path | None = None, incomplete: Sequence[str] = ()
) -> str:
    """A banner for a page drawn from a run folder that has not run every stage.

    ``missing``: the parts that have not run every stage; those of them in ``incomplete``
    show what has run. ``previous``: a page of an earlier complete run beside this one,
    linked if it exists.

    >>> _partial_note([], Path("runs/results"))
    ''
    >>> _partial_note(["XCOPA"], Path("r")).splitlines()[1][:16]
    '**Partial page.*'
    >>> note = _partial_note(["XCOPA", "Generation"], Path("r"), incomplete=["Generation"])
    >>> "yet: XCOPA is missing below and Generation is incomplete (each says so)" in note
    True
    """
    if not missing:
        return ""
    absent = [part for part in missing if part not in incomplete]
    partly = [part for part in missing if part in incomplete]
    state = " and ".join(
        f"{', '.join(parts)} {'is' if len(parts) == 1 else 'are'} {what}"
        for parts, what in ((absent, "missing below"), (partly, "incomplete"))
        if parts
    )
    earlier = (
        f"The last complete page, from an earlier run with other settings, is "
        f"[{previous.name}]({previous.name})."
        if previous is not None and previous.is_file()
        else "Earlier complete pages, made with other settings, are in the git history of "
        "`docs/results.md`."
    )
    return (
        f"\n**Partial page.** The run folder `{root}` has not run every stage yet: "
        f"{state} (each says so), and the study runs on; the page is rewritten from the "
        f"run folder as stages finish. {earlier}\n"
    )


def write_results(
    out: str | os.PathLike[str],
    *,
    page: str | os.PathLike[str] = "docs/results.md",
    figures: str | os.PathLike[str] = "figures",
) -> Path:
    """Write the results page and its PNG figures from the run folder ``out``."""
    root, fig_dir, page_path = Path(out), Path(figures), Path(page)
    study = json.loads((root / "study.json").read_text(encoding="utf-8"))
    cfg = study["config"]
    rel = os.path.relpath(fig_dir, page_path.parent)
    beside = page_path.parent / fig_dir.name  # docs/figures -> ../figures keeps mkdocs happy
    if beside.exists() and beside.resolve() == fig_dir.resolve():
        rel = fig_dir.name
    img = lambda name: f"![{name}]({rel}/{name}.png)"  # noqa: E731
    missing = [name for name, files in SECTION_FILES.items()
               if not all((root / f).exists() for f in files)]  # fmt: skip
    xcopa_figs: dict[str, go.Figure] = {}
    ctrl_figs: dict[str, go.Figure] = {}
    gen_figs: dict[str, go.Figure] = {}
    xcopa_text, ctrl_text = _not_run("XCOPA"), ""
    if "XCOPA" not in missing:
        sim = SimilarityResult.load(root / "similarity.json")
        runs = runs_frame(root / "eval")
        levels = similarity_levels(sim)
        xcopa_text, xcopa_figs = xcopa_section(root, img, study, runs=runs, sim=sim,
                                               levels=levels)  # fmt: skip
        ctrl_text, ctrl_figs = control_section(
            root, img, model=study["model"], control=str(cfg.get("control_model")),
            levels=levels, runs=runs,
        )  # fmt: skip
    gen_text, gen_figs = generation_section(root, img, tuple(cfg.get("gen_methods", ())), cfg)
    incomplete = ["Generation tasks"] if gen_text and "Generation tasks" in missing else []
    gen_text = gen_text or _not_run("Generation tasks")  # nothing of the part has run
    lens_text, lens_figs = trajectory_section(root, img)
    forcing_text, forcing_figs = forcing_section(root, img)
    figs = {**gen_figs, **ctrl_figs, **xcopa_figs, **lens_figs, **forcing_figs}
    fig_dir.mkdir(parents=True, exist_ok=True)
    for name, fig in figs.items():
        written = save_figure(fig, root / "figures" / name)
        if "png" in written:
            shutil.copyfile(written["png"], fig_dir / f"{name}.png")

    text = f"""# Results: the paper's study on {study["model"]}
{_partial_note(missing, root, page_path.with_name(PREVIOUS), incomplete)}
Generated by `make results` (`python -m repro`) from the run folder
`{root}` (committed, less its activation caches); every number below is read from it.
Hardware: {study["cpu_count"]} CPU cores, no GPU; {_hours(study)} of compute in all. The
minutes per stage and every setting of the run are in
[Compute and settings](#compute-and-settings) at the end.

{xcopa_text}
{lens_text}
{ctrl_text}
{gen_text}
{forcing_text}
## Not in this study

- **Full fine-tuning.** The `sft` rows are LoRA fine-tunes on each language's own pairs;
  no full fine-tune of the model is run.
- **The paper's scale.** Five 7B models and 14 languages there; one 270M model (and a 135M
  control) here, with {cfg["n_test"]} XCOPA and {cfg.get("n_gen_test", 0)} MSVAMP/MGSM
  items per cell: a 95% interval around 50% spans ±{_half_width(cfg["n_test"]):.0f} and
  ±{_half_width(cfg.get("n_gen_test", 0)):.0f} points.
- **Google-MT translate-test on math.** MSVAMP and MGSM ship human English versions,
  which `translate_test` reads; XCOPA's `translate_test` is its Google-MT release.

{_compute_section(study)}"""
    return atomic_write_text(page_path, text)
