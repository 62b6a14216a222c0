"""Pooled residual-stream activations: the :class:`Activations` record and its pooling modes.

Example:
    >>> acts = Activations((1,), "last", {1: torch.zeros(2, 4)}, "tiny", 2)
    >>> acts.n, acts.layers
    (2, (1,))
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

import torch
from torch import Tensor

Pooling = Literal["last", "mean", "all"]


POOLINGS: tuple[str, ...] = get_args(Pooling)
"""``"last"``: the last real token; ``"mean"``: the mean over real tokens; ``"all"``: every
real token, concatenated over texts."""


@dataclass(frozen=True)
class Activations:
    """Pooled residual-stream activations of ``n`` texts at some layers (CPU, float32).

    Attributes:
        layers: The layers, ascending.
        pooling: ``"last"``, ``"mean"`` or ``"all"`` (see ``POOLINGS``).
        data: Layer -> ``[n, d_model]`` for ``"last"``/``"mean"``; for ``"all"``,
            ``[sum(lengths), d_model]``: every pooled token of every text, in text order.
        model_name: The model they come from.
        n: Number of texts.
        lengths: For ``"all"``: the number of pooled tokens of each text; else ``None``.
        norms: Layer -> ``[n]``: each text's mean per-token residual L2 norm (the scale a
            steering vector added at every position competes with); may be empty.
        exclude_bos: Whether a leading BOS token was left out of ``"mean"``/``"all"``
            pooling and of ``norms`` (Gemma's BOS residual is ~15x larger than the rest).

    >>> acts = Activations((1,), "last", {1: torch.zeros(2, 4)}, "tiny", 2,
    ...                    norms={1: torch.ones(2)})
    >>> acts[1].shape, acts.d_model
    (torch.Size([2, 4]), 4)
    """

    layers: tuple[int, ...]
    pooling: str
    data: Mapping[int, Tensor]
    model_name: str
    n: int
    lengths: tuple[int, ...] | None = None
    norms: Mapping[int, Tensor] = field(default_factory=dict)
    exclude_bos: bool = True

    def __post_init__(self) -> None:
        layers = tuple(self.layers)
        if not layers or list(layers) != sorted(set(layers)) or layers[0] < 0:
            raise ValueError(f"layers must be non-empty, non-negative, unique, ascending: {layers}")
        if self.pooling not in POOLINGS or self.n < 1:
            raise ValueError(f"pooling must be one of {POOLINGS} and n >= 1")
        if (self.pooling == "all") != (self.lengths is not None):
            raise ValueError("lengths must be given for pooling='all' and only then")
        if self.lengths is not None and (len(self.lengths) != self.n or min(self.lengths) < 1):
            raise ValueError(f"lengths must hold {self.n} positive counts")
        rows = sum(self.lengths) if self.lengths is not None else self.n
        checks = [("data", self.data, 2, rows)] + [("norms", self.norms, 1, self.n)] * bool(
            self.norms
        )
        for name, table, ndim, expected in checks:
            if set(table) != set(layers):
                raise ValueError(f"{name} has layers {sorted(table)}, expected {list(layers)}")
            for layer, t in table.items():
                if not isinstance(t, Tensor) or not t.is_floating_point() or t.ndim != ndim:
                    raise ValueError(f"{name}[{layer}] must be a {ndim}-D float tensor")
                if t.shape[0] != expected:
                    raise ValueError(f"{name}[{layer}] has {t.shape[0]} rows, expected {expected}")
        if len({t.shape[1] for t in self.data.values()}) != 1:
            raise ValueError("all layers must have the same d_model")
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "data", dict(self.data))
        object.__setattr__(self, "norms", dict(self.norms))

    def __getitem__(self, layer: int) -> Tensor:
        """Return the activations at ``layer``."""
        if layer not in self.data:
            raise KeyError(f"layer {layer} was not collected; layers: {list(self.layers)}")
        return self.data[layer]

    @property
    def d_model(self) -> int:
        """The residual width."""
        return int(self.data[self.layers[0]].shape[1])

    def take(self, indices: Sequence[int]) -> "Activations":
        """Return the activations of the texts at ``indices``, in that order.

        >>> acts = Activations((0,), "all", {0: torch.arange(6.).reshape(3, 2)}, "m", 2,
        ...                    lengths=(1, 2), norms={0: torch.ones(2)})
        >>> acts.take([1]).data[0].tolist()
        [[2.0, 3.0], [4.0, 5.0]]
        """
        idx = list(indices)
        if not idx or min(idx) < -self.n or max(idx) >= self.n:
            raise ValueError(f"indices must be a non-empty selection of 0..{self.n - 1}")
        if self.lengths is None:
            rows = torch.tensor(idx, dtype=torch.long)
            lengths = None
        else:
            starts = [0]
            for length in self.lengths:
                starts.append(starts[-1] + length)
            rows = torch.cat([torch.arange(starts[i], starts[i] + self.lengths[i]) for i in idx])
            lengths = tuple(self.lengths[i] for i in idx)
        sel = torch.tensor(idx, dtype=torch.long)
        return Activations(
            layers=self.layers,
            pooling=self.pooling,
            data={k: v[rows] for k, v in self.data.items()},
            model_name=self.model_name,
            n=len(idx),
            lengths=lengths,
            norms={k: v[sel] for k, v in self.norms.items()},
            exclude_bos=self.exclude_bos,
        )


__all__ = [
    "Activations",
    "POOLINGS",
    "Pooling",
]
