"""The metrics of cross-lingual similarity: two aligned activation matrices compared.

Row ``i`` of both matrices is the same sentence in two languages. :data:`METRICS`:

* ``"raw_cosine"``: the mean cosine of matched pairs, for reference only: every residual
  stream carries a large shared component, so on Gemma-3-270M matched *and* shuffled
  pairs both score about 0.99;
* ``"centred_cosine"``: the same after subtracting each language's mean activation (per
  layer): what is left is sentence content;
* ``"shuffled_centred_cosine"``: the centred cosine of mismatched pairs (``i != j``), the
  baseline ``"centred_cosine"`` must beat;
* ``"cka"``: linear CKA (Kornblith et al. 2019) between the two languages' centred
  activation matrices: 1 when one is a rotation and scaling of the other. It is biased
  upwards when ``n`` is small against ``d_model``: compare values at the same ``n``;
* ``"retrieval"``: for each sentence of the row language, is its partner the most
  similar (centred cosine) of all ``n`` sentences of the column language? Chance is
  ``1/n``. This matrix is not symmetric.

Each matrix is prepared once (:func:`prepare`: unit rows, centred unit rows, the unit
centred Gram matrix) and every pair is then compared by :func:`prepared_metrics`;
:func:`pair_metrics` does both for one pair.

Example:
    >>> x = torch.randn(20, 8, generator=torch.Generator().manual_seed(0))
    >>> pair_metrics(x, x)["retrieval"]
    (1.0, 1.0)
"""

from dataclasses import dataclass

import torch
from torch import Tensor

METRICS: tuple[str, ...] = (
    "centred_cosine",
    "shuffled_centred_cosine",
    "cka",
    "retrieval",
    "raw_cosine",
)
"""The metrics every :class:`SimilarityResult` holds."""


@dataclass(frozen=True)
class Prepared:
    """One language at one layer, ready for pairwise comparisons (from :func:`prepare`).

    Attributes:
        unit: Raw rows, unit norm ``[n, d]``.
        centred_unit: Rows minus their mean, unit norm ``[n, d]``.
        gram_unit: The centred Gram matrix, flattened, unit norm ``[n * n]``.
    """

    unit: Tensor
    centred_unit: Tensor
    gram_unit: Tensor


def prepare(x: Tensor) -> Prepared:
    """Prepare an activation matrix ``[n, d]`` for comparisons (in float64).

    >>> p = prepare(torch.randn(5, 3))
    >>> p.unit.shape, p.gram_unit.shape, round(float(p.gram_unit.norm()), 6)
    (torch.Size([5, 3]), torch.Size([25]), 1.0)
    """
    x = x.double()
    centred = x - x.mean(0, keepdim=True)
    gram = (centred @ centred.T).flatten()
    return Prepared(
        unit=torch.nn.functional.normalize(x, dim=1),
        centred_unit=torch.nn.functional.normalize(centred, dim=1),
        gram_unit=gram / gram.norm().clamp_min(1e-30),
    )


def pair_metrics(a: Tensor, b: Tensor) -> dict[str, tuple[float, float]]:
    """Compare two aligned activation matrices ``[n, d]`` (row i of each: same sentence).

    Returns:
        Metric -> ``(a vs b, b vs a)``; the two differ only for ``"retrieval"`` (``a``'s
        sentences finding their partner among ``b``'s, and the reverse).

    >>> x = torch.randn(20, 8)
    >>> {k: round(v[0], 6) for k, v in pair_metrics(x, 2 * x + 1).items()}["cka"]
    1.0
    """
    if a.ndim != 2 or a.shape != b.shape or a.shape[0] < 2:
        raise ValueError(f"expected two aligned [n >= 2, d] matrices, got {a.shape}, {b.shape}")
    return prepared_metrics(prepare(a), prepare(b))


def prepared_metrics(pa: Prepared, pb: Prepared) -> dict[str, tuple[float, float]]:
    """Compare two prepared matrices: metric -> ``(a vs b, b vs a)`` (see :func:`pair_metrics`).

    >>> p = prepare(torch.randn(10, 4))
    >>> prepared_metrics(p, p)["centred_cosine"][0] > 0.999
    True
    """
    n = pa.unit.shape[0]
    raw = float((pa.unit * pb.unit).sum(1).mean())
    sim = pa.centred_unit @ pb.centred_unit.T  # [n, n]
    diag = sim.diagonal()
    matched = float(diag.mean())
    shuffled = float((sim.sum() - diag.sum()) / (n * (n - 1)))
    target = torch.arange(n)
    a_to_b = float((sim.argmax(1) == target).double().mean())
    b_to_a = float((sim.argmax(0) == target).double().mean())
    cka = float(pa.gram_unit @ pb.gram_unit)
    return {
        "centred_cosine": (matched, matched),
        "shuffled_centred_cosine": (shuffled, shuffled),
        "cka": (cka, cka),
        "retrieval": (a_to_b, b_to_a),
        "raw_cosine": (raw, raw),
    }


__all__ = [
    "METRICS",
    "pair_metrics",
]
