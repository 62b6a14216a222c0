"""The steering vector: one direction for one layer's residual stream, with provenance."""

import hashlib
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from interp_steer.storage import json_meta, read_safetensors, write_tensors
from interp_steer.types import Direction

FORMAT = "interp_steer.SteeringVector"
FORMAT_VERSION = "2"
"""Version 2 adds ``checksum`` (sha256 of the tensor's bytes); version 1 files still load."""
READ_VERSIONS = ("1", "2")
RESIDUAL_HOOK = re.compile(r"blocks\.(\d+)\.hook_(resid_pre|resid_mid|resid_post|in|out)")
"""Residual-stream hook points (``hook_in``/``hook_out``: the bridge's own names)."""


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

    @property
    def checksum(self) -> str:
        """``sha256:<hex>`` of the direction's bytes as saved (its own dtype, little-endian).

        >>> SteeringVector(torch.zeros(2), layer=0).checksum[:15]
        'sha256:af5570f5'
        """
        return tensor_checksum(self.direction)

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
    def save(
        self, path: str | os.PathLike[str], *, root: str | os.PathLike[str] | None = None
    ) -> Path:
        """Write ``<path>.safetensors`` (tensor + metadata) and a readable ``<path>.json``.

        The safetensors file alone is enough to load the vector back; its header and the
        JSON both carry the tensor's :attr:`checksum`, which :meth:`load` verifies. Both
        files are written to temporary names first and the tensor is renamed into place
        last: a crash in between leaves a JSON that :meth:`load` finds does not match.

        Args:
            path: Where to write (``.safetensors`` is added when missing).
            root: The run folder the files belong to: refuse to write outside it (see
                :func:`interp_steer.storage.atomic_write`).

        Returns:
            The path of the safetensors file.
        """
        header = self._header()
        readable: dict[str, Any] = {
            k: json.loads(v) if k == "meta" else v for k, v in header.items()
        }
        readable["norm"] = self.norm
        target, _ = write_tensors(_with_suffix(Path(path)), {"direction": self.direction},
                                  header, readable, root=root)  # fmt: skip
        return target

    def _header(self) -> dict[str, str]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "layer": str(self.layer),
            "hook_name": self.hook_name,
            "method": self.method,
            "source_lang": json.dumps(self.source_lang),
            "target_lang": json.dumps(self.target_lang),
            "model_name": json.dumps(self.model_name),
            "meta": json_meta(self.meta),
            "checksum": self.checksum,
        }

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "SteeringVector":
        """Read a vector written by :meth:`save` (bit-exact; never unpickles).

        Every check names the file and the field: the tensor must match the header's
        ``checksum`` (format version 2; version 1 files carry none and load unverified),
        ``hook_name`` must be block ``layer``'s residual stream, a recorded
        ``meta['metrics']['resid_norm']`` a finite number ``>= 0``, and the readable JSON
        beside the file, if any, must describe the same vector.

        Raises:
            FileNotFoundError: no such file.
            ValueError: the file is truncated, corrupt (checksum), not an interp_steer vector
                or of an unknown ``format_version``; a field fails a check above; the JSON
                beside it describes another vector.

        >>> import tempfile, pathlib
        >>> v = SteeringVector(torch.ones(4), layer=1)
        >>> path = v.save(pathlib.Path(tempfile.mkdtemp()) / "v")
        >>> SteeringVector.load(path).checksum == v.checksum
        True
        """
        target = _with_suffix(Path(path))
        header, tensors = read_safetensors(target, what="steering vector")
        if header.get("format") != FORMAT or set(tensors) != {"direction"}:
            raise ValueError(
                f"{target} is a safetensors file but not an interp_steer steering vector "
                f"(expected metadata format={FORMAT!r} and one tensor 'direction')"
            )
        version = header.get("format_version")
        if version not in READ_VERSIONS:
            raise ValueError(
                f"{target}: format_version {version!r} is not one this version of "
                f"interp_steer reads ({', '.join(READ_VERSIONS)})"
            )
        _check_checksum(target, header, tensor_checksum(tensors["direction"]))
        try:
            fields = {
                "layer": int(header["layer"]),
                "hook_name": header["hook_name"],
                "method": header["method"],
                "source_lang": json.loads(header["source_lang"]),
                "target_lang": json.loads(header["target_lang"]),
                "model_name": json.loads(header["model_name"]),
                "meta": json.loads(header["meta"]),
            }
        except (KeyError, ValueError) as err:  # JSONDecodeError is a ValueError
            raise ValueError(f"{target} has damaged steering-vector metadata: {err}") from None
        if not isinstance(fields["meta"], dict):
            raise ValueError(f"{target}: field 'meta' is not a JSON object")
        try:
            check_hook(fields["layer"], fields["hook_name"])
            check_resid_norm(fields["meta"])
            vector = cls(direction=tensors["direction"], **fields)
        except ValueError as err:
            raise ValueError(f"{target}: {err}") from None
        _check_sidecar(target, header, fields["meta"], vector.checksum)
        return vector


def _with_suffix(path: Path) -> Path:
    return path if path.suffix == ".safetensors" else path.with_name(path.name + ".safetensors")


def tensor_checksum(tensor: torch.Tensor) -> str:
    """``sha256:<hex>`` of a tensor's bytes (its own dtype, little-endian, C order).

    >>> tensor_checksum(torch.zeros(2))[:15]
    'sha256:af5570f5'
    """
    raw = tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8)
    return "sha256:" + hashlib.sha256(raw.numpy().tobytes()).hexdigest()


def vector_summary(vector: SteeringVector, name: str | None = None) -> dict[str, Any]:
    """The provenance of a vector kept in a result (with a hash of its direction).

    ``name``, when given, comes first: the label a figure or table shows for the vector.

    >>> v = SteeringVector(torch.ones(4), layer=1, method="mean_diff", source_lang="de")
    >>> s = vector_summary(v, name="de-L1")
    >>> s["name"], s["layer"], s["norm"], s["sha1"]
    ('de-L1', 1, 2.0, 'df87141c4e5d8879')
    """
    raw = vector.direction.detach().float().cpu().contiguous().numpy().tobytes()
    return {
        **({} if name is None else {"name": name}),
        "method": vector.method,
        "layer": vector.layer,
        "hook_name": vector.hook_name,
        "norm": round(vector.norm, 6),
        "source_lang": vector.source_lang,
        "target_lang": vector.target_lang,
        "model_name": vector.model_name,
        "sha1": hashlib.sha1(raw).hexdigest()[:16],
    }


def steering_label(
    summary: Mapping[str, Any] | None, alpha: float | None, positions: str | None = None
) -> str | None:
    """``"vector <name> at layer <l>, α = <alpha>"`` from a result's :func:`vector_summary`.

    Without a ``name`` the vector is named by its method and languages; positions other
    than ``"all"`` are added in parentheses. None without a summary.

    >>> steering_label({"method": "pca", "source_lang": "sw", "layer": 4}, 0.5, "last")
    'vector pca sw→? at layer 4, α = 0.5 (last positions)'
    >>> steering_label({"name": "zh-mean_diff", "layer": 4}, 2.0), steering_label(None, 1.0)
    ('vector zh-mean_diff at layer 4, α = 2', None)
    """
    if not isinstance(summary, Mapping):
        return None
    name = summary.get("name") or (
        f"{summary.get('method') or 'custom'} "
        f"{summary.get('source_lang') or '?'}→{summary.get('target_lang') or '?'}"
    )
    strength = "?" if alpha is None else f"{alpha:.4g}"
    label = f"vector {name} at layer {summary.get('layer')}, α = {strength}"
    return label if positions in (None, "all") else f"{label} ({positions} positions)"


def check_hook(layer: int, hook_name: str) -> None:
    """Raise ``ValueError`` unless ``hook_name`` is block ``layer``'s residual stream.

    A vector is added to ``blocks.{layer}.hook_resid_pre``, ``_mid`` or ``_post`` (or the
    bridge's names for pre and post, ``blocks.{layer}.hook_in`` and ``hook_out``).

    >>> check_hook(2, "blocks.2.hook_resid_post")
    >>> check_hook(2, "blocks.3.hook_resid_post")
    Traceback (most recent call last):
    ...
    ValueError: field 'layer' is 2 but field 'hook_name' 'blocks.3.hook_resid_post' is in block 3
    """
    match = RESIDUAL_HOOK.fullmatch(hook_name)
    if match is None:
        raise ValueError(
            f"field 'hook_name' {hook_name!r} is not a residual-stream hook point "
            "(blocks.L.hook_resid_pre, _mid or _post): a d_model vector is not added there"
        )
    if int(match.group(1)) != layer:
        raise ValueError(
            f"field 'layer' is {layer} but field 'hook_name' {hook_name!r} is in block "
            f"{match.group(1)}"
        )


def check_resid_norm(meta: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` if ``meta['metrics']['resid_norm']`` is there but not a finite ``>= 0``.

    >>> check_resid_norm({"metrics": {"resid_norm": -1.0}})
    Traceback (most recent call last):
    ...
    ValueError: field 'meta.metrics.resid_norm' must be a finite number >= 0, got -1.0
    """
    metrics = meta.get("metrics")
    if not isinstance(metrics, Mapping) or metrics.get("resid_norm") is None:
        return
    value = metrics["resid_norm"]
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(
            f"field 'meta.metrics.resid_norm' must be a finite number >= 0, got {value!r}"
        )


def _check_checksum(target: Path, header: Mapping[str, str], actual: str) -> None:
    """The header's checksum (required from format version 2) matches the tensor."""
    stored = header.get("checksum")
    if stored is None:
        if header.get("format_version") == "1":
            return  # version 1 files carry none: loaded unverified
        raise ValueError(f"{target}: field 'checksum' is missing (format_version 2 needs it)")
    if stored != actual:
        raise ValueError(
            f"{target}: field 'checksum' does not match the tensor (recorded {stored}, the "
            f"tensor hashes to {actual}): the file is corrupt"
        )


def _check_sidecar(
    target: Path, header: Mapping[str, str], meta: Mapping[str, Any], actual: str
) -> None:
    """The readable JSON beside ``target`` describes the same vector (when it can tell).

    A version 1 pair (neither file has a checksum) is not compared; a missing JSON is
    fine (the safetensors file is complete on its own).
    """
    sidecar = target.with_suffix(".json")
    if not sidecar.is_file():
        return
    try:
        info = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(
            f"{sidecar} is not readable JSON ({err}); delete it to load {target} alone"
        ) from None
    if not isinstance(info, dict):
        raise ValueError(f"{sidecar} is not a JSON object; delete it to load {target} alone")
    if "checksum" not in info and header.get("format_version") == "1":
        return
    wanted: dict[str, Any] = {"checksum": actual, "format_version": header["format_version"]}
    wanted |= {k: v for k, v in header.items() if k not in wanted} | {"meta": meta}
    for key, value in wanted.items():
        if info.get(key) != value:
            raise ValueError(
                f"{sidecar}: field {key!r} is {info.get(key)!r} but {target} has {value!r}: "
                "the two files describe different vectors (a save interrupted between "
                "them?); save the vector again, or delete the JSON to load the tensor alone"
            )


def alpha_for_ratio(vector: SteeringVector, ratio: float) -> float:
    """Return ``alpha`` with ``‖alpha v‖ / ‖h‖ = ratio`` (``‖h‖`` from the fit's metrics).

    >>> import torch
    >>> v = SteeringVector(torch.ones(4), layer=0, meta={"metrics": {"resid_norm": 10.0}})
    >>> alpha_for_ratio(v, 0.5)
    2.5
    """
    metrics = dict(vector.meta.get("metrics", {}) or {})
    resid = metrics.get("resid_norm")
    if resid is None or not math.isfinite(float(resid)) or float(resid) < 0:
        raise ValueError(
            "the vector records no residual norm (meta['metrics']['resid_norm']); fit it "
            "with interp_steer.fitting.fit or pass absolute alphas"
        )
    if vector.norm == 0:
        raise ValueError("the vector is zero: no alpha reaches a non-zero ratio")
    alpha = float(ratio) * float(resid) / vector.norm
    if not math.isfinite(alpha):
        raise ValueError(f"ratio {ratio!r} gives a non-finite alpha ({alpha}); use a smaller ratio")
    return alpha


__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "SteeringVector",
    "alpha_for_ratio",
    "check_hook",
    "check_resid_norm",
    "steering_label",
    "tensor_checksum",
    "vector_summary",
]
