"""StyleGAN2's building blocks in plain torch ops (no compiled extensions; CPU and CUDA).

Parameter and buffer names follow the widely shared PyTorch layout of StyleGAN2 (the one
``convert_weight.py`` writes from NVIDIA's files and most ``.pt`` checkpoints use), so a
module built here loads those state dicts strictly:

* equalized learning rate: weights are stored at unit scale and multiplied by
  ``lr_mul / sqrt(fan_in)`` at run time (biases by ``lr_mul``);
* the "fused" bias + leaky ReLU is ``leaky_relu(x + b, 0.2) * sqrt(2)``;
* FIR up/down-sampling (:func:`upfirdn2d`): zero-insertion, padding, a depthwise 2-D FIR
  filter and decimation, written as ``F.pad`` + ``F.conv2d(groups=C)``. The filter (``kernel``
  buffer) is stored normalised to sum 1, times ``factor**2`` when it follows an upsampling.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SQRT2 = math.sqrt(2.0)
DEFAULT_BLUR = (1, 3, 3, 1)


def fir_kernel(taps: tuple[int, ...] | list[int], gain: float = 1.0) -> Tensor:
    """The separable 2-D filter ``outer(taps, taps)``, normalised to sum ``gain``."""
    k = torch.tensor(taps, dtype=torch.float32)
    k = k[:, None] * k[None, :]
    return k / k.sum() * gain


def upfirdn2d(x: Tensor, kernel: Tensor, *, up: int = 1, down: int = 1, pad: tuple[int, int] = (0, 0)) -> Tensor:
    """Upsample by zero insertion, pad ``pad=(before, after)`` on both axes, FIR-filter, decimate.

    The filter is applied as a true convolution (flipped), per channel.
    """
    n, c, h, w = x.shape
    if up > 1:
        x = F.pad(x.reshape(n, c, h, 1, w, 1), [0, up - 1, 0, 0, 0, up - 1]).reshape(n, c, h * up, w * up)
    before, after = pad
    x = F.pad(x, [max(before, 0), max(after, 0)] * 2)
    if before < 0 or after < 0:
        hh, ww = x.shape[-2:]
        x = x[:, :, max(-before, 0): hh - max(-after, 0), max(-before, 0): ww - max(-after, 0)]
    hh, ww = x.shape[-2:]
    # every channel as its own image: the filter keeps a static shape (ONNX export needs one)
    x = F.conv2d(x.reshape(-1, 1, hh, ww), torch.flip(kernel, [0, 1]).to(x.dtype)[None, None])
    x = x.reshape(n, c, *x.shape[-2:])
    return x[:, :, ::down, ::down] if down > 1 else x


def bias_lrelu(x: Tensor, bias: Tensor | None) -> Tensor:
    """StyleGAN2's activation: leaky ReLU (slope 0.2) of ``x + bias`` scaled by sqrt(2)."""
    if bias is not None:
        x = x + bias.view(1, -1, *([1] * (x.dim() - 2)))
    return F.leaky_relu(x, 0.2) * SQRT2


class FusedLeakyReLU(nn.Module):
    """Per-channel bias then the scaled leaky ReLU (key: ``bias``)."""

    def __init__(self, channels: int, bias: bool = True) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return bias_lrelu(x, self.bias)


class PixelNorm(nn.Module):
    """Normalise each latent to unit mean square (no parameters)."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class EqualLinear(nn.Module):
    """Linear layer with equalized learning rate (keys ``weight [out, in]``, ``bias [out]``).

    Prunable as a linear layer, but only when named by ``--include`` (the mapping network and
    the style affines stay dense by default).
    """

    weight_kind = "linear"
    prune_by_default = False

    def __init__(self, in_dim: int, out_dim: int, *, bias_init: float = 0.0, lr_mul: float = 1.0,
                 activate: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activate = activate

    def forward(self, x: Tensor) -> Tensor:
        if self.activate:
            return bias_lrelu(F.linear(x, self.weight * self.scale), self.bias * self.lr_mul)
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class EqualConv2d(nn.Module):
    """Conv2d with equalized learning rate (keys ``weight``, optional ``bias``)."""

    weight_kind = "conv"

    def __init__(self, cin: int, cout: int, kernel_size: int, *, stride: int = 1, padding: int = 0,
                 bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.scale = 1.0 / math.sqrt(cin * kernel_size ** 2)
        self.stride, self.padding = stride, padding

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, stride=self.stride, padding=self.padding)


class Blur(nn.Module):
    """FIR filter with padding (key: ``kernel``); ``gain`` is ``factor**2`` after an upsampling."""

    def __init__(self, pad: tuple[int, int], taps=DEFAULT_BLUR, gain: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("kernel", fir_kernel(taps, gain))
        self.pad = pad

    def forward(self, x: Tensor) -> Tensor:
        return upfirdn2d(x, self.kernel, pad=self.pad)


class Upsample(nn.Module):
    """x2 FIR upsampling of the RGB skip path (key: ``kernel``)."""

    def __init__(self, taps=DEFAULT_BLUR, factor: int = 2) -> None:
        super().__init__()
        self.register_buffer("kernel", fir_kernel(taps, factor ** 2))
        p = len(taps) - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)
        self.factor = factor

    def forward(self, x: Tensor) -> Tensor:
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


def downsample_pad(taps_len: int, kernel_size: int, factor: int = 2) -> tuple[int, int]:
    """Blur padding before a stride-2 conv of ``kernel_size``."""
    p = (taps_len - factor) + (kernel_size - 1)
    return (p + 1) // 2, p // 2


class ModulatedConv2d(nn.Module):
    """Style-modulated convolution with optional weight demodulation and x2 upsampling.

    Keys: ``weight [1, out, in, k, k]``, ``modulation.{weight,bias}`` (the affine map from
    ``w`` to the ``in`` per-input-channel scales, bias initialised to 1) and, when upsampling,
    ``blur.kernel``. Computed as ``conv(x * s, W) * d`` with one shared weight for the batch
    (``d`` the per-sample demodulation ``rsqrt(sum (s W)^2 + 1e-8)``), which equals the grouped
    per-sample-weight form and keeps the weight an ordinary conv weight.
    """

    weight_kind = "modulated_conv"  # a conv weight with a leading singleton axis (see prune.layers)

    def __init__(self, cin: int, cout: int, kernel_size: int, style_dim: int, *, demodulate: bool = True,
                 upsample: bool = False, taps=DEFAULT_BLUR) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, cout, cin, kernel_size, kernel_size))
        self.modulation = EqualLinear(style_dim, cin, bias_init=1.0)
        self.scale = 1.0 / math.sqrt(cin * kernel_size ** 2)
        self.padding = kernel_size // 2
        self.demodulate, self.upsample = demodulate, upsample
        if upsample:
            p = (len(taps) - 2) - (kernel_size - 1)
            self.blur = Blur(((p + 1) // 2 + 1, p // 2 + 1), taps, gain=4.0)

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        style = self.modulation(w)
        weight = self.weight[0] * self.scale
        x = x * style[:, :, None, None].to(x.dtype)
        if self.upsample:
            out = self.blur(F.conv_transpose2d(x, weight.transpose(0, 1), stride=2))
        else:
            out = F.conv2d(x, weight, padding=self.padding)
        if self.demodulate:
            energy = style.pow(2) @ weight.pow(2).sum(dim=(2, 3)).t()  # [N, out]
            out = out * torch.rsqrt(energy + 1e-8)[:, :, None, None].to(out.dtype)
        return out
