"""The language table: one canonical code for every spelling the datasets use."""

import dataclasses

import pytest

from interp_steer.data import (
    LANGUAGES,
    Language,
    available_languages,
    canonical,
    get_language,
    languages,
)
from interp_steer.data.sources import dataset_dir

SPELLINGS = {
    "de": ["de", "deu", "deu_Latn", "German", "german", " GERMAN ", "ger"],
    "zh": ["zh", "cmn", "zho", "zho_Hans", "Chinese", "Mandarin"],
    "sw": ["sw", "swh", "swa", "swh_Latn", "Swahili"],
    "qu": ["qu", "quy", "que", "quy_Latn", "Quechua"],
    "ht": ["ht", "hat", "hat_Latn", "Haitian Creole", "Haitian"],
    "ar": ["ar", "ara", "arb", "arb_Arab", "Arabic"],
    "et": ["et", "est", "ekk", "est_Latn", "Estonian"],
    "ja": ["ja", "jpn", "jpn_Jpan", "Japanese"],
    "bn": ["bn", "ben", "ben_Beng", "Bengali", "Bangla"],
}


@pytest.mark.parametrize("code", sorted(SPELLINGS))
def test_every_spelling_names_one_language(code):
    found = {get_language(s) for s in SPELLINGS[code]}
    assert found == {LANGUAGES[code]}
    assert {canonical(s) for s in SPELLINGS[code]} == {code}


def test_canonical_prefers_iso639_1_and_falls_back_to_iso639_3():
    assert canonical("Old English") == "ang"
    assert canonical("gsw") == "gsw"
    assert canonical("Swiss German") == "gsw"
    for lang in LANGUAGES.values():
        assert len(lang.code) in (2, 3)
        if len(lang.code) == 3:
            assert lang.code == lang.iso639_3


def test_unknown_spelling_lists_valid_codes():
    with pytest.raises(ValueError, match="unknown language 'xx'") as err:
        get_language("xx")
    assert "de" in str(err.value) and "zh" in str(err.value) and "valid codes" in str(err.value)
    with pytest.raises(ValueError):
        canonical("Klingon")


def test_get_language_passes_a_language_through():
    de = LANGUAGES["de"]
    assert get_language(de) is de


def test_table_entries_are_consistent():
    assert all(code == lang.code for code, lang in LANGUAGES.items())
    for lang in LANGUAGES.values():
        assert lang.resource in ("high", "mid", "low")
        assert len(lang.script) == 4 and lang.script[0].isupper()
        assert len(lang.iso639_3) == 3
        if lang.flores is not None:
            assert lang.flores.split("_")[1] == lang.script
            assert get_language(lang.flores) == lang


def test_resource_levels_follow_the_paper():
    assert all(LANGUAGES[c].resource == "high" for c in ("de", "fr", "es", "ru", "zh", "ja", "en"))
    assert all(LANGUAGES[c].resource == "low" for c in ("th", "sw", "bn", "te"))


@pytest.mark.parametrize(
    ("code", "family"),
    [
        ("de", "Germanic"), ("fr", "Romance"), ("ru", "Slavic"), ("zh", "Sino-Tibetan"),
        ("ja", "Japonic"), ("sw", "Bantu"), ("bn", "Indo-Aryan"), ("te", "Dravidian"),
        ("th", "Tai-Kadai"), ("tr", "Turkic"), ("et", "Uralic"), ("id", "Austronesian"),
        ("qu", "Quechuan"), ("ht", "Creole"), ("ar", "Semitic"), ("el", "Hellenic"),
        ("ko", "Koreanic"), ("vi", "Austroasiatic"),
    ],
)  # fmt: skip
def test_families(code, family):
    assert LANGUAGES[code].family == family


def test_language_is_frozen_and_table_read_only():
    with pytest.raises(dataclasses.FrozenInstanceError):
        LANGUAGES["de"].code = "xx"  # type: ignore[misc]
    with pytest.raises(TypeError):
        LANGUAGES["xx"] = LANGUAGES["de"]  # type: ignore[index]


def test_ambiguous_spelling_is_rejected_when_building(monkeypatch):
    clash = ("zz", "German", "zzz", None, "Latn", "Germanic", "low", "")
    monkeypatch.setattr(languages, "_TABLE", (*languages._TABLE, clash))
    with pytest.raises(ValueError, match="spelling 'German' names de and zz"):
        languages._build()


def test_every_language_of_the_shared_data_is_covered():
    # raw file spellings, straight from the folders
    mgsm = {p.stem.removeprefix("mgsm_") for p in dataset_dir("mgsm").glob("mgsm_*.tsv")}
    msvamp = {p.stem.removeprefix("test_") for p in dataset_dir("msvamp").glob("test_*.json")}
    xcopa = {p.name for p in (dataset_dir("xcopa") / "data").iterdir()}
    flores = {p.stem for p in dataset_dir("flores").glob("*.devtest")}
    tatoeba = {p.suffix[1:] for p in dataset_dir("tatoeba").glob("tatoeba.*-eng.*")}
    assert len(mgsm) == 11 and len(msvamp) == 10 and len(xcopa) == 11 and len(flores) == 24
    assert len(tatoeba - {"eng"}) == 112
    for spelling in mgsm | msvamp | xcopa | flores | tatoeba:
        get_language(spelling)  # raises if unknown
    # FLORES file names are exactly the table's FLORES codes
    assert all(get_language(stem).flores == stem for stem in flores)
    # MSVAMP's English names are the table's names
    assert all(get_language(name).name == name for name in msvamp)


def test_common_languages_are_in_the_table():
    for code in ("it", "pt", "ar", "hi", "ko", "tr", "vi", "id", "et", "ta", "el", "nl", "pl"):
        assert code in LANGUAGES
    assert set(available_languages("flores")) <= set(LANGUAGES)


def test_language_dataclass_fields():
    fields = [f.name for f in dataclasses.fields(Language)]
    assert fields == ["code", "name", "iso639_3", "flores", "script", "family", "resource"]
