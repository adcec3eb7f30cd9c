#!/usr/bin/env python
"""Image-to-image costs on the CPU: per-step fine-tuning time, evaluate latency, dense vs shrunk.

Full-size public architectures with random weights (pytorch-CycleGAN-and-pix2pix and BasicSR
layouts, as the loaders build them):

- ``pix2pix-resnet``: resnet_9blocks (ngf 64, instance norm) + conditional PatchGAN (ndf 64, 3 layers);
- ``pix2pix-unet``: unet_256 (ngf 64, batch norm) + conditional PatchGAN; crops must be 256;
- ``cyclegan``: resnet_9blocks + unconditional PatchGAN + the frozen opposite generator
  (adversarial, two cycle and identity terms);
- ``sr``: RRDBNet x4 (23 blocks, 64 features) + UNetDiscriminatorSN; crop = high-resolution side.

Fine-tuning step: gancompress's own self-supervised step (``finetune.step``: teacher and student
on the same crops, D on both, L_GC + lambda L_DC, simultaneous G/D updates, masks re-applied) at
50% element sparsity, batch ``--batch-size``, median over ``--repeats`` after one warm-up.
Evaluate latency: batch-1 forward at the model's real resolution (256x256 for pix2pix/CycleGAN,
128x128 -> 512x512 for RRDBNet x4). Dense vs shrunk: the ResNet generator at 50% filter sparsity,
shrunk by ``export.shrink.shrink_generator`` (reported as n/a when it cannot shrink the model).

    python benchmarks/img2img.py                  # all profiles, 1 thread
    python benchmarks/img2img.py --threads 2 --only pix2pix-resnet,sr
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gancompress.archs import ArchSpec, build  # noqa: E402
from gancompress.data.pairs import Degradation  # noqa: E402
from gancompress.data.batches import StepData  # noqa: E402
from gancompress.finetune.step import StepOptions, backward_and_step, compute_losses  # noqa: E402
from gancompress.losses import make_loss  # noqa: E402
from gancompress.prune import PruneConfig, apply_masks, compute_masks  # noqa: E402

RESNET = ArchSpec("pix2pix-resnet-g", {"input_nc": 3, "output_nc": 3, "ngf": 64, "n_blocks": 9, "norm": "instance",
                                       "use_dropout": False})
UNET = ArchSpec("pix2pix-unet-g", {"input_nc": 3, "output_nc": 3, "num_downs": 8, "ngf": 64, "norm": "batch",
                                   "use_dropout": False})
PATCH_COND = ArchSpec("patchgan-d", {"input_nc": 6, "ndf": 64, "n_layers": 3, "norm": "batch"})
PATCH = ArchSpec("patchgan-d", {"input_nc": 3, "ndf": 64, "n_layers": 3, "norm": "instance"})
RRDB = ArchSpec("rrdbnet-g", {"num_in_ch": 3, "num_out_ch": 3, "scale": 4, "num_feat": 64, "num_block": 23,
                              "num_grow_ch": 32})
SN_D = ArchSpec("unet-sn-d", {"num_in_ch": 3, "num_feat": 64, "skip_connection": True})

# name: (generator, discriminator, loss, conditional, default crop (output px), scale, native input side)
PROFILES = {
    "pix2pix-resnet": (RESNET, PATCH_COND, "pix2pix", True, 64, 1, 256),
    "pix2pix-unet": (UNET, PATCH_COND, "pix2pix", True, 256, 1, 256),
    "cyclegan": (RESNET, PATCH, "cyclegan", False, 64, 1, 256),
    "sr": (RRDB, SN_D, "sr", False, 64, 4, 128),
}


def median_ms(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


def step_time(name: str, crop: int, batch: int, repeats: int) -> float:
    g_spec, d_spec, loss, conditional, _, scale, _ = PROFILES[name]
    torch.manual_seed(0)
    teacher, d = build(g_spec).eval(), build(d_spec)
    student = copy.deepcopy(teacher)
    masks = compute_masks(student, PruneConfig(0.5))
    apply_masks(student, masks)
    teacher.requires_grad_(False)
    profile = make_loss(loss)
    if loss == "cyclegan":
        profile.partner = build(g_spec).eval().requires_grad_(False)
    lo, hi = (0.0, 1.0) if name == "sr" else (-1.0, 1.0)
    real = torch.rand(batch, 3, crop, crop) * (hi - lo) + lo
    x = Degradation(scale)(real, (lo, hi)) if scale > 1 else torch.rand(batch, 3, crop, crop) * 2 - 1
    opts = StepOptions("self-supervised", 0.5, 0.0, True, conditional=conditional, image_terms=True)
    opt_g = torch.optim.Adam(student.parameters(), lr=1e-4)
    opt_d = torch.optim.Adam(d.parameters(), lr=1e-4)

    def one() -> None:
        batch_data = StepData(x, real.clone(), x if conditional else None)
        losses = compute_losses(teacher, student, d, batch_data, profile, opts, 0)
        backward_and_step(losses, student, d, opt_g, opt_d, masks)

    return median_ms(one, repeats)


@torch.no_grad()
def latency(model: torch.nn.Module, side: int, repeats: int) -> float:
    x = torch.rand(1, 3, side, side)
    model.eval()
    return median_ms(lambda: model(x), repeats)


def shrunk_latency(repeats: int) -> dict:
    from gancompress.export.shrink import shrink_generator

    torch.manual_seed(0)
    dense = build(RESNET).eval()
    pruned = copy.deepcopy(dense)
    apply_masks(pruned, compute_masks(pruned, PruneConfig(0.5, granularity="filter")))
    out = {"dense_ms": latency(dense, 256, repeats), "masked_ms": latency(pruned, 256, repeats)}
    try:
        small, _, _ = shrink_generator(pruned, RESNET)
        out["shrunk_ms"] = latency(small, 256, repeats)
        out["shrunk_params"] = sum(p.numel() for p in small.parameters())
    except Exception as exc:  # noqa: BLE001 - reported, not fatal
        out["shrunk_ms"] = None
        out["shrunk_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
    out["dense_params"] = sum(p.numel() for p in dense.parameters())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(PROFILES), help="comma-separated profiles")
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--crop", type=int, default=None, help="override every profile's crop (output pixels)")
    ap.add_argument("--no-shrink", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.only.split(","):
        g_spec, _, _, _, crop, scale, side = PROFILES[name]
        crop = args.crop or crop
        step = step_time(name, crop, args.batch_size, args.repeats)
        torch.manual_seed(0)
        lat = latency(build(g_spec), side, args.repeats)
        rows.append({"profile": name, "crop": crop, "batch": args.batch_size, "step_ms": round(step, 1),
                     "latency_input": f"{side}x{side}", "latency_ms": round(lat, 1)})
        print(f"{name}: step {step:.0f} ms at crop {crop}, latency {lat:.0f} ms at {side}x{side} input", flush=True)
    doc = {"threads": args.threads, "rows": rows}
    print("\n| profile | crop (out px) | batch | fine-tune step ms | evaluate latency (input) | latency ms |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['profile']} | {r['crop']} | {r['batch']} | {r['step_ms']} | {r['latency_input']} | {r['latency_ms']} |")
    if not args.no_shrink:
        doc["resnet_filter50"] = shrunk_latency(args.repeats)
        print("\nResNet generator, 50% filter sparsity, 256x256:", json.dumps(doc["resnet_filter50"]))
    if args.json:
        args.json.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
