"""How English a steered prompt makes the model: KL to the English version's prediction.

The paper's claim is that one vector makes non-English prompts behave like English ones.
:func:`english_kl` measures exactly that, one number per parallel pair, without generating:
``KL(p(· | English text) ‖ p(· | steered translation))`` of the next-token distributions
after the last token. :class:`EnglishKL` wraps it as a sweep
:data:`~interp_steer.analysis.Evaluator` (score = minus the mean KL, so higher is better), for
selecting a layer and strength on held-out pairs where task accuracy cannot rank the cells
(a small model that solves almost no math problem in any language).

Example:
    >>> from interp_steer import load_model
    >>> from interp_steer.data import ParallelCorpus
    >>> model = load_model("tiny")
    >>> pairs = ParallelCorpus(("The cat", "A dog"), ("Die Katze", "Ein Hund"), "de", "en")
    >>> kl = english_kl(model, pairs)
    >>> kl.shape, bool((kl >= 0).all())
    ((2,), True)
"""

import math
import weakref
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from interp_steer.analysis.cells import Score, Stage
from interp_steer.constants import POSITION_MODES, Positions, check_choice
from interp_steer.data.parallel import CorpusLike, ParallelCorpus, load_parallel
from interp_steer.models.backend import Model
from interp_steer.models.batching import left_pad, tail_logits, token_ids
from interp_steer.progress import progress_bar
from interp_steer.steering.intervention import steer
from interp_steer.steering.vectors import SteeringVector


def _last_logprobs(
    model: Model, texts: list[str], batch_size: int, desc: str, progress: bool | None
) -> torch.Tensor:
    """Next-token log-probabilities after the last token of each text, ``[n, d_vocab]``."""
    out = []
    with progress_bar(total=len(texts), desc=desc, unit="text", progress=progress) as bar:
        for start in range(0, len(texts), batch_size):
            rows = [token_ids(model, t, bos=True) for t in texts[start : start + batch_size]]
            ids, mask = left_pad(model, rows)
            with torch.no_grad():
                logits = tail_logits(model, ids, mask, 1)
            out.append(logits[:, -1].float().log_softmax(-1).cpu())
            bar.update(len(rows))
    return torch.cat(out)


def _check(pairs: ParallelCorpus, template: str, batch_size: int) -> None:
    if len(pairs) == 0:
        raise ValueError("english_kl needs at least one pair")
    if "{text}" not in template:
        raise ValueError(f"template must contain '{{text}}', got {template!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")


def english_logprobs(
    model: Model,
    pairs: CorpusLike,
    *,
    template: str = "{text}",
    batch_size: int = 16,
    progress: bool | None = None,
) -> torch.Tensor:
    """The unsteered English side of :func:`english_kl`: next-token log-probabilities.

    Compute it once and pass it as ``reference=`` when one set of pairs is scored under
    many vectors or strengths. ``progress`` is as for :func:`english_kl`.

    Returns:
        ``[len(pairs), d_vocab]`` float32 log-probabilities (on the CPU).

    Raises:
        ValueError: On an empty corpus, a template without ``{text}`` or a batch size
            below 1.
    """
    pairs = ParallelCorpus.coerce(pairs)
    _check(pairs, template, batch_size)
    texts = [template.format(text=t) for t in pairs.english]
    return _last_logprobs(model, texts, batch_size, "English reference", progress)


def english_kl(
    model: Model,
    pairs: CorpusLike,
    *,
    vector: SteeringVector | None = None,
    alpha: float = 1.0,
    positions: Positions = "all",
    template: str = "{text}",
    batch_size: int = 16,
    reference: torch.Tensor | None = None,
    progress: bool | None = None,
) -> np.ndarray:
    """Per pair, ``KL(p(· | English) ‖ p(· | target, steered))`` at the next token (nats).

    The English side always runs unsteered; the target side runs under ``vector`` (or
    unsteered when it is None: the baseline gap).

    Args:
        model: The model, a bridge or a HookedTransformer (its tokenizer pads on the left).
        pairs: Parallel pairs, in any form :meth:`ParallelCorpus.coerce` reads;
            ``english[i]`` is the reference for ``target[i]``.
        vector: Steering vector for the target side, or None.
        alpha: Its strength.
        positions: Where the vector is added (see :func:`~interp_steer.steering.steer`).
        template: Format string around each text, with ``{text}`` (e.g. a task prompt).
        batch_size: Texts per forward pass.
        reference: :func:`english_logprobs` of these pairs and template, if already
            computed (the English side is then not run again).
        progress: Show progress bars; ``None`` follows
            :func:`~interp_steer.progress.set_progress`.

    Returns:
        ``float64`` array of one KL per pair.

    Raises:
        ValueError: On an empty corpus, a template without ``{text}``, a batch size below
            1, an unknown position mode, or a ``reference`` with another number of rows.
    """
    pairs = ParallelCorpus.coerce(pairs)
    _check(pairs, template, batch_size)
    check_choice("positions", positions, POSITION_MODES)
    if reference is not None and reference.shape[0] != len(pairs):
        raise ValueError(
            f"reference has {reference.shape[0]} rows for {len(pairs)} pairs; "
            "compute it with english_logprobs on the same pairs"
        )
    target = [template.format(text=t) for t in pairs.target]
    ref = (
        english_logprobs(model, pairs, template=template, batch_size=batch_size, progress=progress)
        if reference is None
        else reference
    )
    ctx = (
        steer(model, vector, alpha=alpha, positions=positions)
        if vector is not None
        else nullcontext()
    )
    with ctx:
        got = _last_logprobs(model, target, batch_size, f"{pairs.source_lang} KL", progress)
    kl = (ref.exp() * (ref - got)).sum(-1).clamp_min(0.0)
    return kl.double().numpy()


@dataclass(frozen=True)
class EnglishKL:
    """Sweep evaluator: minus the mean :func:`english_kl` over held-out pairs (higher = better).

    The select stage reads ``n`` pairs of ``split`` from pair ``start`` on (leave the pairs
    before ``start`` for fitting); the test stage reads the first ``n`` pairs of
    ``test_split``.

    Attributes:
        dataset: Parallel dataset (see :func:`~interp_steer.data.load_parallel`).
        split: Its split for selection.
        start: First pair of the select stage.
        n: Pairs per evaluation.
        test_split: Split of the test stage (None: no test stage).
        template: Format string around each text, with ``{text}``.
        positions: Where vectors are added.
        batch_size: Texts per forward pass.

    >>> EnglishKL("msvamp", "train", start=400, n=100).selection
    'msvamp train pairs 400..499 (held out from fitting)'
    """

    dataset: str
    split: str | None = None
    start: int = 0
    n: int = 64
    test_split: str | None = None
    template: str = "{text}"
    positions: Positions = "all"
    batch_size: int = 16
    _last: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)
    """The most recent English reference (model, language, stage): a sweep scores every
    (layer, strength) cell of one language on the same pairs, so it is computed once."""

    def __post_init__(self) -> None:
        if self.start < 0 or self.n < 1:
            raise ValueError(f"need start >= 0 and n >= 1, got start={self.start}, n={self.n}")
        if "{text}" not in self.template:
            raise ValueError(f"template must contain '{{text}}', got {self.template!r}")

    @property
    def name(self) -> str:
        """The metric's name."""
        return "-KL to English (nats)"

    @property
    def selection(self) -> str:
        """What the select stage evaluates on."""
        last = self.start + self.n - 1
        split = self.split or "default"
        return f"{self.dataset} {split} pairs {self.start}..{last} (held out from fitting)"

    def pairs(self, lang: str, stage: Stage) -> ParallelCorpus:
        """The pairs of one stage."""
        if stage == "test":
            if self.test_split is None:
                raise ValueError("this EnglishKL has no test stage; set test_split")
            return load_parallel(self.dataset, lang, split=self.test_split, n=self.n)
        corpus = load_parallel(self.dataset, lang, split=self.split)
        stop = min(self.start + self.n, len(corpus))
        if stop <= self.start:
            raise ValueError(f"{corpus.name} has {len(corpus)} pairs; none from {self.start} on")
        return corpus._subset(list(range(self.start, stop)), held_out_from=self.start)

    def __call__(
        self,
        model: Model,
        lang: str,
        vector: SteeringVector | None,
        alpha: float,
        stage: Stage,
    ) -> Score:
        """Evaluate one cell: minus the mean KL, with a normal 95% interval."""
        pairs = self.pairs(lang, stage)
        key = (lang, stage, pairs.english)
        held = self._last.get("model")
        if self._last.get("key") != key or held is None or held() is not model:
            self._last.clear()  # one reference at a time (d_vocab floats per pair)
            ref = english_logprobs(
                model, pairs, template=self.template, batch_size=self.batch_size, progress=False
            )
            self._last.update(key=key, model=weakref.ref(model), reference=ref)
        kl = english_kl(
            model,
            pairs,
            vector=vector,
            alpha=alpha,
            positions=self.positions,
            template=self.template,
            batch_size=self.batch_size,
            reference=self._last["reference"],
            progress=False,  # one cell of a sweep: the sweep's own bar counts cells
        )
        mean = float(kl.mean())
        half = 1.96 * float(kl.std(ddof=1)) / math.sqrt(len(kl)) if len(kl) > 1 else math.inf
        return Score(-mean, -mean - half, -mean + half, len(kl))


__all__ = [
    "EnglishKL",
    "english_kl",
]
