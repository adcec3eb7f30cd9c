"""What a generator eats and makes: its input kind/shape, output shape and value range."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .archs import ARCHITECTURES, ArchSpec
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
    kind, shape = generator_input(bundle.generator, bundle.g_spec)
    out = _output_shape(bundle.generator, shape)
    arch = ARCHITECTURES.get(bundle.g_spec.name) if bundle.g_spec is not None else None
    declared = arch.output_range if arch is not None and arch.name != "custom" else (-1.0, 1.0)
    value_range = tuple(getattr(bundle.generator, "output_range", declared))
    return GeneratorInfo(kind, shape, out, value_range)  # type: ignore[arg-type]


def generator_input(generator: nn.Module, spec: ArchSpec | None) -> tuple[str, tuple[int, ...]]:
    """(``"noise"`` or ``"image"``, the per-sample input shape): from the architecture, else the module's
    own ``input_kind`` / ``input_shape`` attributes."""
    arch = ARCHITECTURES.get(spec.name) if spec is not None else None
    if arch is None or arch.input_shape is None:
        shape = getattr(generator, "input_shape", None)
        if shape is None:
            raise InputError("this generator does not say its input shape; give your module an `input_shape` attribute (per-sample tuple)")
        return getattr(generator, "input_kind", "noise"), tuple(shape)
    kwargs = spec.kwargs.get("kwargs", spec.kwargs) if spec.name == "custom" else spec.kwargs
    return arch.input_kind, tuple(getattr(generator, "input_shape", arch.input_shape(kwargs)))


@torch.no_grad()
def sample(generator: nn.Module, n: int, *, seed: int = 0) -> torch.Tensor:
    """``n`` outputs of a noise-input generator for latents drawn with ``seed`` (the same on every device)."""
    kind, shape = getattr(generator, "input_kind", None), getattr(generator, "input_shape", None)
    if shape is None:
        raise InputError("this generator does not say its input shape; call it on a batch of inputs yourself")
    if kind != "noise":
        raise InputError(f"this generator translates images: call it on a batch of shape (n, {', '.join(map(str, shape))}) "
                         "with values in its input range, not sample()")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise InputError(f"sample(n): n must be a positive whole number, got {n!r}")
    param = next(generator.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    z = noise(n, tuple(shape), seed, device)
    return generator(z.to(param.dtype) if param is not None and param.is_floating_point() else z)


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


def set_truncation(generator: nn.Module, psi: float, source: str = "the generator") -> None:
    """Sample ``generator`` with truncation ``psi`` (StyleGAN2's ``w_avg + psi (w - w_avg)``)."""
    setter = getattr(generator, "set_truncation", None)
    if setter is None:
        raise InputError(f"--truncation needs a generator with a mapping network (StyleGAN2); {source} has none: "
                         "leave --truncation out")
    setter(psi)
