"""Readers and parallel corpora, on the real shared files."""

import json
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pytest

from interp_steer.analysis.cells import data_fingerprint
from interp_steer.data import ParallelCorpus, available_languages, load_parallel
from interp_steer.data.readers import (
    normalize_number,
    read_flores,
    read_lines,
    read_mgsm,
    read_msvamp,
    read_xcopa,
)
from interp_steer.data.sources import ENV_VAR, dataset_dir

SHARED = dataset_dir("mgsm").parent


def _corpus(n: int = 10) -> ParallelCorpus:
    return ParallelCorpus(
        tuple(f"English {i}." for i in range(n)), tuple(f"Deutsch {i}." for i in range(n)), "de"
    )


# --- readers ---------------------------------------------------------------------------


def test_normalize_number():
    assert normalize_number("2,125") == "2125"
    assert normalize_number("8.0") == "8"
    assert normalize_number("0.50") == "0.5"
    with pytest.raises(ValueError, match="numeric"):
        normalize_number("eighteen")


def test_read_lines_splits_on_newline_only(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("\ufeffa\u2028b \nc\r\n\n", encoding="utf-8")
    assert read_lines(path) == ["a\u2028b", "c", ""]


def test_mgsm_german_and_english_lines_share_gold_answers():
    german, english = read_mgsm("de"), read_mgsm("en")
    assert len(german) == len(english) == 250
    assert [a for _, a in german] == [a for _, a in english]
    assert "2125" in {a for _, a in german}  # "2,125" in the file


def test_flores_csv_quoting_is_undone():
    lines, n_unquoted = read_flores("tel")
    assert n_unquoted == 68 and len(lines) == 1012
    raw = read_lines(SHARED / "flores200" / "tel_Telu.devtest")
    assert sum(a != b for a, b in zip(lines, raw, strict=True)) == n_unquoted
    assert sum(line.startswith('"""') for line in raw) == 32
    assert read_flores("en")[1] == 0 and read_flores("ru")[1] == 0
    assert (
        read_flores("et")[0][0]
        == '"Meil on nüüd neljakuused diabeedita hiired, kellel oli varem diabeet," lisas ta.'
    )
    for lang in available_languages("flores"):
        fixed = read_flores(lang)[0]
        assert not any(line.startswith('"""') for line in fixed), lang
        assert sum('""' in line for line in fixed) <= 2, lang  # te keeps 2 odd lines, ru 1 genuine


# --- ParallelCorpus -------------------------------------------------------------------


def test_corpus_validation_names_the_problem():
    with pytest.raises(ValueError, match="english has 2 texts but target has 1"):
        ParallelCorpus(("a", "b"), ("c",), "de")
    with pytest.raises(ValueError, match="at least one pair"):
        ParallelCorpus((), (), "de")
    with pytest.raises(ValueError, match=r"target\[2\] is empty"):
        ParallelCorpus(("a", "b", "c"), ("a", "b", " \t"), "de")
    with pytest.raises(ValueError, match="both 'en'"):
        ParallelCorpus(("a",), ("b",), "English")
    with pytest.raises(ValueError, match="unknown language"):
        ParallelCorpus(("a",), ("b",), "xx")
    with pytest.raises(TypeError):  # "english must be a tuple or list", or pytest's checker
        ParallelCorpus({"a"}, ("b",), "de")  # type: ignore[arg-type]
    assert ParallelCorpus(["a"], ("b",), "de").english == ("a",)  # a list is taken


def test_corpus_normalises_language_codes():
    corpus = ParallelCorpus(("a",), ("b",), "deu_Latn", target_lang="eng")
    assert (corpus.source_lang, corpus.target_lang) == ("de", "en")


def test_split_is_deterministic_and_partitions():
    corpus = _corpus(50)
    train, test = corpus.split(0.2, seed=3)
    again = corpus.split(0.2, seed=3)
    assert (train, test) == again
    assert len(test) == 10 and len(train) == 40
    assert set(train.english) | set(test.english) == set(corpus.english)
    assert not set(train.english) & set(test.english)
    assert list(train.english) == [e for e in corpus.english if e in set(train.english)]
    assert all(
        e.split()[1] == t.split()[1] for e, t in zip(train.english, train.target, strict=True)
    )
    assert corpus.split(0.2, seed=4)[1].english != test.english
    assert len(corpus.split(7)[1]) == 7


@pytest.mark.parametrize("bad", [0, 0.0, 1.0, 1.5, 10, -2, True])
def test_split_rejects_sizes_that_leave_a_part_empty(bad):
    with pytest.raises(ValueError, match="test_size"):
        _corpus(10).split(bad)


def test_head():
    corpus = _corpus(5)
    assert corpus.head(2).english == ("English 0.", "English 1.")
    assert corpus.head(99) == corpus
    with pytest.raises(ValueError, match="positive"):
        corpus.head(0)


def test_dataset_round_trip_and_missing_columns():
    corpus = _corpus(4)
    ds = corpus.to_dataset()
    assert ds.column_names == ["english", "target"] and len(ds) == 4
    back = ParallelCorpus.from_dataset(ds, source_lang="German", name=corpus.name)
    assert back == corpus
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['de'\]"):
        ParallelCorpus.from_dataset(
            datasets.Dataset.from_dict({"english": ["a"]}), source_lang="de", target_col="de"
        )


def test_from_file_reads_jsonl_csv_tsv(tmp_path):
    rows = [{"en": "Hello, you.", "de": 'Hallo, "du".'}, {"en": "Bye.", "de": "Tschüss."}]
    (tmp_path / "p.jsonl").write_text(
        "\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8"
    )
    (tmp_path / "p.csv").write_text(
        'en,de\n"Hello, you.","Hallo, ""du""."\nBye.,Tschüss.\n', encoding="utf-8"
    )
    (tmp_path / "p.tsv").write_text(
        'en\tde\nHello, you.\tHallo, "du".\nBye.\tTschüss.\n', encoding="utf-8"
    )
    for name in ("p.jsonl", "p.csv", "p.tsv"):
        corpus = ParallelCorpus.from_file(
            tmp_path / name, english_col="en", target_col="de", source_lang="deu"
        )
        assert corpus.english == ("Hello, you.", "Bye.")
        assert corpus.target == ('Hallo, "du".', "Tschüss.")
        assert corpus.source_lang == "de" and corpus.meta["path"] == str(tmp_path / name)


def test_from_file_errors(tmp_path):
    (tmp_path / "p.csv").write_text("english,german\na,b\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['target'\]"):
        ParallelCorpus.from_file(
            tmp_path / "p.csv", english_col="english", target_col="target", source_lang="de"
        )
    (tmp_path / "short.csv").write_text("en,de\na,b\nc\n", encoding="utf-8")
    with pytest.raises(ValueError, match="row 1 has no text"):
        ParallelCorpus.from_file(
            tmp_path / "short.csv", english_col="en", target_col="de", source_lang="de"
        )
    (tmp_path / "p.txt").write_text("a\n", encoding="utf-8")
    with pytest.raises(ValueError, match="expected a .jsonl, .csv or .tsv"):
        ParallelCorpus.from_file(
            tmp_path / "p.txt", english_col="en", target_col="de", source_lang="de"
        )


# --- load_parallel on the real files ----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"), [("mgsm", 250), ("msvamp", 500), ("flores", 1012), ("xcopa", 300)]
)
def test_counts_for_every_language(name, expected):
    langs = [c for c in available_languages(name) if c != "en"]
    assert len(langs) == {"mgsm": 10, "msvamp": 9, "flores": 23, "xcopa": 11}[name]
    for lang in langs:
        if name == "xcopa" and lang == "qu":
            continue
        corpus = load_parallel(name, lang)
        assert len(corpus) == expected, lang
        assert corpus.source_lang == lang and corpus.target_lang == "en"


def test_tatoeba_counts_and_codes():
    assert len(available_languages("tatoeba")) == 112
    assert [len(load_parallel("tatoeba", c)) for c in ("deu", "cmn", "tha", "swh", "tel")] == [
        1000,
        1000,
        548,
        390,
        234,
    ]
    assert load_parallel("tatoeba", "Arabic").meta["path"].endswith("tatoeba.ara-eng.ara")


def test_pairs_are_aligned():
    mgsm = load_parallel("mgsm", "de")
    assert mgsm.english == tuple(q for q, _ in read_mgsm("en"))
    assert mgsm.target == tuple(q for q, _ in read_mgsm("de"))
    msvamp = load_parallel("msvamp", "fr", split="test")
    assert msvamp.english == tuple(r["question"] for r in read_msvamp("English"))
    xcopa = load_parallel("xcopa", "tr", split="test")
    pairs = read_xcopa("tr", "test")
    assert len(xcopa) == 3 * len(pairs) == 1500
    assert xcopa.english[3 * 7 : 3 * 7 + 3] == tuple(
        pairs[7][1][k] for k in ("premise", "choice1", "choice2")
    )
    assert xcopa.target[3 * 7] == pairs[7][0]["premise"]
    flores = load_parallel("flores", "fr")
    assert flores.english[0].startswith('"We now have 4-month-old mice')


def test_spellings_give_the_same_corpus():
    a, b = load_parallel("flores", "deu_Latn", n=20), load_parallel("flores", "German", n=20)
    assert a == b and a.name == "flores-de"
    assert load_parallel("msvamp", "zho_Hans", n=3) == load_parallel("msvamp", "Chinese", n=3)


def test_n_and_meta():
    corpus = load_parallel("mgsm", "th", n=10)
    assert len(corpus) == 10 and corpus.meta["n_available"] == 250
    assert len(load_parallel("mgsm", "th", n=10_000)) == 250
    meta = load_parallel("xcopa", "vi").meta
    assert meta["dataset"] == "xcopa" and meta["split"] == "val" and meta["license"] == "CC-BY-4.0"
    assert Path(meta["path"]).is_file() and Path(meta["english_path"]).is_file()


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (("gsm8k", "de"), {}, "unknown parallel dataset 'gsm8k'.*mgsm"),
        (("mgsm", "xx"), {}, "unknown language 'xx'"),
        (("mgsm", "it"), {}, "mgsm has no it data.*available languages: bn, de"),
        (("mgsm", "English"), {}, "English, the target side"),
        (("xcopa", "qu"), {}, "no English version.*data-gmt"),
        (("xcopa", "de"), {}, "xcopa has no de data"),
        (("xcopa", "it"), {"split": "train"}, "no split 'train'"),
        (("flores", "fr"), {"n": 0}, "positive"),
        (("flores", "fr"), {"n": -5}, "positive"),
        (("flores", "Breton"), {}, "not part of FLORES-200"),
    ],
)
def test_bad_inputs(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_parallel(*args, **kwargs)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_misaligned_files_are_rejected(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    _write(tmp_path / "tatoeba" / "tatoeba.deu-eng.deu", "a\nb\nc\n")
    _write(tmp_path / "tatoeba" / "tatoeba.deu-eng.eng", "a\nb\n")
    with pytest.raises(ValueError, match="has 3 items but .* has 2"):
        load_parallel("tatoeba", "de")
    _write(tmp_path / "mgsm" / "mgsm_de.tsv", "Frage\t3\n")
    _write(tmp_path / "mgsm" / "mgsm_en.tsv", "Question\t4\n")
    with pytest.raises(ValueError, match="line 1 answers 3, English 4"):
        load_parallel("mgsm", "de")
    _write(tmp_path / "mgsm" / "mgsm_de.tsv", "Frage ohne Antwort\n")
    with pytest.raises(ValueError, match="expected 'question<TAB>answer'"):
        load_parallel("mgsm", "de")
    _write(tmp_path / "flores200" / "fra_Latn.devtest", "a\nb\n")
    _write(tmp_path / "flores200" / "eng_Latn.devtest", "a\n")
    with pytest.raises(ValueError, match="2 lines but English 1"):
        load_parallel("flores", "fr")
    row = {
        "premise": "p",
        "choice1": "a",
        "choice2": "b",
        "question": "cause",
        "label": 0,
        "idx": 0,
    }
    _write(tmp_path / "xcopa" / "data" / "it" / "val.it.jsonl", json.dumps(row) + "\n")
    _write(
        tmp_path / "xcopa" / "data-gmt" / "it" / "val.it.jsonl",
        json.dumps({**row, "idx": 5}) + "\n",
    )
    with pytest.raises(ValueError, match="disagree at idx 0"):
        load_parallel("xcopa", "it")
    _write(tmp_path / "tatoeba" / "tatoeba.deu-eng.eng", "a\n\nc\n")
    with pytest.raises(ValueError, match=r"english\[1\] is empty"):
        load_parallel("tatoeba", "de")


# --- your own pairs: ParallelCorpus.coerce / from_pairs ----------------------------------

EN, DE = ["Hello.", "Thanks.", "Good night."], ["Hallo.", "Danke.", "Gute Nacht."]


def test_the_constructor_takes_lists_and_stores_tuples():
    corpus = ParallelCorpus(english=list(EN), target=list(DE), source_lang="de")
    assert corpus.english == tuple(EN) and corpus.target == tuple(DE)
    assert corpus == ParallelCorpus(tuple(EN), tuple(DE), "de")
    with pytest.raises(TypeError):  # one str is not a list of texts (pytest's checker first)
        ParallelCorpus(english="Hello.", target=("Hallo.",), source_lang="de")


@pytest.mark.parametrize(
    "data",
    [
        list(zip(EN, DE, strict=True)),
        [list(pair) for pair in zip(EN, DE, strict=True)],  # JSON rows
        (EN, DE),
        [EN, DE],
        (pd.Series(EN), np.array(DE)),
        {"english": EN, "target": DE},
        {"target": DE, "english": EN, "note": ["a", "b", "c"]},
        {"German": DE, "English": EN},
        pd.DataFrame({"english": EN, "target": DE, "id": [1, 2, 3]}),
        pd.DataFrame({"source": EN, "translation": DE}),
        pd.DataFrame({"de": DE, "en": EN}),
        datasets.Dataset.from_dict({"english": EN, "target": DE}),
    ],
)
def test_coerce_reads_every_form_to_the_same_pairs(data):
    corpus = ParallelCorpus.coerce(data, lang="de")
    assert corpus.english == tuple(EN) and corpus.target == tuple(DE)
    assert (corpus.source_lang, corpus.target_lang, corpus.name) == ("de", "en", "user-de")
    assert corpus.meta["dataset"] == "user" and corpus.meta["n_available"] == 3
    assert corpus.fingerprint == ParallelCorpus(tuple(EN), tuple(DE), "de").fingerprint


def test_coerce_returns_a_corpus_as_is_and_keeps_paired_texts_provenance():
    corpus = _corpus(3)
    assert ParallelCorpus.coerce(corpus) is corpus
    assert ParallelCorpus.coerce(corpus, lang="deu") is corpus
    with pytest.raises(ValueError, match="is in 'de', but lang='fr'"):
        ParallelCorpus.coerce(corpus, lang="fr")

    class Mine:
        english, target = tuple(EN), tuple(DE)
        source_lang, name, meta, ids = "German", "mine", {"split": "x"}, ("a", "b", "c")

    mine = ParallelCorpus.coerce(Mine())
    assert (mine.source_lang, mine.name, mine.meta, mine.ids) == ("de", "mine", {"split": "x"},
                                                                  ("a", "b", "c"))  # fmt: skip


def test_without_a_language_the_corpus_is_undetermined_and_columns_can_name_it():
    und = ParallelCorpus.coerce(list(zip(EN, DE, strict=True)))
    assert (und.source_lang, und.name) == ("und", "user-und")
    assert ParallelCorpus.coerce({"en": EN, "sw": DE}).source_lang == "sw"
    assert ParallelCorpus.coerce({"sw": DE, "en": EN}).english == tuple(EN)
    with pytest.raises(ValueError, match="names 'sw', but lang='de'"):
        ParallelCorpus.coerce({"en": EN, "sw": DE}, lang="de")
    with pytest.raises(ValueError, match="unknown language 'xx'"):
        ParallelCorpus.coerce((EN, DE), lang="xx")


def test_fingerprint_is_data_fingerprint_and_follows_the_content_only():
    corpus = load_parallel("flores", "de", n=4)
    assert corpus.fingerprint == data_fingerprint(corpus)
    user = ParallelCorpus.coerce(list(zip(corpus.english, corpus.target, strict=True)))
    assert user.fingerprint == ParallelCorpus(corpus.english, corpus.target, "de").fingerprint
    assert user.fingerprint != corpus.fingerprint  # the flores corpus has ids
    assert (
        ParallelCorpus.coerce((EN, DE[::-1])).fingerprint
        != ParallelCorpus.coerce((EN, DE)).fingerprint
    )


def test_from_pairs_takes_pairs_only():
    c = ParallelCorpus.from_pairs(zip(EN, DE, strict=True), lang="de", name="mine", ids="abc")
    assert (c.english, c.name, c.ids, c.meta["form"]) == (tuple(EN), "mine", ("a", "b", "c"),
                                                          "pairs")  # fmt: skip
    with pytest.raises(TypeError, match=r"item 1 is not an \(english, target\) pair"):
        ParallelCorpus.from_pairs([("a", "b"), ("c",)])
    with pytest.raises(TypeError, match="from_pairs takes"):
        ParallelCorpus.from_pairs({"english": EN, "target": DE})


@pytest.mark.parametrize(
    ("data", "error", "match"),
    [
        (None, TypeError, "cannot read pairs from a NoneType"),
        (b"Hello", TypeError, "cannot read pairs from a bytes"),
        ([], ValueError, "empty"),
        ({"english": [], "target": []}, ValueError, "empty"),
        ([("Hello", "Hallo"), ("Bye", "")], ValueError, r"target\[1\] is empty"),
        ({"english": ["a", "b"], "target": ["x"]}, ValueError, "2 texts but target has 1"),
        (pd.DataFrame({"english": ["a", "b"], "target": ["x", None]}), TypeError,
         r"target\[1\] must be str"),
        ([["Hello", "Hallo"], ["Bye", "Tschüss"]], ValueError, "ambiguous"),
        ((("Hello", "Hallo"), ("Bye", "Tschüss")), ValueError, "ambiguous"),
        ({"a": ["x"], "b": ["y"], "c": ["z"]}, ValueError, "not exactly two"),
        ({"en": ["x"], "English": ["y"]}, ValueError, "both columns"),
        ({"english": "Hello", "target": "Hallo"}, TypeError, "column 'english' is a str"),
        (datasets.DatasetDict(train=datasets.Dataset.from_dict({"english": ["a"]})), TypeError,
         r"holds splits \['train'\]; pick one"),
    ],
)  # fmt: skip
def test_coerce_refuses_with_one_error_listing_the_forms(data, error, match):
    with pytest.raises(error, match=match) as caught:
        ParallelCorpus.coerce(data)
    assert str(caught.value).endswith("or an object with english and target attributes"), (
        caught.value
    )
