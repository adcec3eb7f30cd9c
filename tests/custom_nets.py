"""Users' own networks, as a test would meet them: `--arch custom_nets:Name` (tests/ is on sys.path).

Each is tiny (a few thousand weights) so a whole inspect -> prune -> finetune -> evaluate -> export
chain runs in seconds. They follow docs/custom_networks.md in different ways: attributes on the
class, on the instance, or none at all (then the contract comes from --arch-kwargs).
"""
from __future__ import annotations

import torch
from torch import nn


def example_inputs(gen: nn.Module) -> tuple[torch.Tensor, ...]:
    """Two inputs for ``gen``: images in its range for an image generator, latents (and labels: 2, 0) else."""
    shape = tuple(gen.input_shape)
    if getattr(gen, "input_kind", "noise") == "image":
        x = torch.rand(2, *shape)
        return (x * 2 - 1 if tuple(getattr(gen, "output_range", (-1, 1))) == (-1, 1) else x,)
    z = torch.randn(2, *shape)
    return (z, torch.tensor([2, 0])) if getattr(gen, "num_classes", None) else (z,)


def dcgan28(nz: int = 16, ngf: int = 8) -> nn.Sequential:
    """A bare nn.Sequential DCGAN generator for 28x28 one-channel images: no contract attributes at all
    (give them with --arch-kwargs '{"nz": 16, "input_shape": [16, 1, 1]}')."""
    return nn.Sequential(
        nn.ConvTranspose2d(nz, ngf * 2, 7, 1, 0, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),   # 7x7
        nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),      # 14x14
        nn.ConvTranspose2d(ngf, 1, 4, 2, 1, bias=False), nn.Tanh(),                                     # 28x28
    )


def dcgan28_d(ndf: int = 8) -> nn.Sequential:
    """Its discriminator, ending in a sigmoid (probabilities: --d-arch-kwargs '{"d_output": "probs"}')."""
    return nn.Sequential(
        nn.Conv2d(1, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True),                                # 14x14
        nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, True),  # 7x7
        nn.Conv2d(ndf * 2, 1, 7, 1, 0, bias=False), nn.Sigmoid(), nn.Flatten(0),
    )


class MLPGenerator(nn.Module):
    """A GAN generator made of nn.Linear layers with a flat output; the class states the contract."""

    input_shape = (16,)

    def __init__(self, nz: int = 16, hidden: int = 64, image_size: int = 8) -> None:
        super().__init__()
        self.input_shape = (nz,)
        self.output_shape = (1, image_size, image_size)
        self.net = nn.Sequential(nn.Linear(nz, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
                                 nn.Linear(hidden, image_size * image_size), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class MLPDiscriminator(nn.Module):
    def __init__(self, image_size: int = 8, hidden: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(image_size * image_size, hidden), nn.LeakyReLU(0.2),
                                 nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CondGenerator(nn.Module):
    """Class-conditional: forward(z, labels); the label embedding is multiplied into the latent."""

    def __init__(self, nz: int = 16, num_classes: int = 3, ngf: int = 8) -> None:
        super().__init__()
        self.input_shape, self.num_classes = (nz,), num_classes
        self.embed = nn.Embedding(num_classes, nz)
        self.fc = nn.Linear(nz, ngf * 2 * 4 * 4)
        self.ngf = ngf
        self.up = nn.Sequential(nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1), nn.ReLU(True),
                                nn.ConvTranspose2d(ngf, 1, 4, 2, 1), nn.Tanh())

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.fc(z * self.embed(labels)).view(z.shape[0], self.ngf * 2, 4, 4)
        return self.up(h)


class CondCatGenerator(nn.Module):
    """Class-conditional DCGAN in the common public style: the label embedding, unsqueezed to (E, 1, 1), is
    concatenated to the latent (nz, 1, 1) along channels."""

    def __init__(self, nz: int = 8, num_classes: int = 4, emb: int = 4, ngf: int = 8) -> None:
        super().__init__()
        self.input_shape, self.num_classes = (nz, 1, 1), num_classes
        self.label_emb = nn.Embedding(num_classes, emb)
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz + emb, ngf * 2, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
            nn.ConvTranspose2d(ngf, 1, 4, 2, 1, bias=False), nn.Tanh())

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        c = self.label_emb(labels).unsqueeze(2).unsqueeze(3)
        return self.main(torch.cat([z, c], 1))


class CondMLPGenerator(nn.Module):
    """Class-conditional MLP GAN in the common public style: one-hot labels concatenated to the noise, the
    flat output viewed as an image by the module itself."""

    def __init__(self, nz: int = 8, num_classes: int = 3, hidden: int = 32, image_size: int = 8) -> None:
        super().__init__()
        self.input_shape, self.num_classes, self.image_size = (nz,), num_classes, image_size
        self.model = nn.Sequential(nn.Linear(nz + num_classes, hidden), nn.BatchNorm1d(hidden), nn.LeakyReLU(0.2),
                                   nn.Linear(hidden, image_size * image_size), nn.Tanh())

    def forward(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        onehot = nn.functional.one_hot(labels, self.num_classes).float()
        img = self.model(torch.cat((onehot, noise), -1))
        return img.view(img.size(0), 1, self.image_size, self.image_size)


class CondDiscriminator(nn.Module):
    """Class-conditional: forward(x, labels), a projection discriminator."""

    def __init__(self, num_classes: int = 3, ndf: int = 8) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.body = nn.Sequential(nn.Conv2d(1, ndf, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(ndf, ndf * 2, 4, 2, 1),
                                  nn.LeakyReLU(0.2), nn.Flatten())
        self.out = nn.Linear(ndf * 2 * 4 * 4, 1)
        self.embed = nn.Embedding(num_classes, ndf * 2 * 4 * 4)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        return self.out(h).squeeze(1) + (self.embed(labels) * h).sum(1)


class SRGenerator(nn.Module):
    """Super-resolution x2 with PixelShuffle and a sigmoid: images in [0, 1] in and out."""

    input_kind = "image"
    output_range = (0, 1)

    def __init__(self, size: int = 8, nf: int = 8) -> None:
        super().__init__()
        self.input_shape = (3, size, size)
        self.head = nn.Conv2d(3, nf, 3, 1, 1)
        self.body = nn.Sequential(nn.Conv2d(nf, nf, 3, 1, 1), nn.ReLU(True), nn.Conv2d(nf, nf, 3, 1, 1))
        self.up = nn.Sequential(nn.Conv2d(nf, nf * 4, 3, 1, 1), nn.PixelShuffle(2), nn.ReLU(True))
        self.tail = nn.Conv2d(nf, 3, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(x)
        return torch.sigmoid(self.tail(self.up(h + self.body(h))))


class EncoderDecoder(nn.Module):
    """A small image-to-image generator: two stride-2 convs down, two transposed convs up, tanh."""

    input_kind = "image"

    def __init__(self, size: int = 16, nf: int = 8) -> None:
        super().__init__()
        self.input_shape = (3, size, size)
        self.enc = nn.Sequential(nn.Conv2d(3, nf, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(nf, nf * 2, 4, 2, 1),
                                 nn.InstanceNorm2d(nf * 2), nn.LeakyReLU(0.2))
        self.dec = nn.Sequential(nn.ConvTranspose2d(nf * 2, nf, 4, 2, 1), nn.ReLU(True),
                                 nn.ConvTranspose2d(nf, 3, 4, 2, 1), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dec(self.enc(x))


class PatchD(nn.Module):
    """A small PatchGAN-style discriminator for 3-channel images: a map of logits."""

    def __init__(self, channels: int = 3, ndf: int = 8) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(ndf, 1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Broken(nn.Module):
    """Fails in forward: the user's code raising, not the tool."""

    input_shape = (4,)

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 16)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        raise ValueError("deliberate failure in the user's forward")


def fails_to_build(**kwargs) -> nn.Module:
    raise RuntimeError("deliberate failure in the user's constructor")
