"""Deterministic inputs for every step, derived from ``(seed, step)`` alone.

Each step's real-image indices, latents and the global torch RNG (dropout, gradient-penalty
interpolation) come from generators seeded by ``(seed, step, stream)``: a run resumed at step
``k`` draws exactly what the uninterrupted run drew, with no RNG state to save.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..errors import InputError

_MASK = (1 << 63) - 1
STREAM_ORDER, STREAM_NOISE, STREAM_GLOBAL, STREAM_LABELS, STREAM_RECALIBRATE = 1, 2, 3, 4, 5


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
    """Generator input ``x``; ``real`` images and, for a conditional D, their paired ``real_x``;
    class-conditional networks: the ``labels`` of the fakes and the ``real_labels`` of the real images."""

    x: torch.Tensor
    real: torch.Tensor | None = None
    real_x: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    real_labels: torch.Tensor | None = None
    sharded: bool = False  # already this process's slice of the global batch (streamed data)


@dataclass
class Sampler:
    """Draws :class:`StepData` for a step: noise or input images, plus shuffled real images.

    ``real`` is a tensor (in memory) or a lazily decoding dataset (a folder), which is streamed by
    ``workers`` DataLoader processes (:mod:`.stream`); both give the same batch for a step.
    """

    seed: int
    batch_size: int
    input_kind: str
    input_shape: tuple[int, ...]
    real: torch.Tensor | Dataset | None = None
    inputs: torch.Tensor | None = None
    paired: bool = False
    num_classes: int | None = None            # class-conditional G or D: labels drawn uniformly
    real_labels: torch.Tensor | None = None   # the real images' labels (a labelled folder tree), else uniform
    packed: bool = False                      # the generator's input carries the label (generation.draw_latents)
    workers: int = 2

    def __post_init__(self) -> None:
        pool = self.real if self.real is not None else self.inputs
        self.n = len(pool) if pool is not None else 0
        self.stream, self.bounds = None, None
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

    @property
    def streams(self) -> bool:
        return self.real is not None and not isinstance(self.real, torch.Tensor)

    def place(self, device: torch.device, bounds: tuple[int, int] | None = None) -> None:
        """Stream to ``device`` (pinned memory on CUDA); ``bounds``: this rank's slice of every batch."""
        if self.streams:
            from .stream import StepStream

            self.bounds = bounds
            self.stream = StepStream(self.real, self.indices, workers=self.workers, pin_memory=device.type == "cuda",
                                     bounds=bounds)

    def draw(self, step: int, device: torch.device) -> StepData:
        from ..generation import draw_latents, labels_of

        if self.streams and self.stream is None:
            self.place(device)
        idx = self.indices(step) if self.n else None
        if self.stream is not None:
            real = self.stream.batch(step).to(device, non_blocking=True)
        else:
            real = self.real[idx].to(device) if self.real is not None else None
        if self.input_kind == "noise":
            classes = self.num_classes if self.packed else None
            x = draw_latents(self.size, self.input_shape, rng(self.seed, step, STREAM_NOISE), classes).to(device)
        else:
            x = self._inputs_at(idx, step).to(device)
        data = StepData(x, real, x if self.paired else None)
        if self.num_classes:
            labels = rng(self.seed, step, STREAM_LABELS)
            data.labels = labels_of(x) if self.packed else torch.randint(self.num_classes, (x.shape[0],), generator=labels).to(device)
            if real is not None:
                data.real_labels = (self.real_labels[idx] if self.real_labels is not None
                                    else torch.randint(self.num_classes, (len(idx),), generator=labels)).to(device)
        if self.bounds is None:
            return data
        lo, hi = self.bounds  # the stream already cut ``real`` to this rank's slice
        cut = (lambda t: None if t is None else t[lo:hi])
        return StepData(cut(x), real, cut(data.real_x), labels=cut(data.labels), real_labels=cut(data.real_labels),
                        sharded=True)

    def _inputs_at(self, idx: torch.Tensor | None, step: int) -> torch.Tensor:
        assert self.inputs is not None
        if self.paired and idx is not None:
            return self.inputs[idx]
        order = torch.randperm(self.inputs.shape[0], generator=rng(self.seed, step, STREAM_NOISE))
        return self.inputs[order[:self.size]]

    def generator_inputs(self, index: int, device: torch.device) -> torch.Tensor:
        """A global batch of the generator's inputs alone (no real images read), from a stream of its own:
        latents (packed with uniform labels for a class-conditional generator) or input images."""
        gen = rng(self.seed, index, STREAM_RECALIBRATE)
        if self.input_kind == "noise":
            from ..generation import draw_latents

            return draw_latents(self.size, self.input_shape, gen, self.num_classes if self.packed else None).to(device)
        assert self.inputs is not None
        return self.inputs[torch.randperm(self.inputs.shape[0], generator=gen)[:self.size]].to(device)

    def fixed(self, n: int, device: torch.device) -> torch.Tensor:
        """The same ``n`` inputs every time (for sample grids)."""
        if self.input_kind == "noise":
            from ..generation import draw_latents

            classes = self.num_classes if self.packed else None
            return draw_latents(n, self.input_shape, rng(self.seed, 0, 99), classes,
                                torch.arange(n) % classes if classes else None).to(device)
        assert self.inputs is not None
        return self.inputs[:n].to(device)


def downsample(images: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Real images shrunk to a super-resolution generator's input size (bicubic, antialiased)."""
    out = F.interpolate(images, size=tuple(shape[-2:]), mode="bicubic", antialias=True, align_corners=False)
    return out.clamp(float(images.min()), float(images.max()))


def seed_global(seed: int, step: int) -> None:
    torch.manual_seed(mix(seed, step, STREAM_GLOBAL))
