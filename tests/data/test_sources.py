"""The data directory, the dataset registry and downloads (network mocked)."""

import json
import urllib.error

import pytest

from interp_steer.data import load_parallel, sources
from interp_steer.data.sources import (
    DATASETS,
    ENV_VAR,
    DataUnavailableError,
    data_dir,
    dataset_dir,
    download,
)

SHARED = dataset_dir("mgsm").parent

# --- data directory --------------------------------------------------------------------


def test_env_var_wins(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert data_dir() == tmp_path


def test_shared_data_relative_to_cwd(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_VAR, raising=False)
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "project").mkdir()
    monkeypatch.chdir(tmp_path / "project")
    assert data_dir() == (tmp_path / "shared" / "data").resolve()


def test_shared_data_relative_to_repo_root(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    assert data_dir() == SHARED.resolve()


def test_user_cache_when_nothing_else(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(
        sources, "__file__", str(tmp_path / "pkg" / "interp_steer" / "data" / "sources.py")
    )
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert data_dir() == tmp_path / "cache" / "interp_steer" / "data"


def test_missing_dataset_folder_says_how_to_fix(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    with pytest.raises(FileNotFoundError) as err:
        load_parallel("mgsm", "de")
    message = str(err.value)
    assert ENV_VAR in message and str(tmp_path / "mgsm") in message
    assert DATASETS["mgsm"].url in message


def test_registry_names_public_sources():
    for name in ("mgsm", "msvamp", "xcopa", "tatoeba", "flores"):
        src = DATASETS[name]
        assert src.url.startswith("https://raw.githubusercontent.com/")
        assert (SHARED / src.folder).is_dir() and src.license
    for name in ("xnli", "mmlu", "m3exam"):
        assert DATASETS[name].hub_id and DATASETS[name].folder is None


# --- download (network mocked) --------------------------------------------------------


def test_download_writes_the_shared_layout_and_loaders_read_it(monkeypatch, tmp_path):
    fetched = []

    def fake_fetch(url: str) -> bytes:
        fetched.append(url)
        side = "Guten Morgen." if url.endswith(".deu") else "Good morning."
        return f"{side}\n{side}\n".encode()

    monkeypatch.setattr(sources, "_fetch", fake_fetch)
    paths = download("tatoeba", "German", tmp_path)
    base = DATASETS["tatoeba"].url
    assert fetched == [f"{base}/tatoeba.deu-eng.deu", f"{base}/tatoeba.deu-eng.eng"]
    assert paths == [
        tmp_path / "tatoeba" / "tatoeba.deu-eng.deu",
        tmp_path / "tatoeba" / "tatoeba.deu-eng.eng",
    ]
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    corpus = load_parallel("tatoeba", "de")
    assert corpus.target == ("Guten Morgen.", "Guten Morgen.")
    assert corpus.english == ("Good morning.", "Good morning.")
    # files already there are kept, not fetched again
    fetched.clear()
    download("tatoeba", "de", tmp_path)
    assert fetched == []


def test_download_converts_mgsm_exemplars_py(monkeypatch, tmp_path):
    shared = json.loads((SHARED / "mgsm" / "exemplars.json").read_text(encoding="utf-8"))
    exemplars_py = (
        '"""Prompts for mgsm."""\n'
        f"EXEMPLAR_NUMBER_ANSWERS = {shared['number_answers']!r}\n"
        f"EXEMPLAR_EQUATION_SOLUTIONS = {shared['equation_solutions']!r}\n"
        f"MGSM_EXEMPLARS = {shared['exemplars']!r}\n"
    )

    def fake_fetch(url: str) -> bytes:
        if url.endswith("exemplars.py"):
            return exemplars_py.encode()
        return (SHARED / "mgsm" / url.rsplit("/", 1)[1]).read_bytes()

    monkeypatch.setattr(sources, "_fetch", fake_fetch)
    download("mgsm", "de", tmp_path)
    assert json.loads((tmp_path / "mgsm" / "exemplars.json").read_text(encoding="utf-8")) == shared
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert len(load_parallel("mgsm", "de")) == 250


def test_download_xcopa_fetches_both_splits_and_versions(monkeypatch, tmp_path):
    fetched = []
    monkeypatch.setattr(sources, "_fetch", lambda url: fetched.append(url) or b"{}\n")
    download("xcopa", "it", tmp_path)
    assert [u.split("/xcopa/")[1].split("/", 1)[1] for u in fetched] == [
        "data/it/test.it.jsonl", "data-gmt/it/test.it.jsonl",
        "data/it/val.it.jsonl", "data-gmt/it/val.it.jsonl",
    ]  # fmt: skip


def test_download_without_network_raises_one_clear_error(monkeypatch, tmp_path):
    def no_network(url: str) -> bytes:
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(sources, "_fetch", no_network)
    with pytest.raises(DataUnavailableError) as err:
        download("flores", "fr", tmp_path)
    assert "no network" in str(err.value) and ENV_VAR in str(err.value)
    assert isinstance(err.value, ConnectionError)
    assert not list(tmp_path.rglob("*.devtest"))


def test_download_rejects_hub_and_unknown_datasets(tmp_path):
    with pytest.raises(ValueError, match="hub"):
        download("mmlu", "de", tmp_path)
    with pytest.raises(ValueError, match="unknown dataset 'gsm'"):
        download("gsm", "de", tmp_path)
