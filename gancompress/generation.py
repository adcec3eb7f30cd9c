"""What a generator eats and makes: its input kind/shape, output shape and value range."""
from __future__ import annotations

import math
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
    num_classes: int | None = None   # class-conditional: forward(z, labels)


def generator_info(bundle: GanBundle) -> GeneratorInfo:
    """Describe ``bundle.generator`` (one dummy forward pass gives the output shape).

    Built-in architectures say what they eat; a user's module (``--arch``) says it with the
    attributes of docs/custom_networks.md (see :mod:`gancompress.archs.contract`).
    """
    g = bundle.generator
    kind, shape = generator_input(g, bundle.g_spec)
    arch = ARCHITECTURES.get(bundle.g_spec.name) if bundle.g_spec is not None and bundle.g_spec.name in ARCHITECTURES else None
    declared = arch.output_range if arch is not None and arch.name != "custom" else (-1.0, 1.0)
    classes = getattr(g, "num_classes", None)
    out = _output_shape(g, tuple(shape), classes)
    value_range = tuple(float(v) for v in getattr(g, "output_range", declared))
    if classes:  # the tool feeds packed inputs: latent then label (archs.contract.unpack_labels)
        shape = (math.prod(shape) + 1,)
    return GeneratorInfo(kind, tuple(shape), out, value_range, classes)  # type: ignore[arg-type]


def run_generator(generator: nn.Module, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """``generator(x)``, or ``generator(x, labels)`` for a class-conditional one."""
    return generator(x) if labels is None else generator(x, labels)


def generator_input(generator: nn.Module, spec: ArchSpec | None) -> tuple[str, tuple[int, ...]]:
    """(``"noise"`` or ``"image"``, the per-sample input shape): the module's own ``input_kind`` /
    ``input_shape`` attributes (docs/custom_networks.md; required for a user's network), else the architecture's."""
    from .archs.contract import required

    arch = ARCHITECTURES.get(spec.name) if spec is not None and spec.name in ARCHITECTURES else None
    if arch is None or arch.input_shape is None or arch.name == "custom":
        target = spec.kwargs.get("target") if spec is not None and spec.name == "custom" else None
        where = f"your generator {target}" if target else "this generator"
        return getattr(generator, "input_kind", "noise"), tuple(required(generator, "input_shape", where))
    own = getattr(generator, "input_shape", None)
    shape = tuple(own) if own is not None else arch.input_shape_of(spec.kwargs)
    return getattr(generator, "input_kind", arch.input_kind), shape


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
    classes = getattr(generator, "num_classes", None)  # class-conditional: packed inputs, labels uniform
    z = noise(n, (math.prod(shape) + 1,) if classes else tuple(shape), seed, device, classes)
    return generator(z.to(param.dtype) if param is not None and param.is_floating_point() else z)


@torch.no_grad()
def _output_shape(generator: nn.Module, input_shape: tuple[int, ...], classes: int | None = None) -> tuple[int, ...]:
    param = next(generator.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = generator.training
    generator.eval()
    try:
        labels = torch.zeros(1, dtype=torch.long, device=device) if classes else None
        out = meta_forward(generator, input_shape) if labels is None else None  # shapes only: no weights read
        if out is None:
            out = run_generator(generator, torch.zeros(1, *input_shape, device=device), labels)
        if out.dim() != 4:
            raise InputError(f"the generator makes outputs of shape {tuple(out.shape[1:])} per sample, not images "
                             "(C, H, W); give it an `output_shape` attribute, e.g. (1, 28, 28), to reshape a flat output")
        return tuple(out.shape[1:])
    finally:
        generator.train(was_training)


def noise(n: int, input_shape: tuple[int, ...], seed: int, device: str | torch.device = "cpu",
          num_classes: int | None = None) -> torch.Tensor:
    """Fixed latents for ``seed``: drawn on the CPU so every device sees the same z."""
    return draw_latents(n, input_shape, torch.Generator().manual_seed(seed), num_classes).to(device)


def draw_latents(n: int, input_shape: tuple[int, ...], generator: torch.Generator,
                 num_classes: int | None = None, labels: torch.Tensor | None = None) -> torch.Tensor:
    """``n`` standard-normal latents; for a class-conditional generator (``num_classes``) the packed
    input ``input_shape = (latent size + 1,)`` whose last column is a class label, drawn uniformly
    unless ``labels`` are given."""
    if not num_classes:
        return torch.randn(n, *input_shape, generator=generator)
    z = torch.randn(n, input_shape[0] - 1, generator=generator)
    if labels is None:
        labels = torch.randint(num_classes, (n,), generator=generator)
    return torch.cat([z, labels.to(z.dtype).reshape(n, 1)], dim=1)


def with_labels(x: torch.Tensor, labels: torch.Tensor | int) -> torch.Tensor:
    """Packed conditional inputs ``x`` with their label column replaced."""
    out = x.clone()
    out[:, -1] = labels if isinstance(labels, int) else labels.to(x.dtype)
    return out


def labels_of(x: torch.Tensor) -> torch.Tensor:
    """The class labels of packed conditional inputs."""
    return x[:, -1].round().long()


def set_truncation(generator: nn.Module, psi: float, source: str = "the generator") -> str | None:
    """Sample ``generator`` with truncation ``psi`` (StyleGAN2's ``w_avg + psi (w - w_avg)``); returns
    where ``w_avg`` comes from (the checkpoint's stored mean, or an estimate), None at psi 1."""
    setter = getattr(generator, "set_truncation", None)
    if setter is None:
        raise InputError(f"--truncation needs a generator with a mapping network (StyleGAN2); {source} has none: "
                         "leave --truncation out")
    try:
        center = setter(psi)
    except ValueError as exc:
        raise InputError(f"{source}: {exc}") from None
    return center if psi < 1.0 else None
