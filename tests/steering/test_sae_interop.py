"""SAE decoder rows as steering vectors, and steering vectors read in SAE features.

The first tests use a hand-built SAE-like object (any object with ``W_dec``, ``W_enc``,
``b_enc``, ``b_dec`` and a hook name works); the last ones build a real SAELens SAE in
memory and run only where ``sae_lens`` is installed (``make test-tl39``).
"""

import importlib.util
import warnings
from types import SimpleNamespace

import pytest
import torch

from interp_steer.fitting import fit_vector
from interp_steer.steering import (
    BasisWarning,
    SteeringVector,
    from_sae_feature,
    sae_feature_scores,
    steer,
)

D_MODEL, D_SAE = 64, 96  # the tiny model's residual width
HAS_SAE_LENS = importlib.util.find_spec("sae_lens") is not None
needs_sae_lens = pytest.mark.skipif(not HAS_SAE_LENS, reason="sae_lens is not installed")


def _sae(hook="blocks.1.hook_resid_post", *, style="metadata", kwargs=None, seed=0):
    """A random SAE-like object in SAELens's layout; ``style`` says where the hook name is."""
    g = torch.Generator().manual_seed(seed)
    meta = {"hook_name": hook, "model_name": "tiny"}
    if kwargs is not None:
        meta["model_from_pretrained_kwargs"] = kwargs
    if style == "metadata":  # SAELens 6.x
        cfg = SimpleNamespace(metadata=SimpleNamespace(**meta))
    elif style == "cfg":  # SAELens before 6
        cfg = SimpleNamespace(hook_name=hook)
    else:
        cfg = SimpleNamespace()
    return SimpleNamespace(
        W_dec=torch.randn(D_SAE, D_MODEL, generator=g),
        W_enc=torch.randn(D_MODEL, D_SAE, generator=g) / 8,
        b_enc=torch.randn(D_SAE, generator=g) / 4,
        b_dec=torch.randn(D_MODEL, generator=g) / 4,
        cfg=cfg,
    )


# ------------------------------------------------------------------ from_sae_feature


@pytest.mark.parametrize(
    ("hook", "style", "layer"),
    [
        ("blocks.1.hook_resid_post", "metadata", 1),
        ("blocks.3.hook_resid_post", "cfg", 3),
        ("blocks.2.hook_resid_pre", "metadata", 2),
    ],
)
def test_feature_direction_and_layer_come_from_the_sae(hook, style, layer):
    sae = _sae(hook, style=style)
    v = from_sae_feature(sae, 7, model_name="tiny")
    assert (v.layer, v.hook_name, v.method, v.model_name) == (layer, hook, "sae_feature", "tiny")
    assert torch.equal(v.direction, sae.W_dec[7])
    assert v.meta["sae"]["hook_name"] == hook
    assert (v.meta["sae"]["d_sae"], v.meta["sae"]["d_in"], v.meta["sae"]["feature"]) == (
        D_SAE,
        D_MODEL,
        7,
    )
    assert v.meta["sae"]["decoder_norm"] == pytest.approx(float(sae.W_dec[7].norm()))


def test_an_sae_without_a_hook_name_needs_the_layer():
    sae = _sae(style="none")
    with pytest.raises(ValueError, match="names no hook point.*pass layer="):
        from_sae_feature(sae, 0)
    v = from_sae_feature(sae, 0, layer=2)
    assert (v.layer, v.hook_name) == (2, "blocks.2.hook_resid_post")


@pytest.mark.parametrize(
    ("hook", "feature", "layer", "message"),
    [
        ("blocks.1.hook_mlp_out", 0, None, "not the residual stream"),
        ("blocks.1.attn.hook_z", 0, None, "not the residual stream"),
        ("blocks.1.hook_resid_post", 2, 3, "layer=3 disagrees"),
        ("blocks.1.hook_resid_post", D_SAE, None, f"features 0..{D_SAE - 1}"),
        ("blocks.1.hook_resid_post", -1, None, "out of range"),
        ("blocks.1.hook_resid_post", True, None, "int index"),
    ],
)
def test_bad_hook_layer_or_feature_is_refused(hook, feature, layer, message):
    with pytest.raises(ValueError, match=message):
        from_sae_feature(_sae(hook), feature, layer=layer)


def test_an_object_without_a_2d_decoder_is_refused():
    with pytest.raises(ValueError, match="2-D tensor `W_dec`"):
        from_sae_feature(SimpleNamespace(W_dec=torch.zeros(4)), 0, layer=0)


def test_the_vector_saves_and_loads_with_its_sae_record(tmp_path):
    v = from_sae_feature(_sae(kwargs={}), 3)
    back = SteeringVector.load(v.save(tmp_path / "feature"))
    assert torch.equal(back.direction, v.direction)
    assert back.meta == v.meta


# ------------------------------------------------------------------ the weight basis


def test_weight_basis_is_read_from_saelens_metadata():
    # SAELens 6.x trains on from_pretrained_no_processing(**model_from_pretrained_kwargs)
    v = from_sae_feature(_sae(kwargs={"center_writing_weights": True}), 0)
    basis = v.meta["weight_basis"]
    assert (basis["fold_ln"], basis["center_writing_weights"], basis["center_unembed"]) == (
        False,
        True,
        False,
    )
    assert (
        from_sae_feature(_sae(kwargs={}), 0).meta["weight_basis"]["center_writing_weights"] is False
    )
    unknown = from_sae_feature(_sae(), 0)  # no record: nothing steer could check
    assert "weight_basis" not in unknown.meta
    assert unknown.meta["sae"]["weight_basis"].startswith("unknown")


def test_hf_trained_sae_is_in_the_unprocessed_basis():
    sae = _sae(kwargs={"fold_ln": True})
    sae.cfg.metadata.model_class_name = "AutoModelForCausalLM"  # HF models are not processed
    basis = from_sae_feature(sae, 0).meta["weight_basis"]
    assert [basis[k] for k in ("fold_ln", "center_writing_weights", "center_unembed")] == [
        False
    ] * 3


def test_sae_trained_on_hf_hidden_states_is_in_the_unprocessed_basis():
    sae = _sae()  # Gemma Scope 2 in SAELens: hf_hook_name, no model_from_pretrained_kwargs
    sae.cfg.metadata.hf_hook_name = "model.layers.1.output"
    basis = from_sae_feature(sae, 0).meta["weight_basis"]
    assert [basis[k] for k in ("fold_ln", "center_writing_weights", "center_unembed")] == [
        False
    ] * 3


def test_weight_basis_given_overrides_and_is_checked():
    v = from_sae_feature(_sae(kwargs={}), 0, weight_basis={"fold_ln": True})
    assert v.meta["weight_basis"]["fold_ln"] is True
    with pytest.raises(ValueError, match="weight_basis must map"):
        from_sae_feature(_sae(), 0, weight_basis={"fold": True})
    with pytest.raises(ValueError, match="weight_basis must map"):
        from_sae_feature(_sae(), 0, weight_basis={"fold_ln": "yes"})


def test_steer_warns_when_the_sae_was_trained_in_another_basis(tiny):
    other = from_sae_feature(_sae(kwargs={"fold_ln": True, "center_unembed": True}), 0)
    with pytest.warns(BasisWarning, match="fold_ln=True"), steer(tiny, other, alpha=1.0):
        pass
    same = from_sae_feature(_sae(kwargs={}), 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", BasisWarning)
        with steer(tiny, same, alpha=1.0):
            pass


# ------------------------------------------------------------------ steering with it


def _resid_posts(model, tokens):
    seen = {}

    def keeper(name):
        def keep(resid, hook):
            seen[name] = resid.detach().clone()

        return keep

    names = [f"blocks.{layer}.hook_resid_post" for layer in range(model.cfg.n_layers)]
    logits = model.run_with_hooks(tokens, fwd_hooks=[(n, keeper(n)) for n in names])
    return logits, [seen[n] for n in names]


def test_steering_adds_the_decoder_row_at_its_layer(tiny_any):
    model = tiny_any
    sae = _sae("blocks.1.hook_resid_post")
    v = from_sae_feature(sae, 7)
    tokens = model.to_tokens(["The cat sat on the mat."])
    base_logits, base = _resid_posts(model, tokens)
    with steer(model, v, alpha=3.0):
        logits, steered = _resid_posts(model, tokens)

    def by_hand(resid, hook):
        return resid + 3.0 * sae.W_dec[7].to(resid)

    hand = model.run_with_hooks(tokens, fwd_hooks=[("blocks.1.hook_resid_post", by_hand)])
    assert torch.equal(steered[0], base[0])  # block 0 runs before the vector is added
    torch.testing.assert_close(steered[1], base[1] + 3.0 * sae.W_dec[7])
    assert not torch.allclose(steered[2], base[2])  # blocks 2.. see the steered stream
    assert not torch.allclose(logits, base_logits)
    torch.testing.assert_close(logits, hand)


# ------------------------------------------------------------------ sae_feature_scores


def test_a_planted_decoder_row_scores_first_with_cosine_one():
    sae = _sae()
    v = SteeringVector(2.5 * sae.W_dec[7], layer=1)
    top = sae_feature_scores(v, sae, k=5)
    assert list(top.columns) == ["ranked_by", "rank", "feature", "cosine", "activation"]
    assert list(top.ranked_by) == ["cosine"] * 5 + ["activation"] * 5
    assert list(top["rank"]) == [1, 2, 3, 4, 5] * 2
    by_cos = top[top.ranked_by == "cosine"]
    assert by_cos.feature.iloc[0] == 7
    assert by_cos.cosine.iloc[0] == pytest.approx(1.0, abs=1e-6)
    assert by_cos.cosine.is_monotonic_decreasing
    assert (by_cos.cosine.iloc[1:] < 0.999).all()
    # -v ranks the other end first: feature 7 is the least like it
    assert 7 not in set(sae_feature_scores(-v, sae, k=5).query("ranked_by == 'cosine'").feature)


def test_activation_is_relu_of_the_encoder_without_encode():
    sae = _sae()
    v = SteeringVector(torch.randn(D_MODEL, generator=torch.Generator().manual_seed(1)), layer=1)
    top = sae_feature_scores(v, sae, k=D_SAE)
    assert top.attrs["activation_from"] == "relu"
    expected = torch.relu((v.direction - sae.b_dec) @ sae.W_enc + sae.b_enc)
    cos = torch.nn.functional.cosine_similarity(sae.W_dec, v.direction[None], dim=-1)
    acts = top[top.ranked_by == "activation"]
    assert int(acts.feature.iloc[0]) == int(expected.argmax())
    assert acts.activation.is_monotonic_decreasing
    full = top[top.ranked_by == "cosine"].sort_values("feature")
    torch.testing.assert_close(torch.tensor(full.activation.to_numpy()).float(), expected)
    torch.testing.assert_close(torch.tensor(full.cosine.to_numpy()).float(), cos)


def test_the_saes_own_encode_is_used_when_present():
    sae = _sae()
    sae.encode = lambda x: torch.arange(D_SAE, dtype=torch.float32).expand(x.shape[0], -1)
    top = sae_feature_scores(SteeringVector(sae.W_dec[0].clone(), layer=1), sae, k=3)
    assert top.attrs["activation_from"] == "encode"
    acts = top[top.ranked_by == "activation"]
    assert list(acts.feature) == [D_SAE - 1, D_SAE - 2, D_SAE - 3]
    assert list(acts.activation) == [D_SAE - 1.0, D_SAE - 2.0, D_SAE - 3.0]


def test_bridge_hook_names_match_the_saes():
    sae = _sae("blocks.1.hook_resid_post")
    v = SteeringVector(sae.W_dec[4].clone(), layer=1, hook_name="blocks.1.hook_out")
    assert sae_feature_scores(v, sae, k=1).feature.iloc[0] == 4


@pytest.mark.parametrize(
    ("vector", "k", "message"),
    [
        (SteeringVector(torch.ones(D_MODEL), layer=2), 3, "SAE reads 'blocks.1.hook_resid_post'"),
        (SteeringVector(torch.ones(8), layer=1), 3, "width 8 but the SAE's decoder rows"),
        (SteeringVector(torch.zeros(D_MODEL), layer=1), 3, "the vector is zero"),
        (SteeringVector(torch.ones(D_MODEL), layer=1), 0, "k must be a positive int"),
        (torch.ones(2, D_MODEL), 3, "a SteeringVector or a 1-D tensor"),
    ],
)
def test_scores_refuse_bad_input(vector, k, message):
    with pytest.raises(ValueError, match=message):
        sae_feature_scores(vector, _sae(), k=k)


# ------------------------------------------------------------------ a real SAELens SAE


@pytest.fixture(scope="module")
def real_sae():
    """A random SAELens StandardSAE in memory (no download) on the tiny model's block 1."""
    if not HAS_SAE_LENS:
        pytest.skip("sae_lens is not installed (make test-tl39 installs it)")
    from sae_lens import StandardSAE, StandardSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    torch.manual_seed(0)
    cfg = StandardSAEConfig(
        d_in=D_MODEL,
        d_sae=D_SAE,
        metadata=SAEMetadata(
            hook_name="blocks.1.hook_resid_post",
            model_name="tiny",
            model_class_name="HookedTransformer",
        ),
    )
    return StandardSAE(cfg)


@needs_sae_lens
def test_saelens_sae_steers_the_hooked_model(real_sae, tiny_hooked):
    v = from_sae_feature(real_sae, 11)
    assert (v.layer, v.hook_name) == (1, "blocks.1.hook_resid_post")
    assert v.meta["sae"]["architecture"] == "StandardSAE"
    row = real_sae.W_dec[11].detach()
    tokens = tiny_hooked.to_tokens(["Der Hund schläft."])
    base_logits, base = _resid_posts(tiny_hooked, tokens)
    with steer(tiny_hooked, v, alpha=2.0):
        logits, steered = _resid_posts(tiny_hooked, tokens)

    def by_hand(resid, hook):
        return resid + 2.0 * row.to(resid)

    hand = tiny_hooked.run_with_hooks(tokens, fwd_hooks=[("blocks.1.hook_resid_post", by_hand)])
    assert torch.equal(steered[0], base[0])
    torch.testing.assert_close(steered[1], base[1] + 2.0 * row)
    assert not torch.allclose(steered[2], base[2]) and not torch.allclose(logits, base_logits)
    torch.testing.assert_close(logits, hand)


@needs_sae_lens
def test_saelens_sae_scores_a_fitted_vector(real_sae, tiny_hooked):
    pairs = [
        ("The dog sleeps.", "Der Hund schläft."),
        ("I like tea.", "Ich mag Tee."),
        ("It is raining today.", "Es regnet heute."),
        ("Where is the station?", "Wo ist der Bahnhof?"),
    ]
    v = fit_vector(tiny_hooked, pairs, layer=1, lang="de", method="mean_diff")
    top = sae_feature_scores(v, real_sae, k=4)
    assert top.attrs["activation_from"] == "encode"
    cos = torch.nn.functional.cosine_similarity(real_sae.W_dec.detach(), v.direction[None], dim=-1)
    by_cos = top[top.ranked_by == "cosine"]
    assert list(by_cos.feature) == cos.topk(4).indices.tolist()
    acts = real_sae.encode(v.direction[None])[0].detach()
    by_act = top[top.ranked_by == "activation"]
    assert by_act.activation.tolist() == pytest.approx(acts.topk(4).values.tolist(), rel=1e-5)
    # a planted decoder row comes back first with cosine 1
    planted = sae_feature_scores(from_sae_feature(real_sae, 42), real_sae, k=1)
    assert (planted.ranked_by.iloc[0], planted.feature.iloc[0]) == ("cosine", 42)
    assert planted.cosine.iloc[0] == pytest.approx(1.0, abs=1e-6)
