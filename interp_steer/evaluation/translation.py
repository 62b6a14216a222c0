"""Translation at run time, for the ``translator`` and ``self_translate`` baselines.

Evaluation asks for the texts of an item that need translating (:func:`translation_texts`:
question, choices, XNLI hypothesis), translates them with a user's ``str -> str``
callable (:func:`load_translator` builds one on NLLB) or with the model itself, prompted
by :func:`self_translation_prompt`, and puts the results into the item's English fields
(:func:`with_translation`), from which :mod:`~interp_steer.evaluation.prompts` builds
English prompts.

Example:
    >>> from interp_steer.data import TaskItem
    >>> item = TaskItem("x", "xcopa", "it", "Piove.", "0", ("a", "b"))
    >>> with_translation(item, [t.upper() for t in translation_texts(item)]).english
    'PIOVE.'
"""

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from transformers import pipeline

from interp_steer.data.items import TaskItem
from interp_steer.data.languages import ENGLISH, get_language


def translation_texts(item: TaskItem) -> list[str]:
    """Return the texts of an item a translator must translate: question, choices, hypothesis.

    Example:
        >>> translation_texts(TaskItem("x", "xcopa", "it", "Piove.", "0", ("a", "b")))
        ['Piove.', 'a', 'b']
    """
    texts = [item.question, *item.choices]
    if item.task == "xnli":
        texts.append(str(item.meta.get("hypothesis", "")))
    return texts


def with_translation(item: TaskItem, translations: Sequence[str]) -> TaskItem:
    """Return ``item`` with its English fields set from :func:`translation_texts`' translations.

    Example:
        >>> it = TaskItem("x", "xcopa", "it", "Piove.", "0", ("a", "b"))
        >>> with_translation(it, ["It rains.", "A", "B"]).english_choices
        ('A', 'B')
    """
    expected = len(translation_texts(item))
    if len(translations) != expected:
        raise ValueError(f"{item.id}: expected {expected} translations, got {len(translations)}")
    n = len(item.choices)
    meta = dict(item.meta)
    if item.task == "xnli":
        meta["hypothesis_en"] = translations[-1]
    return replace(
        item, english=translations[0], english_choices=tuple(translations[1 : 1 + n]), meta=meta
    )


def self_translation_prompt(text: str, lang: str, shots: Sequence[tuple[str, str]] = ()) -> str:
    """The prompt with which the model translates ``text`` into English (self-translate).

    Example:
        >>> print(self_translation_prompt("Hallo Welt.", "de", [("Danke.", "Thanks.")]))
        German: Danke.
        English: Thanks.
        <BLANKLINE>
        German: Hallo Welt.
        English:
    """
    name = get_language(lang).name
    blocks = [f"{name}: {src.strip()}\nEnglish: {en.strip()}" for src, en in shots]
    return "\n\n".join([*blocks, f"{name}: {text.strip()}\nEnglish:"])


def load_translator(
    model_id: str, src_lang: str, *, tgt_lang: str = ENGLISH, max_length: int = 512
) -> Callable[[str], str]:
    """Return a ``str -> str`` translator built on a Hugging Face seq2seq model.

    Meant for NLLB-200 (``"facebook/nllb-200-distilled-600M"``), whose language codes are
    the FLORES codes of :mod:`interp_steer.data.languages`; needs the hub or a filled cache.

    Raises:
        ValueError: The model cannot be loaded (no network, unknown id), or a language has
            no FLORES code.
    """
    src, tgt = get_language(src_lang), get_language(tgt_lang)
    if src.flores is None or tgt.flores is None:
        raise ValueError(f"no FLORES code for {src.code!r} or {tgt.code!r}; NLLB needs one")
    try:
        pipe: Any = pipeline(  # type: ignore[call-overload]
            "translation", model=model_id, src_lang=src.flores, tgt_lang=tgt.flores
        )
    except Exception as err:
        raise ValueError(
            f"could not load translation model {model_id!r} ({type(err).__name__}: {err}); "
            "it needs the Hugging Face hub or a local copy"
        ) from None

    def translate(text: str) -> str:
        return str(pipe(text, max_length=max_length)[0]["translation_text"])

    translate.__name__ = model_id
    return translate


__all__ = [
    "load_translator",
    "self_translation_prompt",
    "translation_texts",
    "with_translation",
]
