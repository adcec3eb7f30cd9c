"""GAN loss profiles and the paper's normalised consistency losses.

A *loss profile* is the original GAN's objective split into named, already-weighted scalar
terms, so the self-supervised losses can compare them term by term:

- ``g_terms(d_fake, *, fake=None, target=None, inputs=None, generator=None) -> {name: scalar}``:
  the generator's terms for D's scores on fakes. Image-to-image profiles add terms that need
  the images: ``fake`` (the generator's outputs for ``inputs``), ``target`` (ground truth for
  ``inputs``, or target-domain images when unpaired) and ``generator`` (the network that made
  ``fake``, for CycleGAN's cycle/identity terms). A term whose images are ``None`` is left out,
  so the noise profiles ignore all four;
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

    L_GC = sum_k min(|l_k(O) - l_k(C)| / (|l_k(O)| + eps), cap)
    L_DC = sum_k min(|m_k(real, O) - m_k(real, C)| / (|m_k(real, O)| + eps), cap)

(the cap, 5, is ours: unbounded, a teacher whose generator loss is near zero turns D's first
doubts about the student into a gradient that collapses it; :data:`CONSISTENCY_CAP`).

The teacher's values are detached (reference and denominator). We use absolute differences,
the paper's form (an independent StyleGAN2 port used squared differences; both are
normalised the same way). A term that only depends on real data (``real``) is identical for
both and contributes zero.
"""
from __future__ import annotations

import math
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
# Each normalised difference counts at most this much (its gradient is the paper's below it, zero above). Unbounded, a
# discriminator that learns to tell the student's fakes from a well-trained teacher's (whose generator loss is then
# near zero, the denominator) makes L_GC jump from ~0.1 to ~200 in a hundred steps, and that one gradient collapsed the
# student to a blank image (the conditional zoo member trained on to a plateau, hybrid at 80% element and 50% filter,
# docs/zoo.md "The plateau check"); capped, the L1 to the teacher leads until D's verdicts agree again. 5 leaves a
# healthy run as it was (the demo's hybrid: FID 7.34 with the cap and without); a cap of 1 bound there too (7.52).
CONSISTENCY_CAP = 5.0


class LossProfile:
    """Base class: converts D's outputs to logits and delegates to ``_g_terms``/``_d_terms``."""

    name = "base"
    data_kind: str | None = None  # image-to-image profiles: "paired", "unpaired" or "sr"
    # The GAN's own D regulariser: R1 of weight ``r1_gamma`` every ``r1_every`` steps (lazy, scaled
    # by ``r1_every``) unless --r1-gamma says otherwise; None: the run's default interval.
    r1_gamma: float = 0.0
    r1_every: int | None = None

    def __init__(self, d_output: str = "logits") -> None:
        if d_output not in ("logits", "probs"):
            raise InputError(f"discriminator output must be 'logits' or 'probs', got {d_output!r}")
        self.d_output = d_output

    def logits(self, scores: Tensor) -> Tensor:
        scores = scores.float()
        if self.d_output == "probs":
            return torch.logit(scores.clamp(PROB_EPS, 1.0 - PROB_EPS))
        return scores

    def g_terms(self, d_fake: Tensor, *, fake: Tensor | None = None, target: Tensor | None = None,
                inputs: Tensor | None = None, generator: Callable[[Tensor], Tensor] | None = None) -> Terms:
        terms = self._g_terms(self.logits(d_fake))
        terms.update(self._image_terms(fake, target, inputs, generator))
        return terms

    def _image_terms(self, fake: Tensor | None, target: Tensor | None, inputs: Tensor | None,
                     generator: Callable[[Tensor], Tensor] | None) -> Terms:
        """Extra generator terms computed on images (image-to-image profiles)."""
        return {}

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


@LOSSES.register("stylegan2")
class StyleGAN2Loss(NonSaturating):
    """StyleGAN2 (Karras et al. 2020): the non-saturating logistic loss with lazy R1 on D
    (gamma 10, every 16 steps, the penalty scaled by 16), as in the paper's config F and
    rosinality/stylegan2-pytorch's ``train.py``. Its path-length regulariser on G
    (:func:`path_lengths`, :func:`path_length_penalty`) is off by default during recovery
    (``pl_weight`` 0; StyleGAN2 trains with 2, lazily every 4 steps): the student starts from a
    generator already trained with it, and the per-sample terms tie it to that generator."""

    name = "stylegan2"
    r1_gamma = 10.0
    r1_every = 16


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


def l1(a: Tensor, b: Tensor) -> Tensor:
    return (a.float() - b.float()).abs().mean()


@LOSSES.register("pix2pix")
class Pix2Pix(NonSaturating):
    """pix2pix (Isola et al.; ``gan_mode vanilla``): G: BCE adversarial + ``lambda_l1`` * L1 to the target.

    ``lambda_l1`` is 100 as in pix2pix. D's terms are halved as pix2pix does
    (``(loss_D_real + loss_D_fake) * 0.5``). The adversarial and L1 terms are separate entries,
    so ``L_GC`` normalises each by the teacher's own value; the L1 term needs the paired
    ground truth (``target``) and is left out without it.
    """

    name = "pix2pix"
    data_kind = "paired"

    def __init__(self, d_output: str = "logits", lambda_l1: float = 100.0) -> None:
        super().__init__(d_output)
        self.lambda_l1 = lambda_l1

    def _image_terms(self, fake, target, inputs, generator) -> Terms:
        if fake is None or target is None or not self.lambda_l1:
            return {}
        return {"l1": self.lambda_l1 * l1(fake, target)}

    def _d_terms(self, r, f, real, fake, discriminator) -> Terms:
        return {k: 0.5 * v for k, v in super()._d_terms(r, f, real, fake, discriminator).items()}


@LOSSES.register("cyclegan")
class CycleGAN(LeastSquares):
    """CycleGAN (Zhu et al.; ``gan_mode lsgan``) for one direction's generator G (A -> B).

    G terms: ``adv`` = MSE(D(G(a)), 1); ``cycle_a`` = ``lambda_a`` |F(G(a)) - a|;
    ``cycle_b`` = ``lambda_b`` |G(F(b)) - b|; ``idt`` = ``lambda_idt * lambda_b`` |G(b) - b|,
    where F is the opposite-direction generator (:attr:`partner`, dense and frozen) and ``b``
    real target-domain images (unpaired). Weights as in CycleGAN: 10, 10, 0.5. Without a
    partner the cycle terms are left out (the identity term needs none); the identity term
    needs the same channel count in both domains. D: 0.5 * (MSE(D(b), 1) + MSE(D(G(a)), 0)).
    """

    name = "cyclegan"
    data_kind = "unpaired"

    def __init__(self, d_output: str = "logits", lambda_a: float = 10.0, lambda_b: float = 10.0,
                 lambda_idt: float = 0.5) -> None:
        super().__init__(d_output)
        self.lambda_a, self.lambda_b, self.lambda_idt = lambda_a, lambda_b, lambda_idt
        self.partner: Callable[[Tensor], Tensor] | None = None

    def _g_terms(self, f: Tensor) -> Terms:
        return {"adv": (f - 1.0).pow(2).mean()}

    def _d_terms(self, r, f, real, fake, discriminator) -> Terms:
        return {"real": 0.5 * (r - 1.0).pow(2).mean(), "fake": 0.5 * f.pow(2).mean()}

    def _image_terms(self, fake, target, inputs, generator) -> Terms:
        terms: Terms = {}
        partner = self.partner
        if partner is not None and fake is not None and inputs is not None and self.lambda_a:
            terms["cycle_a"] = self.lambda_a * l1(partner(fake), inputs)
        if generator is None or target is None:
            return terms
        if partner is not None and self.lambda_b:
            with torch.no_grad():
                fake_a = partner(target)
            terms["cycle_b"] = self.lambda_b * l1(generator(fake_a), target)
        if self.lambda_idt and self.lambda_b and inputs is not None and inputs.shape[1] == target.shape[1]:
            terms["idt"] = self.lambda_idt * self.lambda_b * l1(generator(target), target)
        return terms


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# ESRGAN/Real-ESRGAN perceptual loss: VGG19 features before ReLU (torchvision ``features`` indices)
VGG19_LAYERS = {"conv1_2": 2, "conv2_2": 7, "conv3_4": 16, "conv4_4": 25, "conv5_4": 34}
VGG19_WEIGHTS = {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0, "conv5_4": 1.0}
_VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512)


class VGGFeatures(torch.nn.Module):
    """VGG19's ``features`` (torchvision layout ``features.<i>.weight``) up to conv5_4, frozen.

    Returns the pre-activation outputs of :data:`VGG19_LAYERS` for images in ``[0, 1]``
    (normalised with the ImageNet mean and std first).
    """

    def __init__(self) -> None:
        super().__init__()
        layers: list[torch.nn.Module] = []
        cin = 3
        for v in _VGG19_CFG:
            if v == "M":
                layers.append(torch.nn.MaxPool2d(2, 2))
            else:
                layers += [torch.nn.Conv2d(cin, v, 3, padding=1), torch.nn.ReLU(inplace=False)]
                cin = v
        self.features = torch.nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        x = (x - self.mean) / self.std
        wanted = {i: name for name, i in VGG19_LAYERS.items()}
        out = {}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in wanted:
                out[wanted[i]] = x
                if len(out) == len(wanted):
                    break
        return out


def load_vgg19(path: str) -> VGGFeatures:
    """A torchvision-layout VGG19 state dict (``features.*``; ``classifier.*`` ignored) from ``path``."""
    from pathlib import Path

    from .archs import load_into

    file = Path(path).expanduser()
    if file.exists():
        from .sources import check_regular

        check_regular(file)  # a FIFO or device is refused, never opened
    if not file.is_file():
        raise InputError(f"--perceptual-weights {path}: no such file (a VGG19 state dict, e.g. torchvision's "
                         "vgg19-dcbbeb0d.pth; nothing is downloaded)")
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        sd = load_file(str(file))
    else:
        try:
            sd = torch.load(str(file), map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's to fix
            raise InputError(f"--perceptual-weights {path}: not a readable state dict ({exc})") from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}
    sd = {k: v for k, v in sd.items() if k.startswith("features.")}
    model = VGGFeatures()
    wanted = {k: v for k, v in model.state_dict().items() if k.startswith("features.")}
    sd = {k: v for k, v in sd.items() if k in wanted}  # layers past conv5_4 are not used
    buffers = {k: v for k, v in model.state_dict().items() if not k.startswith("features.")}
    load_into(model, {**buffers, **sd}, f"VGG19 perceptual network ({path})")
    return model.eval().requires_grad_(False)


@LOSSES.register("sr")
class SuperResolution(NonSaturating):
    """ESRGAN/Real-ESRGAN: G: ``pixel`` L1 to the HR target (weight 1) + ``adv`` BCE (weight 0.1)
    (+ ``perceptual``: weighted L1 between VGG19 features, weight 1, when :attr:`vgg` is set).

    Outputs and targets are in ``[0, 1]`` (RRDBNet's range). D: BCE real/fake, unweighted (as in
    BasicSR). The pixel and perceptual terms need the ground truth (``target``).
    """

    name = "sr"
    data_kind = "sr"

    def __init__(self, d_output: str = "logits", pixel_weight: float = 1.0, gan_weight: float = 0.1,
                 perceptual_weight: float = 1.0) -> None:
        super().__init__(d_output)
        self.pixel_weight, self.gan_weight, self.perceptual_weight = pixel_weight, gan_weight, perceptual_weight
        self.vgg: VGGFeatures | None = None

    def _g_terms(self, f: Tensor) -> Terms:
        return {"adv": self.gan_weight * F.softplus(-f).mean()}

    def _image_terms(self, fake, target, inputs, generator) -> Terms:
        if fake is None or target is None:
            return {}
        terms = {"pixel": self.pixel_weight * l1(fake, target)}
        if self.vgg is not None and self.perceptual_weight:
            vgg = self.vgg.to(fake.device)
            with torch.no_grad():
                ref = vgg(target.float())
            got = vgg(fake.float())
            terms["perceptual"] = self.perceptual_weight * torch.stack(
                [VGG19_WEIGHTS[k] * l1(got[k], ref[k]) for k in got]).sum()
        return terms


def make_loss(name: str, *, d_output: str = "logits") -> LossProfile:
    """Build the registered profile ``name`` for a discriminator returning ``d_output``."""
    return LOSSES.get(name)(d_output=d_output)


def r1_penalty(d_real: Tensor, real: Tensor, gamma: float) -> Tensor:
    """R1 regulariser ``gamma / 2 * E ||grad_x D(x)||^2`` on real images (``real`` must require grad)."""
    (grad,) = torch.autograd.grad(d_real.float().sum(), real, create_graph=True)
    return 0.5 * gamma * grad.flatten(1).pow(2).sum(dim=1).mean()


PL_DECAY = 0.01  # StyleGAN2's decay of the running mean of path lengths


def path_lengths(fake: Tensor, latents: Tensor, noise: Tensor | None = None) -> Tensor:
    """StyleGAN2's path lengths: per sample ``sqrt(mean_l ||J_l^T y||^2)``, ``J_l`` the Jacobian of the
    images with respect to layer ``l``'s latent (``latents [N, L, D]``, in ``fake``'s graph) and ``y``
    image-shaped noise ``N(0, I) / sqrt(H W)`` (torch's global RNG unless ``noise`` is given).
    Differentiable (``create_graph``), so a penalty on them trains the generator."""
    if noise is None:
        noise = torch.randn_like(fake) / math.sqrt(fake.shape[-2] * fake.shape[-1])
    (grad,) = torch.autograd.grad((fake.float() * noise.float()).sum(), latents, create_graph=True)
    return grad.float().pow(2).sum(2).mean(1).sqrt()


def path_length_penalty(lengths: Tensor, batch_mean: Tensor, mean: Tensor | None,
                        decay: float = PL_DECAY) -> tuple[Tensor, Tensor]:
    """(``mean((lengths - a)^2)``, ``a`` detached) with ``a`` the running mean of path lengths moved
    ``decay`` of the way toward this batch's mean (``batch_mean``; global in a multi-process run).
    ``mean`` None (the first measurement) starts the running mean at the batch's own mean: a
    pretrained generator's lengths are far from StyleGAN2's initial 0."""
    target = batch_mean.detach() if mean is None else mean + decay * (batch_mean - mean)
    return (lengths - target).pow(2).mean(), target.detach()


def total(terms: Terms) -> Tensor:
    """Sum of a profile's terms."""
    values = list(terms.values())
    if not values:
        raise ValueError("no loss terms to add")
    return torch.stack([v.float() for v in values]).sum()


def consistency(teacher: Terms, student: Terms, eps: float = CONSISTENCY_EPS,
                cap: float | None = CONSISTENCY_CAP) -> Tensor:
    """``sum_k min(|t_k - s_k| / (|t_k| + eps), cap)`` with the teacher's terms detached (``cap=None``: the
    paper's unbounded form; see :data:`CONSISTENCY_CAP`)."""
    missing = set(teacher) ^ set(student)
    if missing:
        raise ValueError(f"teacher and student loss terms differ: {sorted(missing)}")
    parts = []
    for key, t in teacher.items():
        t = t.detach().float()
        part = (t - student[key].float()).abs() / (t.abs() + eps)
        parts.append(part if cap is None else part.clamp(max=cap))
    return torch.stack(parts).sum()


def generative_consistency(profile: LossProfile, d_fake_teacher: Tensor, d_fake_student: Tensor) -> Tensor:
    """``L_GC`` over the profile's adversarial generator terms (no images)."""
    return consistency(profile.g_terms(d_fake_teacher), profile.g_terms(d_fake_student))
