"""A small CNN classifier for 16x16 digits, used as the feature extractor of digits-FID.

Input: ``(N, 1, 16, 16)`` images in ``[-1, 1]`` (the range of :func:`gancompress.data_digits.digits_images`
and of the bundled generator). Other sizes are resized to 16x16 (bilinear, antialiased when
shrinking) and 3-channel images are averaged to one channel. :meth:`DigitsClassifier.features`
returns the ``feature_dim``-dimensional penultimate activations (after ReLU); ``forward``
returns the 10 class logits. The bundled weights are trained by
``examples/train_digits_extractor.py``.
"""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

INPUT_SIZE = 16
NUM_CLASSES = 10
ASSET_NAME = "digits_classifier.safetensors"


class DigitsClassifier(nn.Module):
    def __init__(self, width: int = 32, feature_dim: int = 128, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.width = width
        self.feature_dim = feature_dim
        self.num_classes = num_classes
        self.body = nn.Sequential(
            nn.Conv2d(1, width, 3, 1, 1),
            nn.ReLU(True),
            nn.Conv2d(width, width, 3, 1, 1),
            nn.ReLU(True),
            nn.MaxPool2d(2),  # 8x8
            nn.Conv2d(width, width * 2, 3, 1, 1),
            nn.ReLU(True),
            nn.MaxPool2d(2),  # 4x4
            nn.Flatten(),
            nn.Linear(width * 2 * 16, feature_dim),
            nn.ReLU(True),
        )
        self.head = nn.Linear(feature_dim, num_classes)

    @staticmethod
    def prepare(x: torch.Tensor) -> torch.Tensor:
        """Bring ``x`` to ``(N, 1, 16, 16)`` float: average channels, resize."""
        if x.dim() == 3:
            x = x.unsqueeze(1)
        if x.dim() != 4:
            raise ValueError(f"expected images (N, C, H, W), got shape {tuple(x.shape)}")
        x = x.float()
        if x.shape[1] != 1:
            x = x.mean(dim=1, keepdim=True)
        if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            shrink = x.shape[-1] > INPUT_SIZE or x.shape[-2] > INPUT_SIZE
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear",
                              align_corners=False, antialias=shrink)
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations, ``(N, feature_dim)``."""
        return self.body(self.prepare(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def default_weights_path() -> Path:
    return Path(str(resources.files("gancompress") / "assets" / ASSET_NAME))


def load_digits_classifier(path: str | Path | None = None, device: str | torch.device = "cpu") -> DigitsClassifier:
    """The bundled (or given) classifier, in eval mode, with gradients off."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path) if path is not None else default_weights_path()
    if not path.is_file():
        raise FileNotFoundError(
            f"digits classifier weights not found at {path}; run examples/train_digits_extractor.py"
        )
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    kwargs = json.loads(meta.get("kwargs", "{}"))
    model = DigitsClassifier(**kwargs)
    model.load_state_dict(load_file(str(path)), strict=True)
    model.eval().requires_grad_(False)
    return model.to(device)
