"""scikit-learn's bundled handwritten digits as a small image data set.

``sklearn.datasets.load_digits`` ships 1,797 8x8 digits with integer values 0..16. They are
scaled to ``[-1, 1]`` and upscaled with bilinear interpolation (``align_corners=False``,
antialias off) to ``size`` x ``size``. Everything is deterministic: same order, same values.
"""
from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

N_DIGITS = 1797


@functools.lru_cache(maxsize=1)
def _raw() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    data = load_digits()
    images = np.asarray(data.images, dtype=np.float32)  # (N, 8, 8), 0..16
    labels = np.asarray(data.target, dtype=np.int64)
    return images, labels


def digits_images(size: int = 16, channels: int = 1) -> torch.Tensor:
    """All 1,797 digits as a float32 ``(N, channels, size, size)`` tensor in ``[-1, 1]``."""
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    images, _ = _raw()
    x = torch.from_numpy(images.copy()).unsqueeze(1) / 8.0 - 1.0  # 0..16 -> -1..1
    if size != 8:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
    x = x.clamp_(-1.0, 1.0).contiguous()
    if channels == 3:
        x = x.repeat(1, 3, 1, 1)
    return x


def digits_labels() -> torch.Tensor:
    """The class (0..9) of each digit, int64 ``(N,)``, in the order of :func:`digits_images`."""
    _, labels = _raw()
    return torch.from_numpy(labels.copy())


def digits_split(seed: int = 0, test_fraction: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed train/test index split (a seeded permutation); returns ``(train_idx, test_idx)``."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(N_DIGITS, generator=g)
    n_test = int(round(N_DIGITS * test_fraction))
    return perm[n_test:].sort().values, perm[:n_test].sort().values
