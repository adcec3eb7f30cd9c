"""The small DCGAN bundled as ``builtin:digits-dcgan``, trained on scikit-learn's digits.

Generator: a latent ``(nz, 1, 1)`` -> 4x4 -> 8x8 -> 16x16 ConvTranspose2d/BatchNorm/ReLU
stack and a 3x3 Conv2d + Tanh head (``net.*`` keys). Discriminator: strided convolutions with
LeakyReLU, no batch norm (it is trained with an R1 penalty), returning logits.
"""
from __future__ import annotations

from torch import nn

from .base import Architecture, register_architecture


class DigitsGenerator(nn.Module):
    def __init__(self, nz: int = 32, ngf: int = 32, nc: int = 1) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 4, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * 4),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            nn.Conv2d(ngf, nc, 3, 1, 1),
            nn.Tanh(),
        )

    def forward(self, z):
        return self.net(z)


class DigitsDiscriminator(nn.Module):
    def __init__(self, ndf: int = 32, nc: int = 1) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(nc, ndf, 4, 2, 1),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, 1, 4, 1, 0),
        )

    def forward(self, x):
        return self.net(x).flatten()


def _infer_generator(sd):
    if set(sd) != set(DigitsGenerator(8, 2, 1).state_dict()):
        return None
    w0 = sd["net.0.weight"]
    return {"nz": int(w0.shape[0]), "ngf": int(w0.shape[1]) // 4, "nc": int(sd["net.9.weight"].shape[0])}


def _infer_discriminator(sd):
    if set(sd) != set(DigitsDiscriminator(2, 1).state_dict()):
        return None
    w0 = sd["net.0.weight"]
    return {"ndf": int(w0.shape[0]), "nc": int(w0.shape[1])}


register_architecture(
    Architecture(
        name="digits-dcgan-g",
        role="generator",
        build=DigitsGenerator,
        infer=_infer_generator,
        default_kwargs={"nz": 32, "ngf": 32, "nc": 1},
        input_kind="noise",
        input_shape=lambda kw: (kw["nz"], 1, 1),
        output_shape=lambda kw: (kw["nc"], 16, 16),
        loss="ns",
        description="bundled 16x16 digits DCGAN generator",
    )
)
register_architecture(
    Architecture(
        name="digits-dcgan-d",
        role="discriminator",
        build=DigitsDiscriminator,
        infer=_infer_discriminator,
        default_kwargs={"ndf": 32, "nc": 1},
        probe_shape=lambda kw: (kw["nc"], 16, 16),
        loss="ns",
        description="bundled 16x16 digits DCGAN discriminator (logits)",
    )
)
