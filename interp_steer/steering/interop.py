"""Exchange steering vectors with neighbouring tools.

* **llama.cpp / repeng control vectors** (GGUF, architecture ``controlvector``): one tensor
  ``direction.{k}`` of shape ``(n_embd,)`` per layer, added to the output of block ``k``,
  which is this package's ``blocks.{k}.hook_resid_post``. llama.cpp rejects ``k = 0``
  (it reserves index 0), so a layer-0 vector cannot be exported.
* **steering-vectors** (``steering_vectors.SteeringVector.layer_activations``): a plain
  ``{layer: tensor}`` dict.
* **SAELens** sparse autoencoders (or any object shaped like one: ``W_dec`` of shape
  ``(d_sae, d_model)``, ``W_enc``, ``b_enc``, optionally ``b_dec``, and the hook name in
  ``cfg.metadata.hook_name`` (SAELens 6.x) or ``cfg.hook_name``): a decoder row as a
  vector (:func:`from_sae_feature`), and a vector read in the SAE's features
  (:func:`sae_feature_scores`). Nothing here imports ``sae_lens``.
"""

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from interp_steer.models.backend import BASIS_FLAGS
from interp_steer.steering.vectors import RESIDUAL_HOOK, SteeringVector
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


# ----------------------------------------------------------------- SAELens interop

_BRIDGE_HOOKS = {"hook_in": "hook_resid_pre", "hook_out": "hook_resid_post"}


def _get(obj: Any, key: str) -> Any:
    """``obj.key`` or ``obj[key]``; None when neither is there (SAELens metadata: None too)."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(key)
    return getattr(obj, key, None)


def _sae_hook_name(sae: Any) -> str | None:
    """The SAE's hook point: ``cfg.metadata.hook_name`` (SAELens 6.x), else ``cfg.hook_name``."""
    cfg = _get(sae, "cfg")
    for name in (_get(_get(cfg, "metadata"), "hook_name"), _get(cfg, "hook_name")):
        if isinstance(name, str) and name:
            return name
    return None


def _canonical_hook(name: str) -> str:
    """The HookedTransformer name of a residual hook (the bridge's ``hook_in``/``hook_out``)."""
    block, _, point = name.rpartition(".")
    return f"{block}.{_BRIDGE_HOOKS.get(point, point)}"


def _tensor(sae: Any, name: str, ndim: int) -> torch.Tensor:
    value = _get(sae, name)
    if not isinstance(value, torch.Tensor) or value.ndim != ndim:
        shape = getattr(value, "shape", type(value).__name__)
        raise ValueError(
            f"expected an SAE with a {ndim}-D tensor `{name}` (SAELens layout: W_dec "
            f"(d_sae, d_model), W_enc (d_model, d_sae), b_enc (d_sae,)), got {shape}"
        )
    return value.detach()


def _sae_basis(sae: Any, given: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The weight basis the SAE was trained in, as ``SteeringVector.meta`` records it.

    SAELens 6.x records ``cfg.metadata.model_from_pretrained_kwargs``: the keyword
    arguments its trainer passed to ``HookedTransformer.from_pretrained_no_processing``
    (so a flag not given is off) — or to ``from_pretrained`` of a Hugging Face class
    (``model_class_name``), which processes nothing. SAEs trained on a Hugging Face
    model's hidden states outside SAELens (Gemma Scope 2) record ``hf_hook_name``
    instead: unprocessed too.
    """
    if given is not None:
        unknown = sorted(set(given) - set(BASIS_FLAGS) - {"model_class", "tl_version"})
        named = [flag for flag in BASIS_FLAGS if flag in given]
        if unknown or not named or not all(isinstance(given[flag], bool) for flag in named):
            raise ValueError(
                f"weight_basis must map some of {list(BASIS_FLAGS)} to bools, got {dict(given)}"
            )
        return {**dict(given), "source": "given"}
    metadata = _get(_get(sae, "cfg"), "metadata")
    kwargs = _get(metadata, "model_from_pretrained_kwargs")
    if not isinstance(kwargs, Mapping):
        if isinstance(_get(metadata, "hf_hook_name"), str):  # trained on HF hidden states
            unprocessed = dict.fromkeys(BASIS_FLAGS, False)
            return {"model_class": "hf", **unprocessed, "source": "sae.cfg.metadata.hf_hook_name"}
        return None
    model_class = _get(metadata, "model_class_name")
    hooked = model_class in (None, "HookedTransformer", "HookedSAETransformer")
    flags = {flag: hooked and bool(kwargs.get(flag, False)) for flag in BASIS_FLAGS}
    return {
        "model_class": model_class or "HookedTransformer",
        **flags,
        "source": "sae.cfg.metadata.model_from_pretrained_kwargs",
    }


def from_sae_feature(
    sae: Any,
    feature: int,
    *,
    layer: int | None = None,
    model_name: str | None = None,
    weight_basis: Mapping[str, Any] | None = None,
) -> SteeringVector:
    """One SAE feature's decoder direction as a steering vector.

    The direction is the decoder row ``sae.W_dec[feature]`` as it is (SAELens keeps rows
    at unit norm for most SAEs; choose the strength with ``alpha``). The hook point is
    the SAE's (``cfg.metadata.hook_name`` in SAELens 6.x, ``cfg.hook_name`` before): a
    residual-stream hook ``blocks.{L}.hook_resid_post`` (or ``_pre``/``_mid``) gives the
    layer; an SAE without a hook name needs ``layer`` (then ``hook_resid_post``).

    ``meta["sae"]`` records the SAE's hook name, ``d_sae``, the feature, the row's norm and
    what the SAE's metadata says about the model it was trained on. ``meta["weight_basis"]``
    records TransformerLens's weight processing of that model, so that
    :func:`~interp_steer.steering.steer` warns when the model it steers was loaded
    differently: from ``weight_basis`` when given, else from SAELens 6.x's
    ``cfg.metadata.model_from_pretrained_kwargs`` (its trainer loads a HookedTransformer
    with ``from_pretrained_no_processing(**kwargs)``, so e.g.
    ``{"center_writing_weights": True}`` means centred writing weights and nothing
    else), or unprocessed when the metadata names the Hugging Face hook the SAE was
    trained on (``hf_hook_name``, Gemma Scope 2). Without any the basis is unknown and is
    not recorded (``steer`` cannot check it); SAEs trained by older SAELens versions on
    ``from_pretrained`` (all three flags on) should pass ``weight_basis``.

    Args:
        sae: A SAELens ``SAE`` or any object with ``W_dec`` of shape ``(d_sae, d_model)``.
        feature: The feature's index, ``0 <= feature < d_sae``.
        layer: The block, when the SAE names no hook (else it must agree with the hook).
        model_name: The model the vector is for (the SAE's ``metadata.model_name`` is kept
            in ``meta["sae"]``; names differ between SAELens and this package).
        weight_basis: The flags ``fold_ln``, ``center_writing_weights``, ``center_unembed``
            of the model the SAE was trained on, overriding the SAE's metadata.

    Raises:
        ValueError: ``feature`` out of range, a hook that is not the residual stream, a
            ``layer`` that disagrees with the hook or is missing, or no 2-D ``W_dec``.

    >>> from types import SimpleNamespace
    >>> g = torch.Generator().manual_seed(0)
    >>> sae = SimpleNamespace(  # a random stand-in: 32 features on a width-8 stream
    ...     W_dec=torch.randn(32, 8, generator=g), W_enc=torch.randn(8, 32, generator=g),
    ...     b_enc=torch.zeros(32), cfg=SimpleNamespace(hook_name="blocks.2.hook_resid_post"))
    >>> v = from_sae_feature(sae, 5)
    >>> v.layer, v.hook_name, v.method, v.meta["sae"]["feature"], v.meta["sae"]["d_sae"]
    (2, 'blocks.2.hook_resid_post', 'sae_feature', 5, 32)
    >>> bool(torch.equal(v.direction, sae.W_dec[5]))
    True
    """
    w_dec = _tensor(sae, "W_dec", 2)
    d_sae, d_model = int(w_dec.shape[0]), int(w_dec.shape[1])
    if isinstance(feature, bool) or not isinstance(feature, int | np.integer):
        raise ValueError(f"feature must be an int index, got {feature!r}")
    if not 0 <= int(feature) < d_sae:
        raise ValueError(f"feature {feature} is out of range: the SAE has features 0..{d_sae - 1}")
    hook = _sae_hook_name(sae)
    if hook is None:
        if layer is None:
            raise ValueError(
                "the SAE names no hook point (cfg.metadata.hook_name or cfg.hook_name): pass layer="
            )
        hook_name = f"blocks.{layer}.hook_resid_post"
    else:
        match = RESIDUAL_HOOK.fullmatch(hook)
        if match is None:
            raise ValueError(
                f"the SAE reads {hook!r}, not the residual stream "
                "(blocks.L.hook_resid_pre, _mid or _post): its decoder rows are not "
                "directions a d_model steering vector is added along"
            )
        if layer is not None and layer != int(match.group(1)):
            raise ValueError(f"layer={layer} disagrees with the SAE's hook point {hook!r}")
        layer, hook_name = int(match.group(1)), hook
    cfg = _get(sae, "cfg")
    metadata = _get(cfg, "metadata")
    row = w_dec[int(feature)].to("cpu", torch.float32).clone()
    record: dict[str, Any] = {
        "hook_name": hook,
        "d_sae": d_sae,
        "d_in": d_model,
        "feature": int(feature),
        "decoder_norm": float(row.norm()),
        "model_name": _get(metadata, "model_name"),
        "architecture": type(sae).__name__,
    }
    for key in ("normalize_activations", "apply_b_dec_to_input"):
        value = _get(cfg, key)
        if isinstance(value, str | bool):
            record[key] = value
    basis = _sae_basis(sae, weight_basis)
    meta: dict[str, Any] = {"sae": record}
    if basis is None:
        record["weight_basis"] = (
            "unknown: the SAE records no model_from_pretrained_kwargs and none was given, "
            "so steer cannot check the basis (SAEs trained on HookedTransformer are often "
            "on processed weights)"
        )
    else:
        meta["weight_basis"] = basis
    return SteeringVector(
        row,
        layer=int(layer),
        hook_name=hook_name,
        method="sae_feature",
        model_name=model_name,
        meta=meta,
    )


def sae_feature_scores(
    vector: SteeringVector | torch.Tensor, sae: Any, *, k: int = 10
) -> pd.DataFrame:
    """The SAE features a steering vector is most like: top ``k`` by cosine and by activation.

    Two readings, ``k`` rows each (``ranked_by``): ``"cosine"`` ranks the features by the
    cosine between the vector and each decoder row (``W_dec[i]``; signed: ``-v`` ranks
    the opposite end first); ``"activation"`` ranks them by the SAE's encoder applied to
    the vector as if it were an activation: the SAE's own ``encode`` when it has one
    (SAELens: subtracts ``b_dec`` if ``apply_b_dec_to_input``, normalises if configured,
    then its activation function — ReLU, JumpReLU, top-k), else
    ``ReLU((v - b_dec) @ W_enc + b_enc)`` (``b_dec`` zero when absent).
    ``frame.attrs["activation_from"]`` says which (``"encode"`` or ``"relu"``). A
    difference-of-means vector is not an activation (its offset ``b_dec`` is gone), so
    for one the cosine is the cleaner reading; the activation also depends on the
    vector's norm.

    Args:
        vector: A vector at the SAE's hook point (or a bare ``(d_model,)`` tensor).
        sae: A SAELens ``SAE`` or any object with ``W_dec`` ``(d_sae, d_model)`` and
            ``encode`` or ``W_enc`` ``(d_model, d_sae)`` + ``b_enc``.
        k: How many features per reading (at most ``d_sae``).

    Returns:
        Columns ``ranked_by``, ``rank`` (1 = first), ``feature``, ``cosine``, ``activation``.

    Raises:
        ValueError: a zero vector, widths that differ, a vector at another hook point
            than the SAE's, ``k < 1``, or an SAE without the weights above.

    >>> from types import SimpleNamespace
    >>> g = torch.Generator().manual_seed(0)
    >>> sae = SimpleNamespace(
    ...     W_dec=torch.randn(32, 8, generator=g), W_enc=torch.randn(8, 32, generator=g),
    ...     b_enc=torch.zeros(32), cfg=SimpleNamespace(hook_name="blocks.2.hook_resid_post"))
    >>> top = sae_feature_scores(from_sae_feature(sae, 5), sae, k=3)
    >>> first = top[top.ranked_by == "cosine"].iloc[0]
    >>> int(first.feature), round(float(first.cosine), 4), top.attrs["activation_from"]
    (5, 1.0, 'relu')
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    w_dec = _tensor(sae, "W_dec", 2)
    d_sae, d_model = int(w_dec.shape[0]), int(w_dec.shape[1])
    if isinstance(vector, SteeringVector):
        hook = _sae_hook_name(sae)
        if hook is not None and _canonical_hook(hook) != _canonical_hook(vector.hook_name):
            raise ValueError(
                f"the vector is at {vector.hook_name!r} but the SAE reads {hook!r}: "
                "project onto an SAE of the same hook point"
            )
        direction = vector.direction
    elif isinstance(vector, torch.Tensor) and vector.ndim == 1:
        direction = vector
    else:
        raise ValueError(
            f"expected a SteeringVector or a 1-D tensor, got {getattr(vector, 'shape', vector)!r}"
        )
    if int(direction.shape[0]) != d_model:
        raise ValueError(
            f"the vector has width {int(direction.shape[0])} but the SAE's decoder rows "
            f"have d_model {d_model}"
        )
    v = direction.detach().to(w_dec.device, torch.float32)
    if float(v.norm()) == 0.0:
        raise ValueError("the vector is zero: it has no direction to score")
    with torch.no_grad():
        dec = w_dec.float()
        cosine = (dec @ v) / (dec.norm(dim=-1).clamp_min(1e-30) * v.norm())
        encode = getattr(sae, "encode", None)
        if callable(encode):
            w_enc = _get(sae, "W_enc")
            dtype = w_enc.dtype if isinstance(w_enc, torch.Tensor) else torch.float32
            acts = encode(v.to(dtype)[None])[0].float()
            source = "encode"
        else:
            w_enc = _tensor(sae, "W_enc", 2)
            b_enc = _tensor(sae, "b_enc", 1)
            b_dec = _get(sae, "b_dec")
            shifted = v - (b_dec.detach().float() if isinstance(b_dec, torch.Tensor) else 0.0)
            if tuple(w_enc.shape) != (d_model, d_sae):
                raise ValueError(
                    f"W_enc must have shape (d_model, d_sae) = ({d_model}, {d_sae}), "
                    f"got {tuple(w_enc.shape)}"
                )
            acts = torch.relu(shifted @ w_enc.float() + b_enc.float())
            source = "relu"
    if tuple(acts.shape) != (d_sae,):
        raise ValueError(f"the SAE's encoding has shape {tuple(acts.shape)}, expected ({d_sae},)")
    cosine_np = cosine.cpu().numpy().astype(np.float64)
    acts_np = acts.cpu().numpy().astype(np.float64)
    n = min(k, d_sae)
    rows = []
    for ranked_by, score in (("cosine", cosine_np), ("activation", acts_np)):
        order = np.argsort(-score, kind="stable")[:n]
        rows += [
            {
                "ranked_by": ranked_by,
                "rank": rank,
                "feature": int(i),
                "cosine": float(cosine_np[i]),
                "activation": float(acts_np[i]),
            }
            for rank, i in enumerate(order, start=1)
        ]
    frame = pd.DataFrame(rows, columns=["ranked_by", "rank", "feature", "cosine", "activation"])
    frame.attrs["activation_from"] = source
    return frame
