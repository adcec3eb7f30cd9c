"""compressed-tensors' sparse-bitmask layout: exact decoding, and damaged files refused before allocating."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from gancompress.errors import InputError
from gancompress.formats.compressed_tensors import bitmask_names, decode_state_dict


def bitmask_arrays(name: str, w: torch.Tensor) -> dict[str, torch.Tensor]:
    """The four arrays, made the way the layout is specified (numpy, independent of the reader)."""
    mask = (w != 0).numpy()
    counts = mask.sum(axis=-1)
    return {f"{name}.shape": torch.tensor(w.shape), f"{name}.compressed": w[w != 0],
            f"{name}.bitmask": torch.from_numpy(np.packbits(mask, axis=-1, bitorder="little")),
            f"{name}.row_offsets": torch.from_numpy(np.cumsum(counts, axis=0) - counts)}


def sparse(shape: tuple[int, ...], seed: int = 0, keep: float = 0.3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(shape, generator=g)
    return w * (torch.rand(shape, generator=g) < keep)


@pytest.mark.parametrize("shape", [(16, 24), (8, 4, 3, 3), (5, 13), (3, 7, 1, 1)])
def test_decodes_exactly_any_rank_and_odd_widths(shape):
    w, bias = sparse(shape), torch.randn(shape[0])
    tensors = {**bitmask_arrays("net.0.weight", w), "net.0.bias": bias}
    out = decode_state_dict(tensors)
    assert set(out) == {"net.0.weight", "net.0.bias"}
    assert torch.equal(out["net.0.weight"], w) and torch.equal(out["net.0.bias"], bias)
    assert bitmask_names(list(tensors)) == ["net.0.weight"]


def _edited(edit) -> dict[str, torch.Tensor]:
    tensors = bitmask_arrays("w", sparse((8, 12)))
    edit(tensors)
    return tensors


@pytest.mark.parametrize("edit, words", [
    (lambda t: t.__setitem__("w.compressed", t["w.compressed"][:-1]), "non-zeros"),
    (lambda t: t.__setitem__("w.bitmask", t["w.bitmask"][:-1]), "bitmask"),
    (lambda t: t.__setitem__("w.shape", torch.tensor([8, 17])), "bitmask"),  # 17 columns need 3 bytes a row
    (lambda t: t.__setitem__("w.shape", torch.tensor([8.0, 12.0])), "integer"),
    (lambda t: t.__setitem__("w.row_offsets", t["w.row_offsets"][:3]), "row_offsets"),
    (lambda t: t["w.bitmask"][0].__setitem__(1, t["w.bitmask"][0][1] | 0x80), "padding"),
])
def test_damaged_arrays_are_refused(edit, words):
    tensors = _edited(edit)
    with pytest.raises(InputError) as info:
        decode_state_dict(tensors)
    assert words in str(info.value)
    assert "damaged" in str(info.value)


def test_a_huge_declared_shape_is_refused_before_any_allocation():
    tensors = bitmask_arrays("w", sparse((4, 8)))
    tensors["w.shape"] = torch.tensor([1 << 30, 1 << 30])  # 2^60 weights, 128 PiB as float32
    with pytest.raises(InputError, match="bitmask"):
        decode_state_dict(tensors)


@pytest.mark.skipif(importlib.util.find_spec("compressed_tensors") is None,
                    reason="compressed-tensors is in the bench extra")
def test_matches_what_compressed_tensors_writes():
    from compressed_tensors.compressors.sparse_compressors.sparse_bitmask import BitmaskTensor

    w = sparse((6, 4, 3, 3), seed=3)
    written = BitmaskTensor.from_dense(w).dict("conv.weight")
    assert torch.equal(decode_state_dict(written)["conv.weight"], w)


def test_a_compressed_tensors_file_loads_as_a_generator(tmp_path, tiny_digits_bundle):
    import gancompress
    from safetensors.torch import save_file

    g = tiny_digits_bundle.generator
    sd = {k: v * (v.abs() > v.abs().median()) if v.dim() >= 2 else v for k, v in g.state_dict().items()}
    tensors = {}
    for name, w in sd.items():
        tensors.update(bitmask_arrays(name, w) if w.dim() >= 2 else {name: w})
    path = tmp_path / "ct.safetensors"
    save_file(tensors, str(path))
    loaded = gancompress.load(str(path)).state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in sd.items())


def test_our_bitmask_arrays_decode_with_the_layouts_own_rule(tmp_path, tiny_digits_bundle):
    """compressed-tensors' decoder: unpack ``bitmask`` along its last axis to ``shape``, scatter ``compressed``.
    Ours stores the 2-D view's shape there, so that rule gives each weight's 2-D view exactly."""
    from safetensors.torch import load_file

    from gancompress.formats.checkpoint import save_bundle
    from gancompress.prune import PruneConfig, apply_masks, compute_masks

    bundle = tiny_digits_bundle
    bundle.masks = compute_masks(bundle.generator, PruneConfig(0.7, granularity="element", prune_first_last=True))
    apply_masks(bundle.generator, bundle.masks)
    save_bundle(bundle, tmp_path / "p.safetensors")
    from gancompress.export import ExportConfig, export_bundle

    out = export_bundle(bundle, ExportConfig(str(tmp_path / "p.safetensors"), tmp_path / "g.safetensors"))
    stored = load_file(out.path)
    names = bitmask_names(list(stored))
    assert names, "the sparse export should hold bitmask-encoded weights"
    sd = bundle.masked_generator().state_dict()
    for name in names:
        shape = stored[f"{name}.shape"].tolist()
        bits = np.unpackbits(stored[f"{name}.bitmask"].numpy(), axis=-1, count=shape[-1], bitorder="little")
        dense = torch.zeros(shape, dtype=stored[f"{name}.compressed"].dtype)
        dense[torch.from_numpy(bits.reshape(shape).astype(bool))] = stored[f"{name}.compressed"]
        assert torch.equal(dense, sd[name].reshape(sd[name].shape[0], -1))
