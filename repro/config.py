"""The study's sizes and the rows of its tables.

:class:`StudyConfig` holds every size of a run (:data:`STUDY` is ``make results``,
:data:`QUICK` a smoke run on the tiny model). A table row is a :class:`Row`: a baseline, a
fitting method's steering vector, or the LoRA fine-tune ``sft`` (the paper's §7 SFT
comparison), trained on the same pairs.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from interp_steer.constants import FORCING_LANGS

__all__ = [
    "ADAPTER_ROWS",
    "AS_TRAINED",
    "BASELINE_ROWS",
    "FORCING_QUICK",
    "HYPER",
    "QUICK",
    "SFT_NOTE",
    "STUDY",
    "ForcingConfig",
    "Row",
    "RowKind",
    "StudyConfig",
    "bipo_note",
    "method_rows",
    "steered_rows",
]

BASELINE_ROWS = ("basic", "translate_test", "self_translate", "xlt", "k_shot")
"""Baseline rows of the main table, in order (the steering methods follow)."""

ADAPTER_ROWS = ("sft",)
"""Rows that fine-tune the model (a LoRA adapter) instead of adding a steering vector."""

AS_TRAINED = ("mse", "bipo")
"""Methods whose vectors the paper applies as trained (α = 1), not at a selected strength."""

HYPER: dict[str, dict[str, Any]] = {
    "mse": {"solver": "adamw"},
    "bipo": {"lr_scale": "resid", "warmup_steps": 100, "epochs": 1, "batch_size": 1},
}
"""Hyper-parameters the study passes (and checks on saved vectors) per method: ``mse`` is
the paper's AdamW training; ``bipo`` is trained as the paper trains it (batch 1, 100
warm-up steps, one epoch over every fitting pair: the learning-rate selection's setting)
with the scale-aware learning rate; the study's vectors use the ``lr``, then the
``epochs``, selected on held-out pairs (:func:`repro.vectors.bipo_hyper`)."""


def bipo_note(hyper: Mapping[str, Any]) -> str:
    """How the pages describe the ``bipo`` row at the chosen ``lr`` and ``epochs``.

    The caller adds the pairs.

    >>> bipo_note({"lr": 1e-3, "epochs": 2})[-60:]
    'for 2 epochs (the paper: one), both chosen on held-out pairs'
    """
    epochs = hyper["epochs"]
    return (
        "`bipo` is BiPO trained as the paper trains it (β 0.1, AdamW with weight decay 0.05, "
        "cosine schedule with 100 warm-up steps, batch 1, EOS after each response), but at "
        f"the scale-aware learning rate ({hyper['lr']:g} × the layer's mean residual norm: "
        "at the paper's literal 5e-4 a vector on this model stays ≈1e-5 of ‖h‖ and changes "
        f"nothing) and for {epochs} epoch{'s' if epochs != 1 else ''} (the paper: one), both "
        "chosen on held-out pairs"
    )


SFT_NOTE = (
    "`sft` is a LoRA fine-tune (the paper's §7 SFT comparison, scaled to this model; "
    '`interp_steer.fitting.fit_lora`\'s defaults) on the "repeat in English" pairs BiPO '
    "prefers, applied by merging the adapter into the weights while the row runs"
)
"""How the pages describe the ``sft`` row."""

RowKind = Literal["baseline", "vector", "adapter"]
"""What a row runs with: nothing (a baseline), a steering vector, or a LoRA adapter."""


@dataclass(frozen=True)
class Row:
    """A row of the study's tables: a baseline, a fitting method, or an adapter (``sft``).

    Attributes:
        method: The baseline, fitting method or adapter row's name.

    >>> Row("bipo").kind, Row("basic").kind, Row("sft").kind
    ('vector', 'baseline', 'adapter')
    """

    method: str

    @property
    def name(self) -> str:
        """The row's name in tables and file names."""
        return self.method

    @property
    def kind(self) -> RowKind:
        """``"baseline"`` (no vector), ``"vector"`` (steered) or ``"adapter"`` (fine-tuned)."""
        if self.method in BASELINE_ROWS:
            return "baseline"
        return "adapter" if self.method in ADAPTER_ROWS else "vector"

    @property
    def baseline(self) -> bool:
        """Whether the row is a baseline (no vector, no adapter)."""
        return self.kind == "baseline"


def steered_rows(methods: tuple[str, ...]) -> tuple[Row, ...]:
    """The steered rows of the main table, one per method (``sft`` included), in order.

    >>> steered_rows(("pca", "bipo", "sft"))[2].kind
    'adapter'
    """
    return tuple(Row(m) for m in methods)


def method_rows(methods: tuple[str, ...]) -> tuple[str, ...]:
    """The names of :func:`steered_rows`.

    >>> method_rows(("mean_diff", "bipo"))
    ('mean_diff', 'bipo')
    """
    return tuple(r.name for r in steered_rows(methods))


@dataclass(frozen=True)
class ForcingConfig:
    """Sizes of the study's language-forcing benchmark (:mod:`repro.forcing`).

    The prompts are FLORES devtest lines: selection ``[0, n_select)``, test the next
    ``n_test``, vectors fitted on the last ``n_fit`` pairs
    (:func:`~interp_steer.analysis.forcing_benchmark`).

    Attributes:
        langs: Languages of the method comparison (both directions).
        methods: Fitting methods compared (all with ``add``).
        layers: Layers of the method comparison.
        ratios: ``add`` strengths (``‖alpha v‖ / ‖h‖``) of every part.
        curve_langs: Languages of the per-layer curve (``mean_diff``, ``add``, from English).
        curve_layers: Its layers.
        operator_langs: Languages of the operator comparison (``mean_diff``, from English).
        angles: ``rotate`` angles (degrees) of the operator comparison.
        clamps: ``clamp`` values (multiples of ``‖h‖``) of the operator comparison.
        control_langs: Languages the control model is benchmarked on (both directions,
            every method).
        control_layers: The control model's layers.
        n_fit: Fitting pairs per vector.
        n_select: Selection prompts per cell.
        n_test: Test prompts per selected cell.
        k: Distractor prompts of the relevance score (chance ``1 / (k + 1)``).
        max_new_tokens: Tokens generated per continuation.
    """

    langs: tuple[str, ...] = FORCING_LANGS
    methods: tuple[str, ...] = ("mean_diff", "pca", "lda", "probe", "lowrank")
    layers: tuple[int, ...] = (4, 8)
    ratios: tuple[float, ...] = (0.05, 0.1, 0.25)
    curve_langs: tuple[str, ...] = ("de", "sw", "zh")
    curve_layers: tuple[int, ...] = (2, 4, 6, 8, 10, 12, 14, 16)
    operator_langs: tuple[str, ...] = ("de", "sw")
    angles: tuple[float, ...] = (5.0, 10.0, 20.0)
    clamps: tuple[float, ...] = (0.05, 0.1, 0.25)
    control_langs: tuple[str, ...] = ("de", "sw")
    control_layers: tuple[int, ...] = (7, 13)
    n_fit: int = 200
    n_select: int = 8
    n_test: int = 24
    k: int = 4
    max_new_tokens: int = 24


FORCING_QUICK = ForcingConfig(
    langs=("de", "sw"),
    methods=("mean_diff", "pca"),
    layers=(1, 2),
    ratios=(0.5,),
    curve_langs=("de",),
    curve_layers=(0, 1, 2, 3),
    operator_langs=("de",),
    angles=(30.0,),
    clamps=(0.25,),
    control_langs=("sw",),
    control_layers=(1, 2),
    n_fit=4,
    n_select=2,
    n_test=2,
    k=1,
    max_new_tokens=2,
)
"""The forcing part of :data:`QUICK` (seconds on the tiny model)."""


@dataclass(frozen=True)
class StudyConfig:
    """Sizes of a study run (the defaults are what ``make results`` runs).

    Attributes:
        model: Model alias.
        langs: XCOPA languages of the study (vectors, table, transfer).
        layers: Layers of the sweep.
        ratios: Relative strengths ``‖alpha v‖ / ‖h‖`` of the sweep.
        n_fit: FLORES pairs per vector (and per LoRA fine-tune).
        n_select: XCOPA validation items per sweep cell.
        n_test: XCOPA test items per table cell.
        n_transfer: XCOPA test items per transfer cell.
        n_similarity: FLORES sentences per language for the similarity analysis.
        similarity_langs: Languages of the similarity analysis (all FLORES ones by default).
        n_lens: Prompts of the logit lens.
        methods: Fitting methods compared (``sft``: the LoRA fine-tune on the same pairs).
        control_model: English-centric control model (similarity and XCOPA baselines),
            or None.
        gen_langs: MSVAMP languages of the generation part
            (:mod:`repro.generation`).
        gen_ratios: Relative strengths of the generation sweep (its metric is cheap).
        n_gen_fit: MSVAMP ``train`` pairs per vector and fine-tune (the next
            ``n_gen_select`` select).
        n_gen_select: Held-out MSVAMP ``train`` pairs for selection and transfer.
        n_gen_test: MSVAMP ``eval`` / MGSM items per generation cell.
        n_forcing: FLORES sentences per language-forcing cell.
        gen_tokens: Greedy-decoding budget of the math tasks.
        gen_methods: Fitting methods of the generation part's generation tasks.
        gen_kl_methods: Fitting methods compared by EnglishKL on MSVAMP ``eval`` pairs
            (forward passes only: cheap enough for every method).
        n_gen_kl: MSVAMP ``eval`` pairs of that comparison (per language; 128 resolve a
            difference of ≈0.03 nats between two methods on the same pairs).
        bipo_lr_lang: The language BiPO's learning rate is selected on (held-out MSVAMP
            ``train`` pairs, EnglishKL); every BiPO vector of the study uses the choice.
        bipo_lrs: The learning rates tried (in units of the residual norm).
        bipo_epochs: The numbers of epochs tried, at the chosen rate (the paper trains 1).
        n_bipo_lr_fit: MSVAMP ``train`` pairs each candidate is trained on (rate, epochs,
            and each language's pairing).
        bipo_default_lrs: The learning rates tried for the library's default BiPO (in units
            of each coordinate's spread; the ``bipo_default_lr`` stage, on ``n_gen_fit``
            pairs of each of ``bipo_default_lr_langs``: the default's own schedule).
        bipo_default_lr_langs: The languages the default rate is compared on, one rate for
            all (in ``bipo_alpha`` sw gains the most nats from a longer default vector; fr
            and de gain the least).
        bipo_default_epochs: The numbers of epochs tried for the library's default BiPO
            (the ``bipo_default_epochs`` stage: at the default rate, on the same pairs as
            ``bipo_default_lrs``, in ``bipo_default_lr_langs``).
        bipo_alphas: Multipliers of BiPO's default vector (as trained: α = 1) whose
            held-out EnglishKL is compared, one chosen per language (the ``bipo_alpha``
            stage: a sensitivity curve around α = 1).
        trajectory_langs: Source and target language of the latent-language figure's
            word-translation prompts (:mod:`repro.trajectory`).
        n_trajectory: Concepts of that figure (the concept set's first ones; those whose
            target and English answers share a first token are left out).
        forcing: The language-forcing benchmark's sizes (:mod:`repro.forcing`).
    """

    model: str = "gemma-3-270m"
    langs: tuple[str, ...] = ("it", "zh", "sw")
    layers: tuple[int, ...] = (4, 8, 12)
    ratios: tuple[float, ...] = (0.25, 0.5)
    n_fit: int = 400
    n_select: int = 40
    n_test: int = 500
    n_transfer: int = 60
    n_similarity: int = 64
    similarity_langs: tuple[str, ...] = (
        "ar", "bn", "de", "el", "es", "et", "fr", "ht", "hi", "id", "it", "ja", "ko", "pt",
        "qu", "ru", "sw", "ta", "te", "th", "tr", "vi", "zh",
    )  # fmt: skip
    n_lens: int = 8
    methods: tuple[str, ...] = ("mean_diff", "pca", "mse", "bipo", "sft")
    control_model: str | None = "smollm2-135m"
    gen_langs: tuple[str, ...] = ("bn", "de", "es", "fr", "ja", "ru", "sw", "th", "zh")
    gen_ratios: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5)
    n_gen_fit: int = 400
    n_gen_select: int = 64
    n_gen_test: int = 16
    n_forcing: int = 16
    gen_tokens: int = 96
    gen_methods: tuple[str, ...] = ("mean_diff", "pca", "mse", "bipo", "sft")
    gen_kl_methods: tuple[str, ...] = ("mean_diff", "pca", "mse", "bipo", "sft")
    n_gen_kl: int = 128
    bipo_lr_lang: str = "sw"
    bipo_lrs: tuple[float, ...] = (3e-5, 1e-4, 3e-4, 1e-3, 3e-3)
    bipo_epochs: tuple[int, ...] = (1, 2)
    n_bipo_lr_fit: int = 128
    bipo_default_lrs: tuple[float, ...] = (3e-4, 1e-3, 3e-3)
    bipo_default_lr_langs: tuple[str, ...] = ("sw", "fr", "de")
    bipo_default_epochs: tuple[int, ...] = (1, 2)
    bipo_alphas: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0, 1.5)
    trajectory_langs: tuple[str, str] = ("fr", "zh")
    n_trajectory: int = 157
    forcing: ForcingConfig = field(default_factory=ForcingConfig)


STUDY = StudyConfig()
"""The study of ``docs/results.md``."""

QUICK = StudyConfig(
    model="tiny",
    langs=("it", "sw"),
    layers=(1, 2),
    ratios=(0.5,),
    n_fit=6,
    n_select=4,
    n_test=4,
    n_transfer=2,
    n_similarity=4,
    similarity_langs=("de", "sw"),
    n_lens=2,
    control_model="tiny",
    gen_langs=("de",),
    gen_ratios=(0.5,),
    n_gen_fit=6,
    n_gen_select=4,
    n_gen_test=2,
    n_forcing=2,
    gen_tokens=8,
    n_gen_kl=4,
    bipo_lr_lang="de",
    bipo_lrs=(1e-4, 1e-3),
    bipo_epochs=(1, 2),
    n_bipo_lr_fit=4,
    bipo_default_lrs=(1e-3, 1e-2),
    bipo_default_lr_langs=("de",),
    bipo_default_epochs=(1, 2),
    bipo_alphas=(0.5, 1.0),
    n_trajectory=8,
    forcing=FORCING_QUICK,
)
"""A smoke run on the tiny model (seconds)."""
