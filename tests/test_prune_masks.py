"""PruneConfig, model-level masks (layer/global scope, previous masks), reports, AGP."""
from __future__ import annotations

import math
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from gancompress.archs.digits import DigitsGenerator
from gancompress.errors import InputError
from gancompress.prune import (GRANULARITIES, PruneConfig, achieved_sparsity, agp_schedule, agp_sparsity,
                               apply_masks, compute_masks, current_masks, detect_structure, layer_report,
                               module_geometry, module_structure, prunable_layers, to_canonical)

GRANS = GRANULARITIES.names()
SCORED = [g for g in GRANS if g != "nm"]


def small_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(8, 32),
        nn.Unflatten(1, (8, 2, 2)),
        nn.ConvTranspose2d(8, 8, 4, 2, 1),
        nn.BatchNorm2d(8),
        nn.Conv2d(8, 8, 3, padding=1, groups=2),
        nn.Conv2d(8, 8, 3, padding=1, groups=8),
        nn.Conv2d(8, 12, 3, padding=1),
        nn.Conv2d(12, 3, 1),
    )


def units_of(model, key, gran, masks):
    """(#units, #fully-pruned units) of one layer under ``gran``, via the canonical view."""
    module = model.get_submodule(key.rsplit(".", 1)[0])
    geo = module_geometry(module)
    g = GRANULARITIES.get(gran)
    opts = {"block": (2, 2), "nm": (2, 4)}
    alive = g.unit_reduce(to_canonical(masks[key], geo), geo, opts, "any")
    return alive.numel(), int((~alive).sum())


# ----------------------------------------------------------------- layer selection
def test_prunable_layers_default_skips_first_last_and_norms():
    names = [n for n, _ in prunable_layers(small_model())]
    assert names == ["2", "4", "5", "6"]
    assert [n for n, _ in prunable_layers(small_model(), prune_first_last=True)] == ["0", "2", "4", "5", "6", "7"]


def test_include_exclude_globs():
    m = small_model()
    assert [n for n, _ in prunable_layers(m, include=("4", "5"))] == ["4", "5"]
    assert [n for n, _ in prunable_layers(m, exclude=("[45]",))] == ["2", "6"]


def test_include_matching_nothing_warns():
    with pytest.warns(UserWarning, match="nothing_here"):
        prunable_layers(small_model(), include=("nothing_here", "4"))


def test_exclude_everything_errors():
    with pytest.raises(InputError, match="no layer left to prune.*relax"):
        prunable_layers(small_model(), exclude=("*",))


def test_two_layer_model_needs_prune_first_last():
    with pytest.raises(InputError, match="prune-first-last"):
        prunable_layers(nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4)))


def test_spectral_norm_weight_is_keyed_by_its_parameter():
    m = nn.Sequential(nn.Linear(4, 4), nn.utils.parametrizations.spectral_norm(nn.Linear(4, 8)), nn.Linear(8, 2))
    masks = compute_masks(m, PruneConfig(0.5))
    assert list(masks) == ["1.parametrizations.weight.original"]
    apply_masks(m, masks)
    assert int((m[1].weight == 0).sum()) == 16  # the normalised weight keeps the zeros


# ----------------------------------------------------------------- config validation
@pytest.mark.parametrize("bad", [1.0, -0.1, "abc", math.nan, None])
def test_config_bad_sparsity(bad):
    with pytest.raises(InputError, match="sparsity"):
        PruneConfig(bad)


def test_config_other_errors():
    with pytest.raises(InputError, match="choose one of"):
        PruneConfig(0.5, granularity="blocks")
    with pytest.raises(InputError, match="scope"):
        PruneConfig(0.5, scope="model")
    with pytest.raises(InputError, match="block"):
        PruneConfig(0.5, granularity="block", block="4x0")
    with pytest.raises(InputError, match="N:M"):
        PruneConfig(None, granularity="nm", nm="3:2")
    with pytest.raises(InputError, match="conflicts with N:M 2:4.*0.5"):
        PruneConfig(0.8, granularity="nm", nm="2:4")


def test_config_nm_implied_and_parsing():
    assert PruneConfig(None, granularity="nm").sparsity == 0.5
    assert PruneConfig(0, granularity="nm", nm="1:4").sparsity == 0.75
    assert PruneConfig(0.5, granularity="nm").sparsity == 0.5
    c = PruneConfig("0.25", granularity="block", block="2x8", include="net.*")
    assert c.sparsity == 0.25 and c.block == (2, 8) and c.include == ("net.*",)


# ----------------------------------------------------------------- layer scope
@pytest.mark.parametrize("gran", SCORED)
def test_layer_scope_each_layer_within_one_unit(gran):
    m = small_model()
    masks = compute_masks(m, PruneConfig(0.6, granularity=gran, block=(2, 2), prune_first_last=True))
    assert set(masks) == {"0.weight", "2.weight", "4.weight", "5.weight", "6.weight", "7.weight"}
    for key in masks:
        units, pruned = units_of(m, key, gran, masks)
        assert pruned == min(math.floor(0.6 * units + 0.5), units - 1), key


def test_nm_layer_masks():
    m = small_model()
    masks = compute_masks(m, PruneConfig(None, granularity="nm", scope="global"))
    w = m.get_parameter("6.weight")
    assert bool((masks["6.weight"].reshape(12, -1, 4).sum(-1) == 2).all())
    assert detect_structure(w * masks["6.weight"]) == "2:4"


@pytest.mark.parametrize("gran", GRANS)
def test_sparsity_zero_changes_nothing(gran):
    m = small_model()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    cfg = PruneConfig(0.0 if gran != "nm" else None, granularity=gran, block=(2, 2))
    masks = compute_masks(m, cfg)
    if gran != "nm":
        assert all(bool(v.all()) for v in masks.values())
        apply_masks(m, masks)
        assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


# ----------------------------------------------------------------- global scope
def test_global_keeps_a_unit_per_layer_and_right_total():
    m = small_model()
    with torch.no_grad():
        m[4].weight.mul_(1e-4)  # a tiny-scale layer would be emptied by a raw global threshold
    cfg = PruneConfig(0.9, granularity="filter", scope="global", prune_first_last=True)
    masks = compute_masks(m, cfg)
    counts = [units_of(m, k, "filter", masks) for k in masks]
    total = sum(u for u, _ in counts)
    assert all(p < u for u, p in counts)
    assert sum(p for _, p in counts) == math.floor(0.9 * total + 0.5)


@settings(max_examples=15, deadline=None)
@given(gran=st.sampled_from(SCORED), sparsity=st.floats(0.0, 0.97), seed=st.integers(0, 1000))
def test_global_property(gran, sparsity, seed):
    m = small_model(seed)
    masks = compute_masks(m, PruneConfig(sparsity, granularity=gran, scope="global", block=(2, 2)))
    counts = []
    for k in masks:
        module = m.get_submodule(k.rsplit(".", 1)[0])
        geo = module_geometry(module)
        alive = GRANULARITIES.get(gran).unit_reduce(
            to_canonical(masks[k], geo), geo, {"block": (2, 2), "nm": (2, 4)}, "any")
        counts.append((alive.numel(), int((~alive).sum())))
    total = sum(u for u, _ in counts)
    assert all(p < u for u, p in counts)
    assert sum(p for _, p in counts) == min(math.floor(sparsity * total + 0.5), total - len(counts))


def test_global_element_prunes_relatively_weak_weights():
    m = small_model()
    masks = compute_masks(m, PruneConfig(0.5, scope="global"))
    for k, mask in masks.items():
        w = m.get_parameter(k).detach().abs()
        score = w / w.mean()
        assert float(score[mask].min()) >= float(score[~mask].max()) - 1e-6


# ----------------------------------------------------------------- previous masks
@pytest.mark.parametrize("apply_first", [True, False])
@pytest.mark.parametrize("scope", ["layer", "global"])
@pytest.mark.parametrize("gran", SCORED)
def test_previous_masks_respected_50_to_80(gran, scope, apply_first):
    m = small_model()
    first = compute_masks(m, PruneConfig(0.5, granularity=gran, scope=scope, block=(2, 2)))
    if apply_first:
        apply_masks(m, first)
    second = compute_masks(m, PruneConfig(0.8, granularity=gran, scope=scope, block=(2, 2)), previous=first)
    for k in first:
        assert not bool((~first[k] & second[k]).any()), k
        if scope == "layer":
            units, pruned = units_of(m, k, gran, {k: second[k]})
            assert pruned == min(math.floor(0.8 * units + 0.5), units - 1), k


def test_previous_fine_then_coarse_keeps_old_zeros():
    m = small_model()
    first = compute_masks(m, PruneConfig(0.5))
    apply_masks(m, first)
    second = compute_masks(m, PruneConfig(0.5, granularity="filter"), previous=first)
    apply_masks(m, second)
    for k in first:
        assert not bool((~first[k] & second[k]).any())
    assert achieved_sparsity(m, second)["pruned"] > 0.7  # union of both patterns


def test_previous_nm_respected_and_unselected_masks_carried():
    m = small_model()
    first = compute_masks(m, PruneConfig(0.3, prune_first_last=True))
    second = compute_masks(m, PruneConfig(None, granularity="nm"), previous=first)
    assert set(second) == set(first)
    assert torch.equal(second["0.weight"], first["0.weight"])
    assert not bool((~first["6.weight"] & second["6.weight"]).any())


def test_previous_mask_of_wrong_shape():
    m = small_model()
    with pytest.raises(InputError, match="another model"):
        compute_masks(m, PruneConfig(0.5), previous={"2.weight": torch.ones(3, 3, dtype=torch.bool)})


# ----------------------------------------------------------------- apply & report
def test_apply_report_and_achieved_on_digits_generator():
    g = DigitsGenerator(nz=8, ngf=4, nc=1)
    masks = compute_masks(g, PruneConfig(0.5, granularity="kernel"))
    assert set(masks) == {"net.3.weight", "net.6.weight"}
    apply_masks(g, masks)
    rows = layer_report(g, masks, PruneConfig(0.5, granularity="kernel"))
    assert [r["name"] for r in rows] == ["net.0", "net.3", "net.6", "net.9"]
    by = {r["name"]: r for r in rows}
    assert by["net.3"]["type"] == "ConvTranspose2d" and by["net.3"]["shape"] == [16, 8, 4, 4]
    assert by["net.3"]["target"] == 0.5 and by["net.3"]["achieved"] == 0.5
    assert by["net.0"]["target"] == 0.0 and by["net.0"]["achieved"] == 0.0
    ach = achieved_sparsity(g, masks)
    pruned = by["net.3"]["params"] + by["net.6"]["params"]
    total = sum(r["params"] for r in rows)
    assert ach["pruned"] == 0.5 and ach["all"] == pytest.approx(0.5 * pruned / total)
    assert achieved_sparsity(g)["all"] == pytest.approx(ach["all"])  # from the zeros alone
    assert module_structure(g.net[3]) == "kernel"
    assert set(current_masks(g)) == {"net.0.weight", "net.3.weight", "net.6.weight", "net.9.weight"}


# ----------------------------------------------------------------- AGP schedule
def test_agp_values():
    assert agp_sparsity(0, 100, 0.9) == pytest.approx(0.05)
    assert agp_sparsity(50, 100, 0.9) == pytest.approx(0.9)
    assert agp_sparsity(100, 100, 0.9) == pytest.approx(0.9)
    assert agp_sparsity(25, 100, 0.9) == pytest.approx(0.9 + (0.05 - 0.9) * 0.5 ** 3)
    assert agp_sparsity(50, 100, 0.9, ramp_fraction=1.0) == pytest.approx(0.9 - 0.85 / 8)
    assert agp_sparsity(0, 10, 0.02) == 0.02  # final below initial -> final


def test_agp_schedule_monotone():
    s = agp_schedule(40, 0.8, initial=0.1, ramp_fraction=0.75)
    assert len(s) == 41 and s[0] == pytest.approx(0.1) and s[-1] == pytest.approx(0.8)
    assert all(b >= a for a, b in zip(s, s[1:]))
    assert max(s) <= 0.8 + 1e-12


@pytest.mark.parametrize("args", [(0, 0, 0.5), (0, 10, 1.0), (-1, 10, 0.5), (0, 10, 0.5, 0.05, 0.0)])
def test_agp_bad_inputs(args):
    with pytest.raises(InputError):
        agp_sparsity(*args)
