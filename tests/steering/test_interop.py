"""GGUF control vectors and {layer: tensor} dicts round-trip."""

import numpy as np
import pytest
import torch

from interp_steer.steering import SteeringVector, from_gguf, from_layer_dict, to_gguf, to_layer_dict


def _vectors():
    g = torch.Generator().manual_seed(0)
    return [
        SteeringVector(torch.randn(64, generator=g), layer=layer, model_name="tiny")
        for layer in (3, 1)
    ]


def test_gguf_round_trip(tmp_path):
    path = to_gguf(_vectors(), tmp_path / "cv.gguf")
    back = from_gguf(path)
    assert [v.layer for v in back] == [1, 3]
    for original, loaded in zip(sorted(_vectors(), key=lambda v: v.layer), back, strict=True):
        assert torch.equal(original.direction, loaded.direction)
        assert loaded.model_name == "tiny"


def test_gguf_layout_matches_llama_cpp(tmp_path):
    gguf = pytest.importorskip("gguf")
    path = to_gguf(_vectors(), tmp_path / "cv.gguf", model_hint="gemma3")
    reader = gguf.GGUFReader(str(path))
    names = sorted(t.name for t in reader.tensors)
    assert names == ["direction.1", "direction.3"]
    field = reader.fields["controlvector.layer_count"]
    assert int(field.parts[field.data[0]][0]) == 2
    hint = reader.fields["controlvector.model_hint"]
    assert bytes(hint.parts[hint.data[0]]).decode() == "gemma3"
    tensor = next(t for t in reader.tensors if t.name == "direction.3")
    assert np.asarray(tensor.data).dtype == np.float32


def test_gguf_refuses_layer_zero_and_duplicates(tmp_path):
    with pytest.raises(ValueError, match="layer 0"):
        to_gguf(SteeringVector(torch.ones(4), layer=0), tmp_path / "a.gguf")
    with pytest.raises(ValueError, match="one vector per layer"):
        to_gguf([SteeringVector(torch.ones(4), layer=1)] * 2, tmp_path / "b.gguf")
    assert not list(tmp_path.iterdir())


def test_gguf_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        from_gguf(tmp_path / "absent.gguf")
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF but not really")
    with pytest.raises(ValueError, match="not a readable GGUF"):
        from_gguf(junk)


def test_layer_dict_round_trip():
    vectors = _vectors()
    as_dict = to_layer_dict(vectors)
    assert sorted(as_dict) == [1, 3]
    back = from_layer_dict(as_dict, method="caa", model_name="tiny")
    assert [v.layer for v in back] == [1, 3] and back[0].method == "caa"
    assert torch.equal(back[1].direction, vectors[0].direction)
