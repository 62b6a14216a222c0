"""The steering vector: one direction for one layer's residual stream, with provenance."""

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from interp_steer.storage import atomic_write, atomic_write_json
from interp_steer.types import Direction

FORMAT = "interp_steer.SteeringVector"
FORMAT_VERSION = "1"


@dataclass(frozen=True)
class SteeringVector:
    """A direction added to one hook point (by default ``blocks.{layer}.hook_resid_post``).

    Attributes:
        direction: The vector, shape ``(d_model,)``; any float dtype, any device.
        layer: The block whose residual stream it is added to.
        hook_name: The hook point; defaults to ``blocks.{layer}.hook_resid_post``.
        method: How it was made (``"mean_diff"``, ``"pca"``, ``"mse"``, ``"bipo"``, ...).
        source_lang: The language of the prompts it is meant for (e.g. ``"de"``).
        target_lang: The language it steers towards (``"en"`` in the paper's setting).
        model_name: The model it was fitted on.
        meta: Data provenance, hyper-parameters and fit metrics; JSON-serialisable.

    >>> v = SteeringVector(torch.ones(4), layer=2, method="mean_diff", source_lang="de")
    >>> v.hook_name, (2 * v - v).norm
    ('blocks.2.hook_resid_post', 2.0)
    """

    direction: Direction
    layer: int
    hook_name: str = ""
    method: str = "custom"
    source_lang: str | None = None
    target_lang: str | None = "en"
    model_name: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.direction, torch.Tensor) or self.direction.ndim != 1:
            raise ValueError(
                "direction must be a 1-D tensor of shape (d_model,), got "
                f"{getattr(self.direction, 'shape', type(self.direction).__name__)}"
            )
        if not self.direction.is_floating_point():
            raise ValueError(f"direction must be a float tensor, got {self.direction.dtype}")
        if not bool(torch.isfinite(self.direction).all()):
            raise ValueError("direction contains NaN or infinite values")
        if isinstance(self.layer, bool) or not isinstance(self.layer, int) or self.layer < 0:
            raise ValueError(f"layer must be a non-negative int, got {self.layer!r}")
        if not self.hook_name:
            object.__setattr__(self, "hook_name", f"blocks.{self.layer}.hook_resid_post")
        object.__setattr__(self, "meta", dict(self.meta))

    @property
    def d_model(self) -> int:
        """The residual width this vector fits."""
        return int(self.direction.shape[0])

    @property
    def norm(self) -> float:
        """The L2 norm of the direction."""
        return float(self.direction.float().norm())

    def to(
        self, device: str | torch.device | None = None, dtype: torch.dtype | None = None
    ) -> "SteeringVector":
        """Return a copy with the direction moved to ``device`` and/or cast to ``dtype``."""
        return replace(self, direction=self.direction.to(device=device, dtype=dtype))

    def with_direction(self, direction: Direction, **changes: Any) -> "SteeringVector":
        """Return a copy with a new direction (and optionally other fields changed)."""
        return replace(self, direction=direction, **changes)

    # -- arithmetic, for notebooks -------------------------------------------------
    def _check_compatible(self, other: "SteeringVector") -> None:
        if not isinstance(other, SteeringVector):
            raise TypeError(f"cannot combine a SteeringVector with {type(other).__name__}")
        if other.hook_name != self.hook_name or other.d_model != self.d_model:
            raise ValueError(
                "vectors must share hook point and d_model to be combined: "
                f"{self.hook_name}/{self.d_model} vs {other.hook_name}/{other.d_model}"
            )

    def _combine(self, other: "SteeringVector", sign: float, op: str) -> "SteeringVector":
        self._check_compatible(other)
        d = self.direction + sign * other.direction.to(self.direction)
        same = {k: getattr(self, k) for k in ("source_lang", "target_lang", "model_name")}
        for key in same:
            if getattr(other, key) != same[key]:
                same[key] = None
        return replace(
            self,
            direction=d,
            method=f"({self.method}{op}{other.method})",
            meta={"combined": [dict(self.meta), dict(other.meta)], "op": op},
            **same,
        )

    def __add__(self, other: "SteeringVector") -> "SteeringVector":
        return self._combine(other, 1.0, "+")

    def __sub__(self, other: "SteeringVector") -> "SteeringVector":
        return self._combine(other, -1.0, "-")

    def __mul__(self, scalar: float | int) -> "SteeringVector":
        if not isinstance(scalar, int | float) or not math.isfinite(scalar):
            raise TypeError(f"a SteeringVector can be scaled by a finite number, not {scalar!r}")
        return replace(self, direction=self.direction * scalar)

    __rmul__ = __mul__

    def __truediv__(self, scalar: float | int) -> "SteeringVector":
        return self * (1.0 / scalar)

    def __neg__(self) -> "SteeringVector":
        return self * -1.0

    # -- persistence ----------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``<path>.safetensors`` (tensor + metadata) and a readable ``<path>.json``.

        Both are written atomically (temporary file, then rename). The safetensors file
        alone is enough to load the vector back; the JSON is for people.

        Returns:
            The path of the safetensors file.
        """
        target = _with_suffix(Path(path))
        header = self._header()
        target.parent.mkdir(parents=True, exist_ok=True)
        tensor = self.direction.detach().to("cpu").contiguous()
        atomic_write(target, lambda tmp: save_file({"direction": tensor}, tmp, metadata=header))
        readable = {k: json.loads(v) if k == "meta" else v for k, v in header.items()}
        readable["norm"] = self.norm
        atomic_write_json(target.with_suffix(".json"), readable)
        return target

    def _header(self) -> dict[str, str]:
        try:
            meta = json.dumps(self.meta, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as err:
            raise ValueError(f"meta must be JSON-serialisable to be saved: {err}") from None
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "layer": str(self.layer),
            "hook_name": self.hook_name,
            "method": self.method,
            "source_lang": json.dumps(self.source_lang),
            "target_lang": json.dumps(self.target_lang),
            "model_name": json.dumps(self.model_name),
            "meta": meta,
        }

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "SteeringVector":
        """Read a vector written by :meth:`save` (bit-exact; never unpickles).

        Raises:
            FileNotFoundError: no such file.
            ValueError: the file is truncated, corrupt or not an interp_steer vector.
        """
        target = _with_suffix(Path(path))
        if not target.is_file():
            raise FileNotFoundError(f"no steering vector file at {target}")
        try:
            with safe_open(str(target), framework="pt") as f:
                header = f.metadata() or {}
            tensors = load_file(str(target))
        except (SafetensorError, OSError, ValueError) as err:
            raise ValueError(
                f"{target} is not a readable safetensors file (truncated or corrupt?): {err}"
            ) from None
        if header.get("format") != FORMAT or set(tensors) != {"direction"}:
            raise ValueError(
                f"{target} is a safetensors file but not an interp_steer steering vector "
                f"(expected metadata format={FORMAT!r} and one tensor 'direction')"
            )
        try:
            return cls(
                direction=tensors["direction"],
                layer=int(header["layer"]),
                hook_name=header["hook_name"],
                method=header["method"],
                source_lang=json.loads(header["source_lang"]),
                target_lang=json.loads(header["target_lang"]),
                model_name=json.loads(header["model_name"]),
                meta=json.loads(header["meta"]),
            )
        except (KeyError, json.JSONDecodeError) as err:
            raise ValueError(f"{target} has damaged steering-vector metadata: {err}") from None


def _with_suffix(path: Path) -> Path:
    return path if path.suffix == ".safetensors" else path.with_name(path.name + ".safetensors")


def alpha_for_ratio(vector: SteeringVector, ratio: float) -> float:
    """Return ``alpha`` with ``‖alpha v‖ / ‖h‖ = ratio`` (``‖h‖`` from the fit's metrics).

    >>> import torch
    >>> v = SteeringVector(torch.ones(4), layer=0, meta={"metrics": {"resid_norm": 10.0}})
    >>> alpha_for_ratio(v, 0.5)
    2.5
    """
    metrics = dict(vector.meta.get("metrics", {}) or {})
    resid = metrics.get("resid_norm")
    if resid is None or not math.isfinite(float(resid)):
        raise ValueError(
            "the vector records no residual norm (meta['metrics']['resid_norm']); fit it "
            "with interp_steer.fitting.fit or pass absolute alphas"
        )
    if vector.norm == 0:
        raise ValueError("the vector is zero: no alpha reaches a non-zero ratio")
    return float(ratio) * float(resid) / vector.norm


__all__ = [
    "FORMAT",
    "SteeringVector",
    "alpha_for_ratio",
]
