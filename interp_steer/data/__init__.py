"""Languages, datasets, parallel corpora and task items, read from the local data folder."""

from interp_steer.constants import CHOICE_TASKS, MATH_TASKS, TASKS
from interp_steer.data.concepts import (
    ConceptPrompts,
    ConceptSet,
    answer_token_ids,
    cloze_definitions,
    concept_cloze_prompts,
    load_concepts,
    translation_prompts,
)
from interp_steer.data.items import TaskItem, TaskSet
from interp_steer.data.language_id import detect_language, detect_languages, language_shares
from interp_steer.data.languages import (
    ENGLISH,
    LANGUAGES,
    Language,
    canonical,
    family,
    family_order,
    get_language,
)
from interp_steer.data.parallel import CorpusLike, PairedTexts, ParallelCorpus, load_parallel
from interp_steer.data.sources import (
    DATASETS,
    DatasetSource,
    DataUnavailableError,
    available_languages,
    data_dir,
)
from interp_steer.data.tasks import load_task

__all__ = [
    "CHOICE_TASKS",
    "ConceptPrompts",
    "ConceptSet",
    "CorpusLike",
    "DATASETS",
    "DataUnavailableError",
    "DatasetSource",
    "ENGLISH",
    "LANGUAGES",
    "Language",
    "MATH_TASKS",
    "PairedTexts",
    "ParallelCorpus",
    "TASKS",
    "TaskItem",
    "TaskSet",
    "answer_token_ids",
    "available_languages",
    "canonical",
    "cloze_definitions",
    "concept_cloze_prompts",
    "data_dir",
    "detect_language",
    "detect_languages",
    "family",
    "family_order",
    "get_language",
    "language_shares",
    "load_concepts",
    "load_parallel",
    "load_task",
    "translation_prompts",
]
