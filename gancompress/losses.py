"""GAN loss profiles and the paper's normalised consistency losses.

A *loss profile* is the original GAN's objective split into named, already-weighted scalar
terms, so the self-supervised losses can compare them term by term:

- ``g_terms(d_fake) -> {name: scalar}``: the generator's adversarial terms for D's scores on
  fakes;
- ``d_terms(d_real, d_fake, *, real=None, fake=None, discriminator=None) -> {name: scalar}``:
  the discriminator's terms. Terms that need the images or D itself (the WGAN gradient
  penalty) use ``real``/``fake``/``discriminator`` and are left out when those are ``None``.

Every profile works on *logits*. A discriminator that ends in a Sigmoid (``d_output="probs"``,
PyTorch's DCGAN) is read through ``logit(p.clamp(eps, 1 - eps))``, which for ``ns`` is exactly
the binary cross-entropy the DCGAN example trains with.

Extension point: subclass :class:`LossProfile`, implement ``_g_terms``/``_d_terms`` on logits
and register the class with ``LOSSES.add("name", cls)``; ``make_loss(name, d_output=...)``
builds it and ``--loss name`` picks it.

Consistency (Yu & Pool 2020), with the teacher ``O`` and the compressed student ``C`` fed the
same inputs::

    L_GC = sum_k |l_k(O) - l_k(C)| / (|l_k(O)| + eps)
    L_DC = sum_k |m_k(real, O) - m_k(real, C)| / (|m_k(real, O)| + eps)

The teacher's values are detached (reference and denominator). We use absolute differences,
the paper's form (an independent StyleGAN2 port used squared differences; both are
normalised the same way). A term that only depends on real data (``real``) is identical for
both and contributes zero.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import InputError
from .registry import Registry

Terms = dict[str, Tensor]
Critic = Callable[[Tensor], Tensor]
PROB_EPS = 1e-6
CONSISTENCY_EPS = 1e-8


class LossProfile:
    """Base class: converts D's outputs to logits and delegates to ``_g_terms``/``_d_terms``."""

    name = "base"

    def __init__(self, d_output: str = "logits") -> None:
        if d_output not in ("logits", "probs"):
            raise InputError(f"discriminator output must be 'logits' or 'probs', got {d_output!r}")
        self.d_output = d_output

    def logits(self, scores: Tensor) -> Tensor:
        scores = scores.float()
        if self.d_output == "probs":
            return torch.logit(scores.clamp(PROB_EPS, 1.0 - PROB_EPS))
        return scores

    def g_terms(self, d_fake: Tensor) -> Terms:
        return self._g_terms(self.logits(d_fake))

    def d_terms(self, d_real: Tensor, d_fake: Tensor, *, real: Tensor | None = None,
                fake: Tensor | None = None, discriminator: Critic | None = None) -> Terms:
        return self._d_terms(self.logits(d_real), self.logits(d_fake), real, fake, discriminator)

    def _g_terms(self, f: Tensor) -> Terms:  # pragma: no cover - abstract
        raise NotImplementedError

    def _d_terms(self, r: Tensor, f: Tensor, real: Tensor | None, fake: Tensor | None,
                 discriminator: Critic | None) -> Terms:  # pragma: no cover - abstract
        raise NotImplementedError


LOSSES: Registry[type[LossProfile]] = Registry("loss profile")


@LOSSES.register("ns")
class NonSaturating(LossProfile):
    """Non-saturating loss (Goodfellow et al.) in softplus form: BCE with logits."""

    name = "ns"

    def _g_terms(self, f: Tensor) -> Terms:
        return {"adv": F.softplus(-f).mean()}

    def _d_terms(self, r, f, real, fake, discriminator) -> Terms:
        return {"real": F.softplus(-r).mean(), "fake": F.softplus(f).mean()}


@LOSSES.register("hinge")
class Hinge(LossProfile):
    """Hinge loss (SAGAN/BigGAN): D: relu(1 - r) + relu(1 + f); G: -f."""

    name = "hinge"

    def _g_terms(self, f: Tensor) -> Terms:
        return {"adv": -f.mean()}

    def _d_terms(self, r, f, real, fake, discriminator) -> Terms:
        return {"real": F.relu(1.0 - r).mean(), "fake": F.relu(1.0 + f).mean()}


@LOSSES.register("lsgan")
class LeastSquares(LossProfile):
    """Least-squares GAN (Mao et al.), targets 1 (real) and 0 (fake), halved as in the paper."""

    name = "lsgan"

    def _g_terms(self, f: Tensor) -> Terms:
        return {"adv": 0.5 * (f - 1.0).pow(2).mean()}

    def _d_terms(self, r, f, real, fake, discriminator) -> Terms:
        return {"real": 0.5 * (r - 1.0).pow(2).mean(), "fake": 0.5 * f.pow(2).mean()}


def gradient_penalty(critic: Critic, real: Tensor, fake: Tensor, *, center: float = 1.0) -> Tensor:
    """WGAN-GP: mean((||grad critic(x_hat)|| - center)^2) on random real/fake interpolates.

    The interpolation weights come from torch's global RNG (the fine-tuning loop seeds it per
    step). Differentiable w.r.t. the critic's parameters and ``fake`` (``create_graph``).
    """
    alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    x_hat = (alpha * real.detach() + (1.0 - alpha) * fake).requires_grad_(True)
    with torch.enable_grad():
        out = critic(x_hat).float()
        (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - center).pow(2).mean()


@LOSSES.register("wgan-gp")
class WassersteinGP(LossProfile):
    """WGAN-GP (Gulrajani et al.): D: f - r + gp_weight * GP; G: -f.

    The gradient penalty is one of D's terms (weight ``gp_weight``, 10 as in the paper and
    StarGAN), so it takes part in the discriminative consistency ``L_DC``.
    """

    name = "wgan-gp"

    def __init__(self, d_output: str = "logits", gp_weight: float = 10.0) -> None:
        super().__init__(d_output)
        self.gp_weight = gp_weight

    def _g_terms(self, f: Tensor) -> Terms:
        return {"adv": -f.mean()}

    def _d_terms(self, r, f, real, fake, discriminator) -> Terms:
        terms = {"real": -r.mean(), "fake": f.mean()}
        if real is not None and fake is not None and discriminator is not None and self.gp_weight:
            terms["gp"] = self.gp_weight * gradient_penalty(lambda x: self.logits(discriminator(x)), real, fake)
        return terms


@LOSSES.register("pix2pix")
class Pix2PixAdversarial(NonSaturating):
    """pix2pix's GAN term (``gan_mode vanilla``: BCE with logits).

    pix2pix's L1-to-target term needs paired ground truth and is not part of the profile;
    the ``hybrid`` method's per-sample L1 to the teacher plays that role here.
    """

    name = "pix2pix"


@LOSSES.register("sr")
class SuperResolutionAdversarial(NonSaturating):
    """ESRGAN/Real-ESRGAN's GAN term (BCE with logits; their 0.1 weight cancels in L_GC).

    Their pixel and perceptual losses need the high-resolution ground truth and are left out.
    """

    name = "sr"


def make_loss(name: str, *, d_output: str = "logits") -> LossProfile:
    """Build the registered profile ``name`` for a discriminator returning ``d_output``."""
    return LOSSES.get(name)(d_output=d_output)


def r1_penalty(d_real: Tensor, real: Tensor, gamma: float) -> Tensor:
    """R1 regulariser ``gamma / 2 * E ||grad_x D(x)||^2`` on real images (``real`` must require grad)."""
    (grad,) = torch.autograd.grad(d_real.float().sum(), real, create_graph=True)
    return 0.5 * gamma * grad.flatten(1).pow(2).sum(dim=1).mean()


def total(terms: Terms) -> Tensor:
    """Sum of a profile's terms."""
    values = list(terms.values())
    if not values:
        raise ValueError("no loss terms to add")
    return torch.stack([v.float() for v in values]).sum()


def consistency(teacher: Terms, student: Terms, eps: float = CONSISTENCY_EPS) -> Tensor:
    """``sum_k |t_k - s_k| / (|t_k| + eps)`` with the teacher's terms detached."""
    missing = set(teacher) ^ set(student)
    if missing:
        raise ValueError(f"teacher and student loss terms differ: {sorted(missing)}")
    parts = []
    for key, t in teacher.items():
        t = t.detach().float()
        parts.append((t - student[key].float()).abs() / (t.abs() + eps))
    return torch.stack(parts).sum()


def generative_consistency(profile: LossProfile, d_fake_teacher: Tensor, d_fake_student: Tensor) -> Tensor:
    """``L_GC`` over the profile's generator terms."""
    return consistency(profile.g_terms(d_fake_teacher), profile.g_terms(d_fake_student))
