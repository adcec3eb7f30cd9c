"""The zoo's own networks: GAN families that are not the bundled DCGAN, as a third party would write them.

gancompress knows none of these classes; it reads them through the custom-network contract
(docs/custom_networks.md): ``--arch zoo_nets:UpsampleGenerator --d-arch zoo_nets:SNDiscriminator``
with ``examples/zoo`` on the Python path. The class attributes (``input_shape``, ``num_classes``,
``input_kind``, ``output_range``) are that contract.

- :class:`UpsampleGenerator` / :class:`SNDiscriminator`: a linear stem, nearest-neighbour
  upsampling + 3x3 convolutions (no transposed convolutions), and a spectral-norm discriminator
  trained with the hinge loss.
- :class:`ConditionalGenerator` / :class:`ProjectionDiscriminator`: a class-conditional DCGAN
  (the label's embedding scales and shifts the first feature map) and a projection discriminator
  (Miyato & Koyama, 2018): ``forward(z, labels)`` and ``forward(x, labels)``.
- :class:`SRGenerator` / :class:`SRDiscriminator`: a small x2 super-resolution network (residual
  blocks, one pixel shuffle) and a patch discriminator, images in ``[0, 1]``.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


def _up_block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout), nn.ReLU(True)]


class UpsampleGenerator(nn.Module):
    """latent (nz,) -> linear to (4 ngf, 4, 4) -> upsample+conv to 8x8 and 16x16 -> 3x3 conv + tanh."""

    input_kind = "noise"
    output_range = (-1, 1)

    def __init__(self, nz: int = 32, ngf: int = 32, nc: int = 1) -> None:
        super().__init__()
        self.input_shape = (nz,)
        self.ngf = ngf
        self.stem = nn.Sequential(nn.Linear(nz, ngf * 4 * 4 * 4, bias=False), nn.BatchNorm1d(ngf * 4 * 4 * 4), nn.ReLU(True))
        self.body = nn.Sequential(*_up_block(ngf * 4, ngf * 2), *_up_block(ngf * 2, ngf),
                                  nn.Conv2d(ngf, nc, 3, 1, 1), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(self.stem(z.flatten(1)).view(z.shape[0], self.ngf * 4, 4, 4))


class SNDiscriminator(nn.Module):
    """Spectral-norm convolutions (16 -> 8 -> 4), LeakyReLU, a spectral-norm linear head; logits."""

    d_output = "logits"

    def __init__(self, ndf: int = 32, nc: int = 1) -> None:
        super().__init__()
        self.features = nn.Sequential(
            spectral_norm(nn.Conv2d(nc, ndf, 4, 2, 1)), nn.LeakyReLU(0.2, True),
            spectral_norm(nn.Conv2d(ndf, ndf * 2, 4, 2, 1)), nn.LeakyReLU(0.2, True))
        self.head = spectral_norm(nn.Linear(ndf * 2 * 4 * 4, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1)).flatten()


class ConditionalGenerator(nn.Module):
    """A DCGAN stack whose 4x4 feature map is scaled and shifted by the label's embedding."""

    input_kind = "noise"
    output_range = (-1, 1)

    def __init__(self, nz: int = 32, ngf: int = 32, nc: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        self.input_shape = (nz,)
        self.num_classes = num_classes
        self.head = nn.Sequential(nn.ConvTranspose2d(nz, ngf * 4, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 4, affine=False))
        self.embed = nn.Embedding(num_classes, 2 * ngf * 4)
        nn.init.ones_(self.embed.weight[:, :ngf * 4])
        nn.init.zeros_(self.embed.weight[:, ngf * 4:])
        self.body = nn.Sequential(
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
            nn.Conv2d(ngf, nc, 3, 1, 1), nn.Tanh())

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.head(z.reshape(z.shape[0], -1, 1, 1))
        scale, shift = self.embed(labels.long()).chunk(2, dim=1)
        return self.body(h * scale[:, :, None, None] + shift[:, :, None, None])


class ProjectionDiscriminator(nn.Module):
    """Strided convolutions to a pooled feature h; logit = w.h + <embed(label), h>."""

    d_output = "logits"

    def __init__(self, ndf: int = 32, nc: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.features = nn.Sequential(
            nn.Conv2d(nc, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, ndf * 4, 3, 1, 1), nn.LeakyReLU(0.2, True))
        self.linear = nn.Linear(ndf * 4, 1)
        self.embed = nn.Embedding(num_classes, ndf * 4)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.features(x).sum(dim=(2, 3))
        return (self.linear(h).flatten() + (self.embed(labels.long()) * h).sum(dim=1))


class _Residual(nn.Module):
    def __init__(self, nf: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(nf, nf, 3, 1, 1), nn.ReLU(True), nn.Conv2d(nf, nf, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.2 * self.body(x)


class SRGenerator(nn.Module):
    """x2 super-resolution: conv, ``blocks`` residual blocks, conv + pixel shuffle, conv; [0, 1] images."""

    input_kind = "image"
    output_range = (0, 1)

    def __init__(self, nf: int = 32, blocks: int = 4, patch: int = 24) -> None:
        super().__init__()
        self.input_shape = (3, patch, patch)
        self.first = nn.Conv2d(3, nf, 3, 1, 1)
        self.blocks = nn.Sequential(*[_Residual(nf) for _ in range(blocks)])
        self.up = nn.Sequential(nn.Conv2d(nf, nf * 4, 3, 1, 1), nn.PixelShuffle(2), nn.LeakyReLU(0.2, True))
        self.last = nn.Conv2d(nf, 3, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.first(x)
        h = h + self.blocks(h)
        base = nn.functional.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        return (base + self.last(self.up(h))).clamp(0, 1)


class SRDiscriminator(nn.Module):
    """A patch discriminator over high-resolution crops (spectral norm, logits per patch, averaged)."""

    d_output = "logits"

    def __init__(self, ndf: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            spectral_norm(nn.Conv2d(3, ndf, 3, 1, 1)), nn.LeakyReLU(0.2, True),
            spectral_norm(nn.Conv2d(ndf, ndf * 2, 4, 2, 1)), nn.LeakyReLU(0.2, True),
            spectral_norm(nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1)), nn.LeakyReLU(0.2, True),
            spectral_norm(nn.Conv2d(ndf * 4, 1, 3, 1, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).mean(dim=(1, 2, 3))
