"""Latent-language trajectories: how much a lens puts on the English and the target answer.

Wendler et al. (2024), "Do Llamas Work in English?", read every layer of a model through
the logit lens on word-translation prompts (German "Blume" → Chinese "花") and plot, layer
by layer, the probability mass on the answer's first tokens *in the target language* and
*in English*, with the entropy of the lens distribution beneath. :func:`language_trajectory`
computes exactly those three quantities per prompt, at each prompt's last position (where
the answer comes next), for prompts from :func:`~interp_steer.data.translation_prompts`,
with 95% bootstrap intervals over prompts; with a steering vector, the steered run sits
beside the base run in the same :class:`TrajectoryResult`.

The read-out is the lens (``lens="logit"``: the model's own final norm and unembedding,
:func:`~interp_steer.analysis.project_to_vocab`; ``lens="tuned"``: the checkpoint's
:class:`~interp_steer.analysis.TunedLens` translators first), not the model's computation:
at the last layer it is the model's next-token distribution exactly (both lenses), at
early layers a readout the model never makes.

Example:
    >>> from interp_steer import load_model
    >>> from interp_steer.data import load_concepts, translation_prompts
    >>> model = load_model("tiny")
    >>> concepts = load_concepts(["de", "zh"])
    >>> few = concepts.subset(concepts.keys[:6])  # the tiny model runs on a few
    >>> res = language_trajectory(model, translation_prompts(model.tokenizer, few, "de", "zh"))
    >>> res.runs, res.target_prob.shape  # runs, layers, prompts
    (('base',), (1, 4, 6))
    >>> list(res.to_frame().columns)
    ['run', 'layer', 'quantity', 'mean', 'low', 'high']
"""

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from interp_steer.analysis.tuned_lens import (
    LENSES,
    LensLike,
    TunedLens,
    lens_meta,
    resolve_lens,
)
from interp_steer.analysis.vocab_projection import project_to_vocab, readout_runs
from interp_steer.constants import Positions
from interp_steer.data.concepts import ConceptPrompts
from interp_steer.data.languages import ENGLISH
from interp_steer.models.backend import Model
from interp_steer.models.batching import context_tokens
from interp_steer.models.layers import check_layers
from interp_steer.models.loading import model_name
from interp_steer.steering.vectors import SteeringVector, steering_label, vector_summary
from interp_steer.storage import SavedResult

FORMAT = "interp_steer.TrajectoryResult"

QUANTITIES: tuple[str, ...] = ("target", "english", "entropy")
"""What a trajectory measures per layer: target-answer mass, English-answer mass, entropy."""

RUNS: tuple[str, ...] = ("base", "steered")
"""The runs a trajectory can hold, in order."""

CONFIDENCE = 0.95
"""Coverage of the bootstrap intervals."""


# ----------------------------------------------------------------- the result


@dataclass(frozen=True, eq=False)
class TrajectoryResult(SavedResult):
    """Per layer and prompt: lens mass on the target and English answers, and its entropy.

    The per-prompt arrays are kept, so intervals can be recomputed
    (:meth:`bootstrap`); :attr:`interval` holds the means and 95% bootstrap intervals
    (``n_boot`` resamples of the prompts drawn with ``seed``, the same resamples for every
    run, layer and quantity).

    Attributes:
        model: Name of the model.
        source: Canonical code of the prompts' source language.
        target: Canonical code of the target language (not English).
        lens: The read-out, ``"logit"`` or ``"tuned"`` (:data:`~interp_steer.analysis.Lens`).
        layers: The layers read out, ascending.
        runs: ``("base",)`` or ``("base", "steered")``.
        concepts: The English key of each prompt's concept.
        prompts: The prompt texts.
        target_prob: ``[n_runs, n_layers, n_prompts]`` probability on the target answer's
            first tokens.
        english_prob: ``[n_runs, n_layers, n_prompts]`` probability on the English answer's
            first tokens.
        entropy: ``[n_runs, n_layers, n_prompts]`` entropy of the lens distribution, in
            nats.
        n_excluded: Prompts left out before the run (their answer sets overlap).
        n_boot: Bootstrap resamples of :attr:`interval`.
        seed: Seed of those resamples.
        meta: Prompt settings (task, shots, seed), steering (vector, alpha, positions) and
            read-out settings (``tuned_lens``: the tuned lens's model, fingerprint and
            training texts, or None). JSON-serialisable.

    Raises:
        ValueError: On any shape, label or value mismatch.
    """

    model: str
    source: str
    target: str
    lens: str
    layers: tuple[int, ...]
    runs: tuple[str, ...]
    concepts: tuple[str, ...]
    prompts: tuple[str, ...]
    target_prob: np.ndarray
    english_prob: np.ndarray
    entropy: np.ndarray
    n_excluded: int = 0
    n_boot: int = 1000
    seed: int = 0
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        set_ = functools.partial(object.__setattr__, self)
        set_("layers", tuple(int(x) for x in self.layers))
        set_("runs", tuple(self.runs))
        set_("concepts", tuple(self.concepts))
        set_("prompts", tuple(self.prompts))
        for name in ("target_prob", "english_prob", "entropy"):
            set_(name, np.asarray(getattr(self, name), dtype=np.float64))
        set_("meta", dict(self.meta))
        if self.lens not in LENSES:
            raise ValueError(f"lens must be one of {LENSES}, got {self.lens!r}")
        if self.target == ENGLISH:
            raise ValueError("the target language must not be English")
        if self.runs not in (RUNS[:1], RUNS):
            raise ValueError(f"runs must be ('base',) or ('base', 'steered'), got {self.runs}")
        if not self.layers or list(self.layers) != sorted(set(self.layers)):
            raise ValueError(f"layers must be non-empty, unique and ascending, got {self.layers}")
        if not self.concepts or len(self.prompts) != len(self.concepts):
            raise ValueError("concepts and prompts must be non-empty and of the same length")
        expect = (len(self.runs), len(self.layers), len(self.concepts))
        for name in ("target_prob", "english_prob", "entropy"):
            arr = getattr(self, name)
            if arr.shape != expect:
                raise ValueError(
                    f"{name} has shape {arr.shape}, expected {expect} (runs, layers, prompts)"
                )
            if not np.isfinite(arr).all():
                raise ValueError(f"{name} holds a value that is not finite")
        tol = 1e-9
        for name in ("target_prob", "english_prob"):
            arr = getattr(self, name)
            if (arr < -tol).any() or (arr > 1 + tol).any():
                raise ValueError(f"{name} must hold probabilities in [0, 1]")
        if ((self.target_prob + self.english_prob) > 1 + tol).any():
            raise ValueError("target_prob + english_prob exceeds 1: the answer sets overlap")
        if (self.entropy < -tol).any():
            raise ValueError("entropy must not be negative")
        if isinstance(self.n_excluded, bool) or self.n_excluded < 0:
            raise ValueError(f"n_excluded must be a count, got {self.n_excluded!r}")
        if isinstance(self.n_boot, bool) or self.n_boot < 1:
            raise ValueError(f"n_boot must be a positive int, got {self.n_boot!r}")

    # -- derived views ---------------------------------------------------------------
    @property
    def n_prompts(self) -> int:
        """How many prompts the trajectory averages over."""
        return len(self.concepts)

    def values(self) -> np.ndarray:
        """The per-prompt values, ``[n_runs, 3, n_layers, n_prompts]`` (:data:`QUANTITIES`)."""
        return np.stack([self.target_prob, self.english_prob, self.entropy], axis=1)

    def bootstrap(
        self, n_boot: int | None = None, seed: int | None = None, confidence: float = CONFIDENCE
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Means and percentile-bootstrap intervals over prompts.

        Args:
            n_boot: Resamples; ``None``: the result's own.
            seed: Seed of the resamples; ``None``: the result's own.
            confidence: Coverage of the interval.

        Returns:
            ``(mean, low, high)``, each ``[n_runs, 3, n_layers]`` (:data:`QUANTITIES`).

        Raises:
            ValueError: ``n_boot`` below 1 or ``confidence`` outside (0, 1).
        """
        n_boot = self.n_boot if n_boot is None else n_boot
        seed = self.seed if seed is None else seed
        if n_boot < 1:
            raise ValueError(f"n_boot must be positive, got {n_boot}")
        if not 0 < confidence < 1:
            raise ValueError(f"confidence must be in (0, 1), got {confidence}")
        values = self.values()
        n = self.n_prompts
        draws = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
        counts = np.zeros((n_boot, n))
        np.add.at(counts, (np.repeat(np.arange(n_boot), n), draws.reshape(-1)), 1.0)
        means = values @ counts.T / n  # [runs, 3, layers, n_boot]
        tail = (1 - confidence) / 2
        low, high = np.quantile(means, [tail, 1 - tail], axis=-1)
        return values.mean(-1), low, high

    @functools.cached_property
    def interval(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(mean, low, high)`` with the result's own ``n_boot`` and ``seed``."""
        return self.bootstrap()

    def steering_label(self) -> str | None:
        """``"vector <name> at layer <l>, α = <alpha>"`` for a steered result, else None."""
        if "steered" not in self.runs:
            return None
        return steering_label(
            self.meta.get("vector"), self.meta.get("alpha"), self.meta.get("positions")
        )

    def to_frame(self) -> pd.DataFrame:
        """One row per run, layer and quantity: ``run, layer, quantity, mean, low, high``."""
        mean, low, high = self.interval
        r, q, li = np.indices(mean.shape).reshape(3, -1)
        return pd.DataFrame(
            {
                "run": np.asarray(self.runs)[r],
                "layer": np.asarray(self.layers)[li],
                "quantity": np.asarray(QUANTITIES)[q],
                "mean": mean.reshape(-1),
                "low": low.reshape(-1),
                "high": high.reshape(-1),
            }
        )

    # -- persistence -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (read back by :meth:`from_dict`)."""
        return {
            "format": FORMAT,
            "version": 1,
            "model": self.model,
            "source": self.source,
            "target": self.target,
            "lens": self.lens,
            "layers": list(self.layers),
            "runs": list(self.runs),
            "concepts": list(self.concepts),
            "prompts": list(self.prompts),
            "target_prob": self.target_prob.tolist(),
            "english_prob": self.english_prob.tolist(),
            "entropy": self.entropy.tolist(),
            "n_excluded": self.n_excluded,
            "n_boot": self.n_boot,
            "seed": self.seed,
            "meta": dict(self.meta),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrajectoryResult":
        """Rebuild a result from :meth:`to_dict`'s output."""
        if data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} (format={data.get('format')!r})")
        return cls(
            model=str(data["model"]),
            source=str(data["source"]),
            target=str(data["target"]),
            lens=str(data["lens"]),
            layers=tuple(data["layers"]),
            runs=tuple(data["runs"]),
            concepts=tuple(data["concepts"]),
            prompts=tuple(data["prompts"]),
            target_prob=np.asarray(data["target_prob"], dtype=np.float64),
            english_prob=np.asarray(data["english_prob"], dtype=np.float64),
            entropy=np.asarray(data["entropy"], dtype=np.float64),
            n_excluded=int(data["n_excluded"]),
            n_boot=int(data["n_boot"]),
            seed=int(data["seed"]),
            meta=dict(data["meta"]),
        )


# ----------------------------------------------------------------- the analysis


def language_trajectory(
    model: Model,
    prompts: ConceptPrompts,
    *,
    lens: LensLike = "logit",
    vector: SteeringVector | None = None,
    alpha: float = 1.0,
    positions: Positions = "all",
    layers: Sequence[int] | None = None,
    batch_size: int = 8,
    n_boot: int = 1000,
    seed: int = 0,
    vector_name: str | None = None,
    progress: bool | None = None,
) -> TrajectoryResult:
    """Read every layer through a lens at each prompt's last position: Wendler's curves.

    Per layer and prompt: the lens distribution's probability mass on the prompt's
    target-answer token set, on its English token set, and its entropy (nats); means
    with 95% bootstrap intervals over prompts in the result's :attr:`~TrajectoryResult.interval`.

    Args:
        model: The model (bridge or HookedTransformer); it is not modified.
        prompts: From :func:`~interp_steer.data.translation_prompts`, built with this
            model's tokenizer.
        lens: The read-out: ``"logit"`` (the model's final norm and unembedding),
            ``"tuned"`` (the tuned lens saved for this checkpoint by
            :func:`~interp_steer.analysis.fit_tuned_lens`, then the same) or a
            :class:`~interp_steer.analysis.TunedLens`. The last layer reads the same
            under both.
        vector: If given, a second run ``"steered"`` is read inside
            ``steer(model, vector, alpha=alpha, positions=positions)``.
        alpha: Steering strength.
        positions: Where the vector is added (see :func:`~interp_steer.steer`); the
            read-out is always the last prompt position.
        layers: Layers to read out; all by default.
        batch_size: Prompts per forward pass.
        n_boot: Bootstrap resamples of the intervals.
        seed: Seed of the resamples.
        vector_name: How figures name the vector; ``None``: its method and languages.
        progress: Show a bar over the forward passes; ``None`` follows
            :func:`~interp_steer.progress.set_progress`.

    Returns:
        A :class:`TrajectoryResult`.

    Raises:
        ValueError: Prompts built with another tokenizer, a prompt longer than the
            model's context, a bad option, or a tuned lens of other weights.
        FileNotFoundError: ``lens="tuned"`` and no tuned lens saved for this checkpoint.

    >>> from interp_steer import load_model
    >>> from interp_steer.data import load_concepts, translation_prompts
    >>> model = load_model("tiny")
    >>> few = load_concepts().subset(["dog", "cat", "bread", "water", "sun", "moon"])
    >>> prompts = translation_prompts(model.tokenizer, few, "de", "zh", shots=2)
    >>> v = SteeringVector(torch.ones(64), layer=1, method="mean_diff", source_lang="zh")
    >>> res = language_trajectory(model, prompts, vector=v, alpha=0.0, n_boot=50)
    >>> res.runs, bool((res.target_prob[0] == res.target_prob[1]).all())
    (('base', 'steered'), True)
    """
    if not isinstance(lens, TunedLens) and lens not in LENSES:
        raise ValueError(f"lens must be one of {LENSES} or a TunedLens, got {lens!r}")
    if isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if isinstance(n_boot, bool) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive int, got {n_boot!r}")
    d_vocab = int(model.cfg.d_vocab)
    n_tok = len(model.tokenizer)
    top_id = max(max(*t, *e) for t, e in zip(prompts.target_ids, prompts.english_ids, strict=True))
    if n_tok != prompts.vocab_size or top_id >= d_vocab:
        raise ValueError(
            f"the prompts were built with a tokenizer of {prompts.vocab_size} tokens; this "
            f"model's has {n_tok} (vocabulary {d_vocab}): build them with model.tokenizer"
        )
    layer_tuple = check_layers(model, range(int(model.cfg.n_layers)) if layers is None else layers)
    tuned = resolve_lens(model, lens)
    tokens, n_cut = context_tokens(model, prompts.texts)
    if n_cut:
        raise ValueError(
            f"{n_cut} prompts are longer than the model's context ({model.cfg.n_ctx} tokens); "
            "use fewer shots"
        )

    runs = RUNS[:1] if vector is None else RUNS
    resid = readout_runs(model, tokens, layer_tuple, "last", batch_size, vector=vector,
                         alpha=alpha, steer_positions=positions, desc="language trajectory",
                         progress=progress)  # fmt: skip

    rows = torch.cat(
        [_translated(run[layer], layer, tuned) for run in resid for layer in layer_tuple]
    )
    target, english, entropy = _lens_quantities(model, rows, prompts)
    shape = (len(runs), len(layer_tuple), len(prompts))
    meta: dict[str, Any] = {
        "task": prompts.task,
        "shots": prompts.shots,
        "prompt_seed": prompts.seed,
        "readout": "last",
        "entropy_unit": "nats",
        "confidence": CONFIDENCE,
        "alpha": alpha if vector is not None else None,
        "positions": positions if vector is not None else None,
        "vector": None if vector is None else vector_summary(vector, name=vector_name),
        **lens_meta(tuned),
    }
    return TrajectoryResult(
        model=model_name(model),
        source=prompts.source,
        target=prompts.target,
        lens=meta["lens"],
        layers=layer_tuple,
        runs=runs,
        concepts=prompts.concepts,
        prompts=prompts.texts,
        target_prob=target.reshape(shape),
        english_prob=english.reshape(shape),
        entropy=entropy.reshape(shape),
        n_excluded=prompts.n_excluded,
        n_boot=n_boot,
        seed=seed,
        meta=meta,
    )


def _lens_quantities(
    model: Model, rows: torch.Tensor, prompts: ConceptPrompts
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Target mass, English mass and entropy (nats) of each residual row.

    Row ``i`` belongs to prompt ``i % n_prompts``; rows (already translated, for a tuned
    lens) are read out through the final norm and unembedding and normalised in float64,
    in chunks of about 128 MB of probabilities.
    """
    n = len(prompts)
    tgt_ids, tgt_ok = _padded(prompts.target_ids)
    eng_ids, eng_ok = _padded(prompts.english_ids)
    chunk = max(1, (1 << 24) // int(model.cfg.d_vocab))
    out: list[list[torch.Tensor]] = [[], [], []]
    with torch.inference_mode():
        for start in range(0, rows.shape[0], chunk):
            logits = project_to_vocab(model, rows[start : start + chunk])
            logp = logits.double().cpu().log_softmax(-1)
            probs = logp.exp()
            which = torch.arange(start, start + probs.shape[0]) % n
            out[0].append((probs.gather(1, tgt_ids[which]) * tgt_ok[which]).sum(-1))
            out[1].append((probs.gather(1, eng_ids[which]) * eng_ok[which]).sum(-1))
            out[2].append(-(probs * logp).sum(-1))
    target, english, entropy = (torch.cat(parts).numpy() for parts in out)
    return target, english, entropy


def _translated(rows: torch.Tensor, layer: int, tuned: TunedLens | None) -> torch.Tensor:
    """Residual ``rows`` of ``layer`` as the lens reads them: translated by a tuned lens."""
    return rows if tuned is None else tuned.translate(rows, layer)


def _padded(sets: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Ragged id sets as ``(ids [n, k], weight [n, k])``: padding is id 0 with weight 0."""
    width = max(len(s) for s in sets)
    ids = torch.zeros(len(sets), width, dtype=torch.long)
    weight = torch.zeros(len(sets), width, dtype=torch.float64)
    for i, s in enumerate(sets):
        ids[i, : len(s)] = torch.tensor(list(s), dtype=torch.long)
        weight[i, : len(s)] = 1.0
    return ids, weight


__all__ = [
    "CONFIDENCE",
    "FORMAT",
    "QUANTITIES",
    "RUNS",
    "TrajectoryResult",
    "language_trajectory",
]
