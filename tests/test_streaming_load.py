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


class _CpuOnly(torch.nn.Module):
    """Makes a CPU tensor inside forward: cannot run on the meta device."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 5, 3, padding=1)

    def forward(self, x):
        return self.conv(x) + torch.ones(1, 5, 1, 1)


@pytest.mark.parametrize("which", ["dcgan", "cpu-only"])
def test_flops_and_output_shape_on_meta_equal_a_real_forward(which):
    from torch.utils.flop_counter import FlopCounterMode

    from gancompress.metrics.cost import flop_counts

    if which == "dcgan":
        model, shape = build(ArchSpec("dcgan-g", {"widths": [8, 16, 8, 3]})).eval(), (8, 1, 1)
    else:
        model, shape = _CpuOnly().eval(), (3, 6, 6)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        out = model(torch.zeros(1, *shape))
    total, per_module = flop_counts(model, shape)
    assert total == counter.get_total_flops() > 0
    assert per_module == {k: sum(v.values()) for k, v in counter.get_flop_counts().items()}
    from gancompress.archs.base import meta_forward

    meta = meta_forward(model, shape)
    assert (meta is None) == (which == "cpu-only")
    assert meta is None or meta.shape == out.shape


def test_shared_masked_generator_equals_the_copy_and_leaves_the_bundle_alone():
    from gancompress.formats.checkpoint import GanBundle

    torch.manual_seed(1)
    spec = ArchSpec("dcgan-g", {"widths": [8, 16, 8, 3]})
    generator = build(spec)
    names = [n for n, p in generator.named_parameters() if p.dim() == 4]
    params = dict(generator.named_parameters())
    masks = {n: torch.rand_like(params[n]) > 0.5 for n in names}
    with torch.no_grad():  # the first layer is already pruned (as a pruned file loads), the others are not
        params[names[0]].mul_(masks[names[0]])
    before = {k: v.clone() for k, v in generator.state_dict().items()}
    bundle = GanBundle(generator, spec, masks=masks)
    copied, shared = bundle.masked_generator(), bundle.masked_generator(share=True)
    for key, value in copied.state_dict().items():
        assert torch.equal(shared.state_dict()[key], value)
    for key, value in generator.state_dict().items():
        assert torch.equal(value, before[key])  # neither touched the bundle
    got = dict(shared.named_parameters())
    assert got[names[0]] is params[names[0]]  # already masked: shared, no copy
    assert got[names[1]] is not params[names[1]]
    assert not any(p is params[n] for n, p in copied.named_parameters())


@pytest.mark.parametrize("stray", [None, 0, -1])
def test_the_masked_check_reads_slabs_and_finds_a_stray_weight_anywhere(stray, monkeypatch):
    """A weight already zero wherever masked is shared; one nonzero pruned weight (first or last slab) is not."""
    from gancompress.formats import checkpoint

    monkeypatch.setattr(checkpoint, "_SLAB", 5)
    weight = torch.randn(4, 3, 3, 3)
    mask = torch.rand(weight.shape, generator=torch.Generator().manual_seed(2)) > 0.5
    weight.mul_(mask)
    if stray is not None:
        pruned = (~mask).reshape(-1).nonzero().flatten()[stray]
        weight.view(-1)[pruned] = 1.0
    assert checkpoint._zero_where_masked(weight, mask) == (stray is None)
    assert checkpoint._zero_where_masked(weight, mask.to(torch.uint8)) == (stray is None)
