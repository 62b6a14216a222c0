"""The exact fast path of scoring (issue #22 item 2): the HF modules alone, the same hooks.

Every comparison is fast path against the bridge forward on the same left-padded batch, at
the real positions (pads are never read), to float32 rounding: ``atol=1e-5`` (on
TransformerLens 4.3 they agree bit for bit). A counter on ``BlockBridge.forward`` tells
which path ran: the fast path calls no bridge block, the bridge calls each once.
"""

import contextlib
import functools

import pytest
import torch
from transformer_lens.model_bridge.generalized_components import BlockBridge

from interp_steer.models import (
    batching,
    fast_forward,
    fast_path_blocker,
    generating,
    left_pad,
    prefix_blocker,
    prefix_step,
    score_continuations,
)
from interp_steer.models.backend import TL_VERSION, hf_model
from interp_steer.models.batching import tail_logits
from interp_steer.steering import NonFiniteError, SteeringVector, steer

ATOL = 1e-5
ROWS = [[2, 72, 105, 44, 50, 61], [2, 72], [2, 9, 10, 11]]  # left-padded to 6
ARCHS = ["llama", "mistral", "qwen2", "cohere"]
TL3 = TL_VERSION.startswith("3.")
# TransformerLens 3.9's Cohere bridge rotates Q/K with the cat-split RoPE convention, not
# Cohere's interleaved one (fixed in 4.x): its logits differ from Hugging Face's by ~4e-4 at
# every position after the first, so there the fast path stands aside (tested below)
COHERE_TL3 = pytest.mark.skipif(TL3, reason="TL 3.9's Cohere bridge is not HF's Cohere (RoPE)")
MODELS = ["tiny", *[pytest.param(a, marks=COHERE_TL3) if a == "cohere" else a for a in ARCHS]]
OPERATORS = {
    "add": {},
    "ablate": {},
    "rotate": {"angle": 40.0},
    "clamp": {"value": 1.5},
}
POSITIONS = ["all", "prompt", "generated", "last"]


@pytest.fixture
def get_model(tiny, tiny_archs):
    return lambda name: tiny if name == "tiny" else tiny_archs(name)


@pytest.fixture
def blocks_run(monkeypatch):
    """How many times a bridge block ran (``calls[0]``), counted on ``BlockBridge.forward``."""
    calls = [0]
    forward = BlockBridge.forward

    def counted(self, *args, **kwargs):
        calls[0] += 1
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(BlockBridge, "forward", counted)
    return calls


def batch(model):
    return left_pad(model, ROWS)


def both(model, ids, mask, calls, **kwargs):
    """``(fast, bridge)`` logits, asserting the fast one ran no bridge block."""
    calls[0] = 0
    with torch.no_grad():
        fast = fast_forward(model, ids, mask, **kwargs)
        assert calls[0] == 0, "the fast path ran a bridge block"
        bridge = fast_forward(model, ids, mask, fast=False, **kwargs)
    assert calls[0] == model.cfg.n_layers
    return fast, bridge


def assert_same(fast, bridge, mask):
    real = mask[:, -fast.shape[1] :]
    torch.testing.assert_close(fast[real], bridge[real], atol=ATOL, rtol=0)


def hooks_and_tree(model):
    """Every torch hook on every module of the model (ids), and which module each slot holds."""
    hooks = {
        (name, kind): tuple(getattr(m, kind))
        for name, m in model.named_modules(remove_duplicate=False)
        for kind in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks")
    }
    tree = {
        (name, child_name): id(child)
        for name, m in hf_model(model).named_modules(remove_duplicate=False)
        for child_name, child in m._modules.items()
    }
    return hooks, tree


# ----------------------------------------------------------------- equality with the bridge


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("keep", [None, 3])
def test_unsteered_fast_path_equals_the_bridge(name, keep, get_model, blocks_run):
    model = get_model(name)
    ids, mask = batch(model)
    assert fast_path_blocker(model) is None
    fast, bridge = both(model, ids, mask, blocks_run, logits_to_keep=keep)
    assert fast.shape == (len(ROWS), keep or ids.shape[1], model.cfg.d_vocab)
    assert_same(fast, bridge, mask)


@pytest.mark.parametrize("operator", sorted(OPERATORS))
@pytest.mark.parametrize("positions", POSITIONS)
def test_steered_fast_path_equals_the_bridge_for_every_operator_and_position_mode(
    operator, positions, tiny, blocks_run
):
    ids, mask = batch(tiny)
    v = SteeringVector(torch.linspace(-1, 1, 64), layer=1)
    with torch.no_grad():
        plain = fast_forward(tiny, ids, mask)
    with steer(tiny, v, alpha=3.0, positions=positions, operator=operator, **OPERATORS[operator]):
        assert fast_path_blocker(tiny) is None
        fast, bridge = both(tiny, ids, mask, blocks_run, logits_to_keep=4)
    assert_same(fast, bridge, mask)
    if positions != "generated":  # a prompt-only batch: "generated" steers nothing
        assert (fast - plain[:, -4:]).abs().max() > 1e-2  # steering acted on the fast path


@pytest.mark.parametrize("name", MODELS[1:])
@pytest.mark.parametrize("operator", sorted(OPERATORS))
def test_steered_fast_path_equals_the_bridge_on_other_architectures(
    name, operator, get_model, blocks_run
):
    model = get_model(name)
    ids, mask = batch(model)
    v = SteeringVector(torch.linspace(-1, 1, model.cfg.d_model), layer=0)
    mode = {"add": "all", "ablate": "last", "rotate": "prompt", "clamp": "last"}[operator]
    with steer(model, v, alpha=2.0, positions=mode, operator=operator, **OPERATORS[operator]):
        fast, bridge = both(model, ids, mask, blocks_run)
    assert_same(fast, bridge, mask)


def test_generated_positions_are_steered_alike(tiny, blocks_run):
    """``positions="generated"``: the second call of a generation steers its new positions."""
    ids, mask = batch(tiny)
    v = SteeringVector(torch.linspace(-1, 1, 64), layer=2)
    out = {}
    with steer(tiny, v, alpha=3.0, positions="generated"), torch.no_grad():
        for fast in (True, False):
            with generating(tiny):
                fast_forward(tiny, ids[:, :-2], mask[:, :-2], fast=fast)  # the prompt
                out[fast] = fast_forward(tiny, ids, mask, fast=fast)  # two tokens later
        plain = fast_forward(tiny, ids, mask)
    assert blocks_run[0] == 2 * tiny.cfg.n_layers  # the bridge's two calls only
    assert_same(out[True], out[False], mask)
    assert torch.equal(out[True][:, :-2][mask[:, :-2]], plain[:, :-2][mask[:, :-2]])
    assert (out[True] - plain)[:, -2:].abs().max() > 1e-2


def test_vectors_at_several_layers_before_and_after_a_block(tiny, blocks_run):
    ids, mask = batch(tiny)
    vectors = [
        SteeringVector(torch.linspace(-1, 1, 64), layer=0),
        SteeringVector(torch.linspace(1, -1, 64), layer=2, hook_name="blocks.2.hook_resid_pre"),
        SteeringVector(torch.ones(64), layer=3, hook_name="blocks.3.hook_in"),
    ]
    with steer(tiny, vectors, alpha=2.0):
        fast, bridge = both(tiny, ids, mask, blocks_run)
    assert_same(fast, bridge, mask)


def test_a_researchers_hook_on_the_residual_fires_with_the_same_tensor_and_hook(tiny, blocks_run):
    ids, mask = batch(tiny)
    seen = {}

    def record(path):
        def hook(resid, hook):
            seen[path] = (resid.clone(), hook)
            return resid * 0.5

        return hook

    with torch.no_grad():
        with tiny.hooks(fwd_hooks=[("blocks.2.hook_resid_post", record("fast"))]):
            fast = fast_forward(tiny, ids, mask)
        with tiny.hooks(fwd_hooks=[("blocks.2.hook_resid_post", record("bridge"))]):
            bridge = fast_forward(tiny, ids, mask, fast=False)
    assert blocks_run[0] == tiny.cfg.n_layers  # the bridge call only
    assert seen["fast"][1] is seen["bridge"][1] is tiny.blocks[2].hook_out
    torch.testing.assert_close(seen["fast"][0][mask], seen["bridge"][0][mask], atol=ATOL, rtol=0)
    assert_same(fast, bridge, mask)  # the returned half replaced the residual on both


def test_a_torch_hook_on_an_hf_layer_sees_the_residual_after_hook_resid_pre(tiny, blocks_run):
    """Torch hooks on the HF modules inside fire on both paths, in the bridge's order."""
    ids, mask = batch(tiny)
    seen = []
    layer = tiny.blocks[1].original_component  # the HF decoder layer

    def pre(module, args, kwargs):
        seen.append((args[0] if args else kwargs["hidden_states"]).clone())

    handle = layer.register_forward_pre_hook(pre, with_kwargs=True)
    try:
        with (
            tiny.hooks(fwd_hooks=[("blocks.1.hook_resid_pre", lambda x, hook: x + 1.0)]),
            torch.no_grad(),
        ):
            assert fast_path_blocker(tiny) is None
            fast, bridge = both(tiny, ids, mask, blocks_run)
    finally:
        handle.remove()
    assert len(seen) == 2
    torch.testing.assert_close(seen[0][mask], seen[1][mask], atol=ATOL, rtol=0)
    assert_same(fast, bridge, mask)


# ----------------------------------------------------------------- what is not reproduced


@pytest.mark.parametrize(
    "point, says",
    [("blocks.0.attn.hook_pattern", "'blocks.0.attn.hook_pattern'"), ("hook_embed", "embed")],
)
def test_a_hook_elsewhere_takes_the_bridge_and_still_fires(point, says, tiny, blocks_run):
    ids, mask = batch(tiny)
    fired = []

    def hook(x, hook):
        fired.append(hook.name)
        return x * 1.25

    with torch.no_grad():
        plain = fast_forward(tiny, ids, mask)
        with tiny.hooks(fwd_hooks=[(point, hook)]):
            assert says in fast_path_blocker(tiny)
            blocks_run[0] = 0
            hooked = fast_forward(tiny, ids, mask)
            assert blocks_run[0] == tiny.cfg.n_layers  # the bridge ran
            bridge = tiny(ids, attention_mask=mask.long())
    assert len(fired) == 2  # on each call
    assert torch.equal(hooked, bridge)
    if point == "hook_embed":
        assert (hooked - plain)[mask].abs().max() > 1e-3  # the hook acted
    assert fast_path_blocker(tiny) is None  # and the fast path is back once it is removed


def test_a_torch_hook_on_a_bridge_component_takes_the_bridge(tiny, blocks_run):
    ids, mask = batch(tiny)
    fired = []
    handle = tiny.blocks[1].mlp.register_forward_hook(lambda m, a, out: fired.append(1))
    try:
        assert "torch hook on the bridge component" in fast_path_blocker(tiny)
        with torch.no_grad():
            fast_forward(tiny, ids, mask)
    finally:
        handle.remove()
    assert fired == [1] and blocks_run[0] == tiny.cfg.n_layers
    assert fast_path_blocker(tiny) is None


def test_a_steered_resid_mid_vector_takes_the_bridge(tiny, blocks_run):
    ids, mask = batch(tiny)
    v = SteeringVector(torch.ones(64), layer=1, hook_name="blocks.1.hook_resid_mid")
    with steer(tiny, v, alpha=2.0):
        assert "hook_in" in fast_path_blocker(tiny)  # ln2's input, inside the block
        with torch.no_grad():
            fast_forward(tiny, ids, mask)
    assert blocks_run[0] == tiny.cfg.n_layers


def test_processed_weights_take_the_bridge(tiny_archs):
    model = tiny_archs("llama", layers=1)  # its own model (processing changes it for good)
    assert fast_path_blocker(model) is None
    with contextlib.redirect_stdout(None):
        model.enable_compatibility_mode()
    assert "processed" in fast_path_blocker(model)


def test_a_hooked_transformer_takes_its_own_forward(tiny_hooked):
    ids, mask = batch(tiny_hooked)
    assert "HookedTransformer" in fast_path_blocker(tiny_hooked)
    with torch.no_grad():
        want = tiny_hooked(ids, attention_mask=mask.long())
        assert torch.equal(fast_forward(tiny_hooked, ids, mask), want)


# ----------------------------------------------------------------- nothing left behind


def test_nothing_is_left_on_the_model_after_a_call_or_an_error_in_a_hook(tiny, blocks_run):
    ids, mask = batch(tiny)
    before = hooks_and_tree(tiny)
    v = SteeringVector(torch.ones(64), layer=1)
    with steer(tiny, v, alpha=1.0), torch.no_grad():
        during = hooks_and_tree(tiny)
        fast_forward(tiny, ids, mask)
        assert hooks_and_tree(tiny) == during  # the call leaves what steer put there

    def fail(resid, hook):
        raise RuntimeError("inside a hook")

    with tiny.hooks(fwd_hooks=[("blocks.2.hook_resid_post", fail)]), torch.no_grad():
        assert fast_path_blocker(tiny) is None  # the fast path is the one that raises
        with pytest.raises(RuntimeError, match="inside a hook"):
            fast_forward(tiny, ids, mask)
    assert blocks_run[0] == 0
    assert hooks_and_tree(tiny) == before
    assert hf_model(tiny).model.layers[2] is tiny.blocks[2]  # the wrappers are back
    fast, bridge = both(tiny, ids, mask, blocks_run)
    assert_same(fast, bridge, mask)


# ----------------------------------------------------------------- scoring takes it


def test_scoring_takes_the_fast_path_under_steering(tiny, blocks_run, monkeypatch):
    v = SteeringVector(torch.linspace(-1, 1, 64), layer=2)
    contexts, conts = ["Es regnet", "Hallo"], [[" heute", " nie"], [" Welt", " du"]]
    ids, mask = batch(tiny)
    with steer(tiny, v, alpha=3.0, positions="last"):
        fast_scores = score_continuations(tiny, contexts, conts)
        tail = tail_logits(tiny, ids, mask, 2)
    assert blocks_run[0] == 0  # HEAD: tail_logits ran the bridge, one call per block

    def bridge_forward(model, ids, mask, **kwargs):
        return fast_forward(model, ids, mask, fast=False, **kwargs)

    monkeypatch.setattr(batching, "fast_forward", bridge_forward)
    with steer(tiny, v, alpha=3.0, positions="last"):
        bridge_scores = score_continuations(tiny, contexts, conts)
        bridge_tail = tail_logits(tiny, ids, mask, 2)
    assert blocks_run[0] == 2 * tiny.cfg.n_layers
    for got, want in zip(fast_scores, bridge_scores, strict=True):
        for (s, n, c), (s2, n2, c2) in zip(got, want, strict=True):
            assert (n, c) == (n2, c2) and s == pytest.approx(s2, abs=1e-4)
    assert_same(tail, bridge_tail, mask)


def test_the_health_check_fires_on_the_fast_path(tiny, blocks_run):
    ids, mask = batch(tiny)
    # each term fits float32 (3e38), their sum on the residual stream does not
    vectors = [SteeringVector(torch.full((64,), 3.0), layer=layer) for layer in (1, 2)]
    with (
        pytest.raises(NonFiniteError, match="at layer 2 .* made the residual stream NaN"),
        steer(tiny, vectors, alpha=1e38),
        torch.no_grad(),
    ):
        tail_logits(tiny, ids, mask, 1)
    assert blocks_run[0] == 0


@pytest.mark.skipif(not TL3, reason="TransformerLens 3.x only")
def test_cohere_on_tl3_takes_the_bridge(tiny_archs, blocks_run):
    model = tiny_archs("cohere")
    assert "Cohere bridge" in fast_path_blocker(model)
    ids, mask = batch(model)
    blocks_run[0] = 0
    with torch.no_grad():
        fast_forward(model, ids, mask)
    assert blocks_run[0] == model.cfg.n_layers


# ----------------------------------------------------------------- shared contexts (prefix cache)

CONTEXTS = [  # the tiny model's sliding window is 16 tokens: most rows run past it
    "Die Katze schläft auf der warmen Matte neben dem Ofen.",
    "Hi",
    "Hallo, mein Freund, wie geht es dir heute?",
]
CONTINUATIONS = [
    [" The cat sleeps.", " x", " und draußen regnet es seit Stunden, immer weiter."],
    [" there"],
    [" Gut, danke!", " Es regnet.", " Hallo"],
]


def shared_and_whole(model, contexts=CONTEXTS, conts=CONTINUATIONS):
    return (
        score_continuations(model, contexts, conts, share_context=True),
        score_continuations(model, contexts, conts),
    )


def assert_same_scores(got, want, exact=False):
    for g, w in zip(got, want, strict=True):
        for (s, n, c), (s2, n2, c2) in zip(g, w, strict=True):
            assert (n, c) == (n2, c2)
            assert s == s2 if exact else s == pytest.approx(s2, abs=1e-4)


@pytest.mark.parametrize("name", MODELS)
def test_shared_contexts_score_as_one_forward_and_run_each_context_once(
    name, get_model, monkeypatch
):
    model = get_model(name)
    hf = hf_model(model)
    rows = []
    monkeypatch.setattr(
        type(hf), "forward", _counting(type(hf).forward, lambda ids: rows.append(ids.shape))
    )
    shared, whole = shared_and_whole(model)
    # two HF forwards: the three contexts, then the seven continuations; then one of 7 rows
    assert [r[0] for r in rows] == [3, 7, 7]
    assert_same_scores(shared, whole)
    alone = [score_continuations(model, [c], [cs], share_context=True)[0]
             for c, cs in zip(CONTEXTS, CONTINUATIONS, strict=True)]  # fmt: skip
    assert_same_scores(alone, shared)  # batched = unbatched


def _counting(forward, record):
    @functools.wraps(forward)  # the same signature: the cache argument's name is read from it
    def counted(self, input_ids=None, *args, **kwargs):
        record(input_ids)
        return forward(self, input_ids, *args, **kwargs)

    return counted


def test_under_a_hook_shared_contexts_take_the_one_forward(tiny, blocks_run):
    seen = []
    with tiny.hooks(fwd_hooks=[("blocks.1.hook_resid_post", lambda x, hook: seen.append(x))]):
        assert "residual stream" in prefix_blocker(tiny)
        shared, whole = shared_and_whole(tiny)
    assert [x.shape[0] for x in seen] == [7, 7]  # one whole forward each: the hook saw rows
    assert_same_scores(shared, whole, exact=True)
    v = SteeringVector(torch.linspace(-1, 1, 64), layer=2)
    with steer(tiny, v, alpha=3.0):
        shared, whole = shared_and_whole(tiny)
    assert_same_scores(shared, whole, exact=True)  # steered scores: the forward steer knows
    handle = tiny.blocks[0].original_component.register_forward_hook(lambda m, a, o: None)
    try:
        assert "torch hook on the HF module Gemma3DecoderLayer" in prefix_blocker(tiny)
        with pytest.raises(RuntimeError, match="cannot be split into a cached prefix"):
            prefix_step(tiny, *batch(tiny), None)
    finally:
        handle.remove()
    assert prefix_blocker(tiny) is None


def test_a_hooked_transformer_scores_shared_contexts_whole(tiny_hooked):
    assert "HookedTransformer" in prefix_blocker(tiny_hooked)
    shared, whole = shared_and_whole(tiny_hooked)
    assert_same_scores(shared, whole, exact=True)


def test_nothing_is_left_on_the_model_after_shared_contexts(tiny, blocks_run):
    before = hooks_and_tree(tiny)
    shared_and_whole(tiny)
    assert hooks_and_tree(tiny) == before
    fast, bridge = both(tiny, *batch(tiny), blocks_run)
    assert_same(fast, bridge, batch(tiny)[1])
