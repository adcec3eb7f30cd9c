"""The tiny StyleGAN2 of the parity fixture (32 px, style dim 16), as networks or as a checkpoint in
the reference layout, for the StyleGAN2 tests."""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from gancompress.archs.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator

FIXTURE = Path(__file__).parent / "fixtures" / "stylegan2_parity.safetensors"


def parity_tensors() -> dict[str, torch.Tensor]:
    return load_file(str(FIXTURE))


def part(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def tiny_networks() -> tuple[StyleGAN2Generator, StyleGAN2Discriminator]:
    """The fixture's generator (eval mode) and discriminator."""
    t = parity_tensors()
    g = StyleGAN2Generator(32, 16, 2, channels=[16, 12, 8, 6]).eval()
    g.load_state_dict(part(t, "g_ema."))
    d = StyleGAN2Discriminator(32, channels=[6, 8, 12, 16])
    d.load_state_dict(part(t, "d."))
    return g, d


def reference_file(path: Path, *, latent_avg: torch.Tensor | None = None, with_d: bool = True) -> str:
    """The fixture's networks saved as the reference does: ``{g_ema, d, latent_avg}`` (each optional)."""
    t = parity_tensors()
    ckpt = {"g_ema": part(t, "g_ema.")}
    if with_d:
        ckpt["d"] = part(t, "d.")
    if latent_avg is not None:
        ckpt["latent_avg"] = latent_avg
    torch.save(ckpt, path)
    return str(path)
