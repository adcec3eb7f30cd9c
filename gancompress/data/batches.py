"""Deterministic inputs for every step, derived from ``(seed, step)`` alone.

Each step's real-image indices, latents and the global torch RNG (dropout, gradient-penalty
interpolation) come from generators seeded by ``(seed, step, stream)``: a run resumed at step
``k`` draws exactly what the uninterrupted run drew, with no RNG state to save.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import InputError

_MASK = (1 << 63) - 1
STREAM_ORDER, STREAM_NOISE, STREAM_GLOBAL = 1, 2, 3


def mix(seed: int, index: int, stream: int) -> int:
    """A 63-bit seed for ``(seed, index, stream)`` (splitmix-style mixing)."""
    x = (seed * 0x9E3779B97F4A7C15 + index * 0xBF58476D1CE4E5B9 + stream * 0x94D049BB133111EB) & _MASK
    x ^= x >> 31
    x = (x * 0xD6E8FEB86659FD93) & _MASK
    return x ^ (x >> 29)


def rng(seed: int, index: int, stream: int) -> torch.Generator:
    return torch.Generator().manual_seed(mix(seed, index, stream))


@dataclass
class StepData:
    """Generator input ``x``; ``real`` images and, for a conditional D, their paired ``real_x``."""

    x: torch.Tensor
    real: torch.Tensor | None = None
    real_x: torch.Tensor | None = None


@dataclass
class Sampler:
    """Draws :class:`StepData` for a step: noise or input images, plus shuffled real images."""

    seed: int
    batch_size: int
    input_kind: str
    input_shape: tuple[int, ...]
    real: torch.Tensor | None = None
    inputs: torch.Tensor | None = None
    paired: bool = False

    def __post_init__(self) -> None:
        pool = self.real if self.real is not None else self.inputs
        self.n = int(pool.shape[0]) if pool is not None else 0
        if pool is not None and self.n == 0:
            raise InputError("the data set is empty; point --data at a folder with images")
        self.size = min(self.batch_size, self.n) if self.n else self.batch_size
        if self.input_kind == "image" and self.inputs is None:
            raise InputError("an image-to-image generator needs input images: pass --inputs FOLDER")

    def indices(self, step: int) -> torch.Tensor:
        per_epoch = self.n // self.size
        epoch, pos = divmod(step, per_epoch)
        order = torch.randperm(self.n, generator=rng(self.seed, epoch, STREAM_ORDER))
        return order[pos * self.size:(pos + 1) * self.size]

    def draw(self, step: int, device: torch.device) -> StepData:
        idx = self.indices(step) if self.n else None
        real = self.real[idx].to(device) if self.real is not None else None
        if self.input_kind == "noise":
            x = torch.randn(self.size, *self.input_shape, generator=rng(self.seed, step, STREAM_NOISE)).to(device)
        else:
            x = self._inputs_at(idx, step).to(device)
        return StepData(x, real, x if self.paired else None)

    def _inputs_at(self, idx: torch.Tensor | None, step: int) -> torch.Tensor:
        assert self.inputs is not None
        if self.paired and idx is not None:
            return self.inputs[idx]
        order = torch.randperm(self.inputs.shape[0], generator=rng(self.seed, step, STREAM_NOISE))
        return self.inputs[order[:self.size]]

    def fixed(self, n: int, device: torch.device) -> torch.Tensor:
        """The same ``n`` inputs every time (for sample grids)."""
        if self.input_kind == "noise":
            return torch.randn(n, *self.input_shape, generator=rng(self.seed, 0, 99)).to(device)
        assert self.inputs is not None
        return self.inputs[:n].to(device)


def downsample(images: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Real images shrunk to a super-resolution generator's input size (bicubic, antialiased)."""
    out = F.interpolate(images, size=tuple(shape[-2:]), mode="bicubic", antialias=True, align_corners=False)
    return out.clamp(float(images.min()), float(images.max()))


def seed_global(seed: int, step: int) -> None:
    torch.manual_seed(mix(seed, step, STREAM_GLOBAL))
