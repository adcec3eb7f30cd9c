"""Everything a run needs before its first step: teacher, student, discriminator, loss, data."""
from __future__ import annotations

import copy

import torch

from ..errors import InputError
from ..generation import GeneratorInfo, generator_info
from ..data.batches import Sampler, downsample
from ..data.images import folder_labels
from .config import FinetuneConfig
from .img2img import image_setup
from .resolve import (Setup, choose_method, is_conditional, load_partner, resolve_discriminator, resolve_loss,
                      resolve_teacher)


def load_images(config: FinetuneConfig, info: GeneratorInfo, conditional: bool) -> tuple[object, torch.Tensor | None]:
    """Real images at the generator's output size/range (a streamed dataset for a folder when the
    generator takes noise), and input images for image generators."""
    from ..data.images import load_real
    from ..data.stream import open_real

    c, h, w = info.output_shape
    if h != w:
        raise InputError(f"the generator makes {h}x{w} images; only square outputs are supported for training data")
    if info.input_kind != "image":  # a folder streams (decoded a batch at a time)
        return (open_real(config.data.source, size=h, channels=c, value_range=info.output_range)
                if config.data.source else None), None
    real = load_real(config.data.source, size=h, channels=c, value_range=info.output_range) if config.data.source else None
    if config.data.inputs:
        inputs = load_real(config.data.inputs, size=info.input_shape[-1], channels=info.input_shape[0], value_range=info.output_range)
        if conditional and real is not None and inputs.shape[0] != real.shape[0]:
            raise InputError(f"the conditional discriminator needs paired images: --inputs has {inputs.shape[0]}, --data {real.shape[0]}")
        return real, inputs
    if real is not None and info.input_shape[-1] < h and info.input_shape[0] == c:
        return real, downsample(real, info.input_shape)
    raise InputError("an image-to-image generator needs its input images: pass --inputs FOLDER "
                     "(paired with --data by sorted file order when the discriminator is conditional)")


def class_count(info: GeneratorInfo, discriminator) -> int | None:
    """The classes of a class-conditional generator and/or discriminator (they must agree)."""
    from ..archs.contract import num_classes

    g, d = info.num_classes, num_classes(discriminator)
    if g and d and g != d:
        raise InputError(f"the generator takes {g} classes but the discriminator {d}; give both the same num_classes")
    return g or d


def build_setup(config: FinetuneConfig) -> Setup:
    """Load and check everything; writes nothing. A method chosen per run (``auto``) is resolved here, once the
    inputs are known: ``setup.config`` is the run's config with the method it uses."""
    bundle, partner = load_partner(config.source, config, "input")
    config, chosen = choose_method(config, bundle)
    setup = _build(config, bundle, partner)
    setup.config = config
    if chosen:
        setup.notes.insert(0, chosen)
    return setup


def _build(config: FinetuneConfig, bundle, partner) -> Setup:
    teacher, teacher_source = resolve_teacher(bundle, config)
    discriminator, d_spec, d_source = resolve_discriminator(bundle, config)
    if discriminator is not None and bundle.discriminator is not discriminator:
        bundle.discriminator, bundle.d_spec = discriminator, d_spec
    info = generator_info(bundle)
    conditional = is_conditional(d_spec, info, discriminator)
    if info.input_kind == "image":
        return image_setup(config, bundle, partner, teacher, teacher_source, discriminator, d_spec, d_source,
                           info, conditional)
    profile, loss_name = resolve_loss(bundle, d_spec, config)
    real, inputs = load_images(config, info, conditional)
    paired = conditional or (inputs is not None and not config.data.inputs)
    classes = class_count(info, discriminator)
    real_labels = folder_labels(config.data.source, classes) if classes and config.data.source else None
    sampler = Sampler(config.run.seed, config.recovery.batch, info.input_kind, info.input_shape, real, inputs, paired,
                      classes, real_labels, packed=bool(info.num_classes), workers=config.data.workers)
    student = copy.deepcopy(bundle.generator)
    masks = {k: v.to(torch.bool) for k, v in bundle.masks.items()}
    return Setup(bundle, teacher, teacher_source, student, masks, discriminator, d_source, conditional,
                 info, profile, loss_name, sampler)
