"""What a generator eats and makes: its input kind/shape, output shape and value range."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .archs import ARCHITECTURES
from .archs.base import meta_forward
from .formats.checkpoint import GanBundle
from .errors import InputError


@dataclass(frozen=True)
class GeneratorInfo:
    input_kind: str                  # "noise" or "image"
    input_shape: tuple[int, ...]     # per sample
    output_shape: tuple[int, ...]    # per sample (C, H, W)
    output_range: tuple[float, float]


def generator_info(bundle: GanBundle) -> GeneratorInfo:
    """Describe ``bundle.generator`` (one dummy forward pass gives the output shape)."""
    spec = bundle.g_spec
    arch = ARCHITECTURES.get(spec.name) if spec is not None else None
    if arch is None or arch.input_shape is None:
        shape = getattr(bundle.generator, "input_shape", None)
        if shape is None:
            raise InputError("this generator does not say its input shape; give your module an `input_shape` attribute (per-sample tuple)")
        kind = getattr(bundle.generator, "input_kind", "noise")
    else:
        kwargs = spec.kwargs.get("kwargs", spec.kwargs) if spec.name == "custom" else spec.kwargs
        shape, kind = tuple(arch.input_shape(kwargs)), arch.input_kind
        shape = tuple(getattr(bundle.generator, "input_shape", shape))
    out = _output_shape(bundle.generator, tuple(shape))
    value_range = tuple(getattr(bundle.generator, "output_range", (-1.0, 1.0)))
    return GeneratorInfo(kind, tuple(shape), out, value_range)  # type: ignore[arg-type]


@torch.no_grad()
def _output_shape(generator: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, ...]:
    param = next(generator.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = generator.training
    generator.eval()
    try:
        out = meta_forward(generator, input_shape)  # shapes only: no weights read, no activations held
        if out is None:
            out = generator(torch.zeros(1, *input_shape, device=device))
        return tuple(out.shape[1:])
    finally:
        generator.train(was_training)


def noise(n: int, input_shape: tuple[int, ...], seed: int, device: str | torch.device = "cpu") -> torch.Tensor:
    """Fixed latents for ``seed``: drawn on the CPU so every device sees the same z."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *input_shape, generator=g).to(device)
