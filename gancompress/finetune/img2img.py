"""Fine-tuning set-up for image-to-image generators (pix2pix, CycleGAN, ESRGAN/Real-ESRGAN).

The loss profile decides the data (:mod:`gancompress.data_pairs`): ``pix2pix`` trains on
paired A/B images, ``cyclegan`` on unpaired A/ and B/ folders, ``sr`` on high-resolution images
whose low-resolution inputs are made by bicubic downscaling. The images are read lazily (headers
when the run starts, a step's crops by ``--workers`` DataLoader processes). Training draws random ``--crop``
windows (default: the generator's native output size, 256 at most for super-resolution); the
teacher and the student see the same input crops every step.
"""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from ..archs.contract import judge
from ..formats.checkpoint import GanBundle
from ..data.pairs import CropSampler, Degradation, input_multiple, load_image_data
from ..errors import InputError
from ..generation import GeneratorInfo
from .config import FinetuneConfig
from .resolve import Setup, load_partner, resolve_loss

SR_DEFAULT_CROP = 256


def data_kind(profile: Any, bundle: GanBundle, conditional: bool, info: GeneratorInfo | None = None) -> str:
    """``paired``, ``unpaired`` or ``sr``: the profile's, else from the architecture and the D (any
    generator whose output is larger than its input is a super-resolution one)."""
    if getattr(profile, "data_kind", None):
        return profile.data_kind
    if bundle.g_spec is not None and bundle.g_spec.name == "rrdbnet-g":
        return "sr"
    if info is not None and info.output_shape[-1] > info.input_shape[-1]:
        return "sr"
    return "paired" if conditional else "unpaired"


def sr_scale(info: GeneratorInfo) -> int:
    scale, rest = divmod(info.output_shape[-1], info.input_shape[-1])
    if rest or scale < 1:
        raise InputError(f"the generator maps {info.input_shape} -> {info.output_shape}: not an integer up-scaling")
    return scale


def check_crop_fits(generator: nn.Module, discriminator: nn.Module | None, conditional: bool, crop: int,
                    scale: int, in_channels: int, spec: Any, name: str) -> None:
    """One batch-1 forward at the crop size, so a crop the networks cannot take fails before training."""
    mult = input_multiple(spec) * scale
    size = crop // scale
    modes = [(m, m.training) for m in (generator, discriminator) if m is not None]
    try:
        with torch.no_grad():
            for m, _ in modes:
                m.eval()
            x = torch.zeros(1, in_channels, size, size, device=next(generator.parameters()).device)
            out = generator(x)
            if tuple(out.shape[-2:]) != (crop, crop):
                raise RuntimeError("size changed")
            if discriminator is not None:
                judge(discriminator, discriminator, x, out) if conditional else discriminator(out)
    except (RuntimeError, ValueError):
        hint = f"a multiple of {mult}" if mult > 1 else "a larger crop"
        raise InputError(f"--crop {crop} does not fit {name} and its discriminator; use {hint} "
                         f"(e.g. --crop {max(mult, 64 - 64 % mult if mult <= 64 else mult)})") from None
    finally:
        for m, was in modes:
            m.train(was)


def _partner(profile: Any, partner: nn.Module | None, config: FinetuneConfig, teacher_source: str,
             info: GeneratorInfo, notes: list[str]) -> None:
    if profile.name != "cyclegan":
        return
    if partner is None and teacher_source != config.source:
        try:
            _, partner = load_partner(teacher_source, config, "the dense source")
        except InputError:
            partner = None
    if partner is not None:
        try:
            with torch.no_grad():
                out = partner.eval()(torch.zeros(1, info.output_shape[0], 64, 64))
            ok = out.shape[1] == info.input_shape[0]
        except (RuntimeError, ValueError):
            ok = False
        if not ok:
            notes.append("warning: the opposite-direction generator does not map the output domain back to the "
                         "input domain; cycle terms disabled")
            partner = None
    if partner is None:
        notes.append("warning: the checkpoint holds no opposite-direction generator (CycleGAN latest_net_G_B/G_A): "
                     "the cycle-consistency terms are disabled; adversarial and identity terms only")
        return
    profile.partner = copy.deepcopy(partner).eval().requires_grad_(False)


def image_setup(config: FinetuneConfig, bundle: GanBundle, partner: nn.Module | None, teacher: nn.Module,
                teacher_source: str, discriminator: nn.Module | None, d_spec: Any, d_source: str | None,
                info: GeneratorInfo, conditional: bool):
    from ..losses import load_vgg19

    profile, loss_name = resolve_loss(bundle, d_spec, config, conditional=conditional, partner=partner)
    notes: list[str] = []
    kind = data_kind(profile, bundle, conditional, info)
    if kind == "unpaired" and conditional and config.uses_discriminator:
        raise InputError("the discriminator is conditional (pix2pix: it judges concat(input, output)) and needs "
                         "paired data; use --loss pix2pix with side-by-side A|B images or A/ and B/ folders")
    _partner(profile, partner, config, teacher_source, info, notes)
    if config.recovery.perceptual_weights:
        if not hasattr(profile, "vgg"):
            raise InputError(f"--perceptual-weights is for the sr loss profile, not {loss_name}")
        profile.vgg = load_vgg19(config.recovery.perceptual_weights)
    if not config.data.source:
        what = {"paired": "paired A|B images or A/ and B/ folders", "unpaired": "A/ and B/ folders",
                "sr": "high-resolution images"}[kind]
        raise InputError(f"an image-to-image generator trains on its images: pass --data FOLDER ({what})")
    scale = sr_scale(info) if kind == "sr" else 1
    if kind != "sr" and (config.data.sr_blur or config.data.sr_noise):
        notes.append("--sr-blur/--sr-noise only apply to super-resolution data; ignored")
    if kind == "sr" and info.input_shape[0] != info.output_shape[0]:
        raise InputError("super-resolution data needs the same channel count in and out")
    data = load_image_data(kind, config.data.source, info.input_shape[0], info.output_shape[0], inputs=config.data.inputs,
                           direction=config.load.direction, scale=scale)
    notes += data.notes
    crop = config.data.crop or (min(info.output_shape[-1], SR_DEFAULT_CROP) if kind == "sr" else info.output_shape[-1])
    degradation = Degradation(scale, config.data.sr_blur, config.data.sr_noise) if kind == "sr" else None
    sampler = CropSampler(config.run.seed, config.recovery.batch, data, crop, info.output_range, degradation,
                          workers=config.data.workers)
    d_check = discriminator if config.uses_discriminator else None
    check_crop_fits(bundle.generator, d_check, conditional, crop, scale, info.input_shape[0], bundle.g_spec,
                    bundle.arch_name)
    student = copy.deepcopy(bundle.generator)
    masks = {k: v.to(torch.bool) for k, v in bundle.masks.items()}
    return Setup(bundle, teacher, teacher_source, student, masks, discriminator, d_source, conditional,
                 info, profile, loss_name, sampler, notes, profile.partner if hasattr(profile, "partner") else None)
