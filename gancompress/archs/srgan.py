"""SRGAN generators in the common public PyTorch layout (SRResNet body, sub-pixel upsampling).

Keys: ``block1`` (9x9 conv + PReLU), ``block2`` .. ``block<B+1>`` residual blocks
(``conv1``, ``bn1``, ``prelu``, ``conv2``, ``bn2``; the input is added back),
``block<B+2>`` (3x3 conv + BatchNorm, added to ``block1``'s output), ``block<B+3>``: one
upsampling step per factor 2 (``conv`` to 4x the channels, pixel shuffle by 2, ``prelu``)
and a 9x9 conv to the image. The output is ``(tanh(x) + 1) / 2``: images in ``[0, 1]``.
"""
from __future__ import annotations

import re

import torch
from torch import nn

from .base import StateDict, register_architecture
from .esrgan import sr_generator
from .pix2pix import strip_module_prefix


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(channels)
        self.prelu = nn.PReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        return x + self.bn2(self.conv2(self.prelu(self.bn1(self.conv1(x)))))


class UpsampleBlock(nn.Module):
    """Doubles the resolution: conv to 4x the channels, pixel shuffle by 2, PReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels * 4, 3, padding=1)
        self.pixel_shuffle = nn.PixelShuffle(2)
        self.prelu = nn.PReLU()

    def forward(self, x):
        return self.prelu(self.pixel_shuffle(self.conv(x)))


class SRGANGenerator(nn.Module):
    """``num_block`` residual blocks, ``upscale`` a power of two; output in [0, 1]."""

    output_range = (0.0, 1.0)

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_block: int = 5,
                 upscale: int = 4) -> None:
        super().__init__()
        steps = upscale.bit_length() - 1
        if upscale < 2 or 2**steps != upscale:
            raise ValueError(f"SRGAN upscale must be a power of two (2, 4, 8), not {upscale}")
        self.block1 = nn.Sequential(nn.Conv2d(num_in_ch, num_feat, 9, padding=4), nn.PReLU())
        for i in range(num_block):
            setattr(self, f"block{i + 2}", ResidualBlock(num_feat))
        setattr(self, f"block{num_block + 2}",
                nn.Sequential(nn.Conv2d(num_feat, num_feat, 3, padding=1), nn.BatchNorm2d(num_feat)))
        tail = [UpsampleBlock(num_feat) for _ in range(steps)] + [nn.Conv2d(num_feat, num_out_ch, 9, padding=4)]
        setattr(self, f"block{num_block + 3}", nn.Sequential(*tail))
        self.num_block = num_block

    def forward(self, x):
        head = self.block1(x)
        h = head
        for i in range(self.num_block + 1):
            h = getattr(self, f"block{i + 2}")(h)
        return (torch.tanh(getattr(self, f"block{self.num_block + 3}")(head + h)) + 1) / 2


_RES = re.compile(r"block(\d+)\.conv1\.weight")


def _infer(sd: StateDict):
    sd = strip_module_prefix(sd)
    if "block1.0.weight" not in sd or "block1.1.weight" not in sd or "block2.conv1.weight" not in sd:
        return None
    blocks = sorted(int(m.group(1)) for m in map(_RES.fullmatch, sd) if m)
    if blocks != list(range(2, 2 + len(blocks))):
        return None
    tail = f"block{len(blocks) + 3}."
    steps = len({k.split(".")[1] for k in sd if k.startswith(tail) and ".conv." in k})
    last = sd.get(f"{tail}{steps}.weight")
    if last is None or steps == 0:
        return None
    first = sd["block1.0.weight"]
    return {"num_in_ch": int(first.shape[1]), "num_out_ch": int(last.shape[0]), "num_feat": int(first.shape[0]),
            "num_block": len(blocks), "upscale": 2**steps}


register_architecture(sr_generator(
    "srgan-g", SRGANGenerator, _infer,
    {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_block": 5, "upscale": 4},
    "SRGAN generator, common public layout (residual blocks, PixelShuffle upsampling), outputs in [0, 1]",
))
