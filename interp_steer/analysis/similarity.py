"""Cross-lingual similarity of representations, layer by layer (paper §5.1, Fig. 2).

For parallel sentences (row ``i`` of every language says the same thing) and every layer,
each pair of languages is compared with the metrics of
:mod:`~interp_steer.analysis.similarity_metrics`: ``"centred_cosine"`` of matched pairs against
``"shuffled_centred_cosine"``, linear ``"cka"``, ``"retrieval"`` of each sentence's
partner, and ``"raw_cosine"``, for reference only (every residual stream carries a large
shared component: on Gemma-3-270M matched *and* shuffled pairs both score about 0.99).

Activations are collected once per language for all layers
(:func:`~interp_steer.activations.collect_activations`). For a multi-parallel dataset
(FLORES: one English side for all languages) English is collected once and every pair
of languages is compared; otherwise (Tatoeba: different sentences per language) only
the comparisons with English exist and the other cells are NaN.

Example:
    >>> g = torch.Generator().manual_seed(0)
    >>> content = torch.randn(50, 16, generator=g)
    >>> noise = 0.3 * torch.randn(50, 16, generator=g)
    >>> acts = {"en": {0: content + 5.0}, "de": {0: content + noise}}
    >>> res = similarity_from_activations(acts)
    >>> round(float(res.values["cka"][0, 0, 0]), 3), res.vs_english("retrieval")[1].tolist()
    (1.0, [[1.0]])
"""

import functools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from interp_steer.activations.collect import collect_activations
from interp_steer.activations.pooled import Activations, Pooling
from interp_steer.analysis.cells import model_settings
from interp_steer.analysis.similarity_metrics import METRICS, prepare, prepared_metrics
from interp_steer.data.languages import ENGLISH, canonical
from interp_steer.data.parallel import load_parallel
from interp_steer.models.backend import Model
from interp_steer.models.layers import check_layers
from interp_steer.models.loading import model_name
from interp_steer.storage import SavedResult, nan_as_null, require_settings

FORMAT = "interp_steer.SimilarityResult"

THRESHOLD = 0.5
"""The paper's similarity threshold (Fig. 2), marked on the heatmaps."""


# ----------------------------------------------------------------- the result


@dataclass(frozen=True, eq=False)
class SimilarityResult(SavedResult):
    """Similarity between every pair of languages at every layer.

    Attributes:
        model: Name of the model.
        dataset: The parallel dataset (``"flores"``, ``"tatoeba"``, ...).
        pooling: How each sentence's tokens were pooled (``"mean"``, ``"last"``).
        langs: Canonical language codes; English first.
        layers: The layers, ascending.
        n: Sentences per language.
        values: Metric name (see :data:`METRICS`) -> ``[n_langs, n_langs, n_layers]``;
            ``values[m][a, b, l]`` compares language ``a`` (rows) with ``b``. NaN where a
            pair was not measured (non-parallel data).
        multi_parallel: Whether all languages share the same English sentences.
        meta: Provenance; JSON-serialisable.

    Raises:
        ValueError: On any shape or label mismatch.
    """

    model: str
    dataset: str
    pooling: str
    langs: tuple[str, ...]
    layers: tuple[int, ...]
    n: int
    values: Mapping[str, np.ndarray]
    multi_parallel: bool = True
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        set_ = functools.partial(object.__setattr__, self)
        set_("langs", tuple(self.langs))
        set_("layers", tuple(int(x) for x in self.layers))
        set_("values", {k: np.asarray(v, dtype=np.float64) for k, v in self.values.items()})
        set_("meta", dict(self.meta))
        if not self.langs or len(set(self.langs)) != len(self.langs):
            raise ValueError(f"langs must be unique and non-empty, got {self.langs}")
        if self.langs[0] != ENGLISH:
            raise ValueError(f"langs must start with English ('en'), got {self.langs}")
        if not self.layers or list(self.layers) != sorted(set(self.layers)):
            raise ValueError(f"layers must be unique, ascending and non-empty: {self.layers}")
        if set(self.values) != set(METRICS):
            raise ValueError(f"values must hold exactly the metrics {METRICS}")
        shape = (len(self.langs), len(self.langs), len(self.layers))
        for name, arr in self.values.items():
            if arr.shape != shape:
                raise ValueError(f"values[{name!r}] has shape {arr.shape}, expected {shape}")
        if self.n < 2:
            raise ValueError(f"n must be at least 2 sentences, got {self.n}")

    def vs_english(self, metric: str = "centred_cosine") -> tuple[tuple[str, ...], np.ndarray]:
        """Return ``(langs, values [n_langs - 1, n_layers])``: each language against English.

        For ``"retrieval"``: finding the English partner of each sentence in that language.
        """
        self._check_metric(metric)
        return self.langs[1:], self.values[metric][1:, 0, :]

    def matrix(self, metric: str, layer: int) -> np.ndarray:
        """Return the ``[n_langs, n_langs]`` matrix of ``metric`` at ``layer``."""
        self._check_metric(metric)
        if layer not in self.layers:
            raise ValueError(f"layer {layer} was not measured; layers: {list(self.layers)}")
        return self.values[metric][:, :, self.layers.index(layer)]

    def _check_metric(self, metric: str) -> None:
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")

    def to_frame(self) -> pd.DataFrame:
        """Return one row per (lang, other, layer) with one column per metric."""
        a, b, li = np.indices(self.values[METRICS[0]].shape).reshape(3, -1)
        cols: dict[str, Any] = {
            "lang": np.asarray(self.langs)[a],
            "other": np.asarray(self.langs)[b],
            "layer": np.asarray(self.layers)[li],
        }
        cols.update({m: self.values[m].reshape(-1) for m in METRICS})
        return pd.DataFrame(cols)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (NaN written as null)."""
        return {
            "format": FORMAT,
            "version": 1,
            "model": self.model,
            "dataset": self.dataset,
            "pooling": self.pooling,
            "langs": list(self.langs),
            "layers": list(self.layers),
            "n": self.n,
            "multi_parallel": self.multi_parallel,
            "values": {m: nan_as_null(v) for m, v in self.values.items()},
            "meta": dict(self.meta),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SimilarityResult":
        """Rebuild a result from :meth:`to_dict`'s output."""
        if data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} (format={data.get('format')!r})")
        return cls(
            model=str(data["model"]),
            dataset=str(data["dataset"]),
            pooling=str(data["pooling"]),
            langs=tuple(data["langs"]),
            layers=tuple(data["layers"]),
            n=int(data["n"]),
            values={m: np.asarray(v, dtype=np.float64) for m, v in data["values"].items()},
            multi_parallel=bool(data["multi_parallel"]),
            meta=dict(data["meta"]),
        )


LayerActs = Mapping[int, Tensor] | Activations


def similarity_from_activations(
    acts: Mapping[str, LayerActs],
    *,
    english_per_lang: Mapping[str, LayerActs] | None = None,
    model: str = "unknown",
    dataset: str = "custom",
    pooling: str = "mean",
    meta: Mapping[str, Any] | None = None,
) -> SimilarityResult:
    """Compute a :class:`SimilarityResult` from pooled activations already collected.

    Args:
        acts: Language -> (layer -> ``[n, d_model]``) or an
            :class:`~interp_steer.activations.Activations`. Must include English. Row ``i``
            of every language is the same sentence (multi-parallel data).
        english_per_lang: For data that is not multi-parallel: language -> the English
            activations paired with that language's rows. Then only comparisons with
            English are made (other cells are NaN) and ``acts["en"]`` is not needed.
        model: Model name to record.
        dataset: Dataset name to record.
        pooling: Pooling to record.
        meta: Extra provenance.

    Returns:
        The result; languages in the order given, English first.

    Raises:
        ValueError: English missing, layers or shapes that differ between languages.

    >>> x = torch.randn(30, 8, generator=torch.Generator().manual_seed(0))
    >>> res = similarity_from_activations({"en": {4: x}, "de": {4: x + 0.1 * torch.randn(30, 8)}})
    >>> res.langs, res.layers, float(res.vs_english("retrieval")[1][0, 0])
    (('en', 'de'), (4,), 1.0)
    """
    tables = {canonical(k): _as_table(v) for k, v in acts.items()}
    per_lang = (
        {canonical(k): _as_table(v) for k, v in english_per_lang.items()}
        if english_per_lang is not None
        else None
    )
    langs = [ENGLISH] + [c for c in tables if c != ENGLISH]
    if per_lang is None and ENGLISH not in tables:
        raise ValueError("acts must include English ('en') for multi-parallel data")
    if per_lang is not None:
        langs += [c for c in per_lang if c not in langs]
        missing = [c for c in langs[1:] if c not in per_lang or c not in tables]
        if missing:
            raise ValueError(f"english_per_lang and acts must both hold {missing}")
    all_tables = list(tables.values()) + list((per_lang or {}).values())
    layers = sorted(all_tables[0])
    shapes: set[tuple[int, ...]] = set()
    for t in all_tables:
        if sorted(t) != layers:
            raise ValueError(f"every language needs the same layers, got {sorted(t)} vs {layers}")
        shapes.update(tuple(x.shape) for x in t.values())
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"every activation matrix must have the same [n, d] shape, got {shapes}")
    n = int(next(iter(shapes))[0])

    size = (len(langs), len(langs), len(layers))
    values = {m: np.full(size, np.nan) for m in METRICS}
    for li, layer in enumerate(layers):
        if per_lang is None:
            prepared = [prepare(tables[c][layer]) for c in langs]
            pairs = [
                (a, b, prepared[a], prepared[b]) for a in range(size[0]) for b in range(a, size[0])
            ]
        else:
            pairs = []
            if ENGLISH in tables:
                p_en = prepare(tables[ENGLISH][layer])
                pairs.append((0, 0, p_en, p_en))
            for b in range(1, size[0]):
                p_b = prepare(tables[langs[b]][layer])
                pairs += [(0, b, prepare(per_lang[langs[b]][layer]), p_b), (b, b, p_b, p_b)]
        for a, b, pa, pb in pairs:
            for metric, (ab, ba) in prepared_metrics(pa, pb).items():
                values[metric][a, b, li] = ab
                values[metric][b, a, li] = ba
    return SimilarityResult(
        model=model,
        dataset=dataset,
        pooling=pooling,
        langs=tuple(langs),
        layers=tuple(layers),
        n=n,
        values=values,
        multi_parallel=per_lang is None,
        meta=dict(meta or {}),
    )


def _as_table(acts: LayerActs) -> dict[int, Tensor]:
    if isinstance(acts, Activations):
        if acts.pooling == "all":
            raise ValueError("similarity needs one vector per sentence: pooling 'mean' or 'last'")
        return {layer: acts[layer] for layer in acts.layers}
    return {int(k): torch.as_tensor(v) for k, v in acts.items()}


# ----------------------------------------------------------------- on a model


def cross_lingual_similarity(
    model: Model,
    langs: Sequence[str],
    *,
    dataset: str = "flores",
    n: int = 200,
    layers: Sequence[int] | None = None,
    pooling: Pooling = "mean",
    batch_size: int = 8,
    cache_dir: str | os.PathLike[str] | None = None,
    output: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
) -> SimilarityResult:
    """Measure how similar each language's representations are to English's, per layer.

    Loads ``n`` parallel sentences per language with
    :func:`~interp_steer.data.load_parallel`, collects their activations once per
    language for all layers, and compares them (see the module docstring). The result's
    ``meta["settings"]`` records every setting it depends on (model and its weights,
    dataset, languages, ``n``, layers, pooling, the code's version).

    Args:
        model: The model (a bridge, or a HookedTransformer on TransformerLens 3.x).
        langs: Non-English languages, any spelling (English is always added, first).
        dataset: A parallel dataset: ``"flores"`` (multi-parallel) or ``"tatoeba"`` ...
        n: Sentences per language.
        layers: Layers to measure; all by default.
        pooling: ``"mean"`` (over real tokens, BOS excluded) or ``"last"``.
        batch_size: Sentences per forward pass.
        cache_dir: Activation cache folder (see ``collect_activations``; keyed by the
            texts, layers, pooling and model, so other settings never reuse an entry).
        output: Save the result there (atomically). A result already there is returned
            as saved when its settings are these, and is an error naming the changed
            ones otherwise.
        progress: Show progress bars; ``None`` follows
            :func:`~interp_steer.progress.set_progress`.

    Returns:
        A :class:`SimilarityResult`.

    Raises:
        ValueError: A bad setting, or :class:`~interp_steer.storage.SettingsError`:
            ``output`` holds a result with other settings.

    >>> from interp_steer import load_model
    >>> res = cross_lingual_similarity(load_model("tiny"), ["de", "sw"], n=8, progress=False)
    >>> res.langs, res.values["cka"].shape
    (('en', 'de', 'sw'), (3, 3, 4))
    """
    if pooling not in ("mean", "last"):
        raise ValueError(f"pooling must be 'mean' or 'last', got {pooling!r}")
    codes = list(dict.fromkeys(canonical(x) for x in langs if canonical(x) != ENGLISH))
    if not codes:
        raise ValueError("give at least one non-English language")
    layer_tuple = check_layers(model, range(int(model.cfg.n_layers)) if layers is None else layers)
    corpora = {c: load_parallel(dataset, c, n=n) for c in codes}
    sizes = {len(c) for c in corpora.values()}
    if min(sizes) < 2:
        raise ValueError(f"need at least 2 sentences per language, got {sizes}")
    first = next(iter(corpora.values()))
    multi = all(c.english == first.english for c in corpora.values())
    settings = {
        **model_settings(model),
        "dataset": dataset,
        "langs": [ENGLISH, *codes],
        "n": n,
        "layers": list(layer_tuple),
        "pooling": pooling,
        "exclude_bos": True,
    }
    if output is not None and Path(output).exists():
        saved = SimilarityResult.load(output)
        require_settings(output, saved.meta.get("settings", {}), settings,
                         what="a similarity result",
                         hint="pass another output path, or delete the file")  # fmt: skip
        return saved

    def collect(texts: Sequence[str]) -> Activations:
        return collect_activations(
            model,
            texts,
            layers=layer_tuple,
            pooling=pooling,
            batch_size=batch_size,
            cache_dir=cache_dir,
            progress=progress,
        )

    acts: dict[str, LayerActs] = {}
    english: dict[str, LayerActs] | None = None
    if multi:
        acts[ENGLISH] = collect(first.english)
    else:
        english = {c: collect(corpus.english) for c, corpus in corpora.items()}
    for c, corpus in corpora.items():
        acts[c] = collect(corpus.target)
    meta = {
        "n_requested": n,
        "corpora": {c: corpus.name for c, corpus in corpora.items()},
        "exclude_bos": True,
        "settings": settings,
    }
    result = similarity_from_activations(
        acts,
        english_per_lang=english,
        model=model_name(model),
        dataset=dataset,
        pooling=pooling,
        meta=meta,
    )
    if output is not None:
        result.save(output)
    return result


__all__ = [
    "FORMAT",
    "SimilarityResult",
    "THRESHOLD",
    "cross_lingual_similarity",
    "similarity_from_activations",
]
