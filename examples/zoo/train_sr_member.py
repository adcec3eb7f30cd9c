#!/usr/bin/env python
"""Train the zoo's x2 super-resolution member on scikit-image's sample photographs until PSNR stops improving.

``zoo_nets:SRGenerator`` (residual blocks, one pixel shuffle, a bilinear skip; images in [0, 1])
and ``zoo_nets:SRDiscriminator`` (spectral-norm patch D). Low-resolution inputs are made exactly
as gancompress makes them (``gancompress.data.pairs.Degradation(2)``: bicubic x1/2 with
antialiasing). Loss: L1 to the high-resolution crop + ``--adv-weight`` x the non-saturating GAN
loss. Every ``--eval-every`` steps the PSNR (and SSIM, logged) on the held-out photographs is
measured on the central 256x256 of each; the best G and D go to ``--out`` (default ``runs/zoo/members/sr-x2.safetensors``)
with the curve beside it (the score column is minus PSNR).

``--write-photos DIR`` also writes the training and held-out photographs as PNG folders
(``DIR/train``, ``DIR/heldout``) for ``gancompress finetune --data`` / ``evaluate --data``;
with ``--photos-only`` it writes them in seconds and trains nothing (what ``benchmarks/zoo.py
--photos DIR`` needs for the committed member).

    OMP_NUM_THREADS=1 python examples/zoo/train_sr_member.py --write-photos runs/zoo/photos
    python examples/zoo/train_sr_member.py --photos-only --write-photos runs/zoo/photos
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from gancompress.errors import InputError

import zoo_train
from zoo_train import REPO, Task

TRAIN = ("astronaut", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "moon", "brick", "grass",
         "gravel", "coins", "page", "text")
HELDOUT = ("camera", "coffee", "clock")


def photos(names: tuple[str, ...], center: int | None = None) -> list[torch.Tensor]:
    """scikit-image sample photographs as (3, H, W) float tensors in [0, 1] (grey ones repeated), sides even;
    ``center``: only the central ``center x center`` window."""
    import skimage.data

    out = []
    for name in names:
        im = np.asarray(getattr(skimage.data, name)(), dtype=np.float32) / 255.0
        im = np.repeat(im[..., None], 3, axis=2) if im.ndim == 2 else im[..., :3]
        t = torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1)
        if center:
            top, left = (t.shape[1] - center) // 2, (t.shape[2] - center) // 2
            t = t[:, top:top + center, left:left + center]
        out.append(t[:, :t.shape[1] // 2 * 2, :t.shape[2] // 2 * 2])
    return out


def crops(images: list[torch.Tensor], batch: int, size: int, gen: torch.Generator) -> torch.Tensor:
    picks = torch.randint(len(images), (batch,), generator=gen).tolist()
    out = []
    for i in picks:
        _, h, w = images[i].shape
        top = int(torch.randint(h - size + 1, (1,), generator=gen))
        left = int(torch.randint(w - size + 1, (1,), generator=gen))
        out.append(images[i][:, top:top + size, left:left + size])
    return torch.stack(out)


def sr_task(train: list[torch.Tensor], heldout: list[torch.Tensor], crop: int, log) -> Task:
    from gancompress.data.pairs import Degradation
    from gancompress.metrics.similarity import psnr, ssim

    down = Degradation(2)
    lows = [down(h[None], (0.0, 1.0)) for h in heldout]

    def real(batch: int, gen: torch.Generator):
        return crops(train, batch, crop, gen), None

    def inputs(batch: int, gen: torch.Generator):
        hr = crops(train, batch, crop, gen)
        return down(hr, (0.0, 1.0)), None, hr

    def score(g) -> float:
        outs = [g(lo) for lo in lows]
        value = float(np.mean([psnr(o, h[None], 1.0) for o, h in zip(outs, heldout)]))
        log(f"  held-out PSNR {value:.3f} dB, SSIM {np.mean([ssim(o, h[None], 1.0) for o, h in zip(outs, heldout)]):.4f}")
        return -value
    return Task(real=real, inputs=inputs, score=score)


def write_photos(folder: Path) -> None:
    from PIL import Image

    for part, names in (("train", TRAIN), ("heldout", HELDOUT)):
        (folder / part).mkdir(parents=True, exist_ok=True)
        for name, im in zip(names, photos(names)):
            Image.fromarray((im.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(folder / part / f"{name}.png")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--nf", type=int, default=32)
    p.add_argument("--blocks", type=int, default=4)
    p.add_argument("--crop", type=int, default=48, help="high-resolution training crop (even)")
    p.add_argument("--out", type=Path, default=None, help="default: runs/zoo/members/sr-x2.safetensors "
                   "(runs/zoo/continued/ with --continue-from)")
    p.add_argument("--write-photos", type=Path, default=None)
    p.add_argument("--photos-only", action="store_true",
                   help="write the --write-photos folders and stop, without training (benchmarks/zoo.py needs them "
                        "for the committed member, examples/zoo/members/sr-x2.safetensors)")
    zoo_train.loop_arguments(p, batch=16, lr_g=1e-4, lr_d=1e-4, r1_gamma=0.0, adv_weight=0.01, eval_every=250,
                             max_steps=8000, min_delta=0.002, lr_decays=2)
    p.add_argument("--heldout-crop", type=int, default=256, help="score on the central window of each held-out photo")
    args = p.parse_args(argv)
    if args.write_photos is not None and args.write_photos.exists() and not args.write_photos.is_dir():
        raise InputError(f"--write-photos {args.write_photos} is a file: give a folder (train/ and heldout/ go in it)")
    if args.photos_only:
        if args.write_photos is None:
            raise InputError("--photos-only writes the photographs and stops: give the folder with --write-photos DIR")
        write_photos(args.write_photos)
        return 0
    args.out = args.out or REPO / "runs" / "zoo" / ("continued" if args.continue_from else "members") / "sr-x2.safetensors"
    if args.out.exists() and not args.force:
        p.error(f"{args.out} exists; pass --force to overwrite it (or choose --out)")
    torch.set_num_threads(args.threads)
    cfg = zoo_train.loop_config(args)
    torch.manual_seed(cfg.seed)
    import zoo_nets

    g_kw, d_kw = {"nf": args.nf, "blocks": args.blocks, "patch": args.crop // 2}, {"ndf": 32}
    g, d = zoo_nets.SRGenerator(**g_kw), zoo_nets.SRDiscriminator(**d_kw)
    task = sr_task(photos(TRAIN), photos(HELDOUT, args.heldout_crop), args.crop, log=lambda line: print(line, flush=True))
    print(f"sr-x2: G {sum(t.numel() for t in g.parameters()):,} params, D {sum(t.numel() for t in d.parameters()):,}; {cfg}")
    provenance = zoo_train.train_member(g, d, task, cfg, args.continue_from,
                                        ("zoo_nets:SRGenerator", "zoo_nets:SRDiscriminator"), keep_zeros=args.keep_zeros)
    provenance.update(member="sr-x2", script="examples/zoo/train_sr_member.py", train_photos=list(TRAIN),
                      heldout_photos=list(HELDOUT), heldout_crop=args.heldout_crop, degradation="gancompress.data.pairs.Degradation(2)",
                      metric="minus the mean PSNR (dB) on the held-out photographs")
    g_spec = zoo_train.custom_spec("zoo_nets:SRGenerator", g_kw)
    d_spec = zoo_train.custom_spec("zoo_nets:SRDiscriminator", d_kw, "discriminator")
    zoo_train.finish(g, g_spec, d, d_spec, provenance, args.out, "-PSNR (dB)", force=args.force)
    if args.write_photos:
        write_photos(args.write_photos)
    return 0


if __name__ == "__main__":
    raise SystemExit(zoo_train.cli(main))
