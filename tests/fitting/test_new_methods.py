"""The lda, probe and lowrank fitting methods: planted directions, scaling, registry, meta."""

import json
import math
from types import SimpleNamespace

import pytest
import torch

import interp_steer.fitting.directions as directions
from interp_steer.cli import build_parser
from interp_steer.constants import METHOD_NAMES
from interp_steer.fitting import (
    METHODS,
    REGISTRY,
    fit_vector,
    fit_vectors,
    lda_direction,
    lowrank_direction,
    mean_diff_direction,
    pca_direction,
    probe_direction,
)
from interp_steer.steering import SteeringVector, steer

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py: tiny ops contend on threads

ENGLISH = ("The cat sleeps.", "Hello, friend.", "I like bread.", "It is cold today.", "Go home.")
GERMAN = ("Die Katze schläft.", "Hallo, Freund.", "Ich mag Brot.", "Heute ist kalt.", "Geh heim.")


def corpus():
    return SimpleNamespace(
        english=ENGLISH, target=GERMAN, source_lang="de", target_lang="en", name="toy-de", meta={}
    )


def cos(a, b):
    return float(torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=0))


def anisotropic(n=2000, d=16, seed=2, big=9.0, overlap=0.6):
    """Two languages whose Fisher direction is a known unit ``u``, hidden in noise.

    Both sides share the covariance ``I + big · a aᵀ`` with ``a · u = overlap``, and their
    means differ by ``Σ u``: the best separating direction ``Σ⁻¹ (μ_en − μ_tgt)`` is ``u``,
    while the mean difference leans towards the noisy ``a`` (cosine with ``u`` about 0.7).
    """
    g = torch.Generator().manual_seed(seed)
    u = torch.nn.functional.normalize(torch.randn(d, generator=g), dim=0)
    r = torch.randn(d, generator=g)
    r = torch.nn.functional.normalize(r - (r @ u) * u, dim=0)
    a = overlap * u + math.sqrt(1 - overlap**2) * r
    sigma = torch.eye(d) + big * torch.outer(a, a)
    root = torch.linalg.cholesky(sigma)
    h_tgt = torch.randn(n, d, generator=g) @ root.T + 10.0
    h_en = torch.randn(n, d, generator=g) @ root.T + 10.0 + sigma @ u
    return h_en, h_tgt, u


def planted(n=200, d=32, seed=0):
    """English = target + a_i * u + small noise (as in test_fit.py)."""
    g = torch.Generator().manual_seed(seed)
    u = torch.nn.functional.normalize(torch.randn(d, generator=g), dim=0)
    h_tgt = 5 * torch.randn(n, d, generator=g)
    h_en = h_tgt + (3.0 + torch.randn(n, 1, generator=g)) * u + 0.1 * torch.randn(n, d, generator=g)
    return h_en, h_tgt, u


def planted_rank(n=300, d=32, k=3, seed=0):
    """Paired differences in a known k-dim subspace (rows of ``basis``) plus tiny noise."""
    g = torch.Generator().manual_seed(seed)
    basis = torch.linalg.qr(torch.randn(d, k, generator=g)).Q.T  # [k, d], orthonormal rows
    coef = torch.randn(n, k, generator=g) * torch.tensor([10.0, 8.0, 6.0][:k]) + 1.0
    h_tgt = 4 * torch.randn(n, d, generator=g)
    h_en = h_tgt + coef @ basis + 1e-3 * torch.randn(n, d, generator=g)
    return h_en, h_tgt, basis


# ------------------------------------------------------------------ lda and probe


@pytest.mark.parametrize("fit", [lda_direction, probe_direction], ids=["lda", "probe"])
def test_recovers_the_fisher_direction_hidden_in_anisotropic_noise(fit):
    h_en, h_tgt, u = anisotropic()
    v, metrics = fit(h_en, h_tgt)
    assert v.shape == (16,) and v.dtype == torch.float32
    assert cos(v, u) > 0.95
    assert cos(mean_diff_direction(h_en, h_tgt), u) < 0.75  # mean_diff is visibly worse
    assert 0.8 < metrics["accuracy"] < 0.9  # overlapping classes: a real discrimination task


@pytest.mark.parametrize("fit", [lda_direction, probe_direction], ids=["lda", "probe"])
def test_sign_aligned_and_scaled_to_the_mean_differences_projection(fit):
    h_en, h_tgt, _ = anisotropic(n=300)
    v, _ = fit(h_en, h_tgt)
    md = mean_diff_direction(h_en, h_tgt)
    unit = v / v.norm()
    assert float(v @ md) > 0
    assert math.isclose(float(v.norm()), float(md @ unit), rel_tol=1e-4)


def test_lda_shrinkage_one_is_the_mean_difference_and_ledoit_wolf_is_recorded():
    h_en, h_tgt, u = anisotropic(n=500)
    v, metrics = lda_direction(h_en, h_tgt, shrinkage=1.0)
    torch.testing.assert_close(v, mean_diff_direction(h_en, h_tgt), atol=1e-4, rtol=1e-5)
    assert metrics["shrinkage"] == 1.0
    lw, lw_metrics = lda_direction(h_en, h_tgt, shrinkage="ledoit_wolf")
    assert 0.0 < lw_metrics["shrinkage"] < 0.1 and cos(lw, u) > 0.9
    plain, _ = lda_direction(h_en, h_tgt, shrinkage=0.0)  # n > d: the classic Fisher direction
    x = torch.cat([h_en - h_en.mean(0), h_tgt - h_tgt.mean(0)]).double()
    w = torch.linalg.solve(x.T @ x, (h_en - h_tgt).double().mean(0))
    assert cos(plain, w) > 1 - 1e-8


def test_lda_with_fewer_pairs_than_dimensions_stays_finite():
    g = torch.Generator().manual_seed(0)
    h_en, h_tgt = torch.randn(6, 40, generator=g) + 1.0, torch.randn(6, 40, generator=g)
    for shrinkage in (0.0, 0.1, "ledoit_wolf"):
        v, _ = lda_direction(h_en, h_tgt, shrinkage=shrinkage)
        assert bool(torch.isfinite(v).all()) and float(v.norm()) > 0


def test_probe_is_deterministic_and_reports_its_fit():
    h_en, h_tgt, _ = anisotropic(n=300)
    (a, ma), (b, mb) = probe_direction(h_en, h_tgt), probe_direction(h_en, h_tgt)
    assert torch.equal(a, b) and ma == mb
    assert ma["evaluations"] > 1 and math.log(2) > ma["loss"] > 0
    strong, _ = probe_direction(h_en, h_tgt, l2=1e4)  # all decay: towards the mean difference
    assert cos(strong, mean_diff_direction(h_en, h_tgt)) > 0.999


@pytest.mark.parametrize(
    "fit, kwargs, message",
    [
        (lda_direction, {"shrinkage": 1.5}, "shrinkage must be a number in"),
        (lda_direction, {"shrinkage": "oas"}, "shrinkage"),
        (probe_direction, {"l2": -1.0}, "l2 must be a finite non-negative"),
        (probe_direction, {"lr": 0.0}, "lr must be a finite positive"),
        (probe_direction, {"steps": 0}, "steps must be a positive int"),
        (lowrank_direction, {"k": 0}, "k must be a positive int"),
    ],
)
def test_bad_hyper_parameters_raise_one_clear_error(fit, kwargs, message):
    h_en, h_tgt, _ = planted(n=20, d=8)
    with pytest.raises((ValueError, TypeError), match=message):
        fit(h_en, h_tgt, **kwargs)


# ------------------------------------------------------------------ lowrank


def test_lowrank_recovers_a_planted_subspace():
    h_en, h_tgt, basis = planted_rank()
    v, metrics = lowrank_direction(h_en, h_tgt, k=3)
    found = torch.tensor(metrics["basis"])
    assert found.shape == (3, 32) and metrics["k_used"] == 3
    # principal angles between the planted and the recovered subspace: all ~0
    cosines = torch.linalg.svdvals(found.double() @ basis.double().T)
    assert float(cosines.min()) > 1 - 1e-6
    assert metrics["energy"] > 1 - 1e-6 and len(metrics["singular_values"]) == 3
    assert metrics["singular_values"] == sorted(metrics["singular_values"], reverse=True)
    # the subspace shift: within it the target's mean moves to English's, exactly
    shifted = (h_tgt.double().mean(0) + v.double()) @ found.double().T
    torch.testing.assert_close(shifted, h_en.double().mean(0) @ found.double().T)
    md = mean_diff_direction(h_en, h_tgt)
    assert cos(v, md) > 1 - 1e-6  # the whole difference lives in the subspace


def test_lowrank_keeps_only_the_subspaces_part_of_the_mean():
    h_en, h_tgt, basis = planted_rank()
    g = torch.Generator().manual_seed(5)
    off = torch.randn(32, generator=g)
    off = torch.nn.functional.normalize(off - basis.T @ (basis @ off), dim=0)  # outside it
    h_en = h_en + 0.2 * off  # a small common shift off the subspace
    v, metrics = lowrank_direction(h_en, h_tgt, k=3)
    assert float(mean_diff_direction(h_en, h_tgt) @ off) == pytest.approx(0.2, abs=1e-3)
    assert abs(float(v @ off)) < 0.02  # at most a tenth of the 0.2 (the SVD mixes a little in)
    assert metrics["mean_captured"] < 1.0


def test_lowrank_with_k_at_least_the_rank_is_the_mean_difference_and_k_one_is_pca():
    h_en, h_tgt, _ = planted(n=50, d=12)
    full, metrics = lowrank_direction(h_en, h_tgt, k=12)
    torch.testing.assert_close(full, mean_diff_direction(h_en, h_tgt), atol=1e-5, rtol=1e-5)
    assert metrics["mean_captured"] == pytest.approx(1.0)
    more, more_metrics = lowrank_direction(h_en[:5], h_tgt[:5], k=10)  # rank 5 < k
    assert more_metrics["k_used"] == 5
    torch.testing.assert_close(more, mean_diff_direction(h_en[:5], h_tgt[:5]), atol=1e-5, rtol=1e-5)
    one, _ = lowrank_direction(h_en, h_tgt, k=1)
    torch.testing.assert_close(one, pca_direction(h_en, h_tgt), atol=1e-5, rtol=1e-5)


def test_lowrank_leaves_out_a_basis_too_large_for_json(monkeypatch):
    h_en, h_tgt, _ = planted_rank()
    monkeypatch.setattr(directions, "BASIS_LIMIT", 3 * 32 - 1)
    _, metrics = lowrank_direction(h_en, h_tgt, k=3)
    assert metrics["basis"] is None and len(metrics["singular_values"]) == 3


# ------------------------------------------------------------------ registry and fit_vector


def test_registered_and_offered_by_the_command_line():
    for name in ("lda", "probe", "lowrank"):
        assert name in METHOD_NAMES and name in REGISTRY and not REGISTRY[name].needs_model
        assert METHODS[name] is {"lda": lda_direction, "probe": probe_direction}.get(
            name, lowrank_direction
        )
        args = build_parser().parse_args(["fit", "--lang", "de", "--layer", "1", "--method", name])
        assert args.method == name


def test_fit_vector_fits_each_from_the_cached_activations(tiny, tmp_path):
    first = fit_vectors(tiny, corpus(), layers=[2], method="mean_diff", cache_dir=tmp_path)
    calls = []
    handle = tiny.original_model.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        fitted = {
            "lda": fit_vector(tiny, corpus(), layer=2, method="lda", cache_dir=tmp_path),
            "probe": fit_vector(tiny, corpus(), layer=2, method="probe", cache_dir=tmp_path),
            "lowrank": fit_vector(
                tiny, corpus(), layer=2, method="lowrank", k=2, cache_dir=tmp_path
            ),
        }
    finally:
        handle.remove()
    assert calls == [], "the cached activations were not reused"
    assert fitted["lda"].meta["hyper"] == {"shrinkage": 0.1}
    assert fitted["probe"].meta["hyper"] == {"l2": 1e-3, "steps": 200, "lr": 1.0}
    assert fitted["lowrank"].meta["hyper"] == {"k": 2}
    md = first[2].direction
    for name, v in fitted.items():
        assert v.method == name and v.layer == 2 and v.direction.shape == (64,)
        m = v.meta["metrics"]
        assert float(v.direction @ md) > 0 and m["cos_with_mean_diff"] > 0
        # the mean English projection onto the direction is above the target's
        assert m["proj_english"] > m["proj_target"]
    basis = fitted["lowrank"].meta["metrics"]["basis"]
    assert len(basis) == 2 and len(basis[0]) == 64


def test_lowrank_meta_survives_save_and_load(tiny, tmp_path):
    v = fit_vector(tiny, corpus(), layer=1, method="lowrank", k=3)
    loaded = SteeringVector.load(v.save(tmp_path / "v"))
    assert loaded.meta == v.meta and torch.equal(loaded.direction, v.direction)
    json.dumps(loaded.meta, allow_nan=False)


def test_clamping_to_the_recorded_english_projection(tiny):
    # the recorded proj_english is a usable clamp value: the steered mean-pooled
    # projection of the target texts equals it
    v = fit_vector(tiny, corpus(), layer=1, method="lda")
    value = v.meta["metrics"]["proj_english"]
    u = v.direction / v.direction.norm()
    with steer(tiny, v, operator="clamp", value=value):
        _, cache = tiny.run_with_cache(GERMAN[0], names_filter="blocks.1.hook_resid_post")
    proj = cache["blocks.1.hook_resid_post"][0] @ u
    torch.testing.assert_close(proj, torch.full_like(proj, value), atol=1e-4, rtol=1e-5)
