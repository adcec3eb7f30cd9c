"""StyleGAN2 recovery and pruning on the tiny parity model: R1 schedule, shared noise, layer selection."""
from __future__ import annotations

import copy

import pytest
import torch

from gancompress.data.batches import StepData
from gancompress.finetune.config import LossWeights, resolve_r1
from gancompress.finetune.defaults import DEFAULT_R1_EVERY
from gancompress.finetune.step import StepOptions, compute_losses
from gancompress.losses import make_loss
from gancompress.prune import PruneConfig, compute_masks, prunable_layers
from stylegan2_fixtures import parity_tensors, tiny_networks



@pytest.fixture(scope="module")
def nets():
    t = parity_tensors()
    return (*tiny_networks(), t["z"], torch.tanh(t["images"]))


def test_r1_defaults_come_from_the_loss_profile():
    sg2 = make_loss("stylegan2")
    assert resolve_r1(LossWeights(), sg2) == (10.0, 16)
    assert resolve_r1(LossWeights(r1_gamma=0.0), sg2) == (0.0, 16)  # --r1-gamma 0 turns it off
    assert resolve_r1(LossWeights(r1_gamma=2.0, r1_every=4), sg2) == (2.0, 4)
    assert resolve_r1(LossWeights(), make_loss("ns")) == (0.0, DEFAULT_R1_EVERY)


def _d_loss(nets, step: int) -> torch.Tensor:
    g, d, z, real = nets
    opts = StepOptions("finetune", 0.5, 0.0, True, *resolve_r1(LossWeights(), make_loss("stylegan2")))
    losses = compute_losses(g, copy.deepcopy(g), d, StepData(z, real.clone()), make_loss("stylegan2"), opts, step)
    return losses.d_loss.detach()


def test_lazy_r1_every_16_steps_scaled_by_16(nets):
    """D's loss carries 16 x (10 / 2) E||grad_x D(x)||^2 at steps 0 and 16 only."""
    _, d, _, real = nets
    x = real.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(d(x).sum(), x)
    r1 = 16 * 5.0 * grad.flatten(1).pow(2).sum(1).mean()
    assert r1 > 1e-3
    base = _d_loss(nets, 1)
    assert torch.allclose(_d_loss(nets, 0) - base, r1, rtol=1e-4)
    assert torch.allclose(_d_loss(nets, 16) - base, r1, rtol=1e-4)
    assert torch.allclose(_d_loss(nets, 15), base)


def test_distill_target_uses_the_same_z_and_noise(nets):
    """A dense student gets exactly the teacher's images (same z, same stored noise): L1 0.
    With noise drawn per call the same check fails, so the test can tell."""
    g, _, z, _ = nets
    opts = StepOptions("distill", 0.5, 0.0, False)
    student = copy.deepcopy(g)
    assert float(compute_losses(g, student, None, StepData(z), make_loss("stylegan2"), opts, 0).g_loss) == 0.0
    teacher, student = copy.deepcopy(g), copy.deepcopy(g)
    teacher.noise_mode = student.noise_mode = "random"
    assert float(compute_losses(teacher, student, None, StepData(z), make_loss("stylegan2"), opts, 0).g_loss) > 1e-3


def test_default_pruning_selects_the_synthesis_convs_only(nets):
    g = nets[0]
    names = [n for n, _ in prunable_layers(g)]
    assert names == ["conv1.conv"] + [f"convs.{i}.conv" for i in range(6)]
    included = [n for n, _ in prunable_layers(g, include=("*to_rgb*", "style.*"), prune_first_last=True)]
    assert "to_rgb1.conv" in included and "style.1" in included and "to_rgbs.2.conv.modulation" in included
    assert "conv1.conv" not in included


@pytest.mark.parametrize("granularity", ["element", "kernel", "filter"])
def test_modulated_weights_prune_at_every_granularity(nets, granularity):
    g = nets[0]
    masks = compute_masks(g, PruneConfig(0.5, granularity=granularity))
    mask = masks["convs.0.conv.weight"]
    # -s 0.5 is half of ALL prunable weights and ToRGB stays dense, so the styled convs lose more than half
    # (filter: their outputs and, through the readers rule, the inputs of the previous conv's removed filters)
    density = float(mask.float().mean())
    assert mask.shape == (1, 12, 16, 3, 3) and 0 < density < (0.3 if granularity == "filter" else 0.5)
    units = {"element": torch.ones_like(mask), "kernel": mask.all(dim=(3, 4)) | ~mask.any(dim=(3, 4)),
             "filter": torch.ones_like(mask)}[granularity]
    assert units.all()  # every kernel is wholly kept or wholly removed
    if granularity == "filter":  # whole filters go, and the inputs from conv1's removed filters
        dead_in = ~masks["conv1.conv.weight"][0].flatten(1).any(1)
        dead_out = ~mask[0].flatten(1).any(1)
        assert 6 <= int(dead_out.sum()) < 12 and 8 <= int(dead_in.sum()) < 16
        expected = (~dead_out)[:, None, None, None] & (~dead_in)[None, :, None, None]
        assert torch.equal(mask[0], expected.expand_as(mask[0]))
        rgb = masks["to_rgb1.conv.weight"]  # ToRGB is not pruned, but ignores conv1's removed channels
        assert torch.equal(rgb[0, :, :, 0, 0], (~dead_in)[None].expand(3, -1))


@pytest.mark.parametrize("method", ["finetune", "self-supervised", "hybrid", "distill-adv", "distill"])
def test_every_method_steps_on_stylegan2(nets, method):
    """One step with R1 due (step 0): finite losses, the student moves, masked weights stay zero."""
    from gancompress.finetune.step import backward_and_step

    g, d, z, real = nets
    student, d = copy.deepcopy(g).requires_grad_(True), copy.deepcopy(d)
    masks = compute_masks(student, PruneConfig(0.5, granularity="filter"))
    from gancompress.prune import apply_masks

    apply_masks(student, masks)
    before = {k: v.clone() for k, v in student.state_dict().items()}
    uses_d = method != "distill"
    opts = StepOptions(method, 0.5, 1.0, uses_d, 10.0, 16, adv_weight=1.0)
    losses = compute_losses(g, student, d if uses_d else None, StepData(z, real.clone()), make_loss("stylegan2"),
                            opts, 0)
    assert torch.isfinite(losses.g_loss) and (losses.d_loss is None or torch.isfinite(losses.d_loss))
    opt_g = torch.optim.Adam(student.parameters(), 1e-3)
    opt_d = torch.optim.Adam(d.parameters(), 1e-3) if uses_d else None
    backward_and_step(losses, student, d if uses_d else None, opt_g, opt_d, masks)
    assert any(not torch.equal(before[k], v) for k, v in student.state_dict().items())
    for key, mask in masks.items():
        assert not student.get_parameter(key)[~mask].any()


def test_coupled_filter_pruning_is_the_readers_rule(nets):
    """--coupled needs no trace on StyleGAN2: the readers' masks already couple the channels."""
    g = nets[0]
    plain = compute_masks(g, PruneConfig(0.5, granularity="filter"))
    coupled = compute_masks(g, PruneConfig(0.5, granularity="filter", coupled=True))
    assert plain.keys() == coupled.keys() and all(torch.equal(plain[k], coupled[k]) for k in plain)
