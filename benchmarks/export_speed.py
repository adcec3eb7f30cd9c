"""Dense vs shrunk CPU latency and file sizes of every export format.

The pix2pix ResNet-9 generator (256x256, ngf 64) has residual skips, which ``--format shrunk``
does not handle yet, so this uses a *sequential stand-in* of the same layers and size (the
nine residual blocks' convolutions in a row, no skip additions, instance norm). Filter
pruning removes exactly 25/50/75% of the output filters of every layer but the last.

Run: ``python benchmarks/export_speed.py [--repeats 3] [--size 256]``. The CPU is shared, so
expect noise of 10-20%; the median of ``--repeats`` runs is printed.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from gancompress.api import load
from gancompress.archs import ARCHITECTURES, ArchSpec
from gancompress.archs.base import Architecture, register_architecture
from gancompress.checkpoint import GanBundle
from gancompress.export import ExportConfig, export_bundle, masked_generator

NAME = "bench-seq-resnet-g"


class SequentialResnetStandIn(nn.Module):
    """pix2pix ResNet generator layers in one Sequential (residual additions left out)."""

    def __init__(self, ngf: int = 64, n_blocks: int = 9) -> None:
        super().__init__()
        def norm(c: int) -> nn.Module:
            return nn.InstanceNorm2d(c)
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7), norm(ngf), nn.ReLU()]
        for mult in (1, 2):
            layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, 2, 1), norm(ngf * mult * 2), nn.ReLU()]
        for _ in range(n_blocks):
            for act in (True, False):
                layers += [nn.ReflectionPad2d(1), nn.Conv2d(ngf * 4, ngf * 4, 3), norm(ngf * 4)]
                layers += [nn.ReLU()] if act else []
        for mult in (4, 2):
            layers += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, 2, 1, output_padding=1),
                       norm(ngf * mult // 2), nn.ReLU()]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


def register(size: int) -> None:
    if NAME not in ARCHITECTURES:
        register_architecture(Architecture(name=NAME, role="generator", build=SequentialResnetStandIn,
                                           infer=lambda sd: None, input_kind="image",
                                           input_shape=lambda kw: (3, size, size)))


def filter_masks(model: nn.Module, s: float) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    masks = {}
    for name, m in convs[:-1]:
        dim = 1 if isinstance(m, nn.ConvTranspose2d) else 0
        n = m.weight.shape[dim]
        keep = torch.ones(n, dtype=torch.bool)
        keep[torch.randperm(n, generator=gen)[: round(s * n)]] = False
        shape = [1] * 4
        shape[dim] = n
        masks[f"{name}.weight"] = keep.view(shape).expand_as(m.weight).clone()
    return masks


def latency(model: nn.Module, x: torch.Tensor, repeats: int) -> float:
    with torch.no_grad():
        model(x)
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def run(repeats: int, size: int) -> None:
    register(size)
    torch.manual_seed(0)
    spec = ArchSpec(NAME, {})
    g = SequentialResnetStandIn().eval()
    x = torch.randn(1, 3, size, size)
    print(f"stand-in: sequential pix2pix ResNet-9 layers, {sum(p.numel() for p in g.parameters()):,} params, "
          f"input 1x3x{size}x{size}, torch threads {torch.get_num_threads()}, median of {repeats}")
    dense_ms = latency(g, x, repeats) * 1e3
    print(f"dense: {dense_ms:.0f} ms")
    with tempfile.TemporaryDirectory() as tmp:
        for s in (0.25, 0.5, 0.75):
            bundle = GanBundle(g, spec, masks=filter_masks(g, s), source="stand-in")
            sizes = {}
            for fmt in ("dense", "sparse", "shrunk"):
                r = export_bundle(bundle, ExportConfig("stand-in", Path(tmp) / f"{fmt}{s}.safetensors", format=fmt))
                sizes[fmt] = r.file_bytes
            small = load(Path(tmp) / f"shrunk{s}.safetensors")
            with torch.no_grad():
                err = float((small(x) - masked_generator(bundle)(x)).abs().max())
            ms = latency(small, x, repeats) * 1e3
            print(f"filter {s:.0%}: shrunk {ms:.0f} ms = {ms / dense_ms:.2f}x dense (max |diff| {err:.1e}); files "
                  + ", ".join(f"{k} {v / 2**20:.1f} MiB ({v / sizes['dense']:.3f}x)" for k, v in sizes.items()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    run(args.repeats, args.size)
