"""Loss profiles and the normalised consistency losses, on hand-made tensors."""
import math

import pytest
import torch
import torch.nn.functional as F

from gancompress.archs import ARCHITECTURES
from gancompress.errors import InputError
from gancompress.losses import (LOSSES, consistency, generative_consistency, gradient_penalty, make_loss,
                                r1_penalty, total)

D_REAL = torch.tensor([2.0, -1.0, 0.5])
D_FAKE = torch.tensor([-0.3, 1.5, 0.0])


def test_ns_terms_are_softplus_means():
    ns = make_loss("ns")
    assert torch.allclose(ns.g_terms(D_FAKE)["adv"], F.softplus(-D_FAKE).mean())
    d = ns.d_terms(D_REAL, D_FAKE)
    assert set(d) == {"real", "fake"}
    assert torch.allclose(d["real"], F.softplus(-D_REAL).mean())
    assert torch.allclose(d["fake"], F.softplus(D_FAKE).mean())


def test_ns_on_probabilities_is_binary_cross_entropy():
    p_real, p_fake = torch.sigmoid(D_REAL), torch.sigmoid(D_FAKE)
    ns = make_loss("ns", d_output="probs")
    d = ns.d_terms(p_real, p_fake)
    assert torch.allclose(d["real"], F.binary_cross_entropy(p_real, torch.ones(3)), atol=1e-5)
    assert torch.allclose(d["fake"], F.binary_cross_entropy(p_fake, torch.zeros(3)), atol=1e-5)
    assert torch.isfinite(ns.g_terms(torch.tensor([0.0, 1.0]))["adv"])  # clamped, not inf


def test_hinge_lsgan_wgan_values():
    hinge, ls, w = make_loss("hinge"), make_loss("lsgan"), make_loss("wgan-gp")
    assert math.isclose(hinge.g_terms(D_FAKE)["adv"].item(), -D_FAKE.mean().item(), rel_tol=1e-6)
    d = hinge.d_terms(D_REAL, D_FAKE)
    assert math.isclose(d["real"].item(), (0 + 2 + 0.5) / 3, rel_tol=1e-6)
    assert math.isclose(d["fake"].item(), (0.7 + 2.5 + 1.0) / 3, rel_tol=1e-6)
    assert math.isclose(ls.g_terms(D_FAKE)["adv"].item(), 0.5 * ((D_FAKE - 1) ** 2).mean().item(), rel_tol=1e-6)
    assert math.isclose(ls.d_terms(D_REAL, D_FAKE)["fake"].item(), 0.5 * (D_FAKE ** 2).mean().item(), rel_tol=1e-6)
    wd = w.d_terms(D_REAL, D_FAKE)
    assert set(wd) == {"real", "fake"}  # no images given: no gradient penalty
    assert math.isclose(wd["real"].item(), -D_REAL.mean().item(), rel_tol=1e-6)


def test_gradient_penalty_of_a_linear_critic_is_exact():
    weight = torch.tensor([3.0, 4.0])  # ||w|| = 5 everywhere
    critic = lambda x: (x * weight).sum(dim=1)  # noqa: E731
    real, fake = torch.randn(4, 2), torch.randn(4, 2)
    assert math.isclose(gradient_penalty(critic, real, fake).item(), 16.0, rel_tol=1e-6)
    terms = make_loss("wgan-gp").d_terms(critic(real), critic(fake), real=real, fake=fake, discriminator=critic)
    assert math.isclose(terms["gp"].item(), 160.0, rel_tol=1e-6)  # weighted by 10


def test_r1_of_a_linear_critic():
    weight = torch.tensor([3.0, 4.0])
    real = torch.randn(5, 2, requires_grad=True)
    assert math.isclose(r1_penalty((real * weight).sum(dim=1), real, gamma=2.0).item(), 25.0, rel_tol=1e-6)


def test_consistency_of_identical_terms_is_zero():
    ns = make_loss("ns")
    assert generative_consistency(ns, D_FAKE, D_FAKE.clone()).item() == 0.0
    d = ns.d_terms(D_REAL, D_FAKE)
    assert consistency(d, {k: v.clone() for k, v in d.items()}).item() == 0.0


def test_consistency_known_two_term_value_and_teacher_detached():
    teacher = {"a": torch.tensor(2.0, requires_grad=True), "b": torch.tensor(-4.0, requires_grad=True)}
    student = {"a": torch.tensor(1.0, requires_grad=True), "b": torch.tensor(-2.0, requires_grad=True)}
    value = consistency(teacher, student)
    assert math.isclose(value.item(), 1.0 / 2.0 + 2.0 / 4.0, rel_tol=1e-6)
    value.backward()
    assert teacher["a"].grad is None and teacher["b"].grad is None
    assert math.isclose(student["a"].grad.item(), -0.5) and math.isclose(student["b"].grad.item(), 0.25)


def test_consistency_caps_each_normalised_difference_and_passes_no_gradient_above_the_cap():
    """A teacher term near zero (a well-trained teacher fools D) must not turn into a huge loss and gradient."""
    from gancompress.losses import CONSISTENCY_CAP

    assert 1.0 < CONSISTENCY_CAP < 299.0
    teacher = {"a": torch.tensor(0.01), "b": torch.tensor(2.0)}
    student = {"a": torch.tensor(3.0, requires_grad=True), "b": torch.tensor(1.0, requires_grad=True)}
    value = consistency(teacher, student)
    assert math.isclose(value.item(), CONSISTENCY_CAP + 0.5, rel_tol=1e-6)  # a: 299 capped; b: 0.5 as before
    value.backward()
    assert student["a"].grad.item() == 0.0 and math.isclose(student["b"].grad.item(), -0.5)
    unbounded = consistency(teacher, {k: v.detach() for k, v in student.items()}, cap=None)
    assert math.isclose(unbounded.item(), 2.99 / 0.01 + 0.5, rel_tol=1e-5)


def test_consistency_refuses_different_terms():
    with pytest.raises(ValueError):
        consistency({"a": torch.tensor(1.0)}, {"b": torch.tensor(1.0)})


def test_total_sums_terms():
    assert total({"a": torch.tensor(1.5), "b": torch.tensor(-0.5)}).item() == 1.0


def test_unknown_profile_lists_the_choices():
    with pytest.raises(InputError, match="hinge"):
        make_loss("hinje")


def test_every_architecture_default_loss_is_registered():
    for _, arch in ARCHITECTURES.items():
        assert arch.loss in LOSSES, arch.name
