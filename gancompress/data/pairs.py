"""Training and test data for image-to-image generators: paired, unpaired and super-resolution.

Layouts (``folder`` is what ``--data`` names; every folder is searched recursively, as
:func:`~gancompress.data.images.image_files` describes):

- **paired** (pix2pix): either a folder of side-by-side ``A|B`` images, each exactly twice as
  wide as it is high (the layout of the pytorch-CycleGAN-and-pix2pix datasets: the left half
  is A, the right half B), or a folder with two sub-folders ``A/`` and ``B/`` whose files are
  matched by path without the suffix (``A/0001.png`` pairs with ``B/0001.jpg``,
  ``A/day/0001.png`` with ``B/day/0001.png``). ``--inputs A_FOLDER``
  with ``--data B_FOLDER`` is the same as ``A/`` and ``B/``. Direction ``BtoA`` swaps the roles.
- **unpaired** (CycleGAN): ``A/`` and ``B/`` sub-folders (or ``--inputs A --data B``); any
  counts, no matching. ``BtoA`` swaps them.
- **sr** (ESRGAN/Real-ESRGAN): a folder of high-resolution images. Low-resolution inputs are
  made on the fly by bicubic downscaling with antialiasing (``torch.nn.functional.interpolate``,
  ``mode="bicubic", antialias=True``) of each high-resolution crop, optionally after a Gaussian
  blur (``blur``: sigma in HR pixels) and followed by Gaussian noise (``noise``: std in ``[0, 1]``
  units), clamped to the value range.

Images stay at their own size (stored as ``uint8``); training draws random crops of ``crop``
pixels (the same window in A and B, and a random horizontal flip of both), deterministic in
``(seed, step)``. Evaluation uses the full images. An image smaller than the crop is an error.

Channels: every image is brought to the network's channel count. A grayscale image given to an
RGB network is repeated over three channels; an RGB image given to a one-channel network is
turned into luma (ITU-R 601: ``0.299 R + 0.587 G + 0.114 B``, as PIL's ``"L"``). Either
conversion is reported once per data set (:attr:`ImageData.notes`). Alpha is dropped.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from typing import Optional

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..errors import InputError
from ..registry import unknown_choice
from .images import image_files, to_range
from .lazy import ImageRef, LazyImages, image_size, shared_file

DATA_KINDS = ("paired", "unpaired", "sr")
DIRECTIONS = ("AtoB", "BtoA")
STREAM_ORDER_A, STREAM_ORDER_B, STREAM_CROP, STREAM_DEGRADE = 11, 12, 13, 14
RECALIBRATION_STEPS = 1 << 40  # generator_inputs' steps start here, past any run's training steps


# ------------------------------------------------------------------ reading


class Converter:
    """Remembers (once per conversion) that images had to be brought to another channel count; the
    conversion itself happens when an image is decoded (:func:`.lazy.to_channels`)."""

    def __init__(self) -> None:
        self.notes: list[str] = []
        self._seen: set[tuple[int, int]] = set()

    def note(self, have: int, channels: int, where: str) -> None:
        if have == channels or (have, channels) in self._seen:
            return
        self._seen.add((have, channels))
        what = "grayscale images were given to an RGB model: each is repeated over 3 channels" if channels == 3 \
            else "RGB images were given to a one-channel model: each is converted to luma (0.299 R + 0.587 G + 0.114 B)"
        self.notes.append(f"{where}: {what}")

    def images(self, refs: list[ImageRef], channels: int, where: str) -> LazyImages:
        for ref in refs:
            self.note(ref.channels, channels, where)
        return LazyImages(refs, channels)


def _read_folder(folder: Path, channels: int, conv: Converter, what: str) -> tuple[LazyImages, list[str]]:
    files = image_files(folder, what)
    return conv.images([ImageRef.read(p) for p in files], channels, what), _names(files, folder)


def _names(files: list[Path], folder: Path) -> list[str]:
    """Display names: the path below ``folder`` (``0001.png``, ``day/0001.png``)."""
    return [p.relative_to(folder).as_posix() for p in files]


def _key(path: Path, folder: Path) -> str:
    """What pairs an A file with its B file: the path below its folder without the suffix."""
    return path.relative_to(folder).with_suffix("").as_posix()


def _match_by_name(a_dir: Path, b_dir: Path, what_a: str, what_b: str) -> tuple[list[Path], list[Path]]:
    a = {_key(p, a_dir): p for p in image_files(a_dir, what_a)}
    b = {_key(p, b_dir): p for p in image_files(b_dir, what_b)}
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    if only_a or only_b:
        parts = []
        for label, names in ((what_a, only_a), (what_b, only_b)):
            if names:
                more = f" (+{len(names) - 3} more)" if len(names) > 3 else ""
                parts.append(f"{len(names)} only in {label} ({', '.join(names[:3])}{more})")
        raise InputError(f"paired data: the A and B files do not match by name: {'; '.join(parts)}. "
                         "Paired (pix2pix) data needs one B image per A image with the same file name")
    keys = sorted(a)
    return [a[k] for k in keys], [b[k] for k in keys]


# ------------------------------------------------------------------ data sets


@dataclass
class ImageData:
    """Inputs ``a`` and targets ``b`` (``uint8`` CHW, any sizes; a :class:`~.lazy.LazyImages` decodes
    each when indexed, a list holds decoded tensors) for one kind of image-to-image task.

    ``paired``: ``a[i]`` goes with ``b[i]``. ``unpaired``: independent lists. ``sr``: ``b`` holds
    the high-resolution images and ``a`` is empty (inputs are made from ``b``; ``scale``).
    """

    kind: str
    a: Sequence[torch.Tensor]
    b: Sequence[torch.Tensor]
    names: list[str]
    scale: int = 1
    notes: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.b) if self.kind == "sr" else len(self.a)


def _ab_dirs(folder: Path) -> tuple[Path, Path] | None:
    a, b = folder / "A", folder / "B"
    return (a, b) if a.is_dir() and b.is_dir() else None


def load_paired(data: str, in_channels: int, out_channels: int, *, inputs: str | None = None,
                direction: str = "AtoB") -> ImageData:
    """Paired A/B images (see the module docstring for the layouts)."""
    _check_direction(direction)
    folder = Path(data).expanduser()
    conv = Converter()
    if inputs is not None:
        return _paired_folders(Path(inputs).expanduser(), folder, ("--inputs", "--data"), in_channels, out_channels,
                               direction, conv)
    dirs = _ab_dirs(folder) if folder.is_dir() else None
    if dirs is not None:
        return _paired_folders(dirs[0], dirs[1], ("A/", "B/"), in_channels, out_channels, direction, conv)
    files = image_files(folder, "--data")
    a, b = [], []
    for p in files:
        whole = ImageRef.read(p)
        if whole.width != 2 * whole.height:
            raise InputError(
                f"--data {folder}: {p.relative_to(folder).as_posix()} is {whole.width}x{whole.height}, not a side-by-side A|B pair (twice as wide as high). "
                "pix2pix needs paired data: side-by-side A|B images, or A/ and B/ sub-folders with matching "
                "file names (unpaired folders are for CycleGAN)")
        left, right = whole.halves()
        if direction == "BtoA":
            left, right = right, left
        a.append(left)
        conv.note(left.channels, in_channels, "inputs")
        b.append(right)
        conv.note(right.channels, out_channels, "targets")
    return ImageData("paired", LazyImages(a, in_channels), LazyImages(b, out_channels), _names(files, folder),
                     notes=conv.notes)


def _paired_folders(a_dir: Path, b_dir: Path, labels: tuple[str, str], in_channels: int, out_channels: int,
                    direction: str, conv: Converter) -> ImageData:
    """Pairs matched by path below ``a_dir`` and ``b_dir`` (without the suffix); ``BtoA`` swaps roles."""
    a_files, b_files = _match_by_name(a_dir, b_dir, *labels)
    if direction == "BtoA":
        (a_files, a_dir), (b_files, b_dir) = (b_files, b_dir), (a_files, a_dir)
    a = conv.images([ImageRef.read(p) for p in a_files], in_channels, "inputs")
    b = conv.images([ImageRef.read(p) for p in b_files], out_channels, "targets")
    return _checked_pairs(ImageData("paired", a, b, _names(a_files, a_dir), notes=conv.notes))


def _checked_pairs(data: ImageData) -> ImageData:
    for i, name in enumerate(data.names):
        (ha, wa), (hb, wb) = image_size(data.a, i), image_size(data.b, i)
        if (ha, wa) != (hb, wb):
            raise InputError(f"paired data: {name} is {wa}x{ha} in A but {wb}x{hb} in B; each pair must have the same size")
    return data


def load_unpaired(data: str, in_channels: int, out_channels: int, *, inputs: str | None = None,
                  direction: str = "AtoB") -> ImageData:
    """Unpaired domains A and B (CycleGAN): ``A/`` and ``B/`` under ``data``, or ``--inputs A --data B``."""
    _check_direction(direction)
    folder = Path(data).expanduser()
    conv = Converter()
    if inputs is not None:
        a_dir, b_dir = Path(inputs).expanduser(), folder
    else:
        dirs = _ab_dirs(folder) if folder.is_dir() else None
        if dirs is None:
            raise InputError(f"--data {folder}: unpaired (CycleGAN) data needs A/ and B/ sub-folders "
                             "(or --inputs A_FOLDER with --data B_FOLDER)")
        a_dir, b_dir = dirs
    if direction == "BtoA":
        a_dir, b_dir = b_dir, a_dir
    a, names = _read_folder(a_dir, in_channels, conv, "inputs")
    b, _ = _read_folder(b_dir, out_channels, conv, "targets")
    return ImageData("unpaired", a, b, names, notes=conv.notes)


def load_sr(data: str, channels: int, scale: int) -> ImageData:
    """High-resolution images for a x``scale`` super-resolution model (inputs made by downscaling)."""
    folder = Path(data).expanduser()
    conv = Converter()
    b, names = _read_folder(folder, channels, conv, "--data")
    return ImageData("sr", [], b, names, scale=scale, notes=conv.notes)


def load_image_data(kind: str, data: str, in_channels: int, out_channels: int, *, inputs: str | None = None,
                    direction: str = "AtoB", scale: int = 1) -> ImageData:
    if kind == "paired":
        return load_paired(data, in_channels, out_channels, inputs=inputs, direction=direction)
    if kind == "unpaired":
        return load_unpaired(data, in_channels, out_channels, inputs=inputs, direction=direction)
    if kind == "sr":
        if inputs is not None:
            raise InputError("super-resolution makes its low-resolution inputs from --data: drop --inputs")
        return load_sr(data, out_channels, scale)
    raise unknown_choice("image data kind", kind, DATA_KINDS)


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise unknown_choice("direction", direction, DIRECTIONS)


# ------------------------------------------------------------------ tensors


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur (radius 3 sigma, reflect padding) of ``(N, C, H, W)`` images."""
    if sigma <= 0:
        return images
    radius = max(1, int(3 * sigma + 0.5))
    x = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    k = torch.exp(-x ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    c = images.shape[1]
    out = F.pad(images, (radius, radius, radius, radius), mode="reflect")
    out = F.conv2d(out, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(out, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


@dataclass(frozen=True)
class Degradation:
    """How SR inputs are made from HR images: blur (HR sigma), bicubic x1/scale, noise (std in [0, 1] units)."""

    scale: int
    blur: float = 0.0
    noise: float = 0.0

    def __post_init__(self) -> None:
        if self.blur < 0 or self.noise < 0:
            raise InputError("--sr-blur and --sr-noise must be >= 0")

    def __call__(self, hr: torch.Tensor, value_range: tuple[float, float], generator: torch.Generator | None = None,
                 *, rows: tuple[int, int] | None = None, batch: int | None = None) -> torch.Tensor:
        """``rows``: ``hr`` is rows ``lo:hi`` of a ``batch`` of images (one rank's slice): its noise is
        that slice of the whole batch's noise, so the slices put together equal the whole."""
        lo, hi = value_range
        x = gaussian_blur(hr.float(), self.blur)
        if self.scale > 1:
            h, w = hr.shape[-2:]
            x = F.interpolate(x, size=(h // self.scale, w // self.scale), mode="bicubic", antialias=True,
                              align_corners=False)
        if self.noise > 0:
            shape = x.shape if rows is None else (batch, *x.shape[1:])
            noise = torch.randn(shape, generator=generator)
            x = x + (noise if rows is None else noise[rows[0]:rows[1]]).to(x) * self.noise * (hi - lo)
        return x.clamp(lo, hi)


def check_crop(data: ImageData, crop: int) -> None:
    """Every image must hold a ``crop x crop`` window (and SR crops divide by the scale); sizes from headers."""
    if not isinstance(crop, int) or isinstance(crop, bool) or crop <= 0:
        raise InputError(f"--crop must be a positive integer, got {crop!r}")
    if data.kind == "sr" and crop % data.scale:
        raise InputError(f"--crop {crop} is not a multiple of the x{data.scale} scale; the crop is taken on the "
                         f"high-resolution images, so use e.g. --crop {max(data.scale, crop - crop % data.scale)}")
    for images, label in ((data.a, "input"), (data.b, "target")):
        for i in range(len(images)):
            h, w = image_size(images, i)
            if h < crop or w < crop:
                named = i < len(data.names) and (label == "input" or data.kind != "unpaired")
                name = data.names[i] if named else f"#{i + 1}"
                raise InputError(f"{label} image {name} is {w}x{h}, smaller than --crop {crop}; "
                                 "pass a smaller --crop or use larger images")


def _rng(seed: int, index: int, stream: int) -> torch.Generator:
    from .batches import mix

    return torch.Generator().manual_seed(mix(seed, index, stream))


Window = tuple[int, int, int, bool]  # (image index, top, left, flip)
Item = tuple[Optional[Window], Optional[Window]]  # one sample: its window in A (None for SR) and in B


class CropItems(Dataset):
    """The crops of one sample: ``(A crop or None, B crop or None)`` as ``uint8``, decoded here (in a
    DataLoader worker when streamed); a side-by-side file is decoded once for both of its halves."""

    def __init__(self, data: ImageData, crop: int) -> None:
        self.data, self.crop = data, crop

    def __getitem__(self, item: Item) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        a, b = item
        whole = shared_file(self.data.a, a[0], self.data.b, b[0]) if a is not None and b is not None else None
        return self._cut(self.data.a, a, whole), self._cut(self.data.b, b, whole)

    def _cut(self, images: Sequence[torch.Tensor], window: Window | None, whole: torch.Tensor | None) -> torch.Tensor | None:
        if window is None:
            return None
        i, top, left, flip = window
        image = images.get(i, whole) if isinstance(images, LazyImages) else images[i]
        out = image[:, top:top + self.crop, left:left + self.crop]
        return out.flip(-1) if flip else out


def _as_list(items: list) -> list:
    """The DataLoader's collate: a step's samples as they are (A and B crops are stacked by the sampler)."""
    return items


@dataclass
class CropSampler:
    """Random crops of image-to-image data for every step, derived from ``(seed, step)`` alone.

    ``draw`` returns :class:`~gancompress.finetune.batches.StepData`: ``x`` the input crops,
    ``real`` the target crops (the ground truth of ``x`` for paired and SR data, independent
    target-domain crops for unpaired data) and ``real_x = x`` when paired. A step's windows
    (:meth:`items`) come from the image sizes alone; the pixels are decoded and cut by
    :class:`CropItems`, through ``workers`` DataLoader processes once :meth:`place` is called
    (the trainer does; pinned memory on CUDA; ``bounds``: this rank's slice under torchrun),
    else in this process. Both give the same batches.
    """

    seed: int
    batch_size: int
    data: ImageData
    crop: int
    value_range: tuple[float, float]
    degradation: Degradation | None = None
    flip: bool = True
    workers: int = 2

    def __post_init__(self) -> None:
        if self.data.n == 0 or (self.data.kind == "unpaired" and not self.data.b):
            raise InputError("the data set is empty; point --data at a folder with images")
        check_crop(self.data, self.crop)
        self.n = self.data.n
        self.size = min(self.batch_size, self.n)
        if self.data.kind == "sr" and self.degradation is None:
            self.degradation = Degradation(self.data.scale)
        self.stream, self.bounds = None, None

    @property
    def paired(self) -> bool:
        return self.data.kind in ("paired", "sr")

    def place(self, device: torch.device, bounds: tuple[int, int] | None = None) -> None:
        """Stream the crops to ``device`` by DataLoader workers; ``bounds``: this rank's slice of every batch."""
        from .stream import StepStream

        self.bounds = bounds
        self.stream = StepStream(CropItems(self.data, self.crop), self.items, workers=self.workers,
                                 pin_memory=device.type == "cuda", bounds=bounds, collate=_as_list)

    def _order(self, step: int, n: int, stream: int) -> torch.Tensor:
        per_epoch = max(1, n // self.size)
        epoch, pos = divmod(step, per_epoch)
        order = torch.randperm(n, generator=_rng(self.seed, epoch, stream))
        if n < self.size:
            order = order.repeat(self.size // n + 1)
        return order[pos * self.size:(pos + 1) * self.size]

    def _window(self, images: Sequence[torch.Tensor], i: int, g: torch.Generator, flip: bool) -> Window:
        h, w = image_size(images, i)
        top = int(torch.randint(0, h - self.crop + 1, (1,), generator=g))
        left = int(torch.randint(0, w - self.crop + 1, (1,), generator=g))
        return i, top, left, flip

    def _flip(self, g: torch.Generator) -> bool:
        return bool(self.flip and torch.rand((), generator=g) < 0.5)

    def items(self, step: int) -> list[Item]:
        """Step ``step``'s samples: the window of each in A and B (the same window and flip for a pair)."""
        g = _rng(self.seed, step, STREAM_CROP)
        kind, a, b = self.data.kind, self.data.a, self.data.b
        if kind == "paired":
            out = []
            for i in self._order(step, self.n, STREAM_ORDER_A).tolist():
                gi = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,), generator=g)))
                window = self._window(a, i, gi, self._flip(gi))
                out.append((window, window))
            return out
        if kind == "sr":
            return [(None, self._window(b, i, g, self._flip(g))) for i in self._order(step, self.n, STREAM_ORDER_A).tolist()]
        xs = [self._window(a, i, g, self._flip(g)) for i in self._order(step, self.n, STREAM_ORDER_A).tolist()]
        ys = [self._window(b, i, g, self._flip(g)) for i in self._order(step, len(b), STREAM_ORDER_B).tolist()]
        return list(zip(xs, ys))

    def draw(self, step: int, device: torch.device):
        from .batches import StepData

        if self.stream is not None:
            crops = self.stream.batch(step)
        else:
            items = self.items(step)
            crops = [CropItems(self.data, self.crop)[item] for item in items]
        move = (lambda t: t.to(device, non_blocking=True))
        b = to_range(torch.stack([c[1] for c in crops]), self.value_range)
        sharded = self.bounds is not None
        if self.data.kind == "sr":
            lr = self.degradation(b, self.value_range, _rng(self.seed, step, STREAM_DEGRADE), rows=self.bounds,
                                  batch=self.size)
            return StepData(move(lr), move(b), move(lr), sharded=sharded)
        a = move(to_range(torch.stack([c[0] for c in crops]), self.value_range))
        return StepData(a, move(b), a if self.data.kind == "paired" else None, sharded=sharded)

    def generator_inputs(self, index: int, device: torch.device) -> torch.Tensor:
        """A global batch of the generator's input crops alone, for BatchNorm recalibration: steps of their own
        (past any training step), decoded in this process (the stream serves the training steps in order)."""
        step = RECALIBRATION_STEPS + index
        crops = [CropItems(self.data, self.crop)[item] for item in self.items(step)]
        if self.data.kind == "sr":
            b = to_range(torch.stack([c[1] for c in crops]), self.value_range)
            return self.degradation(b, self.value_range, _rng(self.seed, step, STREAM_DEGRADE)).to(device)
        return to_range(torch.stack([c[0] for c in crops]), self.value_range).to(device)

    def fixed(self, n: int, device: torch.device) -> torch.Tensor:
        """The same ``n`` centre-cropped inputs every time (for sample grids)."""
        source = self.data.b if self.data.kind == "sr" else self.data.a
        crops = []
        for i in range(min(n, len(source))):
            image = source[i]
            h, w = image.shape[1:]
            top, left = (h - self.crop) // 2, (w - self.crop) // 2
            crops.append(image[:, top:top + self.crop, left:left + self.crop])
        x = to_range(torch.stack(crops), self.value_range)
        if self.data.kind == "sr":
            x = self.degradation(x, self.value_range, _rng(self.seed, 0, STREAM_DEGRADE))
        return x.to(device)


# ------------------------------------------------------------------ evaluation


def center_multiple(image: torch.Tensor, multiple: int) -> torch.Tensor:
    """Centre-crop ``(C, H, W)`` to the largest size that is a multiple of ``multiple``."""
    h, w = image.shape[1:]
    nh, nw = h - h % multiple, w - w % multiple
    if nh == 0 or nw == 0:
        raise InputError(f"an image of {w}x{h} is smaller than the {multiple}-pixel multiple this model needs")
    top, left = (h - nh) // 2, (w - nw) // 2
    return image[:, top:top + nh, left:left + nw]


def eval_pairs(data: ImageData, value_range: tuple[float, float], multiple: int = 1,
               degradation: Degradation | None = None) -> list[tuple[str, torch.Tensor, torch.Tensor | None]]:
    """Full-size ``(name, input (1,C,H,W), target or None)`` per input image, in the value range.

    Sizes are centre-cropped to a multiple the model accepts (``multiple``; for SR, of the
    high-resolution image). Unpaired data has no per-image target.
    """
    out = []
    if data.kind == "sr":
        deg = degradation or Degradation(data.scale)
        for name, hr in zip(data.names, data.b):
            hr = to_range(center_multiple(hr, multiple * data.scale)[None], value_range)
            out.append((name, deg(hr, value_range, torch.Generator().manual_seed(0)), hr))
        return out
    for i, (name, a) in enumerate(zip(data.names, data.a)):
        x = to_range(center_multiple(a, multiple)[None], value_range)
        y = to_range(center_multiple(data.b[i], multiple)[None], value_range) if data.kind == "paired" else None
        out.append((name, x, y))
    return out


def input_multiple(spec) -> int:
    """The multiple an input side must be for a built-in image-to-image generator (1 when unknown)."""
    if spec is None:
        return 1
    kw = spec.kwargs
    if spec.name == "pix2pix-unet-g":
        return 2 ** int(kw.get("num_downs", 8))
    if spec.name == "pix2pix-resnet-g":
        return 4
    if spec.name == "rrdbnet-g":
        return {4: 1, 2: 2, 1: 4}.get(int(kw.get("scale", 4)), 1)
    return 1
