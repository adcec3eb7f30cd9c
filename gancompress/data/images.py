"""Real images for training and evaluation: ``builtin:digits`` or a folder of images.

Images come back as one float32 tensor (N, C, H, W) scaled to the generator's output range
(``[-1, 1]`` by default), resized (shorter side) and centre-cropped to its resolution.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.nn.functional as F

from ..errors import InputError
from ..registry import unknown_choice

BUILTIN_DATA = ("builtin:digits",)  # the data sets shipped in the package

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def image_files(folder: Path, what: str = "--data") -> list[Path]:
    """Every image under ``folder``, searched recursively, in sorted relative-path order.

    The one search used for every kind of data (real-image folders, pix2pix/CycleGAN ``A/`` and
    ``B/`` folders, super-resolution folders). Files and folders whose names start with ``.``
    (``.ipynb_checkpoints``, ``.DS_Store``) are skipped.
    """
    if not folder.is_dir():
        raise InputError(f"{what} {folder}: not a folder; give a folder of images")
    files = sorted((p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                    and not any(part.startswith(".") for part in p.relative_to(folder).parts)),
                   key=lambda p: p.relative_to(folder).as_posix())
    if not files:
        raise InputError(f"{what} {folder}: no images ({', '.join(IMAGE_SUFFIXES)}) found; "
                         "point it at a folder of images (sub-folders are searched too)")
    return files


@contextmanager
def open_image(path: Path) -> Iterator[Any]:
    """A PIL image whose header was checked before any pixel is decoded: an image that claims more
    pixels than PIL's ``MAX_IMAGE_PIXELS`` (a decompression bomb), a truncated or unreadable file,
    are an :class:`InputError` naming the file. Decoding errors inside the block are reported the same way."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                yield im
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(f"{path}: its header claims more than {Image.MAX_IMAGE_PIXELS:,} pixels (a decompression bomb); "
                         "remove it from the data folder or shrink it") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"{path}: not a readable image ({exc}); remove it from the data folder") from None


def read_image(path: Path, channels: int | None = None) -> torch.Tensor:
    """One image as ``uint8`` ``(C, H, W)``; alpha and palettes resolved; checked by :func:`open_image`.

    ``channels`` 1 or 3 converts with PIL (``"L"``: ITU-R 601 luma, or ``"RGB"``); ``None`` keeps
    the file's own count: 1 for grayscale modes, else 3.
    """
    with open_image(path) as im:
        if channels is None:
            channels = _channels_of(im.mode)
        im = im.convert("L" if channels == 1 else "RGB")
        h, w = im.height, im.width
        data = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8)
    return data.view(h, w, channels).permute(2, 0, 1).contiguous()


def _channels_of(mode: str) -> int:
    """The channels :func:`read_image` gives a PIL mode without ``channels``: 1 for grayscale modes, else 3."""
    return 1 if mode in ("1", "L", "LA", "I", "I;16", "F") else 3


def read_header(path: Path) -> tuple[int, int, int]:
    """``(channels, height, width)`` of :func:`read_image` 's result, from the header alone (no pixels decoded)."""
    with open_image(path) as im:
        return _channels_of(im.mode), im.height, im.width


def fit(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize the shorter side to ``size`` and centre-crop to ``size x size``."""
    _, h, w = image.shape
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    resized = F.interpolate(image[None], size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)[0]
    top, left = (nh - size) // 2, (nw - size) // 2
    return resized[:, top:top + size, left:left + size]


def to_range(images: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
    """``uint8`` images (0..255) or floats in [0, 1] -> floats in ``value_range``."""
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images
    lo, hi = value_range
    return x * (hi - lo) + lo


def load_real(spec: str, *, size: int, channels: int, value_range: tuple[float, float] = (-1.0, 1.0),
              limit: int | None = None) -> torch.Tensor:
    """All real images of ``spec`` (``builtin:digits`` or a folder) as one tensor."""
    if spec == "builtin:digits":
        from .digits import digits_images

        images = digits_images(size=size, channels=channels)  # in [-1, 1]
        images = to_range((images + 1) / 2, value_range)
    elif spec.startswith("builtin:"):
        raise unknown_choice("builtin data set", spec, BUILTIN_DATA)
    else:
        files = image_files(data_folder(spec))[:limit]
        images = to_range(torch.stack([fit(to_range(read_image(p, channels), (0.0, 1.0)), size) for p in files]),
                          value_range)
    return images[:limit] if limit else images


def data_folder(spec: str) -> Path:
    """The folder ``--data`` names (an :class:`InputError` when it is not one)."""
    folder = Path(spec).expanduser()
    if not folder.is_dir():
        raise InputError(f"--data {spec}: not a folder; give a folder of images or builtin:digits")
    return folder


def batches(images: torch.Tensor, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless shuffled mini-batches (reshuffled every epoch, drop-last when possible)."""
    n = images.shape[0]
    if n == 0:
        raise InputError("the data set is empty")
    while True:
        order = torch.randperm(n, generator=generator)
        step = min(batch_size, n)
        for start in range(0, n - step + 1, step):
            yield images[order[start:start + step]]


def folder_labels(spec: str | None, num_classes: int) -> torch.Tensor | None:
    """Class labels of a labelled folder tree (one sub-folder per class, sorted by name: the first is
    class 0), in the order :func:`load_real` reads the images; None when ``spec`` is not one.

    ``builtin:digits`` gives its digits' classes to a 10-class network (uniform labels otherwise).
    A tree with another number of class folders than ``num_classes`` is refused."""
    if spec == "builtin:digits" and num_classes == 10:
        from .digits import digits_labels

        return digits_labels()
    if spec is None or spec.startswith("builtin:"):
        return None
    folder = Path(spec).expanduser()
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and image_files(p))
    if len(classes) < 2 or any(p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir()):
        return None
    if len(classes) != num_classes:
        raise InputError(f"--data {spec} holds {len(classes)} class folders but the networks take {num_classes} "
                         "classes; give one sub-folder per class (sorted by name: the first is class 0)")
    index = {p: i for i, p in enumerate(classes)}
    return torch.tensor([index[folder / f.relative_to(folder).parts[0]] for f in image_files(folder)], dtype=torch.long)
