"""Granularities checked against an independent brute-force (loop) implementation."""
from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gancompress.errors import InputError
from gancompress.prune import granularity as G
from gancompress.prune import (GRANULARITIES, detect_structure, from_canonical, geometry, nm_keep,
                               parse_block, parse_nm, select_top, to_canonical)

# (kind, raw weight shape, groups): Conv2d, ConvTranspose2d, Linear, grouped, depthwise, grouped convT
LAYERS = {
    "conv2d": ("conv", (8, 6, 3, 3), 1),
    "convT2d": ("conv_transpose", (6, 8, 4, 4), 1),
    "linear": ("linear", (8, 12), 1),
    "grouped": ("conv", (8, 3, 3, 3), 2),
    "depthwise": ("conv", (8, 1, 3, 3), 8),
    "groupedT": ("conv_transpose", (8, 3, 2, 2), 2),
}
SCORED = ["element", "vector", "kernel", "filter", "channel", "block"]


# ----------------------------------------------------------------- brute force (loops)
def _true_axes(kind, shape, groups, idx):
    """(out_channel, in_slot, in_channel, kernel_index_tuple) of a raw weight index."""
    kk = tuple(idx[2:])
    if kind == "conv_transpose":
        c, j = idx[0], idx[1]
        slots = shape[0] // groups
        return (c // slots) * shape[1] + j, c % slots, c, kk
    o, i = idx[0], idx[1]
    out_per_group = shape[0] // groups
    return o, i, (o // out_per_group) * shape[1] + i, kk


def _canon_col(shape, slot, kk):
    kernel = shape[2:]
    flat = 0
    for k, size in zip(kk, kernel):
        flat = flat * size + k
    return slot * math.prod(kernel) + flat


def _unit_of(name, kind, shape, groups, idx, block):
    o, slot, c, kk = _true_axes(kind, shape, groups, idx)
    if name == "element":
        return tuple(idx)
    if name == "vector":
        return (o, slot) + kk[:-1]
    if name == "kernel":
        return (o, slot)
    if name == "filter":
        return (o,)
    if name == "channel":
        return (c,)
    col = _canon_col(shape, slot, kk)
    return (o // block[0], col // block[1])


def brute_units(name, w, kind, groups, block=(2, 2)):
    """{unit: (list of raw indices, score)} computed with plain loops."""
    units: dict = {}
    for idx in itertools.product(*[range(s) for s in w.shape]):
        units.setdefault(_unit_of(name, kind, tuple(w.shape), groups, idx, block), []).append(idx)
    out = {}
    for u, members in units.items():
        sq = sum(float(w[i]) ** 2 for i in members)
        score = sq / len(members) if name == "block" else math.sqrt(sq)
        out[u] = (members, score)
    return out


def expected_pruned(units, sparsity):
    return min(int(math.floor(sparsity * units + 0.5)), units - 1)


def check_mask(name, w, kind, groups, sparsity, mask, block=(2, 2)):
    units = brute_units(name, w, kind, groups, block)
    kept, pruned = [], []
    for members, score in units.values():
        vals = {bool(mask[i]) for i in members}
        assert len(vals) == 1, f"{name}: unit split by the mask"
        (kept if vals.pop() else pruned).append(score)
    assert len(pruned) == expected_pruned(len(units), sparsity)
    if kept and pruned:
        assert min(kept) >= max(pruned) - 1e-6


def brute_nm(w, kind, groups, n, m, axis="kernel"):
    """Expected keep mask of N:M by loops: runs over canonical columns (``kernel``) or, for
    ``in``, over the input slots of one (output channel, kernel tap)."""
    shape = tuple(w.shape)
    rows: dict = {}
    for idx in itertools.product(*[range(s) for s in shape]):
        o, slot, _, kk = _true_axes(kind, shape, groups, idx)
        if axis == "in":
            rows.setdefault((o, kk), {})[slot] = idx
        else:
            rows.setdefault(o, {})[_canon_col(shape, slot, kk)] = idx
    keep = torch.zeros(shape, dtype=torch.bool)
    for cols in rows.values():
        ncols = len(cols)
        for start in range(0, ncols, m):
            run = [cols[c] for c in range(start, min(start + m, ncols))]
            k = n if len(run) == m else -(-n * len(run) // m)
            for idx in sorted(run, key=lambda i: -abs(float(w[i])))[:k]:
                keep[idx] = True
    return keep


# ----------------------------------------------------------------- unit/structure tests
@pytest.mark.parametrize("layer", list(LAYERS))
@pytest.mark.parametrize("name", SCORED)
@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.9])
def test_granularity_matches_brute_force(name, layer, sparsity):
    kind, shape, groups = LAYERS[layer]
    w = torch.randn(shape, generator=torch.Generator().manual_seed(7))
    mask = GRANULARITIES.get(name).mask(w, sparsity, kind, groups=groups, block=(2, 2))
    assert mask.dtype == torch.bool and mask.shape == w.shape
    check_mask(name, w, kind, groups, sparsity, mask)


@pytest.mark.parametrize("layer", list(LAYERS))
@pytest.mark.parametrize("nm", [(2, 4), (1, 4), (3, 8), (1, 5)])
def test_nm_matches_brute_force(layer, nm):
    kind, shape, groups = LAYERS[layer]
    w = torch.randn(shape, generator=torch.Generator().manual_seed(3))
    mask = GRANULARITIES.get("nm").mask(w, 0.0, kind, groups=groups, nm=nm, nm_axis="kernel")
    assert torch.equal(mask, brute_nm(w, kind, groups, *nm))


@pytest.mark.parametrize("layer", list(LAYERS))
@pytest.mark.parametrize("nm", [(2, 4), (1, 4), (3, 8), (1, 3)])
def test_nm_along_input_channels_matches_brute_force(layer, nm):
    kind, shape, groups = LAYERS[layer]
    w = torch.randn(shape, generator=torch.Generator().manual_seed(3))
    mask = GRANULARITIES.get("nm").mask(w, None, kind, groups=groups, nm=nm)
    assert torch.equal(mask, brute_nm(w, kind, groups, *nm, axis="in"))


def test_nm_groups_run_along_the_gemm_reduction_dimension():
    """Conv [out, in, kh, kw]: every 4 consecutive input channels at one (out, kh, kw) keep 2;
    ConvTranspose [in, out, kh, kw]: the runs go along dim 0; Linear: along in_features."""
    nm = GRANULARITIES.get("nm")
    w = torch.randn(8, 16, 3, 3)
    runs = nm.mask(w, None, "conv").permute(0, 2, 3, 1).reshape(8, 3, 3, 4, 4).sum(-1)
    assert bool((runs == 2).all())
    wt = torch.randn(16, 8, 3, 3)
    runs_t = nm.mask(wt, None, "conv_transpose").permute(1, 2, 3, 0).reshape(8, 3, 3, 4, 4).sum(-1)
    assert bool((runs_t == 2).all())
    lin = torch.randn(5, 12)
    assert bool((nm.mask(lin, None, "linear").reshape(5, 3, 4).sum(-1) == 2).all())
    old = nm.mask(w, None, "conv", nm_axis="kernel").permute(0, 2, 3, 1).reshape(8, 3, 3, 4, 4).sum(-1)
    assert not bool((old == 2).all())  # the older layout runs along the kernel instead


def test_nm_two_of_four_exact_and_sparsity_ignored():
    w = torch.randn(16, 8, 3, 3)
    mask = GRANULARITIES.get("nm").mask(w, 0.9, "conv", nm="2:4", nm_axis="kernel")
    runs = mask.reshape(16, -1, 4).sum(-1)
    assert bool((runs == 2).all())


def test_filter_of_conv_transpose_is_dim_1():
    w = torch.randn(6, 8, 4, 4)
    mask = GRANULARITIES.get("filter").mask(w, 0.5, "conv_transpose")
    per_out = mask.transpose(0, 1).reshape(8, -1)
    assert bool((per_out.all(1) | ~per_out.any(1)).all())
    assert int((~per_out.any(1)).sum()) == 4


def test_channel_of_linear_is_column():
    w = torch.randn(5, 10)
    mask = GRANULARITIES.get("channel").mask(w, 0.3, "linear")
    cols = mask.all(0) | ~mask.any(0)
    assert bool(cols.all()) and int((~mask.any(0)).sum()) == 3


def test_block_ragged_tiles_mean_of_squares():
    # 5x6 with 4x4 tiles: one full tile and three ragged; constant weights: the ragged
    # tiles must not lose only because they are smaller (mean of squares ties them).
    w = torch.ones(5, 6)
    w[:4, :4] = 0.5
    mask = GRANULARITIES.get("block").mask(w, 0.25, "linear", block="4x4")
    assert not bool(mask[:4, :4].any()) and bool(mask[4:, :].all() and mask[:, 4:].all())


@settings(max_examples=30, deadline=None)
@given(
    name=st.sampled_from(SCORED),
    kind=st.sampled_from(["conv", "conv_transpose", "linear"]),
    groups=st.sampled_from([1, 2]),
    out_per=st.integers(1, 4),
    slots=st.integers(1, 4),
    kh=st.integers(1, 3),
    kw=st.integers(1, 3),
    sparsity=st.floats(0.0, 0.99),
    seed=st.integers(0, 2**16),
)
def test_property_any_shape(name, kind, groups, out_per, slots, kh, kw, sparsity, seed):
    if kind == "linear":
        groups, shape = 1, (out_per * 2, slots * 2)
    elif kind == "conv":
        shape = (out_per * groups, slots, kh, kw)
    else:
        shape = (slots * groups, out_per, kh, kw)
    geo = geometry(shape, kind, groups)
    block = (min(2, geo.out), min(3, geo.cols))
    w = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    mask = GRANULARITIES.get(name).mask(w, sparsity, kind, groups=groups, block=block)
    check_mask(name, w, kind, groups, sparsity, mask, block)


@settings(max_examples=25, deadline=None)
@given(kind=st.sampled_from(["conv", "conv_transpose", "linear"]), a=st.integers(1, 5), b=st.integers(1, 5),
       n=st.integers(1, 3), extra=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_property_nm(kind, a, b, n, extra, seed):
    shape = (a, b) if kind == "linear" else (a, b, 2, 3)
    w = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    mask = GRANULARITIES.get("nm").mask(w, None, kind, nm=(n, n + extra), nm_axis="kernel")
    assert torch.equal(mask, brute_nm(w, kind, 1, n, n + extra))
    mask_in = GRANULARITIES.get("nm").mask(w, None, kind, nm=(n, n + extra))
    assert torch.equal(mask_in, brute_nm(w, kind, 1, n, n + extra, axis="in"))


# ----------------------------------------------------------------- canonical view
@pytest.mark.parametrize("layer", list(LAYERS))
def test_canonical_round_trip_and_rows_are_outputs(layer):
    kind, shape, groups = LAYERS[layer]
    w = torch.randn(shape)
    geo = geometry(shape, kind, groups)
    mat = to_canonical(w, geo)
    assert torch.equal(from_canonical(mat, geo), w)
    for idx in itertools.product(*[range(s) for s in shape]):
        o, slot, _, kk = _true_axes(kind, shape, groups, idx)
        assert mat[o, _canon_col(shape, slot, kk)] == w[idx]


# ----------------------------------------------------------------- selection core
@pytest.mark.parametrize("gather_max", [0, 1 << 20])
@pytest.mark.parametrize("seed", range(4))
def test_kth_smallest_matches_sort(seed, gather_max, monkeypatch):
    monkeypatch.setattr(G, "_PIECE", 7)  # force several radix chunks
    monkeypatch.setattr(G, "_GATHER_MAX", gather_max)  # 0: always the low-bits histogram
    gen = torch.Generator().manual_seed(seed)
    parts = [torch.randn(13, generator=gen), torch.randint(-3, 3, (20,), generator=gen).float(),
             torch.tensor([math.inf, -1.0, 0.0, -0.0, 1e-30, -1e30, -math.inf, -1e-45, -0.0, -1e-44, 1e-45])]
    flat = torch.sort(torch.cat(parts)).values
    for d in range(flat.numel()):
        assert G.kth_smallest(parts, d) == flat[d].item()


def test_select_top_ties_keep_lowest_index():
    masks = select_top([torch.tensor([1.0, 2.0, 2.0]), torch.tensor([2.0, 0.5])], 2)
    assert masks[0].tolist() == [False, True, True] and masks[1].tolist() == [False, False]
    masks = select_top([torch.tensor([1.0, 2.0, 2.0]), torch.tensor([2.0, 0.5])], 4)
    assert masks[0].tolist() == [True, True, True] and masks[1].tolist() == [True, False]
    masks = select_top([torch.tensor([3.0, 2.0, 2.0]), torch.tensor([2.0, 2.0, 0.5])], 3)
    assert masks[0].tolist() == [True, True, True] and masks[1].tolist() == [False, False, False]
    masks = select_top([torch.tensor([1.0, 2.0, 2.0, 2.0, 5.0])], 3)
    assert masks[0].tolist() == [False, True, True, False, True]


def test_deterministic_ties_all_equal():
    w = torch.ones(8, 4, 3, 3)
    a = GRANULARITIES.get("kernel").mask(w, 0.5, "conv")
    b = GRANULARITIES.get("kernel").mask(w.clone(), 0.5, "conv")
    assert torch.equal(a, b) and int(a.sum()) == 16 * 9
    assert bool(a[:4].all()) and not bool(a[4:].any())  # lowest unit indices win ties
    assert torch.equal(nm_keep(torch.ones(2, 8), 2, 4), torch.tensor([[1, 1, 0, 0] * 2] * 2, dtype=torch.bool))


def test_at_least_one_unit_kept_in_a_layer():
    w = torch.randn(3, 2, 3, 3)
    mask = GRANULARITIES.get("filter").mask(w, 0.99, "conv")
    assert int(mask.reshape(3, -1).any(1).sum()) == 1


# ----------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("bad", ["4x0", "0x4", "x4", "4", "abc", (4,), (2, 0), (True, 2)])
def test_parse_block_rejects(bad):
    with pytest.raises(InputError, match="block"):
        parse_block(bad)


@pytest.mark.parametrize("bad", ["3:2", "0:4", "4:4", "2-4", "a:b", (2,)])
def test_parse_nm_rejects(bad):
    with pytest.raises(InputError, match="N:M"):
        parse_nm(bad)


def test_parse_ok():
    assert parse_block("4x4") == (4, 4) and parse_block(" 8X2 ") == (8, 2) and parse_block([1, 4]) == (1, 4)
    assert parse_nm("2:4") == (2, 4) and parse_nm((1, 8)) == (1, 8)


@pytest.mark.parametrize("bad", [1.0, -0.1, "abc", float("nan"), True, None])
def test_bad_sparsity(bad):
    with pytest.raises(InputError, match=r"sparsity.*\[0, 1\)"):
        GRANULARITIES.get("element").mask(torch.randn(4, 4), bad, "linear")


def test_block_larger_than_layer_names_layer():
    with pytest.raises(InputError, match=r"net\.3\.weight.*smaller --block"):
        GRANULARITIES.get("block").mask(torch.randn(3, 2, 1, 1), 0.5, "conv", block=(4, 4), layer="net.3.weight")


def test_nonfinite_weights_rejected():
    w = torch.randn(4, 4)
    w[0, 0] = math.nan
    with pytest.raises(InputError, match="NaN"):
        GRANULARITIES.get("element").mask(w, 0.5, "linear", layer="fc")


def test_unknown_granularity_lists_choices():
    with pytest.raises(InputError, match="choose one of"):
        GRANULARITIES.get("filters")


# ----------------------------------------------------------------- detection
@pytest.mark.parametrize("layer", ["conv2d", "convT2d", "grouped", "groupedT"])
@pytest.mark.parametrize("name", ["element", "vector", "kernel", "filter", "channel"])
def test_detect_structure_per_granularity(layer, name):
    kind, shape, groups = LAYERS[layer]
    w = torch.randn(shape, generator=torch.Generator().manual_seed(1)) + 0.01
    mask = GRANULARITIES.get(name).mask(w, 0.5, kind, groups=groups)
    assert detect_structure(w * mask, kind, groups) == name


@pytest.mark.parametrize("block", [(4, 4), (2, 2), (8, 8), (1, 4), (4, 1), (2, 4), (8, 2)])
@pytest.mark.parametrize("layer", ["conv2d", "convT4"])
def test_detect_block(block, layer):
    kind, shape = ("conv", (16, 8, 3, 3)) if layer == "conv2d" else ("conv_transpose", (32, 16, 4, 4))
    w = torch.randn(shape)
    mask = GRANULARITIES.get("block").mask(w, 0.5, kind, block=block)
    # 4-wide kernel rows of the transposed conv make 1x4 tiles look like vectors (same unit)
    expected = "vector" if (layer, block) == ("convT4", (1, 4)) else f"block {block[0]}x{block[1]}"
    assert detect_structure(w * mask, kind) == expected


@pytest.mark.parametrize("nm", [(2, 4), (1, 4), (4, 8)])
def test_detect_nm(nm):
    w = torch.randn(16, 32)
    mask = GRANULARITIES.get("nm").mask(w, None, "linear", nm=nm)
    assert detect_structure(w * mask, "linear") == f"{nm[0]}:{nm[1]}"


def test_detect_nm_axis():
    w = torch.randn(16, 32, 3, 3)
    nm = GRANULARITIES.get("nm")
    assert detect_structure(w * nm.mask(w, None, "conv")) == "2:4"
    assert detect_structure(w * nm.mask(w, None, "conv", nm_axis="kernel")) == "2:4 kernel-axis"


def test_detect_none_and_element_and_linear():
    torch.manual_seed(0)  # tiny layers can coincide with a coarser structure by chance
    w = torch.randn(16, 32)
    assert detect_structure(w, "linear") == "none"
    assert detect_structure(w * GRANULARITIES.get("element").mask(w, 0.7, "linear"), "linear") == "element"
    assert detect_structure(w * GRANULARITIES.get("filter").mask(w, 0.5, "linear"), "linear") == "filter"
    dw = torch.randn(64, 1, 3, 3)
    assert detect_structure(dw * GRANULARITIES.get("kernel").mask(dw, 0.5, "conv", groups=64), "conv", 64) == "filter"


def test_detect_tolerates_stray_exact_zeros():
    gen = torch.Generator().manual_seed(5)
    w = torch.randn(64, 32, 3, 3, generator=gen)
    w[3, 4, 1, 1] = 0.0  # an exact zero of the dense weights (e.g. fp16 underflow)
    assert detect_structure(w) == "element"
    for name, label in [("filter", "filter"), ("kernel", "kernel"), ("nm", "2:4")]:  # nm: input-channel runs
        mask = GRANULARITIES.get(name).mask(w, 0.5, "conv")
        pruned = w * mask
        pruned[tuple(mask.nonzero()[0].tolist())] = 0.0  # one more stray zero inside a kept unit
        assert detect_structure(pruned) == label
    very_sparse = w * GRANULARITIES.get("element").mask(w, 0.99, "conv")
    assert detect_structure(very_sparse) == "element"


def _is_nm_whole(rows, n, m):
    """N:M on the whole row matrix at once (the definition the sliced check must equal)."""
    from gancompress.prune import masks as M

    count, cols = rows.shape
    full = cols - cols % m
    if full == 0:
        return False
    counts = (~rows[:, :full]).reshape(count, -1, m).sum(-1)
    ragged = (~rows[:, full:]).sum(-1)
    ragged_n = -(-n * (cols - full) // m)
    at_most = bool((counts <= n).all() and (ragged <= ragged_n).all())
    return at_most and int(counts.sum() + ragged.sum()) >= (1 - M._STRAY) * (counts.numel() * n + count * ragged_n)


def _detect_whole(weight, kind="conv", groups=1):
    """The detection on the whole tensor (no banding, slicing or shortcuts): what detect_structure must equal."""
    from gancompress.prune import masks as M

    geo = geometry(weight.shape, kind, groups)
    zero = to_canonical(weight == 0, geo)
    zeros = int(zero.sum())
    if not zeros:
        return "none"
    for _, label, name, opts in M._candidates(geo):
        if M._stray(GRANULARITIES.get(name), zero, geo, opts) <= M._STRAY * zeros:
            return label
    for axis, suffix in (("in", ""), ("kernel", " kernel-axis")):
        rows = M.nm_rows(zero, geo, axis)
        for n, m in M._NMS:
            if _is_nm_whole(rows, n, m):
                return f"{n}:{m}{suffix}"
    return "element"


@pytest.mark.parametrize("layer,shape,groups", [("conv", (43, 6, 3, 3), 1), ("conv_transpose", (6, 21, 4, 4), 1),
                                                ("linear", (37, 20), 1), ("conv", (12, 3, 3, 3), 4)])
@pytest.mark.parametrize("pattern", ["stray", "block", "filter-stray", "kernel", "last-rows", "nm"])
def test_detect_on_zero_bands_equals_whole_tensor(layer, shape, groups, pattern):
    gen = torch.Generator().manual_seed(hash((layer, pattern)) % 1000)
    w = torch.randn(shape, generator=gen) + 0.01
    flat = w.view(-1)
    if pattern == "stray":
        flat[torch.randint(0, flat.numel(), (3,), generator=gen)] = 0.0
    elif pattern == "block":
        w = w * GRANULARITIES.get("block").mask(w, 0.5, layer, groups=groups, block=(2, 2))
    elif pattern == "filter-stray":
        w = w * GRANULARITIES.get("filter").mask(w, 0.25, layer, groups=groups)
        w.view(-1)[5] = 0.0
    elif pattern == "kernel":
        w = w * GRANULARITIES.get("kernel").mask(w, 0.5, layer, groups=groups)
    elif pattern == "last-rows":
        geo = geometry(w.shape, layer, groups)
        canon = to_canonical(w, geo).clone()
        canon[-1, :] = 0.0  # one whole unit in the ragged last band only
        w = from_canonical(canon, geo).contiguous()
    else:
        w = w * GRANULARITIES.get("nm").mask(w, None, layer, groups=groups, nm=(2, 4))
    assert detect_structure(w, layer, groups) == _detect_whole(w, layer, groups)


@pytest.mark.parametrize("layer", list(LAYERS))
@pytest.mark.parametrize("name", SCORED + ["nm"])
@pytest.mark.parametrize("block", [(2, 2), (3, 2), (1, 4)])
def test_unit_size_is_the_largest_unit_counted(layer, name, block):
    """``unit_size`` (from shapes alone: no weight-sized tensor) equals the largest unit's count of weights."""
    kind, shape, groups = LAYERS[layer]
    geo, gran, opts = geometry(shape, kind, groups), GRANULARITIES.get(name), {"block": block}
    sizes = gran.unit_reduce(torch.ones(geo.out, geo.cols), geo, opts, "sum")
    assert gran.unit_size(geo, opts) == int(sizes.max())
