"""What the distribution metrics of one ``evaluate`` run need, resolved before any heavy work.

The extractor (``--extractor``, else :func:`~gancompress.metrics.extractors.default_extractor`)
must fit the generator's images; the sample count defaults to the extractor's; the real data is
a :class:`~gancompress.metrics.fidelity.RealSet` or, for a ``.npz`` ``--data``, a statistics file.
The notes say when an FID cannot be compared with published numbers.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import InputError
from ..generation import GeneratorInfo
from .config import EvaluateConfig
from .grids import fit_all
from .models import TestImages
from .reference import load_reference_stats, real_set

DIGITS_SHAPE = (1, 16, 16)
FALLBACK_SAMPLES = 2000  # PSNR/SSIM inputs when no extractor decides


@dataclass
class MetricPlan:
    """The extractor and its arguments, the real data (images or statistics) and the sample count."""

    extractor: Any = None  # metrics.extractors.Extractor
    extractor_kwargs: dict[str, Any] = field(default_factory=dict)
    real: Any = None  # metrics.fidelity.RealSet
    real_spec: str | None = None
    stats: Any = None  # metrics.stats_file.Statistics, for --data FILE.npz
    num_samples: int = FALLBACK_SAMPLES
    notes: list[str] = field(default_factory=list)
    lpips: Any = None  # torch-fidelity's LPIPS module when --lpips and its weights are here


def early_extractor_kwargs(config: EvaluateConfig) -> dict[str, Any] | None:
    """An explicitly chosen extractor's needs (Inception weights) are checked before loading anything."""
    if config.metrics.extractor is None or not (config.metrics.wants_distribution or config.data.save_stats):
        return None
    from ..metrics.extractors import ExtractorOptions, get_extractor

    return get_extractor(config.metrics.extractor).fidelity_kwargs(ExtractorOptions(config.metrics.inception_weights))


def _with_extractor(config: EvaluateConfig, info: GeneratorInfo, early: dict[str, Any] | None) -> MetricPlan:
    from ..metrics.extractors import ExtractorOptions, check_fits, default_extractor, get_extractor

    extractor = get_extractor(config.metrics.extractor or default_extractor(info.output_shape))
    check_fits(extractor, info.output_shape)
    options = ExtractorOptions(config.metrics.inception_weights)
    kwargs = early if early is not None else extractor.fidelity_kwargs(options)
    return MetricPlan(extractor, kwargs, num_samples=config.metrics.num_samples or extractor.default_samples)


def _attach_real(plan: MetricPlan, config: EvaluateConfig, info: GeneratorInfo, spec: str | None) -> None:
    if spec is None:
        raise InputError(
            f"--fid/--kid/--prc/--save-stats need real images for this {'x'.join(map(str, info.output_shape))} "
            "generator: pass --data (a folder of images, a statistics .npz or a data set name such as "
            "cifar10-train; builtin:digits only suits 16x16 one-channel digits models)")
    plan.real_spec = spec
    if config.data.is_stats:
        plan.stats = load_reference_stats(spec, plan.extractor)
    else:
        plan.real = real_set(spec, info, config.data.real_limit)


def plan_metrics(config: EvaluateConfig, info: GeneratorInfo, early: dict[str, Any] | None,
                 test: TestImages | None = None) -> MetricPlan:
    from ..metrics.extractors import sample_count_notes

    if not (config.metrics.wants_distribution or config.data.save_stats):
        return MetricPlan(num_samples=config.metrics.num_samples or FALLBACK_SAMPLES)
    if info.input_kind != "noise":
        return _plan_img2img(config, info, early, test)
    plan = _with_extractor(config, info, early)
    if config.metrics.needs_real or config.data.save_stats:
        digits = "builtin:digits" if tuple(info.output_shape) == DIGITS_SHAPE else None
        _attach_real(plan, config, info, config.data.real or digits)
    if config.metrics.fid:
        plan.notes += sample_count_notes(plan.extractor, plan.num_samples)
    return plan


def _plan_img2img(config: EvaluateConfig, info: GeneratorInfo, early: dict[str, Any] | None,
                  test: TestImages | None) -> MetricPlan:
    from ..metrics.fidelity import RealSet

    if test is None:
        raise InputError("FID/KID/ISC/PRC of an image-to-image generator need its test images: pass --data FOLDER "
                         "(pix2pix: A|B side-by-side images or A/ and B/; CycleGAN: A/ and B/; SR: high-resolution images)")
    plan = _with_extractor(config, info, early)
    plan.num_samples = len(test.items)
    if not (config.metrics.needs_real or config.data.save_stats):
        return plan
    if config.data.real:
        _attach_real(plan, config, info, config.data.real)
    else:
        size = info.output_shape[-1]
        targets = fit_all(test.domain[:config.data.real_limit] if config.data.real_limit else test.domain, size)
        digest = hashlib.sha256(to_bytes(targets)).hexdigest()[:16]
        plan.real = RealSet.from_tensor(targets, f"img2img:{test.spec}:{config.models.load.direction}:{digest}|{size}",
                                        tuple(info.output_range))
        plan.real_spec = f"{test.spec} (target domain)"
    return plan


def to_bytes(images: torch.Tensor) -> bytes:
    return images.float().contiguous().numpy().tobytes()
