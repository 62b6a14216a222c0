"""The on-disk cache of :func:`~interp_steer.activations.collect_activations`.

Each entry is one safetensors file, written atomically, named and checked by a key: a
hash of the model (name, dtype, :func:`model_fingerprint` of its weights and tokenizer),
the texts, the layers, the pooling, BOS handling, the hook and the cache format's version;
not the batch size, which the activations do not depend on. An unreadable or mismatched
file is ignored with a warning (and the activations are collected again).

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

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from interp_steer.activations.pooled import Activations
from interp_steer.models.backend import Model, own_parameters
from interp_steer.models.loading import model_name
from interp_steer.storage import atomic_write

_CACHE_FORMAT = "interp_steer.Activations"
_CACHE_VERSION = "2"  # 2: the fingerprint samples every parameter
_SAMPLES = 256
_BITS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def model_fingerprint(model: Model) -> str:
    """A cheap fingerprint of the weights: a hash of a sample of every parameter.

    Each parameter contributes its name, shape, dtype, a checksum of every value (the
    wrap-around integer sum of its bits: exact, whatever the thread count) and up to 256
    values spread evenly over it, so a fine-tune that keeps the embeddings, or changes a
    single weight, still gets another fingerprint; the tokenizer's size is hashed too. One
    pass over the weights: a fraction of a second for a 270M model on a CPU.

    >>> from interp_steer import load_model
    >>> len(model_fingerprint(load_model("tiny")))
    16
    """
    digest = hashlib.sha256(f"vocab {len(model.tokenizer)}".encode())
    with torch.no_grad():
        for name, param in own_parameters(model):
            flat = param.detach().reshape(-1)
            step = max(1, flat.numel() // _SAMPLES)
            sample = flat[::step][:_SAMPLES].float().cpu().numpy().tobytes()
            bits = _BITS[flat.element_size()]
            total = int(flat.view(bits).sum(dtype=bits))  # integer: order-independent
            digest.update(f"{name} {tuple(param.shape)} {param.dtype} {total}".encode())
            digest.update(sample)
    return digest.hexdigest()[:16]


def cache_key(
    model: Model,
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
        "weights": model_fingerprint(model),
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
