"""Texts longer than the context: cut to it, one warning with the count, recorded."""

import warnings

import pytest

from interp_steer.activations import collect_activations
from interp_steer.analysis import logit_lens
from interp_steer.data import ParallelCorpus
from interp_steer.fitting import fit_vector
from interp_steer.fitting.bipo import bipo_direction, encode_pairs
from interp_steer.models.batching import context_tokens

LONG = "Hallo Welt. " * 60  # 720 bytes: the tiny model reads one token per byte, n_ctx 512


def cut_warnings(caught):
    return [str(w.message) for w in caught if "context" in str(w.message)]


def test_context_tokens_cut_and_count(tiny):
    assert tiny.cfg.n_ctx == 512
    rows, n_cut = context_tokens(tiny, [LONG, "kurz", LONG])
    assert n_cut == 2 and [len(r) for r in rows] == [512, 5, 512]
    assert rows[0].tolist() == tiny.to_tokens(LONG, move_to_device=False)[0].tolist()


def test_collection_warns_once_with_the_count_also_from_the_cache(tiny, tmp_path):
    texts = [LONG, "kurz", LONG + "!", "noch kürzer"]
    for _ in range(2):  # the second call reads the cache
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            collect_activations(tiny, texts, layers=[1], pooling="mean", progress=False,
                                cache_dir=tmp_path)  # fmt: skip
        assert cut_warnings(caught) == [
            "activations: 2 of 4 texts exceed the model's context of 512 tokens and were cut to it"
        ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        collect_activations(tiny, ["kurz"], layers=[1], progress=False)
    assert cut_warnings(caught) == []


def test_fit_records_the_count(tiny):
    pairs = ParallelCorpus(("A long text. " * 50, "Short."), (LONG, "Kurz."), "de")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        v = fit_vector(tiny, pairs, layer=1)
    assert cut_warnings(caught) == [
        "activations: 2 of 4 texts exceed the model's context of 512 tokens and were cut to it"
    ]
    assert v.meta["data"]["n_truncated"] == 2 and v.meta["data"]["n_ctx"] == 512
    short = ParallelCorpus(("Short.",), ("Kurz.",), "de")
    assert fit_vector(tiny, short, layer=1).meta["data"]["n_truncated"] == 0


def test_logit_lens_records_the_count(tiny):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = logit_lens(tiny, [LONG, "Hallo"], lang="de", k=2, layers=[3])
    assert cut_warnings(caught) == [
        "logit lens: 1 of 2 texts exceed the model's context of 512 tokens and were cut to it"
    ]
    assert res.meta["n_truncated"] == 1 and res.meta["n_ctx"] == 512
    assert logit_lens(tiny, ["Hallo"], lang="de", k=2, layers=[3]).meta["n_truncated"] == 0


def test_bipo_cuts_pairs_to_the_context_and_records_the_count(tiny):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        seqs = encode_pairs(tiny, [LONG, "a"], ["bc" * 300, "d"], max_response_tokens=None)
    assert [len(ids) for ids, _ in seqs] == [512, 3] and seqs[0][1] == 1
    (message,) = cut_warnings(caught)
    assert message.startswith("BiPO: 1 of 2 prompt+response pairs exceed")
    pairs = ParallelCorpus(("The cat. " * 60, "Hello."), ("Die Katze. " * 60, "Hallo."), "de")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, metrics = bipo_direction(tiny, pairs, layer=1, warmup_steps=0, n_eval=0)
    assert metrics["n_truncated"] == 1
    assert cut_warnings(caught) == [
        "BiPO: 1 of 2 prompt+response pairs exceed the model's context of 512 tokens and were "
        "cut to it"
    ]


@pytest.mark.parametrize("positions", ["last", "all"])
def test_the_lens_read_out_refuses_rows_longer_than_the_context(tiny, positions):
    from interp_steer.analysis.vocab_projection import readout_residuals

    rows = [tiny.to_tokens(LONG, move_to_device=False, truncate=False)[0]]
    with pytest.raises(ValueError, match="more than the model's context of 512"):
        readout_residuals(tiny, rows, (1,), positions, batch_size=1)
