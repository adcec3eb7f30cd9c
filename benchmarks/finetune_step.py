#!/usr/bin/env python
"""Wall time of one fine-tuning step per method vs one ordinary (alternating) GAN step.

Same generator, discriminator and batch for every row: PyTorch's DCGAN at 64x64 (default
ngf = ndf = 32, nz 100, batch 32; D with BatchNorm and Sigmoid, the ``ns`` profile on
probabilities). The plain step is the DCGAN example's: D(real), D(fake.detach()) -> D step,
then D(fake) -> G step. The methods' steps are gancompress's own (``finetune.step``): D(real)
and D(student's fakes) once each with autograd, the teacher's fakes through D under no_grad
(reference values only), simultaneous G/D updates, masks applied. Prints a markdown table
(median ms over ``--repeats`` after ``--warmup``) and the ratios. On a shared CPU machine use
``--threads 1 --clock cpu`` and compare ratios, not milliseconds.

    python benchmarks/finetune_step.py                       # CPU
    python benchmarks/finetune_step.py --device cuda --amp   # bf16 autocast on a GPU
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from contextlib import nullcontext
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gancompress.archs.dcgan import DCGANDiscriminator, DCGANGenerator  # noqa: E402
from gancompress.data.batches import StepData  # noqa: E402
from gancompress.finetune.defaults import DEFAULT_ADV_WEIGHT  # noqa: E402
from gancompress.finetune.step import StepOptions, backward_and_step, compute_losses  # noqa: E402
from gancompress.losses import make_loss  # noqa: E402
from gancompress.prune import PruneConfig, apply_masks, compute_masks  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fns: dict, device, warmup: int, repeats: int, clock=time.perf_counter) -> dict[str, float]:
    """Median ms per function, measured round-robin so machine load hits every row alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync(device)
            start = clock()
            fn()
            sync(device)
            times[name].append(clock() - start)
    return {name: statistics.median(t) * 1000 for name, t in times.items()}


def plain_step(g, d, opt_g, opt_d, z, real, autocast):
    """The DCGAN example's alternating step (BCE on probabilities)."""
    with autocast():
        fake = g(z)
        p_real, p_fake = d(real).float(), d(fake.detach()).float()
        d_loss = F.binary_cross_entropy(p_real, torch.ones_like(p_real)) + F.binary_cross_entropy(p_fake, torch.zeros_like(p_fake))
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_d.step()
    with autocast():
        p = d(fake).float()
        g_loss = F.binary_cross_entropy(p, torch.ones_like(p))
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()


def method_step(method, teacher, g, d, opt_g, opt_d, z, real, masks, autocast):
    opts = StepOptions(method, 0.5, 1.0, train_d=method != "distill", autocast=autocast, adv_weight=DEFAULT_ADV_WEIGHT)
    losses = compute_losses(teacher, g, d, StepData(z, real), make_loss("ns", d_output="probs"), opts, 0)
    backward_and_step(losses, g, d if method != "distill" else None, opt_g, opt_d if method != "distill" else None, masks)


def build(args, device):
    torch.manual_seed(0)
    ngf, ndf, nz = args.ngf, args.ndf, 100
    g = DCGANGenerator([nz, ngf * 8, ngf * 4, ngf * 2, ngf, 3]).to(device)
    d = DCGANDiscriminator([3, ndf, ndf * 2, ndf * 4, ndf * 8, 1]).to(device).train()
    teacher = copy.deepcopy(g).eval().requires_grad_(False)
    masks = {k: v.to(device) for k, v in compute_masks(g, PruneConfig(args.sparsity)).items()}
    apply_masks(g, masks)
    z = torch.randn(args.batch_size, nz, 1, 1, device=device)
    real = torch.rand(args.batch_size, 3, 64, 64, device=device) * 2 - 1
    return g, d, teacher, masks, z, real


def run(args) -> dict:
    device = torch.device(args.device)
    autocast = partial(torch.autocast, device_type="cuda", dtype=torch.bfloat16) if args.amp and device.type == "cuda" else nullcontext
    g, d, teacher, masks, z, real = build(args, device)
    fns = {}
    for name in ("plain GAN step", "finetune", "self-supervised", "hybrid", "distill-adv", "distill"):
        gg, dd = copy.deepcopy(g).eval(), copy.deepcopy(d)
        opt_g = torch.optim.Adam(gg.parameters(), 2e-4, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(dd.parameters(), 2e-4, betas=(0.5, 0.999))
        if name == "plain GAN step":
            fns[name] = partial(plain_step, gg.train(), dd, opt_g, opt_d, z, real, autocast)
        else:
            fns[name] = partial(method_step, name, teacher, gg, dd, opt_g, opt_d, z, real, masks, autocast)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    return timed(fns, device, args.warmup, args.repeats, clock)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--amp", action="store_true")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--ngf", type=int, default=32)
    ap.add_argument("--ndf", type=int, default=32)
    ap.add_argument("--sparsity", type=float, default=0.5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="cpu: process CPU time (steadier on a shared CPU machine; CPU runs only)")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = run(args)
    base = rows["plain GAN step"]
    print(f"DCGAN 64x64, ngf={args.ngf} ndf={args.ndf}, batch {args.batch_size}, device {args.device}"
          f"{' bf16' if args.amp else ''}, {args.clock} clock, torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats}\n")
    print("| step | ms | vs plain GAN step |\n|---|---:|---:|")
    for name, ms in rows.items():
        print(f"| {name} | {ms:.1f} | {ms / base:.2f}x |")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "ms": rows}, indent=2))


if __name__ == "__main__":
    main()
