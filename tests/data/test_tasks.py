"""Task loaders: counts, gold answers and English alignment on the real files; hub parsers."""

import dataclasses
import json
import socket

import datasets
import pytest

from interp_steer.data import (
    DataUnavailableError,
    TaskItem,
    TaskSet,
    available_languages,
    hub_tasks,
    load_parallel,
    load_task,
)
from interp_steer.data.hub_tasks import hub_config, parse_m3exam, parse_mmlu, parse_xnli
from interp_steer.data.readers import read_mgsm, read_xcopa

# --- local tasks -----------------------------------------------------------------------


def test_mgsm_every_language():
    english = load_task("mgsm", "en")
    assert len(available_languages("mgsm")) == 11
    for lang in available_languages("mgsm"):
        ts = load_task("mgsm", lang)
        assert (len(ts), ts.lang, ts.split) == (250, lang, "test")
        assert len({item.id for item in ts}) == 250
        for item, en in zip(ts, english, strict=True):
            assert item.answer == en.answer  # line i shares its gold answer with English line i
            assert item.english == en.question
            assert item.label is None and item.choices == ()
            float(item.answer)


def test_mgsm_german_line_17():
    item = load_task("mgsm", "de").items[17]
    question, answer = read_mgsm("de")[17]
    assert (item.id, item.question, item.answer) == ("mgsm-de-17", question, answer)
    assert item.english == read_mgsm("en")[17][0]


def test_mgsm_gold_numbers_have_no_thousands_commas():
    answers = {item.answer for item in load_task("mgsm", "ja")}
    assert {"2125", "114200", "276000", "5600"} <= answers
    assert not any("," in a for a in answers)


def test_mgsm_exemplars():
    ts = load_task("mgsm", "de")
    assert [ex.answer for ex in ts.exemplars] == ["11", "29", "39", "9", "33", "8", "8", "5"]
    first = ts.exemplars[0]
    assert first.question.startswith("Roger hat 5 Tennisbälle")
    assert first.meta["question_prefix"] == "Frage:"
    assert first.meta["answer_prefix"] == "Schritt-für-Schritt-Antwort:"
    assert first.meta["solution"].startswith("Roger begann mit 5 Bällen.")
    assert first.meta["solution"].rstrip(".").endswith("11")
    assert first.meta["solution_raw"] == "Schritt-für-Schritt-Antwort: " + first.meta["solution"]
    assert first.english.startswith("Roger has 5 tennis balls")
    assert first.meta["english_solution"].startswith("Roger started with 5 balls.")
    for lang in available_languages("mgsm"):  # the prefixes are split off in every language
        for ex in load_task("mgsm", lang).exemplars:
            assert ex.meta["solution_raw"].startswith(ex.meta["answer_prefix"])
            assert not ex.meta["solution"].startswith(ex.meta["answer_prefix"])
    assert all(ex.id.startswith("mgsm-de-exemplar-") for ex in ts.exemplars)


def test_msvamp():
    for lang in available_languages("msvamp"):
        ts = load_task("msvamp", lang)
        assert len(ts) == 1000 and ts.exemplars == ()
    item = load_task("msvamp", "German").items[0]
    assert item.answer == "8" and item.label is None
    assert item.english.startswith("julia played tag with 18 kids on monday")
    assert item.question.startswith("Julia spielte am Montag mit 18 Kindern")
    assert item.meta["equation"] == "- number0 number1"
    assert not any(it.answer.endswith(".0") for it in load_task("msvamp", "th"))


def test_msvamp_train_and_eval_splits_are_disjoint_halves():
    full = load_task("msvamp", "de")
    train, held = load_task("msvamp", "de", split="train"), load_task("msvamp", "de", split="eval")
    assert (len(train), len(held)) == (500, 500)
    assert train.items == full.items[500:] and held.items == full.items[:500]
    assert train.items[0].id == "msvamp-de-500" and train.split == "train"
    assert not {it.id for it in train} & {it.id for it in held}
    pairs = load_parallel("msvamp", "de", split="train", n=3)
    assert pairs.target == tuple(it.question for it in train.items[:3])
    assert pairs.english == tuple(it.english for it in train.items[:3])
    with pytest.raises(ValueError, match="no split 'dev'"):
        load_task("msvamp", "de", split="dev")


@pytest.mark.parametrize("lang", ["et", "ht", "id", "it", "qu", "sw", "ta", "th", "tr", "vi", "zh"])
def test_xcopa_counts_choices_and_english(lang):
    test, val = load_task("xcopa", lang), load_task("xcopa", lang, split="val")
    assert (len(test), len(val)) == (500, 100)
    assert test.exemplars == val.items and val.exemplars == ()
    pairs = read_xcopa(lang, "test")
    for item, (native, english) in zip(test, pairs, strict=True):
        assert item.id == f"xcopa-{lang}-test-{native['idx']}" and item.meta["idx"] == native["idx"]
        assert item.label == native["label"] and item.label in (0, 1)
        assert item.choices == (native["choice1"].strip(), native["choice2"].strip())
        assert item.meta["relation"] in ("cause", "effect")
        if lang == "qu":
            assert english is None and item.english is None and item.english_choices == ()
        else:
            assert english["idx"] == native["idx"] and english["label"] == native["label"]
            assert item.english == english["premise"].strip()
            assert len(item.english_choices) == 2


def test_xcopa_relation_majority_flags_the_thai_file():
    thai = load_task("xcopa", "th")
    assert {item.meta["relation"] for item in thai} == {"effect"}
    disagree = sum(item.meta["relation"] != item.meta["relation_majority"] for item in thai)
    assert disagree == 250
    estonian = load_task("xcopa", "et")
    assert all(it.meta["relation"] == it.meta["relation_majority"] for it in estonian)


def test_xcopa_first_italian_val_item():
    item = load_task("xcopa", "Italian", split="val").items[0]
    assert item.question == "L'uomo aprì il rubinetto."
    assert item.english == "The man turned on the tap."
    assert item.english_choices == ("The toilet filled with water.", "Water flowed from the spout.")
    assert item.answer == "1" and item.meta["relation"] == "effect"


def test_n_and_head():
    ts = load_task("msvamp", "bn", n=7)
    assert len(ts) == 7 and ts.meta["n_available"] == 1000
    assert len(load_task("mgsm", "bn", n=10**6)) == 250
    assert [it.id for it in ts.head(2)] == ["msvamp-bn-0", "msvamp-bn-1"]
    assert list(ts) == list(ts.items)
    with pytest.raises(ValueError, match="positive"):
        ts.head(0)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (("gsm8k", "de"), {}, "unknown task 'gsm8k'"),
        (("mgsm", "de"), {"split": "val"}, "mgsm has no split 'val'"),
        (("mgsm", "de"), {"n": 0}, "positive"),
        (("mgsm", "it"), {}, "mgsm has no it data"),
        (("xcopa", "en"), {}, "xcopa has no en data"),
        (("msvamp", "Klingon"), {}, "unknown language"),
        (("m3exam", "de"), {}, "m3exam has no language 'de'"),
    ],
)
def test_bad_inputs(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_task(*args, **kwargs)


# --- the item schema -------------------------------------------------------------------


def test_task_item_schema_and_checks():
    names = [f.name for f in dataclasses.fields(TaskItem)]
    assert names == [
        "id",
        "task",
        "lang",
        "question",
        "answer",
        "choices",
        "english",
        "english_choices",
        "meta",
    ]
    assert TaskItem("a", "xnli", "deu", "p", "2").label == 2
    assert TaskItem("a", "mgsm", "German", "q", "18").lang == "de"
    with pytest.raises(ValueError, match="unknown task"):
        TaskItem("a", "gsm", "de", "q", "1")
    with pytest.raises(ValueError, match="choice index"):
        TaskItem("a", "xcopa", "it", "q", "B", ("x", "y"))
    with pytest.raises(ValueError, match="no index into 2 choices"):
        TaskItem("a", "xcopa", "it", "q", "2", ("x", "y"))
    with pytest.raises(ValueError, match="1 English choices for 2"):
        TaskItem("a", "xcopa", "it", "q", "1", ("x", "y"), "Q", ("x",))
    with pytest.raises(ValueError, match="non-empty"):
        TaskItem("a", "mgsm", "de", " ", "1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        TaskItem("a", "mgsm", "de", "q", "1").answer = "2"  # type: ignore[misc]


def test_task_set_is_frozen():
    ts = TaskSet("mgsm", "de", "test", (TaskItem("a", "mgsm", "de", "q", "1"),))
    assert len(ts) == 1 and ts.exemplars == ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        ts.name = "x"  # type: ignore[misc]


# --- hub tasks: parsers on fixture files, loading with the hub mocked ---------------------


def _jsonl(path, rows):
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_parse_xnli_fixture(tmp_path):
    rows = _jsonl(
        tmp_path / "xnli.jsonl",
        [
            {"premise": "Er schläft.", "hypothesis": "Er ist wach.", "label": 2},
            {"premise": "Es regnet.", "hypothesis": "Es ist nass.", "label": 0},
        ],
    )
    items = parse_xnli(rows, "deu", "validation")
    assert [it.id for it in items] == ["xnli-de-validation-0", "xnli-de-validation-1"]
    assert [it.label for it in items] == [2, 0] and items[0].meta["hypothesis"] == "Er ist wach."
    assert items[0].choices == () and items[0].meta["label_names"][2] == "contradiction"
    with pytest.raises(ValueError, match="expected label 0, 1 or 2, got -1"):
        parse_xnli([{"premise": "a", "hypothesis": "b", "label": -1}], "de", "test")
    with pytest.raises(ValueError, match="missing field 'hypothesis'"):
        parse_xnli([{"premise": "a", "label": 1}], "de", "test")


def test_parse_mmlu_fixture_both_layouts(tmp_path):
    mmmlu = {
        "Unnamed: 0": 0,
        "Question": "Was ist 2+2?",
        "A": "3",
        "B": "4",
        "C": "5",
        "D": "22",
        "Answer": "B",
        "Subject": "elementary_mathematics",
    }
    cais = {
        "question": "What is 2+2?",
        "choices": ["3", "4", "5", "22"],
        "answer": 1,
        "subject": "elementary_mathematics",
    }
    (de,) = parse_mmlu(_jsonl(tmp_path / "de.jsonl", [mmmlu]), "de", "test")
    (en,) = parse_mmlu(_jsonl(tmp_path / "en.jsonl", [cais]), "en", "test")
    assert de.choices == en.choices == ("3", "4", "5", "22") and de.label == en.label == 1
    assert de.meta["subject"] == "elementary_mathematics" and de.id == "mmlu-de-test-0"
    with pytest.raises(ValueError, match="outside the 4 choices"):
        parse_mmlu([{**mmmlu, "Answer": "E"}], "de", "test")
    with pytest.raises(ValueError, match="missing field 'C'"):
        parse_mmlu([{k: v for k, v in mmmlu.items() if k != "C"}], "de", "test")


def test_parse_m3exam_fixture(tmp_path):
    def row(question, options, answer, **extra):
        return {"question_text": question, "options": options, "answer_text": answer, **extra}

    rows = _jsonl(
        tmp_path / "m3exam.jsonl",
        [
            row("1+1=?", ["(1) 1", "(2) 2", "(3) 3"], "2", background="", level="low"),
            row("ข้อใดถูก", ["ก. หนึ่ง", "ข. สอง"], "ข", background="อ่าน"),
            row("Which?", ["No. 5", "No. 6"], "1", background=None),
            row("See the picture", ["A. x", "B. y"], "A", need_image="True"),
        ],
    )
    items = parse_m3exam(rows, "th", "test")
    assert len(items) == 3  # the image question is left out
    assert items[0].choices == ("1", "2", "3") and items[0].answer == "1"
    assert (
        items[0].meta["options"] == ("(1) 1", "(2) 2", "(3) 3") and items[0].meta["level"] == "low"
    )
    assert items[1].choices == ("หนึ่ง", "สอง") and items[1].label == 1
    assert items[1].question == "อ่าน\nข้อใดถูก" and items[1].meta["background"] == "อ่าน"
    assert items[2].choices == ("No. 5", "No. 6") and items[2].label == 0
    with pytest.raises(ValueError, match="names none of the options"):
        parse_m3exam(
            [{"question_text": "q", "options": ["(1) a", "(2) b"], "answer_text": "7"}],
            "th",
            "test",
        )


def test_parsers_accept_dataset_rows():
    ds = datasets.Dataset.from_list([{"premise": "Il pleut.", "hypothesis": "Sec.", "label": 2}])
    assert parse_xnli(ds, "fr", "test")[0].question == "Il pleut."


def test_hub_config():
    assert hub_config("xnli", "Swahili") == ("facebook/xnli", "sw")
    assert hub_config("mmlu", "en") == ("cais/mmlu", "all")
    assert hub_config("m3exam", "zho_Hans") == ("chiayewken/m3exam", "chinese")
    with pytest.raises(ValueError, match="xnli has no language 'ja'; expected one of ar, bg"):
        hub_config("xnli", "ja")


def test_hub_task_without_network_raises_one_clear_error(monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'facebook/xnli' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    monkeypatch.setattr(hub_tasks, "hub_reachable", lambda: True)  # reachable, then fails
    for name in ("xnli", "mmlu", "m3exam"):
        with pytest.raises(
            DataUnavailableError, match="could not load .* from the Hugging Face hub"
        ) as err:
            load_task(name, "sw")
        assert "INTERP_STEER_DATA" in str(err.value) and "network" in str(err.value)


def test_hub_task_end_to_end_with_the_hub_mocked(monkeypatch):
    calls = []
    row = {
        "question_text": "1+1=?",
        "options": ["(1) 1", "(2) 2"],
        "answer_text": "2",
        "background": "",
    }

    def fake_load(hub_id, config, split):
        calls.append((hub_id, config, split))
        return datasets.Dataset.from_list([row] * (3 if split == "test" else 2))

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    monkeypatch.setattr(hub_tasks, "hub_reachable", lambda: True)
    ts = load_task("m3exam", "sw", n=2)
    assert calls == [
        ("chiayewken/m3exam", "swahili", "test"),
        ("chiayewken/m3exam", "swahili", "dev"),
    ]
    assert len(ts) == 2 and ts.meta["n_available"] == 3 and len(ts.exemplars) == 2
    assert ts.items[0].label == 1 and ts.exemplars[0].id == "m3exam-sw-dev-0"
    assert hub_tasks.load_hub_rows("x/y", "c", "test")[0]["answer_text"] == "2"


@pytest.fixture
def hub_online(monkeypatch):
    """No offline switch set, whatever the machine's environment says."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)


def _no_hub_client(monkeypatch):
    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: calls.append(a) or 1 / 0)
    return calls


def test_an_unreachable_hub_fails_at_once_before_the_hub_client(monkeypatch, hub_online):
    # the hub client retries for ~25 s on a machine without network: it is never called
    calls = _no_hub_client(monkeypatch)
    monkeypatch.setattr(hub_tasks, "hub_reachable", lambda: False)
    with pytest.raises(DataUnavailableError) as err:
        load_task("xnli", "de")
    message = str(err.value)
    assert calls == [] and "\n" not in message
    assert "facebook/xnli (config 'de', split 'test')" in message
    assert "the hub cannot be reached" in message and "set HF_HUB_OFFLINE=1" in message
    assert str(hub_tasks.hub_copy_path("xnli", "de", "test")) in message
    assert "INTERP_STEER_DATA" in message


def test_offline_mode_reads_only_the_hub_cache(monkeypatch, hub_online):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    asked = []
    monkeypatch.setattr(hub_tasks.socket, "create_connection", lambda *a, **k: asked.append(a))

    def cache_only(hub_id, config, split):  # what datasets does offline without a cache
        raise ConnectionError(f"Couldn't reach '{hub_id}' on the Hub (OfflineModeIsEnabled)\nmore")

    monkeypatch.setattr(datasets, "load_dataset", cache_only)
    assert hub_tasks.hub_offline() and not hub_tasks.hub_reachable()
    with pytest.raises(DataUnavailableError) as err:
        load_task("mmlu", "de")
    message = str(err.value)
    assert asked == [] and "\n" not in message
    assert "HF_HUB_OFFLINE is set and the hub cache does not hold it" in message
    assert "set HF_HUB_OFFLINE=1" not in message  # it is set already
    assert "mmlu/DE_DE/test.jsonl" in message


def test_a_local_copy_of_a_hub_task_in_the_data_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("INTERP_STEER_DATA", str(tmp_path))
    calls = _no_hub_client(monkeypatch)
    path = hub_tasks.hub_copy_path("xnli", "de", "validation")
    assert path == tmp_path / "xnli" / "de" / "validation.jsonl"
    path.parent.mkdir(parents=True)
    rows = [{"premise": f"P{i}", "hypothesis": "H", "label": i % 3} for i in range(3)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    ts = load_task("xnli", "German", split="validation", n=2)
    assert calls == [] and ts.meta["n_available"] == 3
    assert [(i.id, i.question, i.label) for i in ts] == [
        ("xnli-de-validation-0", "P0", 0),
        ("xnli-de-validation-1", "P1", 1),
    ]
    path.write_text(json.dumps(rows[0]) + "\n[1, 2]\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"validation.jsonl line 2: not a JSON object"):
        load_task("xnli", "de", split="validation")


def test_hub_reachable_opens_one_connection(monkeypatch, hub_online):
    for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy",
                "ALL_PROXY"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
        assert hub_tasks.hub_reachable()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")  # closed now
    assert not hub_tasks.hub_reachable()
