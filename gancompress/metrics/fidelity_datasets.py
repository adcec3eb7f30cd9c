"""torch-fidelity's registered data sets (``cifar10-train``, ``stl10-test``, ...) as real data.

``--data cifar10-train`` takes the data set torch-fidelity registers under that name (its
``DATASETS_REGISTRY``: CIFAR-10/100 and STL-10 splits, plus any you register), kept where
torch-fidelity keeps it (``$TORCH_HOME/fidelity_datasets``) and downloaded there by
torchvision on first use, unless ``$GANCOMPRESS_OFFLINE`` is set. Images are read as ``uint8``
and, like a folder of images, resized (shorter side) and centre-cropped to the generator's
resolution only when they differ from it; channels follow the generator (grey = mean of RGB).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError
from .weights_download import OFFLINE_ENV


def registered_names() -> list[str]:
    from torch_fidelity.registry import DATASETS_REGISTRY

    return list(DATASETS_REGISTRY)


def is_registered(spec: str) -> bool:
    return spec in registered_names()


def datasets_root() -> Path:
    return Path(torch.hub._get_torch_home()) / "fidelity_datasets"


def open_registered(name: str) -> Any:
    """The torch-fidelity data set ``name`` (downloading it unless offline), or a one-line :class:`InputError`."""
    from torch_fidelity.registry import DATASETS_REGISTRY

    root = datasets_root()
    download = os.environ.get(OFFLINE_ENV, "") in ("", "0")
    try:
        root.mkdir(parents=True, exist_ok=True)
        dataset = DATASETS_REGISTRY[name](str(root), download)
        _ = len(dataset)
    except Exception as exc:  # noqa: BLE001 - torchvision raises RuntimeError, URLError, OSError...
        why = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise InputError(f"--data {name}: torch-fidelity's data set could not be {'downloaded' if download else 'found'} "
                         f"under {root} ({why}); pass a folder of images or a statistics .npz instead") from None
    return dataset


def _fit_uint8(images: torch.Tensor, size: int, channels: int) -> torch.Tensor:
    from ..data.images import fit

    if images.shape[1] != channels:
        images = images.float().mean(dim=1, keepdim=True).round().to(torch.uint8) if channels == 1 \
            else images[:, :1].repeat(1, 3, 1, 1)
    if images.shape[-2:] == (size, size):
        return images
    return torch.stack([fit(im.float(), size).round().clamp(0, 255).to(torch.uint8) for im in images])


def load_registered(dataset: Any, *, size: int, channels: int, limit: int | None = None, chunk: int = 1000) -> torch.Tensor:
    """The first ``limit`` images of ``dataset`` as one ``uint8`` tensor (N, channels, size, size)."""
    count = min(len(dataset), limit) if limit else len(dataset)
    parts = []
    for start in range(0, count, chunk):
        batch = torch.stack([torch.as_tensor(dataset[i]) for i in range(start, min(count, start + chunk))])
        if batch.dtype != torch.uint8 or batch.dim() != 4:
            raise InputError(f"the data set gives {batch.dtype} {tuple(batch.shape[1:])} items; torch-fidelity data sets "
                             "give uint8 (C, H, W) images")
        parts.append(_fit_uint8(batch, size, channels))
    return torch.cat(parts)
