"""ESRGAN / Real-ESRGAN networks in the layout of BasicSR and Real-ESRGAN.

Generator: ``RRDBNet`` (``basicsr/archs/rrdbnet_arch.py``): ``conv_first``, ``body.<i>.rdb<1..3>
.conv<1..5>``, ``conv_body``, two nearest-x2 upsampling convs, ``conv_hr``, ``conv_last``.
Scales 2 and 1 pixel-unshuffle the input first (by 2 and 4), so ``conv_first`` sees 4x or 16x
the channels. Outputs are NOT Tanh-bounded: images live in ``[0, 1]`` (``output_range``).
Discriminator: Real-ESRGAN's ``UNetDiscriminatorSN`` with ``torch.nn.utils.spectral_norm`` on
conv1..conv8 (``weight_orig``/``weight_u``/``weight_v`` keys), returning per-pixel logits.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from .base import Architecture, StateDict, register_architecture
from .pix2pix import strip_module_prefix

_UNSHUFFLE = {4: 1, 2: 2, 1: 4}  # scale -> pixel-unshuffle factor


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convs; residual scaled by 0.2."""

    def __init__(self, num_feat: int, num_grow_ch: int) -> None:
        super().__init__()
        for i in range(1, 5):
            setattr(self, f"conv{i}", nn.Conv2d(num_feat + (i - 1) * num_grow_ch, num_grow_ch, 3, 1, 1))
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, True)

    def forward(self, x):
        feats = [x]
        for i in range(1, 5):
            feats.append(self.lrelu(getattr(self, f"conv{i}")(torch.cat(feats, 1))))
        return self.conv5(torch.cat(feats, 1)) * 0.2 + x


class RRDB(nn.Module):
    """Three residual dense blocks in a scaled residual."""

    def __init__(self, num_feat: int, num_grow_ch: int) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x):
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """ESRGAN generator; ``scale`` in {1, 2, 4}; output in [0, 1] (not clamped)."""

    output_range = (0.0, 1.0)

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, scale: int = 4, num_feat: int = 64,
                 num_block: int = 23, num_grow_ch: int = 32) -> None:
        super().__init__()
        if scale not in _UNSHUFFLE:
            raise ValueError(f"RRDBNet scale must be 1, 2 or 4, not {scale}")
        self.scale = scale
        self.conv_first = nn.Conv2d(num_in_ch * _UNSHUFFLE[scale] ** 2, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(num_feat, num_grow_ch) for _ in range(num_block)])
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, True)

    def forward(self, x):
        factor = _UNSHUFFLE[self.scale]
        feat = self.conv_first(F.pixel_unshuffle(x, factor) if factor > 1 else x)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


def _infer_rrdbnet(sd: StateDict):
    sd = strip_module_prefix(sd)
    if "conv_first.weight" not in sd or "conv_last.weight" not in sd or "body.0.rdb1.conv1.weight" not in sd:
        return None
    first, last = sd["conv_first.weight"], sd["conv_last.weight"]
    out_ch = int(last.shape[0])
    ratio, rest = divmod(int(first.shape[1]), out_ch)
    scale = {1: 4, 4: 2, 16: 1}.get(ratio)
    if rest or scale is None:
        return None
    blocks = {k.split(".")[1] for k in sd if k.startswith("body.")}
    return {
        "num_in_ch": out_ch,
        "num_out_ch": out_ch,
        "scale": scale,
        "num_feat": int(first.shape[0]),
        "num_block": len(blocks),
        "num_grow_ch": int(sd["body.0.rdb1.conv1.weight"].shape[0]),
    }


# --------------------------------------------------------------------------- discriminator


def _lrelu(t: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(t, 0.2)


class UNetDiscriminatorSN(nn.Module):
    """Real-ESRGAN U-Net discriminator with spectral norm on conv1..conv8 (per-pixel logits)."""

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, skip_connection: bool = True) -> None:
        super().__init__()
        self.skip_connection = skip_connection
        f = num_feat
        self.conv0 = nn.Conv2d(num_in_ch, f, 3, 1, 1)
        for i, (cin, cout) in enumerate([(f, 2 * f), (2 * f, 4 * f), (4 * f, 8 * f)], start=1):
            setattr(self, f"conv{i}", spectral_norm(nn.Conv2d(cin, cout, 4, 2, 1, bias=False)))
        for i, (cin, cout) in enumerate([(8 * f, 4 * f), (4 * f, 2 * f), (2 * f, f), (f, f), (f, f)], start=4):
            setattr(self, f"conv{i}", spectral_norm(nn.Conv2d(cin, cout, 3, 1, 1, bias=False)))
        self.conv9 = nn.Conv2d(f, 1, 3, 1, 1)

    def forward(self, x):
        x0 = _lrelu(self.conv0(x))
        x1 = _lrelu(self.conv1(x0))
        x2 = _lrelu(self.conv2(x1))
        out = _lrelu(self.conv3(x2))
        for conv, skip in ((self.conv4, x2), (self.conv5, x1), (self.conv6, x0)):
            out = _lrelu(conv(F.interpolate(out, scale_factor=2, mode="bilinear", align_corners=False)))
            if self.skip_connection:
                out = out + skip
        out = _lrelu(self.conv8(_lrelu(self.conv7(out))))
        return self.conv9(out)


_PARAMETRIZED = (
    (".parametrizations.weight.original", ".weight_orig"),
    (".parametrizations.weight.0._u", ".weight_u"),
    (".parametrizations.weight.0._v", ".weight_v"),
)


def prepare_sn(sd: StateDict) -> dict[str, torch.Tensor]:
    """Strip ``module.``; rename ``torch.nn.utils.parametrizations.spectral_norm`` keys to the old form."""
    out = {}
    for key, value in strip_module_prefix(sd).items():
        for new, old in _PARAMETRIZED:
            if key.endswith(new):
                key = key[: -len(new)] + old
        out[key] = value
    return out


def _infer_unet_sn(sd: StateDict):
    sd = prepare_sn(sd)
    if "conv0.weight" not in sd or "conv1.weight_orig" not in sd or "conv9.weight" not in sd:
        return None
    first = sd["conv0.weight"]
    return {"num_in_ch": int(first.shape[1]), "num_feat": int(first.shape[0]), "skip_connection": True}


def sr_generator(name: str, build, infer, default_kwargs: dict, description: str, *, lr_size: int = 64,
                 scale_key: str = "upscale") -> Architecture:
    """A super-resolution generator: ``num_in_ch`` x ``lr_size``² images in, ``scale_key`` times larger out, in [0, 1]."""
    return Architecture(
        name=name, role="generator", build=build, infer=infer, default_kwargs=default_kwargs,
        input_kind="image",
        input_shape=lambda kw: (kw["num_in_ch"], lr_size, lr_size),
        output_shape=lambda kw: (kw["num_out_ch"], lr_size * kw[scale_key], lr_size * kw[scale_key]),
        output_range=(0.0, 1.0), loss="sr", prepare_state_dict=strip_module_prefix, description=description,
    )


register_architecture(sr_generator(
    "rrdbnet-g", RRDBNet, _infer_rrdbnet,
    {"num_in_ch": 3, "num_out_ch": 3, "scale": 4, "num_feat": 64, "num_block": 23, "num_grow_ch": 32},
    "ESRGAN/Real-ESRGAN RRDBNet super-resolution generator (x1/x2/x4), outputs in [0, 1]",
    lr_size=128, scale_key="scale",
))
register_architecture(
    Architecture(
        name="unet-sn-d",
        role="discriminator",
        build=UNetDiscriminatorSN,
        infer=_infer_unet_sn,
        default_kwargs={"num_in_ch": 3, "num_feat": 64, "skip_connection": True},
        probe_shape=lambda kw: (kw["num_in_ch"], 128, 128),
        loss="sr",
        d_output="logits",
        prepare_state_dict=prepare_sn,
        description="Real-ESRGAN UNetDiscriminatorSN (spectral norm, per-pixel logits)",
    )
)
