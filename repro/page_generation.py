"""The generation part of ``docs/results.md``: MSVAMP, MGSM, language forcing, KL transfer.

Reads what :mod:`repro.generation` wrote into the study's run folder and
returns the page section (Markdown) and its figures; :func:`repro.page.write_results`
puts them on the page. Every number is computed from the run folder.
"""

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from interp_steer.analysis import HyperSelection, SweepResult, TransferResult
from interp_steer.fitting import check_hyper
from interp_steer.plotting import plot_sweep, plot_transfer
from repro.config import BASELINE_ROWS, SFT_NOTE, bipo_note, method_rows
from repro.tables import (
    gains_table,
    kl_tests,
    main_table,
    markdown_table,
    runs_frame,
    trained_ratios,
)
from repro.vectors import bipo_hyper

__all__ = [
    "DefaultName",
    "FLOOR",
    "NORM_FLOOR",
    "PAIRS_OF_INTEREST",
    "TASK_LABELS",
    "bipo_alpha_text",
    "bipo_defaults_text",
    "comparison_phrase",
    "default_frame",
    "default_text",
    "edge_note",
    "english_kl_part",
    "generation_findings",
    "generation_section",
    "hyper_table",
    "kl_cells",
    "kl_findings",
    "kl_table",
    "pairing_text",
    "transfer_lines",
    "whole_rows",
]

TASK_LABELS = {"msvamp": "MSVAMP", "mgsm": "MGSM", "forcing": "forcing (English %)"}
FLOOR = 15.0
"""Below this English accuracy (%) a math task is called at the model's floor."""
NORM_FLOOR = 0.005
"""The ‖v‖/‖h‖ issue #18 asks of a BiPO vector that learned (the paper's literal rate
reached ≤ 1.4e-5 on gemma-3-270m)."""

PAIRS_OF_INTEREST = (("es", "fr"), ("fr", "es"), ("es", "de"), ("ja", "zh"), ("zh", "ja"))
"""Transfers the paper names: within a family or script area (es→de/fr, ja↔zh)."""


def _summary(runs: pd.DataFrame, order: tuple[str, ...]) -> pd.DataFrame:
    """Mean over languages per row (method) and task; one column per task."""
    wide = runs.pivot_table(index="row", columns="task", values="accuracy", aggfunc="mean")
    wide = wide.reindex([r for r in order if r in wide.index])
    cols = [t for t in TASK_LABELS if t in wide.columns]
    return wide[cols].rename(columns=TASK_LABELS).reset_index().rename(columns={"row": "method"})


def whole_rows(runs: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Keep the rows that have every language of their task; also say what was left out.

    An interrupted table's last row would average fewer languages; the second value names
    what was left out, in words.

    >>> runs = pd.DataFrame({"task": "mgsm", "lang": ["de", "fr", "de", "de", "fr"],
    ...                      "row": ["basic", "basic", "xlt", "k_shot", "k_shot"]})
    >>> kept, left_out = whole_rows(runs)
    >>> sorted(set(kept["row"])), left_out
    (['basic', 'k_shot'], ['`xlt` on mgsm (1 of 2 languages)'])
    """
    keep = pd.Series(True, index=runs.index)
    left_out = []
    for task, sub in runs.groupby("task", sort=False):
        langs = set(sub.loc[sub["row"] == "basic", "lang"])
        for row, cells in sub.groupby("row", sort=False):
            if set(cells["lang"]) != langs:
                keep[cells.index] = False
                left_out.append(
                    f"`{row}` on {task} ({cells['lang'].nunique()} of {len(langs)} languages)"
                )
    return runs[keep], left_out


def _left_out(partial: list[str]) -> str:
    """A findings line naming the rows this run folder does not have for every language."""
    if not partial:
        return ""
    return (
        "- **Not complete in this run folder** (left out of the tables; `make results` "
        "resumes them): " + ", ".join(partial) + "."
    )


_LR_UNITS = {"coord": " × each coordinate's spread", "resid": " × ‖h‖", "none": ""}
"""How the page writes BiPO's ``lr`` under each ``lr_scale`` (``"none"``: absolute)."""


def hyper_table(path: Path) -> tuple[pd.DataFrame, HyperSelection] | None:
    """A saved BiPO hyper-parameter selection as a table (None without the file).

    One row per candidate: its value(s), chosen, ‖v‖, AdamW's effective rate, and the KL to
    English (nats, lower = closer) on the held-out selection pairs and on the test pairs.
    """
    if not path.is_file():
        return None
    sel = HyperSelection.load(path)
    f = sel.to_frame()
    table = pd.DataFrame({name: [f"{x:g}" if isinstance(x, float) else str(x) for x in f[name]]
                          for name in sel.names})  # fmt: skip
    table["chosen"] = np.where(f["chosen"], "✓", "")
    table["‖v‖"] = f["vector_norm"]
    table["AdamW rate"] = f["lr_effective"]
    table["select KL"] = -f["select_score"]
    table["test KL"] = -f["test_score"]
    return table, sel


def _hyper_text(found: tuple[pd.DataFrame, HyperSelection] | None, what: str, use: str) -> str:
    """The page's subsection of one BiPO hyper-parameter selection ('' without one)."""
    if found is None:
        return ""
    table, sel = found
    return (
        f"### BiPO's {what} (compared on held-out pairs)\n\n"
        f"Each candidate trained BiPO on the first {sel.meta['fit'].get('n', '?')} `train` "
        f"pairs of `{sel.lang}` at layer {sel.layer}, applied as trained (α = 1), and was "
        f"scored on held-out selection pairs ({sel.selection}; unsteered "
        f"{-sel.baseline[0]:.3f} nats) and on test pairs (unsteered "
        f"{-sel.test_baseline[0]:.3f}), which play no part in the choice. {use}"
        f"{edge_note(sel.names, sel.points, sel.chosen)}\n\n"
        f"{markdown_table(table, digits=3)}\n"
    )


DefaultName = Literal["lr", "epochs"]
"""The BiPO defaults the study compares on held-out pairs (``bipo_default_<name>`` stages)."""

_DEFAULT_WORDS = {"lr": ("learning rate", "rate"), "epochs": ("number of epochs", "number")}
"""How the page names each of BiPO's defaults compared on held-out pairs: the subsection's
noun, and the word for one candidate."""


def default_frame(frames: Mapping[str, pd.DataFrame], name: DefaultName = "lr") -> pd.DataFrame:
    """One value of a BiPO default for several languages: selections pooled, one chosen.

    ``frames``: language → its selection over ``name``
    (:meth:`~interp_steer.analysis.HyperSelection.to_frame`), all on the same grid. One
    row per value: each language's selection KL (nats), the mean over languages of the
    selection KL and of the test KL each relative to its language's unsteered KL (so each
    language weighs the same, whatever its KL), the worst language's relative selection KL,
    and ``chosen``: the lowest mean relative selection KL among the values that leave every
    language below its unsteered KL (worst < 1: a default should leave no language further
    from English), or, where no value does, the lowest mean (the first on ties). The test
    pairs play no part in the choice.

    >>> def frame(select, test):  # scores are -KL; unsteered KL 1 (selection) and 2 (test)
    ...     return pd.DataFrame({"lr": [1e-3, 1e-2], "select_score": select,
    ...                          "test_score": test, "select_unsteered": -1.0,
    ...                          "test_unsteered": -2.0})
    >>> f = default_frame({"sw": frame([-0.5, -0.2], [-1.0, -1.0]),
    ...                    "fr": frame([-0.9, -1.05], [-2.0, -2.0])})
    >>> f[["lr", "select: sw", "select: fr", "select / unsteered", "worst select / unsteered"]]
          lr  select: sw  select: fr  select / unsteered  worst select / unsteered
    0  0.001         0.5        0.90               0.700                      0.90
    1  0.010         0.2        1.05               0.625                      1.05
    >>> f["chosen"].tolist()  # 1e-2 has the lower mean, but takes fr above unsteered
    ['✓', '']
    """
    grids = {tuple(f[name].astype(float)) for f in frames.values()}
    if len(grids) != 1:
        raise ValueError(f"the languages' selections must share one grid of {name}, not {grids}")
    table = pd.DataFrame({name: list(grids.pop())})
    for lang, f in frames.items():
        table[f"select: {lang}"] = -f["select_score"].to_numpy()
    for part in ("select", "test"):
        ratios = [(f[f"{part}_score"] / f[f"{part}_unsteered"]).to_numpy() for f in frames.values()]
        table[f"{part} / unsteered"] = np.mean(ratios, axis=0)
        if part == "select":
            table["worst select / unsteered"] = np.max(ratios, axis=0)
    mean = table["select / unsteered"].to_numpy()
    safe = table["worst select / unsteered"].to_numpy() < 1.0
    best = int(np.argmin(np.where(safe, mean, np.inf) if safe.any() else mean))  # first on ties
    table["chosen"] = np.where(table.index == best, "✓", "")
    return table


def default_text(root: Path, langs: Sequence[str], name: DefaultName = "lr") -> str:
    """The subsection choosing one of the library's BiPO defaults ('' without any language).

    ``name``: ``"lr"`` (the ``bipo_default_lr`` stage) or ``"epochs"``
    (``bipo_default_epochs``). ``gen_bipo_default_<name>/<lang>.json`` for each of
    ``langs`` that has one, pooled by :func:`default_frame`; the text says whether the
    value chosen is the library's default today, and which languages are still missing.
    """
    folder = root / f"gen_bipo_default_{name}"
    sels = [HyperSelection.load(folder / f"{lang}.json") for lang in langs
            if (folder / f"{lang}.json").is_file()]  # fmt: skip
    if not sels:
        return ""
    noun, word = _DEFAULT_WORDS[name]
    table = default_frame({sel.lang: sel.to_frame() for sel in sels}, name)
    for sel in sels:  # before the last column, "chosen"
        points = sel.meta.get("points") or [{} for _ in sel.points]
        table.insert(len(table.columns) - 1, f"‖v‖/‖h‖: {sel.lang}",
                     [_trained_ratio(p) for p in points])  # fmt: skip
    default = check_hyper("bipo", {})
    chosen = int(np.flatnonzero(table["chosen"] == "✓")[0])
    best = float(table[name].iloc[chosen])

    def above(row: int) -> list[str]:  # not below unsteered, as default_frame's rule says
        return [sel.lang for sel in sels if table[f"select: {sel.lang}"][row] >= -sel.baseline[0]]

    over = above(chosen)
    worse = (
        f" No {word} tried leaves every language below unsteered; at this one "
        f"{', '.join(over)} is above."
        if over
        else ""
    )
    tests = [(sel.lang, -sel.test[chosen, 0], -sel.test_baseline[0]) for sel in sels]
    test_over = [f"{lang} ({kl:.3f} against {base:.3f} nats)" for lang, kl, base in tests
                 if kl > base]  # fmt: skip
    if test_over:
        worse += f" On the test pairs at this {word}, above unsteered: {', '.join(test_over)}."
    ratio = table["select / unsteered"]
    margin = ""
    if len(table) > 1:
        runner = ratio.drop(index=chosen).idxmin()
        margin = f" Its mean relative selection KL is {ratio[chosen]:.3f}"
        if ratio[runner] < ratio[chosen]:
            margin += (
                f"; `{name}` {table[name][runner]:g} has a lower mean ({ratio[runner]:.3f}) "
                f"but leaves {', '.join(above(runner))} above unsteered."
            )
        else:
            margin += (
                f", against {ratio[runner]:.3f} for the next best "
                f"(`{name}` {table[name][runner]:g})."
            )
    table[name] = [f"{x:g}" for x in table[name]]  # 3e-4 is not 0.000
    value = default[name]
    agree = "is" if best == value else f"is {best:g}, not"
    own = ", ".join(f"{sel.lang} {float(sel.best[name]):g}" for sel in sels)
    missing = [lang for lang in langs if lang not in {sel.lang for sel in sels}]
    left = f" Not run yet in {', '.join(missing)}: the choice may change." if missing else ""
    layers = ", ".join(f"{sel.lang} {sel.layer}" for sel in sels)
    n = sels[0].meta["fit"].get("n", "?")
    scale = _LR_UNITS[default["lr_scale"]]
    schedule = (
        f"one epoch over the first {n} `train` pairs; `lr`{scale}"
        if name == "lr"
        else f"`lr` {default['lr']:g}{scale}, over the first {n} `train` pairs; the cosine "
        "schedule spans all the epochs"
    )
    return (
        f"### BiPO's default {noun} (compared on held-out pairs)\n\n"
        f"In each language, each candidate trained BiPO with every other hyper-parameter at "
        f"the library's default, so on the default's own schedule ({schedule}), at the "
        f"language's selected layer ({layers}), applied as trained (α = 1), and was scored "
        "by its KL to English (nats, lower = closer) on held-out selection pairs — "
        f"{sels[0].selection} — and on test pairs, which play no part in the choice; "
        "‖v‖/‖h‖ is each vector's length as trained, relative to the mean residual norm at "
        f"its layer. One {word} is chosen for all the languages: the lowest mean over them of "
        "the selection KL relative to the language's unsteered KL (so that each language "
        f"weighs the same) among the {word}s that leave every language below unsteered "
        f"(alone, each language would choose: {own}). The {word} chosen here {agree} the "
        f"library's default (`{name}` {value:g}).{margin}{worse}"
        f"{edge_note((name,), sels[0].points, chosen)}{left}\n\n"
        f"{markdown_table(table, digits=3)}\n"
    )


def pairing_text(folder: Path) -> str:
    """The subsection comparing BiPO's pairings per language ('' without any saved language).

    ``folder``: ``gen_bipo_pairing/``, one :class:`~interp_steer.analysis.HyperSelection`
    per language (``<lang>.json``) over ``pairing``. KL to English in nats on each
    language's selection pairs and test pairs, unsteered and under each pairing's vector.
    """
    sels = [HyperSelection.load(p) for p in sorted(folder.glob("*.json"))]
    if not sels:
        return ""
    names = [str(p["pairing"]) for p in sels[0].points]
    rows = []
    for sel in sels:
        f = sel.to_frame().set_index("pairing")  # scores are -KL
        rows.append({
            "lang": sel.lang,
            "layer": sel.layer,
            "select: unsteered": -float(f["select_unsteered"].iloc[0]),
            **{f"select: {x}": -float(f.loc[x, "select_score"]) for x in names},
            "test: unsteered": -float(f["test_unsteered"].iloc[0]),
            **{f"test: {x}": -float(f.loc[x, "test_score"]) for x in names},
            **{f"‖v‖/‖h‖: {x}": _trained_ratio(p) for x, p in
               zip(names, sel.meta.get("points") or [{} for _ in names], strict=True)},
            "chosen": ", ".join(f.index[f["chosen"]]),
        })  # fmt: skip
    table = pd.DataFrame(rows)
    counts = "; ".join(
        f"`{x}` wins the selection in {int((table['chosen'] == x).sum())} and is below "
        f"unsteered on the test pairs in "
        f"{int((table[f'test: {x}'] < table['test: unsteered']).sum())}"
        for x in names
    )
    numeric = [c for c in table.columns if c not in ("lang", "layer", "chosen")]
    summary = [
        {"lang": name, "layer": "", **{c: float(getattr(table[c], name)()) for c in numeric},
         "chosen": ""}
        for name in ("mean", "median")
    ]  # fmt: skip
    table = pd.concat([table, pd.DataFrame(summary)])
    sel = sels[0]
    return (
        "### BiPO's pairing (compared on held-out pairs, per language)\n\n"
        "In each language, each pairing trained BiPO on the first "
        f"{sel.meta['fit'].get('n', '?')} `train` pairs at the language's selected layer and "
        "the study's rate and epochs, applied as trained (α = 1), and was scored by its KL to "
        f"English (nats, lower = closer) on selection pairs — {sel.selection} — "
        "and on test pairs, which play no part in the choice; ‖v‖/‖h‖ is each vector's length "
        "as trained, relative to the mean residual norm at its layer. One language whose "
        "vector overshoots can dominate the mean, so the median is given too. The study's "
        f"vectors keep the `copy` pairing. Of {len(sels)} languages, {counts}.\n\n"
        f"{markdown_table(table, digits=3)}\n"
    )


def _trained_ratio(point: Mapping[str, Any]) -> float:
    """``‖v‖/‖h‖`` of a grid point's vector as trained, from a HyperSelection's ``meta``.

    NaN where the point's meta lacks the norms (a failed point).

    >>> _trained_ratio({"vector_norm": 20.0, "fit_metrics": {"resid_norm": 2000.0}})
    0.01
    >>> _trained_ratio({"failed": {}})
    nan
    """
    metrics = point.get("fit_metrics") or {}
    if "vector_norm" not in point or not metrics.get("resid_norm"):
        return float("nan")
    return float(point["vector_norm"]) / float(metrics["resid_norm"])


_LOWEST = {"epochs": 1, "batch_size": 1, "warmup_steps": 0}
"""The smallest value each of these hyper-parameters can take: a grid's choice there is not
at an edge that a smaller value could move past."""


def edge_note(names: Sequence[str], points: Sequence[Mapping[str, Any]], chosen: int | None) -> str:
    """A sentence when a one-name numeric grid's choice is its smallest or largest value.

    Not at the smallest where that is the value's lowest possible (:data:`_LOWEST`: there
    is no fewer than one epoch).

    ``names``, ``points`` and ``chosen`` as in a :class:`~interp_steer.analysis.HyperSelection`.

    >>> edge_note(("lr",), [{"lr": 1e-4}, {"lr": 1e-3}], 1)
    ' The choice is the largest `lr` tried: a larger one might do better still.'
    >>> lrs = [{"lr": 1e-4}, {"lr": 3e-4}, {"lr": 1e-3}]
    >>> edge_note(("lr",), lrs, 1), edge_note(("pairing",), [{"pairing": "copy"}], 0)
    ('', '')
    >>> edge_note(("epochs",), [{"epochs": 1}, {"epochs": 2}], 0)  # none is smaller than 1
    ''
    """
    if len(names) != 1 or chosen is None:
        return ""
    values = [p[names[0]] for p in points]
    if len(values) < 2 or not all(isinstance(v, int | float) for v in values):
        return ""
    if values[chosen] == max(values):
        return f" The choice is the largest `{names[0]}` tried: a larger one might do better still."
    if values[chosen] == min(values) and values[chosen] > _LOWEST.get(names[0], -np.inf):
        return (
            f" The choice is the smallest `{names[0]}` tried: a smaller one might do better still."
        )
    return ""


def kl_cells(root: Path) -> dict[str, dict[str, list[float]]] | None:
    """``{lang: {row: per-pair KL}}`` of ``gen_kl.json`` (None without the file)."""
    path = root / "gen_kl.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    data.pop("settings", None)  # what the cells were computed with, not a language
    return {lang: {r: cell["kl"] for r, cell in cells.items()} for lang, cells in data.items()}


def kl_table(root: Path) -> pd.DataFrame | None:
    """Mean KL to English (nats, lower = closer) per language and row from ``gen_kl.json``."""
    cells = kl_cells(root)
    if cells is None:
        return None
    rows = {
        lang: {r: float(np.mean(kl)) for r, kl in by_row.items()} for lang, by_row in cells.items()
    }
    table = pd.DataFrame(rows).T
    table.loc["mean"] = table.mean()
    return table.reset_index().rename(columns={"index": "lang"})


def transfer_lines(transfer: TransferResult) -> list[str]:
    """The diagonal, the off-diagonal and the paper's named pairs, in nats of KL removed."""
    gain = np.asarray(transfer.gain)
    src, tgt = list(transfer.sources), list(transfer.targets)
    diag = [gain[i, tgt.index(x)] for i, x in enumerate(src) if x in tgt]
    off = [gain[i, j] for i, s in enumerate(src) for j, t in enumerate(tgt) if s != t]
    named = [
        f"{a}→{b} {gain[src.index(a), tgt.index(b)]:+.3f}"
        for a, b in PAIRS_OF_INTEREST
        if a in src and b in tgt
    ]
    lines = [f"own language {np.mean(diag):+.3f} nats removed on average"]
    if off:
        lines[0] += (
            f", another language {np.mean(off):+.3f} ({int(np.sum(np.asarray(off) > 0))} of "
            f"{len(off)} off-diagonal cells reduce the KL)"
        )
    if named:
        lines.append("the pairs the paper names: " + ", ".join(named))
    return lines


def _task_line(runs: pd.DataFrame, task: str, rows: list[str]) -> str:
    """One math task's finding: every row's mean, significance counts, the floor."""
    mean = runs.groupby(["task", "row"])["accuracy"].mean()
    sub = runs[(runs["task"] == task) & runs["row"].isin(rows)]
    steered = sub[~sub["row"].isin(BASELINE_ROWS)]
    prompted = sub[sub["row"].isin(BASELINE_ROWS) & (sub["row"] != "basic")]
    line = (
        f"- **{TASK_LABELS[task]}.** "
        + ", ".join(f"`{r}` {mean[task, r]:.1f}%" for r in rows if (task, r) in mean)
        + f" (mean over {sub['lang'].nunique()} languages, {int(sub['n'].max())} items "
        f"each); {int((steered['p_value'] < 0.05).sum())} of {len(steered)} steered runs "
        f"and {int((prompted['p_value'] < 0.05).sum())} of {len(prompted)} prompting-baseline "
        "runs differ significantly from `basic`."
    )
    if (task, "translate_test") not in mean:
        return line
    english = mean[task, "translate_test"]
    if english < FLOOR:
        return line + (
            f" Even in English (`translate_test`) the model solves {english:.1f}%: the task is "
            "at its floor, so it cannot show a steering gain."
        )
    return line + f" The English headroom is {english - mean[task, 'basic']:+.1f} points."


def comparison_phrase(tests: pd.DataFrame, row: str, vs: str) -> str:
    """One comparison of :func:`~repro.tables.kl_tests` in words.

    >>> t = pd.DataFrame({"row": "bipo", "vs": "basic", "lang": ["de", "fr", "pooled"],
    ...                   "diff (nats)": [-0.2, 0.01, -0.1], "95% CI": "[-0.150, -0.050]",
    ...                   "p_value": [0.001, 0.6, 0.01]})
    >>> print(comparison_phrase(t, "bipo", "basic"))  # doctest: +ELLIPSIS
    `bipo` − `basic`: -0.100 nats pooled [-0.150, -0.050], p = 0.01; ... 1 and further in 0 of 2 ...
    """
    sub = tests[(tests["row"] == row) & (tests["vs"] == vs)]
    per = sub[sub["lang"] != "pooled"]
    sig = per[per["p_value"] < 0.05]
    closer, further = int((sig["diff (nats)"] < 0).sum()), int((sig["diff (nats)"] > 0).sum())
    pooled = sub[sub["lang"] == "pooled"]
    head = f"`{row}` − `{vs}`"
    if len(pooled):
        p = pooled.iloc[0]
        head += f": {p['diff (nats)']:+.3f} nats pooled {p['95% CI']}, p = {p['p_value']:.2g}"
    return (
        f"{head}; significantly closer to English in {closer} and further in {further} of "
        f"{len(per)} languages"
    )


def kl_findings(kl: pd.DataFrame | None, tests: pd.DataFrame | None) -> list[str]:
    """The findings lines on EnglishKL: every row's mean on held-out pairs, then pair by pair.

    ``kl``: :func:`kl_table`; ``tests``: :func:`~repro.tables.kl_tests` (either may be None).
    """
    lines: list[str] = []
    if kl is not None:
        by_lang = kl.set_index("lang")
        kl_mean, per_lang = by_lang.loc["mean"], by_lang.drop(index="mean")
        kl_rows = [c for c in kl.columns if c not in ("lang", "basic")]
        below = {r: int((per_lang[r] < per_lang["basic"]).sum()) for r in kl_rows}
        lines.append(
            f"- **Methods on held-out pairs.** Mean KL to English on MSVAMP `eval` pairs: "
            f"{kl_mean['basic']:.3f} nats unsteered, "
            + ", ".join(f"`{r}` {kl_mean[r]:.3f}" for r in kl_rows)
            + f"; lowest: `{kl_mean[kl_rows].idxmin()}`. Below unsteered in "
            + ", ".join(f"`{r}` {n} of {len(per_lang)}" for r, n in below.items())
            + " languages."
            + (
                " Further from English than unsteered: " + ", ".join(f"`{r}`" for r in worse) + "."
                if (worse := [r for r in kl_rows if kl_mean[r] > kl_mean["basic"]])
                else ""
            )
        )
    if tests is not None and len(tests):
        pairs = dict.fromkeys(zip(tests["row"], tests["vs"], strict=True))
        lines.append(
            "- **Pair by pair** (KL, sign test p < 0.05). "
            + "; ".join(comparison_phrase(tests, row, vs) for row, vs in pairs)
            + "."
        )
    return lines


def generation_findings(
    runs: pd.DataFrame,
    sweep: SweepResult,
    transfer: TransferResult,
    rows: tuple[str, ...],
    trained: dict[str, tuple[float, float]],
    kl: pd.DataFrame | None = None,
    tests: pd.DataFrame | None = None,
) -> str:
    """Plain-language findings of the generation part, every number computed.

    ``rows``: the rows present, in page order; ``trained``: the smallest and largest
    ‖v‖/‖h‖ of each method applied as trained (α = 1); ``kl`` and ``tests``: the mean KL
    per row and the paired tests (:func:`~repro.tables.kl_tests`).
    """
    mean = runs.groupby(["task", "row"])["accuracy"].mean()
    lines = [_task_line(runs, t, list(rows)) for t in ("msvamp", "mgsm") if (t, "basic") in mean]
    f = runs[runs["task"] == "forcing"]
    steered_rows = [r for r in rows if r not in BASELINE_ROWS and ("forcing", r) in mean]
    if len(f) and ("forcing", "basic") in mean:
        parts = []
        for r in steered_rows:
            s = f[f["row"] == r]
            up = int(((s["p_value"] < 0.05) & (s["gain"] > 0)).sum())
            parts.append(
                f"`{r}` {mean['forcing', r]:.1f}% (significantly more English in {up} of "
                f"{len(s)} languages)"
            )
        lines.append(
            "- **Language forcing.** Continuations that langdetect reads as English: "
            f"{mean['forcing', 'basic']:.1f}% unsteered; "
            + ", ".join(parts)
            + ". This is the other side of the same vectors: they move what the model "
            "writes towards English even where they do not change what it gets right."
        )
    for m, (low, high) in trained.items():
        if m in set(runs["row"]):
            cells = runs[runs["row"] == m]
            top = cells.iloc[int(cells["gain"].abs().to_numpy().argmax())]
            lines.append(
                f"- **`{m}` as trained** (α = 1) has ‖v‖/‖h‖ from {low:.1e} to {high:.1e} over "
                f"languages; its largest change from `basic` in any cell is "
                f"{top['gain']:+.0f} points ({top['task']}, {top['lang']})."
            )
    sel = pd.DataFrame([sweep.best(x) for x in sweep.langs])
    lines.append(
        "- **Closer to English.** The KL between the native and the English prompt's "
        f"next-token prediction goes from {-sweep.baseline[:, 0].mean():.3f} nats unsteered "
        f"to {-sel['score'].mean():.3f} at the selected cells (held-out train pairs, mean "
        f"over languages; {int((sel['gain'] > 0).sum())} of {len(sel)} languages closer)."
        + (
            f" {weakest} of {len(sel)} languages chose the grid's weakest strength "
            f"({min(sweep.strengths):g}), so weaker ones may be closer still."
            if (weakest := int((sel["strength"] == min(sweep.strengths)).sum())) > len(sel) / 2
            else ""
        )
    )
    lines += kl_findings(kl, tests)
    lines.append("- **Transfer.** " + "; ".join(transfer_lines(transfer)) + ".")
    return "\n".join(lines)


def bipo_defaults_text(
    root: Path, cells: Mapping[str, Mapping[str, Sequence[float]]] | None
) -> str:
    """The subsection on BiPO with the library's defaults ('' without its file or KL cells).

    ``cells``: :func:`kl_cells`, whose ``basic`` rows are the unsteered side of each test
    and whose ``mean_diff`` rows (where present) the other side of a second one.
    """
    path = root / "gen_bipo_defaults.json"
    if cells is None or not path.is_file():
        return ""
    data = json.loads(path.read_text(encoding="utf-8"))
    hyper = data.pop("settings")["hyper"]
    langs = [x for x in data if "basic" in cells.get(x, {})]
    if not langs:
        return ""
    row = "bipo (defaults)"
    kl = {x: {row: data[x]["kl"], **{k: v for k, v in cells[x].items()
                                     if k in ("basic", "mean_diff")}} for x in langs}  # fmt: skip
    tests = kl_tests(kl, ((row, "basic"), (row, "mean_diff")))
    vs = {k: tests[tests["vs"] == k].set_index("lang") for k in ("basic", "mean_diff")}
    md = [x for x in langs if x in vs["mean_diff"].index]
    against_md = vs["mean_diff"].reindex(langs)  # NaN where a language has no mean_diff
    table = pd.DataFrame(
        {
            "lang": langs,
            "‖v‖/‖h‖": [data[x]["norm_ratio"] for x in langs],
            "unsteered": [float(np.mean(kl[x]["basic"])) for x in langs],
            row: [float(np.mean(data[x]["kl"])) for x in langs],
            **{k: [vs["basic"].loc[x, k] for x in langs] for k in ("95% CI", "lower", "p_value")},
            "mean_diff": [
                float(np.mean(kl[x]["mean_diff"])) if x in md else np.nan for x in langs
            ],  # fmt: skip
            "bipo − mean_diff": against_md["diff (nats)"].to_numpy(),
            "95% CI (vs mean_diff)": against_md["95% CI"].fillna("").to_numpy(),
            "p (vs mean_diff)": against_md["p_value"].to_numpy(),
        }
    )
    below = int((table[row] < table["unsteered"]).sum())
    per = vs["basic"].drop(index="pooled", errors="ignore")
    sig = int(((per["p_value"] < 0.05) & (per["diff (nats)"] < 0)).sum())
    ratios = table["‖v‖/‖h‖"]
    against = ""
    if md:
        closer = int((against_md["diff (nats)"] < 0).sum())
        against = (
            f" Against `mean_diff` at its selected strength it is closer to English in {closer}"
            f" of {len(md)}"
        )
        if "pooled" in vs["mean_diff"].index:
            pooled = vs["mean_diff"].loc["pooled"]
            against += (f" (pooled: {pooled['diff (nats)']:+.3f} nats, 95% CI "
                        f"{pooled['95% CI']})")  # fmt: skip
        against += "."
    scale = _LR_UNITS[hyper.get("lr_scale", "resid")]  # files from before lr_scale: resid
    return (
        "### BiPO with the library's defaults\n\n"
        f'`fit_vector(method="bipo")` with no hyper-parameter given (`lr` {hyper["lr"]:g}'
        f"{scale}, {hyper['epochs']} epoch(s), {hyper['warmup_steps']} warm-up "
        f"steps, batch {hyper['batch_size']}), fitted on each language's `train` pairs above "
        "at its selected layer and applied as trained (α = 1), on the same `eval` pairs "
        "(95% CI of the difference from unsteered; `lower`: pairs closer to English than "
        "unsteered; exact sign test; then the same test against `mean_diff`, whose "
        "difference is negative where BiPO is closer to English)."
        f" Its mean KL is below unsteered in {below} of {len(langs)} "
        f"languages, significantly in {sig}; ‖v‖/‖h‖ is {ratios.min():.4f} to "
        f"{ratios.max():.4f}.{against}\n\n{markdown_table(table, digits=3)}\n"
    )


def bipo_alpha_text(root: Path, cells: Mapping[str, Mapping[str, Sequence[float]]] | None) -> str:
    """The subsection on BiPO's default vector around α = 1 ('' without its file or cells).

    ``cells``: :func:`kl_cells`, whose ``basic`` rows are the unsteered side of each test.
    """
    path = root / "gen_bipo_alpha.json"
    if cells is None or not path.is_file():
        return ""
    data = json.loads(path.read_text(encoding="utf-8"))
    settings = data.pop("settings")
    langs = [x for x in data if "basic" in cells.get(x, {})]
    if not langs:
        return ""
    alphas = [float(a) for a in settings["alphas"]]
    row = "bipo (α chosen)"
    tests = kl_tests({x: {row: data[x]["kl"], "basic": cells[x]["basic"]} for x in langs},
                     ((row, "basic"),)).set_index("lang")  # fmt: skip
    chosen = [float(data[x]["alpha"]) for x in langs]
    table = pd.DataFrame(
        {
            "lang": langs,
            "select: unsteered": [data[x]["select_unsteered"] for x in langs],
            **{
                f"select: α={a:g}": [data[x]["select"][i] for x in langs]
                for i, a in enumerate(alphas)
            },  # fmt: skip
            "α": [f"{a:g}" for a in chosen],
            "‖αv‖/‖h‖": [a * data[x]["norm_ratio"] for a, x in zip(chosen, langs, strict=True)],
            "test: unsteered": [float(np.mean(cells[x]["basic"])) for x in langs],
            f"test: {row}": [float(np.mean(data[x]["kl"])) for x in langs],
            **{k: [tests.loc[x, k] for x in langs] for k in ("95% CI", "lower", "p_value")},
        }
    )
    below = table[f"test: {row}"] < table["test: unsteered"]
    long = table["‖αv‖/‖h‖"] >= NORM_FLOOR
    return (
        "### BiPO's default vector around α = 1\n\n"
        "The same vectors (trained with the defaults) at α = "
        + ", ".join(f"{a:g}" for a in alphas)
        + f", scored on the selection pairs ({settings['select']}); the α with the lowest "
        "selection KL is then scored on the `eval` pairs above (95% CI of the difference "
        "from unsteered; `lower`: pairs closer to English than unsteered; exact sign test). "
        f"At the chosen α the KL is below unsteered in {int(below.sum())} of {len(langs)} "
        f"languages, and ‖αv‖/‖h‖ ≥ {NORM_FLOOR:g} (the length the issue asks of a "
        f"vector that learned) holds in {int(long.sum())}; both hold in "
        f"{int((below & long).sum())}.\n\n{markdown_table(table, digits=3)}\n"
    )


def english_kl_part(
    root: Path, cfg: Mapping[str, Any]
) -> tuple[str, pd.DataFrame | None, pd.DataFrame | None]:
    """The EnglishKL subsections, the mean KL table and its paired tests.

    The subsections: every method on held-out `eval` pairs (with the paired tests), BiPO
    with the library's defaults and around α = 1, and BiPO's learning-rate, epochs and
    pairing selections; each is left out while its file is missing.
    """
    kl = kl_table(root)
    cells = kl_cells(root)
    tests = kl_tests(cells) if cells else None
    kl_text = (
        ""
        if kl is None
        else "### Every method by EnglishKL (MSVAMP `eval` pairs)\n\n"
        f"KL to English in nats (lower = closer), mean over the first {cfg['n_gen_kl']} "
        "`eval` pairs of each language (never fitted or selected on), each method fitted "
        "on the same `train` pairs and applied at the selected layer and strength (`mse` "
        "and `bipo` as trained, α = 1; `sft` under its LoRA adapter):\n\n"
        f"{markdown_table(kl, digits=3)}\n"
        + (
            ""
            if tests is None or not len(tests)
            else "\nPaired on the same pairs (`diff` = row − vs, mean nats; negative: the row "
            "is closer to English; 95% bootstrap interval with pairs resampled within each "
            "language; `lower`: pairs where the row is closer; exact sign test):\n\n"
            f"{markdown_table(tests, digits=3)}\n"
        )
    )
    parts = (
        kl_text,
        bipo_defaults_text(root, cells),
        bipo_alpha_text(root, cells),
        default_text(root, cfg.get("bipo_default_lr_langs", ()), "lr"),
        default_text(root, cfg.get("bipo_default_lr_langs", ()), "epochs"),
        _hyper_text(
            hyper_table(root / "gen_bipo_lr.json"),
            "learning rate",
            "The rate with the lowest selection KL (× the layer's mean residual norm) is used for "
            "every BiPO vector of the study.",
        ),
        _hyper_text(
            hyper_table(root / "gen_bipo_epochs.json"),
            "epochs",
            "At the chosen rate; the number of epochs with the lowest selection KL is used for "
            "every BiPO vector of the study.",
        ),
        pairing_text(root / "gen_bipo_pairing"),
    )
    text = "\n".join(part for part in parts if part)  # a blank line ends each table
    return text, kl, tests


def _fitting_intro(cfg: Mapping[str, Any]) -> str:
    """How the part's vectors are fitted and their layer and strength selected."""
    fit_lo, sel_lo = 500, 500 + cfg["n_gen_fit"]
    return f"""As in the paper, each language's vectors are fitted on MSVAMP pairs: the first
{cfg["n_gen_fit"]} of the `train` half (items {fit_lo}–{sel_lo - 1}). The layer and
strength are selected on the next {cfg["n_gen_select"]} `train` pairs (items
{sel_lo}–{sel_lo + cfg["n_gen_select"] - 1}), which no vector saw, by how close the model's
answer comes to its answer in English: the KL between the next-token distributions after
`Question: <native question> Answer: The answer is` (steered) and the same prompt with the
English question (`EnglishKL`, score = minus the KL in nats)."""


def _selection_text(sweep: SweepResult, img: Callable[[str], str]) -> str:
    """The subsection on the selected layer and strength per language, with its figure."""
    selection = pd.DataFrame([{"lang": x, **sweep.best(x)} for x in sweep.langs])
    return f"""### Layer and strength selection (EnglishKL on held-out MSVAMP train pairs)

{markdown_table(selection, digits=3)}

{img("results_gen_sweep")}
"""


def _partial_section(
    root: Path, img: Callable[[str], str], cfg: Mapping[str, Any]
) -> tuple[str, dict[str, go.Figure]]:
    """The part's section before its test rows have run: what has (empty if nothing has)."""
    if not (root / "gen_sweep.json").is_file():
        return "", {}
    sweep = SweepResult.load(root / "gen_sweep.json")
    kl_text, kl, tests = english_kl_part(root, cfg)
    findings = "\n".join(kl_findings(kl, tests))
    try:
        rows = f" {bipo_note(bipo_hyper(root))} on the same {cfg['n_gen_fit']} `train` pairs."
    except FileNotFoundError:  # BiPO's rate or epochs not chosen yet
        rows = ""
    if "sft" in cfg.get("gen_kl_methods", ()):
        rows += f" {SFT_NOTE} on the same pairs."
    text = f"""## Generation tasks: MSVAMP-fitted vectors, {len(sweep.langs)} languages

**Not complete in this run folder.** The test rows (MSVAMP, MGSM and language forcing under
every baseline and method) and the transfer matrix have not run yet; the layer and strength
selection, every method's KL to English on held-out pairs and BiPO's own comparisons have,
and are below.

{_fitting_intro(cfg)}{rows}

{findings}

{kl_text}
{_selection_text(sweep, img)}"""
    return text, {"results_gen_sweep": plot_sweep(sweep)}


def generation_section(
    root: Path, img: Callable[[str], str], methods: tuple[str, ...], cfg: dict[str, Any]
) -> tuple[str, dict[str, go.Figure]]:
    """The Markdown section and its figures (name → figure).

    Before the part's last stage has run the section holds what has (its EnglishKL and
    selection subsections), and says so; it is empty if none of the part has run.
    """
    if not (root / "gen_transfer.json").is_file():
        return _partial_section(root, img, cfg)
    sweep = SweepResult.load(root / "gen_sweep.json")
    transfer = TransferResult.load(root / "gen_transfer.json")
    runs, partial = whole_rows(runs_frame(root / "gen_eval", ("task", "lang")))
    present = set(runs["row"])
    order = tuple(r for r in (*BASELINE_ROWS, *method_rows(methods)) if r in present)
    steered = tuple(r for r in order if r not in BASELINE_ROWS)
    shots = "k" if "k_shot" not in present else int(runs[runs["row"] == "k_shot"]["k"].max())
    figs = {"results_gen_sweep": plot_sweep(sweep), "results_gen_transfer": plot_transfer(transfer)}
    per_task = []
    for task, label in TASK_LABELS.items():
        sub = runs[runs["task"] == task]
        if not len(sub):
            continue
        rows = order if task != "forcing" else ("basic", *steered)
        per_task.append(
            f"### {label}\n\n{markdown_table(main_table(sub, rows))}\n\n"
            f"Gains over `basic` (points), McNemar's exact test:\n\n"
            f"{markdown_table(gains_table(sub, rows), digits=3)}"
        )
    kl_text, kl, tests = english_kl_part(root, cfg)
    trained = trained_ratios(root / "gen_vectors", methods)
    findings = "\n".join(
        line
        for line in (
            generation_findings(runs, sweep, transfer, order, trained, kl, tests),
            _left_out(partial),
        )
        if line
    )
    sft_note = f" {SFT_NOTE} on the same pairs." if "sft" in methods else ""
    text = f"""## Generation tasks: MSVAMP-fitted vectors, {len(sweep.langs)} languages

{_fitting_intro(cfg)} Accuracy cannot rank the
cells: the model solves almost no problem. Tests:
the first {cfg["n_gen_test"]} items of MSVAMP's `eval` half (items 0–499, disjoint from
`train`) and the first {cfg["n_gen_test"]} MGSM items, by greedy decoding of at most
{cfg["gen_tokens"]} new tokens (prompt: the question and "Let's think step by step."),
and language forcing on {cfg["n_forcing"]} FLORES sentences per language (the share of
32-token continuations that langdetect reads as English). Rows: the prompting baselines
of the XCOPA table (`self_translate`: the model first translates the question into
English; `xlt`; `k_shot`: {shots} of MGSM's worked exemplars in the language, which
MSVAMP borrows as it has none) and every fitting method, added at every position.
`mse` and `bipo` are applied as trained (α = 1). {bipo_note(bipo_hyper(root))} on the same
{cfg["n_gen_fit"]} `train` pairs (the paper trains on 1000 per language; MSVAMP's `train`
half has 500, the last {500 - cfg["n_gen_fit"]} held out for selection).{sft_note}
Forcing has only `basic` and the steered rows: the other baselines change the prompt, not
the model.

{findings}

Mean over languages (accuracy %; forcing: English %):

{markdown_table(_summary(runs, order))}

{(chr(10) * 2).join(per_task)}

{kl_text}
{_selection_text(sweep, img)}
### Transfer between the {len(sweep.langs)} languages

Each language's vector (rows) on each language's MSVAMP `eval` pairs (columns), at layer
{transfer.layer} and ‖αv‖/‖h‖ = {transfer.strength:g}; cell = nats of KL to English removed
(positive = the prompt's prediction moves towards the English prompt's).

{img("results_gen_transfer")}
"""
    return text, figs
