"""The low-memory paths give what the in-memory ones gave: loading assigns the checkpoint's own tensors,
the size of an export is known without writing it, zip checkpoints are memory-mapped."""
from __future__ import annotations

import sys

import pytest

import torch

from gancompress.archs import ArchSpec, build, build_loaded
from gancompress.formats.safetensors_file import save_safetensors, serialized_size


def test_build_loaded_uses_the_tensors_themselves_and_matches_a_copying_load():
    torch.manual_seed(0)
    spec = ArchSpec("dcgan-g", {"widths": [8, 16, 8, 3]})
    reference = build(spec)
    state = {k: v.clone() for k, v in reference.state_dict().items()}
    loaded = build_loaded(spec, state, "generator")
    for name, tensor in loaded.state_dict().items():
        assert not tensor.is_meta
        assert torch.equal(tensor, reference.state_dict()[name])
    weight = next(k for k in state if k.endswith("weight"))
    assert loaded.state_dict()[weight].data_ptr() == state[weight].data_ptr()  # no second copy
    assert all(p.requires_grad for p in loaded.parameters())
    half = build_loaded(spec, {k: v.half() if v.is_floating_point() else v for k, v in state.items()}, "generator")
    assert all(p.dtype == torch.float32 for p in half.parameters())  # cast to the network's dtype, as a copy would


def test_serialized_size_is_the_written_size_and_needs_no_data(tmp_path):
    tensors = {"a.weight": torch.randn(7, 5), "b": torch.arange(3), "c": torch.randn(2, dtype=torch.float16)}
    meta = {"format": "gancompress-dense", "layout": "dense"}
    save_safetensors(tmp_path / "x.safetensors", tensors, meta)
    on_meta = {k: torch.empty(v.shape, dtype=v.dtype, device="meta") for k, v in tensors.items()}
    assert serialized_size(on_meta, meta) == (tmp_path / "x.safetensors").stat().st_size


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_zip_checkpoints_load_memory_mapped(tmp_path):
    from gancompress.sources import read_file

    path = tmp_path / "g.pth"
    torch.save({"w": torch.randn(4, 4)}, path)
    raw = read_file(path)
    assert torch.equal(raw.content["w"], torch.load(path, weights_only=True)["w"])
    with open("/proc/self/maps") as maps:
        assert str(path) in maps.read()  # backed by the file, not a copy
