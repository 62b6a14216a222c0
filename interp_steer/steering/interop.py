"""Exchange steering vectors with neighbouring tools.

* **llama.cpp / repeng control vectors** (GGUF, architecture ``controlvector``): one tensor
  ``direction.{k}`` of shape ``(n_embd,)`` per layer, added to the output of block ``k``,
  which is this package's ``blocks.{k}.hook_resid_post``. llama.cpp rejects ``k = 0``
  (it reserves index 0), so a layer-0 vector cannot be exported.
* **steering-vectors** (``steering_vectors.SteeringVector.layer_activations``): a plain
  ``{layer: tensor}`` dict.
"""

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from interp_steer.steering.vectors import SteeringVector
from interp_steer.storage import atomic_write

GGUF_ARCH = "controlvector"


def _as_list(vectors: SteeringVector | Sequence[SteeringVector]) -> list[SteeringVector]:
    items = [vectors] if isinstance(vectors, SteeringVector) else list(vectors)
    if not items:
        raise ValueError("expected at least one SteeringVector")
    layers = [v.layer for v in items]
    if len(set(layers)) != len(layers):
        raise ValueError(f"one vector per layer is expected, got layers {layers}")
    for v in items:
        if v.hook_name != f"blocks.{v.layer}.hook_resid_post":
            raise ValueError(
                f"only residual-stream vectors (blocks.L.hook_resid_post) can be exchanged, "
                f"got {v.hook_name!r}"
            )
    return sorted(items, key=lambda v: v.layer)


def to_gguf(
    vectors: SteeringVector | Sequence[SteeringVector],
    path: str | os.PathLike[str],
    *,
    model_hint: str | None = None,
) -> Path:
    """Write vectors as a llama.cpp / repeng control-vector GGUF file (atomically).

    Args:
        vectors: One vector or one per layer; layers must be ≥ 1 (llama.cpp's rule).
        path: The ``.gguf`` file to write.
        model_hint: Architecture hint stored in the file (llama.cpp reads e.g. ``"gemma3"``);
            defaults to the vectors' ``model_name``.

    >>> import tempfile, pathlib
    >>> v = SteeringVector(torch.ones(8), layer=3, model_name="tiny")
    >>> out = to_gguf(v, pathlib.Path(tempfile.mkdtemp()) / "cv.gguf")
    >>> [(w.layer, w.norm) for w in from_gguf(out)]
    [(3, 2.8284270763397217)]
    """
    try:
        import gguf  # optional: the `models` extra
    except ImportError:
        raise ValueError("GGUF export needs the `gguf` package: pip install gguf") from None
    items = _as_list(vectors)
    if items[0].layer == 0:
        raise ValueError("llama.cpp control vectors cannot address layer 0; use layer >= 1")
    hint = model_hint or items[0].model_name or "unknown"

    def write(tmp: str) -> None:
        writer = gguf.GGUFWriter(tmp, GGUF_ARCH)
        writer.add_string(f"{GGUF_ARCH}.model_hint", hint)
        writer.add_uint32(f"{GGUF_ARCH}.layer_count", len(items))
        for v in items:
            data = v.direction.detach().to("cpu", torch.float32).numpy()
            writer.add_tensor(f"direction.{v.layer}", np.ascontiguousarray(data))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()

    return atomic_write(path, write)


def from_gguf(
    path: str | os.PathLike[str], *, method: str = "gguf", model_name: str | None = None
) -> list[SteeringVector]:
    """Read a control-vector GGUF file (ours, repeng's or llama.cpp's) into vectors.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a GGUF control vector.
    """
    try:
        import gguf  # optional: the `models` extra
    except ImportError:
        raise ValueError("GGUF import needs the `gguf` package: pip install gguf") from None
    target = Path(path)
    if not target.is_file():
        raise FileNotFoundError(f"no GGUF file at {target}")
    try:
        reader = gguf.GGUFReader(str(target))
    except Exception as err:  # gguf raises several types on bad files
        raise ValueError(f"{target} is not a readable GGUF file: {err}") from None
    arch_field = reader.fields.get("general.architecture")
    arch = _field_str(arch_field) if arch_field is not None else None
    if arch != GGUF_ARCH:
        raise ValueError(f"{target} is a GGUF file for {arch!r}, not a control vector")
    hint_field = reader.fields.get(f"{GGUF_ARCH}.model_hint")
    hint = _field_str(hint_field) if hint_field is not None else None
    out = []
    for tensor in reader.tensors:
        if not tensor.name.startswith("direction."):
            continue
        layer = int(tensor.name.split(".", 1)[1])
        data = torch.from_numpy(np.array(tensor.data, dtype=np.float32).reshape(-1))
        out.append(
            SteeringVector(
                data,
                layer=layer,
                method=method,
                model_name=model_name or hint,
                meta={"imported_from": str(target), "model_hint": hint},
            )
        )
    if not out:
        raise ValueError(f"{target} holds no direction.<layer> tensors")
    return sorted(out, key=lambda v: v.layer)


def _field_str(field: Any) -> str:
    return bytes(field.parts[field.data[0]]).decode("utf-8")


def to_layer_dict(vectors: SteeringVector | Sequence[SteeringVector]) -> dict[int, torch.Tensor]:
    """Return ``{layer: direction}``, the format of steering-vectors' ``layer_activations``.

    >>> to_layer_dict(SteeringVector(torch.ones(2), layer=4))
    {4: tensor([1., 1.])}
    """
    return {v.layer: v.direction for v in _as_list(vectors)}


def from_layer_dict(
    layer_activations: Mapping[int, torch.Tensor], **fields: Any
) -> list[SteeringVector]:
    """Build vectors from a ``{layer: tensor}`` dict (e.g. steering-vectors' vectors).

    Args:
        layer_activations: Directions keyed by layer.
        **fields: Other ``SteeringVector`` fields shared by all (``method``, ``model_name``,
            ``source_lang``, ...).

    >>> [v.layer for v in from_layer_dict({2: torch.ones(3), 1: torch.zeros(3)})]
    [1, 2]
    """
    if not layer_activations:
        raise ValueError("expected a non-empty {layer: tensor} dict")
    return [
        SteeringVector(torch.as_tensor(d).reshape(-1), layer=int(layer), **fields)
        for layer, d in sorted(layer_activations.items())
    ]
