"""The study's generation part: MSVAMP-fitted vectors for the nine MSVAMP languages.

As the paper does, each language's vectors (and its LoRA fine-tune, ``sft``) are fitted on
MSVAMP pairs (the ``"train"`` half, items 500–999) and tested on MSVAMP (the ``"eval"``
half, items 0–499), on MGSM and on language forcing. The layer and strength are selected on
held-out ``train`` pairs that no vector was fitted on. The selection metric is
:class:`~interp_steer.analysis.EnglishKL` (how close the steered prompt's next-token
prediction comes to the English prompt's), not accuracy: a 270M base model solves almost no
math problem in any language, so accuracy cannot rank the cells. The transfer matrix of the
nine vectors uses the same metric on ``eval`` pairs, and so does the comparison of every
fitting method (``gen_kl``: one KL per pair, so methods are compared pair by pair). Called
by :func:`repro.run.run_study`; files land in the study's run folder (``gen_sweep*``,
``gen_vectors/``, ``gen_adapters/``, ``gen_eval/``, ``gen_transfer*``, ``gen_kl.json``,
``gen_bipo_*``: BiPO's selections and its library defaults in every language).
"""

import functools
import json
from pathlib import Path
from typing import Any

from interp_steer.analysis import (
    EnglishKL,
    english_kl,
    layer_sweep,
    model_settings,
    select_hyper,
    transfer_matrix,
)
from interp_steer.data import ParallelCorpus, available_languages, load_parallel
from interp_steer.evaluation import evaluate
from interp_steer.fitting import check_hyper
from interp_steer.steering import SteeringVector
from interp_steer.storage import SettingsError, atomic_write_json, require_settings
from repro.config import BASELINE_ROWS, HYPER, Row, StudyConfig, steered_rows
from repro.vectors import (
    Steering,
    bipo_hyper,
    fit_rows,
    fit_saved,
    gen_selected,
    shared_cell,
    steering,
)

__all__ = [
    "GEN_ORDER",
    "MATH_TEMPLATE",
    "bipo_alpha_stage",
    "bipo_default_epochs_stage",
    "bipo_default_lr_stage",
    "bipo_defaults_stage",
    "bipo_epochs_stage",
    "bipo_lr_stage",
    "bipo_pairing_stage",
    "default_bipo",
    "gen_adapters",
    "gen_kl",
    "gen_rows",
    "gen_sweep",
    "gen_table",
    "gen_transfer",
    "gen_vectors",
    "kl_evaluator",
    "kl_pairs",
]

MATH_TEMPLATE = "Question: {text}\nAnswer: The answer is"
"""The KL metric's prompt: the next token is the model's answer (a number), so the KL
compares what the model would answer to the native and to the English question."""

GEN_ORDER = tuple(
    Row(r)
    for r in ("basic", "translate_test", "mean_diff", "bipo", "sft", "pca", "mse",
              "self_translate", "xlt", "k_shot")
)  # fmt: skip
"""The order :func:`gen_table` runs its rows in, every language and task of a row before the
next row: the informative rows first, so an interrupted run leaves whole rows, not a
patchwork (the page lists rows in the main table's order)."""


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


def bipo_lr_stage(model: Any, cfg: StudyConfig, root: Path) -> None:
    """BiPO's learning rate: each of ``cfg.bipo_lrs`` trained, one chosen on held-out pairs.

    Each candidate is trained (as :data:`~repro.config.HYPER` says) on the first
    ``cfg.n_bipo_lr_fit`` MSVAMP ``train`` pairs of ``cfg.bipo_lr_lang`` at the language's
    selected layer, applied as trained (α = 1) and scored by EnglishKL on the held-out
    ``train`` pairs the sweep selects on; ``eval`` pairs give each a test score that plays
    no part in the choice. Saved as ``gen_bipo_lr.json``
    (:class:`~interp_steer.analysis.HyperSelection`; resumable in ``gen_bipo_lr/``).
    """
    _bipo_selection(model, cfg, root, "lr", cfg.bipo_lrs, {})


def bipo_default_lr_stage(model: Any, cfg: StudyConfig, root: Path) -> None:
    """The library's default BiPO rate, compared on held-out pairs: ``cfg.bipo_default_lrs``.

    In each of ``cfg.bipo_default_lr_langs``, each candidate trains
    ``fit_vector(method="bipo")`` with every other hyper-parameter at the library's default
    (``lr_scale="coord"``: ``lr`` in units of each coordinate's spread), on the
    ``cfg.n_gen_fit`` MSVAMP ``train`` pairs the defaults are measured on (so the default's
    own schedule: one epoch over them) at the language's selected layer, and is scored like
    a :func:`bipo_lr_stage` candidate. Saved as ``gen_bipo_default_lr/<lang>.json``
    (resumable in ``gen_bipo_default_lr/<lang>/``). Reported, not used: the library's
    default is a constant; the page chooses one rate for all the languages
    (:func:`~repro.page_generation.default_frame`) and says whether it is the default.
    """
    for lang in cfg.bipo_default_lr_langs:
        _bipo_selection(model, cfg, root, "lr", cfg.bipo_default_lrs, {}, lang=lang,
                        stem="default_lr", base={}, n_fit=cfg.n_gen_fit)  # fmt: skip


def bipo_default_epochs_stage(model: Any, cfg: StudyConfig, root: Path) -> None:
    """The library's default number of BiPO epochs, compared: ``cfg.bipo_default_epochs``.

    Like :func:`bipo_default_lr_stage` (the same languages, pairs, layers and scores, every
    other hyper-parameter at the library's default, the default rate included), over the
    number of passes over the pairs (the cosine schedule spans them all). Saved as
    ``gen_bipo_default_epochs/<lang>.json`` (resumable in
    ``gen_bipo_default_epochs/<lang>/``). Reported, not used: the page chooses one number
    for all the languages (:func:`~repro.page_generation.default_frame`).
    """
    for lang in cfg.bipo_default_lr_langs:
        _bipo_selection(model, cfg, root, "epochs", cfg.bipo_default_epochs, {}, lang=lang,
                        stem="default_epochs", base={}, n_fit=cfg.n_gen_fit)  # fmt: skip


def bipo_epochs_stage(model: Any, cfg: StudyConfig, root: Path) -> None:
    """BiPO's number of epochs: each of ``cfg.bipo_epochs`` trained at the chosen rate.

    Each candidate is trained like a :func:`bipo_lr_stage` candidate (the same pairs,
    layer and scores) at the learning rate that stage chose, for that many passes over
    the pairs (the cosine schedule spans them all). Saved as ``gen_bipo_epochs.json``
    (resumable in ``gen_bipo_epochs/``); every BiPO vector of the study uses the choice.
    """
    _bipo_selection(model, cfg, root, "epochs", cfg.bipo_epochs, bipo_hyper(root, ("lr",)))


def bipo_pairing_stage(model: Any, cfg: StudyConfig, root: Path) -> None:
    """BiPO's two pairings compared on held-out pairs in every generation language.

    ``"copy"`` (translate vs copy the prompt's text; every BiPO vector of the study) and
    ``"continuation"`` (the model's own continuations of the English vs the native text),
    each trained like a :func:`bipo_lr_stage` candidate (on that language's pairs, at its
    selected layer) at :func:`~repro.vectors.bipo_hyper`'s rate and epochs, in each of
    ``cfg.gen_langs``: the rate was chosen on one language, and a pairing that wins there
    need not win elsewhere. Saved as ``gen_bipo_pairing/<lang>.json`` (resumable in
    ``gen_bipo_pairing/<lang>/``). Reported, not used: the study's vectors keep the
    ``"copy"`` pairing.
    """
    chosen = bipo_hyper(root)
    for lang in cfg.gen_langs:
        _bipo_selection(model, cfg, root, "pairing", ("copy", "continuation"), chosen, lang=lang)


def _bipo_selection(
    model: Any,
    cfg: StudyConfig,
    root: Path,
    name: str,
    values: tuple[Any, ...],
    chosen: dict[str, Any],
    lang: str | None = None,
    *,
    stem: str | None = None,
    base: dict[str, Any] | None = None,
    n_fit: int | None = None,
) -> None:
    """BiPO trained at each of ``values`` of ``name`` (the rest: ``base`` and ``chosen``).

    ``base``: the hyper-parameters not selected (``None``: the study's, ``HYPER``; ``{}``:
    the library's defaults). On ``n_fit`` (default ``cfg.n_bipo_lr_fit``) MSVAMP
    ``train`` pairs of ``lang`` (default ``cfg.bipo_lr_lang``) at its selected layer;
    saved as ``gen_bipo_<stem>.json`` (``stem`` defaults to ``name``), resumable in
    ``gen_bipo_<stem>/`` (with ``lang``: ``gen_bipo_<stem>/<lang>.json``, resumable in
    ``gen_bipo_<stem>/<lang>/``).
    """
    stem = name if stem is None else stem
    run_dir = root / f"gen_bipo_{stem}"
    if lang is None:
        lang, path = cfg.bipo_lr_lang, root / f"gen_bipo_{stem}.json"
    else:
        run_dir, path = run_dir / lang, run_dir / f"{lang}.json"
    base = HYPER["bipo"] if base is None else base
    fixed = {k: v for k, v in {**base, **chosen}.items() if k != name}
    select_hyper(
        model, lang,
        task=kl_evaluator(cfg, test=True),
        layer=gen_selected(root, lang)["layer"],
        grid={name: values},
        method="bipo",
        fit_dataset="msvamp",
        fit_split="train",
        n_fit=cfg.n_bipo_lr_fit if n_fit is None else n_fit,
        run_dir=run_dir,
        progress=True,
        **fixed,
    ).save(path)  # fmt: skip


def _fit_pairs(cfg: StudyConfig, lang: str) -> ParallelCorpus:
    """The MSVAMP ``train`` pairs every vector and fine-tune of ``lang`` is fitted on."""
    return load_parallel("msvamp", lang, split="train", n=cfg.n_gen_fit)


def _steering(model: Any, cfg: StudyConfig, root: Path, lang: str, row: Row) -> Steering:
    """What a steered row of ``lang`` runs with (fitted and saved on first use)."""
    return steering(
        model, root, "gen", lang, row,
        corpus=_fit_pairs(cfg, lang),
        layer=gen_selected(root, lang)["layer"],
        ratio=gen_selected(root, lang)["strength"],
    )  # fmt: skip


def gen_vectors(model: Any, cfg: StudyConfig, root: Path) -> None:
    """Every method's vector per language at the selected layer, saved in ``gen_vectors/``.

    BiPO's training is the slow part (one step per pair); a resumed run reuses saved vectors.
    """
    fit_rows(
        functools.partial(_steering, model, cfg, root), cfg.gen_methods, cfg.gen_langs, "vector"
    )


def gen_adapters(model: Any, cfg: StudyConfig, root: Path) -> None:
    """The LoRA fine-tune per language on the vectors' pairs; saved in ``gen_adapters/``."""
    fit_rows(
        functools.partial(_steering, model, cfg, root), cfg.gen_methods, cfg.gen_langs, "adapter"
    )


def gen_rows(cfg: StudyConfig) -> tuple[Row, ...]:
    """The rows of the generation tasks, in the order :func:`gen_table` runs them.

    >>> from repro.config import STUDY
    >>> [row.name for row in gen_rows(STUDY)[:5]]
    ['basic', 'translate_test', 'mean_diff', 'bipo', 'sft']
    """
    every = (*(Row(b) for b in BASELINE_ROWS), *steered_rows(cfg.gen_methods))
    rest = tuple(r for r in every if r not in GEN_ORDER)
    return tuple(r for r in GEN_ORDER if r in every) + rest


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
                run = Steering() if row.baseline else _steering(model, cfg, root, lang, row)
                with run.applied(model):
                    evaluate(
                        model,
                        task,
                        lang,
                        vector=run.vector,
                        alpha=run.alpha,
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


def kl_pairs(cfg: StudyConfig, lang: str) -> ParallelCorpus:
    """The MSVAMP ``eval`` pairs of :func:`gen_kl` (never fitted or selected on)."""
    return load_parallel("msvamp", lang, split="eval", n=cfg.n_gen_kl)


def gen_kl(model: Any, cfg: StudyConfig, root: Path) -> None:
    """Every method at its selected cell: the KL to English of each MSVAMP ``eval`` pair.

    Forward passes only, so every row of ``cfg.gen_kl_methods`` (``sft`` under its LoRA
    adapter) is compared on all languages on the same ``cfg.n_gen_kl`` pairs, one KL per
    pair (the page tests methods pair by pair). Results go to ``gen_kl.json``
    (``{lang: {row: {"kl": [...], "alpha": ...}}}``, with the model's and the pairs'
    ``settings``), resumably. A saved file of other settings, or a saved cell of another
    alpha (another selected strength), stops the run naming them.
    """
    path = root / "gen_kl.json"
    settings = {
        **model_settings(model),
        "pairs": {"dataset": "msvamp", "split": "eval", "n": cfg.n_gen_kl},
        "template": MATH_TEMPLATE,
        "positions": "all",
    }
    table = _saved_table(path, settings)
    pairs = {lang: kl_pairs(cfg, lang) for lang in cfg.gen_langs}
    for row in (Row("basic"), *steered_rows(cfg.gen_kl_methods)):  # a row in every language
        for lang in cfg.gen_langs:  # before the next: the vectors' rows before sft's training
            cells = table.setdefault(lang, {})
            run = Steering() if row.baseline else _steering(model, cfg, root, lang, row)
            if row.name in cells:
                if cells[row.name].get("alpha") != run.alpha:
                    raise SettingsError(
                        path,
                        [f"{lang}.{row.name}.alpha: {cells[row.name]['alpha']!r} → {run.alpha!r}"],
                        hint="use another run folder, or delete the file",
                    )  # fmt: skip
                continue
            with run.applied(model):
                kl = english_kl(model, pairs[lang], vector=run.vector, alpha=run.alpha,
                                template=MATH_TEMPLATE, progress=False)  # fmt: skip
            cells[row.name] = {"kl": [float(x) for x in kl], "alpha": run.alpha}
            atomic_write_json(path, table)


def bipo_defaults_stage(model: Any, cfg: StudyConfig, root: Path) -> None:
    """BiPO with the library's defaults in every language, on :func:`gen_kl`'s pairs.

    ``fit_vector(method="bipo")`` with no hyper-parameter given, on each language's fitting
    pairs at its selected layer (:func:`default_bipo`), applied as trained (α = 1); one KL
    to English per MSVAMP ``eval`` pair, as :func:`gen_kl` computes them (its ``basic``
    cells are the unsteered side). Saved as ``gen_bipo_defaults.json``
    (``{lang: {"kl": [...], "norm_ratio": ...}}`` with ``settings``), resumably.
    """
    path = root / "gen_bipo_defaults.json"
    table = _saved_table(path, _default_bipo_settings(model, cfg))
    for lang in cfg.gen_langs:
        if lang in table:
            continue
        vector = default_bipo(model, cfg, root, lang)
        kl = english_kl(model, kl_pairs(cfg, lang), vector=vector, alpha=1.0,
                        template=MATH_TEMPLATE, progress=False)  # fmt: skip
        table[lang] = {"kl": [float(x) for x in kl],
                       "norm_ratio": float(vector.meta["metrics"]["norm_ratio"])}  # fmt: skip
        atomic_write_json(path, table)


def bipo_alpha_stage(model: Any, cfg: StudyConfig, root: Path) -> None:
    """BiPO's default vector at strengths around α = 1, one chosen on held-out pairs.

    The sensitivity curve the issue allows in place of ``bipo_scaled``: each language's
    :func:`default_bipo` vector at every α of ``cfg.bipo_alphas`` (absolute multipliers of
    the vector as trained), scored by the generation sweep's EnglishKL on the held-out
    ``train`` pairs; the α with the lowest mean KL there (the first on ties) is then scored
    on :func:`gen_kl`'s ``eval`` pairs, one KL per pair (its ``basic`` cells are the
    unsteered side). Saved as ``gen_bipo_alpha.json`` (``{lang: {"select": [...],
    "select_unsteered": ..., "alpha": ..., "kl": [...], "norm_ratio": ...}}`` with
    ``settings``; ``norm_ratio`` is the vector's as trained), resumably.
    """
    path = root / "gen_bipo_alpha.json"
    task = kl_evaluator(cfg)
    settings = {**_default_bipo_settings(model, cfg), "alphas": list(cfg.bipo_alphas),
                "select": task.selection}  # fmt: skip
    table = _saved_table(path, settings)
    for lang in cfg.gen_langs:
        if lang in table:
            continue
        vector = default_bipo(model, cfg, root, lang)
        select = [-task(model, lang, vector, a, "select").value for a in cfg.bipo_alphas]
        best = min(range(len(select)), key=select.__getitem__)  # the first on ties
        kl = english_kl(model, kl_pairs(cfg, lang), vector=vector, alpha=cfg.bipo_alphas[best],
                        template=MATH_TEMPLATE, progress=False)  # fmt: skip
        table[lang] = {
            "select": select,
            "select_unsteered": -task(model, lang, None, 0.0, "select").value,
            "alpha": cfg.bipo_alphas[best],
            "kl": [float(x) for x in kl],
            "norm_ratio": float(vector.meta["metrics"]["norm_ratio"]),
        }
        atomic_write_json(path, table)


def default_bipo(model: Any, cfg: StudyConfig, root: Path, lang: str) -> SteeringVector:
    """``fit_vector(method="bipo")`` with no hyper-parameter, on ``lang``'s fitting pairs.

    At the language's selected layer; saved in ``gen_vectors/`` and read back on later
    calls. Where the study's own BiPO choices are the library's defaults, this is the
    study's ``bipo`` vector (``<lang>-bipo``, read back, not trained again); otherwise
    ``<lang>-bipo_defaults``.
    """
    defaults = check_hyper("bipo", {})
    study = {**defaults, **HYPER["bipo"], **bipo_hyper(root)}
    name = "bipo" if study == defaults else "bipo_defaults"
    return fit_saved(model, root / "gen_vectors" / f"{lang}-{name}", _fit_pairs(cfg, lang),
                     layer=gen_selected(root, lang)["layer"], method="bipo", hyper={})  # fmt: skip


def _default_bipo_settings(model: Any, cfg: StudyConfig) -> dict[str, Any]:
    """What a score of :func:`default_bipo`'s vectors on :func:`gen_kl`'s pairs depends on."""
    return {
        **model_settings(model),
        "pairs": {"dataset": "msvamp", "split": "eval", "n": cfg.n_gen_kl},
        "template": MATH_TEMPLATE,
        "hyper": check_hyper("bipo", {}),
    }


def _saved_table(path: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """The cells saved at ``path`` (``{"settings": ..., lang: ...}``), or a new table.

    Cells of other settings are never mixed in: a file made with others stops the run
    naming them.
    """
    if not path.is_file():
        return {"settings": settings}
    table: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    require_settings(path, table.get("settings", {}), settings,
                     hint="use another run folder, or delete the file")  # fmt: skip
    return table
