"""The language-forcing part of ``docs/results.md``: control × relevance, after CLaS-Bench.

Reads what :mod:`repro.forcing` wrote (``forcing/``) and returns the page section (the
method comparison with its paired tests against ``mean_diff``, the per-language scores,
the layer curve, the operators, the control model, the relevance checks, compute) and
its figures. Every number is computed from the saved results. A run folder without
``forcing/methods.json`` gets a one-line note instead.
"""

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from interp_steer.analysis import ForcingBenchmark
from interp_steer.evaluation import RelevanceCheck
from interp_steer.plotting import plot_forcing, plot_forcing_layers
from interp_steer.steering import SteeringVector
from repro.forcing import PARTS, VALIDATION
from repro.tables import markdown_table, paired_difference

__all__ = [
    "PASS_SHARE",
    "REFERENCE",
    "SECTION",
    "diffmean_finding",
    "forcing_section",
    "language_table",
    "lowrank_finding",
    "method_table",
    "operator_table",
    "selection_finding",
    "validation_finding",
    "validation_table",
]

SECTION = "## Language forcing: control × relevance (CLaS-Bench)"
"""The section's heading."""

REFERENCE = "mean_diff"
"""The method every other one is compared with (CLaS-Bench's DiffMean)."""

PASS_SHARE = 0.9
"""The relevance check passes when the reference wins on at least this share of items."""

_DIRECTIONS = {"to_english": "to English", "from_english": "from English"}


def _added(bench: ForcingBenchmark) -> pd.DataFrame:
    """The rows of :meth:`ForcingBenchmark.table` whose operator is ``add``."""
    table = bench.table()
    return table[table["operator"] == "add"]


def _scores(bench: ForcingBenchmark) -> pd.DataFrame:
    """Test scores, one row per (lang, direction), one column per method (NaN: no cell)."""
    table = _added(bench)
    wide = table.pivot_table(index=["lang", "direction"], columns="method", values="score")
    return wide.reindex(columns=list(bench.methods))


def method_table(bench: ForcingBenchmark) -> pd.DataFrame:
    """Per method: mean test scores, control, relevance, wins, and the test vs ``mean_diff``.

    The test pairs the (language, direction) cases both methods have (:data:`REFERENCE`).

    Columns: ``method``, the mean score per direction, ``control``, ``relevance``,
    ``gain`` (over the unsteered model on the same prompts), ``select`` (the chosen cells'
    mean score on the selection prompts: optimistic, the best of the grid on the prompts
    it was chosen on), ``best in`` (cases where the method's score is the highest, ties
    included), and against ``mean_diff``: ``Δ score`` (mean difference, 95% bootstrap
    interval), ``lower/higher`` (cases) and the sign test's ``p``.
    """
    table = _added(bench)
    wide = _scores(bench)
    best = wide.max(axis=1)
    rows = []
    for method in bench.methods:
        mine = table[table["method"] == method]
        row: dict[str, object] = {"method": method}
        for direction in bench.directions:
            at = mine[mine["direction"] == direction]
            row[f"score {_DIRECTIONS[direction]}"] = at["score"].mean() if len(at) else math.nan
        row["control"] = mine["control"].mean()
        row["relevance"] = mine["relevance"].mean()
        row["gain"] = mine["gain"].mean()
        row["select"] = mine["select_score"].mean()
        row["best in"] = f"{int((wide[method] >= best).sum())}/{len(wide)}"
        both = wide[[method, REFERENCE]].dropna() if method != REFERENCE else None
        if both is None or not len(both):
            row.update({f"Δ vs {REFERENCE}": "–", "lower/higher": "–", "p": math.nan})
        else:
            d = paired_difference([(both[method].to_numpy(), both[REFERENCE].to_numpy())])
            row[f"Δ vs {REFERENCE}"] = f"{d['diff']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]"
            row["lower/higher"] = f"{d['lower']}/{d['higher']}"
            row["p"] = d["p_value"]
        rows.append(row)
    return pd.DataFrame(rows)


def diffmean_finding(bench: ForcingBenchmark) -> str:
    """Whether ``mean_diff`` wins here as in CLaS-Bench, every number from ``bench``.

    Wins means the highest mean test score over the (language, direction) cases; the
    paired sign tests against each other method say whether the gaps are more than noise.
    """
    wide = _scores(bench).dropna()
    if REFERENCE not in wide.columns or len(bench.methods) < 2 or not len(wide):
        return f"The method comparison needs `{REFERENCE}` and another method."
    means = wide.mean()
    top = str(means.idxmax())
    others = [m for m in bench.methods if m != REFERENCE]
    tests = {m: paired_difference([(wide[m].to_numpy(), wide[REFERENCE].to_numpy())])
             for m in others}  # fmt: skip
    above = [m for m in others if tests[m]["diff"] > 0 and tests[m]["p_value"] < 0.05]
    below = [m for m in others if tests[m]["diff"] < 0 and tests[m]["p_value"] < 0.05]
    best_in = int((wide[REFERENCE] >= wide.max(axis=1)).sum())
    head = (
        f"Over the {len(wide)} (language, direction) cases every method has, `{REFERENCE}` "
        f"scores {means[REFERENCE]:.3f} on average and is the best (or tied) in {best_in}"
    )
    if top == REFERENCE or means[top] == means[REFERENCE]:
        verdict = "**DiffMean wins here, as in CLaS-Bench**: no method has a higher mean"
    else:
        verdict = (
            f"**DiffMean does not win here**: `{top}` has the highest mean "
            f"({means[top]:.3f}, Δ {tests[top]['diff']:+.3f}, sign test p = "
            f"{tests[top]['p_value']:.2g})"
        )

    def named(methods: list[str]) -> str:
        return ", ".join(f"`{m}`" for m in methods) if methods else "none"

    return (
        f"{head}. {verdict}. Paired over cases (sign test, p < 0.05), significantly below "
        f"`{REFERENCE}`: {named(below)}; significantly above: {named(above)}."
    )


def selection_finding(bench: ForcingBenchmark) -> str:
    """How far the selected cells' test scores fall below their selection scores.

    With a few selection prompts and a grid of cells the best one is partly chosen for
    luck, so its selection score overstates it; the test prompts say by how much.
    """
    table = _added(bench)
    if not len(table):
        return ""
    drop = table["select_score"] - table["score"]
    mean, n = float(drop.mean()), len(table)
    if mean > 0:
        head = (
            f"Selection is optimistic: over the {n} selected cells the test score is "
            f"{mean:.3f} below the selection score on average (the `select` column)"
        )
    else:
        head = (
            f"Over the {n} selected cells the test score is {abs(mean):.3f} above the selection "
            "score on average (the `select` column): no sign of optimism"
        )
    lower = int((drop > 0).sum())
    if not lower:
        return f"{head}; no cell scores lower on test."
    worst = table.loc[drop.idxmax()]
    return (
        f"{head}, and lower in {lower}; the largest fall is `{worst['method']}` "
        f"{worst['lang']} {_DIRECTIONS[str(worst['direction'])]} "
        f"({worst['select_score']:.2f} → {worst['score']:.2f})."
    )


def lowrank_finding(bench: ForcingBenchmark) -> str:
    """How much of the mean difference the benchmark's ``lowrank`` vectors keep.

    Read from the vectors saved in the benchmark's run folder (their ``mean_captured``
    metric, ``‖v‖² / ‖m‖²``); '' without ``lowrank`` or without saved vectors.
    """
    run_dir = bench.meta.get("run_dir")
    if "lowrank" not in bench.methods or not run_dir:
        return ""
    paths = sorted((Path(run_dir) / "vectors" / "lowrank").glob("*/*.safetensors"))
    vectors = [SteeringVector.load(p) for p in paths]
    if not vectors:
        return ""
    least = float(np.min([v.meta["metrics"]["mean_captured"] for v in vectors]))
    ks = ", ".join(str(k) for k in sorted({v.meta["hyper"]["k"] for v in vectors}))
    text = (
        f"Each of the {len(vectors)} `lowrank` vectors (k = {ks}) keeps at least "
        f"{least:.2%} of the mean difference's squared norm (cosine with `mean_diff` "
        f"≥ {math.sqrt(least):.4f})"
    )
    if least < 0.99:
        return text + "."
    return (
        text + ": the differences are not centred, so their top singular directions hold "
        "the pairs' common shift, and `lowrank` is `mean_diff` in all but name here."
    )


def language_table(bench: ForcingBenchmark, direction: str) -> pd.DataFrame:
    """Per language, the unsteered and each method's test score in one direction."""
    table = _added(bench)
    table = table[table["direction"] == direction]
    out = []
    for lang in bench.langs:
        at = table[table["lang"] == lang]
        row: dict[str, object] = {"lang": lang}
        row["unsteered"] = at["unsteered_score"].iloc[0] if len(at) else math.nan
        for method in bench.methods:
            m = at[at["method"] == method]
            row[method] = m["score"].iloc[0] if len(m) else math.nan
        out.append(row)
    return pd.DataFrame(out)


def operator_table(bench: ForcingBenchmark) -> pd.DataFrame:
    """Per language and operator: the selected layer and strength and the test result."""
    table = bench.table()
    out = []
    for row in table.itertuples(index=False):
        out.append(
            {
                "lang": row.lang,
                "operator": row.operator,
                "layer": row.layer,
                "strength": f"{row.strength:g}",
                "control": row.control,
                "relevance": row.relevance,
                "score": row.score,
                "95% CI": f"[{row.score_low:.2f}, {row.score_high:.2f}]",
                "unsteered": row.unsteered_score,
            }
        )
    return pd.DataFrame(out)


def _control_table(control: ForcingBenchmark, study: ForcingBenchmark) -> pd.DataFrame:
    """Mean test score per method and direction on the control's languages, both models."""
    out = []
    langs = set(control.langs)
    for model, bench in ((control.model, control), (study.model, study)):
        table = _added(bench)
        table = table[table["lang"].isin(langs)]
        for method in control.methods:
            row: dict[str, object] = {"model": model, "method": method}
            for direction in control.directions:
                at = table[(table["method"] == method) & (table["direction"] == direction)]
                row[f"score {_DIRECTIONS[direction]}"] = at["score"].mean() if len(at) else math.nan
            out.append(row)
    return pd.DataFrame(out)


def _checks(folder: Path) -> list[RelevanceCheck]:
    """The saved relevance checks under ``folder`` (``forcing/validation``), study first."""
    return [RelevanceCheck.load(path) for sub in ("study", "control")
            for path in sorted((folder / sub).glob("*.json"))]  # fmt: skip


def validation_table(checks: list[RelevanceCheck]) -> pd.DataFrame:
    """Per model and language: the check's share in each direction, and its chance rate.

    ``share``: items whose parallel reference outscores another item's (passes at
    :data:`PASS_SHARE`); ``off-topic relevant``: how often that other item's reference
    would count as relevant (both directions; chance ``1 / (k + 1)``).
    """
    rows: dict[tuple[str, str], dict[str, object]] = {}
    off: dict[tuple[str, str], list[float]] = {}
    for check in checks:
        key = (check.model, check.lang)
        row = rows.setdefault(key, {"model": check.model, "lang": check.lang})
        row[f"share {_DIRECTIONS[check.direction]}"] = check.share
        off.setdefault(key, []).append(check.relevant_off)
    for key, row in rows.items():
        row["off-topic relevant"] = float(np.mean(off[key]))
    columns = ["model", "lang", *(f"share {d}" for d in _DIRECTIONS.values()),
               "off-topic relevant"]  # fmt: skip
    return pd.DataFrame(list(rows.values())).reindex(columns=columns)


def validation_finding(checks: list[RelevanceCheck]) -> str:
    """In how many (language, direction) cases each model's relevance check passes."""
    parts = []
    for model in dict.fromkeys(c.model for c in checks):
        mine = [c for c in checks if c.model == model]
        failed = [c for c in mine if c.share < PASS_SHARE]
        text = f"`{model}` passes in {len(mine) - len(failed)} of {len(mine)} cases"
        if failed:
            text += " and fails in " + ", ".join(
                f"{c.lang} {_DIRECTIONS[c.direction]} ({c.share:.2f})" for c in failed
            )
        parts.append(text)
    k = checks[0].settings["k"]
    return (
        f"The relevance scorer is the model under test, so each model's scorer is checked in "
        f"each of its languages (`validate_relevance`, k = {k}, on the {len(checks[0].ids)} "
        f"selection and test lines): it passes when the parallel reference outscores another "
        f"line's reference on at least {PASS_SHARE:.0%} of the lines. "
        + "; ".join(parts)
        + ". Where it fails, that language's relevance (and score) rests on a scorer that "
        "does not reliably tell a translation from an off-topic text."
    )


def _grid_words(bench: ForcingBenchmark) -> str:
    """The grid of a part in words."""
    strengths = "; ".join(
        f"{op} {', '.join(f'{x:g}' for x in values)}" for op, values in bench.strengths.items()
    )
    return (
        f"{len(bench.langs)} languages ({', '.join(bench.langs)}), "
        f"{' and '.join(_DIRECTIONS[d] for d in bench.directions)}, layers "
        f"{', '.join(str(x) for x in bench.layers)}, strengths {strengths}"
    )


def forcing_section(root: Path, img: Callable[[str], str]) -> tuple[str, dict[str, go.Figure]]:
    """The language-forcing section of the results page and its figures.

    Args:
        root: The study's run folder.
        img: Markdown image link of a figure name.
    """
    folder = root / "forcing"
    if not (folder / "methods.json").is_file():
        return f"{SECTION}\n\nThe `forcing` stage has not run in this run folder yet.\n", {}
    parts = {p: ForcingBenchmark.load(folder / f"{p}.json") for p in PARTS
             if (folder / f"{p}.json").is_file()}  # fmt: skip
    methods = parts["methods"]
    settings = methods.meta["settings"]
    compute_path = folder / "compute.json"
    compute = json.loads(compute_path.read_text(encoding="utf-8")) if compute_path.is_file() else {}
    figs: dict[str, go.Figure] = {"results_forcing_methods": plot_forcing(methods)}
    lowrank = lowrank_finding(methods)
    lines = [
        SECTION,
        "",
        "Language control × semantic relevance, after CLaS-Bench (arXiv 2601.08331; see "
        "`docs/forcing.md`): a continuation is *controlled* when seeded langdetect reads "
        "the intended language, and *relevant* when the unsteered model finds it likelier "
        f"after its own prompt than after any of k = {settings['k']} other prompts "
        "(chance 1/(k+1)) and it does not loop (at most half its token 3-grams repeat). "
        "The score is their harmonic mean. Per (language, direction, method, operator), "
        f"the (layer, strength) with the best score on FLORES devtest lines 0–"
        f"{settings['n_select'] - 1} is selected and then run on the next "
        f"{settings['n_test']} lines; vectors are fitted on the last {settings['n_fit']} "
        f"pairs; {settings['max_new_tokens']} greedy tokens per continuation. Scores are "
        f"test scores (95% bootstrap intervals in the figure).",
        "",
        f"**Methods** ({_grid_words(methods)}; every method with `add`, "
        f"‖αv‖/‖h‖ strengths, `from English` steering with −v):",
        "",
        markdown_table(method_table(methods), digits=3),
        "",
        diffmean_finding(methods),
        "",
        selection_finding(methods),
        "",
        *([lowrank, ""] if lowrank else []),
        img("results_forcing_methods"),
        "",
    ]
    for direction in methods.directions:
        lines += [
            f"Per language, {_DIRECTIONS[direction]} (test score):",
            "",
            markdown_table(language_table(methods, direction), digits=2),
            "",
        ]
    if "layers" in parts:
        curve = parts["layers"]
        figs["results_forcing_layers"] = plot_forcing_layers(
            curve, direction="from_english", method="mean_diff", operator="add"
        )
        frames = [
            curve.layer_curve(lang, "from_english", "mean_diff", "add").assign(lang=lang)
            for lang in curve.langs
        ]
        mean = pd.concat(frames).groupby("layer")["score"].mean()
        peak = int(mean.idxmax())
        lines += [
            f"**Layers** (`mean_diff`, `add`, from English; {_grid_words(curve)}): the best "
            f"selection score per layer, averaged over the languages, peaks at layer {peak} "
            f"({mean[peak]:.2f}; layer {int(mean.index[0])}: {mean.iloc[0]:.2f}, layer "
            f"{int(mean.index[-1])}: {mean.iloc[-1]:.2f}).",
            "",
            img("results_forcing_layers"),
            "",
        ]
    if "operators" in parts:
        ops = parts["operators"]
        lines += [
            f"**Operators** (`mean_diff`, from English; {_grid_words(ops)}; rotate in "
            "degrees away from v, clamp in multiples of ‖h‖):",
            "",
            markdown_table(operator_table(ops), digits=2),
            "",
        ]
    if "control" in parts:
        control = parts["control"]
        lines += [
            f"**Control model** `{control.model}` ({_grid_words(control)}) beside "
            f"`{methods.model}` on the same languages (mean test score):",
            "",
            markdown_table(_control_table(control, methods), digits=3),
            "",
        ]
    checks = _checks(folder / VALIDATION)
    if checks:
        lines += [
            "**Is the relevance measure valid here?** " + validation_finding(checks),
            "",
            markdown_table(validation_table(checks), digits=2),
            "",
        ]
    else:
        lines += ["The relevance checks (`validate_relevance`) have not run yet.", ""]
    if compute:
        sizes = {p: f"{len(b.to_frame())} cells" for p, b in parts.items()}
        sizes[VALIDATION] = f"{len(checks)} checks"
        lines += [
            "Compute (minutes, summed over invocations; cells shared between parts are run "
            "once): "
            + ", ".join(
                f"{p} {t / 60:.0f} ({sizes.get(p, 'unfinished')})" for p, t in compute.items()
            )
            + f"; {sum(compute.values()) / 60:.0f} in all.",
            "",
        ]
    return "\n".join(lines), figs
