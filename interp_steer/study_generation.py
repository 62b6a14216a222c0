"""The study's generation part: MSVAMP-fitted vectors for the nine MSVAMP languages.

As the paper does, each language's vectors are fitted on MSVAMP pairs (the ``"train"``
half, items 500–999) and tested on MSVAMP (the ``"eval"`` half, items 0–499), on MGSM and on
language forcing. The layer and strength are selected on held-out ``train`` pairs that no
vector was fitted on. The selection metric is :class:`~interp_steer.alignment.EnglishKL`
(how close the steered prompt's next-token prediction comes to the English prompt's), not
accuracy: a 270M base model solves almost no math problem in any language, so accuracy
cannot rank the cells. The transfer matrix of the nine vectors uses the same metric on
``eval`` pairs, and so does the comparison of every fitting method (``gen_kl``). Called by
:func:`interp_steer.study.run_study`; files land in the study's run folder
(``gen_sweep*``, ``gen_vectors/``, ``gen_eval/``, ``gen_transfer*``, ``gen_kl.json``).
"""

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = [
    "MATH_TEMPLATE",
    "gen_kl",
    "gen_rows",
    "gen_selected",
    "gen_sweep",
    "gen_table",
    "gen_transfer",
]

MATH_TEMPLATE = "Question: {text}\nAnswer: The answer is"
"""The KL metric's prompt: the next token is the model's answer (a number), so the KL
compares what the model would answer to the native and to the English question."""

GEN_ORDER = ("basic", "translate_test", "mean_diff", "pca", "mse", "self_translate", "xlt",
             "k_shot", "bipo_scaled", "bipo")  # fmt: skip
"""The order :func:`gen_table` runs its rows in, every language and task of a row before the
next row: cheap, informative rows first (BiPO's direction at the selected strength before
its vector as trained, which is too short to act), so an interrupted run leaves whole rows,
not a patchwork (the page lists rows in the main table's order)."""


def kl_evaluator(cfg: Any, *, test: bool = False) -> Any:
    """The EnglishKL evaluator of the study: held-out ``train`` pairs after the fitted ones."""
    from interp_steer.alignment import EnglishKL

    return EnglishKL(
        "msvamp",
        "train",
        start=cfg.n_gen_fit,
        n=cfg.n_gen_select,
        test_split="eval" if test else None,
        template=MATH_TEMPLATE,
    )


def gen_sweep(model: Any, cfg: Any, root: Path) -> None:
    """Layer × strength sweep per MSVAMP language, selected by EnglishKL on held-out pairs."""
    from interp_steer.sweep import layer_sweep

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


def gen_selected(root: Path, lang: str) -> dict[str, Any]:
    """The generation sweep's selected cell of ``lang``."""
    from interp_steer.sweep import SweepResult

    return SweepResult.load(root / "gen_sweep.json").best(lang)


def _vector(model: Any, cfg: Any, root: Path, lang: str, method: str) -> Any:
    """``method``'s vector for ``lang`` on MSVAMP train pairs at the selected layer (saved).

    BiPO gets the first ``cfg.bipo_n_fit`` of the pairs (its steps are the slow part).
    """
    from interp_steer.data import load_parallel
    from interp_steer.study import fit_saved

    n_fit = cfg.bipo_n_fit if method == "bipo" else cfg.n_gen_fit
    return fit_saved(
        model,
        cfg,
        root / "gen_vectors" / f"{lang}-{method}",
        load_parallel("msvamp", lang, split="train", n=n_fit),
        layer=gen_selected(root, lang)["layer"],
        method=method,
    )


def gen_rows(cfg: Any) -> tuple[str, ...]:
    """The rows of the generation tasks, in the order :func:`gen_table` runs them.

    >>> from interp_steer.study import STUDY
    >>> gen_rows(STUDY)[:3]
    ('basic', 'translate_test', 'mean_diff')
    """
    from interp_steer.study import BASELINE_ROWS, method_rows

    wanted = set(BASELINE_ROWS) | set(method_rows(cfg.gen_methods))
    rest = [r for r in (*BASELINE_ROWS, *method_rows(cfg.gen_methods)) if r not in GEN_ORDER]
    return tuple(r for r in GEN_ORDER if r in wanted) + tuple(rest)


def _steering(model: Any, cfg: Any, root: Path, lang: str, row: str) -> tuple[Any, float]:
    """The vector and alpha of a steered row (``<method>_scaled``: the selected strength)."""
    from interp_steer.study import strength

    v = _vector(model, cfg, root, lang, row.removesuffix("_scaled"))
    return v, strength(v, row, gen_selected(root, lang)["strength"])


def gen_table(model: Any, cfg: Any, root: Path) -> None:
    """MSVAMP (eval half), MGSM and language forcing: every baseline and steered row.

    Rows run one after another (:func:`gen_rows`), each over every language and task;
    forcing has ``basic`` and the steered rows only (the other baselines change the prompt,
    not the model). Each cell is one resumable file in ``gen_eval/``.
    """
    from interp_steer.evaluation import evaluate
    from interp_steer.sources import available_languages
    from interp_steer.study import BASELINE_ROWS

    mgsm_langs = set(available_languages("mgsm"))
    for row in gen_rows(cfg):
        for lang in cfg.gen_langs:
            tasks = [("msvamp", "eval")] + ([("mgsm", "test")] if lang in mgsm_langs else [])
            if row == "basic" or row not in BASELINE_ROWS:
                tasks.append(("forcing", "test"))
            for task, split in tasks:
                path = root / "gen_eval" / f"{task}-{lang}-{row}.json"
                vector, alpha = (
                    (None, 1.0) if row in BASELINE_ROWS else _steering(model, cfg, root, lang, row)
                )
                evaluate(
                    model,
                    task,
                    lang,
                    vector=vector,
                    alpha=alpha,
                    baseline=row if row in BASELINE_ROWS else "basic",
                    split=split,
                    n=cfg.n_forcing if task == "forcing" else cfg.n_gen_test,
                    max_new_tokens=None if task == "forcing" else cfg.gen_tokens,
                    output=path,
                )


def gen_transfer(model: Any, cfg: Any, root: Path) -> None:
    """Each MSVAMP language's vector on every language's held-out pairs (EnglishKL gain)."""
    from interp_steer.transfer import transfer_matrix

    picks = [gen_selected(root, lang) for lang in cfg.gen_langs]
    layer = int(pd.Series([p["layer"] for p in picks]).mode().iloc[0])
    ratio = float(pd.Series([p["strength"] for p in picks]).median())
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


def gen_kl(model: Any, cfg: Any, root: Path) -> None:
    """Each method's vector at the selected cell: EnglishKL on MSVAMP ``eval`` pairs.

    Forward passes only, so every row of ``cfg.gen_kl_methods`` (``bipo`` also as
    ``bipo_scaled``) is compared on all languages; results go to ``gen_kl.json``
    (``{lang: {row: Score fields}}``), resumably.
    """
    from interp_steer.storage import atomic_write_json
    from interp_steer.study import method_rows

    path = root / "gen_kl.json"
    table: dict[str, dict[str, Any]] = (
        json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    )
    ev = kl_evaluator(cfg, test=True)
    for lang in cfg.gen_langs:
        row = table.setdefault(lang, {})
        if "basic" not in row:
            row["basic"] = {**asdict(ev(model, lang, None, 0.0, "test")), "alpha": 0.0}
            atomic_write_json(path, table)
        for name in method_rows(cfg.gen_kl_methods):
            if name in row:
                continue
            v, alpha = _steering(model, cfg, root, lang, name)
            row[name] = {**asdict(ev(model, lang, v, alpha, "test")), "alpha": alpha}
            atomic_write_json(path, table)
