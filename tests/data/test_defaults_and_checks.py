"""Data defaults that keep scored items out of fitting; counts and language tags checked."""

import numpy as np
import pytest

from interp_steer.constants import check_count
from interp_steer.data import ParallelCorpus, canonical, get_language, load_parallel, load_task
from interp_steer.data.languages import near_languages
from interp_steer.data.parallel import default_split
from interp_steer.data.tasks import item_key

# --- MSVAMP: fitting reads the train half unless told otherwise -------------------------


def test_msvamp_fits_on_the_train_split_by_default():
    pairs = load_parallel("msvamp", "de")
    assert pairs.meta["split"] == "train" == default_split("msvamp") and len(pairs) == 500
    assert pairs.ids[0] == "msvamp-500" and pairs.ids[-1] == "msvamp-999"
    scored = {item_key(item) for item in load_task("msvamp", "de", split="eval")}
    assert scored.isdisjoint(pairs.ids)
    assert len(load_parallel("msvamp", "de", split="test")) == 1000  # all, when asked for
    assert load_parallel("msvamp", "de", n=3).english == pairs.english[:3]


def test_pair_ids_match_the_task_item_keys_across_languages():
    for name in ("mgsm", "msvamp", "xcopa"):
        split = {"mgsm": "test", "msvamp": "test", "xcopa": "val"}[name]
        pairs, task = load_parallel(name, "sw", split=split), load_task(name, "sw", split=split)
        assert set(pairs.ids) == {item_key(item) for item in task}
        # the same item in another language has the same key
        other = "de" if name != "xcopa" else "et"
        assert item_key(load_task(name, other, split=split).items[0]) == pairs.ids[0]
    xcopa = load_parallel("xcopa", "et")
    assert len(set(xcopa.ids[:3])) == 1 and xcopa.ids[0].startswith("xcopa-val-")
    assert load_parallel("tatoeba", "deu", n=2).ids == ("tatoeba-de-0", "tatoeba-de-1")


def test_ids_follow_head_and_split_and_are_checked():
    pairs = load_parallel("mgsm", "de")
    train, test = pairs.split(0.2, seed=0)
    assert set(train.ids) | set(test.ids) == set(pairs.ids) and not set(train.ids) & set(test.ids)
    assert pairs.head(2).ids == ("mgsm-0", "mgsm-1")
    with pytest.raises(ValueError, match="one str per pair"):
        ParallelCorpus(("a", "b"), ("c", "d"), "de", ids=("x",))
    assert ParallelCorpus(("a",), ("b",), "de").ids == ()


# --- counts: n=True and n=2.5 are not numbers of items -----------------------------------


@pytest.mark.parametrize("n", [True, 2.5, 0, -1, "3"])
def test_n_must_be_a_positive_int(n):
    for call in (
        lambda: load_parallel("mgsm", "de", n=n),
        lambda: load_task("mgsm", "de", n=n),
        lambda: load_parallel("mgsm", "de").head(n),
        lambda: load_task("mgsm", "de").head(n),
    ):
        # TypeError: the test run's type checker stops a float or str at the annotation
        with pytest.raises((ValueError, TypeError)) as err:
            call()
        if err.type is ValueError:
            assert f"n must be a positive int, got {n!r}" in str(err.value)


def test_check_count():
    assert check_count("n", np.int64(3)) == 3 and check_count("k", 0, minimum=0) == 0
    for bad in (True, 2.0, 2.5, "3", None, 0):
        with pytest.raises(ValueError, match="n must be a positive int"):
            check_count("n", bad)


# --- language tags ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spelling", "code"),
    [("no", "nb"), ("nor", "nb"), ("fil", "tl"), ("pt-BR", "pt"), ("pt_br", "pt"),
     ("en-US", "en"), ("es-419", "es"), ("zh-Hans", "zh"), ("zh-Hans-CN", "zh"),
     ("sr-Cyrl", "sr"), ("de-AT", "de")],
)  # fmt: skip
def test_tags_and_macrolanguage_codes_resolve(spelling, code):
    assert canonical(spelling) == code


@pytest.mark.parametrize(
    ("spelling", "near"),
    [
        ("zho_Hant", "near matches: zh (Chinese, zho_Hans), yue (Cantonese, yue_Hant)"),
        ("zh-TW", "is listed in Hans script, not Hant"),
        ("sr-Latn", "near matches: sr (Serbian, srp_Cyrl), bs (Bosnian, bos_Latn)"),
        ("Portugese", "near matches: pt (Portuguese, por_Latn)"),
        ("deu_Latin", "near matches: de (German, deu_Latn)"),
    ],
)
def test_unknown_spellings_list_near_matches(spelling, near):
    with pytest.raises(ValueError, match=f"unknown language '{spelling}'") as err:
        get_language(spelling)
    assert near in str(err.value) and "\n" not in str(err.value)


def test_near_languages():
    assert [x.code for x in near_languages("zho_Hant")] == ["zh", "yue"]
    assert near_languages("Klingon") == ()
