"""Does memory stay flat as a training folder grows? Peak RSS of streaming 2,000 vs 50,000 images.

For each count, small random PNGs (``--px`` square, RGB) are written to a temporary folder, then
a fresh Python process streams ``--steps`` batches from it exactly as ``finetune`` does (a lazily
decoding ``ImageFolder`` and the step ``Sampler`` with ``--workers`` DataLoader processes) and
reports its peak RSS (``ru_maxrss``) and the largest worker's. Target: the largest count's peak
within 10% of the smallest's. Prints a markdown table.

``--kind paired``: side-by-side pix2pix pairs (``--px`` x 2 ``--px``) streamed as image-to-image
training reads them (headers at load, random ``--size`` crops of both halves by the ``CropSampler``).

    python benchmarks/data_memory.py [--counts 2000 50000] [--steps 100] [--batch-size 64] [--workers 2] [--kind paired]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_folder(root: Path, count: int, px: int, kind: str = "noise") -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(count)
    width = 2 * px if kind == "paired" else px  # side-by-side A|B
    for i in range(count):
        sub = root / f"{i // 1000:03d}"
        sub.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (px, width, 3), dtype=np.uint8)).save(sub / f"{i:06d}.png")


def _sampler(folder: str, kind: str, batch_size: int, workers: int, size: int):
    """The sampler ``finetune`` streams ``folder`` with, and the count of images it found."""
    import torch

    if kind == "paired":
        from gancompress.data.pairs import CropSampler, load_paired

        data = load_paired(folder, 3, 3)
        sampler = CropSampler(0, batch_size, data, size, (-1.0, 1.0), workers=workers)
        sampler.place(torch.device("cpu"))
        return sampler, data.n
    from gancompress.data.batches import Sampler
    from gancompress.data.stream import open_real

    real = open_real(folder, size=size, channels=3)
    return Sampler(0, batch_size, "noise", (16,), real, workers=workers), len(real)


def child(folder: str, steps: int, batch_size: int, workers: int, size: int, kind: str) -> None:
    import resource

    import torch

    torch.set_num_threads(1)
    loaded = time.perf_counter()
    sampler, count = _sampler(folder, kind, batch_size, workers, size)
    load_s = time.perf_counter() - loaded
    start = time.perf_counter()
    for step in range(steps):
        sampler.draw(step, torch.device("cpu"))
    seconds = time.perf_counter() - start
    sampler.stream = None
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    worker_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"images": count, "peak_mib": kib / 1024, "worker_peak_mib": worker_kib / 1024,
                      "batches_per_s": steps / seconds, "load_s": load_s}))


def measure(count: int, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        make_folder(Path(tmp), count, args.px, args.kind)
        made = time.perf_counter() - t
        cmd = [sys.executable, __file__, "--child", tmp, "--steps", str(args.steps), "--batch-size", str(args.batch_size),
               "--workers", str(args.workers), "--size", str(args.size), "--kind", args.kind]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        row = json.loads(out.stdout.strip().splitlines()[-1])
    return {**row, "make_s": made}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", type=int, nargs="+", default=[2000, 50000])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--px", type=int, default=32, help="side of the generated images")
    ap.add_argument("--size", type=int, default=32, help="training resolution")
    ap.add_argument("--kind", choices=("noise", "paired"), default="noise",
                    help="noise: a folder of real images (noise GANs); paired: side-by-side A|B pairs (pix2pix)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.steps, args.batch_size, args.workers, args.size, args.kind)
    rows = [measure(n, args) for n in args.counts]
    base = rows[0]["peak_mib"]
    what = f"{args.px}x{2 * args.px} side-by-side pairs, {args.size} px crops" if args.kind == "paired" else \
        f"{args.px} px PNGs at {args.size} px"
    print(f"streaming {args.steps} batches of {args.batch_size} ({what}, {args.workers} workers)\n")
    print("| images | peak RSS (MiB) | vs smallest | largest worker peak (MiB) | batches/s | load s |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['images']:,} | {r['peak_mib']:.0f} | {r['peak_mib'] / base:.3f}x | {r['worker_peak_mib']:.0f} | "
              f"{r['batches_per_s']:.1f} | {r['load_s']:.1f} |")


if __name__ == "__main__":
    main()
