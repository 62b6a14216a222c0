"""SteeringVector: arithmetic, devices, and bit-exact persistence with clear errors."""

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from jaxtyping import TypeCheckError
from safetensors.torch import safe_open, save_file

from interp_steer.steering import SteeringVector, alpha_for_ratio, check_vector, steer
from interp_steer.steering.vectors import FORMAT_VERSION

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "c8b3e6b"


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


# -- files are checked, not trusted (issue 16, defect 4) -------------------------------


def _tensor_offset(path):
    """Where the tensor bytes start in a safetensors file (8-byte length + JSON header)."""
    return 8 + int.from_bytes(path.read_bytes()[:8], "little")


def _rewrite(path, drop_sidecar=True, **changes):
    """Re-save ``path`` with some header fields changed (None deletes one); same tensor."""
    with safe_open(str(path), framework="pt") as f:
        header = dict(f.metadata())
        tensor = f.get_tensor("direction")
    header.update(changes)
    header = {k: v for k, v in header.items() if v is not None}
    save_file({"direction": tensor}, str(path), metadata=header)
    if drop_sidecar:
        path.with_suffix(".json").unlink()
    return path


def test_a_flipped_byte_in_the_tensor_is_refused_naming_the_checksum(tmp_path):
    path = _vec().save(tmp_path / "vec")
    data = bytearray(path.read_bytes())
    data[_tensor_offset(path) + 3] ^= 0x40  # an exponent bit of the first entry
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"vec\.safetensors: field 'checksum' does not match"):
        SteeringVector.load(path)


def test_the_checksum_is_in_the_header_and_in_the_readable_json(tmp_path):
    v = _vec()
    path = v.save(tmp_path / "vec")
    with safe_open(str(path), framework="pt") as f:
        assert f.metadata()["checksum"] == v.checksum
    info = json.loads(path.with_suffix(".json").read_text("utf-8"))
    assert info["checksum"] == v.checksum and info["format_version"] == FORMAT_VERSION == "2"
    assert (
        v.checksum.startswith("sha256:")
        and v.checksum != _vec(layer=1).to(dtype=torch.float64).checksum
    )


def test_a_tensor_beside_the_json_of_another_vector_is_refused(tmp_path):
    a = _vec().save(tmp_path / "a")
    b = _vec(direction=torch.ones(16)).save(tmp_path / "b")
    shutil.copyfile(b, a)  # a.safetensors is now b's vector, a.json still describes a
    with pytest.raises(ValueError, match=r"a\.json: field 'checksum' .* different vectors"):
        SteeringVector.load(a)
    a.with_suffix(".json").unlink()  # the tensor file alone is complete and verified
    assert torch.equal(SteeringVector.load(a).direction, torch.ones(16))


def test_a_json_whose_other_fields_disagree_is_refused(tmp_path):
    path = _vec().save(tmp_path / "vec")
    sidecar = path.with_suffix(".json")
    info = json.loads(sidecar.read_text("utf-8"))
    info["layer"] = "4"
    sidecar.write_text(json.dumps(info), "utf-8")
    with pytest.raises(ValueError, match=r"vec\.json: field 'layer' is '4'"):
        SteeringVector.load(path)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"hook_name": "blocks.3.hook_resid_post"}, "field 'layer' is 5 but field 'hook_name'"),
        ({"hook_name": "blocks.5.attn.hook_z"}, "'hook_name' .* is not a residual-stream"),
        ({"format_version": "3"}, "format_version '3' is not one"),
        ({"format_version": None}, "format_version None is not one"),
        ({"checksum": None}, "field 'checksum' is missing"),
        ({"layer": "five"}, "damaged steering-vector metadata"),
        ({"meta": '{"metrics": {"resid_norm": NaN}}'}, "'meta.metrics.resid_norm' must be"),
        ({"meta": '{"metrics": {"resid_norm": -2.5}}'}, "'meta.metrics.resid_norm' must be"),
        ({"meta": '{"metrics": {"resid_norm": "big"}}'}, "'meta.metrics.resid_norm' must be"),
        ({"meta": "[1, 2]"}, "field 'meta' is not a JSON object"),
    ],
)
def test_header_fields_are_cross_checked_on_load(tmp_path, changes, message):
    path = _rewrite(_vec().save(tmp_path / "vec"), **changes)
    with pytest.raises(ValueError, match=message) as info:
        SteeringVector.load(path)
    assert str(path) in str(info.value)


def test_a_vector_with_a_bad_hook_or_resid_norm_is_refused_when_saved_and_loaded(tmp_path):
    v = _vec(hook_name="blocks.2.hook_resid_pre")  # layer 5
    with pytest.raises(ValueError, match="field 'layer' is 5"):
        SteeringVector.load(v.save(tmp_path / "hook"))
    w = _vec(meta={"metrics": {"resid_norm": -1.0}})
    with pytest.raises(ValueError, match="resid_norm"):
        SteeringVector.load(w.save(tmp_path / "norm"))
    with pytest.raises(ValueError, match="residual norm"):
        alpha_for_ratio(w, 0.1)


def test_other_residual_hook_points_load(tmp_path):
    for hook in ("hook_resid_pre", "hook_resid_mid", "hook_in", "hook_out"):
        v = _vec(hook_name=f"blocks.5.{hook}")
        assert SteeringVector.load(v.save(tmp_path / hook)).hook_name == f"blocks.5.{hook}"


def test_a_version_1_file_without_checksum_loads_unverified(tmp_path):
    old = tmp_path / "old"
    for suffix in (".safetensors", ".json"):
        shutil.copyfile(FIXTURES / f"vector{suffix}", old.with_suffix(suffix))
    v = SteeringVector.load(old)
    assert v.layer == 1 and v.checksum.startswith("sha256:")
    old.with_suffix(".json").unlink()
    assert SteeringVector.load(old).checksum == v.checksum


class _CrashOnRename:
    """Make the ``n``-th ``os.replace`` raise, as a kill at that point would stop it."""

    def __init__(self, n):
        self.n, self.calls, self.real = n, 0, os.replace

    def __call__(self, src, dst):
        self.calls += 1
        if self.calls == self.n:
            raise KeyboardInterrupt("killed")
        return self.real(src, dst)


def test_a_save_killed_before_any_rename_keeps_the_old_pair(tmp_path, monkeypatch):
    old = _vec()
    path = old.save(tmp_path / "vec")
    monkeypatch.setattr(os, "replace", _CrashOnRename(1))
    with pytest.raises(KeyboardInterrupt):
        _vec(direction=torch.ones(16)).save(tmp_path / "vec")
    monkeypatch.undo()
    assert SteeringVector.load(path).checksum == old.checksum
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vec.json", "vec.safetensors"]


@pytest.mark.parametrize("old_pair", ["new", "version 1", "none"])
def test_a_save_killed_between_the_renames_never_loads_a_mismatch(tmp_path, monkeypatch, old_pair):
    path = tmp_path / "vec.safetensors"
    if old_pair == "new":
        _vec().save(path)
    elif old_pair == "version 1":
        shutil.copyfile(FIXTURES / "vector.safetensors", path)
        shutil.copyfile(FIXTURES / "vector.json", path.with_suffix(".json"))
    new = _vec(direction=torch.ones(64 if old_pair == "version 1" else 16), layer=1)
    monkeypatch.setattr(os, "replace", _CrashOnRename(2))  # JSON renamed, tensor not
    with pytest.raises(KeyboardInterrupt):
        new.save(path)
    monkeypatch.undo()
    if old_pair == "none":
        with pytest.raises(FileNotFoundError, match="no steering vector file"):
            SteeringVector.load(path)
    else:
        with pytest.raises(ValueError, match=r"vec\.json: field 'checksum' .* different"):
            SteeringVector.load(path)
    new.save(path)  # saving again repairs the pair
    assert SteeringVector.load(path).checksum == new.checksum


def test_check_vector_refuses_a_non_residual_hook_before_any_forward(tiny):
    calls = []
    bad = [
        (SteeringVector(torch.ones(64), layer=0, hook_name="blocks.0.attn.hook_out"), "residual"),
        (SteeringVector(torch.ones(64), layer=1, hook_name="blocks.0.hook_resid_post"), "layer"),
    ]
    with tiny.hooks(fwd_hooks=[("blocks.0.hook_in", lambda x, hook: calls.append(1))]):
        for vector, message in bad:
            with pytest.raises(ValueError, match=message):
                check_vector(tiny, vector)
            with pytest.raises(ValueError, match=message), steer(tiny, vector, alpha=1.0):
                tiny("Hallo Welt")
    assert not calls
