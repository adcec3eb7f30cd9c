"""``distill-adv``: the per-sample L1 to the teacher plus the GAN's own G loss against the training D."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gancompress.errors import InputError
from gancompress.finetune import run_finetune
from gancompress.finetune.step import StepOptions, compute_losses, l1_to_teacher
from gancompress.data.batches import StepData
from gancompress.losses import LOSSES
from test_finetune import config, project, tensors  # noqa: F401 (project: a fixture)


def _nets():
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Linear(4, 6), nn.Tanh())
    student = nn.Sequential(nn.Linear(4, 6), nn.Tanh())
    d = nn.Linear(6, 1)
    return teacher.eval().requires_grad_(False), student, d


def _losses(method: str, w: float, train_d: bool = True):
    teacher, student, d = _nets()
    torch.manual_seed(1)
    batch = StepData(torch.randn(5, 4), torch.randn(5, 6))
    opts = StepOptions(method, lam=0.5, mu=10.0, train_d=train_d, adv_weight=w)
    losses = compute_losses(teacher, student, d, batch, LOSSES.get("ns")(), opts, step=1)
    fake_c, fake_o = student(batch.x), teacher(batch.x)
    return losses, fake_c, fake_o, d, batch


@pytest.mark.parametrize("w", [0.0, 0.3, 2.0])
def test_loss_is_l1_to_teacher_plus_weighted_gan_loss(w):
    losses, fake_c, fake_o, d, batch = _losses("distill-adv", w)
    l1 = (fake_c - fake_o).abs().mean() / fake_o.abs().mean()
    adv = F.softplus(-d(fake_c)).mean()
    assert losses.g_loss.item() == pytest.approx((l1 + w * adv).item(), rel=1e-6)
    assert losses.metrics["l1"].item() == pytest.approx(l1.item(), rel=1e-6)
    assert losses.metrics["adv"].item() == pytest.approx(adv.item(), rel=1e-6)
    # D keeps its own loss against the student's fakes, as in plain fine-tuning
    d_loss = F.softplus(-d(batch.real)).mean() + F.softplus(d(fake_c)).mean()
    assert losses.d_loss.item() == pytest.approx(d_loss.item(), rel=1e-6)


def test_zero_weight_is_exactly_distill_and_frozen_d_gets_no_loss():
    adv0, *_ = _losses("distill-adv", 0.0)
    distill, fake_c, fake_o, *_ = _losses("distill", 0.0)
    assert adv0.g_loss.item() == pytest.approx(distill.g_loss.item(), rel=1e-7)
    assert distill.d_loss is None
    frozen, *_ = _losses("distill-adv", 0.3, train_d=False)
    assert frozen.d_loss is None and frozen.g_loss.item() > l1_to_teacher(fake_c, fake_o).item()


def test_the_gan_term_reaches_the_student_through_d():
    """With w > 0 the student's gradient differs from distill's by w x the adversarial gradient."""
    grads = {}
    for w in (0.0, 1.0):
        teacher, student, d = _nets()
        torch.manual_seed(1)
        batch = StepData(torch.randn(5, 4), torch.randn(5, 6))
        out = compute_losses(teacher, student, d, batch, LOSSES.get("ns")(),
                             StepOptions("distill-adv", 0.5, 10.0, True, adv_weight=w), step=1)
        out.g_loss.backward(inputs=list(student.parameters()))
        grads[w] = student[0].weight.grad.clone()
    assert not torch.allclose(grads[0.0], grads[1.0])


def test_run_trains_d_and_keeps_masks(project):
    result = run_finetune(config(project, method="distill-adv", steps=3, adv_weight=0.3))
    before, after = tensors(project["pruned"], "D."), tensors(result.output, "D.")
    assert not all(torch.equal(before[k], after[k]) for k in before)
    from gancompress.loading import load_bundle

    out = load_bundle(str(result.output))
    for key, mask in out.masks.items():
        assert torch.all(out.generator.get_parameter(key)[~mask] == 0)
    assert out.meta["finetune"]["config"]["recovery"]["weights"]["adv_weight"] == 0.3


def test_needs_data_and_a_non_negative_weight(project):
    with pytest.raises(InputError, match="--data"):
        config(project, method="distill-adv", data=None)
    with pytest.raises(InputError, match="--adv-weight"):
        config(project, method="distill-adv", adv_weight=-0.1)
