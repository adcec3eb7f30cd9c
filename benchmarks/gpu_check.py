#!/usr/bin/env python
"""GPU check: step time of each recovery method vs a plain GAN step, per --amp mode and speed option.

pix2pix ResNet-9 generator (ngf 64) and a 70x70 PatchGAN (ndf 64, BatchNorm) at 256x256, random
weights and random images (speed does not depend on either), the generator pruned 50% (element).
The plain step is an ordinary alternating GAN step (lsgan: D on real and detached fakes -> D
step, then D on fakes -> G step); the methods' steps are gancompress's own (``finetune.step``)
with the same autocast, gradient scaler (fp16), memory format and ``torch.compile`` wrapper as
``finetune --amp/--channels-last/--compile``. Prints a markdown table: median ms, ratio to the
plain step of the same variant (the target is <= 1.3x), steps/s. ``benchmarks/gpu_check.sh``
runs it on a CUDA GPU (under 5 minutes with the defaults).

    python benchmarks/gpu_check.py [--modes none,bf16,fp16] [--batch-size 4] [--repeats 10]
"""
from __future__ import annotations

import argparse
import copy
import sys
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gancompress.archs.pix2pix import NLayerDiscriminator, ResnetGenerator  # noqa: E402
from gancompress.data.batches import StepData  # noqa: E402
from gancompress.devices import autocast, batch_channels_last, enable_tf32, grad_scaler, maybe_compile, to_channels_last  # noqa: E402
from gancompress.finetune.defaults import DEFAULT_ADV_WEIGHT  # noqa: E402
from gancompress.finetune.step import StepOptions, backward_and_step, compute_losses  # noqa: E402
from gancompress.losses import make_loss  # noqa: E402
from gancompress.prune import PruneConfig, apply_masks, compute_masks  # noqa: E402
from finetune_step import timed  # noqa: E402  (median ms per step, round-robin)

METHODS = ("distill-adv", "finetune", "self-supervised", "hybrid", "distill")
PLAIN = "plain GAN step"


def plain_step(g, d, opt_g, opt_d, x, real, amp, scaler):
    scale = scaler.scale if scaler is not None else (lambda t: t)
    with amp():
        fake = g(x)
        d_loss = ((d(real).float() - 1) ** 2).mean() + (d(fake.detach()).float() ** 2).mean()
    opt_d.zero_grad(set_to_none=True)
    scale(d_loss).backward()
    scaler.step(opt_d) if scaler is not None else opt_d.step()
    with amp():
        g_loss = ((d(fake).float() - 1) ** 2).mean()
    opt_g.zero_grad(set_to_none=True)
    scale(g_loss).backward()
    scaler.step(opt_g) if scaler is not None else opt_g.step()
    if scaler is not None:
        scaler.update()


def method_step(method, teacher, g, d, opt_g, opt_d, x, real, masks, amp, scaler):
    trains_d = method != "distill"
    opts = StepOptions(method, 0.5, 1.0, train_d=trains_d, autocast=amp, adv_weight=DEFAULT_ADV_WEIGHT)
    losses = compute_losses(teacher, g, d, StepData(x, real), make_loss("lsgan"), opts, 0)
    backward_and_step(losses, g, d if trains_d else None, opt_g, opt_d if trains_d else None, masks, scaler)


def variant_steps(args, device, mode: str, channels_last: bool, compiled: bool, notes: list[str]) -> dict:
    torch.manual_seed(0)
    g = ResnetGenerator(3, 3, args.ngf, 9).to(device)
    d = NLayerDiscriminator(3, args.ndf, 3).to(device).train()
    masks = {k: v.to(device) for k, v in compute_masks(g, PruneConfig(0.5)).items()}
    apply_masks(g, masks)
    x = batch_channels_last(torch.rand(args.batch_size, 3, args.size, args.size, device=device) * 2 - 1, channels_last)
    real = batch_channels_last(torch.rand(args.batch_size, 3, args.size, args.size, device=device) * 2 - 1, channels_last)
    teacher = to_channels_last(copy.deepcopy(g).eval().requires_grad_(False), channels_last)
    amp = autocast(mode, device)
    fns = {}
    for name in (PLAIN, *METHODS):
        gg, dd = to_channels_last(copy.deepcopy(g), channels_last), to_channels_last(copy.deepcopy(d), channels_last)
        opt_g = torch.optim.Adam(gg.parameters(), 2e-4, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(dd.parameters(), 2e-4, betas=(0.5, 0.999))
        gg_run, dd_run = maybe_compile(gg, "G", compiled, notes), maybe_compile(dd, "D", compiled, notes)
        scaler = grad_scaler(mode, device)
        if name == PLAIN:
            fns[name] = partial(plain_step, gg_run, dd_run, opt_g, opt_d, x, real, amp, scaler)
        else:
            t_run = maybe_compile(teacher, "G_O", compiled, notes)
            fns[name] = partial(method_step, name, t_run, gg_run, dd_run, opt_g, opt_d, x, real, masks, amp, scaler)
    return fns


def table(results: dict[str, dict[str, float]]) -> list[str]:
    """Markdown rows: variant, step, ms, ratio to that variant's plain GAN step, steps/s."""
    lines = ["| variant | step | ms | vs plain GAN step | steps/s |", "|---|---|---:|---:|---:|"]
    for variant, rows in results.items():
        base = rows[PLAIN]
        for name, ms in rows.items():
            lines.append(f"| {variant} | {name} | {ms:.1f} | {ms / base:.2f}x | {1000 / ms:.2f} |")
    return lines


def variants(modes: list[str], compiled: bool = True) -> list[tuple[str, str, bool, bool]]:
    out = [(f"amp {m}", m, False, False) for m in modes]
    best = "bf16" if "bf16" in modes else modes[0]
    out.append((f"amp {best} + channels-last", best, True, False))
    if compiled:
        out.append((f"amp {best} + channels-last + compile", best, True, True))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--modes", default="none,bf16,fp16")
    ap.add_argument("--no-compile", action="store_true", help="leave out the torch.compile row (its compilation takes minutes)")
    sizes = {"size": 256, "batch-size": 4, "ngf": 64, "ndf": 64, "warmup": 3, "repeats": 10}
    for name, default in sizes.items():
        ap.add_argument(f"--{name}", type=int, default=default)
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU here; run it on a machine with one (or pass --device cpu with tiny sizes "
              "to check the script)", file=sys.stderr)
        return 2
    enable_tf32(device)
    notes: list[str] = []
    results = {name: timed(variant_steps(args, device, mode, cl, comp, notes), device, args.warmup, args.repeats)
               for name, mode, cl, comp in variants(args.modes.split(","), not args.no_compile)}
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"pix2pix ResNet-9 (ngf {args.ngf}) + PatchGAN (ndf {args.ndf}) at {args.size}px, batch {args.batch_size}, "
          f"{gpu}, torch {torch.__version__}, median of {args.repeats}\n")
    print("\n".join(table(results)))
    for note in dict.fromkeys(notes):
        print(f"\nnote: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
