"""The study's sizes and the rows of its tables.

:class:`StudyConfig` holds every size of a run (:data:`STUDY` is ``make results``,
:data:`QUICK` a smoke run on the tiny model). A table row is a :class:`Row`: a baseline or a
fitting method, and for the methods in :data:`SCALED` the same method's direction at the
selected relative strength, saved under the name ``<method>_scaled``.
"""

from dataclasses import dataclass

__all__ = [
    "AS_TRAINED",
    "BASELINE_ROWS",
    "QUICK",
    "SCALED",
    "STUDY",
    "Row",
    "StudyConfig",
    "method_rows",
    "steered_rows",
]

BASELINE_ROWS = ("basic", "translate_test", "self_translate", "xlt", "k_shot")
"""Baseline rows of the main table, in order (the steering methods follow)."""

SCALED = ("bipo",)
"""Trained methods whose direction is also run at the selected relative strength (row
``<method>_scaled``): at a CPU budget BiPO's vector stays far too short to act at α = 1."""

AS_TRAINED = ("mse", "bipo")
"""Methods whose vectors the paper applies as trained (α = 1), not at a selected strength."""


@dataclass(frozen=True)
class Row:
    """A row of the study's tables: a baseline (``basic``, ...) or a fitting method.

    Attributes:
        method: The baseline or fitting method.
        scaled: The method's direction at the selected relative strength rather than its
            vector as trained (only for methods, never for a baseline).

    >>> Row("bipo", scaled=True).name, Row("bipo").name, Row("basic").baseline
    ('bipo_scaled', 'bipo', True)
    """

    method: str
    scaled: bool = False

    def __post_init__(self) -> None:
        if self.scaled and self.baseline:
            raise ValueError(f"a baseline row cannot be scaled: {self.method!r}")

    @property
    def name(self) -> str:
        """The row's name in tables and file names (``<method>_scaled`` when scaled)."""
        return f"{self.method}_scaled" if self.scaled else self.method

    @property
    def baseline(self) -> bool:
        """Whether the row is a baseline (no vector) rather than a steered run."""
        return self.method in BASELINE_ROWS


def steered_rows(methods: tuple[str, ...]) -> tuple[Row, ...]:
    """The steered rows of the main table: each method, then its scaled row if in SCALED.

    >>> steered_rows(("pca", "bipo"))[1:]
    (Row(method='bipo', scaled=False), Row(method='bipo', scaled=True))
    """
    return tuple(
        r for m in methods for r in ((Row(m), Row(m, scaled=True)) if m in SCALED else (Row(m),))
    )


def method_rows(methods: tuple[str, ...]) -> tuple[str, ...]:
    """The names of :func:`steered_rows`: each method, then ``<method>_scaled`` if any.

    >>> method_rows(("mean_diff", "bipo"))
    ('mean_diff', 'bipo', 'bipo_scaled')
    """
    return tuple(r.name for r in steered_rows(methods))


@dataclass(frozen=True)
class StudyConfig:
    """Sizes of a study run (the defaults are what ``make results`` runs).

    Attributes:
        model: Model alias.
        langs: XCOPA languages of the study (vectors, table, transfer).
        layers: Layers of the sweep.
        ratios: Relative strengths ``‖alpha v‖ / ‖h‖`` of the sweep.
        n_fit: FLORES pairs per vector.
        n_select: XCOPA validation items per sweep cell.
        n_test: XCOPA test items per table cell.
        n_transfer: XCOPA test items per transfer cell.
        n_similarity: FLORES sentences per language for the similarity analysis.
        similarity_langs: Languages of the similarity analysis (all FLORES ones by default).
        n_lens: Prompts of the logit lens.
        methods: Fitting methods compared.
        bipo_n_fit: FLORES pairs of a BiPO vector (one step of 4 pairs takes ≈10–30 s on
            2 CPU cores, so BiPO gets fewer pairs than the other methods).
        bipo_warmup_steps: BiPO's warm-up steps (the paper's 100 exceed the steps here).
        control_model: English-centric control model (similarity and XCOPA baselines),
            or None.
        gen_langs: MSVAMP languages of the generation part
            (:mod:`repro.generation`).
        gen_ratios: Relative strengths of the generation sweep (its metric is cheap).
        n_gen_fit: MSVAMP ``train`` pairs per vector (the next ``n_gen_select`` select).
        n_gen_select: Held-out MSVAMP ``train`` pairs for selection and transfer.
        n_gen_test: MSVAMP ``eval`` / MGSM items per generation cell.
        n_forcing: FLORES sentences per language-forcing cell.
        gen_tokens: Greedy-decoding budget of the math tasks.
        gen_methods: Fitting methods of the generation part's generation tasks.
        gen_kl_methods: Fitting methods compared by EnglishKL on MSVAMP ``eval`` pairs
            (forward passes only: cheap enough for every method).
    """

    model: str = "gemma-3-270m"
    langs: tuple[str, ...] = ("it", "zh", "sw")
    layers: tuple[int, ...] = (4, 8, 12)
    ratios: tuple[float, ...] = (0.25, 0.5)
    n_fit: int = 128
    n_select: int = 40
    n_test: int = 500
    n_transfer: int = 60
    n_similarity: int = 64
    similarity_langs: tuple[str, ...] = (
        "ar", "bn", "de", "el", "es", "et", "fr", "ht", "hi", "id", "it", "ja", "ko", "pt",
        "qu", "ru", "sw", "ta", "te", "th", "tr", "vi", "zh",
    )  # fmt: skip
    n_lens: int = 8
    methods: tuple[str, ...] = ("mean_diff", "pca", "mse", "bipo")
    bipo_n_fit: int = 64
    bipo_warmup_steps: int = 4
    control_model: str | None = "smollm2-135m"
    gen_langs: tuple[str, ...] = ("bn", "de", "es", "fr", "ja", "ru", "sw", "th", "zh")
    gen_ratios: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5)
    n_gen_fit: int = 400
    n_gen_select: int = 64
    n_gen_test: int = 16
    n_forcing: int = 16
    gen_tokens: int = 96
    gen_methods: tuple[str, ...] = ("mean_diff", "pca", "mse", "bipo")
    gen_kl_methods: tuple[str, ...] = ("mean_diff", "pca", "mse", "bipo")


STUDY = StudyConfig()
"""The study of ``docs/results.md``."""

QUICK = StudyConfig(
    model="tiny",
    methods=("mean_diff", "pca", "mse", "bipo"),
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
    bipo_n_fit=4,
    bipo_warmup_steps=0,
    control_model="tiny",
    gen_langs=("de",),
    gen_ratios=(0.5,),
    n_gen_fit=6,
    n_gen_select=4,
    n_gen_test=2,
    n_forcing=2,
    gen_tokens=8,
)
"""A smoke run on the tiny model (seconds)."""
