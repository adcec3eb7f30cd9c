"""Tiny image-to-image checkpoints in their public layouts, and image sets made from scikit-image's samples.

Layouts: pytorch-CycleGAN-and-pix2pix directories (``latest_net_G.pth`` + ``latest_net_D.pth``
for pix2pix; ``latest_net_G_A/G_B/D_A/D_B.pth`` for CycleGAN) and Real-ESRGAN files
(``{"params_ema": G}`` and ``{"params": D}``). Weights are random; networks are tiny.

Images: 64x64 crops (and their mirror images) of scikit-image's bundled astronaut, coffee and
chelsea photographs; the "translation" A -> B is a fixed colour transform (channels reversed,
then inverted), so a paired B is a pixelwise function of its A.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gancompress.archs import ArchSpec, build

RESNET = ArchSpec("pix2pix-resnet-g", {"input_nc": 3, "output_nc": 3, "ngf": 4, "n_blocks": 1, "norm": "instance",
                                       "use_dropout": False})
UNET = ArchSpec("pix2pix-unet-g", {"input_nc": 3, "output_nc": 3, "num_downs": 5, "ngf": 4, "norm": "batch",
                                   "use_dropout": False})
COND_D = ArchSpec("patchgan-d", {"input_nc": 6, "ndf": 4, "n_layers": 2, "norm": "batch"})
CYCLE_D = ArchSpec("patchgan-d", {"input_nc": 3, "ndf": 4, "n_layers": 2, "norm": "instance"})
RRDB = ArchSpec("rrdbnet-g", {"num_in_ch": 3, "num_out_ch": 3, "scale": 4, "num_feat": 8, "num_block": 1, "num_grow_ch": 4})
SN_D = ArchSpec("unet-sn-d", {"num_in_ch": 3, "num_feat": 4, "skip_connection": True})


def translate(a: np.ndarray) -> np.ndarray:
    """The toy A -> B "translation": reverse the channels and invert."""
    return 255 - a[..., ::-1]


def crops(n: int = 6, size: int = 64) -> list[np.ndarray]:
    """``n`` RGB ``size x size`` crops of scikit-image sample photographs, every other one mirrored."""
    from skimage import data

    photos = [data.astronaut(), data.coffee(), data.chelsea()]
    out = []
    for i in range(n):
        im = photos[i % len(photos)]
        y, x = 40 + 37 * (i // len(photos)), 60 + 53 * (i // len(photos))
        c = np.ascontiguousarray(im[y:y + size, x:x + size])
        out.append(c[:, ::-1].copy() if i % 2 else c)
    return out


def save(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(array)).save(path)


def side_by_side(folder: Path, n: int = 6, size: int = 64, gray: bool = False) -> Path:
    for i, a in enumerate(crops(n, size)):
        pair = np.concatenate([a, translate(a)], axis=1)
        if gray:
            pair = np.asarray(Image.fromarray(pair).convert("L"))
        save(pair, folder / f"{i:03d}.png")
    return folder


def ab_folders(folder: Path, n: int = 6, size: int = 64, n_b: int | None = None) -> Path:
    """``A/`` and ``B/`` with matching names (``n_b`` B images: unpaired when it differs)."""
    images = crops(max(n, n_b or n), size)
    for i, a in enumerate(images[:n]):
        save(a, folder / "A" / f"{i:03d}.png")
    for i, a in enumerate(images[:n_b or n]):
        save(translate(a), folder / "B" / f"{i:03d}.png")
    return folder


def hr_folder(folder: Path, n: int = 4, size: int = 64) -> Path:
    for i, a in enumerate(crops(n, size)):
        save(a, folder / f"hr_{i:02d}.png")
    return folder


def _net(spec: ArchSpec, seed: int):
    torch.manual_seed(seed)
    return build(spec).eval()


def pix2pix_dir(folder: Path, g_spec: ArchSpec = RESNET) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(_net(g_spec, 0).state_dict(), folder / "latest_net_G.pth")
    torch.save(_net(COND_D, 1).state_dict(), folder / "latest_net_D.pth")
    return folder


def cyclegan_dir(folder: Path, partner: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(_net(RESNET, 0).state_dict(), folder / "latest_net_G_A.pth")
    torch.save(_net(CYCLE_D, 1).state_dict(), folder / "latest_net_D_A.pth")
    if partner:
        torch.save(_net(RESNET, 2).state_dict(), folder / "latest_net_G_B.pth")
        torch.save(_net(CYCLE_D, 3).state_dict(), folder / "latest_net_D_B.pth")
    return folder


def esrgan_dir(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"params_ema": _net(RRDB, 0).state_dict()}, folder / "net_g.pth")
    torch.save({"params": _net(SN_D, 1).state_dict()}, folder / "net_d.pth")
    return folder
