"""Image lists that decode on access: what image-to-image data holds instead of decoded pixels.

Loading a folder reads every file's header (its size and channel count, so layouts, pairs and
crops are checked before any work) and no pixels. :class:`LazyImages` decodes image ``i`` when it
is indexed, as ``uint8`` ``(C, H, W)`` at the network's channel count; ``half`` picks the left or
right half of a side-by-side ``A|B`` file. Training reads a step's crops through DataLoader
workers (:class:`~gancompress.data.pairs.CropSampler`); evaluation reads each test image once.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from .images import read_header, read_image

LUMA = (0.299, 0.587, 0.114)


def to_channels(image: torch.Tensor, channels: int) -> torch.Tensor:
    """A ``uint8`` image at ``channels``: grayscale repeated over RGB, or RGB to luma (ITU-R 601, as PIL's ``"L"``)."""
    if image.shape[0] == channels:
        return image
    if channels == 3:
        return image.expand(3, *image.shape[1:]).clone()
    w = torch.tensor(LUMA).view(3, 1, 1)
    return (image.float() * w).sum(0, keepdim=True).round().clamp(0, 255).to(torch.uint8)


@dataclass(frozen=True)
class ImageRef:
    """One image: a file (``half``: None the whole file, 0 its left half, 1 its right half) and the
    ``(channels, height, width)`` its header gives (of the half, for a half)."""

    path: Path
    channels: int
    height: int
    width: int
    half: int | None = None

    @classmethod
    def read(cls, path: Path, half: int | None = None) -> ImageRef:
        channels, h, w = read_header(path)
        return cls(path, channels, h, w if half is None else w // 2, half)

    def halves(self) -> tuple[ImageRef, ImageRef]:
        """The left and right halves of this (side-by-side) file, with no second header read."""
        w = self.width // 2
        return replace(self, width=w, half=0), replace(self, width=w, half=1)

    def load(self, whole: torch.Tensor | None = None) -> torch.Tensor:
        """The image (``whole``: this file, already decoded)."""
        image = read_image(self.path) if whole is None else whole
        if self.half is not None:
            h = image.shape[1]
            image = image[:, :, self.half * h:(self.half + 1) * h].contiguous()
        return image


class LazyImages(Sequence):
    """The images of ``refs`` at ``channels``, each decoded when indexed (``size(i)`` needs no decoding)."""

    def __init__(self, refs: list[ImageRef], channels: int) -> None:
        self.refs, self.channels = list(refs), channels

    def __len__(self) -> int:
        return len(self.refs)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        return self.get(i)

    def get(self, i: int, whole: torch.Tensor | None = None) -> torch.Tensor:
        """Image ``i``; ``whole``: its file, already decoded (both halves of a side-by-side file decode once)."""
        return to_channels(self.refs[i].load(whole), self.channels)

    def size(self, i: int) -> tuple[int, int]:
        """``(height, width)`` of image ``i``."""
        ref = self.refs[i]
        return ref.height, ref.width


def shared_file(a: Sequence, i: int, b: Sequence, j: int) -> torch.Tensor | None:
    """The decoded file when image ``i`` of ``a`` and image ``j`` of ``b`` are halves of one file, else None."""
    if isinstance(a, LazyImages) and isinstance(b, LazyImages) and a.refs[i].path == b.refs[j].path:
        return read_image(a.refs[i].path)
    return None


def image_size(images: Sequence, i: int) -> tuple[int, int]:
    """``(height, width)`` of image ``i`` of a :class:`LazyImages` (from its header) or a list of tensors."""
    if isinstance(images, LazyImages):
        return images.size(i)
    return tuple(images[i].shape[1:])
