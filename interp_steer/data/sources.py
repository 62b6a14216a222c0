"""Where the data lives: the data-directory setting, the dataset registry and downloads.

The real public files are never copied into the repository. They are read from the data
directory (see :func:`data_dir`), whose layout is the one of the shared folder
(``mgsm/``, ``msvamp/``, ``xcopa/``, ``tatoeba/``, ``flores200/``). :func:`download` fetches
the files of one dataset and language from their original public repositories into that
layout, for machines without the shared folder.

Example:
    >>> DATASETS["mgsm"].license
    'CC-BY-4.0'
    >>> sorted(available_languages("xcopa"))[:3]
    ['et', 'ht', 'id']
"""

import ast
import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from interp_steer.data.languages import ENGLISH, get_language

ENV_VAR = "INTERP_STEER_DATA"
"""Environment variable naming the data directory; it wins over every default."""


class DataUnavailableError(ConnectionError):
    """Files had to be fetched from the network (GitHub or the Hugging Face hub) and could not."""


@dataclass(frozen=True)
class DatasetSource:
    """Provenance of one dataset: where the files come from and under which license.

    Attributes:
        name: Registry key (``"mgsm"``).
        folder: Folder under the data directory, or None for hub-only datasets.
        description: One line on what the set is.
        license: License of the data.
        url: Raw-file base URL of the original repository (the folder the files sit in).
        hub_id: Hugging Face hub id, where the data is read from the hub or mirrored there.
        commit: Commit of the original repository that the shared copy was taken from.
        splits: Splits available; the first is the default.

    Example:
        >>> DATASETS["xnli"].hub_id
        'facebook/xnli'
    """

    name: str
    folder: str | None
    description: str
    license: str
    url: str | None
    hub_id: str | None
    commit: str | None
    splits: tuple[str, ...]


_GH = "https://raw.githubusercontent.com"
_FLORES = "Helsinki-NLP/OPUS-MT-testsets/master/datasets/facebook/flores/flores200_dataset/devtest"
# fmt: off
DATASETS: Mapping[str, DatasetSource] = MappingProxyType({s.name: s for s in (
    DatasetSource("mgsm", "mgsm", "250 GSM8K problems human-translated into 10 languages",
                  "CC-BY-4.0", f"{_GH}/google-research/url-nlp/main/mgsm", "juletxara/mgsm",
                  "452a21ad", ("test",)),
    DatasetSource("msvamp", "msvamp", "1000 SVAMP problems translated into 9 languages",
                  "MIT",
                  f"{_GH}/microsoft/MathOctopus/main/step1_supervised_finetuning/data/msvamp",
                  "Mathoctopus/MSVAMP", "4d385db6", ("test", "train", "eval")),
    DatasetSource("xcopa", "xcopa", "XCOPA causal commonsense (2 choices) + Google-MT English",
                  "CC-BY-4.0", f"{_GH}/cambridgeltl/xcopa/e2e9d7f105a758ee869cd13e0fe251ef93a29840",
                  "cambridgeltl/xcopa", "e2e9d7f1", ("test", "val")),
    DatasetSource("tatoeba", "tatoeba", "Tatoeba sentence pairs with English (LASER test set)",
                  "CC-BY-2.0-FR (Tatoeba terms of use)",
                  f"{_GH}/facebookresearch/LASER/main/data/tatoeba/v1",
                  "mteb/tatoeba-bitext-mining", "74bc6ae7", ("test",)),
    DatasetSource("flores", "flores200", "FLORES-200 devtest: 1012 sentences, all parallel",
                  "CC-BY-SA-4.0", f"{_GH}/{_FLORES}", "openlanguagedata/flores_plus",
                  "ac0f19c0", ("devtest",)),
    DatasetSource("xnli", None, "XNLI natural language inference, 15 languages, 3 labels",
                  "CC-BY-NC-4.0", None, "facebook/xnli", None, ("test", "validation", "train")),
    DatasetSource("mmlu", None, "MMMLU: the MMLU test set human-translated into 14 languages",
                  "MIT", None, "openai/MMMLU", None, ("test",)),
    DatasetSource("m3exam", None, "M3Exam: multiple-choice school-exam questions, 9 languages",
                  "CC-BY-NC-SA-4.0", None, "chiayewken/m3exam", None, ("test", "dev")),
)})
# fmt: on
"""Every dataset the project can read, by name."""


def data_dir() -> Path:
    """Return the data directory that holds the dataset folders.

    The first of these wins: the ``INTERP_STEER_DATA`` environment variable; ``../shared/data``
    relative to the current working directory; ``../shared/data`` relative to the repository
    root (the folder above the package); the user cache ``$XDG_CACHE_HOME/interp_steer/data``
    (``~/.cache/interp_steer/data``). The folder is not created and need not exist;
    :func:`dataset_dir` says clearly when a dataset is missing.

    Returns:
        The data directory.

    Example:
        >>> (data_dir() / "mgsm").is_dir()
        True
    """
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    repo_root = Path(__file__).resolve().parents[2]
    for base in (Path.cwd(), repo_root):
        candidate = (base / ".." / "shared" / "data").resolve()
        if candidate.is_dir():
            return candidate
    return _cache_dir()


def _cache_dir() -> Path:
    """Return the user cache data directory (``$XDG_CACHE_HOME/interp_steer/data``)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "interp_steer" / "data"


def _source(name: str) -> DatasetSource:
    """Return the registry entry, or raise ValueError listing the known datasets."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    return DATASETS[name]


def dataset_dir(name: str) -> Path:
    """Return the folder of one local dataset, checking that it exists.

    Args:
        name: One of :data:`LOCAL_DATASETS`.

    Returns:
        The dataset folder inside :func:`data_dir`.

    Raises:
        ValueError: If the dataset is unknown or only on the hub.
        FileNotFoundError: If the folder is missing; the message names the setting and the
            public source of the files.

    Example:
        >>> dataset_dir("flores").name
        'flores200'
    """
    src = _source(name)
    if src.folder is None:
        raise ValueError(f"{name} has no local files; it is read from the hub ({src.hub_id})")
    path = data_dir() / src.folder
    if not path.is_dir():
        raise FileNotFoundError(
            f"{name} data not found: expected the folder {path}. Point the {ENV_VAR} "
            f"environment variable at a data directory holding {src.folder}/ (the layout of "
            f"the project's shared/data), or fetch the files from {src.url} with "
            f"interp_steer.data.sources.download({name!r}, lang, dest) and set {ENV_VAR}=dest."
        )
    return path


def _file_code(name: str, lang: str) -> str:
    """Return how dataset ``name`` spells language ``lang`` in its file names."""
    language = get_language(lang)
    if name == "msvamp":
        return language.name
    if name == "flores":
        if language.flores is None:
            raise ValueError(f"{language.name} is not part of FLORES-200")
        return language.flores
    if name == "tatoeba":  # LASER's Tatoeba uses a few macrolanguage codes
        special = {"ar": "ara", "ku": "kur", "mn": "mon"}
        return special.get(language.code, language.iso639_3)
    return language.code


def dataset_files(name: str, lang: str, split: str | None = None) -> list[str]:
    """Return the files (relative to the dataset folder) that one language needs.

    English files needed for pairing are included (e.g. ``mgsm_en.tsv``).

    Args:
        name: One of :data:`LOCAL_DATASETS`.
        lang: Any spelling of the language.
        split: Split (XCOPA: ``"test"`` or ``"val"``); None means the first split listed.

    Returns:
        Relative file paths, in the layout of the shared data folder.

    Raises:
        ValueError: On an unknown dataset or split.

    Example:
        >>> dataset_files("xcopa", "Italian", "val")
        ['data/it/val.it.jsonl', 'data-gmt/it/val.it.jsonl']
    """
    src = _source(name)
    split = split or src.splits[0]
    if split not in src.splits:
        raise ValueError(f"{name} has no split {split!r}; expected one of {src.splits}")
    code = _file_code(name, lang)
    if name == "mgsm":
        return [f"mgsm_{code}.tsv", f"mgsm_{ENGLISH}.tsv", "exemplars.json"]
    if name == "msvamp":
        return [f"test_{code}.json"]
    if name == "xcopa":
        return [f"data/{code}/{split}.{code}.jsonl", f"data-gmt/{code}/{split}.{code}.jsonl"]
    if name == "tatoeba":
        return [f"tatoeba.{code}-eng.{code}", f"tatoeba.{code}-eng.eng"]
    if name == "flores":
        return [f"{code}.devtest", "eng_Latn.devtest"]
    raise ValueError(f"{name} has no local files; it is read from the hub ({src.hub_id})")


def available_languages(name: str) -> tuple[str, ...]:
    """Return the canonical codes of the languages whose files are in the data directory.

    English is included where the dataset has English files of its own (MGSM, MSVAMP).

    Args:
        name: One of :data:`LOCAL_DATASETS`.

    Returns:
        Sorted canonical codes.

    Example:
        >>> available_languages("mgsm")
        ('bn', 'de', 'en', 'es', 'fr', 'ja', 'ru', 'sw', 'te', 'th', 'zh')
    """
    folder = dataset_dir(name)
    if name == "mgsm":
        codes = [p.stem.removeprefix("mgsm_") for p in folder.glob("mgsm_*.tsv")]
    elif name == "msvamp":
        codes = [p.stem.removeprefix("test_") for p in folder.glob("test_*.json")]
    elif name == "xcopa":
        codes = [p.name for p in (folder / "data").iterdir() if p.is_dir()]
    elif name == "tatoeba":
        codes = [p.suffix[1:] for p in folder.glob("tatoeba.*-eng.*") if p.suffix != ".eng"]
    else:
        codes = [p.stem for p in folder.glob("*.devtest") if p.stem != "eng_Latn"]
    return tuple(sorted({get_language(c).code for c in codes}))


def _fetch(url: str) -> bytes:
    """Fetch one URL (the single network access point; tests replace it)."""
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 (fixed https URLs)
        return bytes(response.read())


def _exemplars_json(source: bytes) -> bytes:
    """Turn MGSM's ``exemplars.py`` (pure literals) into the shared ``exemplars.json``."""
    values = {}
    for node in ast.parse(source.decode("utf-8")).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            values[node.targets[0].id] = ast.literal_eval(node.value)
    out = {
        "number_answers": values["EXEMPLAR_NUMBER_ANSWERS"],
        "equation_solutions": values["EXEMPLAR_EQUATION_SOLUTIONS"],
        "exemplars": values["MGSM_EXEMPLARS"],
    }
    return json.dumps(out, ensure_ascii=False, indent=1).encode("utf-8")


def download(
    name: str, lang: str, dest: Path | str | None = None, *, split: str | None = None
) -> list[Path]:
    """Fetch the files one language needs from the dataset's original public repository.

    Files are written under ``dest/<folder>/`` in the layout of the shared data folder, so
    that ``INTERP_STEER_DATA=dest`` makes the loaders read them. Files already there are
    kept. MGSM's exemplars come as ``exemplars.py`` and are converted to ``exemplars.json``.

    Args:
        name: One of :data:`LOCAL_DATASETS`.
        lang: Any spelling of the language.
        dest: Data directory to write into; default: the user cache (see :func:`data_dir`).
        split: XCOPA split; None means every split.

    Returns:
        The paths of the files (fetched or already present).

    Raises:
        ValueError: On an unknown dataset, split or language.
        DataUnavailableError: If a file cannot be fetched (no network, or not found).

    Example:
        >>> download("xnli", "de", "/tmp/x")
        Traceback (most recent call last):
        ...
        ValueError: xnli has no local files; it is read from the hub (facebook/xnli)
    """
    src = _source(name)
    if src.folder is None or src.url is None:
        raise ValueError(f"{name} has no local files; it is read from the hub ({src.hub_id})")
    folder = Path(dest if dest is not None else _cache_dir()) / src.folder
    splits = [split] if split is not None else list(src.splits)
    rel_paths = list(dict.fromkeys(f for s in splits for f in dataset_files(name, lang, s)))
    written = []
    for rel in rel_paths:
        target = folder / rel
        written.append(target)
        if target.exists():
            continue
        remote = "exemplars.py" if rel == "exemplars.json" else rel
        url = f"{src.url}/{remote}"
        try:
            payload = _fetch(url)
        except (urllib.error.URLError, OSError) as err:
            raise DataUnavailableError(
                f"could not fetch {url} ({err}). There is probably no network access here. "
                f"Use a local copy instead: set {ENV_VAR} to a data directory holding "
                f"{src.folder}/ (the layout of the project's shared/data)."
            ) from err
        if rel == "exemplars.json":
            payload = _exemplars_json(payload)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".part")
        tmp.write_bytes(payload)
        tmp.replace(target)
    return written


__all__ = [
    "DATASETS",
    "DataUnavailableError",
    "DatasetSource",
    "ENV_VAR",
    "available_languages",
    "data_dir",
    "dataset_dir",
    "dataset_files",
    "download",
]
