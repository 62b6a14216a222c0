"""Closed-form fitting methods, the registry, fit_vector/fit_vectors and their meta."""

import math
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from interp_steer.data import ParallelCorpus
from interp_steer.fitting import (
    METHODS,
    REGISTRY,
    Method,
    check_hyper,
    fit_vector,
    fit_vectors,
    register_method,
)
from interp_steer.fitting.directions import (
    alignment_metrics,
    mean_diff_direction,
    mse_direction,
    pca_direction,
)
from interp_steer.steering import SteeringVector

ENGLISH = ("The cat sleeps.", "Hello, friend.", "I like bread.", "It is cold today.", "Go home.")
GERMAN = (
    "Die Katze schläft.",
    "Hallo, Freund.",
    "Ich mag Brot.",
    "Heute ist es kalt.",
    "Geh heim.",
)


def corpus(english=ENGLISH, target=GERMAN, **extra):
    fields = {"source_lang": "de", "target_lang": "en", "name": "toy-de", "meta": {"split": "x"}}
    return SimpleNamespace(english=english, target=target, **{**fields, **extra})


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py: tiny ops contend on threads


def planted(n=200, d=32, seed=0, spread=1.0):
    """Target activations, and English = target + a_i * u + noise, with a known u."""
    gen = torch.Generator().manual_seed(seed)
    u = torch.nn.functional.normalize(torch.randn(d, generator=gen), dim=0)
    h_tgt = 5 * torch.randn(n, d, generator=gen)
    a = 3.0 + spread * torch.randn(n, 1, generator=gen)
    h_en = h_tgt + a * u + 0.1 * torch.randn(n, d, generator=gen)
    return h_en, h_tgt, u


def cos(a, b):
    return float(torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=0))


@pytest.mark.parametrize(
    "fit",
    [
        mean_diff_direction,
        pca_direction,
        lambda en, tgt: pca_direction(en, tgt, center=True),
        lambda en, tgt: mse_direction(en, tgt)[0],
    ],
    ids=["mean_diff", "pca", "pca_centered", "mse"],
)
def test_closed_form_methods_recover_a_planted_direction(fit):
    h_en, h_tgt, u = planted()
    v = fit(h_en, h_tgt)
    assert v.shape == (32,) and v.dtype == torch.float32
    assert cos(v, u) > 0.99
    assert abs(float(v @ u) - 3.0) < 0.3  # about the mean offset along u


def test_pca_is_sign_aligned_and_scaled_to_the_mean_difference():
    h_en, h_tgt, _ = planted(spread=0.0)
    md, pc = mean_diff_direction(h_en, h_tgt), pca_direction(h_en, h_tgt)
    assert float(pc @ md) > 0
    unit = pc / pc.norm()
    assert math.isclose(float(pc.norm()), float(md @ unit), rel_tol=1e-4)


@pytest.mark.parametrize("center", [False, True])
def test_pca_matches_an_svd_also_on_a_flat_spectrum(center):
    gen = torch.Generator().manual_seed(3)
    h_en, h_tgt = torch.randn(300, 48, generator=gen) + 0.2, torch.randn(300, 48, generator=gen)
    diffs = (h_en - h_tgt).double()
    x = diffs - diffs.mean(0) if center else diffs
    reference = torch.linalg.svd(x, full_matrices=False).Vh[0]
    assert abs(cos(pca_direction(h_en, h_tgt, center=center), reference)) > 1 - 1e-6


def test_mse_closed_form_is_the_mean_difference():
    h_en, h_tgt, _ = planted()
    v, metrics = mse_direction(h_en, h_tgt)
    torch.testing.assert_close(v, mean_diff_direction(h_en, h_tgt))
    # the minimiser: any perturbation raises the loss
    loss = torch.nn.functional.mse_loss
    assert metrics["loss"] < float(loss(h_tgt + v + 0.01, h_en))


def test_mse_gradient_solver_converges_to_the_closed_form():
    h_en, h_tgt, _ = planted(n=64, d=16)
    exact = mean_diff_direction(h_en, h_tgt)
    v, metrics = mse_direction(
        h_en, h_tgt, solver="adamw", lr=0.02, epochs=1500, batch_size=None, weight_decay=0.0
    )
    assert cos(v, exact) > 0.9999
    assert float((v - exact).norm() / exact.norm()) < 1e-2
    assert metrics["norm_vs_converged"] == pytest.approx(1.0, abs=1e-2)
    assert metrics["loss"] == pytest.approx(metrics["closed_form_loss"], rel=1e-4)


def test_mse_with_the_papers_hyper_parameters_stays_near_zero():
    h_en, h_tgt, _ = planted(n=40, d=16)
    v, metrics = mse_direction(h_en, h_tgt, solver="adamw")  # lr 1e-8, 3 epochs, batch 8
    assert metrics["steps"] == 15 and len(metrics["loss_curve"]) == 15
    assert metrics["norm_vs_converged"] < 1e-6
    assert float(v.norm()) <= 1e-8 * 15 * math.sqrt(16) * 1.01


def test_mean_diff_matches_a_hand_computation_from_run_with_cache(tiny):
    last = fit_vector(tiny, corpus(), layer=2, method="mean_diff", pooling="last")
    mean = fit_vector(tiny, corpus(), layer=2, method="mean_diff", pooling="mean")
    hand_last, hand_mean = [], []
    for en, de in zip(ENGLISH, GERMAN, strict=True):
        h = [tiny.run_with_cache(t)[1]["blocks.2.hook_resid_post"][0] for t in (en, de)]
        hand_last.append(h[0][-1] - h[1][-1])
        hand_mean.append(h[0][1:].mean(0) - h[1][1:].mean(0))  # BOS left out
    torch.testing.assert_close(last.direction, torch.stack(hand_last).mean(0), atol=1e-5, rtol=0)
    torch.testing.assert_close(mean.direction, torch.stack(hand_mean).mean(0), atol=1e-5, rtol=0)


def test_meta_records_provenance_hyper_parameters_and_metrics(tiny, tmp_path):
    v = fit_vector(tiny, corpus(), layer=1, method="mse", solver="adamw", lr=1e-3, epochs=2)
    assert isinstance(v, SteeringVector)
    assert (v.layer, v.method, v.source_lang, v.target_lang, v.model_name) == (
        1,
        "mse",
        "de",
        "en",
        "tiny",
    )
    meta = v.meta
    assert meta["hyper"] == {
        "solver": "adamw",
        "lr": 1e-3,
        "epochs": 2,
        "batch_size": 8,
        "weight_decay": 0.01,
        "seed": 0,
    }
    assert meta["data"] == {
        "corpus": "toy-de",
        "source_lang": "de",
        "target_lang": "en",
        "n_pairs": 5,
        "corpus_meta": {"split": "x"},
        "ids": None,
        "fingerprint": ParallelCorpus(ENGLISH, GERMAN, "de").fingerprint,
        "n_ctx": 512,
        "n_truncated": 0,
    }
    m = meta["metrics"]
    assert m["norm"] == pytest.approx(v.norm, rel=1e-5)
    assert m["resid_norm"] > 0 and m["norm_ratio"] == pytest.approx(m["norm"] / m["resid_norm"])
    assert len(m["loss_curve"]) == 2 and 0 < m["norm_vs_converged"] < 0.1
    for key in ("cos_before", "cos_after", "mse_before", "mse_after", "cos_with_mean_diff"):
        assert math.isfinite(m[key])
    loaded = SteeringVector.load(v.save(tmp_path / "v"))
    assert loaded.meta == v.meta and torch.equal(loaded.direction, v.direction)


def test_mean_diff_improves_in_sample_alignment(tiny):
    m = fit_vector(tiny, corpus(), layer=3).meta["metrics"]
    assert m["mse_after"] < m["mse_before"] and m["cos_with_mean_diff"] == pytest.approx(1.0)
    assert alignment_metrics(torch.ones(2, 3), torch.ones(2, 3), torch.zeros(3))["norm"] == 0.0


def test_fit_vectors_collects_once_for_all_layers(tiny):
    calls = []
    handle = tiny.original_model.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        vectors = fit_vectors(tiny, corpus(), layers=[3, 0, 1], method="pca", collect_batch_size=4)
    finally:
        handle.remove()
    assert sorted(vectors) == [0, 1, 3] and len(calls) == 3  # 10 texts in batches of 4
    single = fit_vector(tiny, corpus(), layer=1, method="pca")
    torch.testing.assert_close(vectors[1].direction, single.direction, atol=1e-5, rtol=1e-5)


def test_custom_methods_and_the_registry(tiny):
    def double_mean(h_en, h_tgt, *, factor: float = 2.0):
        return factor * (h_en - h_tgt).mean(0)

    v = fit_vector(tiny, corpus(), layer=0, method=double_mean, factor=3.0)
    assert v.method == "double_mean" and v.meta["hyper"] == {"factor": 3.0}
    ref = fit_vector(tiny, corpus(), layer=0)
    torch.testing.assert_close(v.direction, 3 * ref.direction, atol=1e-5, rtol=1e-5)

    def constant(model, pairs, *, layer):
        return torch.full((model.cfg.d_model,), float(layer)), {"note": "ok"}

    w = fit_vector(tiny, corpus(), layer=2, method=Method("constant", constant, needs_model=True))
    assert torch.equal(w.direction, torch.full((64,), 2.0)) and w.meta["metrics"]["note"] == "ok"
    assert w.method == "constant"
    assert set(METHODS) >= {"mean_diff", "pca", "mse", "bipo"} and REGISTRY["bipo"].needs_model

    register_method(Method("constant", constant, needs_model=True))
    try:
        by_name = fit_vector(tiny, corpus(), layer=2, method="constant")
        assert torch.equal(by_name.direction, w.direction)
    finally:
        REGISTRY.pop("constant"), METHODS.pop("constant")
    with pytest.raises(TypeError, match="Method"):  # the type checker may answer first
        register_method(constant)


@pytest.mark.parametrize(
    ("pairs", "kwargs", "match"),
    [
        (corpus((), ()), {}, "empty"),
        (corpus(ENGLISH, GERMAN[:3]), {}, "5 texts but target has 3"),
        (corpus(), {"layer": 4}, "out of range"),
        (corpus(), {"method": "caa"}, "valid methods: mean_diff, pca, mse, bipo"),
        (corpus(), {"method": "pca", "lr": 0.1}, "no hyper-parameter lr; valid: center"),
        (corpus(), {"pooling": "all"}, "pooling"),
    ],
)
def test_bad_input_raises(tiny, pairs, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit_vector(tiny, pairs, **{"layer": 1, **kwargs})


def test_bad_tensors_raise():
    with pytest.raises(ValueError, match="no activation pairs"):
        mean_diff_direction(torch.zeros(0, 4), torch.zeros(0, 4))
    with pytest.raises((ValueError, TypeError), match="solver"):  # TypeError: pytest's checker
        mse_direction(torch.ones(2, 4), torch.zeros(2, 4), solver="sgd")  # type: ignore[arg-type]


@pytest.mark.real
def test_mean_diff_on_msvamp_german_with_gemma(gemma):
    from interp_steer.data import load_parallel

    pairs = load_parallel("msvamp", "de", n=64)
    v = fit_vector(gemma, pairs, layer=6, method="mean_diff")
    m = v.meta["metrics"]
    assert v.model_name == "gemma-3-270m" and v.d_model == 640 and v.source_lang == "de"
    assert v.meta["data"]["n_pairs"] == 64 and v.meta["data"]["corpus"] == "msvamp-de"
    assert math.isfinite(v.norm) and v.norm > 0
    assert 0.01 < m["norm_ratio"] < 1.0  # a shift, small next to the residual itself
    assert m["mse_after"] < m["mse_before"] and m["cos_after"] > m["cos_before"]


# ----------------------------------------------------------------- your own data, any form


class _Columns:
    """A stand-in for ``datasets.Dataset``: ``column_names`` and columns by ``ds[name]``."""

    def __init__(self, columns):
        self._columns = columns
        self.column_names = list(columns)

    def __getitem__(self, name):
        return self._columns[name]


@pytest.mark.parametrize(
    "form",
    ["pairs", "zip", "lists", "dict", "language_dict", "frame", "two_column_frame", "dataset"],
)
def test_every_accepted_form_fits_the_same_vector(tiny, form):
    data = {
        "pairs": list(zip(ENGLISH, GERMAN, strict=True)),
        "zip": zip(ENGLISH, GERMAN, strict=True),
        "lists": (list(ENGLISH), list(GERMAN)),
        "dict": {"english": list(ENGLISH), "target": list(GERMAN)},
        "language_dict": {"de": list(GERMAN), "en": list(ENGLISH)},
        "frame": pd.DataFrame({"id": range(5), "english": ENGLISH, "target": GERMAN}),
        "two_column_frame": pd.DataFrame({"question": ENGLISH, "translation": GERMAN}),
        "dataset": _Columns({"english": list(ENGLISH), "target": list(GERMAN)}),
    }[form]
    reference = fit_vector(tiny, corpus(), layer=1)
    v = fit_vector(tiny, data, layer=1, lang=None if form == "language_dict" else "de")
    torch.testing.assert_close(v.direction, reference.direction, atol=0, rtol=0)
    assert v.source_lang == "de" and v.meta["data"]["n_pairs"] == 5
    assert v.meta["data"]["fingerprint"] == reference.meta["data"]["fingerprint"]
    assert v.meta["data"]["corpus_meta"]["dataset"] == "user"


def test_fit_vectors_takes_pairs_and_without_a_language_records_none(tiny):
    pairs = [("Hello", "Hallo"), ("Good night", "Gute Nacht")]
    vectors = fit_vectors(tiny, pairs, layers=[0, 2])
    assert sorted(vectors) == [0, 2]
    v = vectors[2]
    assert v.source_lang is None and v.meta["data"]["source_lang"] is None
    assert v.meta["data"]["corpus"] == "user-und"
    assert v.meta["data"]["fingerprint"] == ParallelCorpus.coerce(pairs).fingerprint
    other = fit_vector(tiny, [("Hello", "Hallo"), ("Good night", "Gute Nacht!")], layer=2)
    assert other.meta["data"]["fingerprint"] != v.meta["data"]["fingerprint"]


def test_bipo_gets_the_same_pairs_from_any_form(tiny):
    kwargs = {"layer": 1, "method": "bipo", "lr": 0.01, "warmup_steps": 0, "n_eval": 0}
    a = fit_vector(tiny, [("The cat.", "Die Katze."), ("Hello.", "Hallo.")], **kwargs)
    b = fit_vector(tiny, {"english": ["The cat.", "Hello."], "target": ["Die Katze.", "Hallo."]},
                   **kwargs)  # fmt: skip
    torch.testing.assert_close(a.direction, b.direction, atol=0, rtol=0)


@pytest.mark.parametrize("lr_scale, lr", [("coord", 1e-3), ("resid", 1e-3), ("none", 5e-4)])
def test_a_bipo_vector_records_the_learning_rate_it_was_trained_at(tiny, lr_scale, lr):
    # lr=None stands for a default that depends on lr_scale; the record holds the rate used
    options = {"lr_scale": lr_scale, "warmup_steps": 0, "n_eval": 0}
    v = fit_vector(tiny, [("The cat.", "Die Katze.")], layer=1, method="bipo", **options)
    assert v.meta["hyper"]["lr"] == v.meta["metrics"]["lr"] == lr
    assert check_hyper("bipo", options) == v.meta["hyper"]


@pytest.mark.parametrize(
    ("data", "kwargs", "error", "match"),
    [
        ("Hello", {}, TypeError, "cannot read pairs from a str"),
        (42, {}, TypeError, "cannot read pairs from an int"),
        ([("Hello", 1)], {}, TypeError, "item 0 is neither"),
        ([], {}, ValueError, "empty"),
        ((["a", "b", "c"], ["x"]), {}, ValueError, "3 texts but target has 1"),
        ({"en": ["a"], "fr": ["b"], "de": ["c"]}, {}, ValueError, "not exactly two"),
        ({"en": ["Hello"], "fr": ["Bonjour"]}, {"lang": "de"}, ValueError, "names 'fr'"),
    ],
)
def test_anything_else_is_one_error_listing_the_accepted_forms(tiny, data, kwargs, error, match):
    with pytest.raises(error, match=match) as caught:
        fit_vector(tiny, data, layer=1, **kwargs)
    assert "Give a ParallelCorpus; (english, target) pairs" in str(caught.value)
    assert "DataFrame or datasets.Dataset" in str(caught.value)


def test_lang_must_agree_with_a_corpus_that_has_one(tiny):
    with pytest.raises(ValueError, match="is in 'de', but lang='fr'"):
        fit_vector(tiny, ParallelCorpus(ENGLISH, GERMAN, "de"), layer=1, lang="fr")
    assert fit_vector(tiny, corpus(), layer=1, lang="German").source_lang == "de"
