#!/usr/bin/env python
"""StyleGAN2 (config F, random weights): size, MACs and speed dense vs filter-pruned and shrunk.

For the generator at ``--size`` (default 256 px, config F widths, style dim 512, 8 mapping
layers): parameters, MACs per sample (torch's FlopCounterMode; the masked rows count the
dense MACs a dense kernel still does, the shrunk rows what the thinner network does) and
median batch-1 latency, dense and at 50% / 75% filter sparsity of the synthesis convs
(L2-norm filters; readers masked; ``export --format shrunk``'s cut, checked against the
masked generator). Mapping network and ToRGB stay dense, as by default.

With ``--steps`` (by default only on a GPU) it also times one recovery step per method
(``finetune.step``: teacher and student on the same z and stored noise, D with R1 on this
step, i.e. the lazy-R1 step's cost) against one plain StyleGAN2 step (D on real and fake
with the non-saturating loss, then G; no regularisers) at ``--batch-size``.

    python benchmarks/stylegan2.py                          # CPU: table only
    python benchmarks/stylegan2.py --device cuda --amp      # + step times on a GPU
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from contextlib import nullcontext
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from finetune_step import timed  # noqa: E402
from gancompress.archs.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator  # noqa: E402
from gancompress.data.batches import StepData  # noqa: E402
from gancompress.finetune.defaults import DEFAULT_ADV_WEIGHT  # noqa: E402
from gancompress.finetune.step import StepOptions, backward_and_step, compute_losses  # noqa: E402
from gancompress.losses import make_loss  # noqa: E402
from gancompress.metrics.cost import count_macs  # noqa: E402
from gancompress.prune import PruneConfig, apply_masks, compute_masks  # noqa: E402

METHODS = ("finetune", "self-supervised", "hybrid", "distill-adv", "distill")
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def pruned_pair(g: StyleGAN2Generator, sparsity: float) -> tuple[StyleGAN2Generator, StyleGAN2Generator, dict]:
    """(masked, shrunk, masks) at ``sparsity`` filter sparsity; the shrunk one checked against the masked."""
    masked = copy.deepcopy(g)
    masks = compute_masks(masked, PruneConfig(sparsity, granularity="filter"))
    apply_masks(masked, masks)
    kwargs = {"size": g.size, "style_dim": g.style_dim, "n_mlp": len(g.style) - 1}
    small = masked.shrunk_copy(kwargs)[0].eval()
    z = torch.randn(2, g.style_dim, device=g.latent_avg.device)
    with torch.no_grad():
        a, b = masked(z), small(z)
    err = float((a - b).abs().max())
    assert err <= 1e-4 * (1 + float(a.abs().max())), f"shrunk differs from masked by {err}"
    return masked, small, masks


def latency_ms(g, device, repeats: int, warmup: int, clock=time.perf_counter) -> float:
    z = torch.randn(1, g.style_dim, device=device)
    with torch.no_grad():
        return timed({"g": lambda: g(z)}, device, warmup, repeats, clock)["g"]


def size_rows(args, device) -> list[dict]:
    torch.manual_seed(0)
    g = StyleGAN2Generator(args.size).to(device).eval()
    rows = [("dense", g)]
    for s in (0.5, 0.75):
        masked, small, _ = pruned_pair(g, s)
        rows += [(f"filter {s:.0%} masked", masked), (f"filter {s:.0%} shrunk", small)]
    out = []
    for name, model in rows:
        macs = count_macs(model, (model.style_dim,))
        out.append({"model": name, "params": sum(p.numel() for p in model.parameters()),
                    "nonzeros": sum(int((p != 0).sum()) for p in model.parameters()),
                    "gmacs": macs.dense / 1e9 if macs else None,
                    "latency_ms": latency_ms(model, device, args.repeats, args.warmup, CLOCKS[args.clock])})
    return out


def plain_step(g, d, opt_g, opt_d, z, real, autocast):
    """One StyleGAN2 step without its lazy regularisers: D on real and fake, then G."""
    with autocast():
        fake = g(z)
        d_loss = F.softplus(-d(real).float()).mean() + F.softplus(d(fake.detach()).float()).mean()
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_d.step()
    with autocast():
        g_loss = F.softplus(-d(fake).float()).mean()
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()


def method_step(method, teacher, g, d, opt_g, opt_d, z, real, masks, autocast):
    uses_d = method != "distill"
    opts = StepOptions(method, 0.5, 1.0, train_d=uses_d, r1_gamma=10.0, r1_every=16, autocast=autocast,
                       adv_weight=DEFAULT_ADV_WEIGHT)
    losses = compute_losses(teacher, g, d, StepData(z, real.clone()), make_loss("stylegan2"), opts, 0)
    backward_and_step(losses, g, d if uses_d else None, opt_g, opt_d if uses_d else None, masks)


def step_rows(args, device) -> dict[str, float]:
    autocast = partial(torch.autocast, device_type="cuda", dtype=torch.bfloat16) if args.amp and device.type == "cuda" else nullcontext
    torch.manual_seed(0)
    teacher = StyleGAN2Generator(args.size).to(device).eval().requires_grad_(False)
    d = StyleGAN2Discriminator(args.size).to(device)
    masked, _, masks = pruned_pair(teacher, args.sparsity)
    masks = {k: v.to(device) for k, v in masks.items()}
    z = torch.randn(args.batch_size, teacher.style_dim, device=device)
    real = torch.rand(args.batch_size, 3, args.size, args.size, device=device) * 2 - 1
    fns = {}
    for name in ("plain StyleGAN2 step", *METHODS):
        gg, dd = copy.deepcopy(masked).requires_grad_(True), copy.deepcopy(d)
        opt_g = torch.optim.Adam(gg.parameters(), 2e-3, betas=(0.0, 0.99))
        opt_d = torch.optim.Adam(dd.parameters(), 2e-3, betas=(0.0, 0.99))
        if name == "plain StyleGAN2 step":
            fns[name] = partial(plain_step, gg, dd, opt_g, opt_d, z, real, autocast)
        else:
            fns[name] = partial(method_step, name, teacher, gg, dd, opt_g, opt_d, z, real, masks, autocast)
    return timed(fns, device, args.warmup, args.repeats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--amp", action="store_true")
    ap.add_argument("--batch-size", type=int, default=8, help="recovery step batch")
    ap.add_argument("--sparsity", type=float, default=0.5, help="filter sparsity of the student in the step timings")
    ap.add_argument("--steps", action=argparse.BooleanOptionalAction, default=None,
                    help="time the recovery steps (default: only on CUDA)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--clock", choices=tuple(CLOCKS), default="wall",
                    help="latency clock; cpu: process CPU time (steadier on a shared machine, with --threads 1)")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    started = time.time()
    rows = size_rows(args, device)
    print(f"StyleGAN2 config F {args.size} px, random weights, device {args.device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, latency ({args.clock} clock): median of {args.repeats} at batch 1\n")
    dense = rows[0]
    print("| generator | parameters | nonzeros | GMACs/sample | vs dense | latency ms | vs dense |\n|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['params']:,} | {r['nonzeros']:,} | {r['gmacs']:.2f} | {r['gmacs'] / dense['gmacs']:.2f}x "
              f"| {r['latency_ms']:.1f} | {r['latency_ms'] / dense['latency_ms']:.2f}x |")
    steps = None
    if args.steps or (args.steps is None and device.type == "cuda"):
        steps = step_rows(args, device)
        base = steps["plain StyleGAN2 step"]
        print(f"\nrecovery step, batch {args.batch_size}, student at {args.sparsity:.0%} filter sparsity"
              f"{' bf16' if args.amp else ''}\n\n| step | ms | vs plain StyleGAN2 step |\n|---|---:|---:|")
        for name, ms in steps.items():
            print(f"| {name} | {ms:.1f} | {ms / base:.2f}x |")
    print(f"\n({time.time() - started:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "sizes": rows,
                                         "steps_ms": steps}, indent=2))


if __name__ == "__main__":
    main()
