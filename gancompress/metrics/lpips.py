"""LPIPS to the dense model: the perceptual counterpart of PSNR/SSIM, through torch-fidelity's LPIPS.

torch-fidelity (already a dependency) ships the original LPIPS network (``lpips-vgg16``, the
VGG16 variant of Zhang et al. 2018, as used for its PPL metric). It needs two files in the
torch hub cache: the LPIPS linear heads ``weights-vgg16-lpips.pth`` (torch-fidelity's release;
no published hash: checked for completeness only) and torchvision's ImageNet VGG16
``vgg16-397923af.pth`` (SHA-256 prefix in its name, checked). Both are downloaded on first use
when the machine is online (URLs overridable with ``$GANCOMPRESS_LPIPS_URL`` and
``$GANCOMPRESS_VGG16_URL``) and must load as plain state dicts (torch-fidelity unpickles them
without ``weights_only``). When they cannot be had, :class:`LpipsUnavailable` says why and
what to put where; evaluate reports that instead of a number.

Images are compared as torch-fidelity's PPL does: ``uint8`` RGB (one channel repeated), resized
to 64x64 when smaller (VGG16 needs room for its five poolings); lower is closer.
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from .weights_download import WeightsSource, WeightsUnavailable, ensure_in_hub

LPIPS_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-vgg16-lpips.pth"
VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
LPIPS_URL_ENV = "GANCOMPRESS_LPIPS_URL"
VGG16_URL_ENV = "GANCOMPRESS_VGG16_URL"
MIN_SIZE = 64


class LpipsUnavailable(Exception):
    """LPIPS cannot be computed here (weights missing and not downloadable); the message says what to do."""


def lpips_sources() -> list[WeightsSource]:
    return [WeightsSource.from_env(LPIPS_URL_ENV, LPIPS_URL, hashed=False), WeightsSource.from_env(VGG16_URL_ENV, VGG16_URL)]


def ensure_lpips_weights() -> None:
    """Both files in the hub cache (downloaded on first use) and safe to unpickle, else :class:`LpipsUnavailable`."""
    from ..errors import InputError
    from .extractors import check_weights_file

    for source in lpips_sources():
        try:
            check_weights_file(ensure_in_hub(source, hint=f"put the file at {source.hub_path}"))
        except (WeightsUnavailable, InputError) as exc:
            raise LpipsUnavailable(f"LPIPS needs {source.file_name} ({exc}); put it at {source.hub_path} "
                                   f"(from {source.url})") from None


def load_lpips(device: torch.device) -> nn.Module:
    """torch-fidelity's ``lpips-vgg16`` on ``device`` (weights checked first)."""
    from torch_fidelity.sample_similarity_lpips import SampleSimilarityLPIPS

    ensure_lpips_weights()
    return SampleSimilarityLPIPS("lpips-vgg16", sample_similarity_resize=None).to(device).eval()


def _to_lpips_input(images: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
    from .fidelity import to_uint8

    x = to_uint8(images, value_range, 3).float()
    if min(x.shape[-2:]) < MIN_SIZE:
        x = torch.nn.functional.interpolate(x, size=(MIN_SIZE, MIN_SIZE), mode="bilinear", align_corners=False)
    return x


@torch.no_grad()
def mean_lpips(net: nn.Module, pairs: Iterable[tuple[torch.Tensor, torch.Tensor]], value_range: tuple[float, float]) -> float:
    """Mean LPIPS over all image pairs ``(a, b)`` (batches of images in ``value_range``)."""
    total, count = 0.0, 0
    for a, b in pairs:
        device = next(net.parameters()).device
        d = net(_to_lpips_input(a, value_range).to(device), _to_lpips_input(b, value_range).to(device))
        total += float(d.double().sum())
        count += int(d.numel())
    return total / max(1, count)
