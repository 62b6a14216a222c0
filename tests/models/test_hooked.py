"""HookedTransformer (TransformerLens 3.x) beside the bridge, and the weight basis of vectors.

Tests taking ``tiny_any`` run once per model class; its ``hooked`` case and every test on
``tiny_hooked`` are skipped on TransformerLens 4.x, which has no HookedTransformer. The
same tests run in the main environment (TL 4.3) and in ``make test-tl39`` (TL 3.9).
"""

import warnings

import numpy as np
import pytest
import torch
from jaxtyping import TypeCheckError

from interp_steer.activations import collect_activations
from interp_steer.analysis import (
    cross_lingual_similarity,
    logit_lens,
    model_settings,
    project_to_vocab,
)
from interp_steer.data import load_task
from interp_steer.evaluation import evaluate
from interp_steer.fitting import bipo_direction, fit_vector
from interp_steer.models import (
    basis_mismatch,
    generate_texts,
    greedy_generate,
    is_hooked,
    left_pad,
    load_model,
    score_continuations,
    weight_basis,
)
from interp_steer.models.backend import HookedTransformer
from interp_steer.steering import BasisWarning, SteeringVector, steer

PAIRS = [
    ("Hello world", "Hallo Welt"),
    ("Good night", "Gute Nacht"),
    ("The cat sleeps", "Die Katze schläft"),
    ("I like bread", "Ich mag Brot"),
]
TEXT = "Hallo Welt, wie geht"  # shorter than the tiny model's sliding window (16 tokens)
FLAGS = ("fold_ln", "center_writing_weights", "center_unembed")


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=0))


# ----------------------------------------------------------------- on every TransformerLens


def test_kind_must_be_known(tiny):
    # under pytest jaxtyping checks the Literal annotation before load_model's own check
    with pytest.raises((ValueError, TypeCheckError), match="kind"):
        load_model("tiny", kind="banana")


@pytest.mark.skipif(HookedTransformer is not None, reason="TransformerLens 3.x has it")
def test_hooked_needs_transformer_lens_3():
    with pytest.raises(ValueError, match="kind='hooked' needs TransformerLens 3.x"):
        load_model("tiny", kind="hooked")


def test_fit_records_the_weight_basis(tiny_any):
    v = fit_vector(tiny_any, PAIRS, layer=2)
    basis = v.meta["weight_basis"]
    assert basis["model_class"] == type(tiny_any).__name__
    assert basis["tl_version"].split(".")[0] in ("3", "4")
    assert {k: basis[k] for k in FLAGS} == dict.fromkeys(FLAGS, False)
    assert basis == weight_basis(tiny_any)


def test_saved_vector_keeps_its_weight_basis(tiny, tmp_path):
    v = fit_vector(tiny, PAIRS, layer=1)
    v.save(tmp_path / "v")
    back = SteeringVector.load(tmp_path / "v")
    assert back.meta["weight_basis"] == v.meta["weight_basis"]


def test_a_vector_from_another_basis_warns(tiny):
    v = SteeringVector(torch.ones(64), layer=1, meta={"weight_basis": {"fold_ln": True}})
    match = r"fold_ln=True \(vector\) vs False \(model\)"
    with pytest.warns(BasisWarning, match=match), steer(tiny, v, alpha=0.5):
        tiny(TEXT)


def test_vectors_without_a_basis_steer_without_a_warning(tiny):
    old = SteeringVector(torch.ones(64), layer=1, meta={"metrics": {"norm": 8.0}})
    same = fit_vector(tiny, PAIRS, layer=1)
    base = tiny(TEXT)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for v in (old, same):
            with steer(tiny, v, alpha=0.5):
                assert not torch.equal(tiny(TEXT), base)


def test_basis_mismatch_compares_only_the_flags(tiny):
    assert basis_mismatch({"model_class": "HookedTransformer", "tl_version": "0"}, tiny) is None
    assert basis_mismatch(dict.fromkeys(FLAGS, False), tiny) is None
    assert basis_mismatch({"center_unembed": True}, tiny) == (
        "center_unembed=True (vector) vs False (model)"
    )


# ----------------------------------------------------------------- HookedTransformer (TL 3.x)


def test_hooked_tiny_is_the_bridge_in_another_class(tiny, tiny_hooked):
    assert is_hooked(tiny_hooked) and not is_hooked(tiny)
    assert tiny_hooked.cfg.model_name == "tiny" and tiny_hooked.tokenizer.padding_side == "left"
    ids = tiny.to_tokens(TEXT)
    assert torch.equal(tiny_hooked.to_tokens(TEXT), ids)
    _, cache_b = tiny.run_with_cache(ids)
    _, cache_h = tiny_hooked.run_with_cache(ids)
    for layer in range(4):
        name = f"blocks.{layer}.hook_resid_post"
        torch.testing.assert_close(cache_h[name], cache_b[name], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(tiny_hooked(ids), tiny(ids), atol=1e-5, rtol=1e-5)


def test_mean_diff_vector_and_steering_agree_across_classes(tiny, tiny_hooked):
    vb = fit_vector(tiny, PAIRS, layer=2)
    vh = fit_vector(tiny_hooked, PAIRS, layer=2)
    assert _cos(vb.direction, vh.direction) >= 0.9999
    assert vh.meta["weight_basis"]["model_class"] == "HookedTransformer"
    ids, mask = left_pad(tiny, [tiny.to_tokens(t)[0].tolist() for t in (TEXT, "Gute Nacht")])
    for positions in ("all", "prompt", "last"):
        with steer(tiny, vb, alpha=3.0, positions=positions):
            want = tiny(ids, attention_mask=mask.long())
        with steer(tiny_hooked, vh, alpha=3.0, positions=positions):  # the bridge's basis
            got = tiny_hooked(ids, attention_mask=mask.long())
        with steer(tiny_hooked, vb, alpha=3.0, positions=positions):
            crossed = tiny_hooked(ids, attention_mask=mask.long())
        torch.testing.assert_close(got[mask], want[mask], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(crossed[mask], want[mask], atol=1e-4, rtol=1e-4)
    assert not torch.allclose(want, tiny(ids, attention_mask=mask.long()))


@pytest.mark.parametrize("pooling", ["mean", "last", "all"])
def test_activations_agree_across_classes(tiny, tiny_hooked, pooling):
    texts = [TEXT, "Gute Nacht", "x"]
    a = collect_activations(tiny, texts, layers=[1, 3], pooling=pooling, batch_size=2)
    b = collect_activations(tiny_hooked, texts, layers=[1, 3], pooling=pooling, batch_size=2)
    for layer in (1, 3):  # 3 is the last block: stopped before the unembedding on both
        torch.testing.assert_close(b[layer], a[layer], atol=1e-5, rtol=1e-5)


def test_generation_agrees_and_uses_the_hooked_cache(tiny, tiny_hooked):
    ids, mask = left_pad(tiny, [[2, 72, 105, 110], [2, 72]])
    cached = greedy_generate(tiny_hooked, ids, mask, max_new_tokens=6)
    assert cached == greedy_generate(tiny_hooked, ids, mask, max_new_tokens=6, use_cache=False)
    assert cached == greedy_generate(tiny, ids, mask, max_new_tokens=6)
    v = SteeringVector(torch.randn(64, generator=torch.Generator().manual_seed(0)), layer=1)
    for positions in ("all", "prompt", "generated"):
        with steer(tiny, v, alpha=8.0, positions=positions):
            want = generate_texts(tiny, ["Hallo", "Guten Tag"], max_new_tokens=5)
        with steer(tiny_hooked, v, alpha=8.0, positions=positions):
            got = generate_texts(tiny_hooked, ["Hallo", "Guten Tag"], max_new_tokens=5)
        assert got == want, positions
    got_s = score_continuations(tiny_hooked, ["Es regnet"], [[" heute", " nie"]])[0]
    want_s = score_continuations(tiny, ["Es regnet"], [[" heute", " nie"]])[0]
    assert [s[1:] for s in got_s] == [s[1:] for s in want_s]
    assert [s[0] for s in got_s] == pytest.approx([s[0] for s in want_s], abs=1e-3)


def test_steering_the_hooked_models_own_generate(tiny_hooked):
    """HookedTransformer.generate calls forward directly: steer still sees each step."""
    ids = tiny_hooked.to_tokens("Hallo")
    v = SteeringVector(torch.randn(64, generator=torch.Generator().manual_seed(1)), layer=1)
    kw = {"max_new_tokens": 4, "do_sample": False, "verbose": False}
    plain = tiny_hooked.generate(ids, **kw)
    outs = {}
    for positions in ("prompt", "generated", "all"):
        for cache in (True, False):
            with steer(tiny_hooked, v, alpha=8.0, positions=positions):
                outs[positions, cache] = tiny_hooked.generate(ids, use_past_kv_cache=cache, **kw)
        assert torch.equal(outs[positions, True], outs[positions, False]), positions
    # the first new token depends on the prompt only: unchanged when only generated
    # positions are steered, changed when the prompt is
    assert outs["generated", True][0, ids.shape[1]] == plain[0, ids.shape[1]]
    assert not torch.equal(outs["all", True], plain)


def test_lens_and_similarity_agree_across_classes(tiny, tiny_hooked):
    a = logit_lens(tiny, [TEXT, "Gute Nacht"], k=3, progress=False)
    b = logit_lens(tiny_hooked, [TEXT, "Gute Nacht"], k=3, progress=False)
    np.testing.assert_allclose(b.probs, a.probs, atol=1e-4)
    assert np.array_equal(b.tokens, a.tokens)
    ids = tiny_hooked.to_tokens(TEXT)
    logits, cache = tiny_hooked.run_with_cache(ids)
    lens = project_to_vocab(tiny_hooked, cache["blocks.3.hook_resid_post"])
    torch.testing.assert_close(lens, logits.float(), atol=1e-4, rtol=1e-4)
    sa = cross_lingual_similarity(tiny, ["de"], n=4, layers=[1, 3], progress=False)
    sb = cross_lingual_similarity(tiny_hooked, ["de"], n=4, layers=[1, 3], progress=False)
    for metric, values in sa.values.items():
        np.testing.assert_allclose(sb.values[metric], values, atol=1e-4, err_msg=metric)


def test_evaluate_agrees_across_classes(tiny, tiny_hooked):
    task = load_task("xcopa", "sw", n=4)
    v = fit_vector(tiny, PAIRS, layer=2)
    for vector in (None, v):
        a = evaluate(tiny, task, vector=vector, alpha=2.0, progress=False)
        b = evaluate(tiny_hooked, task, vector=vector, alpha=2.0, progress=False)
        assert [i.parsed for i in b.items] == [i.parsed for i in a.items]
        assert np.allclose([i.scores for i in b.items], [i.scores for i in a.items], atol=1e-3)
    assert model_settings(tiny_hooked)["weight_basis"] == {
        "model_class": "HookedTransformer",
        **dict.fromkeys(FLAGS, False),
    }
    assert "weight_basis" not in model_settings(tiny)  # old run folders still resume


def test_bipo_on_hooked_falls_back_to_the_reference_step(tiny, tiny_hooked):
    pairs = PAIRS[:2]
    ref, ref_m = bipo_direction(tiny, _corpus(pairs), layer=1, warmup_steps=0, step="reference")
    got, m = bipo_direction(tiny_hooked, _corpus(pairs), layer=1, warmup_steps=0)
    assert m["step"] == "reference" and ref_m["step"] == "reference"
    assert _cos(got, ref) >= 0.999
    assert m["loss_curve"] == pytest.approx(ref_m["loss_curve"], abs=1e-4)


def _corpus(pairs):
    from types import SimpleNamespace

    return SimpleNamespace(english=tuple(e for e, _ in pairs), target=tuple(t for _, t in pairs))


def test_processed_hooked_transformer_records_and_warns(tiny):
    if HookedTransformer is None:
        pytest.skip("HookedTransformer needs TransformerLens 3.x")
    processed = load_model("tiny", kind="hooked", fold_ln=True, center_unembed=True)
    basis = weight_basis(processed)
    # RMSNorm: TransformerLens folds the norms and centres the unembedding, but never
    # centres writing weights (that needs LayerNorm), so the residual stream is unchanged
    assert (basis["fold_ln"], basis["center_writing_weights"], basis["center_unembed"]) == (
        True,
        False,
        True,
    )
    v = fit_vector(tiny, PAIRS, layer=2)
    match = r"fold_ln=False \(vector\) vs True \(model\)"
    with pytest.warns(BasisWarning, match=match), steer(processed, v):
        processed(TEXT)
    w = fit_vector(processed, PAIRS, layer=2)
    assert w.meta["weight_basis"]["fold_ln"] is True
    match = r"center_unembed=True \(vector\) vs False"
    with pytest.warns(BasisWarning, match=match), steer(tiny, w):
        tiny(TEXT)


# ----------------------------------------------------------------- gemma-3-270m


@pytest.mark.real
def test_gemma_hooked_matches_the_bridge(gemma, gemma_hooked):
    """The real-model proof: same residuals, same mean_diff vector, same steered logits."""
    from interp_steer.data import load_parallel

    pairs = load_parallel("flores", "de", n=16)
    layer = 6
    vb = fit_vector(gemma, pairs, layer=layer)
    vh = fit_vector(gemma_hooked, pairs, layer=layer)
    assert _cos(vb.direction, vh.direction) >= 0.9999
    ids = gemma.to_tokens("Die Katze sitzt auf der Matte und")
    with torch.no_grad():
        base = gemma(ids)
        with steer(gemma, vb, alpha=4.0):
            want = gemma(ids)
        with steer(gemma_hooked, vh, alpha=4.0):
            got = gemma_hooked(ids)
    assert (want - base).abs().max() > 1.0  # steering moved the logits
    scale = float(want.abs().max())
    assert float((got - want).abs().max()) <= 1e-3 * scale
    assert got[0, -1].argmax() == want[0, -1].argmax()
    lb = logit_lens(gemma, ["Die Katze sitzt auf der"], k=1, progress=False)
    lh = logit_lens(gemma_hooked, ["Die Katze sitzt auf der"], k=1, progress=False)
    assert np.array_equal(lh.tokens[..., 0], lb.tokens[..., 0])
    task = load_task("xcopa", "it", n=4)
    for vector in (None, vb):
        a = evaluate(gemma, task, vector=vector, alpha=2.0, progress=False)
        b = evaluate(gemma_hooked, task, vector=vector, alpha=2.0, progress=False)
        assert [i.parsed for i in b.items] == [i.parsed for i in a.items]
