"""StyleGAN2 (configs E/F) generator and discriminator, written in plain PyTorch.

Layout: the widely shared PyTorch one (rosinality/stylegan2-pytorch, and every checkpoint
converted from NVIDIA's ``.pkl`` files with its ``convert_weight.py``): a checkpoint is
``{"g_ema": G, "g": G, "d": D, "latent_avg": w_avg, ...}``. Our modules have exactly its
state-dict keys and shapes, so those state dicts load strictly:

* generator: ``style.{1..n_mlp}`` (mapping, after a parameter-free pixel norm at ``style.0``),
  ``input.input`` (the learned 4x4 constant), ``conv1`` and ``to_rgb1`` at 4 px, then per
  resolution two :class:`StyledConv` (``convs.{2i}`` upsamples, ``convs.{2i+1}``) and one
  :class:`ToRGB` (``to_rgbs.{i}``) whose outputs are summed along an upsampled skip path;
  ``noises.noise_{j}`` are the stored noise maps (one per styled conv);
* discriminator: ``convs.0`` (1x1 from RGB), residual blocks that halve the resolution
  (``convs.{i}.conv1``, ``.conv2``, ``.skip``), the minibatch standard deviation channel,
  ``final_conv`` and ``final_linear`` (two dense layers to one logit per image).

Every width is a constructor argument (``channels``: one per resolution from 4 px up), so
checkpoints with their own channel tables load as well as config F's ``channel_multiplier``.

Inputs: the generator maps ``z`` of shape ``[N, style_dim]`` to images in ``[-1, 1]`` (not
clamped). ``noise_mode`` says where the per-layer noise comes from: ``"const"`` (default) uses
the stored ``noises.noise_j`` for every sample (the reference's ``randomize_noise=False``; the
same noise for the teacher and the student, and an exportable, traceable network),
``"random"`` draws fresh noise per sample from torch's global RNG (as StyleGAN2 trains).
``truncation`` (psi, default 1) pulls ``w`` toward the mean ``w`` (:meth:`StyleGAN2Generator.set_truncation`):
the checkpoint's own ``latent_avg`` when it has one (``latent_avg=True``: the buffer is then part of
the state dict, so our own files keep it), else the mapping's mean over 4,096 seeded latents.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .stylegan2_ops import (
    DEFAULT_BLUR, Blur, EqualConv2d, EqualLinear, FusedLeakyReLU, ModulatedConv2d, PixelNorm, Upsample,
    downsample_pad,
)

NOISE_MODES = ("const", "random")
W_AVG_SAMPLES = 4096
W_AVG_SEED = 0
CHECKPOINT_W_AVG = "the checkpoint's latent_avg"
ESTIMATED_W_AVG = f"the mean w of {W_AVG_SAMPLES:,} seeded latents (seed {W_AVG_SEED})"


def config_f_channels(size: int, channel_multiplier: int = 2) -> list[int]:
    """Config E/F widths for 4 px ... ``size`` (512 up to 32 px, then 256, 128, ... times the multiplier)."""
    table = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}
    return [table[2 ** i] * (1 if 2 ** i <= 32 else channel_multiplier) for i in range(2, int(math.log2(size)) + 1)]


def layer_widths(channels: list[int]) -> list[int]:
    """Output width of every styled conv (``conv1``, ``convs.0``, ...) for per-resolution ``channels``."""
    return [channels[0]] + [c for c in channels[1:] for _ in range(2)]


class NoiseInjection(nn.Module):
    """Adds ``weight * noise`` (one learned scalar; noise has one channel, broadcast)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor, noise: Tensor) -> Tensor:
        return x + self.weight * noise


class ConstantInput(nn.Module):
    def __init__(self, channels: int, size: int = 4) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, size, size))

    def forward(self, batch: int) -> Tensor:
        return self.input.repeat(batch, 1, 1, 1)  # a copy: a no-grad view of a parameter confuses hooks


class StyledConv(nn.Module):
    """Modulated conv, noise, bias and activation (keys ``conv.*``, ``noise.weight``, ``activate.bias``)."""

    def __init__(self, cin: int, cout: int, style_dim: int, *, upsample: bool = False, taps=DEFAULT_BLUR) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(cin, cout, 3, style_dim, upsample=upsample, taps=taps)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(cout)

    def forward(self, x: Tensor, w: Tensor, noise: Tensor) -> Tensor:
        return self.activate(self.noise(self.conv(x, w), noise))


class ToRGB(nn.Module):
    """1x1 modulated conv (no demodulation) to RGB plus bias, added to the upsampled skip."""

    def __init__(self, cin: int, style_dim: int, *, rgb: int = 3, upsample: bool = True, taps=DEFAULT_BLUR) -> None:
        super().__init__()
        if upsample:
            self.upsample = Upsample(taps)
        self.conv = ModulatedConv2d(cin, rgb, 1, style_dim, demodulate=False)
        self.conv.prune_by_default = False  # ToRGB stays dense unless --include names it
        self.bias = nn.Parameter(torch.zeros(1, rgb, 1, 1))

    def forward(self, x: Tensor, w: Tensor, skip: Tensor | None = None) -> Tensor:
        out = self.conv(x, w) + self.bias
        return out if skip is None else out + self.upsample(skip)


class LayerLatents(nn.Module):
    """``w [N, D]`` -> the per-layer latents ``[N, L, D]`` the synthesis network reads (the same ``w``
    at every layer; no parameters). Its output is what the path-length regulariser differentiates."""

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count

    def forward(self, w: Tensor) -> Tensor:
        return w.unsqueeze(1).expand(-1, self.count, -1)


class StyleGAN2Generator(nn.Module):
    """Mapping network + synthesis network; ``forward(z) -> images`` (see the module docstring)."""

    def __init__(self, size: int = 256, style_dim: int = 512, n_mlp: int = 8, channels: list[int] | None = None,
                 rgb: int = 3, lr_mlp: float = 0.01, conv_widths: list[int] | None = None,
                 latent_avg: bool = False) -> None:
        super().__init__()
        log_size = int(math.log2(size))
        if size < 4 or 2 ** log_size != size:
            raise ValueError(f"StyleGAN2 resolution must be a power of two >= 4, not {size}")
        channels = list(channels) if channels is not None else config_f_channels(size)
        if len(channels) != log_size - 1:
            raise ValueError(f"need {log_size - 1} channel widths (4 px to {size} px), got {len(channels)}")
        self.size, self.style_dim, self.n_layers = size, style_dim, 2 * (log_size - 2) + 1
        widths = list(conv_widths) if conv_widths is not None else layer_widths(channels)
        if len(widths) != self.n_layers:
            raise ValueError(f"need {self.n_layers} styled-conv widths, got {len(widths)}")
        self.style = nn.Sequential(PixelNorm(), *[
            EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activate=True) for _ in range(n_mlp)])
        self.input = ConstantInput(channels[0])
        self.conv1 = StyledConv(channels[0], widths[0], style_dim)
        self.to_rgb1 = ToRGB(widths[0], style_dim, rgb=rgb, upsample=False)
        self.convs, self.to_rgbs = nn.ModuleList(), nn.ModuleList()
        for j in range(1, self.n_layers, 2):
            self.convs.append(StyledConv(widths[j - 1], widths[j], style_dim, upsample=True))
            self.convs.append(StyledConv(widths[j], widths[j + 1], style_dim))
            self.to_rgbs.append(ToRGB(widths[j + 1], style_dim, rgb=rgb))
        self.layer_w = LayerLatents(self.n_layers + 1)  # one w per styled conv and per ToRGB
        self.noises = nn.Module()
        for j in range(self.n_layers):
            side = 2 ** ((j + 5) // 2)
            self.noises.register_buffer(f"noise_{j}", torch.randn(1, 1, side, side))
        # the mean w that truncation pulls toward; a state-dict entry only when the checkpoint stores one
        self.register_buffer("latent_avg", torch.zeros(style_dim), persistent=latent_avg)
        self.noise_mode, self.truncation = "const", 1.0
        self.w_avg_source: str | None = CHECKPOINT_W_AVG if latent_avg else None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.style_dim,)

    def conv_names(self) -> tuple[list[str], dict[int, str]]:
        """The styled convs' module names in forward order, and the ToRGB reading the j-th one."""
        names = ["conv1"] + [f"convs.{i}" for i in range(len(self.convs))]
        return names, {0: "to_rgb1", **{2 * i + 2: f"to_rgbs.{i}" for i in range(len(self.to_rgbs))}}

    def channel_readers(self) -> dict[str, tuple[int, list[tuple[str, int]]]]:
        """For each styled conv weight: its output-channel axis and the weights (key, input axis)
        that read those channels (the next styled conv and the ToRGB at that resolution)."""
        names, rgbs = self.conv_names()
        links = {}
        for j, name in enumerate(names):
            readers = [(f"{names[j + 1]}.conv.weight", 2)] if j + 1 < len(names) else []
            readers += [(f"{rgbs[j]}.conv.weight", 2)] if j in rgbs else []
            links[f"{name}.conv.weight"] = (1, readers)
        return links

    def shrunk_copy(self, kwargs: dict) -> tuple["StyleGAN2Generator", dict, list[int], list[int]]:
        """A thinner copy without the channels no weight reads (see :mod:`.stylegan2_shrink`)."""
        from .stylegan2_shrink import shrink

        return shrink(self, kwargs)

    @property
    def truncation_w_avg(self) -> str:
        """Where truncation's mean ``w`` comes (or would come) from, in words."""
        return self.w_avg_source or ESTIMATED_W_AVG

    def use_latent_avg(self, value: Tensor) -> bool:
        """Take a checkpoint's stored mean ``w`` (``[style_dim]`` or ``[1, style_dim]``, finite) as the
        truncation centre and keep it in the state dict; False (nothing changes) when it does not fit."""
        if not torch.is_tensor(value) or not value.is_floating_point() or value.numel() != self.style_dim:
            return False
        if value.dim() > 2 or not bool(torch.isfinite(value).all()):
            return False
        with torch.no_grad():
            self.latent_avg.copy_(value.detach().reshape(-1).to(self.latent_avg))
        self._non_persistent_buffers_set.discard("latent_avg")
        self.w_avg_source = CHECKPOINT_W_AVG
        return True

    def set_truncation(self, psi: float) -> str | None:
        """Sample with truncation ``psi``; returns where the mean ``w`` comes from: the checkpoint's
        ``latent_avg``, else the mapping's mean over 4,096 fixed latents (seed 0), computed once."""
        if not 0.0 <= psi <= 1.0:
            raise ValueError(f"truncation psi must be in [0, 1], not {psi}")
        if psi < 1.0 and self.w_avg_source is None:
            self.latent_avg.copy_(self.mean_w())
            self.w_avg_source = ESTIMATED_W_AVG
        if psi < 1.0 and not bool(torch.isfinite(self.latent_avg).all()):
            raise ValueError(f"truncation needs a finite w_avg, but {self.w_avg_source} holds NaN or Inf; the file "
                             "is damaged: re-create it, or sample without truncation")
        self.truncation = float(psi)
        return self.w_avg_source

    @torch.no_grad()
    def mean_w(self, n: int = W_AVG_SAMPLES, seed: int = W_AVG_SEED) -> Tensor:
        z = torch.randn(n, self.style_dim, generator=torch.Generator().manual_seed(seed)).to(self.latent_avg.device)
        return self.style(z).mean(0)

    def noise_maps(self, batch: int, like: Tensor) -> list[Tensor]:
        stored = [getattr(self.noises, f"noise_{j}") for j in range(self.n_layers)]
        if self.noise_mode == "const":
            return [n.to(like.dtype) for n in stored]
        if self.noise_mode == "random":
            return [torch.randn(batch, 1, *n.shape[-2:], device=like.device, dtype=like.dtype) for n in stored]
        raise ValueError(f"noise_mode must be one of {NOISE_MODES}, not {self.noise_mode!r}")

    def forward(self, z: Tensor) -> Tensor:
        w = self.style(z)
        if self.truncation < 1.0:
            w = self.latent_avg + self.truncation * (w - self.latent_avg)
        return self.synthesis(w)

    def synthesis(self, w: Tensor) -> Tensor:
        """Images from intermediate latents: ``w [N, style_dim]`` (the same at every layer) or per-layer
        ``[N, n_layers + 1, style_dim]``, indexed as the reference does: conv1 0, to_rgb1 1, then per
        resolution i the two convs ``2i + 1``, ``2i + 2`` and its ToRGB ``2i + 3``."""
        ws = self.layer_w(w) if w.dim() == 2 else w
        noise = self.noise_maps(ws.shape[0], ws)
        x = self.conv1(self.input(ws.shape[0]), ws[:, 0], noise[0])
        skip = self.to_rgb1(x, ws[:, 1])
        for i, rgb in enumerate(self.to_rgbs):
            x = self.convs[2 * i](x, ws[:, 2 * i + 1], noise[2 * i + 1])
            x = self.convs[2 * i + 1](x, ws[:, 2 * i + 2], noise[2 * i + 2])
            skip = rgb(x, ws[:, 2 * i + 3], skip)
        return skip


class ConvLayer(nn.Sequential):
    """[Blur], EqualConv2d, [bias + activation]: the discriminator's conv (keys by position)."""

    def __init__(self, cin: int, cout: int, kernel_size: int, *, downsample: bool = False, bias: bool = True,
                 activate: bool = True, taps=DEFAULT_BLUR) -> None:
        layers: list[nn.Module] = []
        if downsample:
            layers.append(Blur(downsample_pad(len(taps), kernel_size), taps))
        stride, padding = (2, 0) if downsample else (1, kernel_size // 2)
        layers.append(EqualConv2d(cin, cout, kernel_size, stride=stride, padding=padding, bias=bias and not activate))
        if activate:
            layers.append(FusedLeakyReLU(cout, bias=bias))
        super().__init__(*layers)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = ConvLayer(cin, cin, 3)
        self.conv2 = ConvLayer(cin, cout, 3, downsample=True)
        self.skip = ConvLayer(cin, cout, 1, downsample=True, activate=False, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2.0)


def minibatch_stddev(x: Tensor, group_size: int = 4) -> Tensor:
    """Append one channel: the std over groups of samples, averaged over channels and pixels.

    Groups take every ``batch/group``-th sample, as StyleGAN2 does; the group size is the
    largest value <= ``group_size`` that divides the batch (the reference needs it to divide).
    """
    n, c, h, w = x.shape
    group = min(n, group_size)
    while n % group:
        group -= 1
    y = x.view(group, -1, c, h, w)
    y = torch.sqrt(y.var(0, unbiased=False) + 1e-8).mean(dim=(1, 2, 3))
    return torch.cat([x, y.view(-1, 1, 1, 1).repeat(group, 1, h, w)], 1)


class StyleGAN2Discriminator(nn.Module):
    """Residual discriminator with minibatch stddev; ``forward(images) -> logits [N, 1]``.

    ``channels`` are the widths at ``size``, ``size/2``, ..., 4 px.
    """

    def __init__(self, size: int = 256, channels: list[int] | None = None, rgb: int = 3) -> None:
        super().__init__()
        log_size = int(math.log2(size))
        if size < 8 or 2 ** log_size != size:
            raise ValueError(f"StyleGAN2 discriminator resolution must be a power of two >= 8, not {size}")
        channels = list(channels) if channels is not None else config_f_channels(size)[::-1]
        if len(channels) != log_size - 1:
            raise ValueError(f"need {log_size - 1} channel widths ({size} px down to 4 px), got {len(channels)}")
        blocks: list[nn.Module] = [ConvLayer(rgb, channels[0], 1)]
        blocks += [ResBlock(cin, cout) for cin, cout in zip(channels[:-1], channels[1:])]
        self.convs = nn.Sequential(*blocks)
        c4 = channels[-1]
        self.final_conv = ConvLayer(c4 + 1, c4, 3)
        self.final_linear = nn.Sequential(EqualLinear(c4 * 16, c4, activate=True), EqualLinear(c4, 1))

    def forward(self, x: Tensor) -> Tensor:
        out = self.final_conv(minibatch_stddev(self.convs(x)))
        return self.final_linear(out.flatten(1))
