"""Latent-language trajectories: a planted case exact, the last layer is the model's own
softmax, steering at alpha 0 changes nothing, intervals and save/load."""

import dataclasses

import numpy as np
import pytest
import torch

from interp_steer import load_model
from interp_steer.analysis import TrajectoryResult, language_trajectory
from interp_steer.data import ConceptPrompts, load_concepts, translation_prompts
from interp_steer.models.backend import hf_model
from interp_steer.steering import SteeringVector

KEYS = ["dog", "cat", "bread", "water", "sun", "moon", "tree", "house"]


@pytest.fixture(scope="module")
def prompts(tiny):
    few = load_concepts(["de", "zh"]).subset(KEYS)
    return translation_prompts(tiny.tokenizer, few, "de", "zh", shots=2)


@pytest.fixture(scope="module")
def steered(tiny, prompts):
    v = SteeringVector(torch.randn(64, generator=torch.Generator().manual_seed(0)), layer=1,
                       method="mean_diff", source_lang="zh")  # fmt: skip
    return language_trajectory(tiny, prompts, vector=v, alpha=4.0, batch_size=3, n_boot=200)


# ----------------------------------------------------------------- a planted case

SCALE = 8000.0  # planted residual size: RMSNorm's eps (1e-6) is then 1e-12 of mean(x²)


def _planted_logits() -> np.ndarray:
    """Per layer, the read-out logits the planted residual and unembedding give."""
    logits = np.zeros((4, 260))
    logits[1, 20] = np.log(259.0)  # English token 20 gets exactly half the mass
    logits[2, [10, 11]] = np.log(129.0)  # tokens 10 and 11 get a quarter each
    logits[3, 10] = 30.0  # token 10 takes nearly all of it
    return logits  # layer 0: uniform over the 260 tokens


def test_planted_case_is_exact():
    # A fresh tiny model (the session one stays untouched) with a hand-built read-out: the
    # final norm's weight is 0 (Gemma's RMSNorm scales by 1 + w) and the unembedding maps
    # the basis vector e_l to the logits of layer l; each layer's residual is replaced by
    # SCALE * e_l, so layer l's lens distribution is softmax(_planted_logits()[l]).
    model = load_model("tiny")
    hf = hf_model(model)
    logits = _planted_logits()
    unembed = torch.zeros(260, 64)
    unembed[:, :4] = torch.tensor(logits.T / 8.0)  # normed residual: sqrt(64) e_l
    with torch.no_grad():
        hf.model.norm.weight.zero_()
        hf.lm_head.weight.copy_(unembed)  # tied with the embedding: the residuals are planted

    def plant(layer):
        def hook(resid, hook):
            out = torch.zeros_like(resid)
            out[..., layer] = SCALE
            return out

        return hook

    texts = ("a", "bb bb", "ccc ccc ccc")  # different lengths: left padding in one batch
    prompts = ConceptPrompts(
        texts=texts, concepts=("x", "y", "z"), source="de", target="zh",
        target_ids=((10, 11), (12,), (30,)), english_ids=((20,), (21, 22), (10,)),
        excluded=(), vocab_size=260,
    )  # fmt: skip
    hooks = [(f"blocks.{layer}.hook_resid_post", plant(layer)) for layer in range(4)]
    with model.hooks(fwd_hooks=hooks):
        res = language_trajectory(model, prompts, n_boot=10)

    # normed residual = SCALE e_l / rms = 8 e_l; logits = 8 * unembed[:, l] = logits[l]
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    expect_target = np.stack([p[:, [10, 11]].sum(-1), p[:, 12], p[:, 30]], -1)
    expect_english = np.stack([p[:, 20], p[:, [21, 22]].sum(-1), p[:, 10]], -1)
    expect_entropy = -(p * np.log(p)).sum(-1)
    np.testing.assert_allclose(res.target_prob[0], expect_target, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(res.english_prob[0], expect_english, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(res.entropy[0], expect_entropy[:, None].repeat(3, 1), rtol=1e-5)
    # the values the planting was designed to give, written out
    assert res.target_prob[0, 0, 0] == pytest.approx(2 / 260, rel=1e-5)
    assert res.entropy[0, 0, 0] == pytest.approx(np.log(260), rel=1e-6)
    assert res.english_prob[0, 1, 0] == pytest.approx(0.5, rel=1e-5)
    assert res.target_prob[0, 2, 0] == pytest.approx(0.5, rel=1e-5)
    assert res.english_prob[0, 3, 2] == pytest.approx(1.0, abs=1e-10)  # token 10: English here


# ----------------------------------------------------------------- the real read-out


def test_last_layer_is_the_models_own_softmax(tiny, prompts, steered):
    last = steered.layers.index(3)
    for i, text in enumerate(prompts.texts):
        with torch.inference_mode():
            logp = tiny(text)[0, -1].double().log_softmax(-1)  # one unpadded forward
        p = logp.exp()
        target = float(p[list(prompts.target_ids[i])].sum())
        english = float(p[list(prompts.english_ids[i])].sum())
        assert steered.target_prob[0, last, i] == pytest.approx(target, rel=1e-4, abs=1e-7)
        assert steered.english_prob[0, last, i] == pytest.approx(english, rel=1e-4, abs=1e-7)
        assert steered.entropy[0, last, i] == pytest.approx(float(-(p * logp).sum()), rel=1e-4)


def test_alpha_zero_steered_run_equals_base_exactly(tiny, prompts):
    v = SteeringVector(torch.ones(64), layer=2)
    res = language_trajectory(tiny, prompts, vector=v, alpha=0.0, layers=[0, 2, 3], n_boot=20)
    assert res.runs == ("base", "steered") and res.layers == (0, 2, 3)
    for name in ("target_prob", "english_prob", "entropy"):
        arr = getattr(res, name)
        np.testing.assert_array_equal(arr[0], arr[1])


def test_steering_changes_layers_from_its_own_on(steered):
    # the vector is added at blocks.1.hook_resid_post: layer 0 is untouched, 1.. are not
    np.testing.assert_array_equal(steered.target_prob[0, 0], steered.target_prob[1, 0])
    np.testing.assert_array_equal(steered.entropy[0, 0], steered.entropy[1, 0])
    for li in (1, 2, 3):
        assert not np.allclose(steered.entropy[0, li], steered.entropy[1, li])
    assert steered.steering_label() == "vector mean_diff zh→en at layer 1, α = 4"
    assert steered.meta["entropy_unit"] == "nats" and steered.meta["shots"] == 2


def test_batch_size_does_not_change_the_numbers(tiny, prompts, steered):
    one = language_trajectory(tiny, prompts, batch_size=8, n_boot=200)
    for name in ("target_prob", "english_prob", "entropy"):
        np.testing.assert_allclose(getattr(one, name)[0], getattr(steered, name)[0], rtol=1e-5)


def test_prompts_from_another_tokenizer_are_refused(tiny):
    other = ConceptPrompts(texts=("x",), concepts=("x",), source="de", target="zh",
                           target_ids=((5,),), english_ids=((6,),), excluded=(),
                           vocab_size=32000)  # fmt: skip
    with pytest.raises(ValueError, match="built with a tokenizer of 32000 tokens"):
        language_trajectory(tiny, other)


# ----------------------------------------------------------------- intervals and the result


def test_interval_is_a_bootstrap_of_the_per_prompt_values(steered):
    mean, low, high = steered.interval
    assert mean.shape == low.shape == high.shape == (2, 3, 4)
    np.testing.assert_allclose(mean[:, 0], steered.target_prob.mean(-1))
    np.testing.assert_allclose(mean[:, 2], steered.entropy.mean(-1))
    assert (low <= high).all()
    assert (low >= steered.values().min(-1) - 1e-12).all()
    assert (high <= steered.values().max(-1) + 1e-12).all()
    again = steered.bootstrap()
    for a, b in zip(again, steered.interval, strict=True):
        np.testing.assert_array_equal(a, b)
    wider = steered.bootstrap(confidence=0.99)
    assert (wider[1] <= low + 1e-12).all() and (wider[2] >= high - 1e-12).all()


def test_constant_values_give_a_zero_width_interval():
    shape = (1, 2, 5)
    res = TrajectoryResult(
        model="m", source="de", target="zh", lens="logit", layers=(0, 1), runs=("base",),
        concepts=tuple("abcde"), prompts=tuple("abcde"), target_prob=np.full(shape, 0.25),
        english_prob=np.full(shape, 0.5), entropy=np.full(shape, 2.0), n_boot=50,
    )  # fmt: skip
    mean, low, high = res.interval
    np.testing.assert_allclose(low, mean)
    np.testing.assert_allclose(high, mean)
    np.testing.assert_allclose(mean[0, :, 0], [0.25, 0.5, 2.0])
    frame = res.to_frame()
    assert frame.columns.tolist() == ["run", "layer", "quantity", "mean", "low", "high"]
    assert len(frame) == 6 and set(frame["quantity"]) == {"target", "english", "entropy"}


def test_validation_rejects_mismatches(steered):
    with pytest.raises(ValueError, match="entropy has shape"):
        dataclasses.replace(steered, entropy=steered.entropy[:, :2])
    with pytest.raises(ValueError, match="probabilities"):
        dataclasses.replace(steered, target_prob=steered.target_prob + 2)
    with pytest.raises(ValueError, match="runs must be"):
        dataclasses.replace(steered, runs=("steered", "base"))
    with pytest.raises(ValueError, match="not be English"):
        dataclasses.replace(steered, target="en")
    with pytest.raises(ValueError, match="concepts and prompts"):
        dataclasses.replace(steered, prompts=steered.prompts[:-1])


@pytest.mark.parametrize("suffix", [".json", ".parquet"])
def test_save_load_is_bit_exact(steered, tmp_path, suffix):
    back = TrajectoryResult.load(steered.save(tmp_path / f"traj{suffix}"))
    for name in ("target_prob", "english_prob", "entropy"):
        assert getattr(back, name).tobytes() == getattr(steered, name).tobytes()
    for a, b in zip(back.interval, steered.interval, strict=True):
        assert a.tobytes() == b.tobytes()
    assert back.to_dict() == steered.to_dict()
    assert back.to_frame().equals(steered.to_frame())
