"""Evaluating a vector on items it was fitted on warns; saved results are reported by size."""

import dataclasses
import warnings

import pytest

import interp_steer.evaluation.batches as eval_batches
from interp_steer.data import load_parallel, load_task
from interp_steer.evaluation import evaluate
from interp_steer.fitting import fit_vector


def overlap_warnings(caught):
    return [str(w.message) for w in caught if "fitted on" in str(w.message)]


def run(tiny, task, vector, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        evaluate(tiny, task, vector=vector, alpha=0.0, progress=False, **kwargs)
    return overlap_warnings(caught)


def test_a_vector_records_its_items_and_evaluate_warns_on_overlap(tiny):
    v = fit_vector(tiny, load_parallel("xcopa", "sw", n=6), layer=1)  # val items, 3 pairs each
    fitted = v.meta["data"]["ids"]
    assert len(fitted) == 2 and all(i.startswith("xcopa-val-") for i in fitted)
    val = load_task("xcopa", "sw", split="val", n=4)
    (message,) = run(tiny, val, v)
    assert message.startswith("2 of the 4 xcopa-sw items evaluated (first: xcopa-sw-val-")
    assert "xcopa-sw, split val" in message
    # the same items in another language are the same items
    assert len(run(tiny, load_task("xcopa", "et", split="val", n=4), v)) == 1
    # the test split shares no item with the val split the vector was fitted on
    assert run(tiny, load_task("xcopa", "sw", n=4), v) == []


def test_msvamp_fitted_on_its_default_split_overlaps_only_the_full_test_set(tiny, monkeypatch):
    monkeypatch.setattr(
        eval_batches, "generate_texts", lambda model, prompts, **kw: ["1"] * len(prompts)
    )
    v = fit_vector(tiny, load_parallel("msvamp", "de", n=4), layer=1)  # items 500-503
    full = load_task("msvamp", "de")  # split "test": all 1000 items
    around = dataclasses.replace(full, items=full.items[498:502])
    (message,) = run(tiny, around, v, max_new_tokens=1)
    assert message.startswith("2 of the 4 msvamp-de items evaluated (first: msvamp-de-500)")
    english = load_task("msvamp", "en", split="train", n=2)  # the pairs' English side
    assert len(run(tiny, english, v, max_new_tokens=1)) == 1
    assert run(tiny, load_task("msvamp", "de", split="eval", n=2), v, max_new_tokens=1) == []


def test_vectors_without_ids_do_not_warn(tiny):
    v = fit_vector(tiny, load_parallel("xcopa", "sw", n=3), layer=1)
    bare = dataclasses.replace(v, meta={k: x for k, x in v.meta.items() if k != "data"})
    assert run(tiny, load_task("xcopa", "sw", split="val", n=2), bare) == []


@pytest.mark.parametrize("n", [True, 2.5])
def test_n_true_and_fractions_are_refused(tiny, n):
    with pytest.raises((ValueError, TypeError)) as err:  # TypeError: the test run's checker
        evaluate(tiny, "xcopa", "sw", n=n, progress=False)
    if err.type is ValueError:
        assert "n must be a positive int" in str(err.value)


def test_a_saved_result_says_how_many_items_it_holds(tiny, tmp_path):
    out = tmp_path / "r.json"
    evaluate(tiny, "xcopa", "sw", n=3, output=out, progress=False)
    with pytest.raises(ValueError, match=r"holds 3 items \(complete, n=3\) and n=2"):
        evaluate(tiny, "xcopa", "sw", n=2, output=out, progress=False)
    with pytest.raises(ValueError, match=r"holds a result of 3 items .* other settings"):
        evaluate(tiny, "xcopa", "sw", n=3, output=out, batch_size=2, seed=1, progress=False)
    out.write_text('{"not": "a result"}')
    with pytest.raises(ValueError, match="exists but is not an evaluation result"):
        evaluate(tiny, "xcopa", "sw", n=3, output=out, progress=False)
