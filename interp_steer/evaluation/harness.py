"""The evaluation harness: run a task, steered or not, under a baseline; keep every item.

:func:`evaluate` scores math tasks (MGSM, MSVAMP) by greedy generation and the last number
of the output, choice tasks (XCOPA, XNLI, MMLU, M3Exam) by length-normalised log-likelihood
of each choice (all choices of a batch in one forward pass), and language forcing
(``task="forcing"``) by the share of generated continuations that langdetect reads as
English and as the prompt's language. Batches are left-padded and deterministic; steering
goes through :func:`interp_steer.steering.steer` only.

Nothing is lost on failure: an error raises :class:`EvaluationError` naming the item and
carrying the partial :class:`EvalResult`; with ``output=`` the result is also written
(atomically) after every batch, and a later call with the same settings resumes from it.

Example:
    >>> from interp_steer import load_model
    >>> from interp_steer.data import load_task
    >>> r = evaluate(load_model("tiny"), load_task("xcopa", "sw", n=4), progress=False)
    >>> r.n, r.method, 0.0 <= r.accuracy <= 1.0
    (4, 'basic', True)
"""

import contextlib
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import torch

from interp_steer.constants import (
    FORCING,
    POSITION_MODES,
    TASKS,
    Positions,
    check_choice,
    check_count,
)
from interp_steer.data.items import TaskItem, TaskSet
from interp_steer.data.languages import ENGLISH, canonical
from interp_steer.data.parallel import load_parallel
from interp_steer.data.tasks import item_key, load_task
from interp_steer.evaluation.batches import EvalRun, ItemFailure, LengthNorm, run_batch
from interp_steer.evaluation.prompts import get_baseline
from interp_steer.evaluation.results import EvalResult, EvaluationError, compare, paired_test
from interp_steer.evaluation.statistics import PairedTest
from interp_steer.evaluation.translation import load_translator
from interp_steer.models.adapters import active_adapters
from interp_steer.models.backend import Model
from interp_steer.models.loading import model_name
from interp_steer.progress import progress_bar
from interp_steer.steering.intervention import check_vector
from interp_steer.steering.vectors import SteeringVector, vector_summary
from interp_steer.storage import locks_run

Translator = Callable[[str], str] | str


# ----------------------------------------------------------------- one run


def _units(
    task: str | TaskSet, lang: str | None, split: str, n: int | None, source: str | Sequence[str]
) -> tuple[str, str, list[Any], tuple[TaskItem, ...]]:
    """Resolve the task into (name, lang, items or (id, text) pairs, exemplars)."""
    if isinstance(task, TaskSet):
        if lang is not None and canonical(lang) != task.lang:
            raise ValueError(f"lang {lang!r} does not match the task set's language {task.lang!r}")
        ts = task if n is None else task.head(n)
        return ts.name, ts.lang, list(ts.items), _exemplars(ts)
    if lang is None:
        raise ValueError("evaluate() needs a language when the task is given by name")
    if task == FORCING:
        code = canonical(lang)
        if not isinstance(source, str):
            texts = [str(t) for t in source][:n]
        elif source in TASKS:
            texts = [item.question for item in load_task(source, code, n=n)]
        else:
            texts = list(load_parallel(source, code, n=n).target)
        if not texts:
            raise ValueError("language forcing needs at least one source text")
        return FORCING, code, [(f"forcing-{code}-{i}", t) for i, t in enumerate(texts)], ()
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join((*TASKS, 'forcing'))}")
    ts = load_task(task, lang, split=split, n=n)
    return ts.name, ts.lang, list(ts.items), _exemplars(ts)


def _exemplars(ts: TaskSet) -> tuple[TaskItem, ...]:
    """The task's k-shot exemplars; MSVAMP has none and borrows MGSM's (same language)."""
    if not ts.exemplars and ts.name == "msvamp":
        with contextlib.suppress(ValueError, FileNotFoundError):
            return load_task("mgsm", ts.lang, n=1).exemplars
    return ts.exemplars


def _grows(was: int | None, now: int | None) -> bool:
    """Whether ``n`` items (None: all) keeps every one of ``was`` items."""
    return now is None or (was is not None and now >= was)


def _saved(fresh: EvalResult, output: str | os.PathLike[str]) -> EvalResult | None:
    """The result saved at ``output`` if it has ``fresh``'s settings; None without a file.

    A larger ``n`` extends the saved items (they are the first ones); a smaller one would
    drop some and is an error like any other changed setting. A file that is not an
    evaluation result is an error naming it.
    """
    if not Path(output).exists():
        return None
    try:
        old = EvalResult.load(output)
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(
            f"{output} exists but is not an evaluation result ({type(err).__name__}: {err}); "
            "pass another output path, or resume=False to overwrite it"
        ) from None
    was_n, now_n = old.settings.get("n"), fresh.settings.get("n")
    held = f"{len(old.items)} items ({'complete' if old.complete else 'partial'}, n={was_n})"
    if not _grows(was_n, now_n):
        raise ValueError(
            f"{output} holds {held} and n={now_n} would drop some; pass another output "
            "path, or resume=False to overwrite it"
        )

    def key(r: EvalResult) -> dict[str, Any]:
        settings = {k: v for k, v in r.settings.items() if k not in ("batch_size", "n")}
        fields = {"task": r.task, "lang": r.lang, "model": r.model, "baseline": r.baseline,
                  "vector": r.vector, **settings}  # fmt: skip
        return dict(json.loads(json.dumps(fields)))  # as saved: tuples → lists

    was, now = key(old), key(fresh)
    if was != now:
        diff = ", ".join(
            f"{k} {was.get(k)!r} → {now.get(k)!r}"
            for k in sorted(was.keys() | now.keys())
            if was.get(k) != now.get(k)
        )
        raise ValueError(
            f"{output} holds a result of {held} with other settings ({diff}); pass another "
            "output path, delete the file, or pass resume=False to overwrite it"
        )
    return old


def _warn_overlap(vector: SteeringVector, units: Sequence[Any], name: str, code: str) -> None:
    """Warn when items evaluated here were among the items ``vector`` was fitted on.

    Compared by :func:`~interp_steer.data.tasks.item_key`, so the same item in another
    language counts too (its English version was half of a fitting pair).
    """
    data = vector.meta.get("data") if isinstance(vector.meta, Mapping) else None
    if not isinstance(data, Mapping) or not data.get("ids"):
        return
    fitted = data["ids"]
    keys = set(map(str, fitted))
    items = [u for u in units if isinstance(u, TaskItem)]
    shared = [u.id for u in items if item_key(u) in keys]
    if shared:
        corpus, split = data.get("corpus"), (data.get("corpus_meta") or {}).get("split")
        warnings.warn(
            f"{len(shared)} of the {len(items)} {name}-{code} items evaluated (first: "
            f"{shared[0]}) are items the vector was fitted on ({corpus}, split {split}): "
            "their scores are in-sample; fit and evaluate on disjoint items (MSVAMP: "
            "load_parallel's default split 'train', evaluate split 'eval')",
            stacklevel=3,
        )


@locks_run("output", file=True)  # one run at a time writes an output file
def evaluate(
    model: Model,
    task: str | TaskSet,
    lang: str | None = None,
    *,
    vector: SteeringVector | None = None,
    alpha: float = 1.0,
    positions: Positions = "all",
    baseline: str = "basic",
    n: int | None = None,
    split: str = "test",
    batch_size: int = 8,
    seed: int = 0,
    max_new_tokens: int | None = None,
    translator: Translator | None = None,
    k: int = 5,
    length_norm: LengthNorm = "tokens",
    source: str | Sequence[str] = "flores",
    output: str | os.PathLike[str] | None = None,
    resume: bool = True,
    progress: bool | None = None,
) -> EvalResult:
    """Evaluate ``model`` on one task and language, steered or not, under a baseline.

    Args:
        model: The model, a bridge or a HookedTransformer (its tokenizer pads on the left).
        task: ``"mgsm"``, ``"msvamp"``, ``"xcopa"``, ``"xnli"``, ``"mmlu"``, ``"m3exam"``,
            ``"forcing"``, or a loaded :class:`~interp_steer.data.TaskSet`.
        lang: The prompts' language, any spelling (optional with a TaskSet).
        vector: A steering vector; None evaluates the model unsteered.
        alpha: Steering strength (0 gives exactly the unsteered model).
        positions: Where the vector is added (see :func:`~interp_steer.steering.steer`);
            in choice scoring, context and choice together count as the prompt.
        baseline: ``basic``, ``translate_test``, ``translator``, ``self_translate``, ``xlt``
            or ``k_shot`` (see :data:`interp_steer.evaluation.BASELINES`). Self-translations
            run unsteered; the vector acts on answering only.
        n: Evaluate the first ``n`` items (all when None).
        split: The task split.
        batch_size: Items per batch (a choice batch is ``batch_size × choices`` rows).
        seed: Torch seed of the run (decoding is greedy: results are deterministic).
        max_new_tokens: Generation budget (also caps self-translations); default 256,
            32 for forcing.
        translator: For ``baseline="translator"``: a ``str -> str`` callable, or a Hugging
            Face seq2seq model id such as ``"facebook/nllb-200-distilled-600M"``.
        k: Exemplars for ``k_shot``.
        length_norm: Choice score: mean log-probability per ``"tokens"`` or ``"chars"`` of
            the choice, or the plain sum (``"none"``).
        source: Forcing prompts: ``"flores"``, ``"tatoeba"``, a task name, or the texts.
        output: Write the result here (JSON, atomically) after every batch and at the end.
        resume: With ``output``: continue a partial result saved there with the same
            settings (a complete one is returned as it is, a larger ``n`` extends it); a
            file with other settings is an error unless ``resume=False``.
        progress: Show a progress bar; ``None`` follows
            :func:`~interp_steer.progress.set_progress`.

    Raises:
        ValueError: Unknown task, language or baseline; ``n``, ``batch_size``, ``k`` or
            ``max_new_tokens`` not positive; a vector that does not fit the model (one from
            a model of another name only warns).
        EvaluationError: An item failed (e.g. the translator raised); the error names the
            item and carries the partial result, also written to ``output``. Steering or
            scores that turn NaN or infinite fail so too, with a
            :class:`~interp_steer.steering.NonFiniteError` as the cause (a NaN score is
            never counted as an answer).
    """
    spec = get_baseline(baseline)
    for name, value in (
        ("n", n),
        ("batch_size", batch_size),
        ("k", k),
        ("max_new_tokens", max_new_tokens),
    ):
        if value is not None:
            check_count(name, value)
    check_choice("positions", positions, POSITION_MODES)
    if length_norm not in ("tokens", "chars", "none"):
        raise ValueError(f"length_norm must be 'tokens', 'chars' or 'none', got {length_norm!r}")
    if not math.isfinite(float(alpha)):
        raise ValueError(f"alpha must be finite, got {alpha!r}")
    if vector is not None:
        check_vector(model, vector)
    if (translator is not None) != (spec.translate == "callable"):
        raise ValueError("baseline='translator' needs translator=..., and only it takes one")
    name, code, units, exemplars = _units(task, lang, split, n, source)
    if vector is not None:
        _warn_overlap(vector, units, name, code)
    if name == FORCING and baseline != "basic":
        raise ValueError("language forcing supports only baseline='basic'")
    if baseline == "k_shot" and len(exemplars) < k:
        raise ValueError(f"k_shot needs {k} exemplars but {name}-{code} has {len(exemplars)}")
    if baseline == "translate_test":  # fail before any work when an English version is missing
        for item in units:
            if item.english is None or len(item.english_choices) != len(item.choices):
                raise ValueError(
                    f"{item.id}: no English version of this item; translate_test needs one"
                )
    if isinstance(translator, str):
        translator = load_translator(translator, code)
    budget = max_new_tokens or (32 if name == FORCING else 256)
    run = EvalRun(
        model,
        name,
        code,
        baseline,
        tuple(exemplars),
        k,
        vector,
        float(alpha),
        positions,
        budget,
        translator,
        length_norm,
        progress,
    )
    settings = {
        "split": split,
        "n": n,
        "seed": seed,
        "alpha": float(alpha),
        "positions": positions,
        "batch_size": batch_size,
        "max_new_tokens": budget,
        "k": k,
        "length_norm": length_norm,
        "translator": None if translator is None else getattr(translator, "__name__", "callable"),
        "source": source if isinstance(source, str) else "texts",
    }
    if active_adapters(model):  # only then: files saved without an adapter keep their settings
        settings["adapters"] = list(active_adapters(model))
    summary = None if vector is None else vector_summary(vector)
    empty = EvalResult(name, code, model_name(model), baseline, (), settings, summary)
    saved = _saved(empty, output) if output is not None and resume else None
    results = {} if saved is None else {item.id: item for item in saved.items}
    order = [u.id if isinstance(u, TaskItem) else u[0] for u in units]
    todo = [u for u, i in zip(units, order, strict=True) if i not in results]
    if saved is not None and saved.complete and not todo:
        return saved  # already done: returned as saved, the file untouched
    timings = {"total_s": 0.0, "model_s": 0.0, "translate_s": 0.0}
    start = time.perf_counter()

    def snapshot(complete: bool, error: str | None = None) -> EvalResult:
        timings["total_s"] = time.perf_counter() - start
        items = tuple(results[i] for i in order if i in results)
        return replace(empty, items=items, timings=dict(timings), complete=complete, error=error)

    bar = progress_bar(
        total=len(units),
        initial=len(units) - len(todo),
        desc=f"{name}-{code} {empty.method}",
        unit="item",
        progress=progress,
    )
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for lo in range(0, len(todo), batch_size):
                batch = todo[lo : lo + batch_size]
                try:
                    results.update((r.id, r) for r in run_batch(run, batch, timings))
                except ItemFailure:
                    raise
                except Exception as err:
                    ids = ", ".join(u.id if isinstance(u, TaskItem) else u[0] for u in batch)
                    raise ItemFailure(f"one of [{ids}]", err) from err
                bar.update(len(batch))
                if output is not None:
                    snapshot(lo + batch_size >= len(todo)).save(output)
    except ItemFailure as failure:
        partial = snapshot(False, str(failure))
        if output is not None:
            partial.save(output)
        where = f"; partial result ({partial.n} items) saved to {output}" if output else ""
        raise EvaluationError(
            f"evaluation of {name}-{code} ({empty.method}) failed at {failure}{where}",
            partial=partial,
            item_id=failure.item_id,
        ) from failure.__cause__
    except BaseException:
        if output is not None:
            snapshot(False, "interrupted").save(output)
        raise
    finally:
        bar.close()
    final = snapshot(True)
    if output is not None:
        final.save(output)
    return final


@dataclass(frozen=True)
class EnglishDamage:
    """English accuracy with and without a (non-English) vector: the paper's Table 4.

    Attributes:
        unsteered: The English task, unsteered.
        steered: The same items with the vector applied.
    """

    unsteered: EvalResult
    steered: EvalResult

    def __post_init__(self) -> None:
        if self.unsteered.steered or not self.steered.steered:
            raise ValueError("EnglishDamage needs an unsteered and a steered result")

    @property
    def delta(self) -> float:
        """Steered minus unsteered accuracy (negative: the vector hurts English)."""
        return self.steered.accuracy - self.unsteered.accuracy

    def test(self, test: Literal["mcnemar", "bootstrap"] = "mcnemar") -> PairedTest:
        """Paired test of the two runs."""
        return paired_test(self.unsteered, self.steered, test=test)

    def table(self) -> pd.DataFrame:
        """The two runs as a :func:`~interp_steer.evaluation.compare` table, paired.

        The unsteered run is the reference (``translate_test`` for XCOPA's English items).
        """
        return compare(self.unsteered, self.steered, reference=self.unsteered.baseline)


def english_damage(
    model: Model,
    task: str | TaskSet,
    vector: SteeringVector,
    *,
    alpha: float = 1.0,
    positions: Positions = "all",
    n: int | None = None,
    source_lang: str | None = None,
    progress: bool | None = None,
    **kwargs: Any,
) -> EnglishDamage:
    """Evaluate the English version of a task with ``vector`` applied, and without it.

    Tasks with English data (MGSM, MSVAMP) are run in English with ``basic`` prompts.
    Tasks without (XCOPA) run the English version of the items in ``source_lang``
    (default: the vector's source language) through ``translate_test``.

    Args:
        model: The model (a bridge, or a HookedTransformer on TransformerLens 3.x).
        task: A task name or a TaskSet (English, or with English versions of its items).
        vector: The (non-English) steering vector.
        alpha: Steering strength.
        positions: Where the vector is added.
        n: First ``n`` items.
        source_lang: Language whose items carry the English versions, when there is no
            English task data.
        progress: Show progress bars; ``None`` follows
            :func:`~interp_steer.progress.set_progress`.
        **kwargs: Passed to :func:`evaluate` (``batch_size``, ``max_new_tokens``, ...).

    Example:
        >>> from interp_steer import load_model
        >>> from interp_steer.data import load_task
        >>> v = SteeringVector(torch.ones(64), layer=1, source_lang="sw")
        >>> d = english_damage(load_model("tiny"), "xcopa", v, alpha=0.0, n=2, progress=False)
        >>> d.steered.baseline, d.delta
        ('translate_test', 0.0)
    """
    if isinstance(task, TaskSet):
        ts = task if n is None else task.head(n)
    else:
        try:
            ts = load_task(task, ENGLISH, n=n)
        except ValueError:
            src = source_lang or vector.source_lang
            if src is None:
                raise ValueError(
                    f"{task} has no English data; pass source_lang= to use the English "
                    "versions of another language's items"
                ) from None
            ts = load_task(task, src, n=n)
    baseline = "basic" if ts.lang == ENGLISH else "translate_test"
    base = evaluate(model, ts, baseline=baseline, progress=progress, **kwargs)
    steered = evaluate(
        model, ts, baseline=baseline, vector=vector, alpha=alpha, positions=positions,
        progress=progress, **kwargs,
    )  # fmt: skip
    return EnglishDamage(base, steered)


__all__ = [
    "EnglishDamage",
    "english_damage",
    "evaluate",
]
