"""Allocations (uniform, global, LAMP, ERK), the keep-dense policy and unreachable targets."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from gancompress.errors import InputError
from gancompress.prune import (ALLOCATIONS, GRANULARITIES, PruneConfig, achieved_sparsity, apply_masks, compute_masks,
                               lamp_scores, layer_report, module_geometry, plan_target, to_canonical)
from gancompress.prune.keep_dense import Layer, choose_dense, parse_keep_dense

SCORED = [g for g in GRANULARITIES.names() if g != "nm"]
OPTS = {"block": (2, 2), "nm": (2, 4), "nm_axis": "in"}


def model(seed: int, widths: tuple[int, int, int]) -> nn.Module:
    torch.manual_seed(seed)
    a, b, c = widths
    return nn.Sequential(nn.Linear(6, a * 4), nn.Unflatten(1, (a, 2, 2)), nn.ConvTranspose2d(a, b, 4, 2, 1),
                         nn.Conv2d(b, c, 3, padding=1), nn.Conv2d(c, c, 3, padding=1, groups=c), nn.Conv2d(c, 2, 1))


def biggest_unit(m: nn.Module, masks: dict, gran: str) -> int:
    sizes = []
    for key in masks:
        geo = module_geometry(m.get_submodule(key.rsplit(".", 1)[0]))
        sizes.append(int(GRANULARITIES.get(gran).unit_reduce(torch.ones(geo.out, geo.cols), geo, OPTS, "sum").max()))
    return max(sizes)


@settings(max_examples=40, deadline=None)
@given(alloc=st.sampled_from(ALLOCATIONS.names()), gran=st.sampled_from(SCORED), sparsity=st.floats(0.0, 0.8),
       seed=st.integers(0, 10_000), widths=st.tuples(st.integers(2, 6), st.integers(2, 6), st.integers(2, 6)))
def test_every_allocation_is_exact_to_one_unit(alloc, gran, sparsity, seed, widths):
    """The zeros over ALL prunable weights equal the target within one unit of the granularity."""
    m = model(seed, widths)
    config = PruneConfig(sparsity, granularity=gran, allocation=alloc, block=(2, 2), keep_dense="none")
    try:
        plan = plan_target(m, config)
    except InputError as exc:  # a target beyond what keeping one unit per layer allows is refused, never missed
        assert "out of reach" in str(exc)
        return
    masks = compute_masks(m, config, plan=plan)
    apply_masks(m, masks)
    zeros = sum(r["zeros"] for r in layer_report(m, masks))
    assert abs(zeros - plan.target) <= biggest_unit(m, masks, gran)
    for key, mask in masks.items():  # every layer keeps a unit
        assert bool(mask.any()), key


@pytest.mark.parametrize("alloc", ["uniform", "global", "lamp", "erk"])
def test_element_allocations_hit_the_target_to_the_weight(alloc):
    m = model(3, (8, 6, 4))
    masks = compute_masks(m, PruneConfig(0.83, allocation=alloc, keep_dense="none"))
    apply_masks(m, masks)
    total = sum(r["params"] for r in layer_report(m, masks))
    assert sum(r["zeros"] for r in layer_report(m, masks)) == math.floor(0.83 * total + 0.5)


def brute_lamp(weights: list[torch.Tensor]) -> list[torch.Tensor]:
    """LAMP scores by the definition: w_u^2 / sum of w_v^2 over the v of the same layer with
    |w_v| >= |w_u| (ties: v at or after u in the order weakest first, higher index first)."""
    out = []
    for w in weights:
        flat = w.reshape(-1).double()
        n = flat.numel()
        key = [(abs(float(flat[i])), -i) for i in range(n)]
        scores = torch.empty(n, dtype=torch.float64)
        for u in range(n):
            scores[u] = flat[u] ** 2 / sum(flat[v] ** 2 for v in range(n) if key[v] >= key[u])
        out.append(scores.reshape(w.shape))
    return out


def test_lamp_scores_match_the_definition():
    torch.manual_seed(0)
    ms = torch.rand(7).sort().values
    expected = torch.tensor([ms[i] / ms[i:].sum() for i in range(7)], dtype=torch.float64)
    assert torch.allclose(lamp_scores(ms), expected)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), sparsity=st.floats(0.1, 0.6), sizes=st.tuples(st.integers(2, 5), st.integers(2, 5)))
def test_lamp_prunes_the_lowest_brute_force_scores(seed, sparsity, sizes):
    """On small tensors, LAMP drops exactly the weights with the lowest brute-force LAMP scores
    (each layer's best weight kept)."""
    gen = torch.Generator().manual_seed(seed)
    m = nn.Sequential(nn.Linear(sizes[0], sizes[1]), nn.Linear(sizes[1], 3), nn.Linear(3, 2))
    with torch.no_grad():
        for layer in m:
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen))
    masks = compute_masks(m, PruneConfig(sparsity, allocation="lamp", keep_dense="none"))
    weights = [layer.weight.detach() for layer in m]
    scores = brute_lamp(weights)
    total = sum(w.numel() for w in weights)
    candidates = sorted((float(s.reshape(-1)[i]), li, i) for li, s in enumerate(scores) for i in range(s.numel())
                        if i != int(weights[li].abs().reshape(-1).argmax()))
    drop = {(li, i) for _, li, i in candidates[: math.floor(sparsity * total + 0.5)]}
    for li, key in enumerate(masks):
        got = {(li, i) for i in range(masks[key].numel()) if not bool(masks[key].reshape(-1)[i])}
        assert got == {d for d in drop if d[0] == li}, key


def test_erk_gives_small_layers_more_density():
    m = model(1, (8, 8, 8))
    masks = compute_masks(m, PruneConfig(0.8, allocation="erk", keep_dense="none"))
    apply_masks(m, masks)
    rows = {r["name"]: r for r in layer_report(m, masks)}
    assert rows["3"]["achieved"] > rows["4"]["achieved"] > rows["5"]["achieved"]  # 576 > 72 > 16 weights
    raw = {n: sum(s) / math.prod(s) for n, s in ((n, rows[n]["shape"]) for n in ("2", "3", "4"))}
    dens = {n: 1 - rows[n]["achieved"] for n in raw}
    assert dens["3"] / dens["2"] == pytest.approx(raw["3"] / raw["2"], rel=0.1)  # density proportional to ERK


def test_global_and_lamp_refused_for_nm_and_coupled():
    with pytest.raises(InputError, match="--allocation uniform"):
        PruneConfig(None, granularity="nm", allocation="global")
    with pytest.raises(InputError, match="coupled"):
        PruneConfig(0.5, granularity="filter", coupled=True, allocation="lamp")


# ----------------------------------------------------------------- keep-dense policy
LAYERS = [Layer("in", 30), Layer("a", 2000), Layer("b", 3000), Layer("out", 20)]


def test_auto_keeps_small_input_and_output_layers():
    choice = choose_dense(LAYERS, ("auto",))
    assert set(choice.dense) == {"in", "out"} and choice.optional == ("in", "out")
    assert "reads the input" in choice.dense["in"] and "feeds the output" in choice.dense["out"]
    big = [Layer("in", 3000), Layer("a", 2000), Layer("out", 500)]
    assert choose_dense(big, ("auto",)).dense == {}  # large end layers are pruned


def test_words_globs_include_exclude():
    assert set(choose_dense(LAYERS, ("first", "last")).dense) == {"in", "out"}
    assert choose_dense(LAYERS, ("none",)).dense == {}
    assert set(choose_dense(LAYERS, ("[ab]",)).dense) == {"a", "b"}
    assert set(choose_dense(LAYERS, ("none",), include=("a",)).dense) == {"in", "b", "out"}
    assert set(choose_dense(LAYERS, ("first",), exclude=("b",)).dense) == {"in", "b"}
    assert parse_keep_dense("first, last") == ("first", "last") and parse_keep_dense(None) == ("auto",)
    with pytest.raises(InputError, match="matches no prunable layer"):
        choose_dense(LAYERS, ("zzz*",))
    with pytest.raises(InputError, match="no layer left"):
        choose_dense(LAYERS, ("*",))


def test_auto_prunes_its_layers_when_the_target_needs_them():
    m = nn.Sequential(nn.Linear(4, 16), nn.Linear(16, 64), nn.Linear(64, 64), nn.Linear(64, 1))  # ends: 64 + 64 of 5,248
    plan = plan_target(m, PruneConfig(0.5, granularity="nm"))
    assert plan.dense == {} and any("pruned too" in n for n in plan.notes)  # 2:4 needs every layer for 50%
    assert set(plan_target(m, PruneConfig(0.5)).dense) == {"0", "3"}


# ----------------------------------------------------------------- unreachable targets
def test_unreachable_target_is_refused_with_the_shortfall():
    m = model(0, (4, 4, 4))
    with pytest.raises(InputError, match=r"out of reach.*points short"):
        plan_target(m, PruneConfig(0.99, granularity="filter", keep_dense="first"))
    with pytest.raises(InputError, match=r"N:M 2:4.*out of reach|out of reach.*N:M 2:4"):
        plan_target(m, PruneConfig(0.6, granularity="nm", keep_dense="none"))
    with pytest.raises(InputError, match="part-way"):
        plan_target(m, PruneConfig(0.3, granularity="nm", keep_dense="none"))
    plan_target(m, PruneConfig(0.3, granularity="nm", keep_dense="none"), final=False)  # a gradual step may


def test_reprune_keeps_old_zeros_and_counts_them():
    m = model(2, (6, 6, 6))
    first = compute_masks(m, PruneConfig(0.4, granularity="filter"))
    apply_masks(m, first)
    second = compute_masks(m, PruneConfig(0.7, allocation="lamp"), previous=first)
    apply_masks(m, second)
    for key in first:
        assert not bool((~first[key] & second[key]).any())
    total = sum(r["params"] for r in layer_report(m, second))
    assert abs(achieved_sparsity(m, second)["all"] * total - 0.7 * total) <= 1
