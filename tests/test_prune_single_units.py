"""Ranking single-weight units without a sort gives the sort's masks exactly (ties, old zeros,
earlier masks, N:M, every allocation), and falls back to the sort where it could not."""
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
from gancompress.prune.single_units import SingleRanked

masks_module = importlib.import_module("gancompress.prune.masks")
OPTS = {"block": (4, 4), "nm": (2, 4), "nm_axis": "in"}


def fill(m: nn.Module, seed: int, style: str, dtype=torch.float32) -> nn.Module:
    """Weights with many ties and exact zeros (``ties``), or continuous ones (``normal``)."""
    gen = torch.Generator().manual_seed(seed)
    m = m.to(dtype)
    with torch.no_grad():
        for p in m.parameters():
            if style == "ties":
                p.copy_(torch.randint(-3, 4, p.shape, generator=gen).to(dtype) * 0.25)
            else:
                p.copy_(torch.randn(p.shape, generator=gen, dtype=dtype))
    return m


def model(widths: tuple[int, int, int]) -> nn.Sequential:
    a, b, c = widths
    return nn.Sequential(nn.Linear(5, a * 4), nn.Unflatten(1, (a, 2, 2)), nn.ConvTranspose2d(a, b, 4, 2, 1),
                         nn.Conv2d(b, c, 3, padding=1), nn.Conv2d(c, c, 3, padding=1, groups=c), nn.Conv2d(c, 3, 1))


def previous_masks(m: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed + 1)
    return {param_key(n, mod): torch.rand(mod.weight.shape, generator=gen) > 0.3
            for n, mod in m.named_modules() if isinstance(mod, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))}


def both(m: nn.Module, config: PruneConfig, previous, monkeypatch, final: bool = True):
    fast = compute_masks(m, config, previous, final=final)
    with monkeypatch.context() as patch:
        patch.setattr(masks_module, "rank_layer", rank_sorted)
        reference = compute_masks(m, config, previous, final=final)
    return fast, reference


@settings(max_examples=40, deadline=None)
@given(alloc=st.sampled_from(["uniform", "global", "erk", "lamp"]), sparsity=st.floats(0.0, 0.95),
       style=st.sampled_from(["ties", "normal"]), seed=st.integers(0, 10_000), with_previous=st.booleans(),
       widths=st.tuples(st.integers(1, 5), st.integers(1, 5), st.integers(1, 5)))
def test_element_masks_equal_the_sorted_reference(alloc, sparsity, style, seed, with_previous, widths):
    m = fill(model(widths), seed, style)
    previous = previous_masks(m, seed) if with_previous else None
    config = PruneConfig(sparsity, allocation=alloc, keep_dense="none")
    try:
        fast, reference = both(m, config, previous, pytest.MonkeyPatch())
    except InputError as exc:
        assert "out of reach" in str(exc)
        return
    assert fast.keys() == reference.keys()
    for key in fast:
        assert torch.equal(fast[key], reference[key]), key


@settings(max_examples=25, deadline=None)
@given(nm=st.sampled_from([(2, 4), (1, 4), (3, 8)]), axis=st.sampled_from(["in", "kernel"]),
       style=st.sampled_from(["ties", "normal"]), seed=st.integers(0, 10_000), with_previous=st.booleans(),
       fraction=st.floats(0.2, 1.0), widths=st.tuples(st.integers(2, 6), st.integers(2, 6), st.integers(2, 6)))
def test_nm_masks_equal_the_sorted_reference(nm, axis, style, seed, with_previous, fraction, widths):
    """The full pattern and a step of a gradual schedule toward it (``final=False``)."""
    m = fill(model(widths), seed, style)
    previous = previous_masks(m, seed) if with_previous else None
    sparsity = None if fraction == 1.0 else fraction * (1 - nm[0] / nm[1])
    config = PruneConfig(sparsity, granularity="nm", nm=nm, nm_axis=axis, keep_dense="none")
    try:
        fast, reference = both(m, config, previous, pytest.MonkeyPatch(), final=sparsity is None)
    except InputError:
        return  # the same refusal on both paths: the target is settled before any ranking
    for key in fast:
        assert torch.equal(fast[key], reference[key]), key


@pytest.mark.parametrize("gran", ["element", "nm"])
@pytest.mark.parametrize("style", ["ties", "normal"])
def test_one_layer_ranking_matches_the_sort_at_every_count(gran, style):
    """``zeros_after``, ``fit`` and the kept units agree with the sorted ranking for every k."""
    conv = fill(nn.Conv2d(8, 3, 3), 7, style)
    geo, weight = module_geometry(conv), conv.weight
    previous = torch.rand(weight.shape, generator=torch.Generator().manual_seed(3)) > 0.2
    fast, shape = rank_layer("w", weight, geo, previous, GRANULARITIES.get(gran), OPTS)
    slow, slow_shape = rank_sorted("w", weight, geo, previous, GRANULARITIES.get(gran), OPTS)
    assert isinstance(fast, SingleRanked) and shape == slow_shape
    assert (fast.zeros, fast.droppable, fast.most) == (slow.zeros, slow.droppable, slow.most)
    for k in range(fast.droppable + 1):
        assert fast.zeros_after(k) == slow.zeros_after(k)
        assert torch.equal(fast.keep_units(k, shape), slow.keep_units(k, shape)), k
    for room in range(-1, weight.numel() + 2):
        assert fast.fit(room) == slow.fit(room), room


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
    assert isinstance(rank_layer("3.weight", m[3].weight, geo, None, gran, OPTS)[0], SingleRanked)
    fast, reference = both(m, PruneConfig(0.5, allocation="global", keep_dense="none"), None, monkeypatch)
    assert all(torch.equal(fast[k], reference[k]) for k in fast)
