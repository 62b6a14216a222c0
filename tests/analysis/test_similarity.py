"""Cross-lingual similarity: planted structure, validation, non-parallel data, I/O, tiny model."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from interp_steer.analysis.similarity import (
    SimilarityResult,
    cross_lingual_similarity,
    similarity_from_activations,
)
from interp_steer.analysis.similarity_metrics import METRICS, pair_metrics
from interp_steer.data import family_order

N, D = 60, 32


def planted(seed: int = 0) -> dict[str, dict[int, torch.Tensor]]:
    """Shared sentence content + a big shared offset + a language offset + noise.

    Layer 0: German shares the content weakly, layer 1 strongly; "xx" shares nothing.
    """
    g = torch.Generator().manual_seed(seed)
    content = torch.randn(N, D, generator=g)
    common = 20.0 * torch.randn(D, generator=g)  # the constant component raw cosine sees

    def lang(weight: float) -> torch.Tensor:
        offset = 3.0 * torch.randn(D, generator=g)
        noise = torch.randn(N, D, generator=g)
        return common + offset + weight * content + noise

    return {
        "en": {0: common + content, 1: common + content},
        "de": {0: lang(0.5), 1: lang(3.0)},
        "xx_placeholder": {0: lang(0.0), 1: lang(0.0)},
    }


@pytest.fixture(scope="module")
def result() -> SimilarityResult:
    acts = planted()
    acts["sw"] = acts.pop("xx_placeholder")  # a language that shares no content
    return similarity_from_activations(acts, model="synthetic", dataset="planted")


def test_self_similarity_is_one(result):
    for metric in ("centred_cosine", "cka", "retrieval", "raw_cosine"):
        diag = np.diagonal(result.values[metric], axis1=0, axis2=1)
        np.testing.assert_allclose(diag, 1.0, atol=1e-9, err_msg=metric)


def test_matched_beats_shuffled_and_raw_cosine_cannot_tell(result):
    langs, centred = result.vs_english("centred_cosine")
    _, shuffled = result.vs_english("shuffled_centred_cosine")
    _, raw = result.vs_english("raw_cosine")
    de, sw = langs.index("de"), langs.index("sw")
    assert (centred[de] > shuffled[de] + 0.3).all()
    assert centred[de, 1] > centred[de, 0]  # more shared content at layer 1
    assert abs(centred[sw]).max() < 0.2  # nothing shared: centred cosine near 0
    assert (raw > 0.9).all()  # dominated by the shared constant component for both
    _, retrieval = result.vs_english("retrieval")
    assert retrieval[de, 1] > 0.9 and retrieval[sw].max() < 0.2


def test_symmetry_and_ranges(result):
    for metric in METRICS:
        v = result.values[metric]
        assert np.isfinite(v).all()
        if metric != "retrieval":
            np.testing.assert_allclose(v, v.transpose(1, 0, 2), atol=1e-12)
    assert ((result.values["cka"] >= -1e-9) & (result.values["cka"] <= 1 + 1e-9)).all()


def test_pair_metrics_invariances():
    x = torch.randn(30, 8, generator=torch.Generator().manual_seed(1))
    q, _ = torch.linalg.qr(torch.randn(8, 8, generator=torch.Generator().manual_seed(2)))
    rotated = pair_metrics(x, 3.0 * x @ q + 7.0)  # CKA ignores rotation, scale and shift
    assert math.isclose(rotated["cka"][0], 1.0, abs_tol=1e-9)
    scaled = pair_metrics(x, 3.0 * x + 7.0)  # cosines only ignore scale and (centred) shift
    assert math.isclose(scaled["centred_cosine"][0], 1.0, abs_tol=1e-9)
    assert scaled["retrieval"] == (1.0, 1.0)
    with pytest.raises(ValueError, match="aligned"):
        pair_metrics(x, x[:10])


def test_validation(result):
    with pytest.raises(ValueError, match="shape"):
        dataclasses.replace(result, values={**result.values, "cka": result.values["cka"][:2]})
    with pytest.raises(ValueError, match="English"):
        dataclasses.replace(result, langs=("de", "en", "sw"))
    with pytest.raises(ValueError, match="metrics"):
        dataclasses.replace(result, values={"cka": result.values["cka"]})
    with pytest.raises(ValueError, match="layers"):
        similarity_from_activations({"en": {0: torch.zeros(4, 2)}, "de": {1: torch.zeros(4, 2)}})
    with pytest.raises(ValueError, match="English"):
        similarity_from_activations({"de": {0: torch.zeros(4, 2)}})
    with pytest.raises(ValueError, match="metric"):
        result.vs_english("cosine")


def test_not_multi_parallel_fills_only_english_and_roundtrips(tmp_path):
    acts = planted()
    english = {"de": acts["en"], "sw": acts["xx_placeholder"]}
    res = similarity_from_activations(
        {"de": acts["de"], "sw": acts["xx_placeholder"]}, english_per_lang=english
    )
    assert res.langs == ("en", "de", "sw") and not res.multi_parallel
    assert np.isnan(res.values["cka"][1, 2]).all()
    assert np.isfinite(res.vs_english("cka")[1]).all()
    back = SimilarityResult.load(res.save(tmp_path / "sim.json"))
    np.testing.assert_array_equal(back.values["cka"], res.values["cka"])  # NaN-aware
    assert len(res.to_frame()) == 3 * 3 * 2
    table = SimilarityResult.load(res.save(tmp_path / "sim.parquet"))
    np.testing.assert_array_equal(table.values["retrieval"], res.values["retrieval"])


def test_family_order():
    assert family_order(["fr", "sw", "en", "es", "de"]) == ["en", "de", "fr", "es", "sw"]


def test_tiny_model_end_to_end(tiny):
    res = cross_lingual_similarity(tiny, ["German", "sw"], n=6, layers=[0, 3], progress=False)
    assert res.langs == ("en", "de", "sw") and res.layers == (0, 3) and res.n == 6
    assert res.multi_parallel and res.model == "tiny"
    np.testing.assert_allclose(np.diagonal(res.values["cka"], axis1=0, axis2=1), 1.0)
    tat = cross_lingual_similarity(
        tiny, ["sw", "de"], dataset="tatoeba", n=5, layers=[1], progress=False
    )
    assert not tat.multi_parallel and np.isfinite(tat.vs_english("retrieval")[1]).all()
