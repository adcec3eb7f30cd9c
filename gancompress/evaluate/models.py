"""The generators one ``evaluate`` run compares: loading them, checking they match, the teacher, inputs."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import torch

from ..errors import GanCompressError, InputError
from ..formats.checkpoint import GanBundle
from ..generation import GeneratorInfo
from .config import EvaluateConfig


@dataclass
class LoadedModel:
    source: str
    label: str
    role: str  # "model", "reference" or "teacher"
    bundle: GanBundle
    info: GeneratorInfo
    path: Path | None
    w_avg: str | None = None  # truncation: where the mean w came from (the checkpoint's, or estimated)


def _name_parts(source: str) -> list[str]:
    parts = [p for p in source.replace("hf://", "").replace("builtin:", "").rstrip("/").split("/") if p] or [source]
    if parts[-1] != ".safetensors":
        parts[-1] = parts[-1].removesuffix(".safetensors")
    return parts


def default_labels(sources: list[str]) -> list[str]:
    """Each source's file name (without ``.safetensors``), with as many parent folders as it takes to tell
    equal names apart; never cut, so names that differ only at the end stay apart."""
    parts = [_name_parts(s) for s in sources]
    depth = [1] * len(sources)
    while True:
        labels = ["/".join(p[-d:]) for p, d in zip(parts, depth)]
        grow = [i for i, label in enumerate(labels) if labels.count(label) > 1 and depth[i] < len(parts[i])]
        if not grow:
            return [label if labels.count(label) == 1 else f"{label} #{i + 1}" for i, label in enumerate(labels)]
        for i in grow:
            depth[i] += 1


def compared_models(config: EvaluateConfig, device: torch.device) -> list[LoadedModel]:
    """Every source of ``config`` loaded, labelled (``--label`` or :func:`default_labels`) and given its role."""
    sources = config.models.all_sources
    labels = config.models.labels + default_labels(sources)[len(config.models.labels):]
    roles = ["reference" if i == config.models.reference_index else "model" for i in range(len(sources))]
    first = load_model(sources[0], roles[0], config, device, labels[0])
    models = [first] + [load_model(s, r, config, device, label, first.bundle)
                        for s, r, label in zip(sources[1:], roles[1:], labels[1:])]
    check_compatible(models)
    return models


def load_model(source: str, role: str, config: EvaluateConfig, device: torch.device,
               label: str | None = None, like: GanBundle | None = None) -> LoadedModel:
    """One model to evaluate; ``like``: the first model, whose recorded ``--arch-kwargs`` a reference or
    teacher of the same ``--arch`` reuses when none are given."""
    from ..formats.precision import run_in_weight_dtype
    from ..generation import generator_info, set_truncation
    from ..loading import load_bundle
    from ..sources import resolve

    bundle = load_bundle(config.models.load.for_source(source).like(like.g_spec if like is not None else None))
    run_in_weight_dtype(bundle.generator.eval().to(device))
    w_avg = None
    if config.metrics.truncation != 1.0:
        w_avg = set_truncation(bundle.generator, config.metrics.truncation, source)
    info = generator_info(bundle)
    return LoadedModel(source, label or default_labels([source])[0], role, bundle, info, resolve(source), w_avg)


def check_compatible(models: list[LoadedModel]) -> None:
    first = models[0]
    for other in models[1:]:
        if (other.info.input_shape, other.info.output_shape) != (first.info.input_shape, first.info.output_shape):
            raise InputError(
                f"{other.source} maps {other.info.input_shape} -> {other.info.output_shape} but {first.source} maps "
                f"{first.info.input_shape} -> {first.info.output_shape}; a --reference must take and make the same shapes"
            )


def teacher_model(config: EvaluateConfig, model: LoadedModel, device: torch.device) -> tuple[LoadedModel | None, str | None]:
    pruning = model.bundle.meta.get("pruning")
    source = pruning.get("source") if isinstance(pruning, dict) else None
    if not source:
        return None, "no --reference and no teacher recorded in the checkpoint: fidelity to the dense model skipped"
    try:
        teacher = load_model(str(source), "teacher", config, device, like=model.bundle)
        check_compatible([model, teacher])
    except GanCompressError as exc:
        return None, f"teacher {source} could not be used ({exc}); fidelity to the dense model skipped"
    return teacher, None


def model_inputs(info: GeneratorInfo, n: int, batch_size: int, seed: int, device: torch.device) -> Iterator[torch.Tensor]:
    """The same seeded inputs for every model: latents, or random images (in the model's value range)
    for image-to-image models."""
    from ..generation import noise

    if info.input_kind == "noise":
        data = noise(n, info.input_shape, seed, device="cpu", num_classes=info.num_classes)
    else:
        lo, hi = info.output_range
        data = torch.rand(n, *info.input_shape, generator=torch.Generator().manual_seed(seed)) * (hi - lo) + lo
    for start in range(0, n, batch_size):
        yield data[start:start + batch_size].to(device)


@dataclass
class TestImages:
    """Full-size test images of an image-to-image model: ``(name, input, target or None)`` per image
    (batch-1 tensors in the output range) and the target-domain images for FID (``domain``)."""

    kind: str
    items: list[tuple[str, torch.Tensor, torch.Tensor | None]]
    domain: list[torch.Tensor]
    spec: str
    notes: list[str] = field(default_factory=list)

    @property
    def paired(self) -> bool:
        return self.kind in ("paired", "sr")
