"""DCGAN in the layout of PyTorch's official example (``pytorch/examples`` dcgan/main.py).

Keys are ``main.<i>.<param>``; the generator is ConvTranspose2d(no bias)+BatchNorm+ReLU
stacks ending in ConvTranspose2d+Tanh, the discriminator Conv2d+BatchNorm+LeakyReLU stacks
ending in Conv2d+Sigmoid (so it returns probabilities). Widths are read off the shapes, so
any nz/ngf/ndf/nc and 32 or 64 px (4 or 5 layers) load.
"""
from __future__ import annotations

from torch import nn

from .base import Architecture, register_architecture


class DCGANGenerator(nn.Module):
    def __init__(self, widths: list[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        last = len(widths) - 2
        for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:])):
            stride, pad = (1, 0) if i == 0 else (2, 1)
            layers.append(nn.ConvTranspose2d(cin, cout, 4, stride, pad, bias=False))
            if i < last:
                layers += [nn.BatchNorm2d(cout), nn.ReLU(True)]
        layers.append(nn.Tanh())
        self.main = nn.Sequential(*layers)

    def forward(self, z):
        return self.main(z)


class DCGANDiscriminator(nn.Module):
    def __init__(self, widths: list[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        last = len(widths) - 2
        for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:])):
            if i == last:
                layers += [nn.Conv2d(cin, cout, 4, 1, 0, bias=False), nn.Sigmoid()]
                break
            layers.append(nn.Conv2d(cin, cout, 4, 2, 1, bias=False))
            if i > 0:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
        self.main = nn.Sequential(*layers)

    def forward(self, x):
        return self.main(x).view(-1, 1).squeeze(1)


def _conv_weights(sd) -> list:
    keys = sorted(
        (k for k in sd if k.startswith("main.") and k.endswith(".weight") and sd[k].ndim == 4),
        key=lambda k: int(k.split(".")[1]),
    )
    return [sd[k] for k in keys]


def _infer_generator(sd):
    weights = _conv_weights(sd)
    if len(weights) not in (4, 5) or any(k.startswith("main.") is False for k in sd):
        return None
    widths = [int(weights[0].shape[0])] + [int(w.shape[1]) for w in weights]
    if tuple(weights[0].shape[2:]) != (4, 4):
        return None
    return {"widths": widths}


def _infer_discriminator(sd):
    weights = _conv_weights(sd)
    if len(weights) not in (4, 5) or int(weights[-1].shape[0]) != 1:
        return None
    widths = [int(weights[0].shape[1])] + [int(w.shape[0]) for w in weights]
    return {"widths": widths}


def _latent_shape(kwargs):
    return (kwargs["widths"][0], 1, 1)


def _side(widths) -> int:
    return 2 ** len(widths)  # 4 stride layers after the first: 32 px; 5: 64 px


register_architecture(
    Architecture(
        name="dcgan-g",
        role="generator",
        build=DCGANGenerator,
        infer=_infer_generator,
        default_kwargs={"widths": [100, 512, 256, 128, 64, 3]},
        input_kind="noise",
        input_shape=_latent_shape,
        output_shape=lambda kw: (kw["widths"][-1], _side(kw["widths"]), _side(kw["widths"])),
        loss="ns",
        description="PyTorch examples DCGAN generator (32/64 px)",
    )
)
register_architecture(
    Architecture(
        name="dcgan-d",
        role="discriminator",
        build=DCGANDiscriminator,
        infer=_infer_discriminator,
        default_kwargs={"widths": [3, 64, 128, 256, 512, 1]},
        probe_shape=lambda kw: (kw["widths"][0], _side(kw["widths"]), _side(kw["widths"])),
        loss="ns",
        d_output="probs",
        description="PyTorch examples DCGAN discriminator (ends in Sigmoid: probabilities)",
    )
)
