"""Prompt templates per task and the baselines of the paper's tables, as a registry.

A :class:`Prompt` is what the model sees for one item: the text to continue (math,
language forcing) or a context plus the continuations whose log-likelihoods are compared
(choice tasks). Baselines (:data:`BASELINES`) turn a :class:`~interp_steer.data.TaskItem`
into a prompt:

* ``basic``: the item in its own language; math gets "Let's think step by step.", XCOPA a
  cause/effect connective in the item's language (English when none is known).
* ``translate_test``: the item's English version (human translation for MGSM/MSVAMP,
  Google MT for XCOPA: the paper's "Google-Trans" row) with the English template.
* ``translator`` / ``self_translate``: the same English template on a translation made at
  run time (any ``str -> str`` callable / the model itself); evaluation fills the English
  fields with :func:`~interp_steer.evaluation.translation.with_translation` first.
* ``xlt``: the cross-lingual-thought template of Huang et al. (2023).
* ``k_shot``: ``k`` exemplars in the item's language before it (MGSM's translated
  exemplars with their native "Question:"/"Step-by-step answer:" prefixes; XCOPA val items).

Example:
    >>> from interp_steer.data import TaskItem
    >>> item = TaskItem("x-0", "xcopa", "sw", "Mchwa walivamia nyumba.", "1",
    ...                 ("Mchwa waliondoka.", "Mchwa walikula mbao."), meta={"relation": "effect"})
    >>> p = build_prompt(item, "basic")
    >>> p.text, p.continuations
    ('Mchwa walivamia nyumba kwa hiyo', (' mchwa waliondoka.', ' mchwa walikula mbao.'))
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType

from interp_steer.constants import MATH_TASKS
from interp_steer.data.items import TaskItem
from interp_steer.data.languages import ENGLISH, get_language

COT_TRIGGER = "Let's think step by step."
"""The zero-shot chain-of-thought trigger the paper uses for MGSM and MSVAMP."""

# (cause, effect) connectives; lm-evaluation-harness's XCOPA set, plus common ones.
CONNECTIVES: Mapping[str, tuple[str, str]] = MappingProxyType({
    "en": ("because", "therefore"), "et": ("sest", "seetõttu"), "ht": ("poukisa", "donk sa"),
    "it": ("perché", "quindi"), "id": ("karena", "maka"), "qu": ("imataq", "chaymi"),
    "sw": ("kwa sababu", "kwa hiyo"), "zh": ("因为", "所以"), "ta": ("காரணமாக", "எனவே"),
    "th": ("เพราะ", "ดังนั้น"), "tr": ("çünkü", "bu yüzden"), "vi": ("bởi vì", "vì vậy"),
    "de": ("denn", "deshalb"), "fr": ("parce que", "donc"), "es": ("porque", "así que"),
    "pt": ("porque", "então"), "ru": ("потому что", "поэтому"), "ja": ("なぜなら", "だから"),
    "ko": ("왜냐하면", "그래서"), "ar": ("لأن", "لذلك"), "hi": ("क्योंकि", "इसलिए"),
    "bn": ("কারণ", "তাই"), "te": ("ఎందుకంటే", "కాబట్టి"), "el": ("επειδή", "επομένως"),
})  # fmt: skip
"""XCOPA cause/effect connectives per language; unknown languages fall back to English."""

# XNLI: (question word, entailment, neutral, contradiction), as lm-evaluation-harness.
NLI_WORDS: Mapping[str, tuple[str, str, str, str]] = MappingProxyType({
    "en": ("right", "Yes", "Also", "No"), "de": ("richtig", "Ja", "Auch", "Nein"),
    "fr": ("correct", "Oui", "Aussi", "Non"), "es": ("correcto", "Sí", "Asi que", "No"),
    "ru": ("правильно", "Да", "Так", "Нет"), "zh": ("正确", "是的", "所以", "不是的"),
    "sw": ("sahihi", "Ndiyo", "Hivyo", "Hapana"), "th": ("ถูกต้อง", "ใช่", "ดังนั้น", "ไม่"),
    "ar": ("صحيح", "نعم", "لذا", "لا"), "hi": ("सही", "हाँ", "इसलिए", "नहीं"),
    "tr": ("doğru", "Evet", "Ayrıca", "Hayır"), "vi": ("đúng", "Vâng", "Vì vậy", "Không"),
    "el": ("σωστός", "Ναί", "Έτσι", "όχι"), "bg": ("правилно", "да", "така", "не"),
    "ur": ("صحیح", "جی ہاں", "اس لئے", "نہیں"),
})  # fmt: skip
"""XNLI template words per language; unknown languages fall back to English."""

_NO_SPACE = frozenset({"zh", "ja", "yue", "wuu"})
_FINAL_PUNCT = ".。!?！？।"
LETTERS = "ABCDEFGHIJ"


@dataclass(frozen=True)
class Prompt:
    r"""What the model sees for one item.

    Attributes:
        text: The text to continue (generation) or the context (choice scoring).
        continuations: Choice tasks: the texts scored after ``text``, one per choice.
        stop: Generation: output is cut at the first of these strings.
        lang: The language the prompt is written in.

    Example:
        >>> Prompt("Question: 2+2?\nAnswer:", lang="en").continuations
        ()
    """

    text: str
    continuations: tuple[str, ...] = ()
    stop: tuple[str, ...] = ()
    lang: str = ENGLISH

    def __post_init__(self) -> None:
        if not self.text.strip():
            raise ValueError("a prompt needs non-empty text")
        if any(not c.strip() for c in self.continuations):
            raise ValueError("continuations must be non-empty")


def _join(lang: str, *parts: str) -> str:
    return ("" if lang in _NO_SPACE else " ").join(p for p in parts if p)


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def relation(item: TaskItem) -> str:
    """Return an XCOPA item's relation, preferring the cross-language majority value."""
    rel = str(item.meta.get("relation_majority") or item.meta.get("relation") or "")
    if rel not in ("cause", "effect"):
        raise ValueError(f"{item.id}: XCOPA item needs meta['relation'] cause/effect, got {rel!r}")
    return rel


def _choice_prompt(item: TaskItem, lang: str, question: str, choices: Sequence[str]) -> Prompt:
    """The log-likelihood template of a choice task, in ``lang``."""
    if item.task == "xcopa":
        cause, effect = CONNECTIVES.get(lang, CONNECTIVES[ENGLISH])
        conn = cause if relation(item) == "cause" else effect
        context = _join(lang, question.strip().rstrip(_FINAL_PUNCT), conn)
        sep = "" if lang in _NO_SPACE else " "
        return Prompt(context, tuple(sep + _lower_first(c.strip()) for c in choices), lang=lang)
    if item.task == "xnli":
        word, *labels = NLI_WORDS.get(lang, NLI_WORDS[ENGLISH])
        key = "hypothesis_en" if lang == ENGLISH and item.lang != ENGLISH else "hypothesis"
        hypothesis = str(item.meta.get(key, ""))
        if not hypothesis:
            raise ValueError(f"{item.id}: XNLI item has no hypothesis for language {lang!r}")
        context = f"{question.strip().rstrip(_FINAL_PUNCT)}, {word}?"
        return Prompt(context, tuple(f" {label}, {hypothesis}" for label in labels), lang=lang)
    if not choices:
        raise ValueError(f"{item.id}: {item.task} item has no choices")
    listed = "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(choices))
    context = f"{question.strip()}\n{listed}\nAnswer:"
    return Prompt(context, tuple(f" {LETTERS[i]}" for i in range(len(choices))), lang=lang)


def _math_prompt(question: str, lang: str) -> Prompt:
    text = f"Question: {question.strip()}\nAnswer: {COT_TRIGGER}"
    return Prompt(text, stop=("Question:", "\n\n\n"), lang=lang)


def basic(item: TaskItem, exemplars: Sequence[TaskItem] = (), k: int = 0) -> Prompt:
    """The item in its own language: math with the CoT trigger, choices by log-likelihood.

    Example:
        >>> item = TaskItem("m-0", "mgsm", "de", "Wie viel ist 2+2?", "4")
        >>> print(basic(item).text)
        Question: Wie viel ist 2+2?
        Answer: Let's think step by step.
    """
    if item.task in MATH_TASKS:
        return _math_prompt(item.question, item.lang)
    return _choice_prompt(item, item.lang, item.question, item.choices)


def english(item: TaskItem, exemplars: Sequence[TaskItem] = (), k: int = 0) -> Prompt:
    """The item's English version (``english``/``english_choices``) with English templates.

    Raises:
        ValueError: The item has no English version (naming the item).

    Example:
        >>> item = TaskItem("m-0", "mgsm", "de", "Wie viel ist 2+2?", "4", english="What is 2+2?")
        >>> english(item).text.splitlines()[0]
        'Question: What is 2+2?'
    """
    if item.english is None or (item.choices and len(item.english_choices) != len(item.choices)):
        raise ValueError(
            f"{item.id}: no English version of this item (english / english_choices); "
            "translate_test needs one (e.g. XCOPA Quechua has none)"
        )
    if item.task in MATH_TASKS:
        return _math_prompt(item.english, ENGLISH)
    return _choice_prompt(item, ENGLISH, item.english, item.english_choices)


_MATH_XLT = ("arithmetic reasoning", "request", "do step-by-step answer to obtain a number answer")
_XLT_TASK = {
    "mgsm": _MATH_XLT,
    "msvamp": _MATH_XLT,
    "xcopa": ("commonsense reasoning", "premise and the options", "pick the more plausible option"),
    "xnli": ("natural language inference", "premise and the hypothesis", "judge their relation"),
    "mmlu": ("multiple-choice question answering", "question and the options", "pick the answer"),
    "m3exam": ("multiple-choice exam", "question and the options", "pick the answer"),
}  # fmt: skip


def xlt(item: TaskItem, exemplars: Sequence[TaskItem] = (), k: int = 0) -> Prompt:
    """The cross-lingual-thought (XLT) template of Huang et al. (2023), zero-shot.

    Choice tasks put the XLT instructions before their usual scoring context.

    Example:
        >>> item = TaskItem("m-0", "mgsm", "sw", "2 + 2 ni ngapi?", "4")
        >>> xlt(item).text.splitlines()[0]
        'I want you to act as an arithmetic reasoning expert for Swahili.'
    """
    name, tag, goal = _XLT_TASK[item.task]
    language = get_language(item.lang).name
    head = f"I want you to act as an {name} expert for {language}."
    steps = (
        f"You should retell the {tag} in English.\nYou should {goal}.\n"
        "You should step-by-step answer the request.\n"
    )
    if item.task in MATH_TASKS:
        text = (
            f"{head}\nRequest: {item.question.strip()}\n{steps}"
            "You should tell me the answer in this format 'Answer:'.\n"
        )
        return Prompt(text, stop=("I want you to act", "Request:", "\n\n\n"), lang=item.lang)
    base = _choice_prompt(item, item.lang, item.question, item.choices)
    text = f"{head}\n{steps}You should tell me the answer in this format 'Answer:'.\n\n{base.text}"
    return replace(base, text=text)


def k_shot(item: TaskItem, exemplars: Sequence[TaskItem], k: int = 5) -> Prompt:
    """``k`` exemplars in the item's language, then the item (first ``k``, in order).

    Math exemplars need ``meta["solution"]`` (MGSM's worked answers) and use their native
    ``question_prefix``/``answer_prefix`` (``"Frage:"``/``"Schritt-für-Schritt-Antwort:"``).

    Raises:
        ValueError: Fewer than ``k`` exemplars, or ``k < 1``.

    Example:
        >>> ex = [TaskItem(f"e{i}", "mgsm", "de", f"{i}+1?", str(i + 1),
        ...       meta={"solution": f"Die Antwort lautet {i + 1}.", "question_prefix": "Frage:",
        ...             "answer_prefix": "Antwort:"}) for i in range(3)]
        >>> print(k_shot(TaskItem("m", "mgsm", "de", "5+1?", "6"), ex, k=2).text)
        Frage: 0+1?
        Antwort: Die Antwort lautet 1.
        <BLANKLINE>
        Frage: 1+1?
        Antwort: Die Antwort lautet 2.
        <BLANKLINE>
        Frage: 5+1?
        Antwort:
    """
    if k < 1:
        raise ValueError(f"k must be at least 1 for k_shot, got {k}")
    if len(exemplars) < k:
        raise ValueError(
            f"{item.id}: k_shot needs {k} exemplars in {item.lang!r} but the task has "
            f"{len(exemplars)}"
        )
    shots = list(exemplars[:k])
    if item.task in MATH_TASKS:
        q_prefix = str(shots[0].meta.get("question_prefix", "Question:"))
        a_prefix = str(shots[0].meta.get("answer_prefix", "Answer:"))
        blocks = []
        for ex in shots:
            if "solution" not in ex.meta:
                raise ValueError(f"{ex.id}: a math exemplar needs meta['solution']")
            blocks.append(f"{q_prefix} {ex.question.strip()}\n{a_prefix} {ex.meta['solution']}")
        blocks.append(f"{q_prefix} {item.question.strip()}\n{a_prefix}")
        return Prompt("\n\n".join(blocks), stop=("\n\n", f"\n{q_prefix}"), lang=item.lang)
    solved = []
    for ex in shots:
        p = _choice_prompt(ex, ex.lang, ex.question, ex.choices)
        solved.append(p.text + p.continuations[int(ex.answer)])
    base = _choice_prompt(item, item.lang, item.question, item.choices)
    return replace(base, text="\n\n".join([*solved, base.text]))


def forcing_prompt(text: str, lang: str) -> Prompt:
    """Language forcing: the target-language text itself, to be continued.

    Example:
        >>> forcing_prompt("Kamati itakutana tena.", "sw").text
        'Kamati itakutana tena.'
    """
    return Prompt(text.strip(), lang=lang)


PromptBuilder = Callable[[TaskItem, Sequence[TaskItem], int], Prompt]


@dataclass(frozen=True)
class Baseline:
    """A named way to prompt: builds a :class:`Prompt` from an item.

    Attributes:
        name: Registry key (the built-in ones: :data:`~interp_steer.constants.BASELINE_NAMES`).
        build: ``(item, exemplars, k) -> Prompt``.
        translate: ``None``; ``"callable"`` (a user's translator fills the English fields
            first); or ``"model"`` (the model itself translates first).
        description: One line for tables and docs.
    """

    name: str
    build: PromptBuilder
    translate: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.translate not in (None, "callable", "model"):
            raise ValueError(
                f"translate must be None, 'callable' or 'model', got {self.translate!r}"
            )


BASELINES: Mapping[str, Baseline] = MappingProxyType({b.name: b for b in (
    Baseline("basic", basic, None, "prompt in the target language"),
    Baseline("translate_test", english, None, "dataset's English version (human / Google MT)"),
    Baseline("translator", english, "callable", "English from a translator (callable or NLLB)"),
    Baseline("self_translate", english, "model", "the model translates into English first"),
    Baseline("xlt", xlt, None, "cross-lingual-thought prompting (Huang et al. 2023)"),
    Baseline("k_shot", k_shot, None, "k exemplars in the target language"),
)})  # fmt: skip
"""Every baseline :func:`build_prompt` and evaluation accept, by name."""


def get_baseline(name: str) -> Baseline:
    """Return a registered baseline; ``ValueError`` listing the known names otherwise.

    Example:
        >>> get_baseline("xlt").description
        'cross-lingual-thought prompting (Huang et al. 2023)'
    """
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; expected one of {', '.join(BASELINES)}")
    return BASELINES[name]


def build_prompt(
    item: TaskItem, baseline: str = "basic", exemplars: Sequence[TaskItem] = (), k: int = 5
) -> Prompt:
    """Build the prompt of ``item`` under a named baseline.

    For ``translator``/``self_translate`` the item must already carry its translation
    (:func:`~interp_steer.evaluation.translation.with_translation`).

    Example:
        >>> it = TaskItem("x", "xcopa", "zh", "我哭了。", "0", ("我很难过。", "我很开心。"),
        ...               meta={"relation": "cause"})
        >>> build_prompt(it).text, build_prompt(it).continuations
        ('我哭了因为', ('我很难过。', '我很开心。'))
    """
    return get_baseline(baseline).build(item, exemplars, k)


__all__ = [
    "BASELINES",
    "Baseline",
    "CONNECTIVES",
    "COT_TRIGGER",
    "NLI_WORDS",
    "Prompt",
    "basic",
    "build_prompt",
    "english",
    "forcing_prompt",
    "get_baseline",
    "k_shot",
    "relation",
    "xlt",
]
