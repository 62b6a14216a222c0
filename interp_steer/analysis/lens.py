"""Logit lens with language identification: which language does each layer "think" in?

Every layer's residual stream (``blocks.{l}.hook_resid_post``) is read out through the
model's own final norm and unembedding (:func:`~interp_steer.analysis.project_to_vocab`),
as in Wendler et al. (2024) and §7 of arXiv 2505.12584; with ``lens="tuned"`` each layer's
residual first goes through its :class:`~interp_steer.analysis.TunedLens` translator. At
the last layer both reproduce the model's logits exactly.

The top-``k`` tokens of every layer and read-out position are decoded and labelled with
a language once per token (:func:`~interp_steer.analysis.token_languages.token_language`:
script rules, else seeded ``langdetect`` on the token alone, cached), so a token has the
same language in every cell. A cell's colour is its top-1 token's bucket; its shares
count each of its top-``k`` tokens' buckets.

Each label falls into one of four buckets: English, the prompt language, other, and
undetermined. The undetermined share is reported, not hidden: on single subword tokens
it is often large, and the other shares must be read against it.

Example:
    >>> from interp_steer import load_model
    >>> model = load_model("tiny")
    >>> res = logit_lens(model, ["Hallo Welt, wie geht es dir?"], lang="de", k=3)
    >>> res.shares().shape, res.bucket_names
    ((1, 4, 4), ('English', 'German', 'other', 'undetermined'))
    >>> bool(np.allclose(res.shares().sum(-1), 1.0))
    True
"""

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from interp_steer.analysis.token_languages import (
    BUCKETS,
    bucket_of,
    language_name,
    token_language,
)
from interp_steer.analysis.tuned_lens import LENSES, LensLike, TunedLens, lens_meta, resolve_lens
from interp_steer.analysis.vocab_projection import ReadOut, readout_runs, top_tokens
from interp_steer.constants import Positions
from interp_steer.data.language_id import UND, detect_language
from interp_steer.data.languages import canonical
from interp_steer.models.backend import Model
from interp_steer.models.batching import context_tokens
from interp_steer.models.layers import check_layers
from interp_steer.models.loading import model_name
from interp_steer.progress import progress_bar
from interp_steer.steering.vectors import SteeringVector, steering_label, vector_summary
from interp_steer.storage import SavedResult

FORMAT = "interp_steer.LogitLensResult"


# ----------------------------------------------------------------- the result


@dataclass(frozen=True, eq=False)
class LogitLensResult(SavedResult):
    """Top-k logit-lens tokens, probabilities and languages for every layer and position.

    The read-out positions of all prompts are flattened into ``n_items`` items; item ``i``
    is position ``item_position[i]`` (0 = first token, BOS included) of prompt
    ``item_prompt[i]``, whose input token there is ``item_token[i]``.

    Attributes:
        model: Name of the model.
        prompts: The prompts.
        lang: Canonical code of the prompts' language.
        layers: The layers read out, ascending.
        variants: ``("base",)`` or ``("base", "steered")``.
        readout: ``"last"`` (last token of each prompt) or ``"all"`` (every token).
        item_prompt: ``[n_items]`` prompt index of each item.
        item_position: ``[n_items]`` position of each item in its prompt.
        item_token: ``[n_items]`` input token at that position.
        tokens: ``[n_variants, n_layers, n_items, k]`` decoded top-k tokens.
        probs: ``[n_variants, n_layers, n_items, k]`` their probabilities.
        langs: ``[n_variants, n_layers, n_items, k]`` their language codes.
        meta: Steering vector, alpha, k and labelling settings; ``n_truncated``: how many
            prompts were longer than the model's context (``n_ctx`` tokens) and were cut
            to it (their read-out stops there); ``lens``: ``"logit"`` or ``"tuned"``, and
            ``tuned_lens``: the tuned lens's model, fingerprint and training texts (or
            None). JSON-serialisable.

    Raises:
        ValueError: On any shape or label mismatch.
    """

    model: str
    prompts: tuple[str, ...]
    lang: str
    layers: tuple[int, ...]
    variants: tuple[str, ...]
    readout: str
    item_prompt: np.ndarray
    item_position: np.ndarray
    item_token: np.ndarray
    tokens: np.ndarray
    probs: np.ndarray
    langs: np.ndarray
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        set_ = functools.partial(object.__setattr__, self)
        set_("prompts", tuple(self.prompts))
        set_("layers", tuple(int(x) for x in self.layers))
        set_("variants", tuple(self.variants))
        set_("item_prompt", np.asarray(self.item_prompt, dtype=np.int64))
        set_("item_position", np.asarray(self.item_position, dtype=np.int64))
        set_("item_token", np.asarray(self.item_token, dtype=str))
        set_("tokens", np.asarray(self.tokens, dtype=str))
        set_("probs", np.asarray(self.probs, dtype=np.float64))
        set_("langs", np.asarray(self.langs, dtype=str))
        set_("meta", dict(self.meta))
        if not self.prompts or not self.layers or not self.variants:
            raise ValueError("prompts, layers and variants must be non-empty")
        if len(set(self.variants)) != len(self.variants):
            raise ValueError(f"variants must be unique, got {self.variants}")
        if self.readout not in ("last", "all"):
            raise ValueError(f"readout must be 'last' or 'all', got {self.readout!r}")
        n = self.item_prompt.shape
        if len(n) != 1 or self.item_position.shape != n or self.item_token.shape != n:
            raise ValueError("item_prompt, item_position and item_token must be 1-D, same length")
        if n[0] and (self.item_prompt.min() < 0 or self.item_prompt.max() >= len(self.prompts)):
            raise ValueError("item_prompt holds an index that is not a prompt")
        expect = (len(self.variants), len(self.layers), n[0])
        for name in ("tokens", "probs", "langs"):
            arr = getattr(self, name)
            if arr.ndim != 4 or arr.shape[:3] != expect:
                raise ValueError(
                    f"{name} has shape {arr.shape}, expected {expect} + (k,) "
                    "(variants, layers, items, k)"
                )
        if self.tokens.shape != self.probs.shape or self.tokens.shape != self.langs.shape:
            raise ValueError("tokens, probs and langs must have the same shape")

    # -- derived views ---------------------------------------------------------------
    @property
    def k(self) -> int:
        """How many top tokens were kept per cell."""
        return int(self.tokens.shape[-1])

    @property
    def bucket_names(self) -> tuple[str, ...]:
        """Display names of :data:`BUCKETS`, the prompt bucket named after the language."""
        prompt = language_name(self.lang)
        return ("English", prompt, "other", "undetermined")

    def buckets(self) -> np.ndarray:
        """Return the bucket index of every token: ``[n_variants, n_layers, n_items, k]``."""
        lookup = np.vectorize(lambda c: bucket_of(str(c), self.lang), otypes=[np.int64])
        return lookup(self.langs) if self.langs.size else np.zeros(self.langs.shape, np.int64)

    def shares(self, weighting: Literal["uniform", "prob"] = "uniform") -> np.ndarray:
        """Return each bucket's share per variant and layer: ``[n_variants, n_layers, 4]``.

        Args:
            weighting: ``"uniform"``: every top-k token counts once; ``"prob"``: tokens
                count by their probability, renormalised within each cell's top k.

        Every row sums to 1.
        """
        if weighting not in ("uniform", "prob"):
            raise ValueError(f"weighting must be 'uniform' or 'prob', got {weighting!r}")
        buckets = self.buckets()
        if weighting == "uniform":
            w = np.ones(self.probs.shape)
        else:
            total = self.probs.sum(-1, keepdims=True)
            w = np.where(total > 0, self.probs / np.where(total > 0, total, 1.0), 1.0 / self.k)
        out = np.stack([(w * (buckets == b)).sum((-1, -2)) for b in range(len(BUCKETS))], -1)
        return out / out.sum(-1, keepdims=True)

    def top1(self, variant: str = "base") -> np.ndarray:
        """Return the top-1 token of every layer and item: ``[n_layers, n_items]``."""
        return self.tokens[self._variant(variant), :, :, 0]

    def steering_label(self) -> str | None:
        """Name the steering of the ``"steered"`` variant: vector, layer and strength.

        Returns:
            ``"<vector> at layer <l>, α = <alpha>"`` (plus the steered positions when not
            all), or ``None`` for a result without a steered variant.

        >>> from interp_steer import load_model
        >>> v = SteeringVector(torch.ones(64), layer=1, method="mean_diff", source_lang="de")
        >>> res = logit_lens(load_model("tiny"), "Hallo", vector=v, alpha=2.0, lang="de", k=1)
        >>> res.steering_label()
        'vector mean_diff de→en at layer 1, α = 2'
        """
        if "steered" not in self.variants:
            return None
        return steering_label(
            self.meta.get("vector"), self.meta.get("alpha"), self.meta.get("steer_positions")
        )

    def _variant(self, variant: str) -> int:
        if variant not in self.variants:
            raise ValueError(f"no variant {variant!r}; this result has {self.variants}")
        return self.variants.index(variant)

    def to_frame(self) -> pd.DataFrame:
        """Return one row per variant, layer, item and rank (long format, for pandas/parquet).

        Columns: ``variant, layer, prompt, position, input_token, rank, token, prob, lang,
        bucket``. ``res.to_frame().to_parquet(path)`` exports it.
        """
        v, li, it, r = np.indices(self.tokens.shape).reshape(4, -1)
        return pd.DataFrame(
            {
                "variant": np.asarray(self.variants)[v],
                "layer": np.asarray(self.layers)[li],
                "prompt": self.item_prompt[it],
                "position": self.item_position[it],
                "input_token": self.item_token[it],
                "rank": r,
                "token": self.tokens.reshape(-1),
                "prob": self.probs.reshape(-1),
                "lang": self.langs.reshape(-1),
                "bucket": np.asarray(BUCKETS)[self.buckets().reshape(-1)],
            }
        )

    # -- persistence -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (read back by :meth:`from_dict`)."""
        return {
            "format": FORMAT,
            "version": 1,
            "model": self.model,
            "prompts": list(self.prompts),
            "lang": self.lang,
            "layers": list(self.layers),
            "variants": list(self.variants),
            "readout": self.readout,
            "item_prompt": self.item_prompt.tolist(),
            "item_position": self.item_position.tolist(),
            "item_token": self.item_token.tolist(),
            "tokens": self.tokens.tolist(),
            "probs": self.probs.tolist(),
            "langs": self.langs.tolist(),
            "meta": dict(self.meta),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "LogitLensResult":
        """Rebuild a result from :meth:`to_dict`'s output."""
        if data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} (format={data.get('format')!r})")
        k = len(data["tokens"][0][0][0]) if data["item_prompt"] else 0
        shape = (len(data["variants"]), len(data["layers"]), len(data["item_prompt"]), k)
        fields: dict[str, Any] = {
            "model": str(data["model"]),
            "prompts": tuple(data["prompts"]),
            "lang": str(data["lang"]),
            "layers": tuple(data["layers"]),
            "variants": tuple(data["variants"]),
            "readout": str(data["readout"]),
            "item_prompt": np.asarray(data["item_prompt"], dtype=np.int64),
            "item_position": np.asarray(data["item_position"], dtype=np.int64),
            "item_token": np.asarray(data["item_token"], dtype=str),
            "meta": dict(data["meta"]),
        }
        for name in ("tokens", "probs", "langs"):
            fields[name] = np.asarray(data[name]).reshape(shape)
        return cls(**fields)


# ----------------------------------------------------------------- the analysis


def logit_lens(
    model: Model,
    prompts: str | Sequence[str],
    *,
    vector: SteeringVector | None = None,
    alpha: float = 1.0,
    positions: ReadOut = "last",
    k: int = 5,
    lang: str | None = None,
    layers: Sequence[int] | None = None,
    steer_positions: Positions = "all",
    min_letters: int = 3,
    batch_size: int = 8,
    vector_name: str | None = None,
    lens: LensLike = "logit",
    progress: bool | None = None,
) -> LogitLensResult:
    """Run the logit lens on ``prompts``, unsteered and (with ``vector``) steered.

    Prompts longer than the model's context keep their first ``n_ctx`` tokens; one
    warning and ``meta["n_truncated"]`` give the count.

    Args:
        model: The model (bridge or HookedTransformer); it is not modified.
        prompts: One prompt or several, all in the same language.
        vector: If given, a second variant ``"steered"`` is run inside
            ``steer(model, vector, alpha=alpha, positions=steer_positions)``.
        alpha: Steering strength.
        positions: Which positions are read out: ``"last"`` (each prompt's last token,
            where the next token is predicted) or ``"all"`` (every token).
        k: Top tokens kept per layer and position.
        lang: The prompts' language (any spelling); ``None`` detects it from the prompts.
        layers: Layers to read out; all by default.
        steer_positions: Where the vector is added (see :func:`~interp_steer.steer`).
        min_letters: Fewest letters langdetect is asked to label (see
            :func:`~interp_steer.analysis.token_languages.token_language`).
        batch_size: Prompts per forward pass.
        vector_name: How figures name the vector (e.g. its file name); ``None``: its
            method and languages (``"mean_diff de→en"``).
        lens: The read-out: ``"logit"`` (final norm and unembedding), ``"tuned"`` (the
            tuned lens saved for this checkpoint by
            :func:`~interp_steer.analysis.fit_tuned_lens`, then the same) or a
            :class:`~interp_steer.analysis.TunedLens`. The last layer reads the same
            under both.
        progress: Show a bar over the forward passes and the token labelling; ``None``
            follows :func:`~interp_steer.progress.set_progress`.

    Returns:
        A :class:`LogitLensResult`.

    Raises:
        ValueError: No prompts, a bad option, an undetectable language without ``lang``,
            or a tuned lens of other weights.
        FileNotFoundError: ``lens="tuned"`` and no tuned lens saved for this checkpoint.

    >>> from interp_steer import load_model
    >>> model = load_model("tiny")
    >>> v = SteeringVector(torch.ones(64), layer=1)
    >>> res = logit_lens(model, ["Hallo", "Guten Tag"], vector=v, alpha=2.0, lang="de")
    >>> res.variants, res.tokens.shape
    (('base', 'steered'), (2, 4, 2, 5))
    """
    prompt_list = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompt_list or not all(isinstance(p, str) and p for p in prompt_list):
        raise ValueError("prompts must be one or more non-empty strings")
    if positions not in ("last", "all"):
        raise ValueError(f"positions must be 'last' or 'all', got {positions!r}")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= int(model.cfg.d_vocab):
        raise ValueError(f"k must be an int in 1..d_vocab, got {k!r}")
    layer_tuple = check_layers(model, range(int(model.cfg.n_layers)) if layers is None else layers)
    if not isinstance(lens, TunedLens) and lens not in LENSES:
        raise ValueError(f"lens must be one of {LENSES} or a TunedLens, got {lens!r}")
    tuned = resolve_lens(model, lens)
    if lang is None:
        code = detect_language(" ".join(prompt_list))
        if code == UND:
            raise ValueError("could not detect the prompts' language; pass lang=")
    else:
        code = canonical(lang)

    tokens, n_cut = context_tokens(model, prompt_list, warn="logit lens")
    item_prompt: list[int] = []
    item_position: list[int] = []
    for i, t in enumerate(tokens):
        pos = range(len(t)) if positions == "all" else [len(t) - 1]
        item_prompt.extend([i] * len(pos))
        item_position.extend(pos)
    tok = model.tokenizer
    pairs = zip(item_prompt, item_position, strict=True)
    item_token = [_decode(tok, int(tokens[p][q])) for p, q in pairs]

    variants = ["base"] if vector is None else ["base", "steered"]
    runs = readout_runs(model, tokens, layer_tuple, positions, batch_size, vector=vector,
                        alpha=alpha, steer_positions=steer_positions, desc="logit lens",
                        progress=progress)  # fmt: skip

    shape = (len(variants), len(layer_tuple), len(item_prompt), k)
    rows = torch.cat(
        [
            run[layer] if tuned is None else tuned.translate(run[layer], layer)
            for run in runs
            for layer in layer_tuple
        ]
    )
    probs, ids = top_tokens(model, rows, k)  # one pass over the unembedding for all
    special = set(getattr(tok, "all_special_ids", None) or [])
    decoded = {t: _decode(tok, t) for t in set(ids.flatten().tolist())}
    # one language per token string, decided once: the same token reads the same everywhere
    lang_of: dict[str, str] = {decoded[t]: UND for t in decoded if t in special}
    todo = sorted({s for s in decoded.values() if s not in lang_of})
    with progress_bar(todo, desc="token languages", unit="token", progress=progress) as bar:
        for text in bar:
            lang_of[text] = token_language(text, lang=code, min_letters=min_letters)
    top_tok = np.asarray([[decoded[t] for t in row] for row in ids.tolist()], dtype=object)
    top_lang = np.vectorize(lang_of.__getitem__, otypes=[object])(top_tok)

    meta: dict[str, Any] = {
        "k": k,
        "min_letters": min_letters,
        "alpha": alpha if vector is not None else None,
        "steer_positions": steer_positions if vector is not None else None,
        "lang_detected": lang is None,
        "vector": None if vector is None else vector_summary(vector, name=vector_name),
        "n_ctx": getattr(model.cfg, "n_ctx", None),
        "n_truncated": n_cut,
        **lens_meta(tuned),
    }
    return LogitLensResult(
        model=model_name(model),
        prompts=tuple(prompt_list),
        lang=code,
        layers=layer_tuple,
        variants=tuple(variants),
        readout=positions,
        item_prompt=np.asarray(item_prompt),
        item_position=np.asarray(item_position),
        item_token=np.asarray(item_token, dtype=str),
        tokens=top_tok.astype(str).reshape(shape),
        probs=probs.numpy().reshape(shape),
        langs=top_lang.astype(str).reshape(shape),
        meta=meta,
    )


def cloze_prompts(texts: str | Sequence[str]) -> list[str]:
    """Cut each sentence before its last word, for a lens read where the answer comes next.

    A whole sentence read at its last token shows what follows a full stop (the start of
    some next sentence); cut before its last word, the read-out position is where the
    model is about to produce a content word in the sentence's language. Final
    punctuation goes first; text without spaces (Chinese, Japanese, Thai) loses its last
    character instead of a word.

    Args:
        texts: Sentences (e.g. FLORES ``target`` sentences).

    Returns:
        One prompt per text, without trailing whitespace.

    Raises:
        ValueError: A text too short to cut (one character, or empty), naming it.

    >>> cloze_prompts(["Der Hund schläft auf dem Sofa.", "我哭了。"])
    ['Der Hund schläft auf dem', '我哭']
    """
    out = []
    for text in [texts] if isinstance(texts, str) else list(texts):
        body = re.sub(r"[\W_]+$", "", str(text).strip())
        last_space = re.search(r"\s+\S+$", body)
        prompt = body[: last_space.start()] if last_space else body[:-1]
        if not prompt.strip():
            raise ValueError(f"cannot cut {text!r} before a last word: too short for a cloze")
        out.append(prompt.rstrip())
    return out


def _decode(tokenizer: Any, token_id: int) -> str:
    return str(tokenizer.decode([token_id]))


def lens_shares_table(result: Any) -> pd.DataFrame:
    """Per variant and layer, the share of top tokens in each language bucket."""
    shares = result.shares()
    rows = [
        {
            "variant": variant,
            "layer": layer,
            **{name: float(shares[v, y, b]) for b, name in enumerate(result.bucket_names)},
        }
        for v, variant in enumerate(result.variants)
        for y, layer in enumerate(result.layers)
    ]
    return pd.DataFrame(rows)


__all__ = [
    "FORMAT",
    "LogitLensResult",
    "cloze_prompts",
    "lens_shares_table",
    "logit_lens",
]
