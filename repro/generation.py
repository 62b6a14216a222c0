"""The study's generation part: MSVAMP-fitted vectors for the nine MSVAMP languages.

As the paper does, each language's vectors are fitted on MSVAMP pairs (the ``"train"``
half, items 500–999) and tested on MSVAMP (the ``"eval"`` half, items 0–499), on MGSM and on
language forcing. The layer and strength are selected on held-out ``train`` pairs that no
vector was fitted on. The selection metric is :class:`~interp_steer.analysis.EnglishKL`
(how close the steered prompt's next-token prediction comes to the English prompt's), not
accuracy: a 270M base model solves almost no math problem in any language, so accuracy
cannot rank the cells. The transfer matrix of the nine vectors uses the same metric on
``eval`` pairs, and so does the comparison of every fitting method (``gen_kl``). Called by
:func:`repro.run.run_study`; files land in the study's run folder
(``gen_sweep*``, ``gen_vectors/``, ``gen_eval/``, ``gen_transfer*``, ``gen_kl.json``).
"""

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from interp_steer.analysis import (
    EnglishKL,
    evaluator_settings,
    layer_sweep,
    model_settings,
    transfer_matrix,
)
from interp_steer.data import available_languages, load_parallel
from interp_steer.evaluation import evaluate
from interp_steer.steering import SteeringVector
from interp_steer.storage import SettingsError, atomic_write_json, require_settings
from repro.config import BASELINE_ROWS, Row, StudyConfig, steered_rows
from repro.vectors import fit_saved, gen_selected, shared_cell, strength

__all__ = [
    "GEN_ORDER",
    "MATH_TEMPLATE",
    "gen_kl",
    "gen_rows",
    "gen_sweep",
    "gen_table",
    "gen_transfer",
    "kl_evaluator",
]

MATH_TEMPLATE = "Question: {text}\nAnswer: The answer is"
"""The KL metric's prompt: the next token is the model's answer (a number), so the KL
compares what the model would answer to the native and to the English question."""

GEN_ORDER = (
    *(Row(r) for r in ("basic", "translate_test", "mean_diff", "pca", "mse", "self_translate",
                       "xlt", "k_shot")),
    Row("bipo", scaled=True),
    Row("bipo"),
)  # fmt: skip
"""The order :func:`gen_table` runs its rows in, every language and task of a row before the
next row: cheap, informative rows first (BiPO's direction at the selected strength before
its vector as trained, which is too short to act), so an interrupted run leaves whole rows,
not a patchwork (the page lists rows in the main table's order)."""


def kl_evaluator(cfg: StudyConfig, *, test: bool = False) -> EnglishKL:
    """The EnglishKL evaluator of the study: held-out ``train`` pairs after the fitted ones."""
    return EnglishKL(
        "msvamp",
        "train",
        start=cfg.n_gen_fit,
        n=cfg.n_gen_select,
        test_split="eval" if test else None,
        template=MATH_TEMPLATE,
    )


def gen_sweep(model: Any, cfg: StudyConfig, root: Path) -> None:
    """Layer × strength sweep per MSVAMP language, selected by EnglishKL on held-out pairs."""
    layer_sweep(
        model,
        cfg.gen_langs,
        task=kl_evaluator(cfg),
        layers=cfg.layers,
        ratios=cfg.gen_ratios,
        fit_dataset="msvamp",
        fit_split="train",
        n_fit=cfg.n_gen_fit,
        test=False,
        run_dir=root / "gen_sweep",
    ).save(root / "gen_sweep.json")


def _vector(model: Any, cfg: StudyConfig, root: Path, lang: str, method: str) -> SteeringVector:
    """``method``'s vector for ``lang`` on MSVAMP train pairs at the selected layer (saved).

    BiPO gets the first ``cfg.bipo_n_fit`` of the pairs (its steps are the slow part).
    """
    n_fit = cfg.bipo_n_fit if method == "bipo" else cfg.n_gen_fit
    return fit_saved(
        model,
        cfg,
        root / "gen_vectors" / f"{lang}-{method}",
        load_parallel("msvamp", lang, split="train", n=n_fit),
        layer=gen_selected(root, lang)["layer"],
        method=method,
    )


def gen_rows(cfg: StudyConfig) -> tuple[Row, ...]:
    """The rows of the generation tasks, in the order :func:`gen_table` runs them.

    >>> from repro.config import STUDY
    >>> [row.name for row in gen_rows(STUDY)[:3]]
    ['basic', 'translate_test', 'mean_diff']
    """
    every = (*(Row(b) for b in BASELINE_ROWS), *steered_rows(cfg.gen_methods))
    rest = tuple(r for r in every if r not in GEN_ORDER)
    return tuple(r for r in GEN_ORDER if r in every) + rest


def _steering(
    model: Any, cfg: StudyConfig, root: Path, lang: str, row: Row
) -> tuple[SteeringVector, float]:
    """The vector and alpha of a steered row (scaled rows: the selected strength)."""
    v = _vector(model, cfg, root, lang, row.method)
    return v, strength(v, row, gen_selected(root, lang)["strength"])


def gen_table(model: Any, cfg: StudyConfig, root: Path) -> None:
    """MSVAMP (eval half), MGSM and language forcing: every baseline and steered row.

    Rows run one after another (:func:`gen_rows`), each over every language and task;
    forcing has ``basic`` and the steered rows only (the other baselines change the prompt,
    not the model). Each cell is one resumable file in ``gen_eval/``.
    """
    mgsm_langs = set(available_languages("mgsm"))
    for row in gen_rows(cfg):
        for lang in cfg.gen_langs:
            tasks = [("msvamp", "eval")] + ([("mgsm", "test")] if lang in mgsm_langs else [])
            if row.name == "basic" or not row.baseline:
                tasks.append(("forcing", "test"))
            for task, split in tasks:
                path = root / "gen_eval" / f"{task}-{lang}-{row.name}.json"
                vector, alpha = (
                    (None, 1.0) if row.baseline else _steering(model, cfg, root, lang, row)
                )
                evaluate(
                    model,
                    task,
                    lang,
                    vector=vector,
                    alpha=alpha,
                    baseline=row.name if row.baseline else "basic",
                    split=split,
                    n=cfg.n_forcing if task == "forcing" else cfg.n_gen_test,
                    max_new_tokens=None if task == "forcing" else cfg.gen_tokens,
                    output=path,
                )


def gen_transfer(model: Any, cfg: StudyConfig, root: Path) -> None:
    """Each MSVAMP language's vector on every language's held-out pairs (EnglishKL gain)."""
    layer, ratio = shared_cell([gen_selected(root, lang) for lang in cfg.gen_langs])
    transfer_matrix(
        model,
        cfg.gen_langs,
        task=kl_evaluator(cfg, test=True),
        layer=layer,
        ratio=ratio,
        english=False,
        fit_dataset="msvamp",
        fit_split="train",
        n_fit=cfg.n_gen_fit,
        run_dir=root / "gen_transfer",
    ).save(root / "gen_transfer.json")


def gen_kl(model: Any, cfg: StudyConfig, root: Path) -> None:
    """Each method's vector at the selected cell: EnglishKL on MSVAMP ``eval`` pairs.

    Forward passes only, so every row of ``cfg.gen_kl_methods`` (``bipo`` also as
    ``bipo_scaled``) is compared on all languages; results go to ``gen_kl.json``
    (``{lang: {row: Score fields and alpha}}``, with the evaluator's and the model's
    ``settings``), resumably. A saved file of other settings, or a saved cell of another
    alpha (another selected strength), stops the run naming them.
    """
    path = root / "gen_kl.json"
    ev = kl_evaluator(cfg, test=True)
    settings = {**model_settings(model), "evaluator": evaluator_settings(ev)}
    table: dict[str, Any] = {"settings": settings}
    if path.is_file():  # cells of other settings are never mixed in
        table = json.loads(path.read_text(encoding="utf-8"))
        require_settings(path, table.get("settings", {}), settings,
                         hint="use another run folder, or delete the file")  # fmt: skip
    for lang in cfg.gen_langs:
        cells = table.setdefault(lang, {})
        if "basic" not in cells:
            cells["basic"] = {**asdict(ev(model, lang, None, 0.0, "test")), "alpha": 0.0}
            atomic_write_json(path, table)
        for row in steered_rows(cfg.gen_kl_methods):
            v, alpha = _steering(model, cfg, root, lang, row)  # a saved vector: cheap
            if row.name in cells:
                if cells[row.name].get("alpha") != alpha:
                    raise SettingsError(
                        path,
                        [f"{lang}.{row.name}.alpha: {cells[row.name].get('alpha')!r} → {alpha!r}"],
                        hint="use another run folder, or delete the file",
                    )
                continue
            cells[row.name] = {**asdict(ev(model, lang, v, alpha, "test")), "alpha": alpha}
            atomic_write_json(path, table)
