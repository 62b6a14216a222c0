"""Logit-lens figures read right: columns named by the prompts' words, steering named."""

import pytest
import torch

from interp_steer.analysis import logit_lens
from interp_steer.plotting import plot_language_shares, plot_token_table
from interp_steer.steering import SteeringVector

PROMPTS = ["Der Hund schläft auf dem", "Hallo Welt"]


@pytest.fixture(scope="module")
def steered(tiny):
    v = SteeringVector(torch.ones(64), layer=1, method="mean_diff", source_lang="de")
    return logit_lens(tiny, PROMPTS, vector=v, alpha=2.0, k=3, lang="de", vector_name="de-L1")


def test_last_token_table_names_columns_by_the_prompts_last_words(tiny):
    res = logit_lens(tiny, PROMPTS, k=3, lang="de")
    fig = plot_token_table(res)
    assert list(fig.layout.xaxis.ticktext) == ["#0: …schläft auf dem", "#1: Hallo Welt"]
    assert fig.layout.xaxis.title.text == "prompt (read at its last token)"
    # the read-out token is the one that ends each label
    assert [t[-1] for t in res.item_token] == ["m", "t"]


def test_steered_token_table_names_vector_layer_and_strength(steered):
    title = plot_token_table(steered, variant="steered").layout.title.text
    assert "steered: vector de-L1 at layer 1, α = 2" in title
    assert "steered:" not in plot_token_table(steered, variant="base").layout.title.text


def test_shares_figure_names_the_steering_once_per_vector(tiny, steered):
    title = plot_language_shares(steered).layout.title.text
    assert title.count("<br><sup>steered: vector de-L1 at layer 1, α = 2</sup>") == 1
    two = plot_language_shares([steered, steered], titles=list("abcd"))
    assert two.layout.title.text.count("steered:") == 1
    base = logit_lens(tiny, PROMPTS, k=3, lang="de")
    assert "steered" not in plot_language_shares(base).layout.title.text
