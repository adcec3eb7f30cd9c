"""Ranking whole units without a sort gives the sort's masks exactly (every granularity and
allocation, ties, exact zeros, earlier masks, N:M), and falls back to the sort where it could not."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import importlib
from gancompress.errors import InputError
from gancompress.prune import GRANULARITIES, PruneConfig, compute_masks, module_geometry, param_key
from gancompress.prune.allocation import Ranked, rank_layer, rank_sorted
from gancompress.prune.whole_units import WholeRanked

masks_module = importlib.import_module("gancompress.prune.masks")
OPTS = {"block": (2, 2), "nm": (2, 4), "nm_axis": "in"}
SCORED = [g for g in GRANULARITIES.names() if g != "nm"]


def fill(m: nn.Module, seed: int, style: str, dtype=torch.float32) -> nn.Module:
    """Weights with many ties and exact zeros (``ties``), ties without zeros (``signs``), or
    continuous ones (``normal``)."""
    gen = torch.Generator().manual_seed(seed)
    m = m.to(dtype)
    with torch.no_grad():
        for p in m.parameters():
            if style == "ties":
                p.copy_(torch.randint(-3, 4, p.shape, generator=gen).to(dtype) * 0.25)
            elif style == "signs":
                sign = torch.randint(0, 2, p.shape, generator=gen).to(dtype) * 2 - 1
                p.copy_(torch.randint(1, 4, p.shape, generator=gen).to(dtype) * 0.25 * sign)
            else:
                p.copy_(torch.randn(p.shape, generator=gen, dtype=dtype))
    return m


def model(widths: tuple[int, int, int]) -> nn.Sequential:
    a, b, c = widths
    return nn.Sequential(nn.Linear(5, a * 4), nn.Unflatten(1, (a, 2, 2)), nn.ConvTranspose2d(a, b, 4, 2, 1),
                         nn.Conv2d(b, c, 3, padding=1), nn.Conv2d(c, c, 3, padding=1, groups=c), nn.Conv2d(c, 3, 1))


def previous_masks(m: nn.Module, seed: int, kind: str, gran: str = "element") -> dict[str, torch.Tensor] | None:
    """None, scattered masks (units part-empty: the sorted fallback) or a first prune at ``gran``."""
    if kind == "none":
        return None
    if kind == "same":
        return compute_masks(m, PruneConfig(0.3, granularity=gran, block=(2, 2), keep_dense="none"))
    gen = torch.Generator().manual_seed(seed + 1)
    return {param_key(n, mod): torch.rand(mod.weight.shape, generator=gen) > 0.3
            for n, mod in m.named_modules() if isinstance(mod, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))}


def both(m: nn.Module, config: PruneConfig, previous, monkeypatch, final: bool = True):
    fast = compute_masks(m, config, previous, final=final)
    with monkeypatch.context() as patch:
        patch.setattr(masks_module, "rank_layer", rank_sorted)
        reference = compute_masks(m, config, previous, final=final)
    return fast, reference


@settings(max_examples=60, deadline=None)
@given(gran=st.sampled_from(SCORED), alloc=st.sampled_from(["uniform", "global", "erk", "lamp"]),
       sparsity=st.floats(0.0, 0.95), style=st.sampled_from(["ties", "signs", "normal"]), seed=st.integers(0, 10_000),
       previous=st.sampled_from(["none", "scattered", "same"]),
       widths=st.tuples(st.integers(1, 5), st.integers(1, 5), st.integers(1, 5)))
def test_masks_equal_the_sorted_reference(gran, alloc, sparsity, style, seed, previous, widths):
    m = fill(model(widths), seed, style)
    config = PruneConfig(sparsity, granularity=gran, allocation=alloc, block=(2, 2), keep_dense="none")
    try:
        prev = previous_masks(m, seed, previous, gran)
        fast, reference = both(m, config, prev, pytest.MonkeyPatch())
    except InputError as exc:
        assert "out of reach" in str(exc) or "larger than layer" in str(exc)
        return
    assert fast.keys() == reference.keys()
    for key in fast:
        assert torch.equal(fast[key], reference[key]), key


@settings(max_examples=25, deadline=None)
@given(nm=st.sampled_from([(2, 4), (1, 4), (3, 8)]), axis=st.sampled_from(["in", "kernel"]),
       style=st.sampled_from(["ties", "normal"]), seed=st.integers(0, 10_000),
       previous=st.sampled_from(["none", "scattered"]), fraction=st.floats(0.2, 1.0),
       widths=st.tuples(st.integers(2, 6), st.integers(2, 6), st.integers(2, 6)))
def test_nm_masks_equal_the_sorted_reference(nm, axis, style, seed, previous, fraction, widths):
    """The full pattern and a step of a gradual schedule toward it (``final=False``)."""
    m = fill(model(widths), seed, style)
    previous = previous_masks(m, seed, previous)
    sparsity = None if fraction == 1.0 else fraction * (1 - nm[0] / nm[1])
    config = PruneConfig(sparsity, granularity="nm", nm=nm, nm_axis=axis, keep_dense="none")
    try:
        fast, reference = both(m, config, previous, pytest.MonkeyPatch(), final=sparsity is None)
    except InputError:
        return  # the same refusal on both paths: the target is settled before any ranking
    for key in fast:
        assert torch.equal(fast[key], reference[key]), key


@pytest.mark.parametrize("gran", SCORED + ["nm"])
@pytest.mark.parametrize("style", ["signs", "normal"])
def test_one_layer_ranking_matches_the_sort_at_every_count(gran, style):
    """``zeros_after``, ``fit`` and the kept units agree with the sorted ranking for every k
    (after a first prune at the same granularity: whole units, some empty)."""
    conv = fill(nn.Conv2d(8, 4, 3), 7, style)
    geo, weight, g = module_geometry(conv), conv.weight, GRANULARITIES.get(gran)
    previous = g.mask(weight, 0.3, groups=1, **OPTS) if gran != "nm" else None
    fast, shape = rank_layer("w", weight, geo, previous, g, OPTS)
    slow, slow_shape = rank_sorted("w", weight, geo, previous, g, OPTS)
    assert isinstance(fast, WholeRanked) and shape == slow_shape
    assert (fast.zeros, fast.droppable, fast.most) == (slow.zeros, slow.droppable, slow.most)
    for k in range(fast.droppable + 1):
        assert fast.zeros_after(k) == slow.zeros_after(k)
        assert torch.equal(fast.keep_units(k, shape), slow.keep_units(k, shape)), k
    for room in range(-1, weight.numel() + 2):
        assert fast.fit(room) == slow.fit(room), room


def test_part_empty_units_and_ragged_tiles_are_sorted():
    conv = fill(nn.Conv2d(8, 4, 3), 1, "normal")
    geo, weight = module_geometry(conv), conv.weight
    scattered = torch.rand(weight.shape, generator=torch.Generator().manual_seed(0)) > 0.3
    assert isinstance(rank_layer("w", weight, geo, scattered, GRANULARITIES.get("kernel"), OPTS)[0], Ranked)
    ragged = {**OPTS, "block": (3, 4)}  # 8 rows: the last tiles hold 2 rows, not 3
    assert isinstance(rank_layer("w", weight, geo, None, GRANULARITIES.get("block"), ragged)[0], Ranked)
    assert isinstance(rank_layer("w", weight, geo, None, GRANULARITIES.get("kernel"), OPTS, "rms")[0], Ranked)


def test_float64_weights_below_float32_fall_back_to_the_sort(monkeypatch):
    """A float64 weight too small for float32 scores 0 but is not zero: the count shortcut would
    be wrong there, so the layer is sorted, and the masks still match the reference."""
    m = fill(model((3, 3, 3)), 5, "normal", torch.float64)
    with torch.no_grad():
        m[3].weight[0, :2] = 1e-300
    geo = module_geometry(m[3])
    ranked, _ = rank_layer("3.weight", m[3].weight, geo, None, GRANULARITIES.get("element"), OPTS)
    assert isinstance(ranked, Ranked)
    for alloc in ("uniform", "global"):
        fast, reference = both(m, PruneConfig(0.6, allocation=alloc, keep_dense="none"), None, monkeypatch)
        assert all(torch.equal(fast[k], reference[k]) for k in fast)


def test_global_falls_back_where_rms_is_not_the_magnitude(monkeypatch):
    """Weights whose square underflows float32 rank by their root mean square on the sorted path
    (all tied at 0 there); the shortcut ranks by magnitude, so such a layer is sorted instead."""
    m = fill(model((2, 3, 3)), 9, "normal")
    with torch.no_grad():
        m[3].weight.mul_(1e-25)
    geo = module_geometry(m[3])
    gran = GRANULARITIES.get("element")
    assert isinstance(rank_layer("3.weight", m[3].weight, geo, None, gran, OPTS, "rms")[0], Ranked)
    assert isinstance(rank_layer("3.weight", m[3].weight, geo, None, gran, OPTS)[0], WholeRanked)
    fast, reference = both(m, PruneConfig(0.5, allocation="global", keep_dense="none"), None, monkeypatch)
    assert all(torch.equal(fast[k], reference[k]) for k in fast)
