#!/usr/bin/env python
"""Train the digits classifier that ``--extractor digits`` uses as its FID feature extractor.

Trains :class:`gancompress.metrics.digits_classifier.DigitsClassifier` on scikit-learn's
1,797 digits at 16x16 (a fixed 80/20 split from ``gancompress.data.digits.digits_split``),
with light augmentation (small random shifts, rotations and scalings), reports the held-out
accuracy and writes the weights to ``gancompress/assets/digits_classifier.safetensors``.

    python examples/train_digits_extractor.py            # about a minute on 2 CPU cores
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gancompress.data.digits import digits_images, digits_labels, digits_split  # noqa: E402
from gancompress.io_utils import atomic_write  # noqa: E402
from gancompress.metrics.digits_classifier import DigitsClassifier  # noqa: E402

DEFAULT_OUT = REPO / "gancompress" / "assets" / "digits_classifier.safetensors"


def augment(x: torch.Tensor, gen: torch.Generator, shift: float, degrees: float, scale: float) -> torch.Tensor:
    """Random affine jitter; the background (-1) is what comes in from outside the image."""
    n = x.shape[0]
    ang = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(degrees)
    s = 1 + (torch.rand(n, generator=gen) * 2 - 1) * scale
    t = (torch.rand(n, 2, generator=gen) * 2 - 1) * (2 * shift / x.shape[-1])  # pixels -> [-1,1] units
    cos, sin = torch.cos(ang) / s, torch.sin(ang) / s
    theta = torch.stack([torch.stack([cos, -sin, t[:, 0]], 1), torch.stack([sin, cos, t[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x + 1, grid, mode="bilinear", padding_mode="zeros", align_corners=False) - 1


@torch.no_grad()
def accuracy(model: DigitsClassifier, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return (model(x).argmax(1) == y).float().mean().item()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the 80/20 train/test split (default 0)")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--feature-dim", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--force", action="store_true", help="overwrite existing outputs (the bundled files by default)")
    args = p.parse_args(argv)
    existing = [str(o) for o in (args.out,) if o.exists()]
    if existing and not args.force:
        p.error(f"{', '.join(existing)} already exist(s); pass --force to overwrite (or choose --out)")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    x_all, y_all = digits_images(16), digits_labels()
    tr, te = digits_split(seed=args.split_seed, test_fraction=0.2)
    x_tr, y_tr, x_te, y_te = x_all[tr], y_all[tr], x_all[te], y_all[te]
    print(f"digits: {len(tr)} train / {len(te)} test at 16x16")

    model = DigitsClassifier(width=args.width, feature_dim=args.feature_dim)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    steps_per_epoch = math.ceil(len(tr) / args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch)
    t0 = time.time()
    for epoch in range(1, args.epochs + 1):
        model.train()
        perm = torch.randperm(len(tr), generator=gen)
        total = 0.0
        for i in range(0, len(tr), args.batch):
            idx = perm[i:i + args.batch]
            xb = augment(x_tr[idx], gen, shift=1.5, degrees=10, scale=0.1)
            loss = F.cross_entropy(model(xb), y_tr[idx], label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        if epoch % 10 == 0 or epoch == args.epochs:
            print(f"epoch {epoch:3d}  loss {total / len(tr):.4f}  train-acc {accuracy(model, x_tr, y_tr):.4f}  "
                  f"test-acc {accuracy(model, x_te, y_te):.4f}  ({time.time() - t0:.0f}s)")

    test_acc = accuracy(model, x_te, y_te)
    n_params = sum(p.numel() for p in model.parameters())
    meta = {
        "model": "DigitsClassifier",
        "kwargs": json.dumps({"width": args.width, "feature_dim": args.feature_dim}),
        "feature_dim": str(args.feature_dim),
        "test_accuracy": f"{test_acc:.4f}",
        "seed": str(args.seed),
        "split": json.dumps({"function": "gancompress.data.digits.digits_split", "seed": args.split_seed,
                             "test_fraction": 0.2, "n_train": len(tr), "n_test": len(te)}),
        "training": json.dumps({"epochs": args.epochs, "batch": args.batch, "lr": args.lr, "optimizer": "AdamW",
                                "augment": "affine shift<=1.5px rot<=10deg scale+-10%", "input": "16x16 [-1,1]"}),
        "params": str(n_params),
    }
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    atomic_write(args.out, lambda tmp: save_file(tensors, str(tmp), metadata=meta), force=args.force)
    print(f"test accuracy {test_acc:.4f} ({len(te)} held-out digits); {n_params} params; "
          f"{time.time() - t0:.0f}s; wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
