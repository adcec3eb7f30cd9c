"""PruneConfig, model-level masks (layer/global scope, previous masks), reports, AGP."""
from __future__ import annotations

import copy
import dataclasses
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
    masks = compute_masks(m, PruneConfig(0.25, keep_dense="first,last"))
    assert list(masks) == ["1.parametrizations.weight.original"]
    apply_masks(m, masks)
    assert int((m[1].weight == 0).sum()) == 16  # a quarter of all 64 weights; the normalised weight keeps them


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
    with pytest.raises(InputError, match="uniform"):
        PruneConfig(0.5, granularity="nm", allocation="lamp")
    with pytest.raises(InputError, match="N:M axis"):
        PruneConfig(None, granularity="nm", nm_axis="width")
    with pytest.raises(InputError, match="none"):
        PruneConfig(0.5, keep_dense="none,first")
    with pytest.raises(InputError, match="allocation"):
        PruneConfig(0.5, allocation="random")


def test_config_nm_implied_and_parsing():
    assert PruneConfig(None, granularity="nm").sparsity is None
    assert PruneConfig(None, granularity="nm", nm="1:4").nominal == 0.75
    assert PruneConfig(0.5, granularity="nm").sparsity == 0.5
    assert PruneConfig(0.5, scope="global").allocation == "global"  # the older spelling
    assert PruneConfig(0.5, prune_first_last=True).keep_dense == ("none",)
    c = PruneConfig("0.25", granularity="block", block="2x8", include="net.*")
    assert c.sparsity == 0.25 and c.block == (2, 8) and c.include == ("net.*",)


# ----------------------------------------------------------------- layer scope
def unit_size(model, key, gran):
    module = model.get_submodule(key.rsplit(".", 1)[0])
    geo = module_geometry(module)
    ones = torch.ones(geo.out, geo.cols)
    return int(GRANULARITIES.get(gran).unit_reduce(ones, geo, {"block": (2, 2), "nm": (2, 4), "nm_axis": "in"}, "sum").max())


@pytest.mark.parametrize("gran", SCORED)
def test_uniform_each_layer_within_its_units(gran):
    m = small_model()
    masks = compute_masks(m, PruneConfig(0.6, granularity=gran, block=(2, 2), keep_dense="none"))
    assert set(masks) == {"0.weight", "2.weight", "4.weight", "5.weight", "6.weight", "7.weight"}
    apply_masks(m, masks)
    rows = layer_report(m, masks)
    total = sum(r["params"] for r in rows)
    biggest = max(unit_size(m, k, gran) for k in masks)
    assert abs(sum(r["zeros"] for r in rows) - 0.6 * total) <= biggest / 2 + 1
    for r in rows:
        assert abs(r["zeros"] - 0.6 * r["params"]) <= 2 * unit_size(m, r["param"], gran) + 0.02 * r["params"], r["name"]


def test_nm_layer_masks():
    m = small_model()
    masks = compute_masks(m, PruneConfig(None, granularity="nm"))
    w = m.get_parameter("6.weight")
    assert bool((masks["6.weight"].permute(0, 2, 3, 1).reshape(12, 3, 3, 2, 4).sum(-1) == 2).all())
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


# ----------------------------------------------------------------- global allocation
def test_global_keeps_a_unit_per_layer_and_right_total():
    m = small_model()
    with torch.no_grad():
        m[4].weight.mul_(1e-4)  # a tiny-scale layer: a raw global threshold would empty it
    masks = compute_masks(m, PruneConfig(0.9, granularity="filter", allocation="global", keep_dense="none"))
    counts = [units_of(m, k, "filter", masks) for k in masks]
    assert all(p < u for u, p in counts)
    assert counts[2][1] == counts[2][0] - 1  # the tiny layer lost all but its best filter
    apply_masks(m, masks)
    total = sum(r["params"] for r in layer_report(m, masks))
    assert abs(achieved_sparsity(m, masks)["all"] * total - 0.9 * total) <= max(unit_size(m, k, "filter") for k in masks) / 2


def test_global_element_prunes_the_weakest_weights_of_all_layers():
    m = small_model()
    masks = compute_masks(m, PruneConfig(0.5, allocation="global", keep_dense="none"))
    kept = torch.cat([m.get_parameter(k).detach().abs()[v] for k, v in masks.items()])
    dropped = torch.cat([m.get_parameter(k).detach().abs()[~v] for k, v in masks.items()])
    assert float(kept.min()) >= float(dropped.max())


# ----------------------------------------------------------------- previous masks
@pytest.mark.parametrize("apply_first", [True, False])
@pytest.mark.parametrize("allocation", ["uniform", "global", "lamp", "erk"])
@pytest.mark.parametrize("gran", SCORED)
def test_previous_masks_respected_50_to_80(gran, allocation, apply_first):
    m = small_model()
    first = compute_masks(m, PruneConfig(0.5, granularity=gran, allocation=allocation, block=(2, 2)))
    if apply_first:
        apply_masks(m, first)
    second = compute_masks(m, PruneConfig(0.8, granularity=gran, allocation=allocation, block=(2, 2)), previous=first)
    for k in first:
        assert not bool((~first[k] & second[k]).any()), k
    total = sum(r["params"] for r in layer_report(m, second))
    zeros = achieved_sparsity(m, second)["all"] * total
    assert abs(zeros - 0.8 * total) <= max(unit_size(m, k, gran) for k in second) / 2 + 1


def test_previous_fine_then_coarse_keeps_old_zeros():
    m = small_model()
    first = compute_masks(m, PruneConfig(0.5))
    apply_masks(m, first)
    below = compute_masks(m, PruneConfig(0.3, granularity="filter"), previous=first)
    assert all(torch.equal(below[k], first[k]) for k in first)  # the old zeros already exceed 30%: nothing new
    second = compute_masks(m, PruneConfig(0.7, granularity="filter"), previous=first)
    apply_masks(m, second)
    for k in first:
        assert not bool((~first[k] & second[k]).any())
    assert achieved_sparsity(m, second)["all"] >= 0.69  # the old zeros count towards the target


def test_previous_nm_respected_and_unselected_masks_carried():
    m = small_model()
    first = compute_masks(m, PruneConfig(0.3, prune_first_last=True))
    second = compute_masks(m, PruneConfig(None, granularity="nm", keep_dense="first,last"), previous=first)
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
    cfg = PruneConfig(0.4, granularity="kernel", keep_dense="first,last")
    masks = compute_masks(g, cfg)
    assert set(masks) == {"net.3.weight", "net.6.weight"}
    apply_masks(g, masks)
    rows = layer_report(g, masks, {"net.0": "first layer", "net.9": "last layer"})
    assert [r["name"] for r in rows] == ["net.0", "net.3", "net.6", "net.9"]
    by = {r["name"]: r for r in rows}
    assert by["net.3"]["type"] == "ConvTranspose2d" and by["net.3"]["shape"] == [16, 8, 4, 4]
    assert by["net.0"]["dense"] == "first layer" and by["net.0"]["achieved"] == 0.0 and by["net.3"]["dense"] is None
    ach = achieved_sparsity(g, masks)
    total = sum(r["params"] for r in rows)
    assert abs(ach["all"] * total - 0.4 * total) <= 16 / 2  # within half a 4x4 kernel of 40% of ALL weights
    assert by["net.3"]["achieved"] == pytest.approx(by["net.6"]["achieved"], abs=0.02)  # uniform
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


@pytest.mark.parametrize("cfg", [dict(granularity="element", importance="bn-scaled"), dict(granularity="filter"),
                                 dict(granularity="filter", coupled=True, input_shape=(3, 8, 8))])
def test_a_model_on_an_accelerator_is_ranked_on_a_cpu_copy(monkeypatch, cfg):
    """Masks of a model whose weights are not on the CPU: ranked on a CPU copy, handed back where the weights are.

    (The exact selection is CPU code; on an H200 ranking CUDA weights in place mixed devices.) Here "meta"
    stands in for the accelerator: the outer call must take the detour, and the detour must rank as the model itself.
    """
    import importlib

    masks_mod = importlib.import_module("gancompress.prune.masks")

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 8, 3, padding=1))
    config = PruneConfig(0.5, keep_dense="none", **cfg)
    previous = compute_masks(model, dataclasses.replace(config, sparsity=0.25), final=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    direct = compute_masks(model, config, previous, final=True)
    copied = masks_mod._computed_on_cpu(model, config, previous, True, torch.device("cpu"))
    assert direct.keys() == copied.keys() and all(torch.equal(direct[k], copied[k]) for k in direct)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the model is untouched
    real = masks_mod._weights_device
    monkeypatch.setattr(masks_mod, "_weights_device", lambda m: torch.device("meta") if m is model else real(m))
    on_meta = compute_masks(model, config, previous, final=True)
    assert {k: (v.device.type, v.shape) for k, v in on_meta.items()} == {k: ("meta", v.shape) for k, v in direct.items()}


def test_ranking_cpu_copies_traces_the_model_once(monkeypatch):
    """bn-scaled on an accelerator: every mask update ranks a fresh CPU copy, and the data-flow trace (one forward
    pass) runs on the model itself once, not on every copy; the copies rank as the model would."""
    import importlib

    masks_mod = importlib.import_module("gancompress.prune.masks")

    class Net(nn.Sequential):
        input_shape = (3, 8, 8)

    torch.manual_seed(0)
    model = Net(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 8, 3, padding=1))
    model[1].running_var.uniform_(0.5, 4.0)
    calls = []
    model.register_forward_hook(lambda *_: calls.append(1))  # deep copies carry the hook: their passes count too
    config = PruneConfig(0.5, keep_dense="none", importance="bn-scaled")
    direct = compute_masks(copy.deepcopy(model), config)
    calls.clear()
    real = masks_mod._weights_device
    monkeypatch.setattr(masks_mod, "_weights_device", lambda m: torch.device("meta") if m is model else real(m))
    for sparsity in (0.3, 0.5):
        compute_masks(model, dataclasses.replace(config, sparsity=sparsity))
    assert len(calls) == 1
    copied = masks_mod._computed_on_cpu(model, config, None, True, torch.device("cpu"))
    assert len(calls) == 1 and all(torch.equal(direct[k], copied[k]) for k in direct)
