"""Tuned lens: one learned affine translator per layer before the model's own read-out.

The logit lens (:func:`~interp_steer.analysis.project_to_vocab`) reads layer ``l``'s
residual stream ``h`` through the final norm and unembedding as if it were the last
layer's. Early layers are not in the last layer's basis, so that read-out is poor there.
The tuned lens (Belrose et al. 2023, "Eliciting Latent Predictions from Transformers with
the Tuned Lens") first maps ``h`` with a translator trained for its layer::

    translate_l(h) = h + h @ A_l.T + b_l        (A_l, b_l = 0 at initialisation: identity)

and then applies the same final norm and unembedding. The translators are trained to
minimise ``KL(final distribution || lens distribution)`` over every (non-BOS) position of
a text corpus; the last layer's translator is the identity, so the tuned lens's last layer
is the model's output exactly. The default corpus is a multilingual mix of FLORES-200
sentences (Tatoeba where FLORES lacks a language), because a lens trained on English alone
misreads other languages; the mix is recorded in the lens's ``meta``.

:func:`fit_tuned_lens` trains and (by default) saves a lens next to the converted models
(``cache_dir() / "tuned_lens" / "<model>-<fingerprint>"``), keyed by the checkpoint's
:func:`~interp_steer.activations.model_fingerprint`; :func:`load_tuned_lens` finds it again.
:func:`lens_kl` measures a lens's mean KL to the final distribution per layer on held-out
text (:func:`lens_texts` with ``part="heldout"``). Every lens analysis
(:func:`~interp_steer.analysis.logit_lens`, :func:`~interp_steer.analysis.language_trajectory`)
takes ``lens="logit" | "tuned"`` or a :class:`TunedLens`.

Example:
    >>> from interp_steer import load_model
    >>> model = load_model("tiny")
    >>> texts, mix = lens_texts(["en", "de"], n_per_lang=2)
    >>> lens = fit_tuned_lens(model, texts, epochs=1, save=False)
    >>> lens.weight.shape, lens.bias.shape, bool((lens.weight[-1] == 0).all())
    ((4, 64, 64), (4, 64), True)
    >>> logit, tuned = lens_kl(model, texts, "logit"), lens_kl(model, texts, lens)
    >>> float(logit[-1]), float(tuned[-1])  # the last layer is the model's output
    (0.0, 0.0)
"""

import functools
import hashlib
import json
import math
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias, get_args

import numpy as np
import pandas as pd
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open

from interp_steer.activations.cache import model_fingerprint
from interp_steer.analysis.vocab_projection import project_to_vocab, readout_residuals
from interp_steer.constants import check_count
from interp_steer.data.languages import ENGLISH, canonical
from interp_steer.data.parallel import load_parallel
from interp_steer.data.sources import available_languages
from interp_steer.models.backend import Model, output_logits, own_parameters
from interp_steer.models.batching import context_tokens
from interp_steer.models.loading import cache_dir, model_name
from interp_steer.progress import progress_bar
from interp_steer.storage import write_tensors

FORMAT = "interp_steer.TunedLens"
FORMAT_VERSION = "1"

Lens = Literal["logit", "tuned"]
"""How a layer's residual stream is read out: ``"logit"`` (the model's final norm and
unembedding) or ``"tuned"`` (the model's saved :class:`TunedLens` first, then the same)."""

LENSES: tuple[str, ...] = get_args(Lens)
"""Every value of :data:`Lens`."""

Precision = Literal["auto", "bfloat16", "float32"]
"""The unembedding's precision while training (evaluation is always float32). ``"auto"``:
bfloat16 where the hardware multiplies it natively (CUDA; a CPU with AVX512-BF16 or AMX),
float32 elsewhere: on a CPU without them (AVX2 only) PyTorch emulates bfloat16, and the
unembedding's product forward and back takes about 75 times longer than in float32."""

Part = Literal["train", "heldout"]
"""Which sentences :func:`lens_texts` gives: the training ones or the held-out ones."""

DEFAULT_LANGS: tuple[str, ...] = (
    "en", "de", "fr", "es", "ru", "zh", "ja", "sw", "ar", "hi", "ko", "tr",
)  # fmt: skip
"""The default training mix: English, the default model's languages and four more scripts."""

HELDOUT = 100
"""Sentences at the end of each language's file kept out of training (FLORES: 912-1011)."""

SUBDIR = "tuned_lens"
"""Folder under :func:`~interp_steer.models.cache_dir` holding the saved lenses."""


# ----------------------------------------------------------------- the lens


@dataclass(frozen=True, eq=False)
class TunedLens:
    """One affine translator per layer: ``translate_l(h) = h + h @ weight[l].T + bias[l]``.

    Attributes:
        model: Name of the model it was trained on.
        fingerprint: That checkpoint's :func:`~interp_steer.activations.model_fingerprint`.
        weight: ``[n_layers, d_model, d_model]`` float32: ``A_l`` of every layer (the last
            layer's is zero: its read-out is the model's output).
        bias: ``[n_layers, d_model]`` float32: ``b_l`` (the last layer's is zero).
        meta: The training texts (languages, datasets, sentences per language, tokens),
            the settings, the training loss per step and layer, and the time it took.
            JSON-serialisable.

    Raises:
        ValueError: Shapes that do not match, values that are not finite, or a last layer
            that is not the identity.

    >>> lens = TunedLens.identity(model="m", fingerprint="f", n_layers=2, d_model=3)
    >>> h = torch.randn(5, 3)
    >>> bool((lens.translate(h, 0) == h).all()), lens.n_layers
    (True, 2)
    """

    model: str
    fingerprint: str
    weight: np.ndarray
    bias: np.ndarray
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        set_ = functools.partial(object.__setattr__, self)
        set_("weight", _float32(self.weight))
        set_("bias", _float32(self.bias))
        set_("meta", dict(self.meta))
        if not self.model or not self.fingerprint:
            raise ValueError("model and fingerprint must be non-empty strings")
        w, b = self.weight.shape, self.bias.shape
        if len(w) != 3 or w[1] != w[2] or b != w[:2] or w[0] < 1:
            raise ValueError(
                f"weight must be [n_layers, d_model, d_model] and bias [n_layers, d_model], "
                f"got {w} and {b}"
            )
        if not (np.isfinite(self.weight).all() and np.isfinite(self.bias).all()):
            raise ValueError("weight and bias must be finite")
        if self.weight[-1].any() or self.bias[-1].any():
            raise ValueError("the last layer's translator must be the identity (zero A and b)")

    @classmethod
    def identity(cls, *, model: str, fingerprint: str, n_layers: int, d_model: int) -> "TunedLens":
        """A lens whose every translator is the identity: it reads out as the logit lens."""
        n, d = check_count("n_layers", n_layers), check_count("d_model", d_model)
        zeros = np.zeros((n, d, d), np.float32)
        return cls(model, fingerprint, zeros, np.zeros((n, d), np.float32), {"trained": False})

    @classmethod
    def for_model(cls, model: Model) -> "TunedLens":
        """The lens saved for this checkpoint (see :func:`load_tuned_lens`)."""
        return load_tuned_lens(model)

    @property
    def n_layers(self) -> int:
        """How many layers (translators) the lens has."""
        return int(self.weight.shape[0])

    @property
    def d_model(self) -> int:
        """Width of the residual stream it translates."""
        return int(self.weight.shape[1])

    @functools.cached_property
    def _tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(self.weight), torch.from_numpy(self.bias)

    def translate(self, resid: torch.Tensor, layer: int) -> torch.Tensor:
        """Map layer ``layer``'s residuals ``[..., d_model]`` into the last layer's basis.

        Float32 out (the last layer: ``resid`` itself, untouched).

        Raises:
            ValueError: ``layer`` is not a layer of the lens, or the width differs.
        """
        if isinstance(layer, bool) or not 0 <= int(layer) < self.n_layers:
            raise ValueError(f"layer must be in 0..{self.n_layers - 1}, got {layer!r}")
        if resid.shape[-1] != self.d_model:
            raise ValueError(f"resid has width {resid.shape[-1]}, the lens {self.d_model}")
        if layer == self.n_layers - 1:
            return resid
        w, b = (t.to(resid.device) for t in self._tensors)
        x = resid.float()
        return x + x @ w[layer].T + b[layer]

    def check_model(self, model: Model) -> None:
        """Raise ``ValueError`` unless ``model`` is the checkpoint the lens was trained on."""
        n, d = int(model.cfg.n_layers), int(model.cfg.d_model)
        if (n, d) != (self.n_layers, self.d_model):
            raise ValueError(
                f"this tuned lens has {self.n_layers} layers of width {self.d_model}; the "
                f"model has {n} of width {d}"
            )
        found = model_fingerprint(model)
        if found != self.fingerprint:
            raise ValueError(
                f"this tuned lens was trained on {self.model} (fingerprint {self.fingerprint}); "
                f"the model's weights have fingerprint {found}: fit one with fit_tuned_lens"
            )

    def info(self) -> dict[str, Any]:
        """What results record about the lens: model, fingerprint and training texts."""
        return {
            "model": self.model,
            "fingerprint": self.fingerprint,
            "checksum": self.checksum,
            "texts": self.meta.get("texts"),
            "n_tokens": self.meta.get("n_tokens"),
        }

    @functools.cached_property
    def checksum(self) -> str:
        """``sha256:<hex>`` of the weight and bias bytes (float32, little-endian, C order)."""
        digest = hashlib.sha256(np.ascontiguousarray(self.weight, "<f4").tobytes())
        digest.update(np.ascontiguousarray(self.bias, "<f4").tobytes())
        return f"sha256:{digest.hexdigest()}"

    def to_frame(self) -> pd.DataFrame:
        """The training loss: one row per step and trained layer (``step, layer, kl``)."""
        loss = np.asarray(self.meta.get("train_kl") or np.zeros((0, 0)), dtype=np.float64)
        steps, layers = np.indices(loss.shape).reshape(2, -1)
        return pd.DataFrame({"step": steps, "layer": layers, "kl": loss.reshape(-1)})

    # -- persistence -------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``<path>.safetensors`` (weight, bias) and ``<path>.json`` (everything else).

        Both are written to temporary names first; the JSON, which carries the tensors'
        :attr:`checksum`, is renamed into place last, so :meth:`load` never reads a JSON
        with tensors from another lens.

        Returns:
            The path of the JSON file.

        >>> import tempfile, pathlib
        >>> lens = TunedLens.identity(model="m", fingerprint="f", n_layers=2, d_model=3)
        >>> path = lens.save(pathlib.Path(tempfile.mkdtemp()) / "lens")
        >>> path.name, TunedLens.load(path).checksum == lens.checksum
        ('lens.json', True)
        """
        stem = _stem(Path(path))
        header = {"format": FORMAT, "format_version": FORMAT_VERSION, "checksum": self.checksum}
        readable = {
            **header,
            "model": self.model,
            "fingerprint": self.fingerprint,
            "n_layers": self.n_layers,
            "d_model": self.d_model,
            "meta": self.meta,
        }
        tensors = {"weight": torch.from_numpy(self.weight), "bias": torch.from_numpy(self.bias)}
        _, written = write_tensors(stem.with_suffix(".safetensors"), tensors, header, readable,
                                   last="json")  # fmt: skip
        return written

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "TunedLens":
        """Read a lens written by :meth:`save` (``path``: either file, or their stem).

        Raises:
            FileNotFoundError: A file is missing.
            ValueError: A file is not a tuned lens, is damaged, or the tensors do not match
                the JSON's checksum.
        """
        stem = _stem(Path(path))
        tensor_path, json_path = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
        for p in (json_path, tensor_path):
            if not p.is_file():
                raise FileNotFoundError(f"no tuned lens file at {p}")
        try:
            info = json.loads(json_path.read_text(encoding="utf-8"))
            with safe_open(str(tensor_path), framework="pt") as f:
                header = f.metadata() or {}
            tensors = load_file(str(tensor_path))
        except (SafetensorError, OSError, ValueError) as err:
            raise ValueError(f"{stem}: not a readable tuned lens (truncated?): {err}") from None
        if (
            not isinstance(info, dict)
            or info.get("format") != FORMAT
            or header.get("format") != FORMAT
            or set(tensors) != {"weight", "bias"}
        ):
            raise ValueError(f"{stem}: not an interp_steer tuned lens (format {FORMAT!r})")
        if info.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{stem}: unknown format_version {info.get('format_version')!r}")
        lens = cls(
            model=str(info["model"]),
            fingerprint=str(info["fingerprint"]),
            weight=tensors["weight"].numpy(),
            bias=tensors["bias"].numpy(),
            meta=dict(info.get("meta") or {}),
        )
        if lens.checksum != info.get("checksum") or lens.checksum != header.get("checksum"):
            raise ValueError(
                f"{stem}: the tensors do not match the checksum in the JSON (a damaged or "
                "half-replaced lens); fit it again with fit_tuned_lens"
            )
        return lens


def _float32(values: Any) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.ascontiguousarray(values, dtype=np.float32)


def _stem(path: Path) -> Path:
    return path.with_suffix("") if path.suffix in (".json", ".safetensors") else path


LensLike: TypeAlias = Lens | TunedLens
"""What a lens analysis takes: ``"logit"``, ``"tuned"`` (the model's saved lens) or a lens."""


# ----------------------------------------------------------------- where lenses live


def tuned_lens_path(model: Model) -> Path:
    """Where :func:`fit_tuned_lens` saves this checkpoint's lens (the files' stem).

    ``cache_dir() / "tuned_lens" / "<model>-<fingerprint>" / "lens"``, ``.safetensors``
    and ``.json``; the model name's ``/`` becomes ``--``.

    >>> from interp_steer import load_model
    >>> tuned_lens_path(load_model("tiny")).parent.name.startswith("tiny-")
    True
    """
    name = re.sub(r"[^\w.-]+", "--", model_name(model))
    return cache_dir() / SUBDIR / f"{name}-{model_fingerprint(model)}" / "lens"


def load_tuned_lens(model: Model) -> TunedLens:
    """Load the tuned lens saved for this checkpoint (found by its weights' fingerprint).

    Raises:
        FileNotFoundError: None was saved for these weights; the message says to run
            :func:`fit_tuned_lens`.

    >>> from interp_steer import load_model
    >>> import tempfile, os
    >>> os.environ["INTERP_STEER_CACHE"] = tempfile.mkdtemp()
    >>> load_tuned_lens(load_model("tiny"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    FileNotFoundError: no tuned lens for tiny with these weights (fingerprint ...); ...
    >>> del os.environ["INTERP_STEER_CACHE"]
    """
    stem = tuned_lens_path(model)
    if not stem.with_suffix(".json").is_file():
        raise FileNotFoundError(
            f"no tuned lens for {model_name(model)} with these weights (fingerprint "
            f"{stem.parent.name.rsplit('-', 1)[-1]}); looked in {stem.parent}. Train one with "
            "fit_tuned_lens(model) (it saves it there), or pass lens='logit'"
        )
    return TunedLens.load(stem)


def resolve_lens(model: Model, lens: LensLike) -> TunedLens | None:
    """The translators a lens option stands for: None for ``"logit"``, else a checked lens.

    Raises:
        ValueError: An unknown option, or a :class:`TunedLens` of other weights.
        FileNotFoundError: ``"tuned"`` and no lens saved for this checkpoint.

    >>> from interp_steer import load_model
    >>> resolve_lens(load_model("tiny"), "logit") is None
    True
    """
    if isinstance(lens, TunedLens):
        lens.check_model(model)
        return lens
    if lens == "logit":
        return None
    if lens == "tuned":
        return load_tuned_lens(model)
    raise ValueError(f"lens must be one of {LENSES} or a TunedLens, got {lens!r}")


def lens_meta(lens: TunedLens | None) -> dict[str, Any]:
    """What a result records about its read-out: ``{"lens": ..., "tuned_lens": ...}``."""
    return {"lens": "logit" if lens is None else "tuned",
            "tuned_lens": None if lens is None else lens.info()}  # fmt: skip


# ----------------------------------------------------------------- training texts


def lens_texts(
    langs: Sequence[str] = DEFAULT_LANGS, n_per_lang: int = 2, *, part: Part = "train"
) -> tuple[list[str], dict[str, Any]]:
    """A multilingual text mix for training (``"train"``) or checking (``"heldout"``) a lens.

    FLORES-200 devtest sentences of each language (English included), Tatoeba where
    FLORES lacks the language. The last :data:`HELDOUT` sentences of each file are the
    held-out part and never train; FLORES is parallel, so the held-out sentences say
    something else than the training ones in every language.

    Args:
        langs: Languages, any spelling.
        n_per_lang: Sentences per language (at most :data:`HELDOUT` for ``"heldout"``).
        part: ``"train"`` (from the start of each file) or ``"heldout"`` (its last
            :data:`HELDOUT` sentences).

    Returns:
        The texts, language by language, and the mix: ``{"part", "langs", "n_per_lang",
        "sources": {lang: {"dataset", "lines": [start, stop]}}}``.

    Raises:
        ValueError: An unknown language, a bad count or part, or too few sentences.

    >>> texts, mix = lens_texts(["en", "sw", "uk"], n_per_lang=2, part="heldout")
    >>> len(texts), mix["sources"]["en"], mix["sources"]["uk"]["dataset"]
    (6, {'dataset': 'flores', 'lines': [912, 914]}, 'tatoeba')
    """
    n = check_count("n_per_lang", n_per_lang)
    if part not in get_args(Part):
        raise ValueError(f"part must be one of {get_args(Part)}, got {part!r}")
    codes = [canonical(lang) for lang in langs]
    if not codes or len(set(codes)) != len(codes):
        raise ValueError(f"langs must be non-empty and distinct, got {list(langs)}")
    if part == "heldout" and n > HELDOUT:
        raise ValueError(f"n_per_lang must be at most {HELDOUT} for the held-out part, got {n}")
    flores = set(available_languages("flores"))
    texts: list[str] = []
    sources: dict[str, Any] = {}
    for code in codes:
        if code == ENGLISH:
            dataset, lines = "flores", list(load_parallel("flores", "de").english)
        elif code in flores:
            dataset, lines = "flores", list(load_parallel("flores", code).target)
        elif code in available_languages("tatoeba"):
            dataset, lines = "tatoeba", list(load_parallel("tatoeba", code).target)
        else:
            raise ValueError(f"no FLORES or Tatoeba sentences for {code!r}")
        first = len(lines) - HELDOUT if part == "heldout" else 0
        if part == "train" and n > len(lines) - HELDOUT:
            raise ValueError(
                f"{dataset} {code} has {len(lines) - HELDOUT} training sentences, fewer "
                f"than n_per_lang={n}"
            )
        texts.extend(lines[first : first + n])
        sources[code] = {"dataset": dataset, "lines": [first, first + n]}
    mix = {"part": part, "langs": codes, "n_per_lang": n, "sources": sources}
    return texts, mix


# ----------------------------------------------------------------- training


def fit_tuned_lens(
    model: Model,
    texts: Sequence[str] | None = None,
    *,
    langs: Sequence[str] = DEFAULT_LANGS,
    n_per_lang: int = 2,
    max_tokens: int = 32,
    epochs: int = 1,
    batch_tokens: int = 16,
    lr: float = 1e-4,
    bias_lr: float = 1e-2,
    precision: Precision = "auto",
    batch_size: int = 8,
    seed: int = 0,
    save: bool = True,
    progress: bool | None = None,
) -> TunedLens:
    """Train a tuned lens: one identity-initialised affine translator per layer.

    The recipe of Belrose et al. (2023): every layer's residual stream
    (``blocks.{l}.hook_resid_post``) is collected once, without gradients, at every
    position but BOS; each layer's translator ``h + h @ A.T + b`` is trained, through the
    model's frozen final norm and unembedding, to minimise the mean
    ``KL(final distribution || lens distribution)`` over positions. The translators are
    independent, so all layers train at once: Adam on shuffled batches of
    ``batch_tokens`` positions, both rates decaying linearly to zero, the bias's rate
    in units of its layer's residual RMS (so a layer whose residual is 100 times larger
    moves its bias 100 times further). The last layer's translator stays the identity.
    The unembedding's matrix product runs in ``precision`` (``"auto"``: bfloat16, as in
    the reference implementation's autocast, where the hardware has it natively, several
    times faster on CPUs with AMX; float32 on other CPUs, where emulated bfloat16 is far
    slower); the targets are float32. ``meta["precision"]`` records the one used.

    Cost: every step multiplies ``batch_tokens x (n_layers - 1)`` rows by the unembedding
    forward and back, which dominates (Gemma-3's 262k-token vocabulary): the defaults
    (12 languages x 2 sentences x 32 tokens: ~700 positions, one epoch) took 4.8 minutes
    on gemma-3-270m on two shared CPU cores with AMX, in bfloat16
    (``benchmarks/bench_lens.py``); the reference trains on far more.

    Args:
        model: The model; it is not modified.
        texts: Training texts; ``None``: :func:`lens_texts` of ``langs`` and
            ``n_per_lang`` (FLORES, Tatoeba where FLORES lacks a language).
        langs: Languages of the default mix.
        n_per_lang: Sentences per language of the default mix.
        max_tokens: Tokens kept per text (BOS included); longer texts are cut.
        epochs: Passes over the training positions.
        batch_tokens: Positions per optimiser step.
        lr: Adam's learning rate of the matrices ``A`` (peak; it decays linearly to zero).
        bias_lr: Adam's learning rate of the biases ``b``, in units of the layer's
            residual RMS.
        precision: The unembedding's precision while training (:data:`Precision`).
        batch_size: Texts per forward pass when collecting the residuals.
        seed: Seed of the batch order.
        save: Save the lens where :func:`load_tuned_lens` finds it
            (:func:`tuned_lens_path`).
        progress: Show a bar over the steps; ``None`` follows
            :func:`~interp_steer.progress.set_progress`.

    Returns:
        The :class:`TunedLens`, its ``meta`` holding the text mix, the settings, the
        training KL per step and layer (``train_kl``) and the time taken.

    Raises:
        ValueError: No texts, a bad option, or texts with no position but BOS.

    >>> from interp_steer import load_model
    >>> model = load_model("tiny")
    >>> lens = fit_tuned_lens(model, ["Hallo Welt", "Hello world"], epochs=2, save=False)
    >>> lens.meta["n_tokens"], lens.meta["steps"], len(lens.meta["train_kl"][0])
    (21, 4, 3)
    """
    start = time.perf_counter()
    if precision not in get_args(Precision):
        raise ValueError(f"precision must be one of {get_args(Precision)}, got {precision!r}")
    for name, value in (("max_tokens", max_tokens), ("epochs", epochs),
                        ("batch_tokens", batch_tokens), ("batch_size", batch_size)):  # fmt: skip
        check_count(name, value, minimum=2 if name == "max_tokens" else 1)
    for name, rate in (("lr", lr), ("bias_lr", bias_lr)):
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate < math.inf:
            raise ValueError(f"{name} must be a positive number, got {rate!r}")
    if texts is None:
        text_list, mix = lens_texts(langs, n_per_lang, part="train")
    else:
        text_list = [texts] if isinstance(texts, str) else list(texts)
        if not text_list or not all(isinstance(t, str) and t for t in text_list):
            raise ValueError("texts must be one or more non-empty strings")
        mix = {"part": "user", "n_texts": len(text_list)}
    resid = _positions(model, text_list, max_tokens, batch_size)  # [n_tok, n_layers, d]
    n_tok, n_layers, d = resid.shape
    fingerprint = model_fingerprint(model)

    scale = resid.pow(2).mean((0, 2)).sqrt()  # each layer's residual RMS
    weights = [torch.zeros(d, d, requires_grad=True) for _ in range(n_layers - 1)]
    biases = [torch.zeros(d, requires_grad=True) for _ in range(n_layers - 1)]  # b / RMS
    steps_per_epoch = math.ceil(n_tok / batch_tokens)
    steps = epochs * steps_per_epoch
    opt = torch.optim.Adam(
        [{"params": weights, "lr": float(lr)}, {"params": biases, "lr": float(bias_lr)}]
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 - s / steps)
    readout = _Readout(model, precision)
    precision = readout.precision
    gen = torch.Generator().manual_seed(seed)
    train_kl: list[list[float]] = []
    with progress_bar(total=steps, desc="tuned lens", unit="step", progress=progress) as bar:
        for _ in range(epochs):
            order = torch.randperm(n_tok, generator=gen)
            for first in range(0, n_tok, batch_tokens):
                rows = resid[order[first : first + batch_tokens]]
                with torch.no_grad():
                    target = readout.exact(rows[:, -1]).log_softmax(-1)
                    p_target = target.exp()
                    neg_entropy = (p_target * target).sum(-1)
                losses = []
                for layer in range(n_layers - 1):
                    h = rows[:, layer]
                    w, b = weights[layer], biases[layer]
                    z = readout.train(h + h @ w.T + b * scale[layer])
                    # KL = sum p (log p - z + logsumexp z): no log-softmax tensor to keep
                    kl = (neg_entropy - (p_target * z).sum(-1) + z.logsumexp(-1)).mean()
                    w.grad, b.grad = torch.autograd.grad(kl, (w, b))
                    losses.append(float(kl.detach()))
                opt.step()
                opt.zero_grad(set_to_none=True)
                sched.step()
                train_kl.append(losses)
                bar.update(1)
                bar.set_postfix(kl=f"{np.mean(losses):.3f}")

    weight = np.zeros((n_layers, d, d), np.float32)
    bias = np.zeros((n_layers, d), np.float32)
    with torch.no_grad():
        for layer in range(n_layers - 1):
            weight[layer] = weights[layer].numpy()
            bias[layer] = (biases[layer] * scale[layer]).numpy()
    meta = {
        "trained": True,
        "texts": mix,
        "n_texts": len(text_list),
        "n_tokens": int(n_tok),
        "max_tokens": max_tokens,
        "bos_excluded": True,
        "epochs": epochs,
        "steps": steps,
        "batch_tokens": batch_tokens,
        "optimizer": "adam",
        "lr": float(lr),
        "bias_lr": float(bias_lr),
        "bias_lr_unit": "residual RMS of the layer",
        "schedule": "linear decay to 0",
        "precision": precision,
        "seed": seed,
        "loss": "KL(final || lens), mean over positions",
        "train_kl": train_kl,
        "seconds": round(time.perf_counter() - start, 3),
    }
    lens = TunedLens(model_name(model), fingerprint, weight, bias, meta)
    if save:
        lens.save(tuned_lens_path(model))
    return lens


class _Readout:
    """The frozen read-out while training: exact float32, and one in ``precision``."""

    def __init__(self, model: Model, precision: Precision) -> None:
        self.model = model
        param = next(own_parameters(model))[1]
        self.device, self.dtype = param.device, param.dtype
        if precision == "auto":
            precision = "bfloat16" if _native_bfloat16(self.device) else "float32"
        self.precision: Precision = precision
        low = torch.bfloat16 if precision == "bfloat16" else torch.float32
        self.w_u = model.unembed.W_U.detach().to(low)
        b_u = getattr(model.unembed, "b_U", None)
        self.b_u = None if b_u is None else b_u.detach().float()

    def exact(self, resid: torch.Tensor) -> torch.Tensor:
        return project_to_vocab(self.model, resid).cpu()

    def train(self, resid: torch.Tensor) -> torch.Tensor:
        normed = self.model.ln_final(resid.to(device=self.device, dtype=self.dtype)[None])[0]
        logits = (normed.to(self.w_u.dtype) @ self.w_u).float()
        if self.b_u is not None:
            logits = logits + self.b_u
        return output_logits(self.model, logits).cpu()  # the model's own soft-cap, scale


def _native_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bfloat16 matrices natively.

    CUDA, or a CPU with AVX512-BF16 or AMX (what oneDNN reports); not an AVX2-only CPU,
    where PyTorch emulates it.
    """
    if device.type != "cpu":
        return device.type == "cuda"
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def _positions(model: Model, texts: list[str], max_tokens: int, batch_size: int) -> torch.Tensor:
    """Every layer's residual at every non-BOS position: ``[n_positions, n_layers, d]``."""
    tokens = [t[:max_tokens] for t in context_tokens(model, texts)[0]]
    layers = tuple(range(int(model.cfg.n_layers)))
    resid = readout_residuals(model, tokens, layers, "all", batch_size)
    keep = torch.ones(sum(len(t) for t in tokens), dtype=torch.bool)
    bos = getattr(model.tokenizer, "bos_token_id", None)
    if bos is not None:
        keep = torch.cat(tokens) != bos
    if not keep.any():
        raise ValueError("the texts have no position but BOS to train or check a lens on")
    return torch.stack([resid[layer][keep] for layer in layers], 1)


# ----------------------------------------------------------------- checking


def lens_kl(
    model: Model,
    texts: Sequence[str],
    lens: LensLike = "logit",
    *,
    max_tokens: int = 64,
    batch_size: int = 8,
    progress: bool | None = None,
) -> np.ndarray:
    """Mean ``KL(final distribution || lens distribution)`` per layer, in nats.

    Over every non-BOS position of ``texts`` (cut to ``max_tokens`` tokens), read out in
    float32; the last layer's is 0 for every lens.

    Args:
        model: The model; it is not modified.
        texts: The texts, e.g. ``lens_texts(part="heldout")[0]``.
        lens: ``"logit"``, ``"tuned"`` (the checkpoint's saved lens) or a :class:`TunedLens`.
        max_tokens: Tokens kept per text (BOS included).
        batch_size: Texts per forward pass.
        progress: Show a bar over the positions.

    Returns:
        ``[n_layers]`` float64.

    Raises:
        ValueError: No texts, or a lens of other weights.
        FileNotFoundError: ``"tuned"`` and no lens saved for this checkpoint.

    >>> from interp_steer import load_model
    >>> model = load_model("tiny")
    >>> kl = lens_kl(model, ["Hallo Welt"])
    >>> kl.shape, float(kl[-1]), bool((kl[:-1] > 0).all())
    ((4,), 0.0, True)
    """
    text_list = [texts] if isinstance(texts, str) else list(texts)
    if not text_list or not all(isinstance(t, str) and t for t in text_list):
        raise ValueError("texts must be one or more non-empty strings")
    check_count("max_tokens", max_tokens, minimum=2)
    tuned = resolve_lens(model, lens)
    resid = _positions(model, text_list, max_tokens, check_count("batch_size", batch_size))
    n_tok, n_layers, _ = resid.shape
    chunk = max(1, (1 << 24) // int(model.cfg.d_vocab))
    total = np.zeros(n_layers)
    with (
        torch.inference_mode(),
        progress_bar(total=n_tok, desc="lens KL", unit="position", progress=progress) as bar,
    ):
        for first in range(0, n_tok, chunk):
            rows = resid[first : first + chunk]
            target = project_to_vocab(model, rows[:, -1]).cpu().log_softmax(-1)
            p_target = target.exp()
            for layer in range(n_layers):
                h = rows[:, layer] if tuned is None else tuned.translate(rows[:, layer], layer)
                logp = project_to_vocab(model, h).cpu().log_softmax(-1)
                total[layer] += float((p_target * (target - logp)).sum(-1).double().sum())
            bar.update(rows.shape[0])
    return total / n_tok


__all__ = [
    "DEFAULT_LANGS",
    "FORMAT",
    "HELDOUT",
    "LENSES",
    "Lens",
    "LensLike",
    "Part",
    "Precision",
    "TunedLens",
    "fit_tuned_lens",
    "lens_kl",
    "lens_meta",
    "lens_texts",
    "load_tuned_lens",
    "resolve_lens",
    "tuned_lens_path",
]
