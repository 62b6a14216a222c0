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
    "gen_selected",
    "gen_sweep",
    "gen_table",
    "gen_transfer",
]

MATH_TEMPLATE = "Question: {text}\nAnswer: The answer is"
"""The KL metric's prompt: the next token is the model's answer (a number), so the KL
compares what the model would answer to the native and to the English question."""

GEN_BASELINES = ("basic", "translate_test")
"""Baseline rows of the generation tasks (XLT and k-shot stay with XCOPA: their prompts are
several times longer, and generation is the slow part on a CPU)."""


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
    """``method``'s vector for ``lang`` on MSVAMP train pairs at the selected layer (saved)."""
    from interp_steer.data import load_parallel
    from interp_steer.study import fit_saved

    return fit_saved(
        model,
        cfg,
        root / "gen_vectors" / f"{lang}-{method}",
        load_parallel("msvamp", lang, split="train", n=cfg.n_gen_fit),
        layer=gen_selected(root, lang)["layer"],
        method=method,
    )


def gen_table(model: Any, cfg: Any, root: Path) -> None:
    """MSVAMP (eval half), MGSM and language forcing: baselines and steered rows."""
    from interp_steer.compare import EvalResult
    from interp_steer.evaluation import evaluate
    from interp_steer.sources import available_languages
    from interp_steer.study import strength

    mgsm_langs = set(available_languages("mgsm"))
    for lang in cfg.gen_langs:
        ratio = gen_selected(root, lang)["strength"]
        steered = []
        for method in cfg.gen_methods:
            v = _vector(model, cfg, root, lang, method)
            steered.append((method, v, strength(v, method, ratio)))
        tasks = [("msvamp", "eval")] + ([("mgsm", "test")] if lang in mgsm_langs else [])
        runs: list[tuple[str, str, str, str, Any, float]] = []
        for task, split in tasks:
            runs += [(task, split, b, b, None, 0.0) for b in GEN_BASELINES]
            runs += [(task, split, m, "basic", v, a) for m, v, a in steered]
        runs += [("forcing", "test", "basic", "basic", None, 0.0)]
        runs += [("forcing", "test", m, "basic", v, a) for m, v, a in steered]
        for task, split, tag, baseline, vector, alpha in runs:
            path = root / "gen_eval" / f"{task}-{lang}-{tag}.json"
            if path.is_file() and EvalResult.load(path).complete:
                continue
            evaluate(
                model,
                task,
                lang,
                vector=vector,
                alpha=alpha if vector is not None else 1.0,
                baseline=baseline,
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

    Forward passes only, so every method of ``cfg.gen_kl_methods`` is compared on all
    languages; results go to ``gen_kl.json`` (``{lang: {row: Score fields}}``), resumably.
    """
    from interp_steer.storage import atomic_write_json
    from interp_steer.study import strength

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
        ratio = gen_selected(root, lang)["strength"]
        for method in cfg.gen_kl_methods:
            if method in row:
                continue
            v = _vector(model, cfg, root, lang, method)
            alpha = strength(v, method, ratio)
            row[method] = {**asdict(ev(model, lang, v, alpha, "test")), "alpha": alpha}
            atomic_write_json(path, table)
