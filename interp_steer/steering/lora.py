"""A LoRA adapter as a result, and ``apply_lora``: its merged weights inside a ``with`` block.

A :class:`LoraAdapter` holds, per adapted weight ``W`` (``out x in``), the two LoRA factors
``A`` (``rank x in``) and ``B`` (``out x rank``) as float32 arrays; the adapted weight is
``W + scaling * B @ A`` with ``scaling = alpha / rank`` (peft's convention, without
rsLoRA). :func:`apply_lora` adds those deltas to the model's weights through
:func:`~interp_steer.models.weight_deltas` (merged, so a forward pass costs what it costs
without the adapter) and restores them exactly after the block; ``steer`` works inside it
as on the plain model. Adapters are trained by :func:`~interp_steer.fitting.fit_lora`.
"""

import hashlib
import json
import math
import os
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from transformer_lens.model_bridge import TransformerBridge

from interp_steer.models.adapters import weight_deltas, weights_fingerprint
from interp_steer.models.loading import model_name
from interp_steer.storage import json_meta, read_safetensors, write_tensors

FORMAT = "interp_steer.LoraAdapter"
FORMAT_VERSION = "1"
_A, _B = "lora_A", "lora_B"  # tensor keys: "<lora_A|lora_B>/<parameter name>"


@dataclass(frozen=True)
class LoraAdapter:
    """LoRA factors per adapted weight, with the model they were trained on.

    Attributes:
        lora_a: Plain Hugging Face parameter name (``model.layers.3.self_attn.q_proj.
            weight``) -> ``A``, float32, ``(rank, in_features)``.
        lora_b: The same names -> ``B``, float32, ``(out_features, rank)``.
        rank: ``r``, the inner dimension of every pair.
        alpha: LoRA's ``alpha``; the delta is ``alpha / rank * B @ A``.
        target_modules: The module names adapted (``("q_proj", "v_proj")``); every
            parameter name's module is one of them.
        model_name: The model it was trained on; :func:`apply_lora` refuses another.
        model_fingerprint: :func:`~interp_steer.models.weights_fingerprint` of the base
            weights it adapts, as they were in training; :func:`apply_lora` warns when
            the model's differ.
        meta: Training settings and metrics (JSON-serialisable).

    >>> a = {"model.layers.0.self_attn.q_proj.weight": np.ones((2, 4), np.float32)}
    >>> b = {"model.layers.0.self_attn.q_proj.weight": np.ones((3, 2), np.float32)}
    >>> adapter = LoraAdapter(a, b, rank=2, alpha=4.0, target_modules=("q_proj",))
    >>> adapter.scaling, adapter.to_frame()[["out_features", "in_features", "rank"]].values.tolist()
    (2.0, [[3, 4, 2]])
    """

    lora_a: Mapping[str, np.ndarray]
    lora_b: Mapping[str, np.ndarray]
    rank: int
    alpha: float
    target_modules: tuple[str, ...]
    model_name: str | None = None
    model_fingerprint: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1:
            raise ValueError(f"rank must be a positive int, got {self.rank!r}")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, int | float):
            raise ValueError(f"alpha must be a number, got {self.alpha!r}")
        if not (math.isfinite(self.alpha) and self.alpha > 0):
            raise ValueError(f"alpha must be a positive finite number, got {self.alpha}")
        object.__setattr__(self, "alpha", float(self.alpha))
        targets = tuple(self.target_modules)
        if not targets or not all(isinstance(t, str) and t for t in targets):
            raise ValueError(f"target_modules must be non-empty names, got {targets!r}")
        object.__setattr__(self, "target_modules", targets)
        if not isinstance(self.lora_a, Mapping) or not isinstance(self.lora_b, Mapping):
            raise ValueError("lora_a and lora_b must map parameter names to arrays")
        if not self.lora_a or set(self.lora_a) != set(self.lora_b):
            raise ValueError(
                "lora_a and lora_b must name the same, non-empty set of parameters; "
                f"only in lora_a: {sorted(set(self.lora_a) - set(self.lora_b))}, "
                f"only in lora_b: {sorted(set(self.lora_b) - set(self.lora_a))}"
            )
        a_out, b_out = {}, {}
        for name in sorted(self.lora_a):
            a, b = _array(name, "A", self.lora_a[name]), _array(name, "B", self.lora_b[name])
            if a.shape[0] != self.rank or b.shape[1] != self.rank:
                raise ValueError(
                    f"{name}: A must be (rank, in) and B (out, rank) with rank {self.rank}, "
                    f"got A {a.shape} and B {b.shape}"
                )
            module = name.rsplit(".", 2)[-2] if name.count(".") >= 1 else ""
            if not name.endswith(".weight") or module not in targets:
                raise ValueError(
                    f"{name!r} is not the weight of one of the target modules {targets}"
                )
            a_out[name], b_out[name] = a, b
        object.__setattr__(self, "lora_a", a_out)
        object.__setattr__(self, "lora_b", b_out)
        object.__setattr__(self, "meta", dict(self.meta))

    @property
    def scaling(self) -> float:
        """``alpha / rank``: the factor of ``B @ A`` in every delta."""
        return self.alpha / self.rank

    @property
    def names(self) -> tuple[str, ...]:
        """The adapted parameters' names, sorted."""
        return tuple(self.lora_a)

    @property
    def checksum(self) -> str:
        """``sha256:<hex>`` of every factor's bytes, names, shapes and ``alpha``.

        What :func:`apply_lora` records as the adapter's fingerprint while it is active.
        """
        digest = hashlib.sha256(f"rank {self.rank} alpha {self.alpha!r}\n".encode())
        for name in self.names:
            for key, arr in ((_A, self.lora_a[name]), (_B, self.lora_b[name])):
                digest.update(f"{key}/{name} {arr.shape}\n".encode())
                digest.update(np.ascontiguousarray(arr, dtype="<f4").tobytes())
        return "sha256:" + digest.hexdigest()

    def delta(self, name: str) -> np.ndarray:
        """``scaling * B @ A`` for one parameter, float32, ``(out_features, in_features)``."""
        return (np.float32(self.scaling) * (self.lora_b[name] @ self.lora_a[name])).astype(
            np.float32
        )

    def to_frame(self) -> pd.DataFrame:
        """One row per adapted weight, with the Frobenius norm of its delta.

        Columns: ``name``, ``module``, ``out_features``, ``in_features``, ``rank``,
        ``delta_norm``.
        """
        rows = [
            {
                "name": name,
                "module": name.rsplit(".", 2)[-2],
                "out_features": int(self.lora_b[name].shape[0]),
                "in_features": int(self.lora_a[name].shape[1]),
                "rank": self.rank,
                "delta_norm": float(np.linalg.norm(self.delta(name).astype(np.float64))),
            }
            for name in self.names
        ]
        return pd.DataFrame(rows)

    # -- persistence ----------------------------------------------------------------
    def save(
        self, path: str | os.PathLike[str], *, root: str | os.PathLike[str] | None = None
    ) -> Path:
        """Write ``<path>.safetensors`` (factors + metadata) and a readable ``<path>.json``.

        Both are written atomically (the tensors renamed into place last), as
        :meth:`~interp_steer.steering.SteeringVector.save` does; :meth:`load` gives back a
        bit-identical adapter.

        Args:
            path: Where to write (``.safetensors`` is added when missing).
            root: The run folder the files belong to: refuse to write outside it.

        Returns:
            The path of the safetensors file.
        """
        header = self._header()
        tensors = {f"{_A}/{n}": self.lora_a[n] for n in self.names}
        tensors |= {f"{_B}/{n}": self.lora_b[n] for n in self.names}
        readable: dict[str, Any] = {
            k: json.loads(v) if k in _JSON_FIELDS else v for k, v in header.items()
        }
        readable["modules"] = self.to_frame().drop(columns="module").to_dict("records")
        target, _ = write_tensors(_with_suffix(Path(path)), tensors, header, readable,
                                  framework="np", root=root)  # fmt: skip
        return target

    def _header(self) -> dict[str, str]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "rank": json.dumps(self.rank),
            "alpha": json.dumps(self.alpha),
            "target_modules": json.dumps(list(self.target_modules)),
            "model_name": json.dumps(self.model_name),
            "model_fingerprint": json.dumps(self.model_fingerprint),
            "meta": json_meta(self.meta),
            "checksum": self.checksum,
        }

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "LoraAdapter":
        """Read an adapter written by :meth:`save` (bit-exact; never unpickles).

        Raises:
            FileNotFoundError: no such file.
            ValueError: not a readable safetensors file, not an interp_steer LoRA adapter,
                an unknown ``format_version``, damaged metadata, or factors that do not
                match the recorded checksum.

        >>> import tempfile, pathlib
        >>> name = "model.layers.0.self_attn.q_proj.weight"
        >>> a, b = {name: np.ones((2, 4), np.float32)}, {name: np.ones((3, 2), np.float32)}
        >>> adapter = LoraAdapter(a, b, rank=2, alpha=4.0, target_modules=("q_proj",))
        >>> path = adapter.save(pathlib.Path(tempfile.mkdtemp()) / "lora")
        >>> LoraAdapter.load(path).checksum == adapter.checksum
        True
        """
        target = _with_suffix(Path(path))
        header, tensors = read_safetensors(target, what="LoRA adapter", framework="np")
        if header.get("format") != FORMAT:
            raise ValueError(
                f"{target} is a safetensors file but not an interp_steer LoRA adapter "
                f"(expected metadata format={FORMAT!r})"
            )
        if header.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{target}: format_version {header.get('format_version')!r} is not one this "
                f"version of interp_steer reads ({FORMAT_VERSION})"
            )
        lora_a: dict[str, np.ndarray] = {}
        lora_b: dict[str, np.ndarray] = {}
        for key, arr in tensors.items():
            kind, _, name = key.partition("/")
            if kind not in (_A, _B) or not name:
                raise ValueError(f"{target}: unexpected tensor {key!r}")
            (lora_a if kind == _A else lora_b)[name] = arr
        try:
            fields = {k: json.loads(header[k]) for k in _JSON_FIELDS}
        except (KeyError, ValueError) as err:  # JSONDecodeError is a ValueError
            raise ValueError(f"{target} has damaged LoRA adapter metadata: {err}") from None
        try:
            adapter = cls(
                lora_a,
                lora_b,
                rank=fields["rank"],
                alpha=fields["alpha"],
                target_modules=tuple(fields["target_modules"]),
                model_name=fields["model_name"],
                model_fingerprint=fields["model_fingerprint"],
                meta=fields["meta"],
            )
        except (TypeError, ValueError) as err:
            raise ValueError(f"{target}: {err}") from None
        if header.get("checksum") != adapter.checksum:
            raise ValueError(
                f"{target}: field 'checksum' does not match the factors (recorded "
                f"{header.get('checksum')}, they hash to {adapter.checksum}): the file is corrupt"
            )
        return adapter


_JSON_FIELDS = ("rank", "alpha", "target_modules", "model_name", "model_fingerprint", "meta")


def _array(name: str, which: str, value: Any) -> np.ndarray:
    """``value`` as a C-contiguous float32 2-D array, finite, or a ``ValueError``."""
    if isinstance(value, torch.Tensor):
        value = value.detach().to("cpu", torch.float32).numpy()
    arr = np.asarray(value)
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{name}: {which} must be a 2-D float array, got {arr.dtype} {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: {which} has NaN or infinite values")
    return arr


def _with_suffix(path: Path) -> Path:
    return path if path.suffix == ".safetensors" else path.with_name(path.name + ".safetensors")


@contextmanager
def apply_lora(model: TransformerBridge, adapter: LoraAdapter) -> Iterator[TransformerBridge]:
    """Inside the block, ``model`` computes with the adapter merged into its weights.

    Each adapted weight becomes ``W + scaling * B @ A`` (the delta computed in float32,
    added in float32 and cast to ``W``'s dtype, on its device); after the block, also one
    that raised, every weight is bit-identical to before
    (:func:`~interp_steer.models.weight_deltas`). While it is active,
    :func:`~interp_steer.models.active_adapters` lists it (``lora r=<rank> <modules>``
    and :attr:`LoraAdapter.checksum`), and ``evaluate`` and run folders record it.

    Raises:
        ValueError: not a LoraAdapter; trained on another model (by name); a parameter
            the model lacks or of another shape; the same adapter already applied.

    Warns:
        UserWarning: the model's base weights differ from those it was trained on
            (``model_fingerprint``: another checkpoint or dtype, or another adapter
            applied already).

    >>> from interp_steer import load_model
    >>> model = load_model("tiny")
    >>> name = "model.layers.0.self_attn.q_proj.weight"
    >>> zero = LoraAdapter({name: np.ones((2, 64), np.float32)}, {name: np.zeros((64, 2),
    ...     np.float32)}, rank=2, alpha=2.0, target_modules=("q_proj",), model_name="tiny")
    >>> ids = model.to_tokens("Hallo")
    >>> before = model(ids)
    >>> with apply_lora(model, zero):  # B = 0: the delta is zero, the logits unchanged
    ...     bool(torch.equal(model(ids), before))
    True
    """
    if not isinstance(adapter, LoraAdapter):
        raise ValueError(f"expected a LoraAdapter, got {type(adapter).__name__}")
    name = model_name(model)
    if adapter.model_name and name != "unknown" and adapter.model_name != name:
        raise ValueError(
            f"the adapter was trained on {adapter.model_name!r} but the model is {name!r}"
        )
    deltas = {n: torch.from_numpy(adapter.delta(n)) for n in adapter.names}
    try:
        base = weights_fingerprint(model, adapter.names)
    except KeyError as err:
        raise ValueError(f"the adapter does not fit this model: {err.args[0]}") from None
    if adapter.model_fingerprint and base != adapter.model_fingerprint:
        warnings.warn(
            f"the adapter was trained on other base weights of its modules (fingerprint "
            f"{adapter.model_fingerprint}, the model's are {base}): another checkpoint or "
            "dtype, or another adapter applied already",
            stacklevel=3,
        )
    label = f"lora r={adapter.rank} {'+'.join(adapter.target_modules)}"
    with weight_deltas(model, deltas, name=label, fingerprint=adapter.checksum):
        yield model


__all__ = ["FORMAT", "FORMAT_VERSION", "LoraAdapter", "apply_lora"]
