"""Labelled sample grids: one row per model, the same input in every column.

Layout (pixels): a label column ``label_width`` wide, then ``n`` cells of
``W*scale`` with ``pad`` pixels between and around them; rows are ``max(H*scale, text
height)`` high with the same padding. Images are upscaled with nearest-neighbour so 16x16
digits stay crisp. Grayscale rows stay grayscale unless another row is RGB.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..io_utils import atomic_write
from .config import EvaluateConfig, resolve_device
from .models import LoadedModel, TestImages, model_inputs

BACKGROUND = 24
TEXT = 235


@dataclass(frozen=True)
class GridLayout:
    label_width: int
    cell_w: int
    cell_h: int
    columns: int
    rows: int
    pad: int

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the whole image."""
        width = self.label_width + self.columns * (self.cell_w + self.pad) + self.pad
        return width, self.rows * (self.cell_h + self.pad) + self.pad


def _font():
    from PIL import ImageFont

    return ImageFont.load_default()


def _text_size(text: str) -> tuple[int, int]:
    from PIL import Image, ImageDraw

    box = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), text, font=_font())
    return box[2] - box[0], box[3] - box[1]


def layout(rows: list[tuple[str, torch.Tensor]], scale: int, pad: int = 2, label_width: int | None = None) -> GridLayout:
    _, _, h, w = rows[0][1].shape
    sizes = [_text_size(label) for label, _ in rows]
    lw = label_width if label_width is not None else max(s[0] for s in sizes) + 3 * pad
    cell_h = max(h * scale, max(s[1] for s in sizes))
    return GridLayout(lw, w * scale, cell_h, max(t.shape[0] for _, t in rows), len(rows), pad)


def to_uint8_hwc(images: torch.Tensor, value_range: tuple[float, float], scale: int, channels: int) -> torch.Tensor:
    lo, hi = value_range
    x = ((images.detach().float().cpu() - lo) / (hi - lo) * 255).round().clamp(0, 255)
    x = F.interpolate(x, scale_factor=scale, mode="nearest") if scale != 1 else x
    if channels == 3 and x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    return x.to(torch.uint8).permute(0, 2, 3, 1)  # N, H, W, C


def render(rows: list[tuple[str, torch.Tensor]], value_range: tuple[float, float], scale: int = 4,
           pad: int = 2, label_width: int | None = None):
    """The grid as a PIL image."""
    from PIL import Image, ImageDraw

    if not rows:
        raise ValueError("save_grid needs at least one row")
    grid = layout(rows, scale, pad, label_width)
    channels = 3 if any(t.shape[1] == 3 for _, t in rows) else 1
    mode = "RGB" if channels == 3 else "L"
    canvas = Image.new(mode, grid.size, (BACKGROUND,) * 3 if channels == 3 else BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for r, (label, images) in enumerate(rows):
        top = pad + r * (grid.cell_h + pad)
        draw.text((pad, top + max(0, (grid.cell_h - _text_size(label)[1]) // 2)), label, font=_font(),
                  fill=(TEXT,) * 3 if channels == 3 else TEXT)
        pixels = to_uint8_hwc(images, value_range, scale, channels).numpy()
        for c, tile in enumerate(pixels):
            left = grid.label_width + pad + c * (grid.cell_w + pad)
            canvas.paste(Image.fromarray(tile[..., 0] if channels == 1 else tile, mode), (left, top))
    return canvas


def save_grid(rows: list[tuple[str, torch.Tensor]], path: str | Path, value_range: tuple[float, float] = (-1.0, 1.0),
              scale: int = 4, *, pad: int = 2, label_width: int | None = None, force: bool = False) -> Path:
    """Write a labelled PNG grid of ``rows`` (``(label, images (N, C, H, W))``) atomically."""
    image = render(rows, value_range, scale, pad, label_width)
    return atomic_write(Path(path), lambda tmp: image.save(tmp, format="PNG"), force=force)


def shown_label(model: LoadedModel) -> str:
    """The label in full, with the role of a model that is not under test (``reference``, ``teacher``)."""
    return model.label if model.role == "model" else f"{model.label} ({model.role})"


def fit_all(images: list[torch.Tensor], size: int) -> torch.Tensor:
    from ..data.images import fit

    return torch.stack([fit(t[0].float(), size) for t in images])


@torch.no_grad()
def write_img2img_grid(config: EvaluateConfig, models: list[LoadedModel], dense: LoadedModel | None,
                       test: TestImages, device: torch.device) -> Path:
    """Rows: input | dense | compressed (and other references) | target, the same test images in every row."""
    
    info = models[0].info
    size = min(info.output_shape[-1], 128)
    items = test.items[:config.outputs.grid_columns]
    c = info.output_shape[0]

    def shown(images: list[torch.Tensor]) -> torch.Tensor:
        out = []
        for t in images:
            t = t.float()
            if t.shape[1] != c:
                t = t.repeat(1, 3, 1, 1) if c == 3 else t.mean(dim=1, keepdim=True)
            out.append(t)
        return fit_all(out, size)

    order = ([dense] if dense is not None else []) + [m for m in models if m is not dense]
    rows = [("input", shown([x for _, x, _ in items]))]
    for m in order:
        label = f"{m.label} (dense)" if m is dense else shown_label(m)
        rows.append((label, shown([m.bundle.generator(x.to(device)).float().cpu() for _, x, _ in items])))
    targets = [t for _, _, t in items if t is not None]
    if test.paired and targets:
        rows.append(("target", shown(targets)))
    scale = max(1, min(8, 64 // max(1, size)))
    return save_grid(rows, config.outputs.samples_png, info.output_range, scale, force=config.outputs.force)


MAX_CLASS_ROWS = 16  # a class-conditional grid shows the first classes only


@torch.no_grad()
def write_grid(config: EvaluateConfig, models: list[LoadedModel]) -> Path:
    
    info = models[0].info
    columns = config.outputs.grid_columns
    x = next(model_inputs(info, columns, columns, config.run.seed, resolve_device(config.run.device)))
    if info.num_classes:  # one row per class and model, the same latents in every column
        from ..generation import with_labels

        rows = [(f"{shown_label(m)} class {c}", m.bundle.generator(with_labels(x, c)).float().cpu())
                for c in range(min(info.num_classes, MAX_CLASS_ROWS)) for m in models]
    else:
        rows = [(shown_label(m), m.bundle.generator(x).float().cpu()) for m in models]
    scale = max(1, min(8, 64 // max(1, info.output_shape[-1])))
    return save_grid(rows, config.outputs.samples_png, info.output_range, scale, force=config.outputs.force)
