"""Networks written the way popular public GAN code writes them (tiny widths, written for these tests).

They reproduce the idioms that third-party checkpoints carry, not any project's code: constructors that
take ``latent_dim``/``img_shape``/``n_classes`` rather than the contract's attribute names (so the
contract comes from ``--arch-kwargs``), ``BatchNorm1d(n, 0.8)`` (eps passed positionally), flat MLP
outputs reshaped with ``view(img.size(0), *img_shape)``, a ``Linear`` stem viewed as ``(C, s, s)`` then
``Upsample + Conv2d`` blocks, ``Dropout2d`` in D, ``nn.Embedding`` labels concatenated to (or multiplied
with) the latent, a D with an auxiliary classifier that returns ``(validity, label)``, a critic with no
sigmoid, an SR ResNet with ``PReLU`` and ``PixelShuffle``, and a U-Net with skip concatenations,
``InstanceNorm2d`` and ``Dropout``.
"""
from __future__ import annotations

import math

import torch
from torch import nn


def _mlp_block(n_in: int, n_out: int, normalize: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Linear(n_in, n_out)]
    if normalize:
        layers.append(nn.BatchNorm1d(n_out, 0.8))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return layers


class MLPGenerator(nn.Module):
    """The vanilla-GAN MLP generator: flat output, ``view`` to the image shape inside ``forward``."""

    def __init__(self, latent_dim: int = 8, img_shape=(1, 8, 8), width: int = 16) -> None:
        super().__init__()
        self.img_shape = tuple(img_shape)
        self.model = nn.Sequential(
            *_mlp_block(latent_dim, width, normalize=False), *_mlp_block(width, width * 2),
            nn.Linear(width * 2, math.prod(self.img_shape)), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        img = self.model(z)
        return img.view(img.size(0), *self.img_shape)


class MLPDiscriminator(nn.Module):
    """Flattens with ``view(img.size(0), -1)`` and ends in a Sigmoid."""

    def __init__(self, img_shape=(1, 8, 8), width: int = 16, sigmoid: bool = True) -> None:
        super().__init__()
        self.model = nn.Sequential(
            nn.Linear(math.prod(img_shape), width), nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(width, 1), *([nn.Sigmoid()] if sigmoid else []))

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.model(img.view(img.size(0), -1))


def _upsample_convs(width: int, channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.BatchNorm2d(width),
        nn.Upsample(scale_factor=2), nn.Conv2d(width, width, 3, stride=1, padding=1),
        nn.BatchNorm2d(width, 0.8), nn.LeakyReLU(0.2, inplace=True),
        nn.Upsample(scale_factor=2), nn.Conv2d(width, width // 2, 3, stride=1, padding=1),
        nn.BatchNorm2d(width // 2, 0.8), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(width // 2, channels, 3, stride=1, padding=1), nn.Tanh())


class DCGANGenerator(nn.Module):
    """A ``Linear`` stem ``l1`` viewed as ``(width, s, s)``, then Upsample + Conv2d blocks."""

    def __init__(self, latent_dim: int = 8, img_size: int = 16, channels: int = 1, width: int = 16) -> None:
        super().__init__()
        self.width, self.init_size = width, img_size // 4
        self.l1 = nn.Sequential(nn.Linear(latent_dim, width * self.init_size ** 2))
        self.conv_blocks = _upsample_convs(width, channels)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.l1(z)
        out = out.view(out.shape[0], self.width, self.init_size, self.init_size)
        return self.conv_blocks(out)


def _d_convs(channels: int, width: int) -> nn.Sequential:
    def block(n_in: int, n_out: int, bn: bool = True) -> list[nn.Module]:
        layers = [nn.Conv2d(n_in, n_out, 3, 2, 1), nn.LeakyReLU(0.2, inplace=True), nn.Dropout2d(0.25)]
        return layers + ([nn.BatchNorm2d(n_out, 0.8)] if bn else [])

    return nn.Sequential(*block(channels, width, bn=False), *block(width, width * 2))


class DCGANDiscriminator(nn.Module):
    """Strided convs with Dropout2d, then a ``Linear`` ``adv_layer`` + Sigmoid (or none: a WGAN critic)."""

    def __init__(self, img_size: int = 16, channels: int = 1, width: int = 8, sigmoid: bool = True) -> None:
        super().__init__()
        self.model = _d_convs(channels, width)
        features = width * 2 * (img_size // 4) ** 2
        self.adv_layer = nn.Sequential(nn.Linear(features, 1), *([nn.Sigmoid()] if sigmoid else []))

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        out = self.model(img)
        return self.adv_layer(out.view(out.shape[0], -1))


class CGANGenerator(nn.Module):
    """``nn.Embedding(n_classes, n_classes)`` concatenated to the latent, then the MLP."""

    def __init__(self, latent_dim: int = 8, n_classes: int = 3, img_shape=(1, 8, 8), width: int = 16) -> None:
        super().__init__()
        self.img_shape = tuple(img_shape)
        self.label_emb = nn.Embedding(n_classes, n_classes)
        self.model = nn.Sequential(
            *_mlp_block(latent_dim + n_classes, width, normalize=False), *_mlp_block(width, width * 2),
            nn.Linear(width * 2, math.prod(self.img_shape)), nn.Tanh())

    def forward(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        img = self.model(torch.cat((self.label_emb(labels), noise), -1))
        return img.view(img.size(0), *self.img_shape)


class CGANDiscriminator(nn.Module):
    """The flattened image concatenated with a label embedding; no sigmoid (trained with MSE)."""

    def __init__(self, n_classes: int = 3, img_shape=(1, 8, 8), width: int = 16) -> None:
        super().__init__()
        self.label_embedding = nn.Embedding(n_classes, n_classes)
        self.model = nn.Sequential(
            nn.Linear(n_classes + math.prod(img_shape), width), nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(width, width), nn.Dropout(0.4), nn.LeakyReLU(0.2, inplace=True), nn.Linear(width, 1))

    def forward(self, img: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.model(torch.cat((img.view(img.size(0), -1), self.label_embedding(labels)), -1))


class ACGANGenerator(nn.Module):
    """The label embedding multiplied with the latent, then the DCGAN body."""

    def __init__(self, latent_dim: int = 8, n_classes: int = 3, img_size: int = 16, channels: int = 1,
                 width: int = 16) -> None:
        super().__init__()
        self.width, self.init_size = width, img_size // 4
        self.label_emb = nn.Embedding(n_classes, latent_dim)
        self.l1 = nn.Sequential(nn.Linear(latent_dim, width * self.init_size ** 2))
        self.conv_blocks = _upsample_convs(width, channels)

    def forward(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        out = self.l1(torch.mul(self.label_emb(labels), noise))
        return self.conv_blocks(out.view(out.shape[0], self.width, self.init_size, self.init_size))


class ACGANDiscriminator(nn.Module):
    """An auxiliary-classifier D: ``forward(img)`` returns ``(validity, class probabilities)``."""

    def __init__(self, n_classes: int = 3, img_size: int = 16, channels: int = 1, width: int = 8) -> None:
        super().__init__()
        self.model = _d_convs(channels, width)
        features = width * 2 * (img_size // 4) ** 2
        self.adv_layer = nn.Sequential(nn.Linear(features, 1), nn.Sigmoid())
        self.aux_layer = nn.Sequential(nn.Linear(features, n_classes), nn.Softmax(dim=1))

    def forward(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(img).view(img.shape[0], -1)
        return self.adv_layer(out), self.aux_layer(out)


class _ResidualBlock(nn.Module):
    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.Conv2d(features, features, 3, 1, 1), nn.BatchNorm2d(features, 0.8), nn.PReLU(),
            nn.Conv2d(features, features, 3, 1, 1), nn.BatchNorm2d(features, 0.8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class SRResNet(nn.Module):
    """SRGAN's generator: 9x9 head + PReLU, residual blocks, ``torch.add`` skip, 2x (conv, BN, PixelShuffle,
    PReLU) upsampling, 9x9 tail + Tanh."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, n_residual_blocks: int = 2, width: int = 8) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, width, 9, 1, 4), nn.PReLU())
        self.res_blocks = nn.Sequential(*[_ResidualBlock(width) for _ in range(n_residual_blocks)])
        self.conv2 = nn.Sequential(nn.Conv2d(width, width, 3, 1, 1), nn.BatchNorm2d(width, 0.8))
        up: list[nn.Module] = []
        for _ in range(2):
            up += [nn.Conv2d(width, width * 4, 3, 1, 1), nn.BatchNorm2d(width * 4), nn.PixelShuffle(2), nn.PReLU()]
        self.upsampling = nn.Sequential(*up)
        self.conv3 = nn.Sequential(nn.Conv2d(width, out_channels, 9, 1, 4), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out1 = self.conv1(x)
        out = torch.add(out1, self.conv2(self.res_blocks(out1)))
        return self.conv3(self.upsampling(out))


class PatchDiscriminator(nn.Module):
    """A PatchGAN-style D returning a map of logits, ``(N, 1, h, w)``."""

    def __init__(self, in_channels: int = 3, width: int = 8) -> None:
        super().__init__()
        self.model = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, 2, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width, width * 2, 3, 2, 1), nn.BatchNorm2d(width * 2), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width * 2, 1, 3, 1, 1))

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.model(img)


class _UNetDown(nn.Module):
    def __init__(self, n_in: int, n_out: int, normalize: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(n_in, n_out, 4, 2, 1, bias=False)]
        if normalize:
            layers.append(nn.InstanceNorm2d(n_out))
        layers.append(nn.LeakyReLU(0.2))
        if dropout:
            layers.append(nn.Dropout(dropout))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class _UNetUp(nn.Module):
    def __init__(self, n_in: int, n_out: int, dropout: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.ConvTranspose2d(n_in, n_out, 4, 2, 1, bias=False), nn.InstanceNorm2d(n_out),
                                   nn.ReLU(inplace=True)]
        if dropout:
            layers.append(nn.Dropout(dropout))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.model(x), skip), 1)


class GeneratorUNet(nn.Module):
    """pix2pix's U-Net: down blocks, up blocks concatenating the skips, Upsample + ZeroPad2d + conv + Tanh."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, width: int = 8) -> None:
        super().__init__()
        self.down1 = _UNetDown(in_channels, width, normalize=False)
        self.down2 = _UNetDown(width, width * 2)
        self.down3 = _UNetDown(width * 2, width * 2, normalize=False, dropout=0.5)
        self.up1 = _UNetUp(width * 2, width * 2, dropout=0.5)
        self.up2 = _UNetUp(width * 4, width)
        self.final = nn.Sequential(nn.Upsample(scale_factor=2), nn.ZeroPad2d((1, 0, 1, 0)),
                                   nn.Conv2d(width * 2, out_channels, 4, padding=1), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d1 = self.down1(x)
        d2 = self.down2(d1)
        d3 = self.down3(d2)
        return self.final(self.up2(self.up1(d3, d2), d1))


class Pix2PixDiscriminator(nn.Module):
    """pix2pix's conditional PatchGAN taking two arguments, called as ``discriminator(fake_B, real_A)``:
    ``forward(img_A, img_B)`` concatenates them on channels itself."""

    def __init__(self, in_channels: int = 3, width: int = 8) -> None:
        super().__init__()
        self.model = nn.Sequential(
            nn.Conv2d(in_channels * 2, width, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width, width * 2, 4, 2, 1), nn.InstanceNorm2d(width * 2), nn.LeakyReLU(0.2, inplace=True),
            nn.ZeroPad2d((1, 0, 1, 0)), nn.Conv2d(width * 2, 1, 4, padding=1, bias=False))

    def forward(self, img_A: torch.Tensor, img_B: torch.Tensor) -> torch.Tensor:
        return self.model(torch.cat((img_A, img_B), 1))


class SNGenerator(nn.Module):
    """An SN-GAN/SAGAN-style generator with spectral norm on its own layers: the old hook API
    (``weight_orig``/``weight_u``/``weight_v`` keys) or, with ``parametrized``, the parametrizations API
    (``parametrizations.weight.original`` keys); ``F.interpolate`` upsampling, functional activations."""

    def __init__(self, z_dim: int = 8, width: int = 16, parametrized: bool = False) -> None:
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm if parametrized else nn.utils.spectral_norm
        self.width = width
        self.fc = sn(nn.Linear(z_dim, width * 4 * 4))
        self.conv1 = sn(nn.Conv2d(width, width, 3, 1, 1))
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = sn(nn.Conv2d(width, 1, 3, 1, 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(-1, self.width, 4, 4)
        h = torch.relu(self.bn1(self.conv1(nn.functional.interpolate(h, scale_factor=2))))
        return torch.tanh(self.conv2(nn.functional.interpolate(h, scale_factor=2)))


class SNDiscriminator(nn.Module):
    """A spectral-norm critic (logits)."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.conv = nn.utils.spectral_norm(nn.Conv2d(1, width, 4, 2, 1))
        self.fc = nn.utils.spectral_norm(nn.Linear(width * 8 * 8, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(nn.functional.leaky_relu(self.conv(x), 0.1).flatten(1))


class ExamplesGenerator(nn.Module):
    """A generator copied from pytorch/examples' DCGAN: ``ngpu`` and an ``input.is_cuda`` branch in ``forward``."""

    def __init__(self, ngpu: int = 1, nz: int = 8, ngf: int = 8) -> None:
        super().__init__()
        self.ngpu = ngpu
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 2, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
            nn.ConvTranspose2d(ngf, 1, 4, 2, 1, bias=False), nn.Tanh())

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if input.is_cuda and self.ngpu > 1:
            return nn.parallel.data_parallel(self.main, input, range(self.ngpu))
        return self.main(input)


class ExamplesDiscriminator(nn.Module):
    """Its discriminator: ends in a Sigmoid, ``output.view(-1, 1).squeeze(1)``."""

    def __init__(self, ngpu: int = 1, ndf: int = 8) -> None:
        super().__init__()
        self.ngpu = ngpu
        self.main = nn.Sequential(
            nn.Conv2d(1, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, 1, 8, 1, 0, bias=False), nn.Sigmoid())

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return self.main(input).view(-1, 1).squeeze(1)


def data_parallel_keys(sd: dict) -> dict:
    """``sd`` as ``torch.save(nn.DataParallel(G).state_dict())`` writes it: every key under ``module.``."""
    return {f"module.{k}": v for k, v in sd.items()}
