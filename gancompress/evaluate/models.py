"""The generators one ``evaluate`` run compares: loading them, checking they match, the teacher, inputs."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
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


def _label(source: str, role: str) -> str:
    """The file name without ``.safetensors``; a long one keeps its start and its end (where default
    names differ: ``m.block90`` vs ``m.block90.ft``)."""
    name = source.rstrip("/").rsplit("/", 1)[-1] or source
    name = name.removesuffix(".safetensors") if name != ".safetensors" else name
    name = name if len(name) <= 32 else name[:12] + "..." + name[-17:]
    return name if role == "model" else f"{name} ({role})"


def load_model(source: str, role: str, config: EvaluateConfig, device: torch.device) -> LoadedModel:
    from ..generation import generator_info
    from ..loading import LoadOptions, load_bundle
    from ..sources import resolve

    options = replace(config.load or LoadOptions(), trust_pickle=config.trust_pickle, direction=config.direction)
    bundle = load_bundle(options.for_source(source))
    bundle.generator.eval().to(device)
    info = generator_info(bundle)
    return LoadedModel(source, _label(source, role), role, bundle, info, resolve(source))


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
        teacher = load_model(str(source), "teacher", config, device)
        check_compatible([model, teacher])
    except GanCompressError as exc:
        return None, f"teacher {source} could not be used ({exc}); fidelity to the dense model skipped"
    return teacher, None


def model_inputs(info: GeneratorInfo, n: int, batch_size: int, seed: int, device: torch.device) -> Iterator[torch.Tensor]:
    """The same seeded inputs for every model: latents, or random images for image-to-image models."""
    from ..generation import noise

    if info.input_kind == "noise":
        data = noise(n, info.input_shape, seed, device="cpu")
    else:
        data = torch.rand(n, *info.input_shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1
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
