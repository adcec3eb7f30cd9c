"""Real-ESRGAN's compact super-resolution generator (``SRVGGNetCompact``).

The released ``realesr-animevideov3`` (16 body convs) and ``realesr-general-x4v3`` (32)
files wrap the state dict as ``{"params": ...}``. Keys are ``body.<i>``: a 3x3 conv from the
image to ``num_feat`` channels, ``num_conv`` 3x3 convs, each followed by a per-channel PReLU
(``body.<odd>.weight``), and a last conv to ``channels * upscale**2`` that a pixel shuffle
turns into the upscaled image. The nearest-upsampled input is added to that, so the network
learns a residual and its images live in ``[0, 1]`` like its input.

Without PReLU weights (``act_type`` relu or leakyrelu) the keys do not say which activation
was used, so such files are not auto-detected: build them with
``--arch gancompress.archs.srvgg:SRVGGNetCompact --arch-kwargs '{"act_type": "leakyrelu", ...}'``.
"""
from __future__ import annotations

import math

import torch.nn.functional as F
from torch import nn

from .base import StateDict, register_architecture
from .esrgan import sr_generator
from .pix2pix import strip_module_prefix


def _activation(act_type: str, channels: int) -> nn.Module:
    if act_type == "prelu":
        return nn.PReLU(num_parameters=channels)
    if act_type == "leakyrelu":
        return nn.LeakyReLU(0.1)
    if act_type == "relu":
        return nn.ReLU()
    raise ValueError(f"act_type must be prelu, leakyrelu or relu, not {act_type!r}")


class SRVGGNetCompact(nn.Module):
    """Plain conv stack in low resolution, pixel-shuffle upsampling, plus the nearest-upsampled input."""

    output_range = (0.0, 1.0)

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_conv: int = 16,
                 upscale: int = 4, act_type: str = "prelu") -> None:
        super().__init__()
        if num_out_ch != num_in_ch:
            raise ValueError("SRVGGNetCompact adds the upsampled input to its output: num_out_ch must equal num_in_ch")
        self.upscale = upscale
        layers = [nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), _activation(act_type, num_feat)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), _activation(act_type, num_feat)]
        layers.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.body = nn.Sequential(*layers)
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, x):
        residual = self.upsampler(self.body(x))
        return residual + F.interpolate(x, scale_factor=self.upscale, mode="nearest")


def _infer(sd: StateDict):
    sd = strip_module_prefix(sd)
    if not sd or any(not k.startswith("body.") for k in sd) or "body.0.weight" not in sd:
        return None
    convs = sorted(int(k.split(".")[1]) for k in sd if k.endswith(".weight") and sd[k].ndim == 4)
    if "body.1.weight" not in sd or sd["body.1.weight"].ndim != 1 or len(convs) < 2:
        return None  # no PReLU slopes: relu and leakyrelu cannot be told apart
    first, last = sd["body.0.weight"], sd[f"body.{convs[-1]}.weight"]
    channels = int(first.shape[1])
    upscale = math.isqrt(int(last.shape[0]) // channels)
    if upscale < 1 or channels * upscale * upscale != int(last.shape[0]):
        return None
    return {"num_in_ch": channels, "num_out_ch": channels, "num_feat": int(first.shape[0]),
            "num_conv": len(convs) - 2, "upscale": upscale, "act_type": "prelu"}


register_architecture(sr_generator(
    "srvgg-g", SRVGGNetCompact, _infer,
    {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_conv": 16, "upscale": 4, "act_type": "prelu"},
    "Real-ESRGAN SRVGGNetCompact (realesr-animevideov3, realesr-general-x4v3), outputs in [0, 1]",
))
