"""pix2pix / CycleGAN networks in the layout of junyanz/pytorch-CycleGAN-and-pix2pix.

Generators: the ResNet generator (``resnet_6blocks``/``resnet_9blocks``; ``model.<i>`` keys)
and the U-Net generator (``unet_128``/``unet_256``; nested ``model.model.1.model.3...`` keys).
Discriminator: the PatchGAN ``NLayerDiscriminator`` (``model.<i>`` keys, logits per patch).
Norm is ``"batch"`` (affine, running stats, convs without bias) or ``"instance"`` (no
parameters, convs with bias). Widths, depth, norm and ResNet dropout are read off the keys.

Checkpoint quirks undone by :func:`prepare`: a ``module.`` prefix (DataParallel), stale
InstanceNorm running stats (PyTorch < 0.4 saved them), and BatchNorm without
``num_batches_tracked`` (PyTorch < 0.4.1).
"""
from __future__ import annotations

import re

import torch
from torch import nn

from .base import Architecture, StateDict, register_architecture


def strip_module_prefix(sd: StateDict) -> dict[str, torch.Tensor]:
    """Drop a ``module.`` prefix that every key carries (DataParallel checkpoints)."""
    if sd and all(k.startswith("module.") for k in sd):
        return {k[len("module."):]: v for k, v in sd.items()}
    return dict(sd)


def prepare(sd: StateDict) -> dict[str, torch.Tensor]:
    """Normalised copy: no ``module.`` prefix, no stale instance-norm stats, BN counters."""
    out = strip_module_prefix(sd)
    for key in [k for k in out if k.endswith(".running_mean")]:
        base = key[: -len("running_mean")]
        if base + "weight" not in out:  # affine-free norm with stats: old InstanceNorm2d
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                out.pop(base + name, None)
        elif base + "num_batches_tracked" not in out:
            out[base + "num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    return out


def norm_layer(norm: str, channels: int) -> nn.Module:
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    raise ValueError(f"norm must be 'batch' or 'instance', not {norm!r}")


def _norm_of(sd: StateDict) -> str:
    return "batch" if any(k.endswith(".running_mean") for k in sd) else "instance"


# --------------------------------------------------------------------------- ResNet


class ResnetBlock(nn.Module):
    """Reflection-padded conv/norm/ReLU(/dropout)/conv/norm with an identity shortcut."""

    def __init__(self, dim: int, norm: str, use_dropout: bool) -> None:
        super().__init__()
        bias = norm == "instance"
        layers = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm_layer(norm, dim), nn.ReLU(True)]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm_layer(norm, dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """7x7 conv, two stride-2 downsamplings, ``n_blocks`` residual blocks, two upsamplings."""

    output_range = (-1.0, 1.0)

    def __init__(self, input_nc: int = 3, output_nc: int = 3, ngf: int = 64, n_blocks: int = 9,
                 norm: str = "instance", use_dropout: bool = False) -> None:
        super().__init__()
        bias = norm == "instance"
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7, bias=bias), norm_layer(norm, ngf), nn.ReLU(True)]
        for mult in (1, 2):
            layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, 2, 1, bias=bias),
                       norm_layer(norm, ngf * mult * 2), nn.ReLU(True)]
        layers += [ResnetBlock(ngf * 4, norm, use_dropout) for _ in range(n_blocks)]
        for mult in (4, 2):
            layers += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, 2, 1, output_padding=1, bias=bias),
                       norm_layer(norm, ngf * mult // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


def _ndim(sd: StateDict, key: str) -> int:
    return sd[key].ndim if key in sd else 0


def _infer_resnet(sd: StateDict):
    sd = prepare(sd)
    blocks = {int(m.group(1)) for k in sd if (m := re.match(r"model\.(\d+)\.conv_block\.", k))}
    if not blocks or "model.1.weight" not in sd:
        return None
    n_blocks = len(blocks)
    first, last = sd["model.1.weight"], sd[f"model.{17 + n_blocks}.weight"]
    return {
        "input_nc": int(first.shape[1]),
        "output_nc": int(last.shape[0]),
        "ngf": int(first.shape[0]),
        "n_blocks": n_blocks,
        "norm": _norm_of(sd),
        "use_dropout": _ndim(sd, f"model.{min(blocks)}.conv_block.6.weight") == 4,  # conv, not norm
    }


# --------------------------------------------------------------------------- U-Net


class UnetSkipConnectionBlock(nn.Module):
    """One U-Net level: down, the inner levels, up; concatenates its input unless outermost."""

    def __init__(self, outer_nc: int, inner_nc: int, input_nc: int | None = None,
                 submodule: nn.Module | None = None, outermost: bool = False,
                 norm: str = "batch", use_dropout: bool = False) -> None:
        super().__init__()
        self.outermost = outermost
        bias = norm == "instance"
        down = nn.Conv2d(input_nc or outer_nc, inner_nc, 4, 2, 1, bias=bias)
        if outermost:
            layers = [down, submodule, nn.ReLU(True), nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, 2, 1), nn.Tanh()]
        elif submodule is None:  # innermost
            layers = [nn.LeakyReLU(0.2, True), down, nn.ReLU(True),
                      nn.ConvTranspose2d(inner_nc, outer_nc, 4, 2, 1, bias=bias), norm_layer(norm, outer_nc)]
        else:
            layers = [nn.LeakyReLU(0.2, True), down, norm_layer(norm, inner_nc), submodule, nn.ReLU(True),
                      nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, 2, 1, bias=bias), norm_layer(norm, outer_nc)]
            if use_dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """U-Net with ``num_downs`` stride-2 levels (7: unet_128, 8: unet_256)."""

    output_range = (-1.0, 1.0)

    def __init__(self, input_nc: int = 3, output_nc: int = 3, num_downs: int = 8, ngf: int = 64,
                 norm: str = "batch", use_dropout: bool = False) -> None:
        super().__init__()
        if num_downs < 5:
            raise ValueError("a U-Net generator needs num_downs >= 5")
        block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, norm=norm)
        for _ in range(num_downs - 5):
            block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=block, norm=norm, use_dropout=use_dropout)
        for mult in (4, 2, 1):
            block = UnetSkipConnectionBlock(ngf * mult, ngf * mult * 2, submodule=block, norm=norm)
        self.model = UnetSkipConnectionBlock(output_nc, ngf, input_nc, block, outermost=True, norm=norm)

    def forward(self, x):
        return self.model(x)


def _infer_unet(sd: StateDict):
    sd = prepare(sd)
    if "model.model.0.weight" not in sd or "model.model.3.weight" not in sd:
        return None
    prefix, depth = "model.model.1.model.", 1
    while any(k.startswith(prefix) for k in sd):
        prefix, depth = prefix + "3.model.", depth + 1
    first, last = sd["model.model.0.weight"], sd["model.model.3.weight"]
    return {
        "input_nc": int(first.shape[1]),
        "output_nc": int(last.shape[1]),
        "num_downs": depth,
        "ngf": int(first.shape[0]),
        "norm": _norm_of(sd),
        "use_dropout": False,  # dropout holds no weights; it cannot be read off the keys
    }


# --------------------------------------------------------------------------- PatchGAN


class NLayerDiscriminator(nn.Module):
    """PatchGAN: ``n_layers`` stride-2 4x4 convs, one stride-1 conv, a 1-channel 4x4 conv (logits)."""

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "batch") -> None:
        super().__init__()
        bias = norm == "instance"
        layers = [nn.Conv2d(input_nc, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride, 1, bias=bias),
                       norm_layer(norm, ndf * mult), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


def _infer_patchgan(sd: StateDict):
    sd = prepare(sd)
    convs = [k for k in sd if re.fullmatch(r"model\.\d+\.weight", k) and sd[k].ndim == 4]
    if "model.0.weight" not in convs or len(convs) < 3:
        return None
    first = sd["model.0.weight"]
    if tuple(first.shape[2:]) != (4, 4):
        return None
    return {"input_nc": int(first.shape[1]), "ndf": int(first.shape[0]),
            "n_layers": len(convs) - 2, "norm": _norm_of(sd)}


def patchgan_conditional(d_kwargs: dict, g_input_nc: int, g_output_nc: int) -> bool:
    """Whether a PatchGAN takes ``concat(input, output)``: its input_nc is the sum of both."""
    return d_kwargs["input_nc"] == g_input_nc + g_output_nc


def _image_shape(kw: dict) -> tuple[int, int, int]:
    return (kw["input_nc"], 256, 256)


register_architecture(
    Architecture(
        name="pix2pix-resnet-g",
        role="generator",
        build=ResnetGenerator,
        infer=_infer_resnet,
        default_kwargs={"input_nc": 3, "output_nc": 3, "ngf": 64, "n_blocks": 9, "norm": "instance", "use_dropout": False},
        input_kind="image",
        input_shape=_image_shape,
        output_shape=lambda kw: (kw["output_nc"], 256, 256),
        loss="pix2pix",
        prepare_state_dict=prepare,
        description="pix2pix/CycleGAN ResNet generator (resnet_6blocks, resnet_9blocks), Tanh output",
    )
)
register_architecture(
    Architecture(
        name="pix2pix-unet-g",
        role="generator",
        build=UnetGenerator,
        infer=_infer_unet,
        default_kwargs={"input_nc": 3, "output_nc": 3, "num_downs": 8, "ngf": 64, "norm": "batch", "use_dropout": False},
        input_kind="image",
        input_shape=_image_shape,
        output_shape=lambda kw: (kw["output_nc"], 256, 256),
        loss="pix2pix",
        prepare_state_dict=prepare,
        description="pix2pix U-Net generator (unet_128: num_downs 7, unet_256: 8), Tanh output",
    )
)
register_architecture(
    Architecture(
        name="patchgan-d",
        role="discriminator",
        build=NLayerDiscriminator,
        infer=_infer_patchgan,
        default_kwargs={"input_nc": 6, "ndf": 64, "n_layers": 3, "norm": "batch"},
        probe_shape=lambda kw: (kw["input_nc"], 256, 256),
        loss="pix2pix",
        d_output="logits",
        conditional=False,
        prepare_state_dict=prepare,
        description=(
            "PatchGAN NLayerDiscriminator (logits per patch). input_nc = 6 for RGB usually means a "
            "conditional pix2pix D fed concat(input, output); decide with patchgan_conditional()"
        ),
    )
)
