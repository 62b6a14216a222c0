"""One batch of an evaluation: prompts, one steered forward pass, parsed answers.

:func:`~interp_steer.evaluation.evaluate` checks its options, fixes them in an
:class:`EvalRun` and hands the items over batch by batch to :func:`run_batch`, which
builds each item's prompt under the baseline (translating first for the translation
baselines, :func:`translate_items`), runs the model once inside
:func:`~interp_steer.steering.steer` and turns the outputs into
:class:`~interp_steer.evaluation.ItemResult` rows. A failing item raises :class:`ItemFailure`
naming it. A choice item whose scores are NaN or infinite is such a failure
(:class:`~interp_steer.steering.NonFiniteError`, naming the layer, strength and dtype): it
is never counted as an answer.

Example:
    >>> str(ItemFailure("xcopa-sw-3", ValueError("no choices")))
    'xcopa-sw-3: ValueError: no choices'
"""

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from interp_steer.constants import FORCING, MATH_TASKS, Positions
from interp_steer.data.items import TaskItem
from interp_steer.data.language_id import detect_language
from interp_steer.data.languages import ENGLISH
from interp_steer.data.parallel import load_parallel
from interp_steer.evaluation.answers import answers_match, last_number
from interp_steer.evaluation.prompts import build_prompt, forcing_prompt, get_baseline
from interp_steer.evaluation.results import ItemResult
from interp_steer.evaluation.translation import (
    self_translation_prompt,
    translation_texts,
    with_translation,
)
from interp_steer.models.backend import Model
from interp_steer.models.batching import cut_at_stop, generate_texts, score_continuations, token_ids
from interp_steer.steering.intervention import NonFiniteError, steer
from interp_steer.steering.vectors import SteeringVector

LengthNorm = Literal["tokens", "chars", "none"]
"""Choice score: mean log-probability per token or per character, or the plain sum."""


class ItemFailure(Exception):
    """An item (``item_id``) of a batch failed; the original error is the ``__cause__``."""

    def __init__(self, item_id: str, err: BaseException):
        super().__init__(f"{item_id}: {type(err).__name__}: {err}")
        self.item_id = item_id


@dataclass(frozen=True)
class EvalRun:
    """The fixed settings of one evaluation, resolved by :func:`~interp_steer.evaluate`.

    Attributes:
        model: The model (a bridge, or a HookedTransformer on TransformerLens 3.x).
        task: Task name, or ``"forcing"`` (batches of ``(id, text)`` pairs).
        lang: Canonical code of the items' language.
        baseline: Prompting baseline name.
        exemplars: k-shot exemplars.
        k: Exemplars per prompt for ``k_shot``.
        vector: The steering vector, or None.
        alpha: Steering strength.
        positions: Where the vector is added.
        budget: Generation budget in tokens.
        translator: A ``str -> str`` translator for ``baseline="translator"``.
        length_norm: How choice scores are normalised.
        progress: A bar per generated batch (``None``: the library setting).
    """

    model: Model
    task: str
    lang: str
    baseline: str
    exemplars: tuple[TaskItem, ...]
    k: int
    vector: SteeringVector | None
    alpha: float
    positions: Positions
    budget: int
    translator: Callable[[str], str] | None
    length_norm: LengthNorm
    progress: bool | None = False


def _conditions(run: EvalRun) -> str:
    """The run's steering and dtype, for an error message."""
    dtype = str(getattr(run.model.cfg, "dtype", "unknown dtype")).removeprefix("torch.")
    if run.vector is None:
        return f"unsteered, {dtype}"
    return f"steered at layer {run.vector.layer} with alpha={run.alpha:g}, {dtype}"


def _shots(lang: str) -> list[tuple[str, str]]:
    """Two FLORES pairs as few-shot examples for self-translation (none if unavailable)."""
    try:
        corpus = load_parallel("flores", lang, n=2)
    except (ValueError, OSError):
        return []
    return list(zip(corpus.target, corpus.english, strict=True))


def translate_items(
    run: EvalRun, items: list[TaskItem], timings: dict[str, float]
) -> list[TaskItem]:
    """Fill the English fields of ``items`` by the user's translator or by the model.

    The model translates unsteered (steering applies to answering only), with two FLORES
    pairs as examples when they are available. ``timings["translate_s"]`` grows by the
    time spent.

    >>> from interp_steer import load_model
    >>> from interp_steer.data import load_task
    >>> items = list(load_task("xcopa", "sw", n=1).items)
    >>> run = EvalRun(load_model("tiny"), "xcopa", "sw", "translator", (), 5, None, 0.0,
    ...               "all", 8, str.upper, "tokens")
    >>> out = translate_items(run, items, {"translate_s": 0.0})
    >>> out[0].english == items[0].question.upper()
    True
    """
    t0 = time.perf_counter()
    out = []
    if run.translator is not None:
        for item in items:
            try:
                english = [run.translator(t) for t in translation_texts(item)]
                out.append(with_translation(item, [str(e) for e in english]))
            except Exception as err:
                raise ItemFailure(item.id, err) from err
    else:  # self-translate, unsteered: steering applies to answering only
        texts = [translation_texts(item) for item in items]
        flat = [t for ts in texts for t in ts]
        shots = _shots(run.lang)
        prompts = [self_translation_prompt(t, run.lang, shots) for t in flat]
        longest = max(len(token_ids(run.model, t, bos=False)) for t in flat)
        budget = min(run.budget, 8 + 2 * longest)
        done = generate_texts(run.model, prompts, max_new_tokens=budget, stop=("\n",))
        translated = iter([t.strip() or src for t, src in zip(done, flat, strict=True)])
        for item, ts in zip(items, texts, strict=True):
            out.append(with_translation(item, [next(translated) for _ in ts]))
    timings["translate_s"] += time.perf_counter() - t0
    return out


def run_batch(run: EvalRun, batch: list[Any], timings: dict[str, float]) -> list[ItemResult]:
    """Prompt, run and parse one batch: task items, or ``(id, text)`` pairs for forcing.

    ``timings["model_s"]`` (and ``"translate_s"`` for translation baselines) grow by the
    time spent. Returns one :class:`~interp_steer.evaluation.ItemResult` per batch entry.

    Raises:
        ItemFailure: An item failed; for a choice item whose scores are not all finite
            the cause is a :class:`~interp_steer.steering.NonFiniteError` naming the layer,
            ``alpha`` and dtype (a NaN score is never taken as the answer).

    >>> from interp_steer import load_model
    >>> from interp_steer.data import load_task
    >>> items = list(load_task("xcopa", "sw", n=2).items)
    >>> run = EvalRun(load_model("tiny"), "xcopa", "sw", "basic", (), 5, None, 0.0, "all",
    ...               8, None, "tokens")
    >>> timings = {"model_s": 0.0, "translate_s": 0.0}
    >>> [r.id for r in run_batch(run, items, timings)] == [item.id for item in items]
    True
    """
    translated = get_baseline(run.baseline).translate is not None
    items: list[Any] = batch
    if run.task == FORCING:
        prompts = [forcing_prompt(text, run.lang) for _, text in batch]
    else:
        items = translate_items(run, batch, timings) if translated else batch
        prompts = []
        for item in items:
            try:
                prompts.append(build_prompt(item, run.baseline, run.exemplars, run.k))
            except ValueError as err:
                raise ItemFailure(item.id, err) from err
    t0 = time.perf_counter()
    steering = (
        steer(run.model, run.vector, alpha=run.alpha, positions=run.positions)
        if run.vector is not None
        else contextlib.nullcontext()
    )
    generate = run.task == FORCING or run.task in MATH_TASKS
    with steering:
        if generate:
            stops = sorted({s for p in prompts for s in p.stop})
            texts = [p.text for p in prompts]
            outputs = generate_texts(
                run.model, texts, max_new_tokens=run.budget, stop=stops, progress=run.progress
            )
        else:
            conts = [p.continuations for p in prompts]
            scored = score_continuations(run.model, [p.text for p in prompts], conts)
    timings["model_s"] += time.perf_counter() - t0
    if run.task == FORCING:
        langs = [detect_language(out) for out in outputs]
        return [
            ItemResult(id_, p.text, ENGLISH, code, code == ENGLISH, out)
            for (id_, _), p, out, code in zip(batch, prompts, outputs, langs, strict=True)
        ]
    results: list[ItemResult] = []
    for item, orig, p in zip(items, batch, prompts, strict=True):
        meta: dict[str, Any] = {"english": item.english} if translated else {}
        if generate:
            out = cut_at_stop(outputs[len(results)], p.stop)
            parsed = last_number(out, lang=p.lang)
            ok = answers_match(parsed, orig.answer)
            results.append(ItemResult(orig.id, p.text, orig.answer, parsed, ok, out, meta=meta))
            continue
        triples = scored[len(results)]
        sums = [s for s, _, _ in triples]
        scores = {
            "tokens": [s / t for s, t, _ in triples],
            "none": sums,
            "chars": [s / max(c, 1) for s, _, c in triples],
        }[run.length_norm]
        if not all(math.isfinite(x) for x in scores):
            bad = NonFiniteError(f"choice scores {scores} are not finite ({_conditions(run)})")
            raise ItemFailure(orig.id, bad) from bad
        best = str(max(range(len(scores)), key=scores.__getitem__))
        meta.update(
            continuations=list(p.continuations),
            logprob_sums=sums,
            n_tokens=[t for _, t, _ in triples],
        )
        results.append(
            ItemResult(
                orig.id, p.text, orig.answer, best, best == orig.answer, None, tuple(scores), meta
            )
        )
    return results
