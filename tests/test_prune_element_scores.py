"""Element pruning a slab of canonical rows at a time gives the masks of the whole-tensor selection
exactly: every layer kind and dtype, drop counts across the range, ties, exact zeros, earlier masks, and slabs
forced down to a few rows (so thresholds, ties and the always-kept weight fall across slabs)."""
from __future__ import annotations

import importlib
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from gancompress.errors import InputError
from gancompress.prune import GRANULARITIES, PruneConfig, compute_masks, module_geometry
from gancompress.prune.element_scores import ElementScores, element_mask
from gancompress.prune.granularity import select_top

from test_prune_whole_units import both, fill, model, previous_masks

element_scores = importlib.import_module("gancompress.prune.element_scores")
ELEMENT = GRANULARITIES.get("element")
LAYERS = {
    "linear": lambda: nn.Linear(7, 5),
    "conv": lambda: nn.Conv2d(4, 6, 3),
    "conv-groups": lambda: nn.Conv2d(4, 6, 3, groups=2),
    "convT": lambda: nn.ConvTranspose2d(5, 3, 4),
    "convT-groups": lambda: nn.ConvTranspose2d(4, 6, 3, groups=2),
}


def whole_tensor_mask(weight, geo, previous, k: int) -> torch.Tensor:
    """The reference: the whole score tensor, its best unit at +inf, ``select_top``, ``to_mask``."""
    s = ELEMENT.unit_scores(weight, geo, previous, "w", {}).contiguous()
    s.masked_fill_(ELEMENT.always_kept(s, geo, {}), math.inf)
    return ELEMENT.to_mask(select_top([s], s.numel() - k)[0], geo, previous, {})


@pytest.mark.parametrize("layer", sorted(LAYERS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("style,previous", [("ties", False), ("ties", True), ("normal", True)])
def test_streamed_mask_equals_the_whole_tensor_mask(layer, dtype, style, previous, monkeypatch):
    monkeypatch.setattr(element_scores, "_SLAB", 11)  # a row or two per slab
    module = fill(LAYERS[layer](), 3, style, dtype)
    geo, weight = module_geometry(module), module.weight
    prev = torch.rand(weight.shape, generator=torch.Generator().manual_seed(5)) > 0.4 if previous else None
    kept = None if prev is None else prev.clone()
    scores = ElementScores(weight, geo, prev, "w")
    assert torch.equal(scores.full(), ELEMENT.unit_scores(weight, geo, prev, "w", {}))
    n = weight.numel()
    for k in sorted({*range(0, n, 5), 1, n // 2, n - 2, n - 1}):  # every fifth count and the edges
        assert torch.equal(element_mask(weight, geo, prev, "w", k), whole_tensor_mask(weight, geo, prev, k)), k
    assert prev is None or torch.equal(prev, kept)  # the caller's mask is read, never changed


def test_all_equal_weights_keep_the_lowest_indices():
    conv = nn.ConvTranspose2d(3, 2, 2)
    with torch.no_grad():
        conv.weight.fill_(0.5)
    geo = module_geometry(conv)
    mask = element_mask(conv.weight, geo, None, "w", 20)
    canonical = mask.reshape(3, 2, 4).permute(1, 0, 2).reshape(-1)  # (out, in, k): canonical order
    assert canonical.tolist() == [True] * 4 + [False] * 20


def test_nan_weights_are_refused():
    conv = nn.Conv2d(2, 2, 3)
    with torch.no_grad():
        conv.weight[1, 0, 2, 2] = math.nan
    with pytest.raises(InputError, match="NaN/Inf"):
        element_mask(conv.weight, module_geometry(conv), None, "layer", 5)


@settings(max_examples=20, deadline=None)
@given(alloc=st.sampled_from(["uniform", "global"]), sparsity=st.floats(0.0, 0.95),
       style=st.sampled_from(["ties", "signs", "normal"]), seed=st.integers(0, 10_000),
       previous=st.sampled_from(["none", "scattered", "same"]), slab=st.integers(1, 40),
       widths=st.tuples(st.integers(1, 5), st.integers(1, 5), st.integers(1, 5)))
def test_model_masks_with_small_slabs_equal_the_sorted_reference(alloc, sparsity, style, seed, previous, slab, widths):
    m = fill(model(widths), seed, style)
    config = PruneConfig(sparsity, granularity="element", allocation=alloc, keep_dense="none")
    with pytest.MonkeyPatch().context() as patch:
        patch.setattr(element_scores, "_SLAB", slab)
        try:
            fast, reference = both(m, config, previous_masks(m, seed, previous), pytest.MonkeyPatch())
        except InputError as exc:
            assert "out of reach" in str(exc)
            return
    assert fast.keys() == reference.keys()
    for key in fast:
        assert torch.equal(fast[key], reference[key]), key
