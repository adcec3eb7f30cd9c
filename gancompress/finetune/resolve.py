"""The networks and loss of a run, resolved from its config: teacher, discriminator, loss profile."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from ..archs import ARCHITECTURES
from ..errors import InputError
from ..formats.checkpoint import GanBundle
from ..generation import GeneratorInfo
from ..archs.contract import d_output as contract_d_output, judges_input
from ..loading import LoadOptions, load_bundle, load_discriminator, load_with_partner
from ..losses import LossProfile, make_loss
from .config import FinetuneConfig
from .methods import resolve_method


@dataclass
class Setup:
    bundle: GanBundle                 # the input, as loaded
    teacher: nn.Module                # G_O, frozen
    teacher_source: str
    student: nn.Module                # G_C
    masks: dict[str, torch.Tensor]    # the input's masks (empty when dense)
    discriminator: nn.Module | None
    d_source: str | None
    conditional: bool
    info: GeneratorInfo
    profile: LossProfile
    loss_name: str
    sampler: Any                      # batches.Sampler (noise) or data_pairs.CropSampler (image-to-image)
    notes: list[str] = field(default_factory=list)
    partner: nn.Module | None = None  # CycleGAN: the opposite-direction generator (dense, frozen)
    config: FinetuneConfig | None = None  # the run's config, its method resolved (build_setup sets it)


def choose_method(config: FinetuneConfig, bundle: GanBundle) -> tuple[FinetuneConfig, str | None]:
    """``config`` with a method chosen per run (``auto``) replaced by the one it picks for these inputs (a
    discriminator in the checkpoint or ``--discriminator``, real images from ``--data``), and why; else unchanged."""
    has_d = bool(config.discriminator) or bundle.discriminator is not None
    name, why = resolve_method(config.recovery.method, has_discriminator=has_d, has_data=bool(config.data.source))
    if why is None:
        return config, None
    return replace(config, recovery=replace(config.recovery, method=name)), why


def _load(source: str, config: FinetuneConfig, what: str, like: GanBundle | None = None) -> GanBundle:
    try:
        return load_bundle(config.load.for_source(source).like(like.g_spec if like is not None else None))
    except InputError as exc:
        raise InputError(f"{what} {source}: {exc}") from None


def load_partner(source: str, config: FinetuneConfig, what: str) -> tuple[GanBundle, nn.Module | None]:
    try:
        return load_with_partner(config.load.for_source(source))
    except InputError as exc:
        raise InputError(f"{what} {source}: {exc}") from None


def _teacher_source(bundle: GanBundle, config: FinetuneConfig) -> str | None:
    if config.teacher:
        return config.teacher
    for key in ("pruning", "provenance"):
        doc = bundle.meta.get(key)
        src = doc.get("source") if isinstance(doc, dict) else None
        if src and src != config.source:
            return str(src)
    return None


def resolve_teacher(bundle: GanBundle, config: FinetuneConfig) -> tuple[nn.Module, str]:
    """The dense generator G_O: ``--teacher``, else the input itself when dense, else its recorded source."""
    if not config.teacher and not bundle.masks:
        return copy.deepcopy(bundle.generator), config.source
    source = _teacher_source(bundle, config)
    if source is None:
        raise InputError(f"{config.source} is pruned and does not record its dense source; pass --teacher DENSE_CHECKPOINT")
    try:
        teacher = _load(source, config, "--teacher" if config.teacher else "the recorded dense source", bundle).generator
    except InputError as exc:
        if config.teacher:
            raise
        raise InputError(f"{exc}; if the dense model has moved, pass it with --teacher DENSE_CHECKPOINT") from None
    if type(teacher) is not type(bundle.generator) or _shapes(teacher) != _shapes(bundle.generator):
        raise InputError(f"the teacher {source} is not the same architecture as {config.source}; pass the matching dense checkpoint with --teacher")
    return teacher, source


def _shapes(module: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def discriminator_file(bundle: GanBundle, options: LoadOptions, source: str) -> tuple[nn.Module, Any]:
    """The discriminator in its own file ``source`` (``--discriminator``), confirmed to judge what
    ``bundle``'s generator makes."""
    from ..archs.detection import discriminator_probes
    from ..generation import generator_info

    info = generator_info(bundle)
    probes = discriminator_probes(info.input_shape, info.output_shape, info.input_kind)
    try:
        return load_discriminator(options.for_source(source), probes=probes)
    except InputError as exc:
        raise InputError(f"--discriminator {source}: {exc}") from None


def resolve_discriminator(bundle: GanBundle, config: FinetuneConfig) -> tuple[nn.Module | None, Any, str | None]:
    if config.discriminator:
        module, spec = discriminator_file(bundle, config.load, config.discriminator)
        return module, spec, config.discriminator
    if bundle.discriminator is not None:
        return bundle.discriminator, bundle.d_spec, config.source
    if config.uses_discriminator:
        raise InputError(f"{config.source} has no discriminator and method {config.recovery.method} needs one: "
                         "pass --discriminator SOURCE (with --d-arch module:Callable for your own class), "
                         "or use --method distill, which needs none")
    return None, None, None


def resolve_loss(bundle: GanBundle, d_spec: Any, config: FinetuneConfig, *, conditional: bool = False,
                 partner: nn.Module | None = None) -> tuple[LossProfile, str]:
    """``--loss``, else the architecture's profile; a pix2pix-family generator whose PatchGAN is
    unconditional (or that came with an opposite-direction generator) is a CycleGAN: ``cyclegan``."""
    d_arch = ARCHITECTURES.get(d_spec.name) if d_spec is not None and d_spec.name in ARCHITECTURES else None
    g_arch = ARCHITECTURES.get(bundle.g_spec.name) if bundle.g_spec is not None and bundle.g_spec.name in ARCHITECTURES else None
    name = config.recovery.loss or (d_arch.loss if d_arch else g_arch.loss if g_arch else "ns")
    if config.recovery.loss is None and name == "pix2pix" and (partner is not None or (d_spec is not None and not conditional)):
        name = "cyclegan"
    d_output = d_arch.d_output if d_arch else "logits"
    if d_spec is not None and d_spec.name == "custom":  # the user's D says what it returns (contract)
        d_output = contract_d_output(bundle.discriminator)
    return make_loss(name, d_output=d_output), name


def is_conditional(d_spec: Any, info: GeneratorInfo, discriminator: nn.Module | None = None) -> bool:
    if d_spec is not None and d_spec.name == "custom":  # the user's D says what it judges (contract: d_input)
        return info.input_kind == "image" and judges_input(discriminator)
    if d_spec is None or d_spec.name != "patchgan-d" or info.input_kind != "image":
        return False
    from ..archs.pix2pix import patchgan_conditional

    return patchgan_conditional(d_spec.kwargs, info.input_shape[0], info.output_shape[0])
