"""english_kl takes the user's own pairs in any form ParallelCorpus.coerce reads."""

import numpy as np
import pytest

from interp_steer.analysis import english_kl
from interp_steer.analysis.alignment import english_logprobs
from interp_steer.data import ParallelCorpus

PAIRS = [("The cat sleeps.", "Die Katze schläft."), ("A dog barks.", "Ein Hund bellt.")]


def test_english_kl_takes_plain_pairs_and_lists(tiny):
    corpus = ParallelCorpus(tuple(e for e, _ in PAIRS), tuple(t for _, t in PAIRS), "de")
    expected = english_kl(tiny, corpus)
    for data in (PAIRS, {"en": [e for e, _ in PAIRS], "de": [t for _, t in PAIRS]}):
        np.testing.assert_array_equal(english_kl(tiny, data), expected)
        ref = english_logprobs(tiny, data)
        assert ref.shape == (2, tiny.cfg.d_vocab)


def test_english_kl_refuses_other_data_listing_the_forms(tiny):
    with pytest.raises(TypeError, match="cannot read pairs from a str.*Give a ParallelCorpus"):
        english_kl(tiny, "The cat sleeps.")
