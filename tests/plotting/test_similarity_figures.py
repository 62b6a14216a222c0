"""Similarity figures: the chance level of retrieval, family names on grouped axes."""

import numpy as np
import pytest
import torch

from interp_steer.analysis import similarity_from_activations
from interp_steer.data.languages import family, family_order
from interp_steer.plotting import plot_similarity, plot_similarity_matrix
from interp_steer.plotting.style import language_label

LANGS = ("en", "de", "fr", "es", "sw", "zh", "ja")


@pytest.fixture(scope="module")
def sim():
    g = torch.Generator().manual_seed(0)
    content = torch.randn(64, 8, generator=g)
    acts = {c: {layer: content * (layer + 1) + torch.randn(64, 8, generator=g)
                for layer in range(2)} for c in LANGS}  # fmt: skip
    return similarity_from_activations(acts, model="m", dataset="synthetic")


def test_retrieval_figures_show_the_chance_level(sim):
    assert sim.n == 64
    for fig in (plot_similarity(sim, "retrieval"), plot_similarity_matrix(sim, 1, "retrieval")):
        assert "chance = 1/64 = 0.016" in fig.layout.title.text
        assert fig.data[0].colorbar.title.text == "retrieval<br>chance 0.016"
    for fig in (plot_similarity(sim, "cka"), plot_similarity_matrix(sim, 1, "cka")):
        assert "chance" not in fig.layout.title.text  # CKA has no chance level
        assert fig.data[0].colorbar.title.text == "CKA"


def test_family_grouped_rows_are_labelled_with_their_families(sim):
    fig = plot_similarity(sim, "centred_cosine")
    rows = family_order(LANGS[1:])  # de | fr es | zh | ja | sw
    labels = {a.text: a for a in fig.layout.annotations}
    assert list(labels) == ["Germanic", "Romance", "Sino-Tibetan", "Japonic", "Bantu"]
    for name, note in labels.items():  # level with its rows, right of the heatmap
        at = [i for i, c in enumerate(rows) if family(c) == name]
        assert note.y == np.mean([at[0], at[-1]]) and note.yref == "y"
        assert note.x == 1 and note.xref == "x domain" and note.xanchor == "left"
    assert fig.data[0].colorbar.x > 1  # the colour bar moved out of the labels' way


def test_the_language_matrix_names_the_families_on_both_axes(sim):
    fig = plot_similarity_matrix(sim, 1, "cka")
    order = family_order(LANGS)  # en de | fr es | zh | ja | sw
    families = ["Germanic", "Romance", "Sino-Tibetan", "Japonic", "Bantu"]
    top = [a for a in fig.layout.annotations if a.yref == "y domain"]
    right = [a for a in fig.layout.annotations if a.xref == "x domain"]
    assert [a.text for a in top] == families and [a.text for a in right] == families
    assert [a.x for a in top] == [0.5, 2.5, 4, 5, 6] == [a.y for a in right]
    assert list(fig.data[0].x) == list(fig.data[0].y) == [language_label(c) for c in order]
    assert fig.layout.margin.t > 90  # room above the plot for the names
