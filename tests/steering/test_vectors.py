"""SteeringVector: arithmetic, devices, and bit-exact persistence with clear errors."""

import json

import pytest
import torch
from jaxtyping import TypeCheckError
from safetensors.torch import save_file

from interp_steer.steering import SteeringVector


def _vec(**kw):
    g = torch.Generator().manual_seed(3)
    base = dict(
        direction=torch.randn(16, generator=g),
        layer=5,
        method="mean_diff",
        source_lang="de",
        model_name="tiny",
        meta={"n_pairs": 12, "loss": [0.5, 0.25], "note": "ünïcode"},
    )
    return SteeringVector(**{**base, **kw})


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_save_load_round_trip_is_bit_exact(tmp_path, dtype):
    v = _vec().to(dtype=dtype)
    path = v.save(tmp_path / "vec")
    assert path.name == "vec.safetensors" and (tmp_path / "vec.json").exists()
    back = SteeringVector.load(tmp_path / "vec")
    assert back.direction.dtype == dtype
    assert torch.equal(back.direction, v.direction)
    for field in ("layer", "hook_name", "method", "source_lang", "target_lang", "model_name"):
        assert getattr(back, field) == getattr(v, field)
    assert back.meta == v.meta


def test_readable_json_sidecar(tmp_path):
    _vec().save(tmp_path / "vec.safetensors")
    info = json.loads((tmp_path / "vec.json").read_text("utf-8"))
    assert info["layer"] == "5" and info["meta"]["note"] == "ünïcode"


def test_default_hook_name_and_arithmetic():
    a, b = _vec(), _vec(direction=torch.ones(16))
    assert a.hook_name == "blocks.5.hook_resid_post"
    assert torch.equal((a + b).direction, a.direction + 1)
    assert torch.equal((a - b).direction, a.direction - 1)
    assert torch.equal((2 * a).direction, 2 * a.direction)
    assert torch.equal((a * 0.5).direction, a.direction * 0.5)
    assert torch.equal((-a).direction, -a.direction)
    assert (a + b).method == "(mean_diff+mean_diff)"


def test_combining_different_layers_is_refused():
    with pytest.raises(ValueError, match="share hook point"):
        _ = _vec() + _vec(layer=2)


def test_to_changes_dtype_only_of_the_copy():
    v = _vec()
    h = v.to(dtype=torch.float16)
    assert h.direction.dtype == torch.float16 and v.direction.dtype == torch.float32


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"direction": torch.ones(2, 3)}, "1-D tensor"),
        ({"direction": torch.ones(3, dtype=torch.int64)}, "float tensor"),
        ({"direction": torch.tensor([0.0, float("nan")])}, "NaN"),
        ({"layer": -1}, "non-negative"),
    ],
)
def test_invalid_vectors_are_refused(kwargs, message):
    # Under pytest, jaxtyping checks the shape/dtype annotation before our own validation.
    with pytest.raises((ValueError, TypeCheckError)) as info:
        _vec(**kwargs)
    if info.type is ValueError:
        assert message in str(info.value)


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no steering vector file"):
        SteeringVector.load(tmp_path / "absent")


def test_load_truncated_file(tmp_path):
    path = _vec().save(tmp_path / "vec")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        SteeringVector.load(path)


def test_load_foreign_safetensors(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"weight": torch.ones(3)}, str(path), metadata={"format": "pt"})
    with pytest.raises(ValueError, match="not an interp_steer steering vector"):
        SteeringVector.load(path)


def test_load_garbage(tmp_path):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(b"not a tensor file at all")
    with pytest.raises(ValueError, match="truncated or corrupt"):
        SteeringVector.load(path)


def test_unserialisable_meta_fails_before_writing(tmp_path):
    v = _vec(meta={"bad": object()})
    with pytest.raises(ValueError, match="JSON-serialisable"):
        v.save(tmp_path / "vec")
    assert not list(tmp_path.iterdir())
