"""The on-disk cache of :func:`~interp_steer.activations.collect_activations`.

Each entry is one safetensors file, written atomically, named and checked by a key: a
hash of the model (name, dtype, a fingerprint of its embedding weights), the texts, the
layers, the pooling, BOS handling and the hook. An unreadable or mismatched file is
ignored with a warning (and the activations are collected again).

Example:
    >>> import tempfile, torch
    >>> from interp_steer.activations import Activations
    >>> acts = Activations((0,), "last", {0: torch.ones(2, 4)}, "m", 2, norms={0: torch.ones(2)})
    >>> path = Path(tempfile.mkdtemp()) / "a.safetensors"
    >>> write_cache(path, "key", acts)
    >>> read_cache(path, "key").data[0].tolist() == acts.data[0].tolist()
    True
"""

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from transformer_lens.model_bridge import TransformerBridge

from interp_steer.activations.pooled import Activations
from interp_steer.models.loading import model_name
from interp_steer.storage import atomic_write

_CACHE_FORMAT = "interp_steer.Activations"
_CACHE_VERSION = "1"


def _fingerprint(model: TransformerBridge) -> str:
    """A cheap fingerprint of the weights: a hash of a slice of the input embeddings."""
    hf: Any = model.original_model
    weight = hf.get_input_embeddings().weight
    sample = weight.detach().flatten()[:4096].float().cpu().numpy().tobytes()
    return hashlib.sha256(sample).hexdigest()[:16]


def cache_key(
    model: TransformerBridge,
    texts: list[str],
    layers: tuple[int, ...],
    pooling: str,
    exclude_bos: bool,
    hook: str,
) -> str:
    """The key of one collection: a SHA-256 hex digest of everything its result depends on.

    >>> from interp_steer import load_model
    >>> model = load_model("tiny")
    >>> key = cache_key(model, ["a", "b"], (0,), "mean", True, "blocks.{layer}.hook_resid_post")
    >>> len(key), key == cache_key(model, ["a b"], (0,), "mean", True, "x")
    (64, False)
    """
    header = {
        "version": _CACHE_VERSION,
        "model": model_name(model),
        "dtype": str(model.cfg.dtype),
        "weights": _fingerprint(model),
        "hook": hook,
        "layers": list(layers),
        "pooling": pooling,
        "exclude_bos": exclude_bos,
        "n": len(texts),
    }
    digest = hashlib.sha256(json.dumps(header, sort_keys=True).encode())
    for text in texts:
        raw = text.encode("utf-8", "surrogatepass")
        digest.update(len(raw).to_bytes(8, "little"))
        digest.update(raw)
    return digest.hexdigest()


def write_cache(path: Path, key: str, acts: Activations) -> None:
    """Write ``acts`` to ``path`` (atomically) under ``key`` (see the module example)."""
    tensors = {f"data.{k}": v.contiguous() for k, v in acts.data.items()}
    tensors.update({f"norms.{k}": v.contiguous() for k, v in acts.norms.items()})
    meta = {
        "format": _CACHE_FORMAT,
        "key": key,
        "layers": json.dumps(list(acts.layers)),
        "pooling": acts.pooling,
        "model_name": acts.model_name,
        "n": str(acts.n),
        "lengths": json.dumps(acts.lengths),
        "exclude_bos": json.dumps(acts.exclude_bos),
    }
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def read_cache(path: Path, key: str) -> Activations | None:
    """Read the activations cached at ``path`` under ``key``; None if missing or unusable.

    A file that cannot be read, or was written under another key, gives a warning.

    >>> read_cache(Path("/nonexistent.safetensors"), "key") is None
    True
    """
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if meta.get("format") != _CACHE_FORMAT or meta.get("key") != key:
            raise ValueError("not the activations this key names")
        tensors = load_file(str(path))
        layers = tuple(json.loads(meta["layers"]))
        lengths = json.loads(meta["lengths"])
        return Activations(
            layers=layers,
            pooling=meta["pooling"],
            data={k: tensors[f"data.{k}"] for k in layers},
            model_name=meta["model_name"],
            n=int(meta["n"]),
            lengths=None if lengths is None else tuple(lengths),
            norms={k: tensors[f"norms.{k}"] for k in layers},
            exclude_bos=json.loads(meta["exclude_bos"]),
        )
    except (SafetensorError, OSError, ValueError, KeyError, TypeError) as err:
        warnings.warn(f"ignoring unreadable activation cache {path}: {err}", stacklevel=3)
        return None
