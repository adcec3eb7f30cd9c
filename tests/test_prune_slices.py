"""Memory-bounded paths of pruning and structure detection (issue 22): checked in slices of rows, the
same answers as on the whole weight. The slice size is patched down so tiny weights span many slices."""
from __future__ import annotations

import pytest
import torch

from gancompress.errors import InputError
from gancompress.prune import GRANULARITIES, detect_structure, geometry
from gancompress.prune import granularity as G
from gancompress.prune import masks as M
from gancompress.prune.layers import canonical_rows, from_canonical, to_canonical, zero_rows
from test_prune_granularity import _detect_whole

LAYERS = [("conv", (43, 6, 3, 3), 1), ("conv_transpose", (6, 21, 4, 4), 1), ("conv_transpose", (8, 6, 3, 3), 2),
          ("linear", (37, 20), 1), ("conv", (12, 3, 3, 3), 4)]


@pytest.mark.parametrize("layer,shape,groups", LAYERS)
def test_canonical_rows_are_rows_of_the_canonical_matrix(layer, shape, groups):
    w = torch.randn(shape)
    geo = geometry(w.shape, layer, groups)
    canonical = to_canonical(w, geo)
    for start, stop in [(0, 1), (2, 5), (0, geo.out), (geo.out - 3, geo.out + 4)]:
        assert torch.equal(canonical_rows(w, geo, slice(start, stop)), canonical[start:stop])
    picked = torch.tensor([geo.out - 1, 0, 2])
    assert torch.equal(canonical_rows(w, geo, picked), canonical[picked])
    for step in (11, 997):  # many zeros (a pass per row) and a few (from their positions)
        sparse = w.clone()
        sparse.view(-1)[::step] = 0.0
        zeros = int((sparse == 0).sum())
        expected = (to_canonical(sparse, geo) == 0).any(1)
        assert torch.equal(zero_rows(sparse, geo), expected)
        assert torch.equal(zero_rows(sparse, geo, zeros), expected)


def _patterned(layer, shape, groups, pattern):
    gen = torch.Generator().manual_seed(hash((layer, pattern)) % 1000)
    w = torch.randn(shape, generator=gen) + 0.01
    if pattern == "stray":
        w.view(-1)[torch.randint(0, w.numel(), (3,), generator=gen)] = 0.0
    elif pattern == "dense":
        pass
    elif pattern in ("block", "kernel", "filter"):
        opts = {"block": (2, 2)} if pattern == "block" else {}
        w = w * GRANULARITIES.get(pattern).mask(w, 0.5, layer, groups=groups, **opts)
    elif pattern == "last-rows":
        geo = geometry(w.shape, layer, groups)
        canon = to_canonical(w, geo).clone()
        canon[-1, :] = 0.0
        w = from_canonical(canon, geo).contiguous()
    elif pattern == "element":
        w = w * GRANULARITIES.get("element").mask(w, 0.6, layer, groups=groups)
    else:  # nm-in / nm-kernel
        w = w * GRANULARITIES.get("nm").mask(w, None, layer, groups=groups, nm=(2, 4), nm_axis=pattern[3:])
    return w


@pytest.mark.parametrize("layer,shape,groups", LAYERS)
@pytest.mark.parametrize("pattern", ["dense", "stray", "block", "kernel", "filter", "last-rows", "element", "nm-in",
                                     "nm-kernel"])
def test_detection_in_slices_equals_the_whole_tensor(layer, shape, groups, pattern, monkeypatch):
    w = _patterned(layer, shape, groups, pattern)
    expected = _detect_whole(w, layer, groups)
    monkeypatch.setattr(M, "_CHUNK", 40)  # a row or a band per slice
    assert detect_structure(w, layer, groups) == expected


@pytest.mark.parametrize("layer,shape,groups", LAYERS)
@pytest.mark.parametrize("name,opts", [("element", {}), ("filter", {}), ("kernel", {}), ("vector", {}),
                                       ("block", {"block": (4, 8)}), ("block", {"block": (2, 2)})])
def test_scores_and_unit_sums_in_slabs_equal_the_whole_weight(layer, shape, groups, name, opts, monkeypatch):
    """Scoring a slab of rows at a time (and summing integer units in slices) gives exactly the
    whole-weight answer, ragged tiles and transposed layouts included."""
    gran = GRANULARITIES.get(name)
    full_opts = G.normalize_opts(opts)
    w = torch.randn(shape, generator=torch.Generator().manual_seed(3))
    w.view(-1)[::7] = 0.0
    geo = geometry(w.shape, layer, groups)
    try:
        gran.validate(geo, full_opts, "w")
    except InputError:
        pytest.skip("granularity does not fit this layer")
    mat = to_canonical(w, geo)
    previous = torch.rand(shape, generator=torch.Generator().manual_seed(4)) > 0.3
    whole_scores = gran.scores(mat, geo, full_opts)
    whole_masked = gran.scores(mat * to_canonical(previous, geo), geo, full_opts)
    whole_live = gran.unit_reduce((mat != 0).to(torch.int64), geo, full_opts, "sum")
    monkeypatch.setattr(G, "_SLICE", 50)  # a few rows per slab
    assert torch.equal(gran.unit_scores(w, geo, None, "w", full_opts), whole_scores)
    masked = gran.unit_scores(w, geo, previous, "w", full_opts)
    assert torch.equal(masked[masked != -1], whole_masked[masked != -1])
    assert torch.equal(gran.unit_reduce(mat != 0, geo, full_opts, "sum"), whole_live)


@pytest.mark.parametrize("layer,shape,groups", LAYERS + [("modulated_conv", (1, 10, 6, 3, 3), 1)])
@pytest.mark.parametrize("name,opts", [("element", {}), ("filter", {}), ("kernel", {}), ("vector", {}),
                                       ("block", {"block": (4, 8)}), ("block", {"block": (2, 2)}), ("nm", {}),
                                       ("channel", {})])
def test_masks_written_in_slabs_equal_the_whole_mask(layer, shape, groups, name, opts, monkeypatch):
    gran = GRANULARITIES.get(name)
    full_opts = G.normalize_opts(opts)
    geo = geometry(shape, layer, groups)
    try:
        gran.validate(geo, full_opts, "w")
    except InputError:
        pytest.skip("granularity does not fit this layer")
    units = gran.grid_shape(geo, full_opts)
    keep = torch.rand([s for i, s in enumerate(units[0]) if i not in units[1]],
                      generator=torch.Generator().manual_seed(5)) > 0.4
    previous = torch.rand(shape, generator=torch.Generator().manual_seed(6)) > 0.2
    whole = from_canonical(gran.expand(keep, geo, full_opts), geo)
    monkeypatch.setattr(G, "_SLICE", 30)
    assert torch.equal(gran.to_mask(keep, geo, None, full_opts), whole)
    assert torch.equal(gran.to_mask(keep, geo, previous, full_opts), whole & previous)


@pytest.mark.parametrize("shape,axis", [((10, 6, 3, 3), 0), ((6, 10, 4, 4), 1), ((37, 20), 0), ((9,), 0)])
@pytest.mark.parametrize("block", [(2, 2), (4, 8), (3, 1)])
def test_block_encoding_in_slabs_equals_the_whole_weight(shape, axis, block, monkeypatch):
    """The sparse writer's block encoder, a few rows at a time: the same bytes as in one piece."""
    import numpy as np
    from gancompress.formats import sparse as sf

    a = np.random.default_rng(7).standard_normal(shape).astype(np.float32)
    a[np.random.default_rng(8).random(shape) < 0.6] = 0.0
    whole = sf.encode_blocks(a, axis, block)
    monkeypatch.setattr(sf, "SLAB", 20)
    sliced = sf.encode_blocks(a, axis, block)
    assert sliced.arrays.keys() == whole.arrays.keys()
    assert all(np.array_equal(sliced.arrays[k], whole.arrays[k]) for k in whole.arrays)
