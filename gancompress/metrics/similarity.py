"""How close a compressed generator stays to its dense teacher (or an image model to ground truth).

- **PSNR** ``10 log10(R^2 / MSE)`` with ``R`` the width of the output range (2 for ``[-1, 1]``)
  and the MSE over *all* pixels of all samples (not a mean of per-image PSNRs). Identical
  outputs give ``MSE = 0`` and PSNR ``inf``: the library returns ``float("inf")``; JSON reports
  write it as the string ``"inf"`` (see :func:`json_number`).
- **SSIM** (Wang et al. 2004): 11x11 Gaussian window (sigma 1.5, smaller odd window for images
  under 11 pixels), ``K1=0.01``, ``K2=0.03``, population statistics, valid positions only,
  averaged over positions, channels and images; equals scikit-image's
  ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``.
- **mean absolute difference** over all pixels, in output units.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float) -> float:
    """PSNR in dB over all elements; ``inf`` when ``a`` and ``b`` are identical."""
    mse = float(((a.double() - b.double()) ** 2).mean())
    return psnr_from_mse(mse, data_range)


def psnr_from_mse(mse: float, data_range: float) -> float:
    return math.inf if mse == 0 else 10.0 * math.log10(data_range ** 2 / mse)


def _window(size: int, sigma: float, channels: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    x = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim_per_image(a: torch.Tensor, b: torch.Tensor, data_range: float, *, win_size: int = 11,
                   sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03) -> torch.Tensor:
    """SSIM of each image pair ``(N, C, H, W)`` -> ``(N,)`` (mean over valid positions and channels)."""
    if a.shape != b.shape or a.dim() != 4:
        raise ValueError(f"ssim needs two (N, C, H, W) tensors of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    size = min(win_size, a.shape[-1], a.shape[-2])
    size -= 1 - size % 2  # odd
    a, b = a.double(), b.double()
    w = _window(size, sigma, a.shape[1], a.dtype, a.device)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, w, groups=a.shape[1])

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return s.flatten(1).mean(dim=1)


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float) -> float:
    return float(ssim_per_image(a, b, data_range).mean())


def mean_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().mean())


@dataclass
class Similarity:
    """PSNR (dB, ``inf`` when identical), SSIM and mean absolute difference over ``count`` images."""

    psnr: float
    ssim: float
    mean_abs_diff: float
    count: int

    def to_dict(self) -> dict[str, Any]:
        return {"psnr": json_number(self.psnr), "ssim": self.ssim, "mean_abs_diff": self.mean_abs_diff,
                "count": self.count}


class SimilarityAccumulator:
    """Adds batches of image pairs; :meth:`result` gives the totals (PSNR from the pooled MSE)."""

    def __init__(self, data_range: float) -> None:
        self.data_range = data_range
        self.sq = self.abs = self.ssim_sum = 0.0
        self.elements = self.images = 0

    def update(self, a: torch.Tensor, b: torch.Tensor) -> None:
        diff = a.double() - b.double()
        self.sq += float((diff ** 2).sum())
        self.abs += float(diff.abs().sum())
        self.elements += diff.numel()
        self.ssim_sum += float(ssim_per_image(a, b, self.data_range).sum())
        self.images += a.shape[0]

    def result(self) -> Similarity:
        n = max(1, self.elements)
        return Similarity(psnr_from_mse(self.sq / n, self.data_range), self.ssim_sum / max(1, self.images),
                          self.abs / n, self.images)


@torch.no_grad()
def compare_models(model: nn.Module, reference: nn.Module, inputs: Iterable[torch.Tensor], data_range: float) -> Similarity:
    """Run both models on the same input batches and compare their outputs."""
    acc = SimilarityAccumulator(data_range)
    for x in inputs:
        acc.update(model(x).float(), reference(x).float())
    return acc.result()


@torch.no_grad()
def compare_to_targets(model: nn.Module, pairs: Iterable[tuple[torch.Tensor, torch.Tensor]], data_range: float,
                       transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> Similarity:
    """Image-to-image models vs ground truth: ``pairs`` of ``(inputs, targets)`` batches."""
    acc = SimilarityAccumulator(data_range)
    for x, target in pairs:
        out = model(x).float()
        acc.update(transform(out) if transform else out, target.float().to(out.device))
    return acc.result()


def json_number(value: float | None) -> float | str | None:
    """JSON has no infinity: ``inf``/``-inf``/``nan`` become the strings ``"inf"``, ``"-inf"``, ``"nan"``."""
    if value is None or not isinstance(value, float) or math.isfinite(value):
        return value
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
